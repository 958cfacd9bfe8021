// The tracing clock. Tracepoints read performance.now(): a double (no BigInt
// to allocate, unlike process.hrtime.bigint()), milliseconds with sub-ns
// resolution, taken from CLOCK_MONOTONIC but relative to this thread's own
// origin (every worker thread has its own). To put the events of every
// component and thread on one time line, each thread measures once the offset
// between its performance.now() and CLOCK_MONOTONIC (process.hrtime), which all
// processes of the machine share.

/** CLOCK_MONOTONIC in ns, minus performance.now() in ns, for this thread (best of 16 samples). */
export function monotonicOffsetNs(): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 16; i++) {
    const a = performance.now();
    const m = process.hrtime.bigint();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = Number(m) - ((a + b) / 2) * 1e6;
    }
  }
  return offset;
}

/** ns to add to a CLOCK_MONOTONIC time to get Unix time (ms precision: Date.now). */
export function unixOffsetNs(): number {
  return Date.now() * 1e6 - Number(process.hrtime.bigint());
}
