// ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861).
//
// The checksum covers the IPv6 pseudo header (unlike ICMPv4). Errors quote as
// much of the offending packet as fits in the IPv6 minimum MTU (1280 bytes).
// Neighbor Discovery messages are valid only with hop limit 255 (they cannot
// have crossed a router) and code 0; options are walked with a bound, and an
// option of length 0 makes the whole message invalid (RFC 4861 4.6).
import { getU16, getU32, setU16, setU32 } from './bytes.ts';
import { fold, sum, pseudoSum6At } from './checksum.ts';
import { IP6_HOP_LIMIT, IPV6_HLEN, NH_ICMPV6 } from './ipv6.ts';

export const ICMP6_HLEN = 8;

export const ICMP6_DEST_UNREACH = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_PARAM_PROBLEM = 4;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
export const ND_ROUTER_SOLICIT = 133;
export const ND_ROUTER_ADVERT = 134;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_REDIRECT = 137;

// Destination unreachable codes.
export const ICMP6_UNREACH_NOROUTE = 0;
export const ICMP6_UNREACH_ADMIN = 1;
export const ICMP6_UNREACH_ADDR = 3;
export const ICMP6_UNREACH_PORT = 4;
export const ICMP6_UNREACH_POLICY = 5;
export const ICMP6_UNREACH_REJECT = 6;
// Time exceeded codes.
export const ICMP6_TIME_EXCEED_TRANSIT = 0;
export const ICMP6_TIME_EXCEED_REASSEMBLY = 1;
// Parameter problem codes.
export const ICMP6_PARAMPROB_HEADER = 0;
export const ICMP6_PARAMPROB_NEXTHEADER = 1;

// Neighbor Discovery option types.
export const ND_OPT_SOURCE_LINKADDR = 1;
export const ND_OPT_TARGET_LINKADDR = 2;
export const ND_OPT_PREFIX_INFORMATION = 3;
export const ND_OPT_MTU = 5;
export const ND_OPT_RDNSS = 25;

/** NA flags (first byte of the reserved word). */
export const ND_NA_FLAG_ROUTER = 0x80;
export const ND_NA_FLAG_SOLICITED = 0x40;
export const ND_NA_FLAG_OVERRIDE = 0x20;

/** Errors are never answered with errors (RFC 4443 2.4 e). */
export function icmp6IsError(type: number): boolean {
  return type < 128;
}

/** Does the ICMPv6 message (len bytes at l4) of the IPv6 packet at ip carry a correct checksum? */
export function icmp6ChecksumOk(buf: Uint8Array, ip: number, l4: number, len: number): boolean {
  return fold(sum(buf, l4, len, pseudoSum6At(buf, ip, NH_ICMPV6, len))) === 0xffff;
}

/** Compute and store the checksum of the ICMPv6 message (len bytes at l4) of the IPv6 packet at ip. */
export function icmp6SetChecksum(buf: Uint8Array, ip: number, l4: number, len: number): void {
  setU16(buf, l4 + 2, 0);
  setU16(buf, l4 + 2, ~fold(sum(buf, l4, len, pseudoSum6At(buf, ip, NH_ICMPV6, len))) & 0xffff);
}

// ---- Neighbor Discovery (hot path: no allocation) ---------------------------

export const ND_OK = 0;
export const ND_ERR_HOP_LIMIT = -1;
export const ND_ERR_CODE = -2;
export const ND_ERR_TRUNCATED = -3;
export const ND_ERR_OPTION = -4;
export const ND_ERR_TARGET = -5;

/** Fixed part of each ND message before its options. */
function ndFixedLength(type: number): number {
  switch (type) {
    case ND_ROUTER_SOLICIT: return 8;
    case ND_ROUTER_ADVERT: return 16;
    case ND_NEIGHBOR_SOLICIT: return 24;
    case ND_NEIGHBOR_ADVERT: return 24;
    case ND_REDIRECT: return 40;
    default: return -1;
  }
}

/**
 * Validate an ND message (RFC 4861 6.1, 7.1): hop limit 255, code 0, the fixed
 * part present, every option of non-zero length and inside the message, a
 * target that is not multicast (NS/NA). Returns ND_OK or a negative ND_ERR_*.
 * The checksum is checked separately (icmp6ChecksumOk).
 */
export function checkNd(buf: Uint8Array, ip: number, l4: number, len: number): number {
  if (buf[ip + IP6_HOP_LIMIT] !== 255) return ND_ERR_HOP_LIMIT;
  if (buf[l4 + 1] !== 0) return ND_ERR_CODE;
  const fixed = ndFixedLength(buf[l4]);
  if (fixed < 0 || len < fixed) return ND_ERR_TRUNCATED;
  if ((buf[l4] === ND_NEIGHBOR_SOLICIT || buf[l4] === ND_NEIGHBOR_ADVERT) && buf[l4 + 8] === 0xff) return ND_ERR_TARGET;
  for (let at = fixed, n = 0; at < len; n++) {
    if (at + 2 > len || n >= 64) return ND_ERR_OPTION;
    const olen = buf[l4 + at + 1] << 3;
    if (olen === 0 || at + olen > len) return ND_ERR_OPTION;
    at += olen;
  }
  return ND_OK;
}

/**
 * Offset (from l4) of the first option of `type` in a valid ND message, or -1.
 * Call only after checkNd returned ND_OK.
 */
export function ndFindOption(buf: Uint8Array, l4: number, len: number, type: number): number {
  for (let at = ndFixedLength(buf[l4]); at + 2 <= len; ) {
    const olen = buf[l4 + at + 1] << 3;
    if (olen === 0) return -1;
    if (buf[l4 + at] === type) return at;
    at += olen;
  }
  return -1;
}

/** The link-layer address option (source or target) of an ND message: offset of the 6 MAC bytes from l4, or -1. */
export function ndLinkAddr(buf: Uint8Array, l4: number, len: number, type: number): number {
  const at = ndFindOption(buf, l4, len, type);
  return at >= 0 && buf[l4 + at + 1] === 1 ? at + 2 : -1;
}

/**
 * Write a Neighbor Advertisement for `target` (16 bytes) with our MAC as the
 * target link-layer address option at l4. Returns its length (32). The caller
 * writes the IPv6 header and then icmp6SetChecksum.
 */
export function writeNeighborAdvert(buf: Uint8Array, l4: number, flags: number, target: Uint8Array, tOff: number, mac: Uint8Array, mOff: number): number {
  buf[l4] = ND_NEIGHBOR_ADVERT;
  buf[l4 + 1] = 0;
  setU16(buf, l4 + 2, 0);
  setU32(buf, l4 + 4, (flags & 0xff) * 0x1000000);
  buf.set(target.subarray(tOff, tOff + 16), l4 + 8);
  buf[l4 + 24] = ND_OPT_TARGET_LINKADDR;
  buf[l4 + 25] = 1;
  buf.set(mac.subarray(mOff, mOff + 6), l4 + 26);
  return 32;
}

/** Write a Neighbor Solicitation for `target` with our MAC as source link-layer address. Returns its length (32). */
export function writeNeighborSolicit(buf: Uint8Array, l4: number, target: Uint8Array, tOff: number, mac: Uint8Array, mOff: number): number {
  buf[l4] = ND_NEIGHBOR_SOLICIT;
  buf[l4 + 1] = 0;
  setU16(buf, l4 + 2, 0);
  setU32(buf, l4 + 4, 0);
  buf.set(target.subarray(tOff, tOff + 16), l4 + 8);
  buf[l4 + 24] = ND_OPT_SOURCE_LINKADDR;
  buf[l4 + 25] = 1;
  buf.set(mac.subarray(mOff, mOff + 6), l4 + 26);
  return 32;
}

export interface RouterAdvertSpec {
  /** Seconds this router is a default router (0: not one); at most 9000. */
  routerLifetime: number;
  /** Advertised hop limit for hosts (0: unspecified). */
  curHopLimit: number;
  /** The link MTU option (0: none). */
  mtu: number;
  /** On-link prefixes for SLAAC (16-byte network, length, lifetimes in seconds). */
  prefixes: readonly { network: Uint8Array; length: number; validLifetime: number; preferredLifetime: number }[];
  /** Recursive DNS servers (RFC 8106) and their lifetime. */
  dns: readonly Uint8Array[];
  dnsLifetime: number;
  /** Managed / other-config flags (DHCPv6): other = stateless DHCPv6 for DNS etc. */
  managed: boolean;
  other: boolean;
}

/** Write a Router Advertisement at l4 with our MAC as source link-layer address. Returns its length. */
export function writeRouterAdvert(buf: Uint8Array, l4: number, ra: RouterAdvertSpec, mac: Uint8Array, mOff: number): number {
  buf[l4] = ND_ROUTER_ADVERT;
  buf[l4 + 1] = 0;
  setU16(buf, l4 + 2, 0);
  buf[l4 + 4] = ra.curHopLimit;
  buf[l4 + 5] = (ra.managed ? 0x80 : 0) | (ra.other ? 0x40 : 0);
  setU16(buf, l4 + 6, ra.routerLifetime);
  setU32(buf, l4 + 8, 0); // reachable time: unspecified
  setU32(buf, l4 + 12, 0); // retrans timer: unspecified
  let at = 16;
  buf[l4 + at] = ND_OPT_SOURCE_LINKADDR;
  buf[l4 + at + 1] = 1;
  buf.set(mac.subarray(mOff, mOff + 6), l4 + at + 2);
  at += 8;
  if (ra.mtu > 0) {
    buf[l4 + at] = ND_OPT_MTU;
    buf[l4 + at + 1] = 1;
    setU16(buf, l4 + at + 2, 0);
    setU32(buf, l4 + at + 4, ra.mtu);
    at += 8;
  }
  for (const p of ra.prefixes) {
    buf[l4 + at] = ND_OPT_PREFIX_INFORMATION;
    buf[l4 + at + 1] = 4;
    buf[l4 + at + 2] = p.length;
    buf[l4 + at + 3] = 0xc0; // on-link, autonomous (SLAAC)
    setU32(buf, l4 + at + 4, p.validLifetime);
    setU32(buf, l4 + at + 8, p.preferredLifetime);
    setU32(buf, l4 + at + 12, 0);
    buf.set(p.network.subarray(0, 16), l4 + at + 16);
    at += 32;
  }
  if (ra.dns.length > 0) {
    buf[l4 + at] = ND_OPT_RDNSS;
    buf[l4 + at + 1] = 1 + 2 * ra.dns.length;
    setU16(buf, l4 + at + 2, 0);
    setU32(buf, l4 + at + 4, ra.dnsLifetime);
    let o = at + 8;
    for (const d of ra.dns) {
      buf.set(d.subarray(0, 16), l4 + o);
      o += 16;
    }
    at = o;
  }
  return at;
}

/** ICMPv6 echo identifier and sequence (the conntrack "ports" of ICMPv6 echo). */
export function icmp6EchoId(buf: Uint8Array, l4: number): number {
  return getU16(buf, l4 + 4);
}
export function icmp6EchoSeq(buf: Uint8Array, l4: number): number {
  return getU16(buf, l4 + 6);
}
/** The MTU of a Packet Too Big message. */
export function icmp6Mtu(buf: Uint8Array, l4: number): number {
  return getU32(buf, l4 + 4);
}

/**
 * Write an ICMPv6 error (type, code, the 4-byte parameter: MTU for Packet Too
 * Big, pointer for Parameter Problem) quoting `quoteLen` bytes of the offending
 * packet (from `quote`, which may be buf itself: then the bytes are moved).
 * Returns the message length. The quote is cut so that the whole error packet
 * fits in 1280 bytes.
 */
export function writeIcmp6Error(buf: Uint8Array, l4: number, type: number, code: number, param: number, quote: Uint8Array, qOff: number, qLen: number): number {
  const max = 1280 - IPV6_HLEN - ICMP6_HLEN;
  const n = Math.min(qLen, max);
  buf[l4] = type;
  buf[l4 + 1] = code;
  setU16(buf, l4 + 2, 0);
  setU32(buf, l4 + 4, param >>> 0);
  if (quote === buf) buf.copyWithin(l4 + ICMP6_HLEN, qOff, qOff + n);
  else buf.set(quote.subarray(qOff, qOff + n), l4 + ICMP6_HLEN);
  return ICMP6_HLEN + n;
}
