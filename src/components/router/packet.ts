// The packet being handled: ONE object per router, allocated once and reused
// for every packet (no allocation per packet). receive() copies the frame out
// of the shared ingress slot into `buf` (private: no other process can write
// it) at offset 0; every later step parses, decides and rewrites only there,
// filling in the fields below as it learns them, instead of passing them down
// long argument lists.
import { Buffer } from 'node:buffer';
import { ETH_HLEN } from '../../net/ethernet.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';

/** Bytes before the IP header in a packet: virtio_net_hdr + Ethernet (the IP header's offset in Packet.buf). */
export const L3 = VNET_HDR_LEN + ETH_HLEN;

export class Packet {
  /**
   * The private copy of the frame (virtio_net_hdr + Ethernet), at offset 0.
   * IPv6 points it at the rebuilt datagram of its reassembler while it decides
   * on a fragmented datagram (forward6.ts), then back at `home`.
   */
  buf: Uint8Array;
  /** The packet buffer receive() copies frames into. */
  readonly home: Uint8Array;
  /** buf as 32-bit words, for copyFrame(). */
  readonly buf32: Int32Array;
  /** buf holds the current packet (false in timers: drops then have no packet to describe). */
  has = false;
  /** Ingress domain. */
  dom = 0;
  /** Bytes of the frame in buf (vnet header included). */
  len = 0;
  /** IPv4 header length; the L4 header is at l4 = L3 + ihl, l4Len bytes to the IP total length. */
  ihl = 0;
  l4 = 0;
  l4Len = 0;
  proto = 0;
  /** Addresses as int32 (getI32), so never boxed. */
  src = 0;
  dst = 0;
  /** TCP/UDP ports; for ICMP echo both are the identifier. */
  sport = 0;
  dport = 0;
  tcpFlags = 0;
  /** ICMP type, or -1 for TCP/UDP. */
  icmpType = -1;
  /** vnet NEEDS_CSUM: the L4 checksum field holds the partial pseudo-header sum. */
  needsCsum = false;

  constructor(size: number) {
    this.buf = this.home = new Uint8Array((size + 3) & ~3);
    this.buf32 = new Int32Array(this.home.buffer);
  }
}

/** Frames up to this length are copied word by word: a native Buffer copy costs more in call overhead than it saves. */
const SMALL_FRAME = 256;
// Buffer#copy accepts any Uint8Array as `this` and target: a native copy with
// no view allocated per packet (subarray + set allocates a view each time).
const copyBytes = Buffer.prototype.copy;

/** buf as 32-bit words, when it starts on a 4-byte boundary (else undefined: copyFrame() then copies natively). */
export function words(buf: Uint8Array): Int32Array | undefined {
  return buf.byteOffset % 4 === 0 ? new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2) : undefined;
}

/**
 * Copy src[so, so+len) to dst[d, d+len): small frames at 4-byte aligned
 * offsets word by word through the 32-bit views (never writing past len),
 * the rest with the native copy. Allocates nothing.
 */
export function copyFrame(src: Uint8Array, src32: Int32Array | undefined, so: number,
  dst: Uint8Array, dst32: Int32Array | undefined, d: number, len: number): void {
  if (len > SMALL_FRAME || src32 === undefined || dst32 === undefined || ((so | d) & 3) !== 0) {
    copyBytes.call(src, dst, d, so, so + len);
    return;
  }
  const n = len >>> 2;
  const si = so >>> 2;
  const di = d >>> 2;
  for (let i = 0; i < n; i++) dst32[di + i] = src32[si + i];
  for (let k = n << 2; k < len; k++) dst[d + k] = src[so + k];
}
