// nic-driver: moves frames between one TAP device and one Nic session.
// It holds exactly two capabilities: the TAP fd (opened and configured by
// init) and its session end. Frames go straight from read(2) into a session
// slot and from a session slot into write(2): no copy in JavaScript.
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable, traceRuns } from '../../session/pollable.ts';
import { VNET_HDR_LEN } from '../../session/types.ts';
import { EAGAIN, EINTR, readAddr, writeAddr } from '../../sys/libc.ts';
import { NO_TRACE } from '../../trace/tracer.ts';
import { parseNicDriverConfig } from './config.ts';

/** Frames read from the TAP per entrypoint turn before others get a go. */
const RX_BUDGET = 64;
/** Shortest frame worth forwarding: vnet header + Ethernet header. */
const MIN_FRAME = VNET_HDR_LEN + 14;

export default function create(env: ComponentEnv): Component {
  parseNicDriverConfig(env.config, env.configSource);
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
  // A packet socket on a kernel before 6.2 puts a 10-byte virtio_net_hdr before
  // each frame; the session's is 12 (num_buffers, always 0 here). The driver
  // then reads 2 bytes into the slot and moves the 10 header bytes down (and
  // back up before a write): 10-byte moves, no copy of the frame.
  const pad = VNET_HDR_LEN - (env.vnetHdrLen?.tap ?? VNET_HDR_LEN);
  if (pad !== 0 && pad !== 2) throw new Error(`nic-driver: unsupported virtio-net header length ${VNET_HDR_LEN - pad}`);
  const outBuf = out.buf;
  const inBuf = nic.in.buf;
  let lastRxError = 0;
  let lastTxError = 0;
  /** No free slot: stop reading the TAP (the kernel queues, then drops) until acks return. */
  let blocked = false;

  const tapRx: Pollable = {
    fd: tap,
    active: () => !blocked,
    run(): number {
      let n = 0;
      while (n < RX_BUDGET) {
        const off = out.alloc();
        if (off < 0) {
          blocked = true;
          counters.add(rxBlocked);
          break;
        }
        let len = readAddr(tap, out.address + off + pad, out.slotSize - pad);
        if (pad !== 0 && len >= 10) {
          outBuf.copyWithin(off, off + pad, off + pad + 10);
          outBuf[off + 10] = 0;
          outBuf[off + 11] = 0;
          len += pad;
        }
        if (len < 0) {
          out.release(off);
          if (len === -EAGAIN || len === -EINTR) break;
          counters.add(dropRxErr);
          lastRxError = -len;
          break;
        }
        if (len < MIN_FRAME) {
          out.release(off);
          counters.add(dropRunt);
          continue;
        }
        out.submit(off, len);
        counters.add(rxFrames);
        counters.add(rxBytes, len - VNET_HDR_LEN);
        n++;
      }
      if (n > 0) out.flush();
      return n;
    },
  };

  const space = out.spacePollable;
  const spaceWait: Pollable = {
    fd: space.fd,
    active: () => blocked,
    pending: () => blocked && (space.pending?.() ?? false),
    arm: () => blocked && (space.arm?.() ?? false),
    disarm: () => space.disarm?.(),
    run(readable: boolean): number {
      space.run(readable);
      blocked = false;
      return 0;
    },
  };

  const tx = sinkPollable(nic.in, (off, len) => {
    if (len < MIN_FRAME) {
      counters.add(dropTxRunt);
      return;
    }
    if (pad !== 0) inBuf.copyWithin(off + pad, off, off + 10); // the 10-byte header right before the frame
    const w = writeAddr(tap, nic.in.address + off + pad, len - pad);
    if (w < 0) {
      if (w === -EAGAIN) counters.add(dropTxBusy);
      else {
        counters.add(dropTxErr);
        lastTxError = -w;
      }
      return;
    }
    counters.add(txFrames);
    counters.add(txBytes, len - VNET_HDR_LEN);
  });

  // Tracing (src/trace/README.md) happens around this code, not in it: the
  // session end times each frame's read(2) (from alloc to submit or release)
  // and write(2) (the sink's handler), and traceRuns each receive batch, all
  // chained to the session's own tracepoints.
  out.traceFill('driver.read');
  nic.in.traceHandler('driver.write');
  traceRuns(env.trace ?? NO_TRACE, 'driver.rx_batch', tapRx, true);

  return {
    start() {
      env.ep.add(tapRx);
      env.ep.add(spaceWait);
      env.ep.add(tx);
    },
    status() {
      return { blocked, lastRxErrno: lastRxError, lastTxErrno: lastTxError };
    },
    sessionReset() {
      blocked = false;
    },
  };
}
