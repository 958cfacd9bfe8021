// The nic-driver's receive from a packet link's PACKET_MMAP ring
// (src/sys/packet-ring.ts): the kernel writes each frame into the ring; the
// driver copies it into a session slot and hands the ring frame back, with no
// system call per frame. A frame too large for a ring frame (a GSO
// super-frame) is marked TP_STATUS_COPY and waits whole on the socket: the
// driver reserves a slot for it and receives it there by recvmmsg(2), several
// such frames per call, in ring order (no reordering between the two ways).
//
// The ring is kernel memory, but every length and offset read from a ring
// frame is still checked against the frame before it is used, and every drop
// counted under the batched path's reasons (rx-truncated: a frame cut to its
// ring frame because the socket had no room to queue it whole).
import type { PacketSource } from '../../session/types.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import { EAGAIN, EINTR } from '../../sys/libc.ts';
import { MmsgVec } from '../../sys/mmsg.ts';
import { TP_LEN, TP_MAC, TP_SNAPLEN, TP_STATUS_COPY, TP_STATUS_KERNEL, TP_STATUS_USER, TPACKET2_HDR_LEN, type RxRing } from '../../sys/packet-ring.ts';
import { BATCH } from './batched.ts';
import { submitMessage, type DriverIo } from './io.ts';

/** The classic virtio_net_hdr the kernel writes right before the Ethernet header in a ring frame. */
const RING_VNET_LEN = 10;

/**
 * Handing a ring frame back is a release store: the frame must be read
 * before the kernel sees TP_STATUS_KERNEL and writes the next frame there
 * (the kernel's side of the ring uses smp_store_release / smp_load_acquire).
 * On x86-64 every store is a release (TSO: a store is never reordered with
 * earlier loads), which is why smp_store_release is a plain store there: so
 * is ours. Elsewhere (arm64) Atomics.store, sequentially consistent. The
 * plain store saves the locked exchange V8 emits for Atomics.store, ~1/5 of
 * the driver's samples at 64-byte overload (the status word's cache line was
 * just written by the kernel on the other CPU).
 */
const PLAIN_RELEASE = process.arch === 'x64';

/** Receive from `ring` (and, for frames marked COPY, from socket `fd`) into `out`'s slots: run() returns frames submitted. */
export function ringReceive(fd: number, ring: RxRing, out: PacketSource, io: DriverIo): { run(): number; reserved(): number; close(): void } {
  const { counters, ids, pad, state } = io;
  const words = new Uint32Array(ring.map.buffer);
  const bytes = Buffer.from(ring.map.buffer);
  const frameSize = ring.frameSize;
  const frames = ring.frames;
  const cap = out.slotSize - pad;
  // COPY frames waiting to be received whole: their slots and iovecs.
  const vec = new MmsgVec(BATCH);
  const copySlot = new Int32Array(BATCH);
  let copies = 0;
  let next = 0;

  /** Receive the `copies` frames queued on the socket into their reserved slots, in order. */
  const receiveCopies = (): number => {
    let r = vec.recv(fd, copies);
    if (r < 0) {
      if (r !== -EAGAIN && r !== -EINTR) state.lastRxError = -r;
      r = 0;
    }
    let n = 0;
    for (let i = 0; i < copies; i++) {
      const off = copySlot[i];
      if (i >= r) { // the kernel had queued it: it can only be gone if the socket was reset
        out.release(off);
        counters.add(ids.dropRxErr);
        continue;
      }
      n += submitMessage(out, io, vec, i, off, cap);
    }
    copies = 0;
    return n;
  };

  return {
    run(): number {
      let n = 0;
      // At most BATCH ring frames per turn (so at most BATCH queued copies at once).
      let seen = 0;
      while (seen < BATCH) {
        const base = next * frameSize;
        const w = base >>> 2;
        const status = Atomics.load(words, w);
        if ((status & TP_STATUS_USER) === 0) break;
        const off = out.alloc();
        if (off < 0) {
          state.blocked = true;
          counters.add(ids.rxBlocked);
          break;
        }
        seen++;
        if ((status & TP_STATUS_COPY) !== 0) {
          copySlot[copies] = off;
          vec.set(copies, out.address + off + pad, cap);
          copies++;
        } else {
          if (copies > 0) n += receiveCopies(); // the frames before this one first
          const len = words[w + (TP_LEN >>> 2)];
          const snap = words[w + (TP_SNAPLEN >>> 2)];
          const mac = words[w + (TP_MAC >>> 2)] & 0xffff;
          if (snap < len || mac < TPACKET2_HDR_LEN + RING_VNET_LEN || mac + snap > frameSize || snap + VNET_HDR_LEN > out.slotSize) {
            out.release(off);
            counters.add(ids.dropRxTrunc);
          } else if (snap + VNET_HDR_LEN < io.minFrame) {
            out.release(off);
            counters.add(ids.dropRunt);
          } else {
            // The session's 12-byte header: the kernel's 10 bytes, then num_buffers = 0.
            const b = out.buf;
            const h = base + mac - RING_VNET_LEN;
            for (let k = 0; k < RING_VNET_LEN; k++) b[off + k] = bytes[h + k];
            b[off + 10] = 0;
            b[off + 11] = 0;
            bytes.copy(b, off + VNET_HDR_LEN, base + mac, base + mac + snap);
            out.submit(off, snap + VNET_HDR_LEN);
            counters.add(ids.rxFrames);
            counters.add(ids.rxBytes, snap);
            n++;
          }
        }
        if (PLAIN_RELEASE) words[w] = TP_STATUS_KERNEL;
        else Atomics.store(words, w, TP_STATUS_KERNEL);
        next = next + 1 === frames ? 0 : next + 1;
      }
      if (copies > 0) n += receiveCopies();
      if (n > 0) out.flush();
      return n;
    },
    reserved: () => 0,
    close: () => {
      vec.close();
      ring.map.unmap();
    },
  };
}
