// The egress MTU of a domain, for the router's IPv4 path: does a packet fit
// the link it leaves on, and the TCP MSS clamp. All checks read the router's
// private copy and allocate nothing.
//
//   fits                      -> FIT_OK
//   a TCP/UDP super-frame     -> FIT_OK when each segment (headers + gso_size)
//                                fits; else FIT_TOO_BIG
//   larger, DF clear          -> FIT_FRAGMENT: the link cuts it (link.ts)
//   larger, DF set            -> FIT_TOO_BIG: ICMP "fragmentation needed" with
//                                the MTU (RFC 1191 path MTU discovery)
import { getU16, setU16 } from '../../net/bytes.ts';
import { fold, sum, update16 } from '../../net/checksum.ts';
import { IP_FLAG_DF, IP_FRAG, IPPROTO_TCP } from '../../net/ipv4.ts';
import { TCP_CHECKSUM, TCP_DATA_OFFSET } from '../../net/tcp.ts';
import {
  VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_NEEDS_CSUM, VNET_FLAGS, VNET_GSO_SIZE, VNET_HDR_LEN,
} from '../../net/vnet.ts';
import { getU16le } from '../../net/bytes.ts';

export const FIT_OK = 0;
export const FIT_FRAGMENT = 1;
export const FIT_TOO_BIG = 2;

/**
 * Does the IPv4 packet at b[ip] (ipLen bytes, header ihl, protocol proto, L4
 * header at l4) fit an egress link of `mtu`? The frame's virtio-net header is
 * at b[0].
 */
export function egressFit(b: Uint8Array, ip: number, ipLen: number, ihl: number, proto: number, l4: number, mtu: number): number {
  if (ipLen <= mtu) return FIT_OK;
  if ((b[1] & 0x7f) !== 0) {
    const l4hdr = proto === IPPROTO_TCP ? (b[l4 + TCP_DATA_OFFSET] >>> 4) << 2 : 8;
    return ihl + l4hdr + getU16le(b, VNET_GSO_SIZE) <= mtu ? FIT_OK : FIT_TOO_BIG;
  }
  return (getU16(b, ip + IP_FRAG) & IP_FLAG_DF) !== 0 ? FIT_TOO_BIG : FIT_FRAGMENT;
}

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MSS = 2;

/**
 * Lower the MSS option of the TCP segment at b[l4] to `mss` when it is larger
 * (RFC 4459 clamping, as Linux's TCPMSS --clamp-mss-to-pmtu). updateChecksum:
 * adjust the TCP checksum incrementally (not for a partial checksum, which
 * covers the pseudo header only). Returns true when it changed the option.
 */
export function clampMss(b: Uint8Array, l4: number, l4Len: number, mss: number, updateChecksum: boolean): boolean {
  const doff = (b[l4 + TCP_DATA_OFFSET] >>> 4) << 2;
  const end = l4 + Math.min(doff, l4Len);
  for (let at = l4 + 20; at < end; ) {
    const kind = b[at];
    if (kind === TCPOPT_EOL) return false;
    if (kind === TCPOPT_NOP) {
      at++;
      continue;
    }
    if (at + 1 >= end) return false;
    const len = b[at + 1];
    if (len < 2 || at + len > end) return false;
    if (kind === TCPOPT_MSS && len === 4) {
      const old = getU16(b, at + 2);
      if (old <= mss) return false;
      setU16(b, at + 2, mss);
      // The option starts at an even offset from the TCP header only when aligned; sum by word position.
      if (updateChecksum) {
        const check = getU16(b, l4 + TCP_CHECKSUM);
        const even = ((at + 2 - l4) & 1) === 0;
        setU16(b, l4 + TCP_CHECKSUM, even ? update16(check, old, mss)
          : update16(update16(check, ((b[at + 1]) << 8) | (old >>> 8), (b[at + 1] << 8) | (mss >>> 8)),
            ((old & 0xff) << 8) | b[at + 4], ((mss & 0xff) << 8) | b[at + 4]));
      }
      return true;
    }
    at += len;
  }
  return false;
}

/**
 * A frame with a partial L4 checksum (virtio NEEDS_CSUM) cannot be cut into
 * fragments: complete the checksum over the whole datagram first, the way the
 * kernel does before it fragments, and clear the flag.
 */
export function completeChecksum(b: Uint8Array, frameLen: number): void {
  if ((b[VNET_FLAGS] & VNET_F_NEEDS_CSUM) === 0) return;
  const start = VNET_HDR_LEN + getU16le(b, VNET_CSUM_START);
  const field = start + getU16le(b, VNET_CSUM_OFFSET);
  if (field + 2 > frameLen) return;
  const c = ~fold(sum(b, start, frameLen - start)) & 0xffff;
  setU16(b, field, c === 0 ? 0xffff : c);
  b[VNET_FLAGS] &= ~VNET_F_NEEDS_CSUM;
}
