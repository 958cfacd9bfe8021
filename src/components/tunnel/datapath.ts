// The tunnel's data path: frames from the two router domains, per packet.
//
//   plainIn   an IPv4 or IPv6 packet for a remote site: pick the peer by
//             allowed IPs, copy it once from the router's slot into an uplink
//             slot behind the headers it will get (GSO super-frames cut into
//             segments, partial checksums completed, SYN MSS clamped), check
//             the copy's destination against the peer again (the router's
//             slot is shared memory: what is sealed is what was checked), seal
//             it there in place (counter = the keypair's next nonce), write
//             the outer Ethernet/IPv4/UDP/WireGuard headers around it, submit.
//   uplinkIn  a UDP datagram to our port: a transport message is opened
//             straight from the router's slot into a plain slot (replay window,
//             inner IPv4 or IPv6 header, its source checked against the
//             sender's allowed IPs); handshake and cookie messages go to the
//             handshakes.
//
// No allocation and no exceptions per data packet: only handshake messages
// (rare, checked for size first) are copied out of their slot, and packets
// waiting for a handshake are staged as copies. Both sides share the Ethernet
// and IPv4 front (ipv4In), which also answers ARP.
import { getI32, getU16, getU16le, getU32le, setU16, setU16le, setU32, setU32le } from '../../net/bytes.ts';
import { partialChecksum4 } from '../../net/checksum.ts';
import { isLinkLocalIpv6, isMulticastIpv6 } from '../../net/addr6.ts';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, writeEthHeader } from '../../net/ethernet.ts';
import { icmp6IsError, icmp6SetChecksum, ICMP6_PACKET_TOO_BIG, writeIcmp6Error } from '../../net/icmpv6.ts';
import { checkIpv6, IP6_DST, IP6_NEXT_HEADER, IP6_PAYLOAD_LENGTH, IP6_SRC, IPV6_HLEN, NH_ICMPV6, NH_TCP, writeIpv6Header } from '../../net/ipv6.ts';
import { icmpSetChecksum, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HLEN } from '../../net/icmp.ts';
import {
  checkIpv4, IP_DST, IP_FLAG_DF, IP_FRAG, IP_SRC, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, ipv4IsFragment, writeIpv4Header,
} from '../../net/ipv4.ts';
import { VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN, vnetClear } from '../../net/vnet.ts';
import { ARP_BAD, ARP_HANDLED, type LinkHost } from './link.ts';
import {
  COOKIE_REPLY_SIZE, DATA_COUNTER, DATA_RECEIVER, INITIATION_SIZE, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT,
  paddedLength, PROTOCOL, RESPONSE_SIZE, TRANSPORT_HEADER_SIZE,
} from './messages.ts';
import type { Keypair, Peer } from './peer.ts';
import { clampMss, clampMss6, completeChecksum, writeTcpSegment, writeTcpSegment6 } from './segment.ts';
import { IP_OFFSET, PLAINTEXT_OFFSET, TAG_LEN, TWO32, WG_OFFSET, type TunnelState } from './state.ts';
import type { Timers } from './timers.ts';

/** Buffer.prototype.copy on plain Uint8Arrays: a copy between two buffers without a subarray view. */
const copyBytes = Buffer.prototype.copy;

/** What the data path hands to the handshakes (handshake.ts). */
export interface HandshakeEvents {
  /** Start an initiation to `peer` (false: not now). */
  initiate(peer: Peer, retry: boolean): boolean;
  /** An initiation or response (its own copy, size checked), from src:sport. */
  handshakeIn(msg: Uint8Array, src: number, sport: number): void;
  cookieReplyIn(msg: Uint8Array): void;
  /** The first packet with the responder's next keypair: it becomes current. */
  confirm(peer: Peer): void;
  /** Data for a receiver index we do not know, from src:sport. */
  unknownReceiver(src: number, sport: number): void;
  /** The uplink's gateway was just resolved. */
  uplinkResolved(): void;
}

export class DataPath {
  readonly #state: TunnelState;
  readonly #timers: Timers;
  #handshakes: HandshakeEvents | undefined;
  /** The IPv4 identification of the next uplink frame. */
  #ipId = 1;
  // Tracepoints inside a packet's handling (the handling itself is timed by
  // the sessions, index.ts): the copy of a plaintext frame or segment into its
  // uplink slot, the encryption in place, the decryption (which writes the
  // plaintext into its slot: the receive side's one copy).
  readonly #pCopy: number;
  readonly #pSeal: number;
  readonly #pOpen: number;

  constructor(state: TunnelState, timers: Timers) {
    this.#state = state;
    this.#timers = timers;
    const tr = state.tracer;
    this.#pCopy = tr.proc('tunnel.copy');
    this.#pSeal = tr.proc('tunnel.seal');
    this.#pOpen = tr.proc('tunnel.open');
  }

  connect(handshakes: HandshakeEvents): void {
    this.#handshakes = handshakes;
  }

  /**
   * The front both sides share: an Ethernet frame for this link's host, ARP
   * answered, IPv4 header checked. Returns the IPv4 header length, or -1 when
   * the frame was consumed (ARP) or dropped (counted).
   */
  #ipv4In(link: LinkHost, buf: Uint8Array, off: number, len: number): number {
    const s = this.#state;
    const drops = s.drops;
    if (len < IP_OFFSET) return s.dropped(drops['eth-truncated']);
    if (!link.forUs(buf, off)) return s.dropped(drops['eth-not-for-us']);
    const type = getU16(buf, off + VNET_HDR_LEN + 12);
    if (type === ETHERTYPE_ARP) {
      const wasResolved = link.resolved;
      if (link.arpIn(buf, off, len, s.now) === ARP_BAD) s.drop(drops['arp-bad']);
      else if (!wasResolved && link.resolved && link === s.uplink) this.#handshakes!.uplinkResolved();
      return -1;
    }
    if (type !== ETHERTYPE_IPV4) return s.dropped(drops['eth-unsupported-type']);
    const ihl = checkIpv4(buf, off + IP_OFFSET, len - IP_OFFSET);
    return ihl < 0 ? s.dropped(drops['ip-bad']) : ihl;
  }

  // ---- plaintext side: packets to encrypt ----------------------------------

  /** One frame from the router's plaintext domain. */
  plainIn(buf: Uint8Array, off: number, len: number): void {
    const s = this.#state;
    if (len >= IP_OFFSET && getU16(buf, off + VNET_HDR_LEN + 12) === ETHERTYPE_IPV6) return this.#plainIn6(buf, off, len);
    const ihl = this.#ipv4In(s.plain, buf, off, len);
    if (ihl < 0) return;
    const ip = off + IP_OFFSET;
    if (!s.ready) return s.drop(s.drops['not-ready']);
    const peerIndex = s.allowed.lookup(getI32(buf, ip + IP_DST));
    if (peerIndex < 0) return s.drop(s.drops['no-peer']);
    const peer = s.peers[peerIndex];
    const kp = peer.current;
    if (kp === undefined || s.expired(kp)) {
      this.#stage(peer, buf, off, len);
      this.#handshakes!.initiate(peer, false);
      return;
    }
    this.sendFrame(peer, kp, buf, off, len, ip, ihl);
    this.#timers.keepKeyFreshSending(peer, kp);
  }

  /** Encrypt and send one frame (GSO super-frames as several messages). */
  sendFrame(peer: Peer, kp: Keypair, buf: Uint8Array, off: number, len: number, ip: number, ihl: number): void {
    const s = this.#state;
    const drops = s.drops;
    const tr = s.tracer;
    if (peer.endpointAddress < 0) return s.drop(drops['no-endpoint']);
    if (!s.uplink.resolved) return s.drop(drops['uplink-unresolved']);
    const gso = buf[off + 1] & 0x7f;
    const ipLen = getU16(buf, ip + 2);
    const mtu = s.cfg.mtu;
    const proto = buf[ip + 9];
    if (gso === VNET_GSO_TCPV4) {
      if (proto !== IPPROTO_TCP || ipLen < ihl + 20) return s.drop(drops['gso-unsupported']);
      const thl = (buf[ip + ihl + 12] >>> 4) << 2;
      const hl = ihl + thl;
      if (thl < 20 || hl > ipLen) return s.drop(drops['gso-unsupported']);
      const gsoSize = getU16le(buf, off + 4);
      const mss = Math.min(gsoSize === 0 ? mtu - hl : gsoSize, mtu - hl);
      const payloadLen = ipLen - hl;
      if (payloadLen <= 0) return s.drop(drops['gso-unsupported']);
      if (mss <= 0) return s.drop(drops['too-big']);
      const port = s.uplink.port;
      let segments = 0;
      for (let o = 0; o < payloadLen; o += mss) {
        const seg = Math.min(mss, payloadLen - o);
        const slot = port.alloc();
        if (slot < 0) {
          s.drop(drops['uplink-full']);
          break;
        }
        const tCopy = tr.stage();
        const total = writeTcpSegment(buf, ip, ihl, thl, ip + hl, o, seg, o === 0, o + seg >= payloadLen, segments, port.buf, slot + PLAINTEXT_OFFSET);
        tr.end(this.#pCopy, tCopy, total);
        // The copy is what gets sealed: its destination must still be this peer's.
        if (s.allowed.lookup(getI32(port.buf, slot + PLAINTEXT_OFFSET + IP_DST)) !== peer.index) {
          port.release(slot);
          s.drop(drops['plain-changed']);
          break;
        }
        segments++;
        this.#sealAndSend(peer, kp, slot, total);
      }
      s.count(s.counts['gso.segments'], segments);
      return;
    }
    if (gso !== 0) return s.drop(drops['gso-unsupported']);
    if (ipLen > mtu) {
      if ((getU16(buf, ip + IP_FRAG) & IP_FLAG_DF) !== 0) this.#fragNeeded(buf, ip, ihl);
      return s.drop(drops['too-big']);
    }
    const port = s.uplink.port;
    const slot = port.alloc();
    if (slot < 0) return s.drop(drops['uplink-full']);
    const out = port.buf;
    const p = slot + PLAINTEXT_OFFSET;
    const tCopy = tr.stage();
    copyBytes.call(buf, out, p, ip, ip + ipLen);
    tr.end(this.#pCopy, tCopy, ipLen);
    // From here on only the copy is read: its destination must still be this peer's, its header still sound.
    if (s.allowed.lookup(getI32(out, p + IP_DST)) !== peer.index || (out[p] & 0x0f) << 2 !== ihl || getU16(out, p + 2) !== ipLen) {
      port.release(slot);
      return s.drop(drops['plain-changed']);
    }
    if (!this.#completeCsum(buf, off, out, p, ihl, ipLen, out[p + 9])) {
      port.release(slot);
      return s.drop(drops['bad-csum-offsets']);
    }
    if (s.cfg.mssClamp && clampMss(out, p, ihl, ipLen - ihl, mtu - 40)) s.count(s.counts['mss.clamped']);
    this.#sealAndSend(peer, kp, slot, ipLen);
  }

  /**
   * A partial L4 checksum (NEEDS_CSUM in the vnet header at buf[off]) of the
   * copy at out[p] (hl bytes of IP headers, ipLen in all) completed; false
   * when the offsets do not lie inside the packet.
   */
  #completeCsum(buf: Uint8Array, off: number, out: Uint8Array, p: number, hl: number, ipLen: number, proto: number): boolean {
    if ((buf[off] & VNET_F_NEEDS_CSUM) === 0) return true;
    const start = getU16le(buf, off + VNET_CSUM_START) - ETH_HLEN;
    const field = getU16le(buf, off + VNET_CSUM_OFFSET);
    if (start < hl || start + field + 2 > ipLen) return false;
    completeChecksum(out, p, ipLen, p + start, field, proto);
    return true;
  }

  // ---- plaintext side, IPv6 -------------------------------------------------

  /** An IPv6 frame from the router's plaintext domain (EtherType checked): ND for us, or a packet for a peer. */
  #plainIn6(buf: Uint8Array, off: number, len: number): void {
    const s = this.#state;
    const drops = s.drops;
    const link = s.plain;
    if (!link.forUs(buf, off)) return s.drop(drops['eth-not-for-us']);
    if (s.cfg.plain.ipv6 === null) return s.drop(drops['eth-unsupported-type']);
    const ip = off + IP_OFFSET;
    const n = checkIpv6(buf, ip, len - IP_OFFSET);
    if (n < 0) return s.drop(drops['ip6-bad']);
    const nh = buf[ip + IP6_NEXT_HEADER];
    if (nh === NH_ICMPV6 && n >= IPV6_HLEN + 4 && (buf[ip + IPV6_HLEN] === 135 || buf[ip + IPV6_HLEN] === 136)) {
      const r = link.ndIn(buf, off, n, s.now);
      if (r === ARP_BAD) s.drop(drops['nd-bad']);
      else s.count(r === ARP_HANDLED ? s.counts['nd.handled'] : s.counts['nd.ignored']);
      return;
    }
    // Link-scope traffic (router advertisements, multicast, link-local) never crosses the tunnel.
    if (isMulticastIpv6(buf, ip + IP6_DST) || isLinkLocalIpv6(buf, ip + IP6_DST) || isLinkLocalIpv6(buf, ip + IP6_SRC)) {
      return s.drop(drops['ip6-link-scope']);
    }
    if (!s.ready) return s.drop(drops['not-ready']);
    const peerIndex = s.allowed.lookup6(buf, ip + IP6_DST);
    if (peerIndex < 0) return s.drop(drops['no-peer']);
    const peer = s.peers[peerIndex];
    const kp = peer.current;
    if (kp === undefined || s.expired(kp)) {
      this.#stage(peer, buf, off, len);
      this.#handshakes!.initiate(peer, false);
      return;
    }
    this.sendFrame6(peer, kp, buf, off, n, ip);
    this.#timers.keepKeyFreshSending(peer, kp);
  }

  /** Encrypt and send one IPv6 packet of n bytes at buf[ip] (TCPv6 GSO super-frames as several messages). */
  sendFrame6(peer: Peer, kp: Keypair, buf: Uint8Array, off: number, n: number, ip: number): void {
    const s = this.#state;
    const drops = s.drops;
    const tr = s.tracer;
    if (peer.endpointAddress < 0) return s.drop(drops['no-endpoint']);
    if (!s.uplink.resolved) return s.drop(drops['uplink-unresolved']);
    const gso = buf[off + 1] & 0x7f;
    const mtu = s.cfg.mtu;
    const nh = buf[ip + IP6_NEXT_HEADER];
    const port = s.uplink.port;
    if (gso === VNET_GSO_TCPV6) {
      if (nh !== NH_TCP || n < IPV6_HLEN + 20) return s.drop(drops['gso-unsupported']);
      const thl = (buf[ip + IPV6_HLEN + 12] >>> 4) << 2;
      const hl = IPV6_HLEN + thl;
      if (thl < 20 || hl > n) return s.drop(drops['gso-unsupported']);
      const gsoSize = getU16le(buf, off + 4);
      const mss = Math.min(gsoSize === 0 ? mtu - hl : gsoSize, mtu - hl);
      const payloadLen = n - hl;
      if (payloadLen <= 0) return s.drop(drops['gso-unsupported']);
      if (mss <= 0) return s.drop(drops['too-big']);
      let segments = 0;
      for (let o = 0; o < payloadLen; o += mss) {
        const seg = Math.min(mss, payloadLen - o);
        const slot = port.alloc();
        if (slot < 0) {
          s.drop(drops['uplink-full']);
          break;
        }
        const tCopy = tr.stage();
        const total = writeTcpSegment6(buf, ip, thl, ip + hl, o, seg, o === 0, o + seg >= payloadLen, port.buf, slot + PLAINTEXT_OFFSET);
        tr.end(this.#pCopy, tCopy, total);
        if (s.allowed.lookup6(port.buf, slot + PLAINTEXT_OFFSET + IP6_DST) !== peer.index) {
          port.release(slot);
          s.drop(drops['plain-changed']);
          break;
        }
        segments++;
        this.#sealAndSend(peer, kp, slot, total);
      }
      s.count(s.counts['gso.segments'], segments);
      return;
    }
    if (gso !== 0) return s.drop(drops['gso-unsupported']);
    if (n > mtu) {
      this.#packetTooBig6(buf, ip, n);
      return s.drop(drops['too-big']);
    }
    const slot = port.alloc();
    if (slot < 0) return s.drop(drops['uplink-full']);
    const out = port.buf;
    const p = slot + PLAINTEXT_OFFSET;
    const tCopy = tr.stage();
    copyBytes.call(buf, out, p, ip, ip + n);
    tr.end(this.#pCopy, tCopy, n);
    if (s.allowed.lookup6(out, p + IP6_DST) !== peer.index || getU16(out, p + IP6_PAYLOAD_LENGTH) !== n - IPV6_HLEN) {
      port.release(slot);
      return s.drop(drops['plain-changed']);
    }
    if (!this.#completeCsum(buf, off, out, p, IPV6_HLEN, n, out[p + IP6_NEXT_HEADER])) {
      port.release(slot);
      return s.drop(drops['bad-csum-offsets']);
    }
    if (s.cfg.mssClamp && clampMss6(out, p, n - IPV6_HLEN, mtu - 60)) s.count(s.counts['mss.clamped']);
    this.#sealAndSend(peer, kp, slot, n);
  }

  /** ICMPv6 packet too big (MTU = the tunnel's) back to the source of an IPv6 packet larger than the MTU (RFC 8201). */
  #packetTooBig6(buf: Uint8Array, ip: number, n: number): void {
    const s = this.#state;
    const v6 = s.cfg.plain.ipv6;
    if (v6 === null || !s.plain.resolved6) return;
    if (buf[ip + IP6_NEXT_HEADER] === NH_ICMPV6 && icmp6IsError(buf[ip + IPV6_HLEN])) return; // never about an ICMPv6 error
    const port = s.plain.port;
    const slot = port.alloc();
    if (slot < 0) return;
    const out = port.buf;
    vnetClear(out, slot);
    writeEthHeader(out, slot + VNET_HDR_LEN, s.plain.gatewayMac6, s.cfg.plain.mac, ETHERTYPE_IPV6);
    const rip = slot + IP_OFFSET;
    const l4 = rip + IPV6_HLEN;
    // The quote (at most 1280 - 48 bytes of the packet) goes in first, then the header over the slot's front.
    const icmpLen = writeIcmp6Error(out, l4, ICMP6_PACKET_TOO_BIG, 0, s.cfg.mtu, buf, ip, Math.min(n, port.slotSize - IP_OFFSET - IPV6_HLEN - 8));
    const src = this.#scratch6;
    for (let i = 0; i < 16; i++) src[i] = buf[ip + IP6_SRC + i];
    writeIpv6Header(out, rip, icmpLen, NH_ICMPV6, 64, v6.address, src);
    icmp6SetChecksum(out, rip, l4, icmpLen);
    port.submit(slot, IP_OFFSET + IPV6_HLEN + icmpLen);
    s.plain.dirty = true;
    s.count(s.counts['icmp6.too-big-sent']);
  }

  readonly #scratch6 = new Uint8Array(16);

  /** The plaintext (plainLen bytes) is at slot + PLAINTEXT_OFFSET: pad, seal in place, add the headers, submit. */
  #sealAndSend(peer: Peer, kp: Keypair, slot: number, plainLen: number): void {
    const s = this.#state;
    const tr = s.tracer;
    const port = s.uplink.port;
    const out = port.buf;
    const padded = plainLen === 0 ? 0 : paddedLength(plainLen, s.cfg.mtu);
    if (padded > plainLen) out.fill(0, slot + PLAINTEXT_OFFSET + plainLen, slot + PLAINTEXT_OFFSET + padded);
    const counter = kp.sendCounter++;
    const tSeal = tr.stage();
    kp.send.seal(out, port.address, slot + PLAINTEXT_OFFSET, padded, counter);
    tr.end(this.#pSeal, tSeal, padded);
    const w = slot + WG_OFFSET;
    out[w] = MSG_TRANSPORT;
    out[w + 1] = 0;
    out[w + 2] = 0;
    out[w + 3] = 0;
    setU32le(out, w + DATA_RECEIVER, kp.remoteIndex);
    setU32le(out, w + DATA_COUNTER, counter >>> 0);
    setU32le(out, w + DATA_COUNTER + 4, Math.floor(counter / TWO32));
    const msgLen = TRANSPORT_HEADER_SIZE + padded + TAG_LEN;
    this.#writeOuter(slot, msgLen, peer.endpointAddress, peer.endpointPort);
    port.submit(slot, WG_OFFSET + msgLen);
    s.uplink.dirty = true;
    peer.txBytes += msgLen;
    s.count(s.counts['tx.packets']);
    s.count(s.counts['tx.bytes'], msgLen);
    this.#timers.packetSent(peer, plainLen);
  }

  /** Outer headers of an uplink frame whose WireGuard message (msgLen bytes) is at slot + WG_OFFSET. */
  #writeOuter(slot: number, msgLen: number, dst: number, dport: number): void {
    const s = this.#state;
    const out = s.uplink.port.buf;
    const cfg = s.cfg.uplink;
    const udpLen = 8 + msgLen;
    // The UDP checksum is left to the kernel: virtio NEEDS_CSUM with the pseudo-header sum in the field.
    out[slot] = VNET_F_NEEDS_CSUM;
    out.fill(0, slot + 1, slot + VNET_HDR_LEN);
    setU16le(out, slot + VNET_CSUM_START, ETH_HLEN + IPV4_HLEN);
    setU16le(out, slot + VNET_CSUM_OFFSET, 6);
    writeEthHeader(out, slot + VNET_HDR_LEN, s.uplink.gatewayMac, cfg.mac, ETHERTYPE_IPV4);
    const ip = slot + IP_OFFSET;
    this.#ipId = (this.#ipId + 1) & 0xffff;
    writeIpv4Header(out, ip, IPV4_HLEN + udpLen, IPPROTO_UDP, cfg.address, dst, 64, this.#ipId, 0);
    const u = ip + IPV4_HLEN;
    setU16(out, u, s.cfg.listenPort);
    setU16(out, u + 2, dport);
    setU16(out, u + 4, udpLen);
    setU16(out, u + 6, partialChecksum4(cfg.address >>> 0, dst >>> 0, IPPROTO_UDP, udpLen));
  }

  /** Send a handshake or cookie message (copied into a slot) to dst:dport; false if it could not go (counted). */
  sendMessage(msg: Uint8Array, dst: number, dport: number): boolean {
    const s = this.#state;
    if (dst < 0) {
      s.drop(s.drops['no-endpoint']);
      return false;
    }
    if (!s.uplink.resolved) {
      s.drop(s.drops['uplink-unresolved']);
      return false;
    }
    const port = s.uplink.port;
    const slot = port.alloc();
    if (slot < 0) {
      s.drop(s.drops['uplink-full']);
      return false;
    }
    port.buf.set(msg, slot + WG_OFFSET);
    this.#writeOuter(slot, msg.length, dst, dport);
    port.submit(slot, WG_OFFSET + msg.length);
    s.uplink.dirty = true;
    return true;
  }

  /** ICMP "fragmentation needed" back to the source of a too-big packet with DF (RFC 1191). */
  #fragNeeded(buf: Uint8Array, ip: number, ihl: number): void {
    const s = this.#state;
    if (buf[ip + 9] === IPPROTO_ICMP && buf[ip + ihl] !== 8 && buf[ip + ihl] !== 0) return; // never about an ICMP error
    if (!s.plain.resolved) return;
    const port = s.plain.port;
    const slot = port.alloc();
    if (slot < 0) return;
    const out = port.buf;
    const quote = ihl + 8;
    const icmpLen = ICMP_HLEN + quote;
    vnetClear(out, slot);
    writeEthHeader(out, slot + VNET_HDR_LEN, s.plain.gatewayMac, s.cfg.plain.mac, ETHERTYPE_IPV4);
    const rip = slot + IP_OFFSET;
    writeIpv4Header(out, rip, IPV4_HLEN + icmpLen, IPPROTO_ICMP, s.cfg.plain.address, getI32(buf, ip + IP_SRC));
    const ic = rip + IPV4_HLEN;
    out[ic] = ICMP_DEST_UNREACH;
    out[ic + 1] = ICMP_FRAG_NEEDED;
    setU16(out, ic + 4, 0);
    setU16(out, ic + 6, s.cfg.mtu);
    copyBytes.call(buf, out, ic + ICMP_HLEN, ip, ip + quote);
    icmpSetChecksum(out, ic, icmpLen);
    port.submit(slot, IP_OFFSET + IPV4_HLEN + icmpLen);
    s.plain.dirty = true;
    s.count(s.counts['icmp.frag-needed-sent']);
  }

  /** Keep a copy of a frame until the peer has keys (at most staged-packets per peer, oldest dropped). */
  #stage(peer: Peer, buf: Uint8Array, off: number, len: number): void {
    const s = this.#state;
    const max = s.cfg.stagedPackets;
    if (max === 0) return s.drop(s.drops['staged-overflow']);
    if (peer.staged.length >= max) {
      peer.staged.shift();
      s.drop(s.drops['staged-overflow']);
    }
    peer.staged.push(buf.slice(off, off + len));
    s.count(s.counts.staged);
  }

  /** A usable keypair exists: send what waited for it (or a keepalive, to confirm a new session). */
  sendStaged(peer: Peer, keepaliveIfNone: boolean): void {
    const kp = peer.current;
    if (kp === undefined) return;
    if (peer.staged.length === 0) {
      if (keepaliveIfNone) this.sendKeepalive(peer);
      return;
    }
    const frames = peer.staged.splice(0, peer.staged.length);
    // Each copy is checked again: the router's slot may have changed between its check and the copy.
    for (const f of frames) {
      if (getU16(f, VNET_HDR_LEN + 12) === ETHERTYPE_IPV6) {
        const n = checkIpv6(f, IP_OFFSET, f.length - IP_OFFSET);
        if (n < 0) this.#state.drop(this.#state.drops['plain-changed']);
        else this.sendFrame6(peer, kp, f, 0, n, IP_OFFSET);
      } else {
        const ihl = checkIpv4(f, IP_OFFSET, f.length - IP_OFFSET);
        if (ihl < 0) this.#state.drop(this.#state.drops['plain-changed']);
        else this.sendFrame(peer, kp, f, 0, f.length, IP_OFFSET, ihl);
      }
    }
  }

  /** An empty transport message (or a handshake first, when there are no usable keys). */
  sendKeepalive(peer: Peer): void {
    const s = this.#state;
    const kp = peer.current;
    if (kp === undefined || s.expired(kp)) {
      this.#handshakes!.initiate(peer, false);
      return;
    }
    if (peer.endpointAddress < 0 || !s.uplink.resolved) return;
    const slot = s.uplink.port.alloc();
    if (slot < 0) return s.drop(s.drops['uplink-full']);
    this.#sealAndSend(peer, kp, slot, 0);
    s.count(s.counts['keepalive.sent']);
  }

  // ---- uplink side: WireGuard messages ----------------------------------

  /** One frame from the router's uplink domain; `addr` is the address of buf[0] (or -1). */
  uplinkIn(buf: Uint8Array, addr: number, off: number, len: number): void {
    const s = this.#state;
    const drops = s.drops;
    const ihl = this.#ipv4In(s.uplink, buf, off, len);
    if (ihl < 0) return;
    const ip = off + IP_OFFSET;
    if (buf[ip + 9] !== IPPROTO_UDP || getI32(buf, ip + IP_DST) !== (s.cfg.uplink.address | 0) || ipv4IsFragment(buf, ip)) {
      return s.drop(drops['not-for-tunnel']);
    }
    const u = ip + ihl;
    const ipLen = getU16(buf, ip + 2);
    const udpLen = ipLen - ihl >= 8 ? getU16(buf, u + 4) : 0;
    if (udpLen < 8 || udpLen > ipLen - ihl) return s.drop(drops['udp-bad']);
    if (getU16(buf, u + 2) !== s.cfg.listenPort) return s.drop(drops['not-for-tunnel']);
    const src = getI32(buf, ip + IP_SRC) >>> 0; // u32: -1 means "no endpoint"
    const sport = getU16(buf, u);
    const msg = u + 8;
    const n = udpLen - 8;
    if (n < 4) return s.drop(drops['wg-bad-size']);
    if (buf[msg + 1] !== 0 || buf[msg + 2] !== 0 || buf[msg + 3] !== 0) return s.drop(drops['wg-bad-header']);
    if (!s.ready) return s.drop(drops['not-ready']);
    const hs = this.#handshakes!;
    switch (buf[msg]) {
      case MSG_TRANSPORT:
        return this.#transportIn(buf, addr, msg, n, src, sport);
      case MSG_INITIATION:
        if (n !== INITIATION_SIZE) return s.drop(drops['wg-bad-size']);
        return hs.handshakeIn(buf.slice(msg, msg + n), src, sport);
      case MSG_RESPONSE:
        if (n !== RESPONSE_SIZE) return s.drop(drops['wg-bad-size']);
        return hs.handshakeIn(buf.slice(msg, msg + n), src, sport);
      case MSG_COOKIE_REPLY:
        if (n !== COOKIE_REPLY_SIZE) return s.drop(drops['wg-bad-size']);
        return hs.cookieReplyIn(buf.slice(msg, msg + n));
      default:
        return s.drop(drops['wg-unknown-type']);
    }
  }

  /** A transport message of n bytes at buf[msg] from src:sport: open it into a plain slot, check it, send it on. */
  #transportIn(buf: Uint8Array, addr: number, msg: number, n: number, src: number, sport: number): void {
    const s = this.#state;
    const drops = s.drops;
    const tr = s.tracer;
    if (n < TRANSPORT_HEADER_SIZE + TAG_LEN) return s.drop(drops['wg-bad-size']);
    const kp = s.indices.get(getU32le(buf, msg + DATA_RECEIVER))?.keypair;
    if (kp === undefined) {
      this.#handshakes!.unknownReceiver(src, sport);
      return s.drop(drops['unknown-receiver']);
    }
    const counterHigh = getU32le(buf, msg + DATA_COUNTER + 4);
    if (counterHigh >= 0x200000) return s.drop(drops['counter-too-big']);
    const counter = counterHigh * TWO32 + getU32le(buf, msg + DATA_COUNTER);
    if (s.now - kp.created >= s.cfg.timers.rejectAfterTimeMs) return s.drop(drops['keypair-expired']);
    const ctLen = n - TRANSPORT_HEADER_SIZE - TAG_LEN;
    const port = s.plain.port;
    if (IP_OFFSET + ctLen > port.slotSize) return s.drop(drops['wg-bad-size']);
    const slot = port.alloc();
    if (slot < 0) return s.drop(drops['plain-full']);
    const out = port.buf;
    const tOpen = tr.stage();
    const opened = kp.recv.open(buf, addr, msg + TRANSPORT_HEADER_SIZE, ctLen, out, port.address, slot + IP_OFFSET, counter);
    tr.end(this.#pOpen, tOpen, ctLen);
    if (!opened) {
      port.release(slot);
      return s.drop(drops['decrypt-failed']);
    }
    if (!kp.replay.validate(counter, PROTOCOL.rejectAfterMessages)) {
      port.release(slot);
      return s.drop(drops.replay);
    }
    // Authentic and fresh.
    const peer = kp.peer;
    if (kp === peer.next) this.#handshakes!.confirm(peer);
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      if (peer.endpointAddress !== -1) s.count(s.counts.roamed);
      peer.endpointAddress = src;
      peer.endpointPort = sport;
      peer.roams++;
    }
    peer.rxBytes += n;
    this.#timers.authenticatedReceived(peer);
    this.#timers.keepKeyFreshReceiving(peer);
    if (ctLen === 0) {
      port.release(slot);
      s.count(s.counts['keepalive.received']);
      return;
    }
    this.#timers.dataReceived(peer);
    // The inner packet: IPv4 or IPv6 from an address this peer may use.
    const ip = slot + IP_OFFSET;
    if (out[ip] >>> 4 === 6) return this.#innerIpv6(peer, port, slot, ctLen);
    const ihl = (out[ip] & 0x0f) << 2;
    const total = getU16(out, ip + 2);
    if (out[ip] >>> 4 !== 4 || ihl < IPV4_HLEN || total < ihl || total > ctLen) {
      port.release(slot);
      return s.drop(drops['inner-bad']);
    }
    if (s.allowed.lookup(getI32(out, ip + IP_SRC)) !== peer.index) {
      port.release(slot);
      return s.drop(drops['inner-source-not-allowed']);
    }
    if (!s.plain.resolved) {
      port.release(slot);
      return s.drop(drops['plain-unresolved']);
    }
    if (s.cfg.mssClamp && out[ip + 9] === IPPROTO_TCP && clampMss(out, ip, ihl, total - ihl, s.cfg.mtu - 40)) {
      s.count(s.counts['mss.clamped']);
    }
    vnetClear(out, slot);
    writeEthHeader(out, slot + VNET_HDR_LEN, s.plain.gatewayMac, s.cfg.plain.mac, ETHERTYPE_IPV4);
    port.submit(slot, IP_OFFSET + total);
    s.plain.dirty = true;
    s.count(s.counts['rx.packets']);
    s.count(s.counts['rx.bytes'], total);
  }

  /** A decrypted IPv6 packet (ctLen bytes with padding) at slot + IP_OFFSET of the plain port: checked, sent on or dropped. */
  #innerIpv6(peer: Peer, port: TunnelState['plain']['port'], slot: number, ctLen: number): void {
    const s = this.#state;
    const drops = s.drops;
    const out = port.buf;
    const ip = slot + IP_OFFSET;
    if (ctLen < IPV6_HLEN || IPV6_HLEN + getU16(out, ip + IP6_PAYLOAD_LENGTH) > ctLen) {
      port.release(slot);
      return s.drop(drops['inner-bad']);
    }
    const total = IPV6_HLEN + getU16(out, ip + IP6_PAYLOAD_LENGTH);
    if (s.allowed.lookup6(out, ip + IP6_SRC) !== peer.index) {
      port.release(slot);
      return s.drop(drops['inner-source-not-allowed']);
    }
    if (s.cfg.plain.ipv6 === null) {
      port.release(slot);
      return s.drop(drops['inner-ipv6-off']);
    }
    if (!s.plain.resolved6) {
      port.release(slot);
      return s.drop(drops['plain-unresolved']);
    }
    if (s.cfg.mssClamp && clampMss6(out, ip, total - IPV6_HLEN, s.cfg.mtu - 60)) s.count(s.counts['mss.clamped']);
    vnetClear(out, slot);
    writeEthHeader(out, slot + VNET_HDR_LEN, s.plain.gatewayMac6, s.cfg.plain.mac, ETHERTYPE_IPV6);
    port.submit(slot, IP_OFFSET + total);
    s.plain.dirty = true;
    s.count(s.counts['rx.packets']);
    s.count(s.counts['rx.bytes'], total);
  }
}
