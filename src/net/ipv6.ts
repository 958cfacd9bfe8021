// IPv6 header (RFC 8200) and its extension-header chain.
//
//   0 version/traffic class/flow label (4 bytes)  4 payload length  6 next header
//   7 hop limit  8 source (16)  24 destination (16)  40 extension headers, then the upper layer
//
// A router must find the upper-layer header to apply policy, so it walks the
// extension headers; a hostile sender can make that chain long, truncated or
// looping. `walkIpv6` bounds the walk (at most IPV6_MAX_EXT headers and
// IPV6_MAX_CHAIN bytes), reports each malformation as a stable negative code
// named after Suricata's ipv6.* decoder events, and allocates nothing.
import { getU16, getU32, setU16, setU32 } from './bytes.ts';
import { formatIpv6, parseIpv6 } from './addr6.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const IPV6_HLEN = 40;

export const IP6_VTF = 0;
export const IP6_PAYLOAD_LENGTH = 4;
export const IP6_NEXT_HEADER = 6;
export const IP6_HOP_LIMIT = 7;
export const IP6_SRC = 8;
export const IP6_DST = 24;

// Next-header values (IANA protocol numbers).
export const NH_HOPOPTS = 0;
export const NH_TCP = 6;
export const NH_UDP = 17;
export const NH_IPV6 = 41;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AH = 51;
export const NH_ICMPV6 = 58;
export const NH_NONE = 59;
export const NH_DSTOPTS = 60;
export const NH_MOBILITY = 135;

export const IPV6_DEFAULT_HOP_LIMIT = 64;
/** The IPv6 minimum link MTU (RFC 8200 5): every link carries 1280-byte packets. */
export const IPV6_MIN_MTU = 1280;
/** At most this many extension headers are walked before the packet is refused. */
export const IPV6_MAX_EXT = 8;
/** ... and at most this many bytes of them (the first fragment must hold the whole chain, RFC 7112). */
export const IPV6_MAX_CHAIN = 1024;

// checkIpv6 / walkIpv6 results: >= 0 is a value, negative an error (drop reasons in the router).
export const IP6_ERR_TRUNCATED = -1; // ipv6.pkt_too_small / ipv6.trunc_pkt
export const IP6_ERR_VERSION = -2; // ipv6.wrong_ip_version
export const IP6_ERR_EXT_TRUNCATED = -3; // ipv6.trunc_exthdr
export const IP6_ERR_EXT_TOO_MANY = -4; // more than IPV6_MAX_EXT headers or IPV6_MAX_CHAIN bytes
export const IP6_ERR_EXT_DUPLICATE = -5; // ipv6.exthdr_dupl_*
export const IP6_ERR_EXT_ORDER = -6; // hop-by-hop not first (RFC 8200 4.1)
export const IP6_ERR_RH0 = -7; // ipv6.rh_type_0 (deprecated, RFC 5095)
export const IP6_ERR_FRAG_RESERVED = -8; // ipv6.fh_non_zero_reserved_field
export const IP6_ERR_FRAG_LENGTH = -9; // ipv6.frag_invalid_length
export const IP6_ERR_FRAG_HEADERS = -10; // the first fragment does not hold the whole chain (RFC 7112)

export const IP6_ERROR_NAMES: Readonly<Record<number, string>> = {
  [IP6_ERR_TRUNCATED]: 'ip6-truncated',
  [IP6_ERR_VERSION]: 'ip6-bad-version',
  [IP6_ERR_EXT_TRUNCATED]: 'ip6-ext-truncated',
  [IP6_ERR_EXT_TOO_MANY]: 'ip6-ext-chain-too-long',
  [IP6_ERR_EXT_DUPLICATE]: 'ip6-ext-duplicate',
  [IP6_ERR_EXT_ORDER]: 'ip6-ext-order',
  [IP6_ERR_RH0]: 'ip6-routing-type-0',
  [IP6_ERR_FRAG_RESERVED]: 'ip6-frag-reserved',
  [IP6_ERR_FRAG_LENGTH]: 'ip6-frag-bad-length',
  [IP6_ERR_FRAG_HEADERS]: 'ip6-frag-incomplete-chain',
};

/**
 * Validate the fixed header at off with `avail` bytes after it: version 6, the
 * header present, payload length within the frame (a jumbogram's 0 is refused:
 * no link here carries one). Returns 40 + payload length (the packet's length;
 * bytes past it are link padding) or a negative IP6_ERR_*.
 */
export function checkIpv6(buf: Uint8Array, off: number, avail: number): number {
  if (avail < IPV6_HLEN) return IP6_ERR_TRUNCATED;
  if (buf[off] >>> 4 !== 6) return IP6_ERR_VERSION;
  const plen = getU16(buf, off + IP6_PAYLOAD_LENGTH);
  if (IPV6_HLEN + plen > avail) return IP6_ERR_TRUNCATED;
  return IPV6_HLEN + plen;
}

export function ipv6PayloadLength(buf: Uint8Array, off: number): number {
  return getU16(buf, off + IP6_PAYLOAD_LENGTH);
}
export function ipv6NextHeader(buf: Uint8Array, off: number): number {
  return buf[off + IP6_NEXT_HEADER];
}
export function ipv6HopLimit(buf: Uint8Array, off: number): number {
  return buf[off + IP6_HOP_LIMIT];
}
export function ipv6FlowLabel(buf: Uint8Array, off: number): number {
  return getU32(buf, off) & 0xfffff;
}

/**
 * What walkIpv6 found, written into a caller-owned object (reused per packet):
 * the upper-layer protocol and where it starts, and the fragment header if any.
 */
export interface Ipv6Chain {
  /** Upper-layer protocol (NH_TCP, NH_UDP, NH_ICMPV6, NH_NONE, ...). */
  proto: number;
  /** Offset of the upper-layer header from the start of the IPv6 header. */
  l4Off: number;
  /** Offset of the "next header" byte that names proto (6 for no extension headers). */
  protoFieldOff: number;
  /** Extension headers walked. */
  count: number;
  /** A fragment header: its offset (-1: none), the fragment offset in bytes, more-fragments, identification. */
  fragOff: number;
  fragOffset: number;
  fragMore: boolean;
  fragId: number;
}

export function newIpv6Chain(): Ipv6Chain {
  return { proto: 0, l4Off: 0, protoFieldOff: 0, count: 0, fragOff: -1, fragOffset: 0, fragMore: false, fragId: 0 };
}

const BIT_HOP = 1;
const BIT_RH = 2;
const BIT_FH = 4;
const BIT_AH = 8;

/**
 * Walk the extension headers of the packet at off (total `len` bytes, as
 * checkIpv6 returned). Fills `out` and returns 0, or a negative IP6_ERR_*.
 * Destination options may appear twice (before a routing header and before
 * the upper layer, RFC 8200 4.1); any other repeat is refused. Unknown next
 * headers end the walk: `proto` is that value and the caller decides.
 */
export function walkIpv6(buf: Uint8Array, off: number, len: number, out: Ipv6Chain): number {
  let nh = buf[off + IP6_NEXT_HEADER];
  let field = IP6_NEXT_HEADER;
  let at = IPV6_HLEN;
  let seen = 0;
  let dstopts = 0;
  out.count = 0;
  out.fragOff = -1;
  out.fragOffset = 0;
  out.fragMore = false;
  out.fragId = 0;
  for (;;) {
    if (nh !== NH_HOPOPTS && nh !== NH_ROUTING && nh !== NH_FRAGMENT && nh !== NH_DSTOPTS && nh !== NH_AH) break;
    if (out.count === IPV6_MAX_EXT || at > IPV6_MAX_CHAIN) return IP6_ERR_EXT_TOO_MANY;
    // A non-first fragment carries no further headers we could read.
    if (out.fragOff >= 0 && out.fragOffset !== 0) break;
    if (at + 8 > len) return IP6_ERR_EXT_TRUNCATED;
    const p = off + at;
    let hlen: number;
    if (nh === NH_HOPOPTS) {
      if (out.count !== 0) return IP6_ERR_EXT_ORDER;
      if ((seen & BIT_HOP) !== 0) return IP6_ERR_EXT_DUPLICATE;
      seen |= BIT_HOP;
      hlen = (buf[p + 1] + 1) << 3;
    } else if (nh === NH_ROUTING) {
      if ((seen & BIT_RH) !== 0) return IP6_ERR_EXT_DUPLICATE;
      seen |= BIT_RH;
      if (buf[p + 2] === 0) return IP6_ERR_RH0;
      hlen = (buf[p + 1] + 1) << 3;
    } else if (nh === NH_DSTOPTS) {
      if (++dstopts > 2) return IP6_ERR_EXT_DUPLICATE;
      hlen = (buf[p + 1] + 1) << 3;
    } else if (nh === NH_AH) {
      if ((seen & BIT_AH) !== 0) return IP6_ERR_EXT_DUPLICATE;
      seen |= BIT_AH;
      hlen = (buf[p + 1] + 2) << 2;
    } else {
      if ((seen & BIT_FH) !== 0) return IP6_ERR_EXT_DUPLICATE;
      seen |= BIT_FH;
      hlen = 8;
      if (buf[p + 1] !== 0 || (buf[p + 3] & 0x06) !== 0) return IP6_ERR_FRAG_RESERVED;
      const fo = getU16(buf, p + 2);
      out.fragOff = at;
      out.fragOffset = fo & 0xfff8;
      out.fragMore = (fo & 1) !== 0;
      out.fragId = getU32(buf, p + 4);
      // Every fragment but the last carries a multiple of 8 bytes.
      if (out.fragMore && (len - at - 8) % 8 !== 0) return IP6_ERR_FRAG_LENGTH;
      if (out.fragOffset + (len - at - 8) > 65535) return IP6_ERR_FRAG_LENGTH;
    }
    if (at + hlen > len) return IP6_ERR_EXT_TRUNCATED;
    field = at;
    nh = buf[p];
    at += hlen;
    out.count++;
  }
  out.proto = nh;
  out.l4Off = at;
  out.protoFieldOff = field;
  return 0;
}

/** Write a 40-byte header at off. src and dst are 16-byte addresses. */
export function writeIpv6Header(
  buf: Uint8Array,
  off: number,
  payloadLength: number,
  nextHeader: number,
  hopLimit: number,
  src: Uint8Array,
  dst: Uint8Array,
  trafficClass = 0,
  flowLabel = 0,
): void {
  setU32(buf, off, (6 << 28) | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff));
  setU16(buf, off + IP6_PAYLOAD_LENGTH, payloadLength);
  buf[off + IP6_NEXT_HEADER] = nextHeader;
  buf[off + IP6_HOP_LIMIT] = hopLimit;
  buf.set(src.subarray(0, 16), off + IP6_SRC);
  buf.set(dst.subarray(0, 16), off + IP6_DST);
}

// ---- object form (tests, tools) --------------------------------------------

export interface Ipv6Packet {
  trafficClass: number;
  flowLabel: number;
  hopLimit: number;
  /** The next-header value of the fixed header. */
  nextHeader: number;
  src: string;
  dst: string;
  /** Everything after the fixed header (extension headers included), a view into the input. */
  payload: Uint8Array;
}

export type Ipv6Error = 'ip6-truncated' | 'ip6-bad-version';

export function parseIpv6Packet(buf: Uint8Array, off = 0, len = buf.length - off): ParseResult<Ipv6Packet, Ipv6Error> {
  const n = checkIpv6(buf, off, len);
  if (n === IP6_ERR_TRUNCATED) return fail('ip6-truncated');
  if (n === IP6_ERR_VERSION) return fail('ip6-bad-version');
  const w = getU32(buf, off);
  return ok({
    trafficClass: (w >>> 20) & 0xff,
    flowLabel: w & 0xfffff,
    hopLimit: buf[off + IP6_HOP_LIMIT],
    nextHeader: buf[off + IP6_NEXT_HEADER],
    src: formatIpv6(buf, off + IP6_SRC),
    dst: formatIpv6(buf, off + IP6_DST),
    payload: buf.subarray(off + IPV6_HLEN, off + n),
  });
}

export function serializeIpv6Packet(p: Ipv6Packet): Uint8Array {
  const src = parseIpv6(p.src);
  const dst = parseIpv6(p.dst);
  if (src === undefined || dst === undefined) throw new TypeError(`not an IPv6 address: ${src === undefined ? p.src : p.dst}`);
  const out = new Uint8Array(IPV6_HLEN + p.payload.length);
  writeIpv6Header(out, 0, p.payload.length, p.nextHeader, p.hopLimit, src, dst, p.trafficClass, p.flowLabel);
  out.set(p.payload, IPV6_HLEN);
  return out;
}
