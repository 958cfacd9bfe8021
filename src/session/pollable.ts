// Glue between a packet sink and the entrypoint: one pollable that wakes on the
// sink's signal, delivers a batch to the component, acknowledges it, then lets
// the component flush what the batch produced (once per batch, not per packet).
import type { PacketSink, Pollable } from './types.ts';

export type { Pollable };


export function sinkPollable(
  sink: PacketSink,
  onPacket: (offset: number, length: number) => void,
  afterBatch?: () => void,
  budget = 64,
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
      sink.flushAcks();
      if (afterBatch !== undefined && n > 0) afterBatch();
      return n;
    },
  };
}
