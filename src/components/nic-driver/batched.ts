// The nic-driver's batched link I/O, for packet links (an AF_PACKET socket,
// device `kind: packet`): up to BATCH frames per system call each way, still
// straight into and out of session slots (no copy).
//
// Receive: the driver keeps up to BATCH slots reserved (alloc'ed, not yet
// submitted), each with an iovec pointing into it, and one recvmmsg(2) fills
// as many as the socket has frames for. Used slots are submitted, the rest
// stay reserved for the next call (the last ones move into the used
// positions: one iovec rewrite per frame), so a turn that brings one frame
// costs one alloc, not BATCH allocs and releases.
//
// Send: the sink's handler only points an iovec at each frame; one
// sendmmsg(2) sends the batch before its acks are published (beforeAcks), so
// the slots are still the peer's and unchanged by us (PacketSink.heldUntilAck;
// over a socket session, whose sink reuses one buffer, every frame is sent on
// its own).
//
// Every length the kernel reports is checked, and every drop counted under
// the same reasons as the TAP path's (plus rx-truncated: a frame longer than
// a slot, cut by the kernel, MSG_TRUNC).
import type { PacketSink, PacketSource } from '../../session/types.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import { EAGAIN, EINTR } from '../../sys/libc.ts';
import { MmsgVec } from '../../sys/mmsg.ts';
import { submitMessage, type DriverIo } from './io.ts';

/** Frames per recvmmsg(2) / sendmmsg(2) (and the sink's receive budget). */
export const BATCH = 64;

/** Batched receive from `fd` into `out`'s slots: run() returns frames submitted. */
export function batchedReceive(fd: number, out: PacketSource, io: DriverIo): { run(): number; reserved(): number; close(): void } {
  const { counters, ids, pad, state } = io;
  const vec = new MmsgVec(BATCH);
  const slot = new Int32Array(BATCH);
  const cap = out.slotSize - pad;
  let have = 0;
  return {
    run(): number {
      while (have < BATCH) {
        const off = out.alloc();
        if (off < 0) break;
        slot[have] = off;
        vec.set(have, out.address + off + pad, cap);
        have++;
      }
      if (have === 0) {
        state.blocked = true;
        counters.add(ids.rxBlocked);
        return 0;
      }
      const r = vec.recv(fd, have);
      if (r < 0) {
        if (r !== -EAGAIN && r !== -EINTR) {
          counters.add(ids.dropRxErr);
          state.lastRxError = -r;
        }
        return 0;
      }
      let n = 0;
      for (let i = 0; i < r; i++) n += submitMessage(out, io, vec, i, slot[i], cap);
      // The unused reservations move into the used positions (the last ones first).
      const left = have - r;
      const m = left < r ? left : r;
      for (let k = 0; k < m; k++) {
        const off = slot[have - 1 - k];
        slot[k] = off;
        vec.set(k, out.address + off + pad, cap);
      }
      have = left;
      if (n > 0) out.flush();
      return n;
    },
    reserved: () => have,
    close: () => vec.close(),
  };
}

/**
 * Batched send of `sink`'s frames to `fd`: `frame` is the sink's handler
 * (collects one frame), `flush` sends what was collected (call it before the
 * acks are published: sinkPollable's beforeAcks).
 */
export function batchedSend(fd: number, sink: PacketSink, io: DriverIo): { frame(off: number, len: number): void; flush(): void; close(): void } {
  const { counters, ids, pad, minFrame, state } = io;
  const vec = new MmsgVec(BATCH);
  const lens = new Int32Array(BATCH);
  const inBuf = sink.buf;
  const held = sink.heldUntilAck;
  let q = 0;
  const flush = (): void => {
    let i = 0;
    while (i < q) {
      const r = vec.send(fd, i, q - i);
      if (r === -EINTR) continue;
      if (r <= 0) {
        if (r === -EAGAIN || r === 0) {
          // The socket takes nothing now: every frame left is dropped, as write(2) would have.
          counters.add(ids.dropTxBusy, q - i);
          break;
        }
        // The kernel refused frame i (e.g. a bad GSO header from the peer): drop it, send on.
        counters.add(ids.dropTxErr);
        state.lastTxError = -r;
        i++;
        continue;
      }
      for (let k = i; k < i + r; k++) counters.add(ids.txBytes, lens[k] - VNET_HDR_LEN);
      counters.add(ids.txFrames, r);
      i += r;
    }
    q = 0;
  };
  return {
    frame(off: number, len: number): void {
      if (len < minFrame) {
        counters.add(ids.dropTxRunt);
        return;
      }
      if (pad !== 0) inBuf.copyWithin(off + pad, off, off + 10); // the 10-byte header right before the frame
      vec.set(q, sink.address + off + pad, len - pad);
      lens[q] = len;
      q++;
      if (!held || q === BATCH) flush();
    },
    flush,
    close: () => vec.close(),
  };
}
