// IPv4 fragmentation on egress (RFC 791 3.2, RFC 1812 4.2.2.7).
//
// A datagram larger than the egress MTU with DF clear is cut into fragments of
// at most `mtu` bytes: every fragment but the last carries a multiple of 8
// payload bytes; the first keeps all options, later ones only the options whose
// "copied" flag is set (RFC 791: security, LSRR, SSRR, ...). Each fragment is
// written straight into a caller-owned buffer (the egress slot): no allocation.
import { getU16, setU16 } from './bytes.ts';
import { IP_FLAG_MF, IP_FRAG, IP_FRAG_OFFSET_MASK, IP_TOTAL_LENGTH, IPV4_HLEN, ipv4SetChecksum } from './ipv4.ts';

/** The payload bytes each non-last fragment carries for this MTU and header length (0: the MTU is too small). */
export function fragmentPayloadSize(mtu: number, ihl: number): number {
  return Math.max(0, ((mtu - ihl) >>> 3) << 3);
}

/**
 * Length of the options of the header at ip (ihl bytes) that later fragments
 * carry: those with the copied flag, in order, padded to 4 bytes. Writes them
 * to out at outOff when out is given. Malformed options end the copy.
 */
export function copiedOptions(buf: Uint8Array, ip: number, ihl: number, out?: Uint8Array, outOff = 0): number {
  let n = 0;
  for (let at = ip + IPV4_HLEN; at < ip + ihl; ) {
    const type = buf[at];
    if (type === 0) break; // end of options
    if (type === 1) { // no-op
      at++;
      continue;
    }
    if (at + 1 >= ip + ihl) break;
    const len = buf[at + 1];
    if (len < 2 || at + len > ip + ihl) break;
    if ((type & 0x80) !== 0) {
      if (out !== undefined) out.set(buf.subarray(at, at + len), outOff + n);
      n += len;
    }
    at += len;
  }
  const padded = (n + 3) & ~3;
  if (out !== undefined) out.fill(0, outOff + n, outOff + padded);
  return padded;
}

/**
 * Write fragment number k of the datagram at src[ip..] (total `total` bytes,
 * header `ihl`) cut for `mtu` into dst at dOff. Returns the fragment's length,
 * or 0 when k is past the last fragment. The datagram's own fragment offset and
 * MF flag are honoured (a fragment can be fragmented again).
 */
export function writeIpv4Fragment(src: Uint8Array, ip: number, ihl: number, total: number, mtu: number, k: number, dst: Uint8Array, dOff: number): number {
  const frag = getU16(src, ip + IP_FRAG);
  const baseOffset = (frag & IP_FRAG_OFFSET_MASK) << 3;
  const lastHasMore = (frag & IP_FLAG_MF) !== 0;
  const data = total - ihl;
  // Later fragments' headers may be shorter: size the chunks by the first header (the larger), so all fit.
  const chunk = fragmentPayloadSize(mtu, ihl);
  if (chunk === 0) return 0;
  const start = k * chunk;
  if (start >= data && !(k === 0 && data === 0)) return 0;
  const len = Math.min(chunk, data - start);
  const last = start + len >= data;
  let h: number;
  if (k === 0) {
    dst.set(src.subarray(ip, ip + ihl), dOff);
    h = ihl;
  } else {
    dst.set(src.subarray(ip, ip + IPV4_HLEN), dOff);
    h = IPV4_HLEN + copiedOptions(src, ip, ihl, dst, dOff + IPV4_HLEN);
    dst[dOff] = 0x40 | (h >>> 2);
  }
  dst.set(src.subarray(ip + ihl + start, ip + ihl + start + len), dOff + h);
  setU16(dst, dOff + IP_TOTAL_LENGTH, h + len);
  const flags = frag & 0xc000; // the reserved bit and DF as they were (DF is clear here)
  setU16(dst, dOff + IP_FRAG, flags | (!last || lastHasMore ? IP_FLAG_MF : 0) | ((baseOffset + start) >>> 3));
  ipv4SetChecksum(dst, dOff, h);
  return h + len;
}

/** How many fragments writeIpv4Fragment produces for this datagram and MTU (0: the MTU is too small). */
export function fragmentCount(ihl: number, total: number, mtu: number): number {
  const chunk = fragmentPayloadSize(mtu, ihl);
  if (chunk === 0) return 0;
  return Math.max(1, Math.ceil((total - ihl) / chunk));
}
