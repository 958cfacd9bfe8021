// What must happen to a plaintext IPv4 or IPv6 packet before it is sealed, because
// the far end gets exactly these bytes and no offload metadata:
//   - a TCP GSO super-frame (virtio gso_type TCPV4 or TCPV6) is cut into
//     segments that fit the tunnel's MTU, each with its own IP header (length;
//     IPv4: id, checksum) and TCP header (sequence number, flags, full checksum);
//   - a packet whose L4 checksum is only partial (NEEDS_CSUM) is completed;
//   - the MSS option of a TCP SYN is clamped so the ends never send segments
//     the tunnel would have to drop (MTU - 40; IPv6: MTU - 60).
// All functions work on a copy the caller made into its own slot.
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { checksum, pseudoSum4At, pseudoSum6At, update16 } from '../../net/checksum.ts';
import { IP6_NEXT_HEADER, IP6_PAYLOAD_LENGTH, IPV6_HLEN, NH_TCP } from '../../net/ipv6.ts';
import { IP_CHECKSUM, IP_ID, IP_TOTAL_LENGTH, IPPROTO_TCP, IPPROTO_UDP, ipv4SetChecksum } from '../../net/ipv4.ts';
import { TCP_CHECKSUM, TCP_CWR, TCP_FIN, TCP_FLAGS, TCP_PSH, TCP_SEQ, TCP_SYN } from '../../net/tcp.ts';
import { UDP_CHECKSUM } from '../../net/udp.ts';
import { Buffer } from 'node:buffer';

const copyBytes = Buffer.prototype.copy;

/**
 * Complete the partial checksum of the IPv4 packet at dst[ip]: the field at
 * l4 + csumOffset holds the pseudo-header sum; the checksum covers l4 to the
 * end of the packet (ipLen bytes from ip).
 */
export function completeChecksum(dst: Uint8Array, ip: number, ipLen: number, l4: number, csumOffset: number, proto: number): void {
  const field = l4 + csumOffset;
  let c = checksum(dst, l4, ip + ipLen - l4);
  if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
  setU16(dst, field, c);
}

/**
 * Write segment `k` of a TCP super-frame: headers (ihl + thl bytes) from
 * src[ip], then `segLen` payload bytes from src[payload + offset], into
 * dst[out]. Returns the segment's IP total length.
 */
export function writeTcpSegment(
  src: Uint8Array, ip: number, ihl: number, thl: number, payload: number, offset: number, segLen: number,
  first: boolean, last: boolean, k: number, dst: Uint8Array, out: number,
): number {
  const hl = ihl + thl;
  copyBytes.call(src, dst, out, ip, ip + hl);
  copyBytes.call(src, dst, out + hl, payload + offset, payload + offset + segLen);
  const total = hl + segLen;
  setU16(dst, out + IP_TOTAL_LENGTH, total);
  setU16(dst, out + IP_ID, (getU16(src, ip + IP_ID) + k) & 0xffff);
  setU16(dst, out + IP_CHECKSUM, 0);
  ipv4SetChecksum(dst, out, ihl);
  const l4 = out + ihl;
  setU32(dst, l4 + TCP_SEQ, (getU32(src, ip + ihl + TCP_SEQ) + offset) >>> 0);
  let flags = src[ip + ihl + TCP_FLAGS];
  if (!last) flags &= ~(TCP_FIN | TCP_PSH);
  if (!first) flags &= ~TCP_CWR;
  dst[l4 + TCP_FLAGS] = flags;
  setU16(dst, l4 + TCP_CHECKSUM, 0);
  setU16(dst, l4 + TCP_CHECKSUM, checksum(dst, l4, thl + segLen, pseudoSum4At(dst, out, IPPROTO_TCP, thl + segLen)));
  return total;
}

/**
 * writeTcpSegment for IPv6: the fixed header (40 bytes, next header TCP, no
 * extension headers) and the TCP header (thl) from src[ip], then segLen
 * payload bytes; payload length, sequence number, flags and the full TCP
 * checksum (IPv6 pseudo-header) set. Returns the segment's packet length.
 */
export function writeTcpSegment6(
  src: Uint8Array, ip: number, thl: number, payload: number, offset: number, segLen: number,
  first: boolean, last: boolean, dst: Uint8Array, out: number,
): number {
  const hl = IPV6_HLEN + thl;
  copyBytes.call(src, dst, out, ip, ip + hl);
  copyBytes.call(src, dst, out + hl, payload + offset, payload + offset + segLen);
  setU16(dst, out + IP6_PAYLOAD_LENGTH, thl + segLen);
  const l4 = out + IPV6_HLEN;
  setU32(dst, l4 + TCP_SEQ, (getU32(src, ip + IPV6_HLEN + TCP_SEQ) + offset) >>> 0);
  let flags = src[ip + IPV6_HLEN + TCP_FLAGS];
  if (!last) flags &= ~(TCP_FIN | TCP_PSH);
  if (!first) flags &= ~TCP_CWR;
  dst[l4 + TCP_FLAGS] = flags;
  setU16(dst, l4 + TCP_CHECKSUM, 0);
  setU16(dst, l4 + TCP_CHECKSUM, checksum(dst, l4, thl + segLen, pseudoSum6At(dst, out, NH_TCP, thl + segLen)));
  return hl + segLen;
}

/**
 * Clamp the MSS option of a TCP SYN at buf[ip] (ihl, l4Len known, checksum
 * complete) to `maxMss`, updating the checksum incrementally. Returns true
 * if it changed.
 */
export function clampMss(buf: Uint8Array, ip: number, ihl: number, l4Len: number, maxMss: number): boolean {
  return buf[ip + 9] === IPPROTO_TCP && clampMssAt(buf, ip + ihl, l4Len, maxMss);
}

/** clampMss for the IPv6 packet at buf[ip] (TCP right after the fixed header, l4Len bytes): MTU - 60. */
export function clampMss6(buf: Uint8Array, ip: number, l4Len: number, maxMss: number): boolean {
  return buf[ip + IP6_NEXT_HEADER] === NH_TCP && clampMssAt(buf, ip + IPV6_HLEN, l4Len, maxMss);
}

/** Clamp the MSS option of the TCP SYN segment at buf[l4] (l4Len bytes, checksum complete). */
function clampMssAt(buf: Uint8Array, l4: number, l4Len: number, maxMss: number): boolean {
  if (l4Len < 20 || (buf[l4 + TCP_FLAGS] & TCP_SYN) === 0) return false;
  const doff = (buf[l4 + 12] >>> 4) << 2;
  if (doff < 20 || doff > l4Len) return false;
  let i = l4 + 20;
  const end = l4 + doff;
  while (i < end) {
    const kind = buf[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const len = buf[i + 1];
    if (len < 2 || i + len > end) break;
    if (kind === 2 && len === 4) {
      const mss = getU16(buf, i + 2);
      if (mss <= maxMss) return false;
      // The option word is 16-bit aligned relative to the TCP header only if i - l4 is even.
      const even = ((i + 2 - l4) & 1) === 0;
      const c = getU16(buf, l4 + TCP_CHECKSUM);
      let nc: number;
      if (even) nc = update16(c, mss, maxMss);
      else {
        // Unaligned: update the two words the value straddles.
        const w0 = getU16(buf, i + 1);
        const w1 = getU16(buf, i + 3);
        setU16(buf, i + 2, maxMss);
        nc = update16(update16(c, w0, getU16(buf, i + 1)), w1, getU16(buf, i + 3));
        setU16(buf, l4 + TCP_CHECKSUM, nc);
        return true;
      }
      setU16(buf, i + 2, maxMss);
      setU16(buf, l4 + TCP_CHECKSUM, nc);
      return true;
    }
    i += len;
  }
  return false;
}

export { UDP_CHECKSUM };
