// virtio_net_hdr (the 12-byte form with num_buffers, as TUNSETVNETHDRSZ 12
// gives it): every packet on a Nic session starts with one. All fields are
// little-endian.
//
//   0 flags u8        NEEDS_CSUM = 1, DATA_VALID = 2
//   1 gso_type u8     NONE 0, TCPV4 1, UDP 3, TCPV6 4, | ECN 0x80
//   2 hdr_len u16     bytes of headers (Ethernet + IP + L4) in a GSO frame
//   4 gso_size u16    segment payload size for GSO
//   6 csum_start u16  where checksumming starts, from the Ethernet header
//   8 csum_offset u16 where the result goes, from csum_start
//  10 num_buffers u16
import { getU16le, setU16le } from './bytes.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const VNET_HDR_LEN = 12;

export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;

export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_ECN = 0x80;

export const VNET_FLAGS = 0;
export const VNET_GSO_TYPE = 1;
export const VNET_HDR_LEN_OFF = 2;
export const VNET_GSO_SIZE = 4;
export const VNET_CSUM_START = 6;
export const VNET_CSUM_OFFSET = 8;
export const VNET_NUM_BUFFERS = 10;

export function vnetFlags(buf: Uint8Array, off: number): number {
  return buf[off];
}
/** gso_type with the ECN bit masked off. */
export function vnetGsoType(buf: Uint8Array, off: number): number {
  return buf[off + 1] & ~VNET_GSO_ECN;
}
export function vnetHdrLen(buf: Uint8Array, off: number): number {
  return getU16le(buf, off + VNET_HDR_LEN_OFF);
}
export function vnetGsoSize(buf: Uint8Array, off: number): number {
  return getU16le(buf, off + VNET_GSO_SIZE);
}
export function vnetCsumStart(buf: Uint8Array, off: number): number {
  return getU16le(buf, off + VNET_CSUM_START);
}
export function vnetCsumOffset(buf: Uint8Array, off: number): number {
  return getU16le(buf, off + VNET_CSUM_OFFSET);
}
export function vnetNumBuffers(buf: Uint8Array, off: number): number {
  return getU16le(buf, off + VNET_NUM_BUFFERS);
}

/** Zero the header: "a complete frame, no offload" (what the router's own frames carry). */
export function vnetClear(buf: Uint8Array, off: number): void {
  buf.fill(0, off, off + VNET_HDR_LEN);
}

/** Known gso_type values (ECN bit ignored). */
export function vnetGsoKnown(gsoType: number): boolean {
  return gsoType === VNET_GSO_NONE || gsoType === VNET_GSO_TCPV4 || gsoType === VNET_GSO_UDP ||
    gsoType === VNET_GSO_TCPV6;
}

// ---- object form ------------------------------------------------------------

export interface VnetHeader {
  flags: number;
  /** Raw gso_type including the ECN bit. */
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
}

export const VNET_NONE: Readonly<VnetHeader> = Object.freeze({
  flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 0,
});

export type VnetError = 'vnet-truncated';

export function parseVnet(buf: Uint8Array, off = 0): ParseResult<VnetHeader, VnetError> {
  if (buf.length - off < VNET_HDR_LEN) return fail('vnet-truncated');
  return ok({
    flags: buf[off],
    gsoType: buf[off + 1],
    hdrLen: getU16le(buf, off + 2),
    gsoSize: getU16le(buf, off + 4),
    csumStart: getU16le(buf, off + 6),
    csumOffset: getU16le(buf, off + 8),
    numBuffers: getU16le(buf, off + 10),
  });
}

/** Write the header into out[off..off+12) (a new 12-byte array when out is omitted). */
export function serializeVnet(h: Partial<VnetHeader>, out?: Uint8Array, off = 0): Uint8Array {
  const b = out ?? new Uint8Array(VNET_HDR_LEN);
  b[off] = h.flags ?? 0;
  b[off + 1] = h.gsoType ?? 0;
  setU16le(b, off + 2, h.hdrLen ?? 0);
  setU16le(b, off + 4, h.gsoSize ?? 0);
  setU16le(b, off + 6, h.csumStart ?? 0);
  setU16le(b, off + 8, h.csumOffset ?? 0);
  setU16le(b, off + 10, h.numBuffers ?? 0);
  return b;
}
