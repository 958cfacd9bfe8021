// The TCP reset the router sends for a rejected connection attempt (the
// answer a closed port gives, as nftables' `reject with tcp reset` does):
// from the address and port the client tried, acknowledging its segment.
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { checksum, pseudoSum4 } from '../../net/checksum.ts';
import { IP_DST, IP_SRC, IPPROTO_TCP, IPV4_HLEN, writeIpv4Header } from '../../net/ipv4.ts';
import { TCP_ACK_FLAG, TCP_FIN, TCP_FLAGS, TCP_HLEN, TCP_RST, TCP_SYN } from '../../net/tcp.ts';

/** Bytes of the reset: IPv4 header + TCP header. */
export const TCP_RESET_LEN = IPV4_HLEN + TCP_HLEN;

/**
 * Write, at out[o], an IPv4 + TCP reset answering the segment whose IPv4
 * header is at req[ip] (TCP header at req[l4], l4Len bytes of TCP). Returns
 * TCP_RESET_LEN.
 */
export function writeTcpReset(req: Uint8Array, ip: number, l4: number, l4Len: number, out: Uint8Array, o: number): number {
  const src = getU32(req, ip + IP_DST);
  const dst = getU32(req, ip + IP_SRC);
  const flags = req[l4 + TCP_FLAGS];
  const doff = (req[l4 + 12] >>> 4) << 2;
  const t = o + IPV4_HLEN;
  writeIpv4Header(out, o, TCP_RESET_LEN, IPPROTO_TCP, src, dst);
  setU16(out, t, getU16(req, l4 + 2));
  setU16(out, t + 2, getU16(req, l4));
  if ((flags & TCP_ACK_FLAG) !== 0) {
    // RFC 793: a reset for a segment with ACK takes its sequence number from that ACK.
    setU32(out, t + 4, getU32(req, l4 + 8));
    setU32(out, t + 8, 0);
    out[t + 13] = TCP_RST;
  } else {
    const seg = l4Len - doff + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
    setU32(out, t + 4, 0);
    setU32(out, t + 8, (getU32(req, l4 + 4) + seg) >>> 0);
    out[t + 13] = TCP_RST | TCP_ACK_FLAG;
  }
  out[t + 12] = (TCP_HLEN / 4) << 4;
  setU16(out, t + 14, 0);
  setU16(out, t + 16, 0);
  setU16(out, t + 18, 0);
  setU16(out, t + 16, checksum(out, t, TCP_HLEN, pseudoSum4(src, dst, IPPROTO_TCP, TCP_HLEN)));
  return TCP_RESET_LEN;
}
