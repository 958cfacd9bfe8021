// The router's logic, free of fds and sessions: frames come in through
// receive(domain, buf, off, len) and leave through one EgressPort per domain
// (alloc a slot, write, submit; flush once per batch). Modelled on Genode's
// nic_router: one domain per Nic session, ARP per domain, IPv4 forwarding
// between domains under a per-domain policy, masquerading NAT and connection
// tracking for TCP, UDP and ICMP echo.
//
// The hot path makes every decision reading the ingress buffer, then copies
// the frame once into the egress slot and rewrites headers there in place
// (TTL, addresses, ports, incremental checksums). It allocates nothing per
// forwarded packet, throws nothing, and counts every drop under its reason.
//
// Time is coarse: the router reads its clock in tick() and flush() (once per
// batch), not per packet.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../core/counters.ts';
import {
  formatIpv4, formatMac, isGroupMac, isMartianSourceIpv4, isMulticastIpv4, macEquals,
} from '../../net/addr.ts';
import {
  ARP_ERR_BAD_OP, ARP_ERR_TRUNCATED, ARP_LEN, ARP_OK, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpOp,
  checkArp, writeArp,
} from '../../net/arp.ts';
import { getI32, getU16, getU16le, setU16, setU32 } from '../../net/bytes.ts';
import { partialUpdate32, update16, update32 } from '../../net/checksum.ts';
import { ETH_HLEN, ETH_MIN_FRAME, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthHeader, writeMacBytes } from '../../net/ethernet.ts';
import {
  ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_EXC_TTL, ICMP_HLEN, ICMP_NET_UNREACH,
  ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED, icmpChecksumOk, icmpSetChecksum,
} from '../../net/icmp.ts';
import {
  checkIpv4, IP_CHECKSUM, IP_DST, IP_ERR_CHECKSUM, IP_ERR_IHL, IP_ERR_LENGTH, IP_ERR_TRUNCATED, IP_ERR_VERSION,
  IP_SRC, IP_TTL, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, ipv4DecrementTtl, ipv4IsFragment,
  writeIpv4Header,
} from '../../net/ipv4.ts';
import {
  checkTcp, TCP_ACK_FLAG, TCP_CHECKSUM, TCP_ERR_CHECKSUM, TCP_ERR_OFFSET, TCP_FIN, TCP_FLAGS, TCP_OK, TCP_RST, TCP_SYN,
} from '../../net/tcp.ts';
import { checkUdp, UDP_CHECKSUM, UDP_ERR_CHECKSUM, UDP_ERR_LENGTH, UDP_OK } from '../../net/udp.ts';
import {
  VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_UDP, VNET_HDR_LEN,
  vnetClear, vnetGsoKnown,
} from '../../net/vnet.ts';
import { ArpCache, type ArpEntry, PendingPool } from './arp-cache.ts';
import type { RouterConfig } from './config.ts';
import {
  Conn, ConnTable, CT_NEW, CT_REPLIED, CT_STATE_NAMES, CT_TCP_CLOSED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED,
  CT_TCP_SYN_SENT, PortPool, protoName,
} from './conntrack.ts';
import { Policy, POLICY_ACCEPT_NAT, POLICY_DROP } from './policy.ts';

/** What the router needs of a domain's egress: a PacketSource satisfies it. */
export interface EgressPort {
  readonly buf: Uint8Array;
  readonly slotSize: number;
  /** A slot offset in buf, or -1 when every slot is in flight. */
  alloc(): number;
  submit(offset: number, length: number): void;
  flush(): void;
}

export interface RouterOptions {
  /** Milliseconds, monotonic. Default performance.now. */
  clock?: () => number;
}

/** Every drop reason the router counts (as the counter "drop.<reason>"). */
export const DROP_REASONS = [
  // framing
  'eth-truncated', 'eth-bad-source', 'eth-not-for-us', 'eth-unsupported-type',
  'vnet-bad-gso', 'vnet-bad-csum',
  // ARP
  'arp-truncated', 'arp-unsupported', 'arp-bad-op', 'arp-bad-sender', 'arp-address-conflict', 'arp-not-for-us',
  'arp-cache-full', 'arp-pending-full', 'arp-pool-exhausted', 'arp-unresolved',
  // IPv4
  'ip-truncated', 'ip-bad-version', 'ip-bad-ihl', 'ip-bad-length', 'ip-bad-checksum',
  'ip-bad-source', 'ip-spoofed-source', 'ip-broadcast', 'ip-fragment', 'ip-unsupported-protocol',
  // L4
  'tcp-truncated', 'tcp-bad-offset', 'tcp-bad-checksum',
  'udp-truncated', 'udp-bad-length', 'udp-bad-checksum',
  'icmp-truncated', 'icmp-bad-checksum', 'icmp-unsupported-type', 'icmp-error-malformed', 'icmp-error-untracked',
  // addressed to the router
  'to-router', 'to-router-other-domain',
  // forwarding and policy
  'no-route', 'hairpin', 'no-rule', 'tcp-new-not-syn', 'icmp-new-not-echo',
  'conntrack-full', 'conntrack-collision', 'nat-ports-exhausted',
  'ttl-exceeded', 'egress-full', 'egress-too-big',
] as const;

export type DropReason = typeof DROP_REASONS[number];

/** Other counters the router keeps (per domain ones are "<name>.<domain>"). */
export const COUNTERS = [
  'forwarded', 'conntrack.new', 'conntrack.expired', 'arp.request-sent', 'arp.reply-sent', 'arp.learned',
  'arp.queued', 'arp.released', 'icmp.echo-reply-sent', 'icmp.error-sent', 'icmp.error-translated',
] as const;

const PROTO_TCP_IDX = 0;
const PROTO_UDP_IDX = 1;
const PROTO_ICMP_IDX = 2;

/** Bytes before the IP header in a packet: virtio_net_hdr + Ethernet. */
const L3 = VNET_HDR_LEN + ETH_HLEN;
const ZERO_MAC = new Uint8Array(6);
const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
// Buffer#copy accepts any Uint8Array as `this` and target: a native copy with
// no view allocated per packet (subarray + set allocates a view each time).
const copyBytes = Buffer.prototype.copy;

function l4ProtoIndex(proto: number): number {
  return proto === IPPROTO_TCP ? PROTO_TCP_IDX : proto === IPPROTO_UDP ? PROTO_UDP_IDX : PROTO_ICMP_IDX;
}

export class Router {
  readonly cfg: RouterConfig;
  readonly #ports: readonly EgressPort[];
  readonly #counters: Counters;
  readonly #clock: () => number;
  #now: number;

  // Per domain, by index.
  readonly #n: number;
  // Addresses as int32 (see getI32): small integers, never boxed.
  readonly #addr: Int32Array;
  readonly #net: Int32Array;
  readonly #mask: Int32Array;
  readonly #bcast: Int32Array;
  /** Gateway, or -1 (255.255.255.255 is never a valid gateway). */
  readonly #gw: Int32Array;
  readonly #mac: Uint8Array[];
  readonly #arp: ArpCache[];
  readonly #dirty: Uint8Array;
  readonly #rxId: Int32Array;
  readonly #txId: Int32Array;
  /** The domain with a gateway (default route), or -1. */
  readonly #defaultDomain: number;

  readonly #policy: Policy;
  readonly #ct: ConnTable;
  readonly #natPools: (PortPool | undefined)[];
  readonly #pool: PendingPool;
  #lastSweep = 0;

  readonly #d: Record<DropReason, number>;
  readonly #c: Record<typeof COUNTERS[number], number>;

  constructor(cfg: RouterConfig, ports: readonly EgressPort[], counters: Counters, opts: RouterOptions = {}) {
    if (ports.length !== cfg.domains.length) throw new RangeError('Router: one egress port per domain');
    this.cfg = cfg;
    this.#ports = ports;
    this.#counters = counters;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#now = this.#clock();
    const n = cfg.domains.length;
    this.#n = n;
    this.#addr = new Int32Array(n);
    this.#net = new Int32Array(n);
    this.#mask = new Int32Array(n);
    this.#bcast = new Int32Array(n);
    this.#gw = new Int32Array(n);
    this.#mac = [];
    this.#arp = [];
    this.#dirty = new Uint8Array(n);
    this.#rxId = new Int32Array(n);
    this.#txId = new Int32Array(n);
    let def = -1;
    for (const d of cfg.domains) {
      const i = d.index;
      this.#addr[i] = d.address;
      this.#net[i] = d.network;
      this.#mask[i] = d.mask;
      this.#bcast[i] = d.broadcast;
      this.#gw[i] = d.gateway < 0 ? -1 : d.gateway;
      this.#mac.push(d.mac);
      this.#arp.push(new ArpCache());
      this.#rxId[i] = counters.define(`rx.${d.name}`);
      this.#txId[i] = counters.define(`tx.${d.name}`);
      if (d.gateway >= 0) def = i;
    }
    this.#defaultDomain = def;
    this.#policy = new Policy(cfg);
    this.#ct = new ConnTable(cfg.conntrack.max);
    this.#ct.onRemove = (c) => this.#releaseNat(c);
    this.#natPools = new Array(n * 3).fill(undefined);
    let slotSize = 0;
    for (const p of ports) slotSize = Math.max(slotSize, p.slotSize);
    this.#pool = new PendingPool(cfg.arp.pendingPool, slotSize);
    const d = {} as Record<DropReason, number>;
    for (const r of DROP_REASONS) d[r] = counters.dropReason(r);
    this.#d = d;
    const c = {} as Record<typeof COUNTERS[number], number>;
    for (const k of COUNTERS) c[k] = counters.define(k);
    this.#c = c;
  }

  /** The index of a domain by name, or -1. */
  domainIndex(name: string): number {
    return this.cfg.domains.findIndex((d) => d.name === name);
  }

  // ---- batch and timer hooks -------------------------------------------------

  /** Publish what the last batch produced (one flush per egress that got packets). */
  flush(): void {
    this.#now = this.#clock();
    const dirty = this.#dirty;
    for (let i = 0; i < this.#n; i++) {
      if (dirty[i] !== 0) {
        dirty[i] = 0;
        this.#ports[i].flush();
      }
    }
  }

  /** Timers: ARP retries and expiry, conntrack expiry (once a second). Call every ~100 ms, then flush(). */
  tick(): void {
    const now = this.#now = this.#clock();
    const { retryMs, maxTries, timeoutMs } = this.cfg.arp;
    for (let dom = 0; dom < this.#n; dom++) {
      const cache = this.#arp[dom];
      for (const e of cache.entries.values()) {
        if (e.probing) {
          if (now < e.nextTry) continue;
          if (e.tries >= maxTries) {
            this.#dropQueue(e, this.#d['arp-unresolved']);
            cache.delete(e);
            continue;
          }
          e.tries++;
          e.nextTry = now + retryMs;
          this.#sendArpRequest(dom, e.ip);
        } else if (e.resolved && now >= e.expires + timeoutMs) {
          cache.delete(e); // expired and unused for a whole timeout
        }
      }
    }
    if (now - this.#lastSweep >= 1000) {
      this.#lastSweep = now;
      this.#counters.add(this.#c['conntrack.expired'], this.#ct.sweep(now));
    }
  }

  /** Forget the ARP state of a domain (its session was reset). Waiting packets are dropped as unresolved. */
  resetDomain(dom: number): void {
    const cache = this.#arp[dom];
    for (const e of cache.entries.values()) this.#dropQueue(e, this.#d['arp-unresolved']);
    cache.entries.clear();
    this.#dirty[dom] = 0;
  }

  // ---- ingress ---------------------------------------------------------------

  /** One packet (virtio_net_hdr + Ethernet frame) arrived on domain `dom`; buf[off, off+len) is read, never kept. */
  receive(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    this.#counters.add(this.#rxId[dom]);
    if (len < L3) return this.#drop(D['eth-truncated']);
    const gso = buf[off + 1] & 0x7f;
    if (gso !== 0 && !vnetGsoKnown(gso)) return this.#drop(D['vnet-bad-gso']);
    const e = off + VNET_HDR_LEN;
    if (isGroupMac(buf, e + 6)) return this.#drop(D['eth-bad-source']);
    const dstGroup = isGroupMac(buf, e);
    if (!dstGroup && !macEquals(buf, e, this.#mac[dom])) return this.#drop(D['eth-not-for-us']);
    const type = getU16(buf, e + 12);
    if (type === ETHERTYPE_ARP) {
      if (gso !== 0) return this.#drop(D['vnet-bad-gso']);
      return this.#arpIn(dom, buf, off, len);
    }
    if (type !== ETHERTYPE_IPV4) return this.#drop(D['eth-unsupported-type']);
    if (dstGroup) return this.#drop(D['ip-broadcast']);
    this.#ipIn(dom, buf, off, len);
  }

  #drop(id: number): void {
    this.#counters.add(id);
  }

  // ---- ARP -------------------------------------------------------------------

  #arpIn(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const a = off + L3;
    const r = checkArp(buf, a, len - L3);
    if (r !== ARP_OK) {
      return this.#drop(r === ARP_ERR_TRUNCATED ? D['arp-truncated'] : r === ARP_ERR_BAD_OP ? D['arp-bad-op'] : D['arp-unsupported']);
    }
    const sha = a + ARP_SHA;
    if (isGroupMac(buf, sha) || macEquals(buf, sha, ZERO_MAC)) return this.#drop(D['arp-bad-sender']);
    const op = arpOp(buf, a);
    const spa = getI32(buf, a + ARP_SPA);
    const tpa = getI32(buf, a + ARP_TPA);
    const own = this.#addr[dom];
    if (spa === own) return this.#drop(D['arp-address-conflict']);
    const learnable = spa !== this.#net[dom] && spa !== this.#bcast[dom] && (spa & this.#mask[dom]) === this.#net[dom];
    const cache = this.#arp[dom];
    if (op === ARP_OP_REQUEST) {
      if (tpa !== own) {
        // Not for us; refresh what we already know, learn nothing new.
        const known = learnable ? cache.get(spa) : undefined;
        if (known !== undefined) this.#learn(dom, known, buf, sha);
        return this.#drop(D['arp-not-for-us']);
      }
      if (spa !== 0) { // spa 0 is an RFC 5227 probe: answer, learn nothing
        if (!learnable) return this.#drop(D['arp-bad-sender']);
        let entry = cache.get(spa);
        if (entry === undefined) entry = cache.add(spa);
        if (entry !== undefined) this.#learn(dom, entry, buf, sha);
        else this.#drop(D['arp-cache-full']);
      }
      this.#sendArpReply(dom, buf, sha, spa);
      return;
    }
    // Reply: learn when it answers us or updates an entry we have.
    if (!learnable) return this.#drop(D['arp-bad-sender']);
    let entry = cache.get(spa);
    if (entry === undefined) {
      if (tpa !== own) return this.#drop(D['arp-not-for-us']);
      entry = cache.add(spa);
      if (entry === undefined) return this.#drop(D['arp-cache-full']);
    }
    this.#learn(dom, entry, buf, sha);
  }

  /** Store the MAC at buf[sha], mark resolved, release waiting packets. */
  #learn(dom: number, e: ArpEntry, buf: Uint8Array, sha: number): void {
    for (let i = 0; i < 6; i++) e.mac[i] = buf[sha + i];
    const was = e.resolved;
    e.resolved = true;
    e.probing = false;
    e.tries = 0;
    e.expires = this.#now + this.cfg.arp.timeoutMs;
    if (!was) this.#counters.add(this.#c['arp.learned']);
    if (e.queue.length > 0) this.#releaseQueue(dom, e);
  }

  #releaseQueue(dom: number, e: ArpEntry): void {
    const port = this.#ports[dom];
    const pool = this.#pool;
    for (let i = 0; i < e.queue.length; i++) {
      const id = e.queue[i];
      const len = e.queueLen[i];
      const slot = port.alloc();
      if (slot < 0) this.#drop(this.#d['egress-full']);
      else {
        const pb = pool.buf(id);
        copyBytes.call(pb, port.buf, slot, 0, len);
        writeEthHeader(port.buf, slot + VNET_HDR_LEN, e.mac, this.#mac[dom], ETHERTYPE_IPV4);
        this.#submit(dom, slot, len);
        this.#counters.add(this.#c['arp.released']);
        this.#counters.add(this.#c.forwarded);
      }
      pool.free(id);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  #dropQueue(e: ArpEntry, reason: number): void {
    for (let i = 0; i < e.queue.length; i++) {
      this.#pool.free(e.queue[i]);
      this.#drop(reason);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  /** A router-built frame: slot with a zero vnet header, or -1 (counted). Frame length excludes the vnet header. */
  #allocOwn(dom: number, frameLen: number): number {
    const port = this.#ports[dom];
    if (VNET_HDR_LEN + frameLen > port.slotSize) {
      this.#drop(this.#d['egress-too-big']);
      return -1;
    }
    const slot = port.alloc();
    if (slot < 0) {
      this.#drop(this.#d['egress-full']);
      return -1;
    }
    vnetClear(port.buf, slot);
    return slot;
  }

  #submit(dom: number, slot: number, len: number): void {
    this.#ports[dom].submit(slot, len);
    this.#dirty[dom] = 1;
    this.#counters.add(this.#txId[dom]);
  }

  /** Pad an Ethernet frame to the minimum size; returns the padded length. */
  #pad(buf: Uint8Array, eth: number, frameLen: number): number {
    if (frameLen >= ETH_MIN_FRAME) return frameLen;
    buf.fill(0, eth + frameLen, eth + ETH_MIN_FRAME);
    return ETH_MIN_FRAME;
  }

  #sendArpReply(dom: number, req: Uint8Array, sha: number, spa: number): void {
    const slot = this.#allocOwn(dom, ETH_MIN_FRAME);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    // Destination MAC = the requester's hardware address.
    for (let i = 0; i < 6; i++) b[e + i] = req[sha + i];
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REPLY, this.#mac[dom], this.#addr[dom], b.subarray(e, e + 6), spa);
    const len = this.#pad(b, e, ETH_HLEN + ARP_LEN);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['arp.reply-sent']);
  }

  #sendArpRequest(dom: number, ip: number): void {
    const slot = this.#allocOwn(dom, ETH_MIN_FRAME);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    writeEthHeader(b, e, BROADCAST_MAC, this.#mac[dom], ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REQUEST, this.#mac[dom], this.#addr[dom], ZERO_MAC, ip);
    const len = this.#pad(b, e, ETH_HLEN + ARP_LEN);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['arp.request-sent']);
  }

  /**
   * The ARP entry to send to `hop` in `dom`: resolved (use its MAC) or
   * resolving (queue the packet). Starts resolution, or a refresh of an
   * expired entry, as needed. Undefined when the cache is full.
   */
  #nextHop(dom: number, hop: number): ArpEntry | undefined {
    const cache = this.#arp[dom];
    let e = cache.get(hop);
    if (e === undefined) {
      e = cache.add(hop);
      if (e === undefined) return undefined;
    }
    if (!e.probing && (!e.resolved || this.#now >= e.expires)) {
      e.probing = true;
      e.tries = 1;
      e.nextTry = this.#now + this.cfg.arp.retryMs;
      this.#sendArpRequest(dom, hop);
    }
    return e;
  }

  // ---- IPv4 ------------------------------------------------------------------

  #ipIn(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const ip = off + L3;
    const ihl = checkIpv4(buf, ip, len - L3);
    if (ihl < 0) {
      return this.#drop(ihl === IP_ERR_TRUNCATED ? D['ip-truncated'] : ihl === IP_ERR_VERSION ? D['ip-bad-version']
        : ihl === IP_ERR_IHL ? D['ip-bad-ihl'] : ihl === IP_ERR_LENGTH ? D['ip-bad-length']
        : ihl === IP_ERR_CHECKSUM ? D['ip-bad-checksum'] : D['ip-truncated']);
    }
    const src = getI32(buf, ip + IP_SRC);
    const dst = getI32(buf, ip + IP_DST);
    if (isMartianSourceIpv4(src) || src === this.#bcast[dom] || src === this.#addr[dom]) return this.#drop(D['ip-bad-source']);
    // A domain without the default route only speaks for its own prefix.
    if (this.#gw[dom] === -1 && (src & this.#mask[dom]) !== this.#net[dom]) return this.#drop(D['ip-spoofed-source']);
    if (dst === -1 || isMulticastIpv4(dst) || dst === this.#bcast[dom]) return this.#drop(D['ip-broadcast']);
    if (ipv4IsFragment(buf, ip)) return this.#drop(D['ip-fragment']);

    const proto = buf[ip + 9];
    const l4 = ip + ihl;
    const l4Len = getU16(buf, ip + 2) - ihl;
    // Offload metadata must agree with the headers it describes.
    const vflags = buf[off];
    const gso = buf[off + 1] & 0x7f;
    const needsCsum = (vflags & VNET_F_NEEDS_CSUM) !== 0;
    if (gso !== 0 && (!needsCsum || (gso === VNET_GSO_TCPV4 ? proto !== IPPROTO_TCP : gso === VNET_GSO_UDP ? proto !== IPPROTO_UDP : true))) {
      return this.#drop(D['vnet-bad-gso']);
    }
    if (needsCsum) {
      const field = proto === IPPROTO_TCP ? TCP_CHECKSUM : proto === IPPROTO_UDP ? UDP_CHECKSUM : proto === IPPROTO_ICMP ? 2 : -1;
      if (getU16le(buf, off + VNET_CSUM_START) !== ETH_HLEN + ihl || getU16le(buf, off + VNET_CSUM_OFFSET) !== field ||
        field + 2 > l4Len) return this.#drop(D['vnet-bad-csum']);
    }
    const verify = this.cfg.verifyChecksums && (vflags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;

    let sport: number;
    let dport: number;
    let tcpFlags = 0;
    let icmpType = -1;
    if (proto === IPPROTO_TCP) {
      const r = checkTcp(buf, ip, l4, l4Len, verify);
      if (r !== TCP_OK) {
        return this.#drop(r === TCP_ERR_CHECKSUM ? D['tcp-bad-checksum'] : r === TCP_ERR_OFFSET ? D['tcp-bad-offset'] : D['tcp-truncated']);
      }
      sport = getU16(buf, l4);
      dport = getU16(buf, l4 + 2);
      tcpFlags = buf[l4 + TCP_FLAGS];
    } else if (proto === IPPROTO_UDP) {
      const r = checkUdp(buf, ip, l4, l4Len, verify);
      if (r !== UDP_OK) {
        return this.#drop(r === UDP_ERR_CHECKSUM ? D['udp-bad-checksum'] : r === UDP_ERR_LENGTH ? D['udp-bad-length'] : D['udp-truncated']);
      }
      sport = getU16(buf, l4);
      dport = getU16(buf, l4 + 2);
    } else if (proto === IPPROTO_ICMP) {
      if (l4Len < ICMP_HLEN) return this.#drop(D['icmp-truncated']);
      if (verify && !icmpChecksumOk(buf, l4, l4Len)) return this.#drop(D['icmp-bad-checksum']);
      icmpType = buf[l4];
      if (icmpType === ICMP_DEST_UNREACH || icmpType === ICMP_TIME_EXCEEDED || icmpType === ICMP_PARAM_PROBLEM) {
        return this.#icmpErrorIn(dom, buf, off, len, ip, ihl, l4, l4Len, needsCsum);
      }
      if (icmpType !== ICMP_ECHO_REQUEST && icmpType !== ICMP_ECHO_REPLY) return this.#drop(D['icmp-unsupported-type']);
      sport = dport = getU16(buf, l4 + 4);
    } else {
      return this.#drop(dst === this.#addr[dom] ? D['to-router'] : D['ip-unsupported-protocol']);
    }

    // A tracked connection: either direction passes.
    const ct = this.#ct;
    let ref = ct.lookup(proto, dom, src, sport, dst, dport);
    if (ref >= 0) {
      const c = ct.conn(ref >>> 1);
      if (c.expires <= this.#now) {
        ct.remove(c);
        this.#counters.add(this.#c['conntrack.expired']);
        ref = -1;
      } else if (icmpType >= 0 && (icmpType === ICMP_ECHO_REQUEST) !== ((ref & 1) === 0)) {
        ref = -1; // a request must travel the original direction, a reply the other
      }
    }
    if (ref >= 0) {
      return this.#forward(dom, buf, off, len, ip, ihl, proto, ct.conn(ref >>> 1), ref & 1, tcpFlags, needsCsum);
    }

    // New traffic.
    if (dst === this.#addr[dom]) {
      if (icmpType === ICMP_ECHO_REQUEST && buf[l4 + 1] === 0) return this.#echoReply(dom, buf, off, ip, ihl, l4, l4Len, needsCsum);
      return this.#drop(D['to-router']);
    }
    for (let i = 0; i < this.#n; i++) {
      if (dst !== this.#addr[i]) continue;
      // The router's address in another domain answers pings only from a domain
      // that may open connections into that one (as the Linux reference does).
      if (icmpType === ICMP_ECHO_REQUEST && buf[l4 + 1] === 0 && this.#policy.decide(dom, i, proto, src, sport, dst, dport) !== POLICY_DROP) {
        return this.#echoReply(dom, buf, off, ip, ihl, l4, l4Len, needsCsum, i);
      }
      return this.#drop(D['to-router-other-domain']);
    }
    const out = this.#route(dst);
    if (out < 0) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_DEST_UNREACH, ICMP_NET_UNREACH);
      return this.#drop(D['no-route']);
    }
    if (out === dom) return this.#drop(D.hairpin);
    const verdict = this.#policy.decide(dom, out, proto, src, sport, dst, dport);
    if (verdict === POLICY_DROP) return this.#drop(D['no-rule']);
    if (proto === IPPROTO_TCP && (tcpFlags & (TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN)) !== TCP_SYN) {
      return this.#drop(D['tcp-new-not-syn']);
    }
    if (proto === IPPROTO_ICMP && icmpType !== ICMP_ECHO_REQUEST) return this.#drop(D['icmp-new-not-echo']);
    if (buf[ip + IP_TTL] <= 1) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drop(D['ttl-exceeded']);
    }
    const c = this.#newConn(proto, dom, src, sport, dst, dport, out, verdict === POLICY_ACCEPT_NAT);
    if (c === undefined) return;
    this.#forward(dom, buf, off, len, ip, ihl, proto, c, 0, tcpFlags, needsCsum);
  }

  /** The egress domain for dst: the domain whose prefix holds it, else the default route, else -1. */
  #route(dst: number): number {
    for (let i = 0; i < this.#n; i++) {
      if ((dst & this.#mask[i]) === this.#net[i]) return i;
    }
    return this.#defaultDomain;
  }

  /** The next hop in domain `dom` for an address: itself on-link, else the gateway, else -1. */
  #hopFor(dom: number, addr: number): number {
    if ((addr & this.#mask[dom]) === this.#net[dom]) return addr;
    return this.#gw[dom];
  }

  // ---- connections -------------------------------------------------------------

  #newConn(proto: number, inDom: number, src: number, sport: number, dst: number, dport: number, outDom: number, nat: boolean): Conn | undefined {
    const ct = this.#ct;
    const D = this.#d;
    const icmp = proto === IPPROTO_ICMP;
    let rDst = src;
    let rDport = sport;
    let pool: PortPool | undefined;
    if (nat) {
      rDst = this.#addr[outDom];
      pool = this.#natPool(outDom, proto);
      rDport = pool.allocFor(ct, proto, outDom, dst, icmp ? -1 : dport, rDst);
      if (rDport < 0) {
        this.#drop(D['nat-ports-exhausted']);
        return undefined;
      }
    } else if (ct.lookup(proto, outDom, dst, dport, rDst, rDport) >= 0) {
      this.#drop(D['conntrack-collision']);
      return undefined;
    }
    let c = ct.acquire();
    if (c === undefined) {
      this.#counters.add(this.#c['conntrack.expired'], ct.sweep(this.#now));
      c = ct.acquire();
    }
    if (c === undefined) {
      if (pool !== undefined) pool.free(rDport);
      this.#drop(D['conntrack-full']);
      return undefined;
    }
    c.proto = proto;
    c.state = proto === IPPROTO_TCP ? CT_TCP_SYN_SENT : CT_NEW;
    c.inDom = inDom;
    c.oSrc = src;
    c.oSport = sport;
    c.oDst = dst;
    c.oDport = dport;
    c.outDom = outDom;
    c.rSrc = dst;
    c.rSport = icmp ? rDport : dport;
    c.rDst = rDst;
    c.rDport = rDport;
    c.nat = nat;
    c.created = this.#now;
    c.expires = this.#now + this.#timeout(c);
    ct.link(c);
    this.#counters.add(this.#c['conntrack.new']);
    return c;
  }

  #natPool(dom: number, proto: number): PortPool {
    const k = dom * 3 + l4ProtoIndex(proto);
    let p = this.#natPools[k];
    if (p === undefined) {
      p = new PortPool(this.cfg.natPorts.first, this.cfg.natPorts.last);
      this.#natPools[k] = p;
    }
    return p;
  }

  #releaseNat(c: Conn): void {
    if (c.nat) this.#natPool(c.outDom, c.proto).free(c.rDport);
  }

  #timeout(c: Conn): number {
    const t = this.cfg.conntrack;
    switch (c.state) {
      case CT_TCP_SYN_SENT:
      case CT_TCP_CLOSING:
        return t.tcpTransitoryMs;
      case CT_TCP_ESTABLISHED:
        return t.tcpEstablishedMs;
      case CT_TCP_CLOSED:
        return t.tcpClosedMs;
      default:
        return c.proto === IPPROTO_UDP ? t.udpMs : t.icmpMs;
    }
  }

  /** Advance the connection's state for a packet in direction dir. */
  #track(c: Conn, dir: number, flags: number): void {
    if (dir === 0) c.pktsOrig++;
    else c.pktsReply++;
    if (c.proto === IPPROTO_TCP) {
      if ((flags & TCP_RST) !== 0) c.state = CT_TCP_CLOSED;
      else {
        if ((flags & TCP_SYN) !== 0) {
          if (dir === 0 && c.state === CT_TCP_CLOSED) { // port reuse after close
            c.state = CT_TCP_SYN_SENT;
            c.finOrig = false;
            c.finReply = false;
          } else if (dir === 1 && (flags & TCP_ACK_FLAG) !== 0 && c.state === CT_TCP_SYN_SENT) {
            c.state = CT_TCP_ESTABLISHED;
          }
        }
        if ((flags & TCP_FIN) !== 0) {
          if (dir === 0) c.finOrig = true;
          else c.finReply = true;
          if (c.finOrig && c.finReply) c.state = CT_TCP_CLOSED;
          else if (c.state !== CT_TCP_CLOSED) c.state = CT_TCP_CLOSING;
        }
      }
    } else if (dir === 1) c.state = CT_REPLIED;
    c.expires = this.#now + this.#timeout(c);
  }

  /**
   * Forward a packet of connection c in direction dir: TTL check, next hop,
   * one copy into the egress slot (or the pending pool), header rewrite there.
   */
  #forward(dom: number, buf: Uint8Array, off: number, len: number, ip: number, ihl: number, proto: number,
    c: Conn, dir: number, tcpFlags: number, needsCsum: boolean): void {
    const D = this.#d;
    if (buf[ip + IP_TTL] <= 1) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drop(D['ttl-exceeded']);
    }
    const out = dir === 0 ? c.outDom : c.inDom;
    // The packet leaves as the other direction's key, reversed.
    const nSrc = dir === 0 ? c.rDst : c.oDst;
    const nSport = dir === 0 ? c.rDport : c.oDport;
    const nDst = dir === 0 ? c.rSrc : c.oSrc;
    const nDport = dir === 0 ? c.rSport : c.oSport;
    const hop = this.#hopFor(out, nDst);
    if (hop === -1) return this.#drop(D['no-route']);
    const port = this.#ports[out];
    if (len > port.slotSize) return this.#drop(D['egress-too-big']);
    const e = this.#nextHop(out, hop);
    if (e === undefined) return this.#drop(D['arp-cache-full']);
    this.#track(c, dir, tcpFlags);
    if (e.resolved) {
      const slot = port.alloc();
      if (slot < 0) return this.#drop(D['egress-full']);
      const b = port.buf;
      copyBytes.call(buf, b, slot, off, off + len);
      this.#rewrite(b, slot + L3, ihl, proto, nSrc, nSport, nDst, nDport, needsCsum);
      writeEthHeader(b, slot + VNET_HDR_LEN, e.mac, this.#mac[out], ETHERTYPE_IPV4);
      this.#submit(out, slot, len);
      this.#counters.add(this.#c.forwarded);
      return;
    }
    // Resolving: keep a rewritten copy in the pool until the reply comes.
    if (e.queue.length >= this.cfg.arp.maxPending) return this.#drop(D['arp-pending-full']);
    const id = this.#pool.alloc();
    if (id < 0) return this.#drop(D['arp-pool-exhausted']);
    const pb = this.#pool.buf(id);
    copyBytes.call(buf, pb, 0, off, off + len);
    this.#rewrite(pb, L3, ihl, proto, nSrc, nSport, nDst, nDport, needsCsum);
    e.queue.push(id);
    e.queueLen.push(len);
    this.#counters.add(this.#c['arp.queued']);
  }

  /**
   * Rewrite the IPv4 packet at ip in place: TTL - 1, then addresses and ports
   * to the given values, with incremental checksum updates. With needsCsum the
   * L4 field holds the partial pseudo-header sum: only address changes apply
   * to it (the L4 header is summed when the checksum is completed).
   */
  #rewrite(b: Uint8Array, ip: number, ihl: number, proto: number,
    nSrc: number, nSport: number, nDst: number, nDport: number, needsCsum: boolean): void {
    ipv4DecrementTtl(b, ip);
    const l4 = ip + ihl;
    const oSrc = getI32(b, ip + IP_SRC);
    const oDst = getI32(b, ip + IP_DST);
    const icmp = proto === IPPROTO_ICMP;
    const cOff = proto === IPPROTO_TCP ? l4 + TCP_CHECKSUM : proto === IPPROTO_UDP ? l4 + UDP_CHECKSUM : l4 + 2;
    let ipc = getU16(b, ip + IP_CHECKSUM);
    let l4c = getU16(b, cOff);
    // UDP without checksum (0) stays without; a partial field is never "none".
    const l4None = proto === IPPROTO_UDP && l4c === 0 && !needsCsum;
    let l4Changed = false;
    if (oSrc !== nSrc) {
      setU32(b, ip + IP_SRC, nSrc);
      ipc = update32(ipc, oSrc, nSrc);
      if (!icmp && !l4None) {
        l4c = needsCsum ? partialUpdate32(l4c, oSrc, nSrc) : update32(l4c, oSrc, nSrc);
        l4Changed = true;
      }
    }
    if (oDst !== nDst) {
      setU32(b, ip + IP_DST, nDst);
      ipc = update32(ipc, oDst, nDst);
      if (!icmp && !l4None) {
        l4c = needsCsum ? partialUpdate32(l4c, oDst, nDst) : update32(l4c, oDst, nDst);
        l4Changed = true;
      }
    }
    setU16(b, ip + IP_CHECKSUM, ipc);
    if (icmp) {
      const id = getU16(b, l4 + 4);
      if (id !== nSport) {
        setU16(b, l4 + 4, nSport);
        if (!needsCsum) {
          l4c = update16(l4c, id, nSport);
          l4Changed = true;
        }
      }
    } else {
      const sp = getU16(b, l4);
      if (sp !== nSport) {
        setU16(b, l4, nSport);
        if (!needsCsum && !l4None) {
          l4c = update16(l4c, sp, nSport);
          l4Changed = true;
        }
      }
      const dp = getU16(b, l4 + 2);
      if (dp !== nDport) {
        setU16(b, l4 + 2, nDport);
        if (!needsCsum && !l4None) {
          l4c = update16(l4c, dp, nDport);
          l4Changed = true;
        }
      }
    }
    if (l4Changed) {
      if (proto === IPPROTO_UDP && !needsCsum && l4c === 0) l4c = 0xffff;
      setU16(b, cOff, l4c);
    }
  }

  // ---- ICMP --------------------------------------------------------------------

  /** Answer an echo request (arrived on `dom`) to the router's address in `addrDom` (options are not echoed). */
  #echoReply(dom: number, buf: Uint8Array, off: number, ip: number, ihl: number, l4: number, l4Len: number, needsCsum: boolean, addrDom = dom): void {
    const slot = this.#allocOwn(dom, ETH_HLEN + IPV4_HLEN + l4Len);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    const eIn = off + VNET_HDR_LEN;
    copyBytes.call(buf, b, e, eIn + 6, eIn + 12); // destination = the request's source MAC
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + l4Len, IPPROTO_ICMP, this.#addr[addrDom], getI32(buf, ip + IP_SRC),
      64, getU16(buf, ip + 4), 0, buf[ip + 1]);
    copyBytes.call(buf, b, ricmp, l4, l4 + l4Len);
    b[ricmp] = ICMP_ECHO_REPLY;
    if (needsCsum) icmpSetChecksum(b, ricmp, l4Len);
    else setU16(b, ricmp + 2, update16(getU16(b, ricmp + 2), ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8));
    const len = this.#pad(b, e, ETH_HLEN + IPV4_HLEN + l4Len);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['icmp.echo-reply-sent']);
  }

  /**
   * Send an ICMP error about the packet at ip (arrived on dom) back to its
   * source, from the router's address in dom, quoting the IP header + 8 bytes.
   * Callers never pass ICMP errors, broadcasts or later fragments.
   */
  #icmpError(dom: number, buf: Uint8Array, off: number, ip: number, ihl: number, type: number, code: number): void {
    const total = getU16(buf, ip + 2);
    const quote = Math.min(total, ihl + 8);
    const icmpLen = ICMP_HLEN + quote;
    const slot = this.#allocOwn(dom, ETH_HLEN + IPV4_HLEN + icmpLen);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    const eIn = off + VNET_HDR_LEN;
    copyBytes.call(buf, b, e, eIn + 6, eIn + 12);
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + icmpLen, IPPROTO_ICMP, this.#addr[dom], getI32(buf, ip + IP_SRC));
    b[ricmp] = type;
    b[ricmp + 1] = code;
    setU32(b, ricmp + 4, 0);
    copyBytes.call(buf, b, ricmp + ICMP_HLEN, ip, ip + quote);
    icmpSetChecksum(b, ricmp, icmpLen);
    const len = this.#pad(b, e, ETH_HLEN + IPV4_HLEN + icmpLen);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['icmp.error-sent']);
  }

  /**
   * An ICMP error arrived: forward it only when the packet it quotes belongs
   * to a tracked connection, translated like that connection (outer and
   * quoted headers, with every checksum the change touches).
   */
  #icmpErrorIn(dom: number, buf: Uint8Array, off: number, len: number, ip: number, ihl: number, l4: number, l4Len: number, needsCsum: boolean): void {
    const D = this.#d;
    const inner = l4 + ICMP_HLEN;
    const avail = l4Len - ICMP_HLEN;
    if (avail < IPV4_HLEN || buf[inner] >>> 4 !== 4) return this.#drop(D['icmp-error-malformed']);
    const iihl = (buf[inner] & 0x0f) << 2;
    if (iihl < IPV4_HLEN || avail < iihl + 8) return this.#drop(D['icmp-error-malformed']);
    const iproto = buf[inner + 9];
    const isrc = getI32(buf, inner + IP_SRC);
    const idst = getI32(buf, inner + IP_DST);
    const il4 = inner + iihl;
    let isport: number;
    let idport: number;
    if (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP) {
      isport = getU16(buf, il4);
      idport = getU16(buf, il4 + 2);
    } else if (iproto === IPPROTO_ICMP && (buf[il4] === ICMP_ECHO_REQUEST || buf[il4] === ICMP_ECHO_REPLY)) {
      isport = idport = getU16(buf, il4 + 4);
    } else return this.#drop(D['icmp-error-untracked']);
    // The quoted packet went out on this domain; its answer would be the reversed key.
    const ref = this.#ct.lookup(iproto, dom, idst, idport, isrc, isport);
    if (ref < 0) return this.#drop(D['icmp-error-untracked']);
    const c = this.#ct.conn(ref >>> 1);
    if (c.expires <= this.#now) return this.#drop(D['icmp-error-untracked']);
    if (buf[ip + IP_TTL] <= 1) return this.#drop(D['ttl-exceeded']); // no error about an error
    const dir = ref & 1;
    const out = dir === 0 ? c.outDom : c.inDom;
    const oSrc = getI32(buf, ip + IP_SRC);
    const oDst = getI32(buf, ip + IP_DST);
    // Outer: toward the original source (reply direction) the destination
    // becomes the original source; toward the remote (original direction) a
    // masqueraded connection's errors come from the NAT address.
    const nDst = dir === 1 ? c.oSrc : oDst;
    const nSrc = dir === 0 && c.nat ? c.rDst : oSrc;
    const hop = this.#hopFor(out, nDst);
    if (hop === -1) return this.#drop(D['no-route']);
    const port = this.#ports[out];
    if (len > port.slotSize) return this.#drop(D['egress-too-big']);
    const e = this.#nextHop(out, hop);
    if (e === undefined) return this.#drop(D['arp-cache-full']);
    let b: Uint8Array;
    let base: number;
    let slot = -1;
    let id = -1;
    if (e.resolved) {
      slot = port.alloc();
      if (slot < 0) return this.#drop(D['egress-full']);
      b = port.buf;
      base = slot;
    } else {
      if (e.queue.length >= this.cfg.arp.maxPending) return this.#drop(D['arp-pending-full']);
      id = this.#pool.alloc();
      if (id < 0) return this.#drop(D['arp-pool-exhausted']);
      b = this.#pool.buf(id);
      base = 0;
    }
    copyBytes.call(buf, b, base, off, off + len);
    const rip = base + L3;
    // Outer IP header (ICMP has no pseudo header: the ICMP checksum is untouched by it).
    this.#rewrite(b, rip, ihl, IPPROTO_ICMP, nSrc, getU16(b, rip + ihl + 4), nDst, 0, true);
    // Quoted packet: it travelled the other direction, translated; give it the
    // addresses and ports its recipient knows.
    const ricmp = rip + ihl;
    const rin = ricmp + ICMP_HLEN;
    const ril4 = rin + iihl;
    const qSrc = dir === 1 ? c.oSrc : c.rSrc;
    const qSport = dir === 1 ? c.oSport : c.rSport;
    const qDst = dir === 1 ? c.oDst : c.rDst;
    const qDport = dir === 1 ? c.oDport : c.rDport;
    let ic = getU16(b, ricmp + 2);
    let inIpc = getU16(b, rin + IP_CHECKSUM);
    const inIpcOld = inIpc;
    // The quoted L4 checksum, when the quote holds it.
    const qcOff = iproto === IPPROTO_TCP ? (avail >= iihl + TCP_CHECKSUM + 2 ? ril4 + TCP_CHECKSUM : -1)
      : iproto === IPPROTO_UDP ? ril4 + UDP_CHECKSUM : ril4 + 2;
    let qc = qcOff >= 0 ? getU16(b, qcOff) : 0;
    const qcOld = qc;
    const qcNone = qcOff < 0 || (iproto === IPPROTO_UDP && qc === 0);
    const icmpQuoted = iproto === IPPROTO_ICMP;
    // Addresses in the quoted IP header.
    if (isrc !== qSrc) {
      setU32(b, rin + IP_SRC, qSrc);
      inIpc = update32(inIpc, isrc, qSrc);
      ic = update32(ic, isrc, qSrc);
      if (!qcNone && !icmpQuoted) qc = update32(qc, isrc, qSrc);
    }
    if (idst !== qDst) {
      setU32(b, rin + IP_DST, qDst);
      inIpc = update32(inIpc, idst, qDst);
      ic = update32(ic, idst, qDst);
      if (!qcNone && !icmpQuoted) qc = update32(qc, idst, qDst);
    }
    if (inIpc !== inIpcOld) {
      setU16(b, rin + IP_CHECKSUM, inIpc);
      ic = update16(ic, inIpcOld, inIpc);
    }
    // Ports (or the echo identifier) in the quoted L4 header.
    if (icmpQuoted) {
      if (isport !== qSport) {
        setU16(b, ril4 + 4, qSport);
        ic = update16(ic, isport, qSport);
        qc = update16(qc, isport, qSport);
      }
    } else {
      if (isport !== qSport) {
        setU16(b, ril4, qSport);
        ic = update16(ic, isport, qSport);
        if (!qcNone) qc = update16(qc, isport, qSport);
      }
      if (idport !== qDport) {
        setU16(b, ril4 + 2, qDport);
        ic = update16(ic, idport, qDport);
        if (!qcNone) qc = update16(qc, idport, qDport);
      }
    }
    if (!qcNone && qc !== qcOld) {
      if (iproto === IPPROTO_UDP && qc === 0) qc = 0xffff;
      setU16(b, qcOff, qc);
      ic = update16(ic, qcOld, qc);
    }
    // With NEEDS_CSUM the ICMP checksum is completed later over the new bytes.
    if (!needsCsum) setU16(b, ricmp + 2, ic);
    this.#counters.add(this.#c['icmp.error-translated']);
    if (slot >= 0) {
      writeEthHeader(b, slot + VNET_HDR_LEN, e.mac, this.#mac[out], ETHERTYPE_IPV4);
      this.#submit(out, slot, len);
      this.#counters.add(this.#c.forwarded);
    } else {
      e.queue.push(id);
      e.queueLen.push(len);
      this.#counters.add(this.#c['arp.queued']);
    }
  }

  // ---- status --------------------------------------------------------------------

  status(): Record<string, unknown> {
    const now = this.#now;
    const domains = this.cfg.domains.map((d) => ({
      name: d.name,
      address: `${formatIpv4(d.address)}/${d.prefix}`,
      mac: formatMac(d.mac),
      gateway: d.gateway >= 0 ? formatIpv4(d.gateway) : null,
      forward: d.forward.map((f) => ({ to: f.toName, nat: f.nat })),
    }));
    const arp: Record<string, unknown>[] = [];
    this.cfg.domains.forEach((d, i) => {
      for (const e of this.#arp[i].entries.values()) {
        arp.push({
          domain: d.name,
          ip: formatIpv4(e.ip),
          mac: e.resolved ? formatMac(e.mac) : null,
          state: e.resolved ? (e.probing ? 'refreshing' : now >= e.expires ? 'stale' : 'reachable') : 'resolving',
          expiresInS: e.resolved ? Math.round((e.expires - now) / 1000) : null,
          queued: e.queue.length,
        });
      }
    });
    const summary: Record<string, Record<string, number>> = {};
    const connections: Record<string, unknown>[] = [];
    for (const c of this.#ct.live()) {
      const p = protoName(c.proto);
      const s = CT_STATE_NAMES[c.state];
      summary[p] ??= {};
      summary[p][s] = (summary[p][s] ?? 0) + 1;
      if (connections.length < 200) {
        connections.push({
          proto: p,
          state: s,
          from: this.cfg.domains[c.inDom].name,
          to: this.cfg.domains[c.outDom].name,
          src: `${formatIpv4(c.oSrc)}:${c.oSport}`,
          dst: `${formatIpv4(c.oDst)}:${c.oDport}`,
          nat: c.nat ? `${formatIpv4(c.rDst)}:${c.rDport}` : null,
          packets: [c.pktsOrig, c.pktsReply],
          ageS: Math.round((now - c.created) / 1000),
          expiresInS: Math.round((c.expires - now) / 1000),
        });
      }
    }
    return {
      domains,
      arp,
      arpPending: { pool: this.#pool.slots, inUse: this.#pool.inUse },
      conntrack: { count: this.#ct.count, max: this.#ct.max, byProto: summary },
      connections,
    };
  }
}
