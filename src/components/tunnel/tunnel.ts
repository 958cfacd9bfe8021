// The tunnel's logic, free of fds: WireGuard (whitepaper sections 5 and 6)
// between two Nic sessions, with the static key behind a StaticIdentity.
//
//   plain  (router domain, e.g. "tun")      IPv4 packets to and from the remote sites
//   uplink (router domain, e.g. "wg")       UDP datagrams to and from the peers' endpoints
//
// On both the tunnel is a host with its own address and MAC (LinkHost).
//
// Data path (no allocation, no exceptions): a plaintext packet is copied
// once, from the router's slot into an uplink slot behind the headers it
// will get (GSO super-frames cut into segments on the way, partial checksums
// completed, SYN MSS clamped), sealed there in place, and the outer
// Ethernet/IPv4/UDP/WireGuard headers are written around it. A transport
// message is opened straight from the router's slot into a plain slot.
//
// Handshakes (rare) are asynchronous: the steps that need the static key
// wait for the keystore; everything they decide is re-checked when the
// answer comes (the handshake may have been superseded meanwhile).
import { randomInt } from 'node:crypto';
import type { Counters } from '../../runtime/counters.ts';
import { formatIpv4 } from '../../net/addr.ts';
import { getI32, getU16, getU16le, setU16, setU32 } from '../../net/bytes.ts';
import { partialChecksum4 } from '../../net/checksum.ts';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthHeader } from '../../net/ethernet.ts';
import { icmpSetChecksum, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HLEN } from '../../net/icmp.ts';
import {
  checkIpv4, IP_DST, IP_FLAG_DF, IP_FRAG, IP_SRC, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, ipv4IsFragment, writeIpv4Header,
} from '../../net/ipv4.ts';
import { VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_HDR_LEN, vnetClear } from '../../net/vnet.ts';
import type { PacketSource } from '../../session/types.ts';
import { encodeKey } from '../keystore/keys.ts';
import { aeadBackend, createAeadKey } from './aead.ts';
import { AllowedIps } from './allowed-ips.ts';
import type { TunnelConfig } from './config.ts';
import { CookieChecker } from './cookie.ts';
import { tai64n, timestampAfter } from './crypto.ts';
import { ARP_BAD, LinkHost } from './link.ts';
import {
  COOKIE_RECEIVER, COOKIE_REPLY_SIZE, DATA_COUNTER, DATA_RECEIVER, INITIATION_SIZE, MSG_COOKIE_REPLY, MSG_INITIATION,
  MSG_RESPONSE, MSG_TRANSPORT, paddedLength, PROTOCOL, RESPONSE_SIZE, TRANSPORT_HEADER_SIZE,
} from './messages.ts';
import {
  clearState, consumeInitiation, consumeResponse, createInitiation, createResponse, deriveKeys, initiationSender,
  responseReceiver, type StaticIdentity,
} from './noise.ts';
import { Keypair, Peer } from './peer.ts';
import { clampMss, completeChecksum, writeTcpSegment } from './segment.ts';
import { NO_TRACE, type Tracer } from '../../trace/tracer.ts';

/** Bytes in front of the IPv4 header in a frame: virtio_net_hdr + Ethernet. */
const L3 = VNET_HDR_LEN + ETH_HLEN;
/** Uplink frame: L3 + IPv4 (20) + UDP (8), then the WireGuard message. */
const WG = L3 + IPV4_HLEN + 8;
/** Where the plaintext of a transport message sits in an uplink slot. */
const PT = WG + TRANSPORT_HEADER_SIZE;
const TAG = 16;
const TWO32 = 0x100000000;

/** Every drop reason the tunnel counts (as "drop.<reason>"). */
export const DROP_REASONS = [
  // frames on either side
  'eth-truncated', 'eth-not-for-us', 'eth-unsupported-type', 'arp-bad', 'ip-bad',
  // plaintext side
  'no-peer', 'no-endpoint', 'gso-unsupported', 'too-big', 'bad-csum-offsets', 'staged-overflow', 'staged-given-up',
  'uplink-full', 'uplink-unresolved', 'not-ready',
  // uplink side
  'not-for-tunnel', 'udp-bad', 'wg-bad-header', 'wg-unknown-type', 'wg-bad-size', 'mac1-invalid', 'cookie-required',
  'unknown-receiver', 'counter-too-big', 'keypair-expired', 'decrypt-failed', 'replay', 'plain-full', 'plain-unresolved',
  'inner-bad', 'inner-source-not-allowed',
  // handshakes
  'handshake-keystore', 'handshake-bad-static', 'handshake-unknown-peer', 'handshake-bad-timestamp', 'handshake-replay',
  'handshake-flood', 'handshake-low-order', 'response-invalid', 'response-stale', 'cookie-invalid',
] as const;
export type DropReason = typeof DROP_REASONS[number];

export const COUNTERS = [
  'tx.packets', 'tx.bytes', 'rx.packets', 'rx.bytes', 'keepalive.sent', 'keepalive.received', 'gso.segments', 'mss.clamped',
  'handshake.initiation-sent', 'handshake.initiation-held', 'handshake.initiation-received', 'handshake.response-sent', 'handshake.response-received',
  'handshake.completed', 'handshake.gave-up', 'handshake.initiated-on-unknown', 'cookie.reply-sent', 'cookie.reply-received', 'roamed', 'icmp.frag-needed-sent',
  'keypair.rotated', 'keypair.zeroed', 'staged', 'under-load',
] as const;

interface IndexEntry {
  peer: Peer;
  keypair: Keypair | undefined;
}

export interface TunnelStatic extends StaticIdentity {
  fetchPublicKey(): Promise<Uint8Array | undefined>;
}

export class Tunnel {
  readonly cfg: TunnelConfig;
  readonly plain: LinkHost;
  readonly uplink: LinkHost;
  readonly peers: Peer[];
  readonly #ks: TunnelStatic;
  readonly #counters: Counters;
  readonly #clock: () => number;
  readonly #d: Record<DropReason, number>;
  readonly #c: Record<typeof COUNTERS[number], number>;
  readonly #allowed = new AllowedIps();
  readonly #byKey = new Map<string, Peer>();
  readonly #index = new Map<number, IndexEntry>();
  #checker: CookieChecker | undefined;
  #publicKey: Uint8Array | undefined;
  #now: number;
  #ipId = 1;
  #hsWindowStart = 0;
  #hsCount = 0;
  #log: (msg: string, fields?: Record<string, unknown>) => void;

  // Tracepoints: a frame from each side (from the end of the session's
  // get_packet), the copy of a plaintext frame or segment into its uplink slot,
  // the encryption in place, and the decryption (which writes the plaintext
  // into its slot: the receive side's one copy).
  readonly #tr: Tracer;
  readonly #pPlain: number;
  readonly #pUplink: number;
  readonly #pCopy: number;
  readonly #pSeal: number;
  readonly #pOpen: number;

  constructor(cfg: TunnelConfig, plain: PacketSource, uplink: PacketSource, ks: TunnelStatic, counters: Counters,
    opts: { clock?: () => number; log?: (msg: string, fields?: Record<string, unknown>) => void; tracer?: Tracer } = {}) {
    this.cfg = cfg;
    const tr = (this.#tr = opts.tracer ?? NO_TRACE);
    this.#pPlain = tr.proc('tunnel.plain_packet');
    this.#pUplink = tr.proc('tunnel.uplink_packet');
    this.#pCopy = tr.proc('tunnel.copy');
    this.#pSeal = tr.proc('tunnel.seal');
    this.#pOpen = tr.proc('tunnel.open');
    this.plain = new LinkHost(cfg.plain, plain);
    this.uplink = new LinkHost(cfg.uplink, uplink);
    this.#ks = ks;
    this.#counters = counters;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#log = opts.log ?? (() => {});
    this.#now = this.#clock();
    this.peers = cfg.peers.map((p, i) => new Peer(i, p));
    for (const p of this.peers) {
      this.#byKey.set(p.cfg.publicKeyText, p);
      for (const a of p.cfg.allowedIps) this.#allowed.add(a.network, a.prefix, p.index);
    }
    const d = {} as Record<DropReason, number>;
    for (const r of DROP_REASONS) d[r] = counters.dropReason(r);
    this.#d = d;
    const c = {} as Record<typeof COUNTERS[number], number>;
    for (const k of COUNTERS) c[k] = counters.define(k);
    this.#c = c;
  }

  get ready(): boolean {
    return this.#checker !== undefined;
  }

  /** Learn our public key from the keystore (retried by the caller until it resolves true). */
  async init(): Promise<boolean> {
    const pk = await this.#ks.fetchPublicKey();
    if (pk === undefined) return false;
    if (this.#byKey.has(encodeKey(pk))) {
      this.#log('a peer has our own public key: it is ignored', { publicKey: encodeKey(pk) });
    }
    this.#publicKey = pk;
    this.#checker = new CookieChecker(pk, { clock: this.#clock });
    this.#now = this.#clock();
    // Peers with a persistent keepalive announce themselves at once (a handshake).
    for (const p of this.peers) if (p.cfg.persistentKeepalive > 0) this.#sendKeepalive(p);
    this.flush();
    return true;
  }

  #drop(id: number): void {
    this.#counters.add(id);
  }

  flush(): void {
    this.#now = this.#clock();
    this.plain.flush();
    this.uplink.flush();
  }

  /**
   * The front both sides share: an Ethernet frame for this link's host, ARP
   * answered, IPv4 header checked. Returns the IPv4 header length, or -1 when
   * the frame was consumed (ARP) or dropped (counted).
   */
  #ipv4In(link: LinkHost, buf: Uint8Array, off: number, len: number): number {
    const D = this.#d;
    if (len < L3) return this.#dropped(D['eth-truncated']);
    if (!link.forUs(buf, off)) return this.#dropped(D['eth-not-for-us']);
    const type = getU16(buf, off + VNET_HDR_LEN + 12);
    if (type === ETHERTYPE_ARP) {
      const was = link.resolved;
      if (link.arpIn(buf, off, len, this.#now) === ARP_BAD) this.#drop(D['arp-bad']);
      else if (!was && link.resolved && link === this.uplink) this.#sendHeld();
      return -1;
    }
    if (type !== ETHERTYPE_IPV4) return this.#dropped(D['eth-unsupported-type']);
    const ihl = checkIpv4(buf, off + L3, len - L3);
    return ihl < 0 ? this.#dropped(D['ip-bad']) : ihl;
  }

  #dropped(id: number): -1 {
    this.#drop(id);
    return -1;
  }

  // ---- plaintext side: packets to encrypt ----------------------------------

  /** One frame from the router's plaintext domain. */
  plainIn(buf: Uint8Array, off: number, len: number): void {
    const tr = this.#tr;
    const t0 = tr.last();
    this.#plainIn(buf, off, len);
    tr.spanArg(this.#pPlain, t0, len);
  }

  #plainIn(buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const ihl = this.#ipv4In(this.plain, buf, off, len);
    if (ihl < 0) return;
    const ip = off + L3;
    if (!this.ready) return this.#drop(D['not-ready']);
    const pi = this.#allowed.lookup(getI32(buf, ip + IP_DST));
    if (pi < 0) return this.#drop(D['no-peer']);
    const peer = this.peers[pi];
    const kp = peer.current;
    if (kp === undefined || this.#expired(kp)) {
      this.#stage(peer, buf, off, len);
      this.#initiate(peer, false);
      return;
    }
    this.#sendFrame(peer, kp, buf, off, len, ip, ihl);
    this.#keepKeyFreshSending(peer, kp);
  }

  #expired(kp: Keypair): boolean {
    return this.#now - kp.created >= this.cfg.timers.rejectAfterTimeMs || kp.sendCounter >= PROTOCOL.rejectAfterMessages;
  }

  /** Encrypt and send one frame (GSO super-frames as several messages). */
  #sendFrame(peer: Peer, kp: Keypair, buf: Uint8Array, off: number, len: number, ip: number, ihl: number): void {
    const D = this.#d;
    if (peer.endpointAddress < 0) return this.#drop(D['no-endpoint']);
    if (!this.uplink.resolved) return this.#drop(D['uplink-unresolved']);
    const gso = buf[off + 1] & 0x7f;
    const ipLen = getU16(buf, ip + 2);
    const mtu = this.cfg.mtu;
    const proto = buf[ip + 9];
    if (gso === VNET_GSO_TCPV4) {
      if (proto !== IPPROTO_TCP || ipLen < ihl + 20) return this.#drop(D['gso-unsupported']);
      const thl = (buf[ip + ihl + 12] >>> 4) << 2;
      const hl = ihl + thl;
      if (thl < 20 || hl > ipLen) return this.#drop(D['gso-unsupported']);
      const gsoSize = getU16le(buf, off + 4);
      const mss = Math.min(gsoSize === 0 ? mtu - hl : gsoSize, mtu - hl);
      const payloadLen = ipLen - hl;
      if (payloadLen <= 0) return this.#drop(D['gso-unsupported']);
      if (mss <= 0) return this.#drop(D['too-big']);
      const port = this.uplink.port;
      let k = 0;
      for (let o = 0; o < payloadLen; o += mss) {
        const seg = Math.min(mss, payloadLen - o);
        const slot = port.alloc();
        if (slot < 0) {
          this.#drop(D['uplink-full']);
          break;
        }
        const tc = this.#tr.next();
        const total = writeTcpSegment(buf, ip, ihl, thl, ip + hl, o, seg, o === 0, o + seg >= payloadLen, k, port.buf, slot + PT);
        this.#tr.spanArg(this.#pCopy, tc, total);
        k++;
        this.#sealAndSend(peer, kp, slot, total);
      }
      this.#counters.add(this.#c['gso.segments'], k);
      return;
    }
    if (gso !== 0) return this.#drop(D['gso-unsupported']);
    if (ipLen > mtu) {
      if ((getU16(buf, ip + IP_FRAG) & IP_FLAG_DF) !== 0) this.#fragNeeded(buf, ip, ihl);
      return this.#drop(D['too-big']);
    }
    const port = this.uplink.port;
    const slot = port.alloc();
    if (slot < 0) return this.#drop(D['uplink-full']);
    const b = port.buf;
    const p = slot + PT;
    const tc = this.#tr.next();
    b.set(buf.subarray(ip, ip + ipLen), p);
    this.#tr.spanArg(this.#pCopy, tc, ipLen);
    if ((buf[off] & VNET_F_NEEDS_CSUM) !== 0) {
      const start = getU16le(buf, off + VNET_CSUM_START) - ETH_HLEN;
      const field = getU16le(buf, off + VNET_CSUM_OFFSET);
      if (start < ihl || start + field + 2 > ipLen) {
        port.release(slot);
        return this.#drop(D['bad-csum-offsets']);
      }
      completeChecksum(b, p, ipLen, p + start, field, proto);
    }
    if (this.cfg.mssClamp && proto === IPPROTO_TCP && clampMss(b, p, ihl, ipLen - ihl, mtu - 40)) this.#counters.add(this.#c['mss.clamped']);
    this.#sealAndSend(peer, kp, slot, ipLen);
  }

  /** The plaintext (plainLen bytes) is at slot + PT: pad, seal in place, add the headers, submit. */
  #sealAndSend(peer: Peer, kp: Keypair, slot: number, plainLen: number): void {
    const port = this.uplink.port;
    const b = port.buf;
    const padded = plainLen === 0 ? 0 : paddedLength(plainLen, this.cfg.mtu);
    if (padded > plainLen) b.fill(0, slot + PT + plainLen, slot + PT + padded);
    const counter = kp.sendCounter++;
    const ts = this.#tr.next();
    kp.send.seal(b, port.address, slot + PT, padded, counter);
    this.#tr.spanArg(this.#pSeal, ts, padded);
    const w = slot + WG;
    b[w] = MSG_TRANSPORT;
    b[w + 1] = 0;
    b[w + 2] = 0;
    b[w + 3] = 0;
    setU32le(b, w + DATA_RECEIVER, kp.remoteIndex);
    setU32le(b, w + DATA_COUNTER, counter >>> 0);
    setU32le(b, w + DATA_COUNTER + 4, Math.floor(counter / TWO32));
    const msgLen = TRANSPORT_HEADER_SIZE + padded + TAG;
    this.#writeOuter(slot, msgLen, peer.endpointAddress, peer.endpointPort);
    port.submit(slot, WG + msgLen);
    this.uplink.dirty = true;
    peer.txBytes += msgLen;
    const now = this.#now;
    this.#counters.add(this.#c['tx.packets']);
    this.#counters.add(this.#c['tx.bytes'], msgLen);
    // timers: any authenticated packet sent / traversal; data sent
    peer.keepaliveAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = now + peer.cfg.persistentKeepalive * 1000;
    if (plainLen > 0 && peer.newHandshakeAt === 0) {
      peer.newHandshakeAt = now + this.cfg.timers.keepaliveTimeoutMs + this.cfg.timers.rekeyTimeoutMs + jitter();
    }
  }

  /** Outer headers of an uplink frame whose WireGuard message (msgLen bytes) is at slot + WG. */
  #writeOuter(slot: number, msgLen: number, dst: number, dport: number): void {
    const b = this.uplink.port.buf;
    const cfg = this.cfg.uplink;
    const udpLen = 8 + msgLen;
    // The UDP checksum is left to the kernel: virtio NEEDS_CSUM with the pseudo-header sum in the field.
    b[slot] = VNET_F_NEEDS_CSUM;
    b.fill(0, slot + 1, slot + VNET_HDR_LEN);
    setU16le(b, slot + VNET_CSUM_START, ETH_HLEN + IPV4_HLEN);
    setU16le(b, slot + VNET_CSUM_OFFSET, 6);
    writeEthHeader(b, slot + VNET_HDR_LEN, this.uplink.gatewayMac, cfg.mac, ETHERTYPE_IPV4);
    const ip = slot + L3;
    this.#ipId = (this.#ipId + 1) & 0xffff;
    writeIpv4Header(b, ip, IPV4_HLEN + udpLen, IPPROTO_UDP, cfg.address, dst, 64, this.#ipId, 0);
    const u = ip + IPV4_HLEN;
    setU16(b, u, this.cfg.listenPort);
    setU16(b, u + 2, dport);
    setU16(b, u + 4, udpLen);
    setU16(b, u + 6, partialChecksum4(cfg.address >>> 0, dst >>> 0, IPPROTO_UDP, udpLen));
  }

  /** Send a handshake message (copied into a slot) to the peer's endpoint. */
  #sendHandshake(peer: Peer, msg: Uint8Array): boolean {
    return this.#sendMessage(msg, peer.endpointAddress, peer.endpointPort);
  }

  #sendMessage(msg: Uint8Array, dst: number, dport: number): boolean {
    if (dst < 0) {
      this.#drop(this.#d['no-endpoint']);
      return false;
    }
    if (!this.uplink.resolved) {
      this.#drop(this.#d['uplink-unresolved']);
      return false;
    }
    const port = this.uplink.port;
    const slot = port.alloc();
    if (slot < 0) {
      this.#drop(this.#d['uplink-full']);
      return false;
    }
    port.buf.set(msg, slot + WG);
    this.#writeOuter(slot, msg.length, dst, dport);
    port.submit(slot, WG + msg.length);
    this.uplink.dirty = true;
    return true;
  }

  /** ICMP "fragmentation needed" back to the source of a too-big packet with DF (RFC 1191). */
  #fragNeeded(buf: Uint8Array, ip: number, ihl: number): void {
    if (buf[ip + 9] === IPPROTO_ICMP && buf[ip + ihl] !== 8 && buf[ip + ihl] !== 0) return; // never about an ICMP error
    if (!this.plain.resolved) return;
    const port = this.plain.port;
    const slot = port.alloc();
    if (slot < 0) return;
    const b = port.buf;
    const quote = ihl + 8;
    const icmpLen = ICMP_HLEN + quote;
    vnetClear(b, slot);
    writeEthHeader(b, slot + VNET_HDR_LEN, this.plain.gatewayMac, this.cfg.plain.mac, ETHERTYPE_IPV4);
    const rip = slot + L3;
    writeIpv4Header(b, rip, IPV4_HLEN + icmpLen, IPPROTO_ICMP, this.cfg.plain.address, getI32(buf, ip + IP_SRC));
    const ic = rip + IPV4_HLEN;
    b[ic] = ICMP_DEST_UNREACH;
    b[ic + 1] = ICMP_FRAG_NEEDED;
    setU16(b, ic + 4, 0);
    setU16(b, ic + 6, this.cfg.mtu);
    b.set(buf.subarray(ip, ip + quote), ic + ICMP_HLEN);
    icmpSetChecksum(b, ic, icmpLen);
    port.submit(slot, L3 + IPV4_HLEN + icmpLen);
    this.plain.dirty = true;
    this.#counters.add(this.#c['icmp.frag-needed-sent']);
  }

  #stage(peer: Peer, buf: Uint8Array, off: number, len: number): void {
    const max = this.cfg.stagedPackets;
    if (max === 0) return this.#drop(this.#d['staged-overflow']);
    if (peer.staged.length >= max) {
      peer.staged.shift();
      this.#drop(this.#d['staged-overflow']);
    }
    peer.staged.push(buf.slice(off, off + len));
    this.#counters.add(this.#c.staged);
  }

  /** A usable keypair exists: send what waited for it (or a keepalive, to confirm a new session). */
  #sendStaged(peer: Peer, keepaliveIfNone: boolean): void {
    const kp = peer.current;
    if (kp === undefined) return;
    if (peer.staged.length === 0) {
      if (keepaliveIfNone) this.#sendKeepalive(peer);
      return;
    }
    const frames = peer.staged.splice(0, peer.staged.length);
    for (const f of frames) this.#sendFrame(peer, kp, f, 0, f.length, L3, (f[L3] & 0x0f) << 2);
  }

  #sendKeepalive(peer: Peer): void {
    const kp = peer.current;
    if (kp === undefined || this.#expired(kp)) {
      this.#initiate(peer, false);
      return;
    }
    if (peer.endpointAddress < 0 || !this.uplink.resolved) return;
    const slot = this.uplink.port.alloc();
    if (slot < 0) return this.#drop(this.#d['uplink-full']);
    this.#sealAndSend(peer, kp, slot, 0);
    this.#counters.add(this.#c['keepalive.sent']);
  }

  #keepKeyFreshSending(peer: Peer, kp: Keypair): void {
    if (kp.sendCounter > PROTOCOL.rekeyAfterMessages || (kp.initiator && this.#now - kp.created > this.cfg.timers.rekeyAfterTimeMs)) {
      this.#initiate(peer, false);
    }
  }

  #keepKeyFreshReceiving(peer: Peer): void {
    const kp = peer.current;
    const t = this.cfg.timers;
    if (kp === undefined || !kp.initiator || peer.sentLastMinuteHandshake) return;
    if (this.#now - kp.created > t.rejectAfterTimeMs - t.keepaliveTimeoutMs - t.rekeyTimeoutMs) {
      peer.sentLastMinuteHandshake = true;
      this.#initiate(peer, false);
    }
  }

  // ---- uplink side: WireGuard messages ----------------------------------

  /** One frame from the router's uplink domain; `addr` is the address of buf[0] (or -1). */
  uplinkIn(buf: Uint8Array, addr: number, off: number, len: number): void {
    const tr = this.#tr;
    const t0 = tr.last();
    this.#uplinkIn(buf, addr, off, len);
    tr.spanArg(this.#pUplink, t0, len);
  }

  #uplinkIn(buf: Uint8Array, addr: number, off: number, len: number): void {
    const D = this.#d;
    const ihl = this.#ipv4In(this.uplink, buf, off, len);
    if (ihl < 0) return;
    const ip = off + L3;
    if (buf[ip + 9] !== IPPROTO_UDP || getI32(buf, ip + IP_DST) !== (this.cfg.uplink.address | 0) || ipv4IsFragment(buf, ip)) {
      return this.#drop(D['not-for-tunnel']);
    }
    const u = ip + ihl;
    const ipLen = getU16(buf, ip + 2);
    const udpLen = ipLen - ihl >= 8 ? getU16(buf, u + 4) : 0;
    if (udpLen < 8 || udpLen > ipLen - ihl) return this.#drop(D['udp-bad']);
    if (getU16(buf, u + 2) !== this.cfg.listenPort) return this.#drop(D['not-for-tunnel']);
    const src = getI32(buf, ip + IP_SRC) >>> 0; // u32: -1 means "no endpoint"
    const sport = getU16(buf, u);
    const p = u + 8;
    const n = udpLen - 8;
    if (n < 4) return this.#drop(D['wg-bad-size']);
    if (buf[p + 1] !== 0 || buf[p + 2] !== 0 || buf[p + 3] !== 0) return this.#drop(D['wg-bad-header']);
    if (!this.ready) return this.#drop(D['not-ready']);
    switch (buf[p]) {
      case MSG_TRANSPORT:
        return this.#transportIn(buf, addr, p, n, src, sport);
      case MSG_INITIATION:
        if (n !== INITIATION_SIZE) return this.#drop(D['wg-bad-size']);
        return this.#handshakeIn(buf.slice(p, p + n), src, sport);
      case MSG_RESPONSE:
        if (n !== RESPONSE_SIZE) return this.#drop(D['wg-bad-size']);
        return this.#handshakeIn(buf.slice(p, p + n), src, sport);
      case MSG_COOKIE_REPLY:
        if (n !== COOKIE_REPLY_SIZE) return this.#drop(D['wg-bad-size']);
        return this.#cookieReplyIn(buf.slice(p, p + n));
      default:
        return this.#drop(D['wg-unknown-type']);
    }
  }

  #transportIn(buf: Uint8Array, addr: number, p: number, n: number, src: number, sport: number): void {
    const D = this.#d;
    if (n < TRANSPORT_HEADER_SIZE + TAG) return this.#drop(D['wg-bad-size']);
    const e = this.#index.get(u32le(buf, p + DATA_RECEIVER));
    const kp = e?.keypair;
    if (kp === undefined) {
      this.#unknownReceiver(src, sport);
      return this.#drop(D['unknown-receiver']);
    }
    const hi = u32le(buf, p + DATA_COUNTER + 4);
    if (hi >= 0x200000) return this.#drop(D['counter-too-big']);
    const counter = hi * TWO32 + u32le(buf, p + DATA_COUNTER);
    if (this.#now - kp.created >= this.cfg.timers.rejectAfterTimeMs) return this.#drop(D['keypair-expired']);
    const ctLen = n - TRANSPORT_HEADER_SIZE - TAG;
    const port = this.plain.port;
    if (L3 + ctLen > port.slotSize) return this.#drop(D['wg-bad-size']);
    const slot = port.alloc();
    if (slot < 0) return this.#drop(D['plain-full']);
    const b = port.buf;
    const to = this.#tr.next();
    const opened = kp.recv.open(buf, addr, p + TRANSPORT_HEADER_SIZE, ctLen, b, port.address, slot + L3, counter);
    this.#tr.spanArg(this.#pOpen, to, ctLen);
    if (!opened) {
      port.release(slot);
      return this.#drop(D['decrypt-failed']);
    }
    if (!kp.replay.validate(counter, PROTOCOL.rejectAfterMessages)) {
      port.release(slot);
      return this.#drop(D.replay);
    }
    // Authentic and fresh.
    const peer = kp.peer;
    const now = this.#now;
    if (kp === peer.next) this.#confirm(peer);
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      if (peer.endpointAddress !== -1) this.#counters.add(this.#c.roamed);
      peer.endpointAddress = src;
      peer.endpointPort = sport;
      peer.roams++;
    }
    peer.rxBytes += n;
    peer.newHandshakeAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = now + peer.cfg.persistentKeepalive * 1000;
    this.#keepKeyFreshReceiving(peer);
    if (ctLen === 0) {
      port.release(slot);
      this.#counters.add(this.#c['keepalive.received']);
      return;
    }
    if (peer.keepaliveAt === 0) peer.keepaliveAt = now + this.cfg.timers.keepaliveTimeoutMs;
    else peer.needAnotherKeepalive = true;
    // The inner packet: IPv4 from an address this peer may use.
    const ip = slot + L3;
    const ihl = (b[ip] & 0x0f) << 2;
    const total = getU16(b, ip + 2);
    if (b[ip] >>> 4 !== 4 || ihl < IPV4_HLEN || total < ihl || total > ctLen) {
      port.release(slot);
      return this.#drop(D['inner-bad']);
    }
    if (this.#allowed.lookup(getI32(b, ip + IP_SRC)) !== peer.index) {
      port.release(slot);
      return this.#drop(D['inner-source-not-allowed']);
    }
    if (!this.plain.resolved) {
      port.release(slot);
      return this.#drop(D['plain-unresolved']);
    }
    if (this.cfg.mssClamp && b[ip + 9] === IPPROTO_TCP && clampMss(b, ip, ihl, total - ihl, this.cfg.mtu - 40)) {
      this.#counters.add(this.#c['mss.clamped']);
    }
    vnetClear(b, slot);
    writeEthHeader(b, slot + VNET_HDR_LEN, this.plain.gatewayMac, this.cfg.plain.mac, ETHERTYPE_IPV4);
    port.submit(slot, L3 + total);
    this.plain.dirty = true;
    this.#counters.add(this.#c['rx.packets']);
    this.#counters.add(this.#c['rx.bytes'], total);
  }

  /** The responder's next keypair is confirmed by the initiator's first packet: it becomes current. */
  #confirm(peer: Peer): void {
    const next = peer.next;
    if (next === undefined) return;
    if (peer.previous !== undefined) this.#destroyKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = next;
    peer.next = undefined;
    this.#handshakeComplete(peer);
    this.#counters.add(this.#c['keypair.rotated']);
    this.#sendStaged(peer, false);
  }

  #handshakeComplete(peer: Peer): void {
    peer.retransmitAt = 0;
    peer.attempts = 0;
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWallMs = Date.now();
    peer.handshakes++;
    this.#counters.add(this.#c['handshake.completed']);
  }

  #destroyKeypair(kp: Keypair): void {
    const e = this.#index.get(kp.localIndex);
    if (e !== undefined && e.keypair === kp) this.#index.delete(kp.localIndex);
    kp.destroy();
  }

  #newIndex(peer: Peer): number {
    for (;;) {
      const i = randomInt(1, TWO32);
      if (!this.#index.has(i)) {
        this.#index.set(i, { peer, keypair: undefined });
        return i;
      }
    }
  }

  /** Handshake messages per second above the threshold: ask initiators for cookies (mac2). */
  #underLoad(): boolean {
    const now = this.#now;
    if (now - this.#hsWindowStart >= 1000) {
      this.#hsWindowStart = now;
      this.#hsCount = 0;
    }
    this.#hsCount++;
    return this.#hsCount > this.cfg.underLoadPerS;
  }

  #handshakeIn(msg: Uint8Array, src: number, sport: number): void {
    const D = this.#d;
    const checker = this.#checker!;
    if (!checker.checkMac1(msg)) return this.#drop(D['mac1-invalid']);
    if (this.#underLoad()) {
      this.#counters.add(this.#c['under-load']);
      const source = sourceBytes(src, sport);
      if (!checker.checkMac2(msg, source)) {
        const sender = msg[0] === MSG_INITIATION ? initiationSender(msg) : u32le(msg, 4);
        if (this.#sendMessage(checker.createReply(msg, sender, source), src, sport)) this.#counters.add(this.#c['cookie.reply-sent']);
        return this.#drop(D['cookie-required']);
      }
    }
    if (msg[0] === MSG_INITIATION) void this.#initiationIn(msg, src, sport);
    else void this.#responseIn(msg, src, sport);
  }

  async #initiationIn(msg: Uint8Array, src: number, sport: number): Promise<void> {
    const D = this.#d;
    this.#counters.add(this.#c['handshake.initiation-received']);
    const r = await consumeInitiation(this.#ks, msg, (pub) => this.#byKey.has(encodeKey(pub)));
    this.#now = this.#clock();
    if (!r.ok) {
      return this.#drop(r.reason === 'keystore' ? D['handshake-keystore'] : r.reason === 'bad-static' ? D['handshake-bad-static']
        : r.reason === 'unknown-peer' ? D['handshake-unknown-peer'] : D['handshake-bad-timestamp']);
    }
    const peer = this.#byKey.get(encodeKey(r.remoteStatic))!;
    const now = this.#now;
    if (!timestampAfter(r.timestamp, peer.lastTimestamp)) {
      clearState(r.state);
      return this.#drop(D['handshake-replay']);
    }
    if (now - peer.lastInitiationConsumed <= PROTOCOL.initiationMinIntervalMs) {
      clearState(r.state);
      return this.#drop(D['handshake-flood']);
    }
    peer.lastTimestamp = r.timestamp;
    peer.lastInitiationConsumed = now;
    // Our own initiation in flight is superseded (its state is gone, as in wireguard-go).
    if (peer.handshake !== undefined) {
      this.#index.delete(peer.handshakeIndex);
      clearState(peer.handshake);
      peer.handshake = undefined;
    }
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      peer.endpointAddress = src;
      peer.endpointPort = sport;
    }
    const localIndex = this.#newIndex(peer);
    const resp = createResponse(r.state, peer.cfg.presharedKey, localIndex);
    if (resp === undefined) {
      this.#index.delete(localIndex);
      clearState(r.state);
      return this.#drop(D['handshake-low-order']);
    }
    const keys = deriveKeys(r.state, false);
    const kp = new Keypair(peer, createAeadKey(keys.send, true), createAeadKey(keys.receive, false), localIndex, r.state.remoteIndex, false, now);
    keys.send.fill(0);
    keys.receive.fill(0);
    this.#index.set(localIndex, { peer, keypair: kp });
    if (peer.next !== undefined) this.#destroyKeypair(peer.next);
    peer.next = kp;
    if (peer.previous !== undefined) this.#destroyKeypair(peer.previous);
    peer.previous = undefined;
    peer.cookies.addMacs(resp);
    if (this.#sendHandshake(peer, resp)) this.#counters.add(this.#c['handshake.response-sent']);
    peer.zeroKeysAt = now + 3 * this.cfg.timers.rejectAfterTimeMs;
    peer.keepaliveAt = 0;
    peer.newHandshakeAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = now + peer.cfg.persistentKeepalive * 1000;
    this.flush();
  }

  async #responseIn(msg: Uint8Array, src: number, sport: number): Promise<void> {
    const D = this.#d;
    this.#counters.add(this.#c['handshake.response-received']);
    const receiver = responseReceiver(msg);
    const e = this.#index.get(receiver);
    const peer = e?.peer;
    const hs = peer?.handshake;
    if (peer === undefined || hs === undefined || e?.keypair !== undefined || peer.handshakeIndex !== receiver) {
      return this.#drop(D['unknown-receiver']);
    }
    const ok = await consumeResponse(this.#ks, hs, peer.cfg.presharedKey, msg);
    this.#now = this.#clock();
    if (peer.handshake !== hs) return this.#drop(D['response-stale']);
    if (!ok) return this.#drop(D['response-invalid']);
    const now = this.#now;
    peer.handshake = undefined;
    const keys = deriveKeys(hs, true);
    const kp = new Keypair(peer, createAeadKey(keys.send, true), createAeadKey(keys.receive, false), receiver, hs.remoteIndex, true, now);
    keys.send.fill(0);
    keys.receive.fill(0);
    this.#index.set(receiver, { peer, keypair: kp });
    if (peer.next !== undefined) {
      if (peer.previous !== undefined) this.#destroyKeypair(peer.previous);
      peer.previous = peer.next;
      peer.next = undefined;
      if (peer.current !== undefined) this.#destroyKeypair(peer.current);
    } else {
      if (peer.previous !== undefined) this.#destroyKeypair(peer.previous);
      peer.previous = peer.current;
    }
    peer.current = kp;
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      peer.endpointAddress = src;
      peer.endpointPort = sport;
    }
    this.#handshakeComplete(peer);
    peer.zeroKeysAt = now + 3 * this.cfg.timers.rejectAfterTimeMs;
    peer.newHandshakeAt = 0;
    this.#counters.add(this.#c['keypair.rotated']);
    this.#sendStaged(peer, true);
    this.flush();
  }

  #cookieReplyIn(msg: Uint8Array): void {
    const e = this.#index.get(u32le(msg, COOKIE_RECEIVER));
    if (e === undefined) return this.#drop(this.#d['unknown-receiver']);
    if (!e.peer.cookies.consumeReply(msg)) return this.#drop(this.#d['cookie-invalid']);
    this.#counters.add(this.#c['cookie.reply-received']);
  }

  /** Start a handshake with `peer` (rate-limited to one per rekey-timeout unless retrying). */
  /** Start building an initiation to `peer`; false when not now (not ready, one in progress, too soon, no endpoint). */
  #initiate(peer: Peer, retry: boolean): boolean {
    if (!this.ready) return false;
    const now = this.#now;
    if (peer.initiating) return false; // one initiation at a time: the packet that asked is staged
    if (!retry && now - peer.lastInitiationSent < this.cfg.timers.rekeyTimeoutMs) return false;
    if (peer.endpointAddress < 0) {
      this.#drop(this.#d['no-endpoint']);
      return false;
    }
    if (!retry) {
      peer.attempts = 0;
      peer.attemptStart = now;
    }
    peer.lastInitiationSent = now;
    peer.initiating = true;
    peer.retransmitAt = now + this.cfg.timers.rekeyTimeoutMs + jitter();
    const localIndex = this.#newIndex(peer);
    void createInitiation(this.#ks, peer.cfg.publicKey, localIndex, tai64n()).then((r) => {
      peer.initiating = false;
      this.#now = this.#clock();
      if (r === undefined) {
        this.#index.delete(localIndex);
        return this.#drop(this.#d['handshake-keystore']);
      }
      if (peer.handshake !== undefined) {
        this.#index.delete(peer.handshakeIndex);
        clearState(peer.handshake);
      }
      peer.handshake = r.state;
      peer.handshakeIndex = localIndex;
      peer.cookies.addMacs(r.msg);
      if (!this.uplink.resolved && peer.endpointAddress >= 0) {
        peer.heldInitiation = r.msg;
        this.#counters.add(this.#c['handshake.initiation-held']);
      } else {
        peer.heldInitiation = undefined;
        if (this.#sendHandshake(peer, r.msg)) this.#counters.add(this.#c['handshake.initiation-sent']);
      }
      peer.keepaliveAt = 0;
      if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = this.#now + peer.cfg.persistentKeepalive * 1000;
      this.flush();
    });
    return true;
  }

  /**
   * Data for keys we do not have, from a peer's endpoint while we have no
   * current keys with it: we lost them (a restart, or zeroed after silence)
   * and the peer still sends with its old ones. Start a handshake at once
   * instead of leaving the peer to notice (wireguard-go: ~15 s without an
   * answer). The index alone names no peer, so only the endpoint is matched;
   * #initiate allows one initiation per peer per rekey-timeout, so forged
   * packets from that address cost at most that.
   */
  #unknownReceiver(src: number, sport: number): void {
    for (const peer of this.peers) {
      if (peer.current !== undefined || peer.endpointAddress < 0) continue;
      if (peer.endpointAddress >>> 0 !== src || peer.endpointPort !== sport) continue;
      if (this.#initiate(peer, false)) this.#counters.add(this.#c['handshake.initiated-on-unknown']);
      return;
    }
  }

  /** The uplink's gateway was just resolved: send the initiations built before. */
  #sendHeld(): void {
    for (const peer of this.peers) {
      const msg = peer.heldInitiation;
      if (msg === undefined) continue;
      peer.heldInitiation = undefined;
      if (this.#sendHandshake(peer, msg)) this.#counters.add(this.#c['handshake.initiation-sent']);
    }
  }

  // ---- timers --------------------------------------------------------------

  /** Run due timers (whitepaper 6.2-6.5): retransmission, keepalives, rekeying, key zeroing. Then flush(). */
  tick(): void {
    const now = this.#now = this.#clock();
    this.plain.tick(now);
    this.uplink.tick(now);
    if (!this.ready) return;
    const t = this.cfg.timers;
    for (const peer of this.peers) {
      if (peer.retransmitAt !== 0 && now >= peer.retransmitAt) {
        if (now - peer.attemptStart >= t.rekeyAttemptTimeMs) {
          peer.retransmitAt = 0;
          this.#counters.add(this.#c['handshake.gave-up']);
          this.#counters.add(this.#d['staged-given-up'], peer.staged.length);
          peer.staged.length = 0;
          if (peer.zeroKeysAt === 0) peer.zeroKeysAt = now + 3 * t.rejectAfterTimeMs;
        } else {
          peer.attempts++;
          peer.retransmitAt = 0;
          this.#initiate(peer, true);
        }
      }
      if (peer.keepaliveAt !== 0 && now >= peer.keepaliveAt) {
        peer.keepaliveAt = 0;
        this.#sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          peer.keepaliveAt = now + t.keepaliveTimeoutMs;
        }
      }
      if (peer.newHandshakeAt !== 0 && now >= peer.newHandshakeAt) {
        // We sent data and heard nothing back: the session may be dead.
        peer.newHandshakeAt = 0;
        this.#initiate(peer, false);
      }
      if (peer.persistentAt !== 0 && now >= peer.persistentAt) {
        peer.persistentAt = 0;
        this.#sendKeepalive(peer);
      }
      if (peer.zeroKeysAt !== 0 && now >= peer.zeroKeysAt) {
        peer.zeroKeysAt = 0;
        for (const kp of [peer.previous, peer.current, peer.next]) if (kp !== undefined) this.#destroyKeypair(kp);
        peer.previous = peer.current = peer.next = undefined;
        if (peer.handshake !== undefined) {
          this.#index.delete(peer.handshakeIndex);
          clearState(peer.handshake);
          peer.handshake = undefined;
        }
        this.#counters.add(this.#c['keypair.zeroed']);
      }
    }
  }

  /** A session was reset (its peer restarted). */
  sessionReset(name: string): void {
    if (name === 'plain') this.plain.resolved = false;
    if (name === 'uplink') this.uplink.resolved = false;
  }

  // ---- status ----------------------------------------------------------------

  status(): Record<string, unknown> {
    const now = this.#clock();
    const link = (l: LinkHost) => ({
      address: `${formatIpv4(l.cfg.address)}/${l.cfg.prefix}`,
      gateway: formatIpv4(l.cfg.gateway),
      gatewayResolved: l.resolved,
    });
    const kpInfo = (kp: Keypair | undefined) => kp === undefined ? null : {
      localIndex: kp.localIndex, remoteIndex: kp.remoteIndex, initiator: kp.initiator, ageS: Math.round((now - kp.created) / 100) / 10,
      sent: kp.sendCounter,
    };
    return {
      publicKey: this.#publicKey === undefined ? null : encodeKey(this.#publicKey),
      listenPort: this.cfg.listenPort,
      mtu: this.cfg.mtu,
      ready: this.ready,
      aead: aeadBackend(),
      plain: link(this.plain),
      uplink: link(this.uplink),
      peers: this.peers.map((p) => ({
        publicKey: p.cfg.publicKeyText,
        presharedKey: p.cfg.presharedKey !== undefined,
        endpoint: p.endpointAddress < 0 ? null : `${formatIpv4(p.endpointAddress)}:${p.endpointPort}`,
        allowedIps: p.cfg.allowedIps.map((a) => `${formatIpv4(a.network)}/${a.prefix}`),
        latestHandshake: p.lastHandshakeWallMs === 0 ? null : Math.floor(p.lastHandshakeWallMs / 1000),
        transferRx: p.rxBytes,
        transferTx: p.txBytes,
        persistentKeepalive: p.cfg.persistentKeepalive,
        handshakes: p.handshakes,
        roams: p.roams,
        staged: p.staged.length,
        keypairs: { current: kpInfo(p.current), previous: kpInfo(p.previous), next: kpInfo(p.next) },
      })),
    };
  }
}

function jitter(): number {
  return Math.floor(Math.random() * PROTOCOL.rekeyTimeoutJitterMs);
}

function u32le(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

function setU32le(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

function setU16le(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

/** What a cookie is bound to: the sender's address and port (6 bytes). */
function sourceBytes(addr: number, port: number): Uint8Array {
  const s = new Uint8Array(6);
  setU32(s, 0, addr >>> 0);
  setU16(s, 4, port);
  return s;
}
