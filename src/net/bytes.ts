// Field access on a Uint8Array by plain byte math: no DataView to cache per
// buffer, no allocation, inlined well by V8. Big-endian (network order) by
// default; the *le variants are little-endian (virtio_net_hdr, WireGuard).

export function getU16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

export function setU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

export function getU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

export function setU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Little-endian u16 (virtio_net_hdr fields). */
export function getU16le(buf: Uint8Array, off: number): number {
  return buf[off] | (buf[off + 1] << 8);
}

export function setU16le(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
}

/** Little-endian u32 (WireGuard's indices and counters). */
export function getU32le(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

export function setU32le(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

/**
 * A big-endian 32-bit field as a signed int32. The router keeps IPv4 addresses
 * in this form on its hot path: int32 values are V8 small integers, so passing
 * them between functions never boxes a number (an unsigned value >= 2^31
 * would become a heap number at every call boundary that is not inlined).
 * `>>> 0` turns one back into the unsigned form.
 */
export function getI32(buf: Uint8Array, off: number): number {
  return (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
}
