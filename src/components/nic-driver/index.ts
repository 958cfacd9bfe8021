// nic-driver: moves frames between one link device (a TAP, or an AF_PACKET
// socket) and one Nic session. It holds exactly two capabilities: the link fd
// (opened and configured by init) and its session end. Frames go straight
// from the link into a session slot and from a session slot to the link: no
// copy in JavaScript. A TAP moves one frame per read(2)/write(2) (single.ts);
// a packet socket up to BATCH per sendmmsg(2) (batched.ts) and receives
// through a PACKET_MMAP ring, GSO super-frames by recvmmsg(2) (ring.ts), or by
// recvmmsg(2) alone (batched.ts) with `rx-ring: false` or where the kernel
// refuses the ring.
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable, traceRuns } from '../../session/pollable.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import { NO_TRACE } from '../../trace/tracer.ts';
import { packetSocketStats } from '../../sys/packet.ts';
import { removeRxRing, setupRxRing, type RxRing } from '../../sys/packet-ring.ts';
import { parseNicDriverConfig } from './config.ts';
import { BATCH, batchedReceive, batchedSend } from './batched.ts';
import { ringReceive } from './ring.ts';
import { singleReceive, singleSend } from './single.ts';
import type { DriverIo } from './io.ts';

/** Shortest frame worth forwarding: vnet header + Ethernet header. */
const MIN_FRAME = VNET_HDR_LEN + 14;

export default function create(env: ComponentEnv): Component {
  const cfg = parseNicDriverConfig(env.config, env.configSource);
  const tap = env.fds.tap;
  const nic = env.sessions.get('nic');
  if (tap === undefined || nic === undefined) throw new Error('nic-driver needs the "tap" device and the "nic" session');
  const out = nic.out;
  const counters = env.counters;
  const rxFrames = counters.define('rx.frames');
  const rxBytes = counters.define('rx.bytes');
  const txFrames = counters.define('tx.frames');
  const txBytes = counters.define('tx.bytes');
  const rxBlocked = counters.define('rx.session-full');
  const dropRunt = counters.dropReason('rx-runt');
  const dropRxErr = counters.dropReason('tap-read-error');
  const dropTxBusy = counters.dropReason('tap-write-busy');
  const dropTxErr = counters.dropReason('tap-write-rejected');
  const dropTxRunt = counters.dropReason('tx-runt');
  const batched = env.packetLinks?.includes('tap') ?? false;
  // A packet socket on a kernel before 6.2 puts a 10-byte virtio_net_hdr before
  // each frame; the session's is 12 (num_buffers, always 0 here). The driver
  // then reads 2 bytes into the slot and moves the 10 header bytes down (and
  // back up before a write): 10-byte moves, no copy of the frame.
  const pad = VNET_HDR_LEN - (env.vnetHdrLen?.tap ?? VNET_HDR_LEN);
  if (pad !== 0 && pad !== 2) throw new Error(`nic-driver: unsupported virtio-net header length ${VNET_HDR_LEN - pad}`);
  /** blocked: no free slot: stop reading the link (the kernel queues, then drops) until acks return. */
  const state = { blocked: false, lastRxError: 0, lastTxError: 0 };
  const io: DriverIo = {
    counters,
    ids: {
      rxFrames, rxBytes, txFrames, txBytes, rxBlocked, dropRunt, dropRxErr, dropTxBusy, dropTxErr, dropTxRunt,
      dropRxTrunc: batched ? counters.dropReason('rx-truncated') : -1,
    },
    minFrame: MIN_FRAME,
    pad,
    state,
  };
  let ring: RxRing | undefined;
  let ringError = '';
  // A driver restarted on the same socket first removes the ring its predecessor left (if that fails, the
  // driver fails and init restarts it: a stale ring would take every frame while recvmmsg waits for none).
  if (batched) removeRxRing(tap);
  if (batched && cfg.rxRing) {
    try {
      ring = setupRxRing(tap);
    } catch (e) {
      ringError = (e as Error).message; // an older kernel: recvmmsg alone
      env.log.warn('packet ring refused: receiving by recvmmsg', { error: ringError });
    }
  }
  const packetRx = !batched ? undefined : ring !== undefined ? ringReceive(tap, ring, out, io) : batchedReceive(tap, out, io);
  const rx = packetRx ?? singleReceive(tap, out, io);
  const packetTx = batched ? batchedSend(tap, nic.in, io) : undefined;
  // Frames the kernel dropped at a packet socket's full receive queue (the
  // driver did not read in time) are counted by the kernel only: fold its
  // count (reset on each read) into ours every second and before each report.
  const dropLinkQueue = batched ? counters.dropReason('link-queue') : -1;
  const statsBuf = new Uint8Array(8);
  const foldLinkDrops = (): void => {
    const st = packetSocketStats(tap, statsBuf);
    if (typeof st !== 'number' && st.drops > 0) counters.add(dropLinkQueue, st.drops);
  };

  const tapRx: Pollable = {
    fd: tap,
    active: () => !state.blocked,
    run: () => rx.run(),
  };

  const space = out.spacePollable;
  const spaceWait: Pollable = {
    fd: space.fd,
    active: () => state.blocked,
    pending: () => state.blocked && (space.pending?.() ?? false),
    arm: () => state.blocked && (space.arm?.() ?? false),
    disarm: () => space.disarm?.(),
    run(readable: boolean): number {
      space.run(readable);
      state.blocked = false;
      return 0;
    },
  };

  const tx = packetTx !== undefined
    ? sinkPollable(nic.in, packetTx.frame, undefined, BATCH, packetTx.flush)
    : sinkPollable(nic.in, singleSend(tap, nic.in.buf, nic.in.address, io));

  // Tracing (src/trace/README.md) happens around this code, not in it. TAP:
  // the session end times each frame's read(2) (from alloc to submit or
  // release) and write(2) (the sink's handler), and traceRuns each receive
  // batch, all chained to the session's own tracepoints. Packet link: a
  // system call serves many frames, so each batch is the unit: rx_batch (one
  // recvmmsg with its allocs and submits), tx_batch (the sink's batch and one
  // sendmmsg).
  if (packetRx === undefined) {
    out.traceFill('driver.read');
    nic.in.traceHandler('driver.write');
    traceRuns(env.trace ?? NO_TRACE, 'driver.rx_batch', tapRx, true);
  } else {
    traceRuns(env.trace ?? NO_TRACE, 'driver.rx_batch', tapRx);
    traceRuns(env.trace ?? NO_TRACE, 'driver.tx_batch', tx);
  }

  return {
    start() {
      if (batched) setInterval(foldLinkDrops, 1000).unref();
      env.ep.add(tapRx);
      env.ep.add(spaceWait);
      env.ep.add(tx);
    },
    status() {
      if (batched) foldLinkDrops();
      return {
        blocked: state.blocked, lastRxErrno: state.lastRxError, lastTxErrno: state.lastTxError,
        ...(packetRx !== undefined ? { batched: true, rxRing: ring !== undefined, reservedSlots: packetRx.reserved() } : {}),
        ...(ringError !== '' ? { rxRingError: ringError } : {}),
      };
    },
    sessionReset() {
      state.blocked = false;
    },
  };
}
