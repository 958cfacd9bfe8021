// IPv6 forwarding between domains with `address6` (no NAT66: routed). For a
// packet local6.ts validated (fixed header, extension chain, source) that is
// for another unicast address: the transport header checked (TCP, UDP,
// ICMPv6 echo; checksums with the IPv6 pseudo header unless the vnet header
// vouches for them), the route (longest prefix over the domains' address6,
// else the domain with gateway6), the connection table (conntrack6.ts: the
// IPv4 state machine), the policy for a new connection (rules whose dst is
// IPv6 or absent, the default, `limits` per source /64), `reject` answered
// with a TCP RST, ICMPv6 port unreachable (UDP) or administratively prohibited (echo), hop limit, the
// neighbor cache (neighbors6.ts: NS to the solicited-node group; packets
// wait in the link's pending pool while it resolves), and the
// ICMPv6 errors the router sends (no route, admin prohibited, time exceeded,
// packet too big: larger than the egress domain's `mtu`; never fragmented),
// rate-limited by one token bucket and never about an ICMPv6 error. ICMPv6
// errors about a tracked connection (packet too big, unreachable, time
// exceeded) pass to the other side. With a connection-state sync (sync.ts)
// each connection created or changed is exported (record6; the table's
// onRemove exports its end). Nothing is allocated per packet; the
// hop limit is not in any checksum, so forwarding changes no checksum.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import { inPrefix6, ipv6Equals, isLinkLocalIpv6, isMulticastIpv6, solicitedNode } from '../../net/addr6.ts';
import { getU16, getU16le, setU16, setU32 } from '../../net/bytes.ts';
import { fold, pseudoSum6At, sum } from '../../net/checksum.ts';
import { ETH_HLEN, ETHERTYPE_IPV6, writeMacBytes } from '../../net/ethernet.ts';
import {
  ICMP6_DEST_UNREACH, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP6_PACKET_TOO_BIG, ICMP6_PARAM_PROBLEM, ICMP6_TIME_EXCEEDED,
  ICMP6_UNREACH_ADMIN, ICMP6_UNREACH_NOROUTE, ICMP6_UNREACH_PORT, icmp6SetChecksum, writeIcmp6Error, writeNeighborSolicit,
} from '../../net/icmpv6.ts';
import {
  IP6_DST, IP6_ERROR_NAMES, IP6_HOP_LIMIT, IP6_NEXT_HEADER, IP6_PAYLOAD_LENGTH, IP6_SRC, IPV6_HLEN, type Ipv6Chain, newIpv6Chain,
  NH_ICMPV6, NH_TCP, NH_UDP, walkIpv6,
} from '../../net/ipv6.ts';
import { TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../net/tcp.ts';
import {
  VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_SIZE, VNET_GSO_TCPV6, VNET_GSO_UDP, VNET_HDR_LEN,
} from '../../net/vnet.ts';
import type { RouterConfig } from './config.ts';
import type { Ipv6DomainConfig, Route6 } from './config6.ts';
import { CT_LINKED } from './conntrack.ts';
import { ConnTable6, type Conn6 } from './conntrack6.ts';
import type { DropReason, Drops } from './drops.ts';
import type { Link } from './link.ts';
import { NB_FAILED, NB_REACHABLE, NB_RESOLVING, NB_STALE, NeighborCache } from './neighbors6.ts';
import { L3, type Packet } from './packet.ts';
import { type Policy, POLICY_DROP, POLICY_REJECT } from './policy.ts';
import { TokenBuckets } from './rate-limit.ts';
import { Ipv6Reassembler, REASM6_DROP_REASONS, REASM_DONE, REASM_HELD } from './reassembly6.ts';
import { REC_CHANGED, REC_NEW } from './conn-record.ts';
import { connTimeout, initialState, track } from './tracking.ts';

export const COUNTERS_FWD6 = [
  'forwarded6', 'nd6.queued', 'nd6.released', 'conntrack6.new', 'conntrack6.expired', 'nd6.ns-sent', 'nd6.learned', 'icmp6.error-sent', 'icmp6.error-forwarded',
  'icmp6.error-rate-limited', 'tcp6.reset-sent', 'frag6.held', 'frag6.reassembled', 'frag6.sent', 'frag6.timeout',
  'frag6.timeout-icmp-sent',
] as const;

/** ICMPv6 errors the router sends: per second, and burst (RFC 4443 2.4 f: rate-limit them). */
export const ICMP6_ERRORS_PER_S = 100;
export const ICMP6_ERRORS_BURST = 200;

const IP6 = L3;
const copyBytes = Buffer.prototype.copy;
const BARE_SYN_MASK = TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN;

/** The next hop of the domain's route (routes6) holding the address at buf[off], or null. */
export function routedVia(v6: Ipv6DomainConfig, buf: Uint8Array, off: number): Uint8Array | null {
  const routes = v6.routes;
  for (let k = 0; k < routes.length; k++) {
    if (inPrefix6(buf, off, routes[k].network, routes[k].prefix)) return routes[k].via;
  }
  return null;
}

export class Forward6 {
  cfg: RouterConfig;
  readonly ct: ConnTable6;
  /** The connection-state sync (sync.ts ConnSync), when the router has one: new and changed connections are exported. */
  sync: { record6(kind: number, c: Conn6): void } | undefined;
  readonly neighbors: NeighborCache[];
  readonly #link: Link;
  readonly #drops: Drops;
  readonly #counters: Counters;
  readonly #policy: () => Policy;
  readonly #c: Record<typeof COUNTERS_FWD6[number], number>;
  readonly #errBucket = new TokenBuckets(ICMP6_ERRORS_PER_S, ICMP6_ERRORS_BURST);
  /** Per domain: its IPv6 config, or undefined (the routing table: tried longest prefix first). */
  readonly #v6: (Ipv6DomainConfig | undefined)[];
  readonly #byPrefix: Int32Array;
  readonly #gwDom: number;
  /** IPv6 datagrams being rebuilt from fragments (the policy needs the transport header). */
  readonly reasm: Ipv6Reassembler;
  readonly #chain = newIpv6Chain();
  /** forward() is deciding on a rebuilt datagram: #emit sends its fragments. */
  #fragmented = false;
  #timedOut = 0;
  /** Every domain's routes6, longest prefix first, with their domain. */
  readonly #routes: readonly (Route6 & { dom: number })[];
  /** Scratch for the solicited-node address of an NS (no allocation per NS). */
  readonly #sn = new Uint8Array(16);
  now = 0;

  constructor(cfg: RouterConfig, link: Link, drops: Drops, counters: Counters, policy: () => Policy) {
    this.cfg = cfg;
    this.#link = link;
    this.#drops = drops;
    this.#counters = counters;
    this.#policy = policy;
    const c = {} as Record<typeof COUNTERS_FWD6[number], number>;
    for (const k of COUNTERS_FWD6) c[k] = counters.define(k);
    this.#c = c;
    this.ct = new ConnTable6(cfg.conntrack.max, cfg.conntrack.maxProbe, cfg.conntrack.perSource);
    this.neighbors = cfg.domains.map(() => new NeighborCache());
    this.reasm = new Ipv6Reassembler(cfg.fragments, VNET_HDR_LEN);
    this.reasm.onTimeout = (buf, at, len, dom) => this.#reassemblyTimedOut(buf, at, len, dom);
    this.#v6 = cfg.domains.map((d) => d.ipv6);
    this.#byPrefix = Int32Array.from(cfg.domains.map((d, i) => ({ i, p: d.ipv6?.prefix ?? -1 })).filter((x) => x.p >= 0)
      .sort((a, b) => b.p - a.p).map((x) => x.i));
    this.#gwDom = cfg.domains.findIndex((d) => d.ipv6?.gateway != null);
    this.#routes = cfg.domains.flatMap((d, dom) => (d.ipv6?.routes ?? []).map((r) => ({ ...r, dom }))).sort((a, b) => b.prefix - a.prefix);
  }

  /** tracking.ts track(), and a state change exported (sync). */
  #track(c: Conn6, dir: number, tcpFlags: number): void {
    const state = c.state;
    track(c, dir, tcpFlags, this.now, this.cfg.conntrack);
    if (c.state !== state && this.sync !== undefined) this.sync.record6(REC_CHANGED, c);
  }

  #drop(r: DropReason): void {
    this.#drops.drop(this.#drops.id[r]);
  }

  /** The policy in force. */
  policy(): Policy {
    return this.#policy();
  }

  /** The domain the address at buf[off] is routed to, or -1. */
  route(buf: Uint8Array, off: number): number {
    const order = this.#byPrefix;
    for (let k = 0; k < order.length; k++) {
      const v6 = this.#v6[order[k]] as Ipv6DomainConfig;
      if (inPrefix6(buf, off, v6.network, v6.prefix)) return order[k];
    }
    const routes = this.#routes;
    for (let k = 0; k < routes.length; k++) {
      const r = routes[k];
      if (inPrefix6(buf, off, r.network, r.prefix)) return r.dom;
    }
    return this.#gwDom;
  }

  /**
   * A validated IPv6 packet (n bytes at L3, upper layer `proto` at l4Off) on
   * domain p.dom for an address not the router's.
   */
  forward(p: Packet, n: number, proto: number, l4Off: number): void {
    const b = p.buf;
    const dstOff = IP6 + IP6_DST;
    if (isLinkLocalIpv6(b, dstOff) || isLinkLocalIpv6(b, IP6 + IP6_SRC)) return this.#drop('ip6-link-local');
    const l4 = p.l4 = IP6 + l4Off;
    const l4Len = p.l4Len = n - l4Off;
    p.proto = proto;
    const vflags = b[0];
    const gso = b[1] & 0x7f;
    const needsCsum = p.needsCsum = (vflags & VNET_F_NEEDS_CSUM) !== 0;
    if (gso !== 0 && (!needsCsum || (gso === VNET_GSO_TCPV6 ? proto !== NH_TCP : gso === VNET_GSO_UDP ? proto !== NH_UDP : true))) {
      return this.#drop('vnet-bad-gso');
    }
    if (needsCsum) {
      const field = proto === NH_TCP ? 16 : proto === NH_UDP ? 6 : proto === NH_ICMPV6 ? 2 : -1;
      if (getU16le(b, VNET_CSUM_START) !== ETH_HLEN + l4Off || getU16le(b, VNET_CSUM_OFFSET) !== field || field + 2 > l4Len) {
        return this.#drop('vnet-bad-csum');
      }
    }
    const verify = this.cfg.verifyChecksums && (vflags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;
    p.tcpFlags = 0;
    p.icmpType = -1;
    if (proto === NH_TCP) {
      if (l4Len < 20) return this.#drop('tcp-truncated');
      const doff = (b[l4 + 12] >>> 4) << 2;
      if (doff < 20 || doff > l4Len) return this.#drop('tcp-bad-offset');
      if (verify && fold(sum(b, l4, l4Len, pseudoSum6At(b, IP6, NH_TCP, l4Len))) !== 0xffff) return this.#drop('tcp-bad-checksum');
      p.sport = getU16(b, l4);
      p.dport = getU16(b, l4 + 2);
      p.tcpFlags = b[l4 + 13];
    } else if (proto === NH_UDP) {
      if (l4Len < 8) return this.#drop('udp-truncated');
      if (getU16(b, l4 + 4) !== l4Len) return this.#drop('udp-bad-length');
      // IPv6 UDP must carry a checksum (RFC 8200 8.1).
      if (!needsCsum && getU16(b, l4 + 6) === 0) return this.#drop('udp-bad-checksum');
      if (verify && fold(sum(b, l4, l4Len, pseudoSum6At(b, IP6, NH_UDP, l4Len))) !== 0xffff) return this.#drop('udp-bad-checksum');
      p.sport = getU16(b, l4);
      p.dport = getU16(b, l4 + 2);
    } else if (proto === NH_ICMPV6) {
      if (l4Len < 8) return this.#drop('icmp6-truncated');
      if (verify && fold(sum(b, l4, l4Len, pseudoSum6At(b, IP6, NH_ICMPV6, l4Len))) !== 0xffff) return this.#drop('icmp6-bad-checksum');
      const t = p.icmpType = b[l4];
      if (t === ICMP6_DEST_UNREACH || t === ICMP6_PACKET_TOO_BIG || t === ICMP6_TIME_EXCEEDED || t === ICMP6_PARAM_PROBLEM) {
        return this.#errorIn(p, n);
      }
      if (t !== ICMP6_ECHO_REQUEST && t !== ICMP6_ECHO_REPLY) return this.#drop('icmp6-unsupported-type');
      p.sport = p.dport = getU16(b, l4 + 4);
    } else {
      return this.#drop('ip-unsupported-protocol');
    }

    const ct = this.ct;
    const dom = p.dom;
    let ref = ct.lookup(proto, dom, b, IP6 + IP6_SRC, p.sport, dstOff, p.dport);
    if (ref >= 0) {
      const c = ct.conn(ref >>> 1);
      if (c.expires <= this.now) {
        ct.remove(c);
        this.#counters.add(this.#c['conntrack6.expired']);
        ref = -1;
      } else if (p.icmpType >= 0 && (p.icmpType === ICMP6_ECHO_REQUEST) !== ((ref & 1) === 0)) {
        ref = -1; // a request travels the original direction, a reply the other
      }
    }
    if (ref >= 0) {
      const c = ct.conn(ref >>> 1);
      const dir = ref & 1;
      return this.#emit(p, n, dir === 0 ? c.outDom : c.inDom, c, dir);
    }

    // New traffic.
    const out = this.route(b, dstOff);
    if (out < 0) {
      this.#error(p, n, ICMP6_DEST_UNREACH, ICMP6_UNREACH_NOROUTE, 0);
      return this.#drop('no-route');
    }
    if (out === dom) return this.#drop('hairpin');
    const pol = this.#policy();
    // Limits count an IPv6 source per /64 (one host has a whole /64 to pick addresses from).
    const src64 = (Math.imul(getU16(b, IP6 + IP6_SRC) ^ (getU16(b, IP6 + IP6_SRC + 2) << 16), 0x9e3779b1) ^
      (getU16(b, IP6 + IP6_SRC + 4) << 16 | getU16(b, IP6 + IP6_SRC + 6))) | 0;
    if (!pol.admit(dom, src64, this.now)) return this.#drop('rate-limited');
    const verdict = pol.decide6(dom, out, proto, b, dstOff, p.dport);
    if (verdict === POLICY_DROP) return this.#drop(pol.lastRule < 0 ? 'no-rule' : 'policy-denied');
    if (verdict === POLICY_REJECT) return this.#reject(p, n);
    if (proto === NH_TCP && (p.tcpFlags & BARE_SYN_MASK) !== TCP_SYN) return this.#drop('tcp-new-not-syn');
    if (proto === NH_ICMPV6 && p.icmpType !== ICMP6_ECHO_REQUEST) return this.#drop('icmp-new-not-echo');
    if (b[IP6 + IP6_HOP_LIMIT] <= 1) {
      this.#error(p, n, ICMP6_TIME_EXCEEDED, 0, 0);
      return this.#drop('ttl-exceeded');
    }
    if (ct.sourceFull(dom, b, IP6 + IP6_SRC)) return this.#drop('conntrack-source-limit');
    let c = ct.acquire();
    if (c === undefined) {
      this.#counters.add(this.#c['conntrack6.expired'], ct.sweep(this.now));
      c = ct.acquire();
    }
    if (c === undefined) return this.#drop('conntrack-full');
    c.proto = proto;
    c.state = initialState(proto);
    c.inDom = dom;
    c.outDom = out;
    c.oSport = p.sport;
    c.oDport = p.dport;
    for (let w = 0; w < 4; w++) {
      c.src6[w] = (b[IP6 + IP6_SRC + 4 * w] << 24) | (b[IP6 + IP6_SRC + 4 * w + 1] << 16) | (b[IP6 + IP6_SRC + 4 * w + 2] << 8) | b[IP6 + IP6_SRC + 4 * w + 3];
      c.dst6[w] = (b[dstOff + 4 * w] << 24) | (b[dstOff + 4 * w + 1] << 16) | (b[dstOff + 4 * w + 2] << 8) | b[dstOff + 4 * w + 3];
    }
    c.nat = false;
    c.created = this.now;
    c.expires = this.now + connTimeout(c, this.cfg.conntrack);
    if (ct.link(c) !== CT_LINKED) { // only the probe bound is left to refuse it (sourceFull above)
      ct.abandon(c);
      return this.#drop('conntrack-probe-limit');
    }
    this.#counters.add(this.#c['conntrack6.new']);
    this.sync?.record6(REC_NEW, c);
    this.#emit(p, n, out, c, 0);
  }

  // ---- fragments ------------------------------------------------------------

  /**
   * A fragment (not atomic: offset or more-fragments set; walkIpv6 found its
   * header, ch) of a packet for another address. The first fragment must hold
   * the whole header chain and the upper-layer header (RFC 7112); fragments are
   * held until their datagram is complete (reassembly6.ts), which then goes
   * through forward() like any packet, p.buf pointing at the rebuilt frame;
   * what forward() lets through leaves as the original fragments (#emit).
   */
  fragmentIn(p: Packet, n: number, ch: Ipv6Chain): void {
    const b = p.buf;
    if (isLinkLocalIpv6(b, IP6 + IP6_DST) || isLinkLocalIpv6(b, IP6 + IP6_SRC)) return this.#drop('ip6-link-local');
    if ((b[1] & 0x7f) !== 0) return this.#drop('vnet-bad-gso'); // a fragment is never a super-frame
    // A fragment that could never leave is not held: its range stays open for one that can
    // (an IDS evasion sends a fragment with hop limit 1 and other data in its place).
    if (b[IP6 + IP6_HOP_LIMIT] <= 1) {
      // Time exceeded, never about an ICMPv6 error (a first fragment shows its type; a later one cannot).
      const icmpError = ch.fragOffset === 0 && ch.proto === NH_ICMPV6 && ch.l4Off < n && b[IP6 + ch.l4Off] < 128;
      if (!icmpError) this.#errorAbout(p.dom, b, VNET_HDR_LEN, n, ICMP6_TIME_EXCEEDED, 0, 0);
      return this.#drop('ttl-exceeded');
    }
    if (ch.fragOffset === 0) {
      const l4 = IP6 + ch.l4Off;
      const avail = n - ch.l4Off;
      const proto = ch.proto;
      if (proto !== NH_TCP && proto !== NH_UDP && proto !== NH_ICMPV6) return this.#drop('ip-unsupported-protocol');
      const need = proto === NH_TCP ? (avail >= 20 ? Math.max(20, (b[l4 + 12] >>> 4) << 2) : 20) : 8;
      if (avail < need) return this.#drop('ip6-frag-incomplete-chain');
    }
    const rs = this.reasm;
    const r = rs.offer(b, VNET_HDR_LEN, n, ch.fragOff, ch.fragOffset, ch.fragMore, p.dom, this.now);
    if (r === REASM_HELD) {
      this.#counters.add(this.#c['frag6.held']);
      return;
    }
    if (r !== REASM_DONE) return this.#drop(REASM6_DROP_REASONS[r] as DropReason);
    this.#counters.add(this.#c['frag6.reassembled']);
    const out = rs.out; // the rebuilt frame after VNET_HDR_LEN bytes of headroom: laid out like p.buf
    const m = rs.outLength - ETH_HLEN;
    const w = walkIpv6(out, IP6, m, this.#chain);
    if (w < 0) return this.#drop(IP6_ERROR_NAMES[w] as DropReason);
    p.buf = out;
    p.len = L3 + m;
    this.#fragmented = true;
    try {
      this.forward(p, m, this.#chain.proto, this.#chain.l4Off);
    } finally {
      p.buf = p.home;
      this.#fragmented = false;
    }
  }

  /**
   * Send what forward() decided to pass: the packet itself, or, for a
   * datagram rebuilt from fragments, its original fragments in offset order,
   * each as it arrived but for the hop limit (an IPv6 router never fragments;
   * no NAT66 rewrites anything). A fragment larger than the egress MTU gets
   * packet too big (what Linux checks after defragmenting: the largest
   * fragment, frag_max_size), quoting the first fragment.
   */
  #emit(p: Packet, n: number, out: number, c: Conn6 | undefined, dir: number): void {
    if (!this.#fragmented) return this.#send(p, n, out, c, dir);
    const rs = this.reasm;
    const count = rs.fragments;
    const home = p.home;
    p.buf = home;
    home.fill(0, 0, VNET_HDR_LEN); // no offload metadata on fragments
    if (c !== undefined) {
      let largest = 0;
      for (let k = 0; k < count; k++) largest = Math.max(largest, rs.fragment(k) - ETH_HLEN);
      const mtu = this.#link.mtu[out];
      if (largest > mtu) {
        const len = rs.fragment(0);
        copyBytes.call(rs.fragmentBuf, home, VNET_HDR_LEN, rs.fragmentAt, rs.fragmentAt + len);
        this.#errorAbout(p.dom, home, VNET_HDR_LEN, len - ETH_HLEN, ICMP6_PACKET_TOO_BIG, 0, mtu);
        return this.#drop('ip6-too-big');
      }
    }
    for (let k = 0; k < count; k++) {
      const len = rs.fragment(k);
      copyBytes.call(rs.fragmentBuf, home, VNET_HDR_LEN, rs.fragmentAt, rs.fragmentAt + len);
      p.len = VNET_HDR_LEN + len;
      this.#counters.add(this.#c['frag6.sent']);
      this.#send(p, len - ETH_HLEN, out, c, dir);
    }
  }

  /**
   * A datagram timed out after its first fragment (frame at buf[at], len
   * bytes) arrived on dom: ICMPv6 time exceeded, fragment reassembly time
   * exceeded (RFC 8200 4.5), quoting that fragment; never about a multicast
   * destination or an ICMPv6 error; rate-limited with the other errors.
   */
  #reassemblyTimedOut(buf: Uint8Array, at: number, len: number, dom: number): void {
    const ip = at + ETH_HLEN;
    if (isMulticastIpv6(buf, ip + IP6_DST)) return;
    if (walkIpv6(buf, ip, len - ETH_HLEN, this.#chain) === 0 && this.#chain.proto === NH_ICMPV6 && buf[ip + this.#chain.l4Off] < 128) return;
    if (this.#errorAbout(dom, buf, at, len - ETH_HLEN, ICMP6_TIME_EXCEEDED, 1, 0)) this.#counters.add(this.#c['frag6.timeout-icmp-sent']);
  }

  /** Forward p (n bytes of IPv6) into domain out: hop limit, the neighbor's MAC, copy out. c: its connection, if any. */
  #send(p: Packet, n: number, out: number, c: Conn6 | undefined, dir: number): void {
    const b = p.buf;
    if (b[IP6 + IP6_HOP_LIMIT] <= 1) {
      this.#error(p, n, ICMP6_TIME_EXCEEDED, 0, 0);
      return this.#drop('ttl-exceeded');
    }
    // IPv6 routers never fragment (RFC 8200 5): larger than the egress MTU -> packet too big with the MTU.
    // A GSO super-frame passes when each of its segments (headers + gso_size) fits.
    if (c !== undefined) {
      const mtu = this.#link.mtu[out];
      const gso = b[1] & 0x7f;
      const seg = gso === 0 ? n : p.l4 - IP6 + (p.proto === NH_TCP ? (b[p.l4 + 12] >>> 4) << 2 : 8) + getU16le(b, VNET_GSO_SIZE);
      if (seg > mtu) {
        this.#error(p, n, ICMP6_PACKET_TOO_BIG, 0, mtu);
        return this.#drop('ip6-too-big');
      }
    }
    const v6 = this.#v6[out] as Ipv6DomainConfig;
    const dstOff = IP6 + IP6_DST;
    // The next hop: the destination itself when on the link, else the gateway.
    let hopBuf: Uint8Array = b;
    let hopOff = dstOff;
    if (!inPrefix6(b, dstOff, v6.network, v6.prefix)) {
      const via = routedVia(v6, b, dstOff);
      if (via !== null) hopBuf = via;
      else if (v6.gateway === null) return this.#drop('no-route');
      else hopBuf = v6.gateway;
      hopOff = 0;
    }
    const nb = this.neighbors[out];
    let i = nb.find(hopBuf, hopOff);
    const st = i < 0 ? 0 : nb.state[i];
    if (st !== NB_REACHABLE && st !== NB_STALE) {
      if (i < 0 || st === NB_FAILED) {
        if (i < 0) i = nb.insert(hopBuf, hopOff, NB_RESOLVING, this.now);
        if (i < 0) return this.#drop('nd-cache-full');
        nb.state[i] = NB_RESOLVING;
        nb.tries[i] = 1;
        nb.nextTry[i] = this.now + this.cfg.arp.retryMs;
        nb.pending++;
        this.#sendNs(out, hopBuf, hopOff);
      }
      return this.#queue(p, n, out, nb, i, c, dir);
    }
    if (st === NB_REACHABLE && nb.expires[i] <= this.now) { // refresh: keep using the MAC while asking
      nb.state[i] = NB_STALE;
      nb.tries[i] = 1;
      nb.nextTry[i] = this.now + this.cfg.arp.retryMs;
      nb.pending++;
      this.#sendNs(out, hopBuf, hopOff);
    }
    if (c !== undefined) this.#track(c, dir, p.tcpFlags);
    b[IP6 + IP6_HOP_LIMIT]--;
    const e = VNET_HDR_LEN;
    for (let m = 0; m < 6; m++) b[e + m] = nb.mac[i * 6 + m];
    writeMacBytes(b, e + 6, this.#link.macs[out]);
    if (this.#link.send(out, b, 0, L3 + n, p.dom)) this.#counters.add(this.#c.forwarded6);
  }

  /**
   * Park the packet (finished but for the destination MAC) in the link's
   * pending pool until neighbor slot i of domain out resolves, within
   * arp.max-pending per neighbor and the pool's size.
   */
  #queue(p: Packet, n: number, out: number, nb: NeighborCache, i: number, c: Conn6 | undefined, dir: number): void {
    const q = nb.queue[i] ?? (nb.queue[i] = []);
    const ql = nb.queueLen[i] ?? (nb.queueLen[i] = []);
    if (q.length >= this.cfg.arp.maxPending) return this.#drop('arp-pending-full');
    const pool = this.#link.pool;
    const id = pool.alloc();
    if (id < 0) return this.#drop('arp-pool-exhausted');
    const b = p.buf;
    if (c !== undefined) this.#track(c, dir, p.tcpFlags);
    b[IP6 + IP6_HOP_LIMIT]--;
    writeMacBytes(b, VNET_HDR_LEN + 6, this.#link.macs[out]);
    const len = L3 + n;
    copyBytes.call(b, pool.buf(id), 0, 0, len);
    q.push(id);
    ql.push(len);
    this.#counters.add(this.#c['nd6.queued']);
  }

  /** Neighbor slot i of dom resolved: send what waited on it. */
  #release(dom: number, nb: NeighborCache, i: number): void {
    const q = nb.queue[i];
    const ql = nb.queueLen[i];
    if (q === undefined || ql === undefined || q.length === 0) return;
    const pool = this.#link.pool;
    for (let k = 0; k < q.length; k++) {
      const pb = pool.buf(q[k]);
      for (let m = 0; m < 6; m++) pb[VNET_HDR_LEN + m] = nb.mac[i * 6 + m];
      if (this.#link.send(dom, pb, 0, ql[k])) {
        this.#counters.add(this.#c['nd6.released']);
        this.#counters.add(this.#c.forwarded6);
      }
      pool.free(q[k]);
    }
    q.length = 0;
    ql.length = 0;
  }

  /** Drop what waited on neighbor slot i (it never answered, or the session was reset). */
  #dropQueue(nb: NeighborCache, i: number): void {
    const q = nb.queue[i];
    if (q === undefined) return;
    for (let k = 0; k < q.length; k++) {
      this.#link.pool.free(q[k]);
      this.#drop('nd-unresolved');
    }
    q.length = 0;
    (nb.queueLen[i] as number[]).length = 0;
  }

  /** An ICMPv6 error in transit: passed to the other side when the packet it quotes belongs to a tracked connection. */
  #errorIn(p: Packet, n: number): void {
    const b = p.buf;
    const q = p.l4 + 8; // the quoted IPv6 header
    if (p.l4Len < 8 + IPV6_HLEN + 8) return this.#drop('icmp-error-malformed');
    const qProto = b[q + IP6_NEXT_HEADER]; // extension headers in quotes are not walked
    if (qProto !== NH_TCP && qProto !== NH_UDP && qProto !== NH_ICMPV6) return this.#drop('icmp-error-untracked');
    const ql4 = q + IPV6_HLEN;
    const qs = qProto === NH_ICMPV6 ? getU16(b, ql4 + 4) : getU16(b, ql4);
    const qd = qProto === NH_ICMPV6 ? qs : getU16(b, ql4 + 2);
    // The quoted packet went from its source to its destination; the error comes back: look it up from the quoted destination's side.
    const ref = this.ct.lookup(qProto, p.dom, b, q + IP6_DST, qd, q + IP6_SRC, qs);
    if (ref < 0) return this.#drop('icmp-error-untracked');
    const c = this.ct.conn(ref >>> 1);
    this.#counters.add(this.#c['icmp6.error-forwarded']);
    this.#emit(p, n, (ref & 1) === 0 ? c.outDom : c.inDom, undefined, 0);
  }

  /**
   * A reject verdict, as for IPv4: TCP gets a reset, UDP ICMPv6 port
   * unreachable, an echo request administratively prohibited.
   */
  #reject(p: Packet, n: number): void {
    if (p.proto !== NH_TCP) {
      this.#error(p, n, ICMP6_DEST_UNREACH, p.proto === NH_UDP ? ICMP6_UNREACH_PORT : ICMP6_UNREACH_ADMIN, 0);
      return this.#drop('rejected');
    }
    if ((p.tcpFlags & BARE_SYN_MASK) !== TCP_SYN) return this.#drop('tcp-new-not-syn');
    const link = this.#link;
    const dom = p.dom;
    const frameLen = ETH_HLEN + IPV6_HLEN + 20;
    if (link.ownFrame(dom, frameLen)) {
      const b = p.buf;
      const o = link.own;
      const e = VNET_HDR_LEN;
      const oIp = e + ETH_HLEN;
      const t = oIp + IPV6_HLEN;
      this.#ethTo(o, b, VNET_HDR_LEN, dom);
      setU32(o, oIp, 0x60000000);
      setU16(o, oIp + IP6_PAYLOAD_LENGTH, 20);
      o[oIp + IP6_NEXT_HEADER] = NH_TCP;
      o[oIp + IP6_HOP_LIMIT] = 64;
      for (let k = 0; k < 16; k++) {
        o[oIp + IP6_SRC + k] = b[IP6 + IP6_DST + k]; // from the address it tried
        o[oIp + IP6_DST + k] = b[IP6 + IP6_SRC + k];
      }
      setU16(o, t, p.dport);
      setU16(o, t + 2, p.sport);
      setU32(o, t + 4, 0);
      const seq = (b[p.l4 + 4] * 0x1000000 + ((b[p.l4 + 5] << 16) | (b[p.l4 + 6] << 8) | b[p.l4 + 7])) + 1;
      setU32(o, t + 8, seq >>> 0);
      o[t + 12] = 5 << 4;
      o[t + 13] = TCP_RST | TCP_ACK_FLAG;
      setU16(o, t + 14, 0);
      setU32(o, t + 16, 0);
      setU16(o, t + 16, ~fold(sum(o, t, 20, pseudoSum6At(o, oIp, NH_TCP, 20))) & 0xffff);
      if (link.sendOwn(dom, frameLen)) this.#counters.add(this.#c['tcp6.reset-sent']);
    }
    this.#drop('rejected');
  }

  /** Ethernet header of a frame back to the sender of the frame at b[eth]. */
  #ethTo(o: Uint8Array, b: Uint8Array, eth: number, dom: number): void {
    const e = VNET_HDR_LEN;
    for (let m = 0; m < 6; m++) o[e + m] = b[eth + 6 + m];
    writeMacBytes(o, e + 6, this.#link.macs[dom]);
    o[e + 12] = ETHERTYPE_IPV6 >>> 8;
    o[e + 13] = ETHERTYPE_IPV6 & 0xff;
  }

  /**
   * Send an ICMPv6 error about p back to its source (from the router's
   * address in p.dom), quoting as much as fits in 1280 bytes. Never about an
   * ICMPv6 error (callers pass only new traffic); rate-limited.
   */
  #error(p: Packet, n: number, type: number, code: number, param: number): void {
    if (p.proto === NH_ICMPV6 && p.icmpType >= 0 && p.icmpType < 128) return;
    this.#errorAbout(p.dom, p.buf, VNET_HDR_LEN, n, type, code, param);
  }

  /**
   * Send an ICMPv6 error into dom about the packet of n bytes whose frame
   * starts at b[eth] (Ethernet header, then IPv6): to its source and its
   * sender's MAC, rate-limited. Returns whether it was sent.
   */
  #errorAbout(dom: number, b: Uint8Array, eth: number, n: number, type: number, code: number, param: number): boolean {
    if (!this.#errBucket.admit(0, this.now)) {
      this.#counters.add(this.#c['icmp6.error-rate-limited']);
      return false;
    }
    const v6 = this.#v6[dom] as Ipv6DomainConfig;
    const link = this.#link;
    const quote = Math.min(n, 1280 - IPV6_HLEN - 8);
    const frameLen = ETH_HLEN + IPV6_HLEN + 8 + quote;
    if (!link.ownFrame(dom, frameLen)) return false;
    const ip = eth + ETH_HLEN;
    const o = link.own;
    const oIp = VNET_HDR_LEN + ETH_HLEN;
    const t = oIp + IPV6_HLEN;
    this.#ethTo(o, b, eth, dom);
    const len = writeIcmp6Error(o, t, type, code, param, b, ip, quote);
    setU32(o, oIp, 0x60000000);
    setU16(o, oIp + IP6_PAYLOAD_LENGTH, len);
    o[oIp + IP6_NEXT_HEADER] = NH_ICMPV6;
    o[oIp + IP6_HOP_LIMIT] = 64;
    for (let k = 0; k < 16; k++) {
      o[oIp + IP6_SRC + k] = v6.address[k];
      o[oIp + IP6_DST + k] = b[ip + IP6_SRC + k];
    }
    icmp6SetChecksum(o, oIp, t, len);
    if (!link.sendOwn(dom, frameLen)) return false;
    this.#counters.add(this.#c['icmp6.error-sent']);
    return true;
  }

  /** A neighbor solicitation for the address at buf[off] into domain dom (from the router's address there). */
  #sendNs(dom: number, buf: Uint8Array, off: number): void {
    const v6 = this.#v6[dom] as Ipv6DomainConfig;
    const link = this.#link;
    const frameLen = ETH_HLEN + IPV6_HLEN + 32;
    if (!link.ownFrame(dom, frameLen)) return;
    const o = link.own;
    const e = VNET_HDR_LEN;
    const oIp = e + ETH_HLEN;
    const t = oIp + IPV6_HLEN;
    const sn = solicitedNode(buf, off, this.#sn, 0);
    o[e] = 0x33; o[e + 1] = 0x33; o[e + 2] = sn[12]; o[e + 3] = sn[13]; o[e + 4] = sn[14]; o[e + 5] = sn[15];
    writeMacBytes(o, e + 6, link.macs[dom]);
    o[e + 12] = ETHERTYPE_IPV6 >>> 8;
    o[e + 13] = ETHERTYPE_IPV6 & 0xff;
    writeNeighborSolicit(o, t, buf, off, link.macs[dom], 0);
    setU32(o, oIp, 0x60000000);
    setU16(o, oIp + IP6_PAYLOAD_LENGTH, 32);
    o[oIp + IP6_NEXT_HEADER] = NH_ICMPV6;
    o[oIp + IP6_HOP_LIMIT] = 255;
    const src = isLinkLocalIpv6(buf, off) ? v6.linkLocal : v6.address;
    for (let k = 0; k < 16; k++) {
      o[oIp + IP6_SRC + k] = src[k];
      o[oIp + IP6_DST + k] = sn[k];
    }
    icmp6SetChecksum(o, oIp, t, 32);
    if (link.sendOwn(dom, frameLen)) this.#counters.add(this.#c['nd6.ns-sent']);
  }

  /**
   * A neighbor's MAC (6 bytes at mac[mOff]) for the address at buf[off] in dom,
   * from an NS to us (create: true) or an NA (only updates an entry we have:
   * unsolicited advertisements cannot fill the cache).
   */
  learn(dom: number, buf: Uint8Array, off: number, mac: Uint8Array, mOff: number, create: boolean): void {
    const v6 = this.#v6[dom] as Ipv6DomainConfig;
    if (isMulticastIpv6(buf, off) || !(isLinkLocalIpv6(buf, off) || inPrefix6(buf, off, v6.network, v6.prefix) ||
      (v6.gateway !== null && ipv6Equals(buf, off, v6.gateway, 0)))) return;
    const nb = this.neighbors[dom];
    const i = create ? nb.insert(buf, off, NB_RESOLVING, this.now) : nb.find(buf, off);
    if (i < 0) return;
    nb.learn(i, mac, mOff, this.now, this.cfg.arp.timeoutMs);
    this.#counters.add(this.#c['nd6.learned']);
    this.#release(dom, nb, i);
  }

  /** Timers: neighbor retries and failures, the connection sweep (the caller calls it once a second for the sweep). */
  tick(now: number, sweep: boolean): void {
    this.now = now;
    for (let dom = 0; dom < this.neighbors.length; dom++) {
      const nb = this.neighbors[dom];
      if (nb.pending === 0) continue;
      for (let i = 0; i < nb.size; i++) {
        const st = nb.state[i];
        if (nb.tries[i] === 0 || (st !== NB_RESOLVING && st !== NB_STALE) || nb.nextTry[i] > now) continue;
        if (nb.tries[i] >= this.cfg.arp.maxTries) {
          if (st === NB_RESOLVING) this.#dropQueue(nb, i);
          nb.state[i] = NB_FAILED;
          nb.tries[i] = 0;
          nb.pending = Math.max(0, nb.pending - 1);
          continue;
        }
        nb.tries[i]++;
        nb.nextTry[i] = now + this.cfg.arp.retryMs;
        const w = i * 4;
        // The address from its key words, into the scratch buffer.
        const a = this.#sn;
        for (let k = 0; k < 4; k++) {
          const v = nb.keys[w + k];
          a[4 * k] = v >>> 24; a[4 * k + 1] = (v >>> 16) & 0xff; a[4 * k + 2] = (v >>> 8) & 0xff; a[4 * k + 3] = v & 0xff;
        }
        this.#sendNsFromScratch(dom);
      }
    }
    if (sweep) this.#counters.add(this.#c['conntrack6.expired'], this.ct.sweep(now));
    this.reasm.expire(now);
    const timedOut = this.reasm.stats.timedOut; // offer() expires datagrams too
    this.#counters.add(this.#c['frag6.timeout'], timedOut - this.#timedOut);
    this.#timedOut = timedOut;
  }

  readonly #target = new Uint8Array(16);
  #sendNsFromScratch(dom: number): void {
    this.#target.set(this.#sn);
    this.#sendNs(dom, this.#target, 0);
  }

  /**
   * A new policy (reconfigure): remove the IPv6 connections it no longer
   * permits (as for IPv4), cap the others' expiry at the new timeouts.
   * Returns how many were removed.
   */
  reload(policy: Policy): number {
    const stale: Conn6[] = [];
    const dst = this.#target;
    for (const c of this.ct.live()) {
      for (let k = 0; k < 4; k++) {
        const v = c.dst6[k];
        dst[4 * k] = v >>> 24; dst[4 * k + 1] = (v >>> 16) & 0xff; dst[4 * k + 2] = (v >>> 8) & 0xff; dst[4 * k + 3] = v & 0xff;
      }
      const v = policy.peek6(c.inDom, c.outDom, c.proto, dst, 0, c.oDport);
      if (v === POLICY_DROP || v === POLICY_REJECT) stale.push(c);
    }
    for (const c of stale) this.ct.remove(c);
    for (const c of this.ct.live()) c.expires = Math.min(c.expires, this.now + connTimeout(c, this.cfg.conntrack));
    return stale.length;
  }

  /** The domain's session was reset: forget its neighbors. */
  reset(dom: number): void {
    const nb = this.neighbors[dom];
    for (let i = 0; i < nb.size; i++) if (nb.queued(i) > 0) this.#dropQueue(nb, i);
    nb.clear();
  }
}
