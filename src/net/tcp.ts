// TCP header (RFC 9293): ports, sequence and acknowledgment numbers, data
// offset, flags, window, checksum (pseudo header + segment), urgent pointer,
// options.
import { getU16, getU32, setU16, setU32 } from './bytes.ts';
import { checksum, fold, pseudoSum4, pseudoSum4At, sum } from './checksum.ts';
import { parseIpv4 } from './addr.ts';
import { IPPROTO_TCP } from './ipv4.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const TCP_HLEN = 20;
export const TCP_SRC_PORT = 0;
export const TCP_DST_PORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
export const TCP_DATA_OFFSET = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CHECKSUM = 16;
export const TCP_URGENT = 18;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK_FLAG = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const TCP_OK = 0;
export const TCP_ERR_TRUNCATED = -1;
/** Data offset below 5 words. */
export const TCP_ERR_OFFSET = -2;
export const TCP_ERR_CHECKSUM = -3;

/** Validate the TCP segment at l4 (l4Len bytes) of the IPv4 packet at ip. */
export function checkTcp(buf: Uint8Array, ip: number, l4: number, l4Len: number, verify: boolean): number {
  if (l4Len < TCP_HLEN) return TCP_ERR_TRUNCATED;
  const doff = (buf[l4 + TCP_DATA_OFFSET] >>> 4) << 2;
  if (doff < TCP_HLEN) return TCP_ERR_OFFSET;
  if (doff > l4Len) return TCP_ERR_TRUNCATED;
  if (verify && fold(sum(buf, l4, l4Len, pseudoSum4At(buf, ip, IPPROTO_TCP, l4Len))) !== 0xffff) return TCP_ERR_CHECKSUM;
  return TCP_OK;
}

export function tcpFlags(buf: Uint8Array, l4: number): number {
  return buf[l4 + TCP_FLAGS];
}

/** The full TCP checksum of the segment at l4 of l4Len bytes (field treated as 0). */
export function tcpChecksum(buf: Uint8Array, ip: number, l4: number, l4Len: number): number {
  const saved = getU16(buf, l4 + TCP_CHECKSUM);
  setU16(buf, l4 + TCP_CHECKSUM, 0);
  const c = checksum(buf, l4, l4Len, pseudoSum4At(buf, ip, IPPROTO_TCP, l4Len));
  setU16(buf, l4 + TCP_CHECKSUM, saved);
  return c;
}

// ---- object form ------------------------------------------------------------

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** TCP_SYN | TCP_ACK_FLAG ... */
  flags: number;
  window: number;
  urgent?: number;
  options?: Uint8Array;
  payload: Uint8Array;
  /** As read; serialize computes it unless given. */
  checksum?: number;
}

export type TcpError = 'tcp-truncated' | 'tcp-bad-offset' | 'tcp-bad-checksum';

/** Parse the segment in `bytes` (the IP payload); with src/dst (dotted quads) the checksum is verified. */
export function parseTcp(bytes: Uint8Array, src?: string, dst?: string): ParseResult<TcpSegment, TcpError> {
  if (bytes.length < TCP_HLEN) return fail('tcp-truncated');
  const doff = (bytes[TCP_DATA_OFFSET] >>> 4) << 2;
  if (doff < TCP_HLEN) return fail('tcp-bad-offset');
  if (doff > bytes.length) return fail('tcp-truncated');
  if (src !== undefined && dst !== undefined) {
    const s = parseIpv4(src);
    const d = parseIpv4(dst);
    if (s === undefined || d === undefined ||
      fold(sum(bytes, 0, bytes.length, pseudoSum4(s, d, IPPROTO_TCP, bytes.length))) !== 0xffff) {
      return fail('tcp-bad-checksum');
    }
  }
  return ok({
    srcPort: getU16(bytes, 0),
    dstPort: getU16(bytes, 2),
    seq: getU32(bytes, TCP_SEQ),
    ack: getU32(bytes, TCP_ACK),
    flags: bytes[TCP_FLAGS],
    window: getU16(bytes, TCP_WINDOW),
    urgent: getU16(bytes, TCP_URGENT),
    options: bytes.subarray(TCP_HLEN, doff),
    payload: bytes.subarray(doff),
    checksum: getU16(bytes, TCP_CHECKSUM),
  });
}

/** Serialize with the checksum over the pseudo header of src/dst (throws TypeError on malformed input). */
export function serializeTcp(t: TcpSegment, src: string, dst: string): Uint8Array {
  const s = parseIpv4(src);
  const d = parseIpv4(dst);
  const options = t.options ?? new Uint8Array(0);
  if (s === undefined || d === undefined) throw new TypeError('serializeTcp: malformed address');
  if (options.length % 4 !== 0 || options.length > 40) throw new TypeError('serializeTcp: options must be 0..40 bytes, a multiple of 4');
  const doff = TCP_HLEN + options.length;
  const out = new Uint8Array(doff + t.payload.length);
  setU16(out, 0, t.srcPort);
  setU16(out, 2, t.dstPort);
  setU32(out, TCP_SEQ, t.seq >>> 0);
  setU32(out, TCP_ACK, t.ack >>> 0);
  out[TCP_DATA_OFFSET] = (doff >>> 2) << 4;
  out[TCP_FLAGS] = t.flags;
  setU16(out, TCP_WINDOW, t.window);
  setU16(out, TCP_URGENT, t.urgent ?? 0);
  out.set(options, TCP_HLEN);
  out.set(t.payload, doff);
  setU16(out, TCP_CHECKSUM, t.checksum ?? checksum(out, 0, out.length, pseudoSum4(s, d, IPPROTO_TCP, out.length)));
  return out;
}
