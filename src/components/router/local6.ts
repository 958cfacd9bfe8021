// The router's own IPv6 in the domains that have `address6` (config6.ts):
// validation of every IPv6 frame (fixed header, the bounded extension-header
// walk of net/ipv6.ts, sources), Neighbor Discovery for the router's
// addresses (the global address6 and the link-local fe80:: EUI-64 address:
// NS answered with NA), ICMPv6 echo to those addresses answered (to its
// address6 in another domain only from a domain that may open connections
// there, as for IPv4; nothing else to those is forwarded), and router
// advertisements (solicited by RS, and unsolicited every interval-s, jittered)
// with the domain's /64 as the SLAAC prefix, M/O off, RDNSS with `ra.dns`.
//
// A unicast packet for any other address goes to forward6.ts; neighbors
// learned from NS and NA go to its neighbor cache. Every drop is counted
// under its reason. Frames are built in the link's private `own` buffer; nothing is
// allocated per packet.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import { inPrefix6, ipv6Equals, isLinkLocalIpv6, isMartianSourceIpv6, isMulticastIpv6, isUnspecifiedIpv6 } from '../../net/addr6.ts';
import { setU16, setU32 } from '../../net/bytes.ts';
import { ETH_HLEN, ETHERTYPE_IPV6, writeMacBytes } from '../../net/ethernet.ts';
import {
  checkNd, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, icmp6ChecksumOk, icmp6SetChecksum, ND_NA_FLAG_OVERRIDE, ND_NA_FLAG_ROUTER,
  ND_NA_FLAG_SOLICITED, ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT, ND_OK, ND_OPT_SOURCE_LINKADDR, ND_OPT_TARGET_LINKADDR, ND_ROUTER_SOLICIT, ndFindOption,
  ndLinkAddr, type RouterAdvertSpec, writeNeighborAdvert, writeRouterAdvert,
} from '../../net/icmpv6.ts';
import {
  checkIpv6, IP6_DST, IP6_ERR_EXT_TRUNCATED, IP6_ERROR_NAMES, IP6_HOP_LIMIT, IP6_NEXT_HEADER, IP6_PAYLOAD_LENGTH, IP6_SRC, IPV6_HLEN, NH_ICMPV6,
  newIpv6Chain, walkIpv6,
} from '../../net/ipv6.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';
import type { RouterConfig } from './config.ts';
import type { Ipv6DomainConfig } from './config6.ts';
import type { DropReason, Drops } from './drops.ts';
import { type Forward6, routedVia } from './forward6.ts';
import type { Link } from './link.ts';
import { L3, type Packet } from './packet.ts';
import { POLICY_ACCEPT } from './policy.ts';

export const COUNTERS6 = [
  'icmp6.echo-reply-sent', 'frag6.atomic', 'nd6.ns-received', 'nd6.na-sent', 'nd6.na-received', 'nd6.rs-received', 'nd6.ra-sent',
] as const;

/** RFC 4861 10: solicited multicast RAs at least this far apart (MIN_DELAY_BETWEEN_RAS). */
export const RA_MIN_DELAY_MS = 3000;
/** The first few unsolicited RAs come at most this far apart (MAX_INITIAL_RTR_ADVERT_INTERVAL, _ADVERTISEMENTS). */
const RA_INITIAL_MS = 16000;
const RA_INITIAL_COUNT = 3;

const copyBytes = Buffer.prototype.copy;
const ALL_NODES = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const IP6 = L3;
const ICMP6 = L3 + IPV6_HLEN;

/** Copy 16 bytes (an address) without a view. */
function copy16(src: Uint8Array, s: number, dst: Uint8Array, d: number): void {
  for (let i = 0; i < 16; i++) dst[d + i] = src[s + i];
}

/** The fixed IPv6 header at off (traffic class and flow label 0), addresses copied from src[s] and dst[d]. */
function ip6Header(o: Uint8Array, off: number, plen: number, hopLimit: number, src: Uint8Array, s: number, dst: Uint8Array, d: number): void {
  setU32(o, off, 0x60000000);
  setU16(o, off + IP6_PAYLOAD_LENGTH, plen);
  o[off + IP6_NEXT_HEADER] = NH_ICMPV6;
  o[off + IP6_HOP_LIMIT] = hopLimit;
  copy16(src, s, o, off + IP6_SRC);
  copy16(dst, d, o, off + IP6_DST);
}

/** Is the address at buf[off] ff02::1, ff02::2, or the solicited-node address of `a` or `b`? */
function localMulticast(buf: Uint8Array, off: number, a: Uint8Array, b: Uint8Array): boolean {
  if (buf[off] !== 0xff || buf[off + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (buf[off + i] !== 0) return false;
  if (buf[off + 11] === 0 && buf[off + 12] === 0 && buf[off + 13] === 0 && buf[off + 14] === 0) {
    return buf[off + 15] === 1 || buf[off + 15] === 2;
  }
  if (buf[off + 11] !== 1 || buf[off + 12] !== 0xff) return false;
  const x = buf[off + 13];
  const y = buf[off + 14];
  const z = buf[off + 15];
  return (x === a[13] && y === a[14] && z === a[15]) || (x === b[13] && y === b[14] && z === b[15]);
}

export class Local6 {
  cfg: RouterConfig;
  readonly #link: Link;
  readonly #drops: Drops;
  readonly #counters: Counters;
  readonly #c: Record<typeof COUNTERS6[number], number>;
  readonly #chain = newIpv6Chain();
  /** Per domain: when the next unsolicited RA is due, when the last multicast RA went out, a solicited one pending. */
  readonly #nextRa: Float64Array;
  readonly #lastRa: Float64Array;
  readonly #raCount: Int32Array;
  readonly #raDue: Float64Array;
  readonly #random: () => number;
  readonly #raSpec: (RouterAdvertSpec | undefined)[];
  readonly #fwd: Forward6;

  constructor(cfg: RouterConfig, link: Link, drops: Drops, counters: Counters, fwd: Forward6, now: number, random: () => number = Math.random) {
    this.cfg = cfg;
    this.#fwd = fwd;
    this.#link = link;
    this.#drops = drops;
    this.#counters = counters;
    const c = {} as Record<typeof COUNTERS6[number], number>;
    for (const k of COUNTERS6) c[k] = counters.define(k);
    this.#c = c;
    const n = cfg.domains.length;
    this.#nextRa = new Float64Array(n).fill(now); // the first RA goes out on the first tick
    this.#lastRa = new Float64Array(n).fill(-Infinity);
    this.#raCount = new Int32Array(n);
    this.#raDue = new Float64Array(n).fill(Infinity);
    this.#random = random;
    this.#raSpec = this.#specs(cfg);
  }

  /** A new config (reconfigure): the RA contents follow it; addresses cannot change at run time (structuralChange). */
  reconfigure(cfg: RouterConfig): void {
    this.cfg = cfg;
    const specs = this.#specs(cfg);
    for (let i = 0; i < specs.length; i++) this.#raSpec[i] = specs[i];
  }

  #specs(cfg: RouterConfig): (RouterAdvertSpec | undefined)[] {
    return cfg.domains.map((d) => {
      const v6 = d.ipv6;
      if (v6 === undefined || v6.ra === null) return undefined;
      const ra = v6.ra;
      return {
        routerLifetime: ra.lifetimeS,
        curHopLimit: 64,
        mtu: 0,
        prefixes: [{ network: v6.network, length: v6.prefix, validLifetime: 86400, preferredLifetime: 14400 }],
        dns: ra.dns,
        dnsLifetime: Math.min(0xffffffff, 3 * ra.intervalS),
        managed: false,
        other: false,
      };
    });
  }

  #drop(r: DropReason): void {
    this.#drops.drop(this.#drops.id[r]);
  }

  /** An IPv6 frame (EtherType 0x86dd) in p, on a domain with address6. */
  receive(p: Packet, v6: Ipv6DomainConfig, now: number): void {
    const b = p.buf;
    const n = checkIpv6(b, IP6, p.len - IP6);
    if (n < 0) return this.#drop(IP6_ERROR_NAMES[n] as DropReason);
    const unspecSrc = isUnspecifiedIpv6(b, IP6 + IP6_SRC);
    if ((isMartianSourceIpv6(b, IP6 + IP6_SRC) && !unspecSrc) || ipv6Equals(b, IP6 + IP6_SRC, v6.address, 0) ||
      ipv6Equals(b, IP6 + IP6_SRC, v6.linkLocal, 0)) return this.#drop('ip6-bad-source');
    // A domain without the IPv6 default route only speaks for its own prefix (and its link).
    if (v6.gateway === null && !unspecSrc && !isLinkLocalIpv6(b, IP6 + IP6_SRC) && !inPrefix6(b, IP6 + IP6_SRC, v6.network, v6.prefix) &&
      routedVia(v6, b, IP6 + IP6_SRC) === null) {
      return this.#drop('ip6-spoofed-source');
    }
    // The blocklist's IPv6 entries: on arrival, tracked connections and the router itself included.
    if (this.#fwd.policy().blocked6(p.dom, b, IP6 + IP6_SRC, now)) return this.#drop('blocklisted');
    const w = walkIpv6(b, IP6, n, this.#chain);
    if (w < 0) {
      // RFC 7112: a first fragment whose header chain is cut short is a fragment without its headers.
      const cut = w === IP6_ERR_EXT_TRUNCATED && this.#chain.fragOff >= 0 && this.#chain.fragOffset === 0 && this.#chain.fragMore;
      return this.#drop(cut ? 'ip6-frag-incomplete-chain' : IP6_ERROR_NAMES[w] as DropReason);
    }
    const dstOff = IP6 + IP6_DST;
    const toUs = ipv6Equals(b, dstOff, v6.address, 0) || ipv6Equals(b, dstOff, v6.linkLocal, 0);
    const multicast = isMulticastIpv6(b, dstOff);
    const ch = this.#chain;
    if (!toUs && !(multicast && localMulticast(b, dstOff, v6.address, v6.linkLocal))) {
      if (multicast) return this.#drop('ip6-multicast');
      if (unspecSrc) return this.#drop('ip6-bad-source');
      // The router's address6 in another domain is the router's, not a host to forward to.
      const doms = this.cfg.domains;
      for (let i = 0; i < doms.length; i++) {
        const o = doms[i].ipv6;
        if (i !== p.dom && o !== undefined && ipv6Equals(b, dstOff, o.address, 0)) return this.#toOtherDomain(p, n, i);
      }
      if (ch.fragOff < 0) return this.#fwd.forward(p, n, ch.proto, ch.l4Off);
      if (ch.fragOffset !== 0 || ch.fragMore) return this.#fwd.fragmentIn(p, n, ch);
      // An atomic fragment (offset 0, no more): a whole packet, handled as one (RFC 6946), forwarded as it is.
      this.#counters.add(this.#c['frag6.atomic']);
      return this.#fwd.forward(p, n, ch.proto, ch.l4Off);
    }
    if ((b[1] & 0x7f) !== 0) return this.#drop('vnet-bad-gso'); // nothing the router itself takes is a GSO frame
    if (ch.fragOff >= 0 && (ch.fragOffset !== 0 || ch.fragMore)) return this.#drop('ip6-fragment');
    if (ch.proto !== NH_ICMPV6) return this.#drop('to-router');
    const l4 = IP6 + ch.l4Off;
    const l4Len = n - ch.l4Off;
    if (l4Len < 8) return this.#drop('icmp6-truncated');
    if (!icmp6ChecksumOk(b, IP6, l4, l4Len)) return this.#drop('icmp6-bad-checksum');
    const type = b[l4];
    if (type === ICMP6_ECHO_REQUEST) {
      if (multicast || unspecSrc) return this.#drop('ip6-multicast');
      return this.#echoReply(p, l4, l4Len);
    }
    if (type === ND_NEIGHBOR_SOLICIT || type === ND_NEIGHBOR_ADVERT || type === ND_ROUTER_SOLICIT) {
      // ND messages must come straight from the link: no extension headers in the way.
      if (ch.count !== 0) return this.#drop('nd-invalid');
      const r = checkNd(b, IP6, l4, l4Len);
      if (r !== ND_OK) return this.#drop('nd-invalid');
      if (type === ND_NEIGHBOR_SOLICIT) return this.#nsIn(p, v6, l4, l4Len, unspecSrc, multicast);
      if (type === ND_ROUTER_SOLICIT) return this.#rsIn(p, l4, l4Len, unspecSrc, now);
      // A neighbor advertisement: someone claiming our address is a conflict; others are noted (no neighbor cache: nothing is forwarded yet).
      if (ipv6Equals(b, l4 + 8, v6.address, 0) || ipv6Equals(b, l4 + 8, v6.linkLocal, 0)) return this.#drop('nd-address-conflict');
      this.#counters.add(this.#c['nd6.na-received']);
      const tlla = ndLinkAddr(b, l4, l4Len, ND_OPT_TARGET_LINKADDR);
      if (tlla >= 0 && (b[l4 + tlla] & 1) === 0) this.#fwd.learn(p.dom, b, l4 + 8, b, l4 + tlla, false);
      return;
    }
    if (unspecSrc) return this.#drop('ip6-bad-source');
    return this.#drop('icmp6-unsupported-type');
  }

  /**
   * A packet for the router's address6 in domain `other` (not p.dom): as for
   * IPv4, an echo request is answered only from a domain that may open
   * connections into that one (the Linux reference does the same); the rest
   * is dropped (to-router-other-domain).
   */
  #toOtherDomain(p: Packet, n: number, other: number): void {
    const b = p.buf;
    const ch = this.#chain;
    if ((b[1] & 0x7f) !== 0) return this.#drop('vnet-bad-gso');
    if (ch.fragOff >= 0) return this.#drop('ip6-fragment');
    if (ch.proto === NH_ICMPV6) {
      const l4 = IP6 + ch.l4Off;
      const l4Len = n - ch.l4Off;
      if (l4Len < 8) return this.#drop('icmp6-truncated');
      if (!icmp6ChecksumOk(b, IP6, l4, l4Len)) return this.#drop('icmp6-bad-checksum');
      if (b[l4] === ICMP6_ECHO_REQUEST && b[l4 + 1] === 0 &&
        this.#fwd.policy().decide6(p.dom, other, NH_ICMPV6, b, IP6 + IP6_DST, 0) === POLICY_ACCEPT) return this.#echoReply(p, l4, l4Len);
    }
    return this.#drop('to-router-other-domain');
  }

  #nsIn(p: Packet, v6: Ipv6DomainConfig, l4: number, l4Len: number, unspecSrc: boolean, multicast: boolean): void {
    const b = p.buf;
    this.#counters.add(this.#c['nd6.ns-received']);
    const target = l4 + 8;
    if (!ipv6Equals(b, target, v6.address, 0) && !ipv6Equals(b, target, v6.linkLocal, 0)) return this.#drop('nd-not-for-us');
    const slla = ndLinkAddr(b, l4, l4Len, ND_OPT_SOURCE_LINKADDR);
    // DAD (unspecified source): to the solicited-node address, no source link-layer option (RFC 4861 7.1.1).
    if (unspecSrc && (!multicast || ndFindOption(b, l4, l4Len, ND_OPT_SOURCE_LINKADDR) >= 0)) return this.#drop('nd-invalid');
    if (slla >= 0 && (b[l4 + slla] & 1) !== 0) return this.#drop('nd-invalid');
    if (slla >= 0) this.#fwd.learn(p.dom, b, IP6 + IP6_SRC, b, l4 + slla, true);
    const link = this.#link;
    const dom = p.dom;
    const frameLen = ETH_HLEN + IPV6_HLEN + 32;
    if (!link.ownFrame(dom, frameLen)) return;
    const o = link.own;
    const e = VNET_HDR_LEN;
    const oIp = e + ETH_HLEN;
    const oL4 = oIp + IPV6_HLEN;
    if (unspecSrc) { // answer a duplicate address detection to all nodes: the address is taken
      o[e] = 0x33; o[e + 1] = 0x33; o[e + 2] = 0; o[e + 3] = 0; o[e + 4] = 0; o[e + 5] = 1;
    } else {
      const m = slla >= 0 ? l4 + slla : VNET_HDR_LEN + 6;
      for (let i = 0; i < 6; i++) o[e + i] = b[m + i];
    }
    writeMacBytes(o, e + 6, link.macs[dom]);
    o[e + 12] = ETHERTYPE_IPV6 >>> 8;
    o[e + 13] = ETHERTYPE_IPV6 & 0xff;
    const flags = ND_NA_FLAG_ROUTER | ND_NA_FLAG_OVERRIDE | (unspecSrc ? 0 : ND_NA_FLAG_SOLICITED);
    writeNeighborAdvert(o, oL4, flags, b, target, link.macs[dom], 0);
    // From the address asked about; to the asker (or all nodes for DAD).
    if (unspecSrc) ip6Header(o, oIp, 32, 255, b, target, ALL_NODES, 0);
    else ip6Header(o, oIp, 32, 255, b, target, b, IP6 + IP6_SRC);
    icmp6SetChecksum(o, oIp, oL4, 32);
    if (link.sendOwn(dom, frameLen)) this.#counters.add(this.#c['nd6.na-sent']);
  }

  #rsIn(p: Packet, l4: number, l4Len: number, unspecSrc: boolean, now: number): void {
    const b = p.buf;
    const dom = p.dom;
    this.#counters.add(this.#c['nd6.rs-received']);
    // RFC 4861 6.1.1: no source link-layer option from the unspecified address.
    if (unspecSrc && ndFindOption(b, l4, l4Len, ND_OPT_SOURCE_LINKADDR) >= 0) return this.#drop('nd-invalid');
    if (this.#raSpec[dom] === undefined) return this.#drop('nd-no-ra');
    // Answered with a multicast RA, at most one per RA_MIN_DELAY_MS (later solicitations share the next one).
    const at = Math.max(now, this.#lastRa[dom] + RA_MIN_DELAY_MS);
    if (at < this.#raDue[dom]) this.#raDue[dom] = at;
    if (at <= now) this.#sendRa(dom, now);
  }

  /** Timers: unsolicited RAs (jittered), and delayed solicited ones. */
  tick(now: number): void {
    for (let dom = 0; dom < this.#raSpec.length; dom++) {
      const spec = this.#raSpec[dom];
      if (spec === undefined) continue;
      if (now >= this.#nextRa[dom] || now >= this.#raDue[dom]) this.#sendRa(dom, now);
    }
  }

  #sendRa(dom: number, now: number): void {
    const spec = this.#raSpec[dom];
    const v6 = this.cfg.domains[dom].ipv6;
    if (spec === undefined || v6 === undefined || v6.ra === null) return;
    this.#lastRa[dom] = now;
    this.#raDue[dom] = Infinity;
    const count = ++this.#raCount[dom];
    let interval = v6.ra.intervalS * 1000;
    if (count <= RA_INITIAL_COUNT) interval = Math.min(interval, RA_INITIAL_MS);
    // Jitter: uniformly in [0.75, 1] of the interval (RFC 4861 6.2.4: MinRtrAdvInterval = 0.75 * Max by default).
    this.#nextRa[dom] = now + interval * (0.75 + 0.25 * this.#random());
    const link = this.#link;
    const raLen = 16 + 8 + spec.prefixes.length * 32 + (spec.dns.length > 0 ? 8 + 16 * spec.dns.length : 0);
    const frameLen = ETH_HLEN + IPV6_HLEN + raLen;
    if (!link.ownFrame(dom, frameLen)) return;
    const o = link.own;
    const e = VNET_HDR_LEN;
    const oIp = e + ETH_HLEN;
    const oL4 = oIp + IPV6_HLEN;
    o[e] = 0x33; o[e + 1] = 0x33; o[e + 2] = 0; o[e + 3] = 0; o[e + 4] = 0; o[e + 5] = 1;
    writeMacBytes(o, e + 6, link.macs[dom]);
    o[e + 12] = ETHERTYPE_IPV6 >>> 8;
    o[e + 13] = ETHERTYPE_IPV6 & 0xff;
    const len = writeRouterAdvert(o, oL4, spec, link.macs[dom], 0);
    // RAs come from the link-local address (RFC 4861 4.2), hop limit 255.
    ip6Header(o, oIp, len, 255, v6.linkLocal, 0, ALL_NODES, 0);
    icmp6SetChecksum(o, oIp, oL4, len);
    if (link.sendOwn(dom, frameLen)) this.#counters.add(this.#c['nd6.ra-sent']);
  }

  #echoReply(p: Packet, l4: number, l4Len: number): void {
    const link = this.#link;
    const dom = p.dom;
    const b = p.buf;
    const frameLen = ETH_HLEN + IPV6_HLEN + l4Len;
    if (!link.ownFrame(dom, frameLen)) return;
    const o = link.own;
    const e = VNET_HDR_LEN;
    const oIp = e + ETH_HLEN;
    const oL4 = oIp + IPV6_HLEN;
    for (let i = 0; i < 6; i++) o[e + i] = b[e + 6 + i]; // to the request's source MAC
    writeMacBytes(o, e + 6, link.macs[dom]);
    o[e + 12] = ETHERTYPE_IPV6 >>> 8;
    o[e + 13] = ETHERTYPE_IPV6 & 0xff;
    // From the address the request was for; extension headers are not echoed.
    ip6Header(o, oIp, l4Len, 64, b, IP6 + IP6_DST, b, IP6 + IP6_SRC);
    copyBytes.call(b, o, oL4, l4, l4 + l4Len);
    o[oL4] = ICMP6_ECHO_REPLY;
    icmp6SetChecksum(o, oIp, oL4, l4Len);
    if (link.sendOwn(dom, frameLen)) this.#counters.add(this.#c['icmp6.echo-reply-sent']);
  }
}
