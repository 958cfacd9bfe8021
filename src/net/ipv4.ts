// IPv4 header (RFC 791).
//
//   0 version/IHL  1 TOS  2 total length  4 identification  6 flags/fragment offset
//   8 TTL  9 protocol  10 header checksum  12 source  16 destination  20 options
import { getU16, getU32, setU16, setU32 } from './bytes.ts';
import { checksum, fold, sum, update16, update32 } from './checksum.ts';
import { formatIpv4, parseIpv4 } from './addr.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const IPV4_HLEN = 20;

export const IP_VIHL = 0;
export const IP_TOS = 1;
export const IP_TOTAL_LENGTH = 2;
export const IP_ID = 4;
export const IP_FRAG = 6;
export const IP_TTL = 8;
export const IP_PROTOCOL = 9;
export const IP_CHECKSUM = 10;
export const IP_SRC = 12;
export const IP_DST = 16;

export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;
export const IP_FRAG_OFFSET_MASK = 0x1fff;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const IP_DEFAULT_TTL = 64;

// checkIpv4 results: >= 20 is the header length, negative is the error.
export const IP_ERR_TRUNCATED = -1;
export const IP_ERR_VERSION = -2;
export const IP_ERR_IHL = -3;
/** Total length shorter than the header. */
export const IP_ERR_LENGTH = -4;
export const IP_ERR_CHECKSUM = -5;

/**
 * Validate an IPv4 header at off with `avail` bytes of frame after it:
 * version 4, IHL >= 5, header present, total length covering the header and
 * not beyond the frame, header checksum. Returns the header length in bytes or
 * a negative IP_ERR_*.
 */
export function checkIpv4(buf: Uint8Array, off: number, avail: number): number {
  if (avail < IPV4_HLEN) return IP_ERR_TRUNCATED;
  const vihl = buf[off];
  if (vihl >>> 4 !== 4) return IP_ERR_VERSION;
  const ihl = (vihl & 0x0f) << 2;
  if (ihl < IPV4_HLEN) return IP_ERR_IHL;
  if (ihl > avail) return IP_ERR_TRUNCATED;
  const total = getU16(buf, off + IP_TOTAL_LENGTH);
  if (total < ihl) return IP_ERR_LENGTH;
  if (total > avail) return IP_ERR_TRUNCATED;
  if (fold(sum(buf, off, ihl)) !== 0xffff) return IP_ERR_CHECKSUM;
  return ihl;
}

export function ipv4HeaderLength(buf: Uint8Array, off: number): number {
  return (buf[off] & 0x0f) << 2;
}
export function ipv4TotalLength(buf: Uint8Array, off: number): number {
  return getU16(buf, off + IP_TOTAL_LENGTH);
}
export function ipv4Ttl(buf: Uint8Array, off: number): number {
  return buf[off + IP_TTL];
}
export function ipv4Protocol(buf: Uint8Array, off: number): number {
  return buf[off + IP_PROTOCOL];
}
export function ipv4Src(buf: Uint8Array, off: number): number {
  return getU32(buf, off + IP_SRC);
}
export function ipv4Dst(buf: Uint8Array, off: number): number {
  return getU32(buf, off + IP_DST);
}
/** A fragment: more-fragments set or a non-zero offset. */
export function ipv4IsFragment(buf: Uint8Array, off: number): boolean {
  return (getU16(buf, off + IP_FRAG) & (IP_FLAG_MF | IP_FRAG_OFFSET_MASK)) !== 0;
}
/** A fragment other than the first (its L4 header is elsewhere). */
export function ipv4IsLaterFragment(buf: Uint8Array, off: number): boolean {
  return (getU16(buf, off + IP_FRAG) & IP_FRAG_OFFSET_MASK) !== 0;
}

/** Compute the header checksum of the header at off (ihl bytes) and store it. */
export function ipv4SetChecksum(buf: Uint8Array, off: number, ihl = ipv4HeaderLength(buf, off)): void {
  setU16(buf, off + IP_CHECKSUM, 0);
  setU16(buf, off + IP_CHECKSUM, checksum(buf, off, ihl));
}

/** Decrement the TTL and update the header checksum incrementally (caller checked TTL > 1). */
export function ipv4DecrementTtl(buf: Uint8Array, off: number): void {
  const oldWord = getU16(buf, off + IP_TTL);
  const ttl = buf[off + IP_TTL] - 1;
  buf[off + IP_TTL] = ttl;
  setU16(buf, off + IP_CHECKSUM, update16(getU16(buf, off + IP_CHECKSUM), oldWord, oldWord - 0x100));
}

/**
 * Replace the address at off+which (IP_SRC or IP_DST) and update the header
 * checksum incrementally. Returns the old address (for the L4 checksum).
 */
export function ipv4RewriteAddress(buf: Uint8Array, off: number, which: number, addr: number): number {
  const old = getU32(buf, off + which);
  setU32(buf, off + which, addr);
  setU16(buf, off + IP_CHECKSUM, update32(getU16(buf, off + IP_CHECKSUM), old, addr));
  return old;
}

/** Write a 20-byte header (no options) with its checksum. */
export function writeIpv4Header(
  buf: Uint8Array, off: number, totalLength: number, protocol: number, src: number, dst: number,
  ttl = IP_DEFAULT_TTL, id = 0, flags = 0, tos = 0,
): void {
  buf[off] = 0x45;
  buf[off + IP_TOS] = tos;
  setU16(buf, off + IP_TOTAL_LENGTH, totalLength);
  setU16(buf, off + IP_ID, id);
  setU16(buf, off + IP_FRAG, flags);
  buf[off + IP_TTL] = ttl;
  buf[off + IP_PROTOCOL] = protocol;
  setU32(buf, off + IP_SRC, src);
  setU32(buf, off + IP_DST, dst);
  ipv4SetChecksum(buf, off, IPV4_HLEN);
}

// ---- object form ------------------------------------------------------------

export interface Ipv4Packet {
  tos: number;
  id: number;
  /** The 3 flag bits (DF = 2, MF = 1). */
  flags: number;
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  options: Uint8Array;
  payload: Uint8Array;
  /** As read (parse) or to force a value (serialize); computed when omitted. */
  checksum?: number;
  /** As read; serialize computes it from the payload unless given. */
  totalLength?: number;
}

export type Ipv4Error = 'ip-truncated' | 'ip-bad-version' | 'ip-bad-ihl' | 'ip-bad-length' | 'ip-bad-checksum';

const IP_ERRORS: Record<number, Ipv4Error> = {
  [IP_ERR_TRUNCATED]: 'ip-truncated',
  [IP_ERR_VERSION]: 'ip-bad-version',
  [IP_ERR_IHL]: 'ip-bad-ihl',
  [IP_ERR_LENGTH]: 'ip-bad-length',
  [IP_ERR_CHECKSUM]: 'ip-bad-checksum',
};

export function ipv4ErrorName(code: number): Ipv4Error {
  return IP_ERRORS[code];
}

/** Parse; the payload is a view into buf ending at total length (frame padding excluded). */
export function parseIpv4Packet(buf: Uint8Array, off = 0, len = buf.length - off): ParseResult<Ipv4Packet, Ipv4Error> {
  const ihl = checkIpv4(buf, off, len);
  if (ihl < 0) return fail(IP_ERRORS[ihl]);
  const total = getU16(buf, off + IP_TOTAL_LENGTH);
  const frag = getU16(buf, off + IP_FRAG);
  return ok({
    tos: buf[off + IP_TOS],
    id: getU16(buf, off + IP_ID),
    flags: frag >>> 13,
    fragmentOffset: frag & IP_FRAG_OFFSET_MASK,
    ttl: buf[off + IP_TTL],
    protocol: buf[off + IP_PROTOCOL],
    src: formatIpv4(getU32(buf, off + IP_SRC)),
    dst: formatIpv4(getU32(buf, off + IP_DST)),
    options: buf.subarray(off + IPV4_HLEN, off + ihl),
    payload: buf.subarray(off + ihl, off + total),
    checksum: getU16(buf, off + IP_CHECKSUM),
    totalLength: total,
  });
}

/** Serialize with a computed checksum; throws TypeError on malformed addresses or options not a multiple of 4. */
export function serializeIpv4Packet(p: Partial<Ipv4Packet> & { protocol: number; src: string; dst: string; payload: Uint8Array }): Uint8Array {
  const src = parseIpv4(p.src);
  const dst = parseIpv4(p.dst);
  const options = p.options ?? new Uint8Array(0);
  if (src === undefined || dst === undefined) throw new TypeError('serializeIpv4Packet: malformed address');
  if (options.length % 4 !== 0 || options.length > 40) throw new TypeError('serializeIpv4Packet: options must be 0..40 bytes, a multiple of 4');
  const ihl = IPV4_HLEN + options.length;
  const out = new Uint8Array(ihl + p.payload.length);
  out[0] = 0x40 | (ihl >>> 2);
  out[IP_TOS] = p.tos ?? 0;
  setU16(out, IP_TOTAL_LENGTH, p.totalLength ?? out.length);
  setU16(out, IP_ID, p.id ?? 0);
  setU16(out, IP_FRAG, ((p.flags ?? 0) << 13) | (p.fragmentOffset ?? 0));
  out[IP_TTL] = p.ttl ?? IP_DEFAULT_TTL;
  out[IP_PROTOCOL] = p.protocol;
  setU32(out, IP_SRC, src);
  setU32(out, IP_DST, dst);
  out.set(options, IPV4_HLEN);
  if (p.checksum !== undefined) setU16(out, IP_CHECKSUM, p.checksum);
  else ipv4SetChecksum(out, 0, ihl);
  out.set(p.payload, ihl);
  return out;
}
