// A PACKET_MMAP receive ring (TPACKET_V2) on a packet socket: the kernel
// writes each received frame into a frame of memory the reader has mapped,
// and flips the frame's status word; the reader takes frames by reading that
// word, with no system call per frame, and hands each frame back by writing
// it. Frames larger than a ring frame (GSO super-frames) are not cut: with
// PACKET_COPY_THRESH the kernel marks their ring frame TP_STATUS_COPY and
// queues the whole frame on the socket, in order, for recvmsg(2).
//
// TPACKET_V2, not V3: a V3 block is handed to the reader only when it is full
// or its timer (milliseconds) expires, which would add that to every round
// trip; a V2 frame is the reader's as soon as the kernel wrote it.
//
// Layout of a V2 frame (struct tpacket2_hdr, then the frame): tp_status u32
// at 0, tp_len u32 at 4 (the frame's length on the wire), tp_snaplen u32 at 8
// (bytes in the ring frame), tp_mac u16 at 12 (offset of the Ethernet header
// from the frame's start). With PACKET_VNET_HDR the virtio_net_hdr precedes
// the Ethernet header.
import { mapShared, setsockopt, type Mapping } from './libc.ts';
import { int32, SOL_PACKET } from './packet.ts';

const PACKET_RX_RING = 5;
const PACKET_COPY_THRESH = 7;
const PACKET_VERSION = 10;
const TPACKET_V2 = 1;

export const TP_STATUS_KERNEL = 0;
export const TP_STATUS_USER = 1;
export const TP_STATUS_COPY = 2;
/** struct tpacket2_hdr: the frame's header, before the sockaddr_ll and the data. */
export const TPACKET2_HDR_LEN = 32;
export const TP_LEN = 4;
export const TP_SNAPLEN = 8;
export const TP_MAC = 12;

/**
 * A ring frame: 2 KiB holds any 1500-byte-MTU frame with the headers (the
 * Ethernet header starts ~80 bytes in); longer ones come by recvmsg.
 */
export const RING_FRAME_SIZE = 2048;
/** Frames in the ring: 4 MiB, as many small frames as the socket's 4 MiB buffer held. */
export const RING_FRAMES = 2048;
const RING_BLOCK_SIZE = 64 * 1024;

export interface RxRing {
  /** The ring's memory (kernel-written frames). */
  map: Mapping;
  frameSize: number;
  frames: number;
}

/**
 * Remove the receive ring a packet socket may carry (a zero request; nothing
 * happens without one). The socket outlives its driver: init hands the same
 * one to a restarted driver, and the ring its predecessor set would otherwise
 * stay, taking every frame into memory nobody reads. Throws (EBUSY) while a
 * live process still maps the ring.
 */
export function removeRxRing(fd: number): void {
  setsockopt(fd, SOL_PACKET, PACKET_RX_RING, new Uint8Array(16));
}

/**
 * Give packet socket `fd` (without a ring: removeRxRing) a TPACKET_V2
 * receive ring and map it. Throws (the socket left without a ring) when the
 * kernel refuses; the caller then receives with recvmsg. Frames that do not fit a ring frame are queued
 * for recvmsg (TP_STATUS_COPY) while the socket's receive buffer has room.
 */
export function setupRxRing(fd: number, frameSize = RING_FRAME_SIZE, frames = RING_FRAMES): RxRing {
  if (RING_BLOCK_SIZE % frameSize !== 0 || frames % (RING_BLOCK_SIZE / frameSize) !== 0) {
    throw new RangeError(`packet ring: ${frames} frames of ${frameSize} bytes do not fill ${RING_BLOCK_SIZE}-byte blocks`);
  }
  setsockopt(fd, SOL_PACKET, PACKET_VERSION, int32(TPACKET_V2));
  setsockopt(fd, SOL_PACKET, PACKET_COPY_THRESH, int32(1));
  const req = new Uint8Array(16); // struct tpacket_req
  const v = new DataView(req.buffer);
  const blocks = (frames * frameSize) / RING_BLOCK_SIZE;
  v.setUint32(0, RING_BLOCK_SIZE, true);
  v.setUint32(4, blocks, true);
  v.setUint32(8, frameSize, true);
  v.setUint32(12, frames, true);
  setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req);
  try {
    return { map: mapShared(fd, frames * frameSize), frameSize, frames };
  } catch (e) {
    removeRxRing(fd); // an unmapped ring would swallow every frame: recvmsg reads again
    throw e;
  }
}
