// ARP for IPv4 over Ethernet (RFC 826): 28 bytes after the Ethernet header.
//
//   0 htype u16 (1)   2 ptype u16 (0x0800)   4 hlen u8 (6)   5 plen u8 (4)
//   6 op u16 (1 request, 2 reply)
//   8 sha[6]  14 spa[4]  18 tha[6]  24 tpa[4]
import { getU16, getU32, setU16, setU32 } from './bytes.ts';
import { formatIpv4, formatMac, parseIpv4, parseMac } from './addr.ts';
import { writeMacBytes } from './ethernet.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const ARP_LEN = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OP = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;

export const ARP_OK = 0;
export const ARP_ERR_TRUNCATED = -1;
/** Not Ethernet/IPv4 (htype, ptype, hlen, plen). */
export const ARP_ERR_UNSUPPORTED = -2;
export const ARP_ERR_BAD_OP = -3;

/** Validate an ARP packet at off with avail bytes: ARP_OK or a negative ARP_ERR_*. */
export function checkArp(buf: Uint8Array, off: number, avail: number): number {
  if (avail < ARP_LEN) return ARP_ERR_TRUNCATED;
  if (getU16(buf, off + ARP_HTYPE) !== ARP_HTYPE_ETHERNET || getU16(buf, off + ARP_PTYPE) !== ARP_PTYPE_IPV4 ||
    buf[off + ARP_HLEN] !== 6 || buf[off + ARP_PLEN] !== 4) return ARP_ERR_UNSUPPORTED;
  const op = getU16(buf, off + ARP_OP);
  if (op !== ARP_OP_REQUEST && op !== ARP_OP_REPLY) return ARP_ERR_BAD_OP;
  return ARP_OK;
}

export function arpOp(buf: Uint8Array, off: number): number {
  return getU16(buf, off + ARP_OP);
}
export function arpSpa(buf: Uint8Array, off: number): number {
  return getU32(buf, off + ARP_SPA);
}
export function arpTpa(buf: Uint8Array, off: number): number {
  return getU32(buf, off + ARP_TPA);
}

/** Write a complete Ethernet/IPv4 ARP packet at off. */
export function writeArp(
  buf: Uint8Array, off: number, op: number,
  sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number,
): void {
  setU16(buf, off + ARP_HTYPE, ARP_HTYPE_ETHERNET);
  setU16(buf, off + ARP_PTYPE, ARP_PTYPE_IPV4);
  buf[off + ARP_HLEN] = 6;
  buf[off + ARP_PLEN] = 4;
  setU16(buf, off + ARP_OP, op);
  writeMacBytes(buf, off + ARP_SHA, sha);
  setU32(buf, off + ARP_SPA, spa);
  writeMacBytes(buf, off + ARP_THA, tha);
  setU32(buf, off + ARP_TPA, tpa);
}

// ---- object form ------------------------------------------------------------

export interface ArpPacket {
  op: 'request' | 'reply';
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export type ArpError = 'arp-truncated' | 'arp-unsupported' | 'arp-bad-op';

export function parseArp(buf: Uint8Array, off = 0, len = buf.length - off): ParseResult<ArpPacket, ArpError> {
  const r = checkArp(buf, off, len);
  if (r === ARP_ERR_TRUNCATED) return fail('arp-truncated');
  if (r === ARP_ERR_UNSUPPORTED) return fail('arp-unsupported');
  if (r === ARP_ERR_BAD_OP) return fail('arp-bad-op');
  return ok({
    op: getU16(buf, off + ARP_OP) === ARP_OP_REQUEST ? 'request' : 'reply',
    senderMac: formatMac(buf, off + ARP_SHA),
    senderIp: formatIpv4(getU32(buf, off + ARP_SPA)),
    targetMac: formatMac(buf, off + ARP_THA),
    targetIp: formatIpv4(getU32(buf, off + ARP_TPA)),
  });
}

/** Serialize; throws TypeError on a malformed address string (a programming error). */
export function serializeArp(p: ArpPacket): Uint8Array {
  const sha = parseMac(p.senderMac);
  const tha = parseMac(p.targetMac);
  const spa = parseIpv4(p.senderIp);
  const tpa = parseIpv4(p.targetIp);
  if (sha === undefined || tha === undefined || spa === undefined || tpa === undefined) {
    throw new TypeError('serializeArp: malformed address');
  }
  const out = new Uint8Array(ARP_LEN);
  writeArp(out, 0, p.op === 'request' ? ARP_OP_REQUEST : ARP_OP_REPLY, sha, spa, tha, tpa);
  return out;
}
