// The nic-driver's frame-at-a-time link I/O, for TAP devices (a TAP moves one
// frame per read(2) / write(2); batched.ts is the packet-socket path): frames
// go straight from read(2) into a session slot and from a slot into
// write(2), no copy. Every length checked, every drop counted under the
// reasons DriverIo names.
import type { PacketSource } from '../../session/types.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import { EAGAIN, EINTR, readAddr, writeAddr } from '../../sys/libc.ts';
import { submitReceived, type DriverIo } from './io.ts';

/** Frames read per entrypoint turn before others get a go. */
export const RX_BUDGET = 64;

/** Receive from `fd` into `out`'s slots, one read(2) per frame: run() returns frames submitted. */
export function singleReceive(fd: number, out: PacketSource, io: DriverIo): { run(): number } {
  const { counters, ids, pad, state } = io;
  return {
    run(): number {
      let n = 0;
      while (n < RX_BUDGET) {
        const off = out.alloc();
        if (off < 0) {
          state.blocked = true;
          counters.add(ids.rxBlocked);
          break;
        }
        const len = readAddr(fd, out.address + off + pad, out.slotSize - pad);
        if (len < 0) {
          out.release(off);
          if (len === -EAGAIN || len === -EINTR) break;
          counters.add(ids.dropRxErr);
          state.lastRxError = -len;
          break;
        }
        n += submitReceived(out, io, off, len);
      }
      if (n > 0) out.flush();
      return n;
    },
  };
}

/** The session sink's handler: one write(2) of the frame at buf[off, off + len) (buf at `address`). */
export function singleSend(fd: number, buf: Uint8Array, address: number, io: DriverIo): (off: number, len: number) => void {
  const { counters, ids, pad, minFrame, state } = io;
  return (off, len) => {
    if (len < minFrame) {
      counters.add(ids.dropTxRunt);
      return;
    }
    if (pad !== 0) buf.copyWithin(off + pad, off, off + 10); // the 10-byte header right before the frame
    const w = writeAddr(fd, address + off + pad, len - pad);
    if (w < 0) {
      if (w === -EAGAIN) counters.add(ids.dropTxBusy);
      else {
        counters.add(ids.dropTxErr);
        state.lastTxError = -w;
      }
      return;
    }
    counters.add(ids.txFrames);
    counters.add(ids.txBytes, len - VNET_HDR_LEN);
  };
}
