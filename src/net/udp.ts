// UDP (RFC 768): source port, destination port, length, checksum (over the
// pseudo header, header and data; 0 = none sent, a computed 0 goes out as 0xffff).
import { getU16, setU16 } from './bytes.ts';
import { checksum, fold, pseudoSum4, pseudoSum4At, sum } from './checksum.ts';
import { parseIpv4 } from './addr.ts';
import { IPPROTO_UDP } from './ipv4.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const UDP_HLEN = 8;
export const UDP_SRC_PORT = 0;
export const UDP_DST_PORT = 2;
export const UDP_LENGTH = 4;
export const UDP_CHECKSUM = 6;

export const UDP_OK = 0;
export const UDP_ERR_TRUNCATED = -1;
/** Length field below 8 or beyond the IP payload. */
export const UDP_ERR_LENGTH = -2;
export const UDP_ERR_CHECKSUM = -3;

/**
 * Validate the UDP datagram at l4 (l4Len bytes of IP payload) of the IPv4
 * packet at ip. With verify, a non-zero checksum must be right.
 */
export function checkUdp(buf: Uint8Array, ip: number, l4: number, l4Len: number, verify: boolean): number {
  if (l4Len < UDP_HLEN) return UDP_ERR_TRUNCATED;
  const ulen = getU16(buf, l4 + UDP_LENGTH);
  if (ulen < UDP_HLEN || ulen > l4Len) return UDP_ERR_LENGTH;
  if (verify && getU16(buf, l4 + UDP_CHECKSUM) !== 0 &&
    fold(sum(buf, l4, ulen, pseudoSum4At(buf, ip, IPPROTO_UDP, ulen))) !== 0xffff) return UDP_ERR_CHECKSUM;
  return UDP_OK;
}

/** The full UDP checksum for the datagram at l4 of ulen bytes, 0 mapped to 0xffff (field treated as 0). */
export function udpChecksum(buf: Uint8Array, ip: number, l4: number, ulen: number): number {
  const saved = getU16(buf, l4 + UDP_CHECKSUM);
  setU16(buf, l4 + UDP_CHECKSUM, 0);
  const c = checksum(buf, l4, ulen, pseudoSum4At(buf, ip, IPPROTO_UDP, ulen));
  setU16(buf, l4 + UDP_CHECKSUM, saved);
  return c === 0 ? 0xffff : c;
}

// ---- object form ------------------------------------------------------------

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  /** As read; serialize computes it unless given (0 = no checksum). */
  checksum?: number;
}

export type UdpError = 'udp-truncated' | 'udp-bad-length' | 'udp-bad-checksum';

/**
 * Parse the UDP datagram in `bytes` (the IP payload). With src/dst (dotted
 * quads) a non-zero checksum is verified.
 */
export function parseUdp(bytes: Uint8Array, src?: string, dst?: string): ParseResult<UdpDatagram, UdpError> {
  if (bytes.length < UDP_HLEN) return fail('udp-truncated');
  const ulen = getU16(bytes, UDP_LENGTH);
  if (ulen < UDP_HLEN || ulen > bytes.length) return fail('udp-bad-length');
  const c = getU16(bytes, UDP_CHECKSUM);
  if (src !== undefined && dst !== undefined && c !== 0) {
    const s = parseIpv4(src);
    const d = parseIpv4(dst);
    if (s === undefined || d === undefined || fold(sum(bytes, 0, ulen, pseudoSum4(s, d, IPPROTO_UDP, ulen))) !== 0xffff) {
      return fail('udp-bad-checksum');
    }
  }
  return ok({ srcPort: getU16(bytes, 0), dstPort: getU16(bytes, 2), payload: bytes.subarray(UDP_HLEN, ulen), checksum: c });
}

/** Serialize with the checksum over the pseudo header of src/dst (throws TypeError on malformed addresses). */
export function serializeUdp(d: UdpDatagram, src: string, dst: string): Uint8Array {
  const s = parseIpv4(src);
  const t = parseIpv4(dst);
  if (s === undefined || t === undefined) throw new TypeError('serializeUdp: malformed address');
  const out = new Uint8Array(UDP_HLEN + d.payload.length);
  setU16(out, 0, d.srcPort);
  setU16(out, 2, d.dstPort);
  setU16(out, 4, out.length);
  out.set(d.payload, UDP_HLEN);
  if (d.checksum !== undefined) setU16(out, 6, d.checksum);
  else {
    const c = checksum(out, 0, out.length, pseudoSum4(s, t, IPPROTO_UDP, out.length));
    setU16(out, 6, c === 0 ? 0xffff : c);
  }
  return out;
}
