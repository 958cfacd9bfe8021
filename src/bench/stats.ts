// Summary statistics of a benchmark figure's repetitions: median and spread.
// NaN samples (a run that failed) are left out and counted.

export interface Summary {
  /** Samples that were numbers, in run order. */
  samples: number[];
  /** Runs whose value was missing (failed or not reported). */
  missing: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: the relative spread of the repetitions (0 for one sample). */
  spread: number;
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The q-quantile (0..1) of the finite values, interpolated between the nearest ranks (NaN when none). */
export function quantile(xs: readonly number[], q: number): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const h = (v.length - 1) * q;
  const lo = Math.floor(h);
  return lo + 1 < v.length ? v[lo] + (h - lo) * (v[lo + 1] - v[lo]) : v[lo];
}

export function summarize(xs: readonly number[]): Summary {
  const samples = xs.filter((x) => Number.isFinite(x));
  const missing = xs.length - samples.length;
  if (samples.length === 0) return { samples, missing, median: NaN, min: NaN, max: NaN, spread: NaN };
  const min = Math.min(...samples);
  const max = Math.max(...samples);
  const med = median(samples);
  return { samples, missing, median: med, min, max, spread: med !== 0 ? (max - min) / Math.abs(med) : 0 };
}

/** a / b, NaN when either is missing or b is 0. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}
