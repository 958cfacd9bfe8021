// Glue between a packet sink and the entrypoint: one pollable that wakes on the
// sink's signal, delivers a batch to the component, lets it finish with the
// batch's packets (beforeAcks: e.g. send them all in one call), acknowledges
// them, then lets the component flush what the batch produced (once per batch,
// not per packet).
// And traceRuns(): a pollable's batches timed as one procedure, so the
// component's code needs no tracepoint for them.
import type { PacketSink, Pollable } from './types.ts';
import { NO_TRACE } from '../trace/tracer.ts';
import type { Tracer } from '../trace/tracer.ts';

export type { Pollable };


export function sinkPollable(
  sink: PacketSink,
  onPacket: (offset: number, length: number) => void,
  afterBatch?: () => void,
  budget = 64,
  beforeAcks?: () => void,
): Pollable {
  return {
    // A getter: a sink may stop offering its fd (a socket that hung up reports -1).
    get fd(): number {
      return sink.fd;
    },
    pending: () => sink.pending(),
    arm: () => sink.arm(),
    disarm: () => sink.disarm(),
    run(readable: boolean): number {
      if (readable) sink.clearWakeup();
      const n = sink.receive(onPacket, budget);
      if (beforeAcks !== undefined) beforeAcks();
      sink.flushAcks();
      if (afterBatch !== undefined && n > 0) afterBatch();
      return n;
    },
  };
}

/**
 * Time every run() of `p` as one span of procedure `name` on `tr` (argument:
 * the work run() returned): a component's batch, timed from outside its code.
 * `chained`: run() starts and ends with a tracepoint of `tr` (a session call
 * such as alloc() first, flush() or release() last), so the batch's span
 * starts where the first one starts and ends where the last one ends,
 * without clock readings of its own. Returns `p`, whose run() it wraps.
 */
export function traceRuns(tr: Tracer, name: string, p: Pollable, chained = false): Pollable {
  if (tr === NO_TRACE) return p;
  const id = tr.proc(name);
  const run = p.run;
  p.run = (readable: boolean): number => {
    const t0 = tr.begin();
    if (chained) tr.chainNext();
    const n = run.call(p, readable);
    if (chained) tr.chainNext();
    tr.end(id, t0, n);
    return n;
  };
  return p;
}
