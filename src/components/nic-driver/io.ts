// What the nic-driver's two link I/O paths (single.ts: a TAP, frame at a
// time; batched.ts: a packet socket, recvmmsg/sendmmsg) share: the counter
// ids and state of one driver, and the check of a frame the link put in a
// slot before it goes to the session.
import type { PacketSource } from '../../session/types.ts';
import { MSG_TRUNC } from '../../sys/libc.ts';
import type { MmsgVec } from '../../sys/mmsg.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import type { Counters } from '../../runtime/counters.ts';

/** Counter ids and shared state of one driver (index.ts defines them). */
export interface DriverIo {
  counters: Counters;
  ids: {
    rxFrames: number; rxBytes: number; txFrames: number; txBytes: number; rxBlocked: number;
    dropRunt: number; dropRxErr: number; dropRxTrunc: number; dropTxBusy: number; dropTxErr: number; dropTxRunt: number;
  };
  /** Shortest frame worth forwarding (vnet header + Ethernet header). */
  minFrame: number;
  /** 0, or 2 when the link's virtio-net header is the 10-byte one (the driver widens it in the slot). */
  pad: number;
  state: { blocked: boolean; lastRxError: number; lastTxError: number };
}

/**
 * Message i of a recvmmsg(2) into `vec`, received into the slot at `off`
 * (`cap` bytes offered): released and counted as truncated when the kernel
 * cut it, else as submitReceived. 1 when submitted.
 */
export function submitMessage(out: PacketSource, io: DriverIo, vec: MmsgVec, i: number, off: number, cap: number): number {
  const len = vec.length(i);
  if ((vec.flags(i) & MSG_TRUNC) !== 0 || len > cap) {
    out.release(off);
    io.counters.add(io.ids.dropRxTrunc);
    return 0;
  }
  return submitReceived(out, io, off, len);
}

/**
 * A frame of `len` bytes the link wrote at out.buf[off + pad]: the 10-byte
 * virtio-net header widened to the session's 12 when pad is 2, then
 * submitted (1), or released and counted as a runt (0).
 */
export function submitReceived(out: PacketSource, io: DriverIo, off: number, len: number): number {
  if (io.pad !== 0 && len >= 10) {
    const b = out.buf;
    b.copyWithin(off, off + io.pad, off + io.pad + 10);
    b[off + 10] = 0;
    b[off + 11] = 0;
    len += io.pad;
  }
  if (len < io.minFrame) {
    out.release(off);
    io.counters.add(io.ids.dropRunt);
    return 0;
  }
  out.submit(off, len);
  io.counters.add(io.ids.rxFrames);
  io.counters.add(io.ids.rxBytes, len - VNET_HDR_LEN);
  return 1;
}
