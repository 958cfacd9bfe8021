// What waking a sleeping thread costs on this machine, measured by init at
// start for `scheduling.spin-us: auto` (docs/PERFORMANCE.md, "Polling budget"):
// two threads hand a token back and forth through a futex (Atomics.wait /
// Atomics.notify, what an eventfd wake-up costs too: the sleeper is put back on
// a CPU), and the median round trip (two wake-ups) is the budget a component
// loop polls before it sleeps: a peer that answers within that time is caught
// without either side paying for a wake-up.
import { Worker } from 'node:worker_threads';

/** Bounds of the measured budget, ns: a quirk of one measurement cannot make loops spin long or never. */
export const WAKE_BUDGET_MIN_NS = 5_000;
export const WAKE_BUDGET_MAX_NS = 200_000;

const WORKER = `
const { workerData } = require('node:worker_threads');
const a = new Int32Array(workerData.sab);
for (let i = 0; i < workerData.n; i++) {
  while (Atomics.load(a, 0) !== 1) Atomics.wait(a, 0, 0);
  Atomics.store(a, 0, 0);
  Atomics.store(a, 1, 1);
  Atomics.notify(a, 1);
}
`;

export interface WakeCost {
  /** Median round trip (two wake-ups), ns. */
  roundTripNs: number;
  /** The polling budget derived from it, ns (roundTripNs within the bounds above). */
  budgetNs: number;
  rounds: number;
}

/** Measure `rounds` round trips between this thread and a worker (default 2000, ~50 ms). */
export async function measureWakeCost(rounds = 2000): Promise<WakeCost> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(WORKER, { eval: true, workerData: { sab, n: rounds } });
  const times = new Float64Array(rounds);
  try {
    await new Promise<void>((resolve, reject) => {
      w.once('online', resolve);
      w.once('error', reject);
    });
    for (let i = 0; i < rounds; i++) {
      // Let the worker reach its wait first, so each round measures a wake-up, not a race.
      const t0 = process.hrtime.bigint();
      Atomics.store(a, 0, 1);
      Atomics.notify(a, 0);
      while (Atomics.load(a, 1) !== 1) Atomics.wait(a, 1, 0, 1000);
      Atomics.store(a, 1, 0);
      times[i] = Number(process.hrtime.bigint() - t0);
    }
  } finally {
    await w.terminate();
  }
  // The first rounds warm up the worker's code: judge the later half.
  const tail = Array.from(times.subarray(rounds >> 1)).sort((x, y) => x - y);
  const roundTripNs = tail[tail.length >> 1];
  return { roundTripNs, budgetNs: Math.round(Math.min(WAKE_BUDGET_MAX_NS, Math.max(WAKE_BUDGET_MIN_NS, roundTripNs))), rounds };
}
