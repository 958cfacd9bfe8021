// The router's loop glue for backpressure (egress-hold.ts): an ingress that
// takes nothing, and sleeps on its egresses' slots (not on its own ring),
// while one of them holds it; and, per egress,
// the wait for its slots to come back, armed only while it holds an ingress.
import type { PacketSink, PacketSource, Pollable } from '../../session/types.ts';
import type { EgressHold } from './egress-hold.ts';

/**
 * `sink` (domain `dom`'s ingress) as a pollable: unless the hold holds the
 * domain, each run delivers at most `budget` frames to onPacket, acknowledges
 * them, tells the hold which egresses they went to, then calls afterBatch
 * (the router's flush) when there were any.
 */
export function heldIngress(sink: PacketSink, hold: EgressHold, dom: number, onPacket: (offset: number, length: number) => void,
  afterBatch: () => void, budget = 64): Pollable {
  const open = (): boolean => !hold.held(dom);
  return {
    get fd(): number {
      return sink.fd;
    },
    // Held: the ring is not polled (its frames wait there) and its peer is not asked to wake us.
    active: open,
    pending: () => sink.pending() && open(),
    arm: () => open() && sink.arm(),
    disarm: () => sink.disarm(),
    run(readable: boolean): number {
      if (readable) sink.clearWakeup();
      if (!open()) return 0;
      const n = sink.receive(onPacket, budget);
      sink.flushAcks();
      hold.done(dom, n);
      if (n > 0) afterBatch();
      return n;
    },
  };
}

/** Egress `dom`'s slots coming back, as a pollable that wakes the loop only while that egress holds an ingress. */
export function egressSpace(out: PacketSource, hold: EgressHold, dom: number): Pollable {
  const space = out.spacePollable;
  return {
    get fd(): number {
      return space.fd;
    },
    active: () => hold.holding(dom),
    pending: () => hold.holding(dom) && (space.pending?.() ?? false),
    arm: () => hold.holding(dom) && (space.arm?.() ?? false),
    disarm: () => space.disarm?.(),
    run(readable: boolean): number {
      const n = space.run(readable);
      hold.reclaimed(dom);
      return n;
    },
  };
}
