// Ethernet II: destination MAC, source MAC, EtherType; no 802.1Q (a VLAN tag
// is just an EtherType the router does not handle).
import { getU16, setU16 } from './bytes.ts';
import { formatMac, parseMac } from './addr.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const ETH_HLEN = 14;
/** Minimum frame without FCS; shorter frames are padded when the router builds them. */
export const ETH_MIN_FRAME = 60;

export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export function ethType(buf: Uint8Array, off: number): number {
  return getU16(buf, off + ETH_TYPE);
}

export function setEthType(buf: Uint8Array, off: number, type: number): void {
  setU16(buf, off + ETH_TYPE, type);
}

/** Copy 6 bytes of MAC into buf[off..]. */
export function writeMacBytes(buf: Uint8Array, off: number, mac: Uint8Array): void {
  buf[off] = mac[0];
  buf[off + 1] = mac[1];
  buf[off + 2] = mac[2];
  buf[off + 3] = mac[3];
  buf[off + 4] = mac[4];
  buf[off + 5] = mac[5];
}

/** Write destination, source and type of an Ethernet header at off. */
export function writeEthHeader(buf: Uint8Array, off: number, dst: Uint8Array, src: Uint8Array, type: number): void {
  writeMacBytes(buf, off + ETH_DST, dst);
  writeMacBytes(buf, off + ETH_SRC, src);
  setU16(buf, off + ETH_TYPE, type);
}

// ---- object form ------------------------------------------------------------

export interface EthernetFrame {
  dst: string;
  src: string;
  type: number;
  payload: Uint8Array;
}

export type EthernetError = 'eth-truncated';

/** Parse; payload is a view into buf (no copy). */
export function parseEthernet(buf: Uint8Array, off = 0, len = buf.length - off): ParseResult<EthernetFrame, EthernetError> {
  if (len < ETH_HLEN) return fail('eth-truncated');
  return ok({
    dst: formatMac(buf, off + ETH_DST),
    src: formatMac(buf, off + ETH_SRC),
    type: getU16(buf, off + ETH_TYPE),
    payload: buf.subarray(off + ETH_HLEN, off + len),
  });
}

/** Serialize (padding is up to the caller; see ETH_MIN_FRAME). Throws on a malformed MAC string (programming error). */
export function serializeEthernet(f: EthernetFrame): Uint8Array {
  const dst = parseMac(f.dst);
  const src = parseMac(f.src);
  if (dst === undefined || src === undefined) throw new TypeError(`bad MAC in ${f.dst} / ${f.src}`);
  const out = new Uint8Array(ETH_HLEN + f.payload.length);
  writeEthHeader(out, 0, dst, src, f.type);
  out.set(f.payload, ETH_HLEN);
  return out;
}
