// Header rewriting with incremental checksum updates (RFC 1624), shared by
// forwarding (NAT, port forwards) and the translation of ICMP errors, whose
// quoted packet is rewritten the same way inside the ICMP message.
import { getI32, getU16, setU16, setU32 } from '../../net/bytes.ts';
import { partialUpdate32, update16, update32 } from '../../net/checksum.ts';
import { IP_CHECKSUM, IP_DST, IP_SRC, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { TCP_CHECKSUM } from '../../net/tcp.ts';
import { UDP_CHECKSUM } from '../../net/udp.ts';

/** Offset of the L4 checksum field of protocol proto whose header starts at l4 (ICMP: its own checksum). */
export function l4ChecksumAt(proto: number, l4: number): number {
  return proto === IPPROTO_TCP ? l4 + TCP_CHECKSUM : proto === IPPROTO_UDP ? l4 + UDP_CHECKSUM : l4 + 2;
}

/**
 * Rewrite the IPv4 packet at b[ip] (header length ihl, protocol proto) to
 * nSrc:nSport -> nDst:nDport in place (ICMP echo: nSport is the identifier,
 * nDport unused), updating the IP header checksum and the L4 checksum at cOff
 * incrementally (cOff -1: there is none to update, e.g. a quote that cuts it
 * off). UDP checksum 0 (none) stays 0.
 *
 * partial: the L4 field holds the partial pseudo-header sum of a NEEDS_CSUM
 * frame: only address changes apply to it, by the partial rule (the L4 header
 * itself is summed when the checksum is completed).
 *
 * enc: a checksum that covers these bytes as well (the ICMP error quoting
 * this packet); every 16-bit change is applied to it, and it is returned.
 * Pass -1 when there is none (forwarding): it is then left alone.
 */
export function rewriteAddrs(b: Uint8Array, ip: number, ihl: number, proto: number, cOff: number,
  nSrc: number, nSport: number, nDst: number, nDport: number, partial: boolean, enc: number): number {
  const l4 = ip + ihl;
  const oSrc = getI32(b, ip + IP_SRC);
  const oDst = getI32(b, ip + IP_DST);
  const icmp = proto === IPPROTO_ICMP;
  const ipcOld = getU16(b, ip + IP_CHECKSUM);
  let ipc = ipcOld;
  const l4cOld = cOff < 0 ? 0 : getU16(b, cOff);
  let l4c = l4cOld;
  // UDP without checksum (0) stays without; a partial field is never "none".
  const l4None = cOff < 0 || (proto === IPPROTO_UDP && l4cOld === 0 && !partial);
  let l4Changed = false;
  if (oSrc !== nSrc) {
    setU32(b, ip + IP_SRC, nSrc);
    ipc = update32(ipc, oSrc, nSrc);
    if (enc >= 0) enc = update32(enc, oSrc, nSrc);
    if (!icmp && !l4None) {
      l4c = partial ? partialUpdate32(l4c, oSrc, nSrc) : update32(l4c, oSrc, nSrc);
      l4Changed = true;
    }
  }
  if (oDst !== nDst) {
    setU32(b, ip + IP_DST, nDst);
    ipc = update32(ipc, oDst, nDst);
    if (enc >= 0) enc = update32(enc, oDst, nDst);
    if (!icmp && !l4None) {
      l4c = partial ? partialUpdate32(l4c, oDst, nDst) : update32(l4c, oDst, nDst);
      l4Changed = true;
    }
  }
  if (ipc !== ipcOld) {
    setU16(b, ip + IP_CHECKSUM, ipc);
    if (enc >= 0) enc = update16(enc, ipcOld, ipc);
  }
  const ports = !partial && !l4None;
  if (icmp) {
    const id = getU16(b, l4 + 4);
    if (id !== nSport) {
      setU16(b, l4 + 4, nSport);
      if (enc >= 0) enc = update16(enc, id, nSport);
      if (ports) {
        l4c = update16(l4c, id, nSport);
        l4Changed = true;
      }
    }
  } else {
    const sp = getU16(b, l4);
    if (sp !== nSport) {
      setU16(b, l4, nSport);
      if (enc >= 0) enc = update16(enc, sp, nSport);
      if (ports) {
        l4c = update16(l4c, sp, nSport);
        l4Changed = true;
      }
    }
    const dp = getU16(b, l4 + 2);
    if (dp !== nDport) {
      setU16(b, l4 + 2, nDport);
      if (enc >= 0) enc = update16(enc, dp, nDport);
      if (ports) {
        l4c = update16(l4c, dp, nDport);
        l4Changed = true;
      }
    }
  }
  if (l4Changed) {
    if (proto === IPPROTO_UDP && !partial && l4c === 0) l4c = 0xffff;
    if (l4c !== l4cOld) {
      setU16(b, cOff, l4c);
      if (enc >= 0) enc = update16(enc, l4cOld, l4c);
    }
  }
  return enc;
}
