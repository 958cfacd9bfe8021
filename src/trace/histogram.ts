// Latency histograms. The hot path counts into a fixed log-linear bucket
// array (bucketOf: a clz32, a shift and an add, ~10 ns); everything else —
// percentiles, merging, the interchange format — is HdrHistogram
// (hdr-histogram-js), built from the buckets off the hot path. Recording into
// hdr-histogram-js directly costs 45-60 ns per value here (measured by
// `microgate trace bench`), as much as reading the clock, so it is not done
// per event.
//
// Buckets: values 0..63 ns are exact; above, every power of two is split into
// 32 linear sub-buckets (relative error <= 1/64 at the bucket's midpoint), up
// to 2^40 ns (18 min); longer values land in the last bucket.
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const MAX_EXP = 40;
/** Buckets per histogram. */
export const BUCKETS = (MAX_EXP - SUB_BITS + 2) << SUB_BITS; // 1184

/** The bucket of a duration in ns (>= 0). */
export function bucketOf(ns: number): number {
  if (ns < 2147483648) {
    const v = ns | 0;
    if (v < 2 * SUB) return v < 0 ? 0 : v;
    const e = 31 - Math.clz32(v);
    return ((e - SUB_BITS + 1) << SUB_BITS) | ((v >>> (e - SUB_BITS)) & (SUB - 1));
  }
  return bucketOfLarge(ns);
}

function bucketOfLarge(ns: number): number {
  let e = Math.floor(Math.log2(ns));
  if (e > MAX_EXP) return BUCKETS - 1;
  // log2 may round up at exact powers of two minus a little.
  if (2 ** e > ns) e--;
  const sub = Math.floor(ns / 2 ** (e - SUB_BITS)) & (SUB - 1);
  return ((e - SUB_BITS + 1) << SUB_BITS) | sub;
}

/** Lowest value of a bucket and its width, in ns. */
export function bucketRange(b: number): [low: number, width: number] {
  if (b < 2 * SUB) return [b, 1];
  const e = (b >>> SUB_BITS) + SUB_BITS - 1;
  const sub = b & (SUB - 1);
  const width = 2 ** (e - SUB_BITS);
  return [(SUB + sub) * width, width];
}

/** A representative value of a bucket (its midpoint, rounded down). */
export function bucketValue(b: number): number {
  const [low, width] = bucketRange(b);
  return low + Math.floor(width / 2);
}

const HDR_OPTS = { lowestDiscernibleValue: 1, highestTrackableValue: 2 ** 42, numberOfSignificantValueDigits: 3 as const, autoResize: true };

/** An empty HdrHistogram of durations in ns. */
export function emptyHdr(): Histogram {
  return hdr.build(HDR_OPTS);
}

/** An HdrHistogram of the `BUCKETS` counts starting at counts[base]. */
export function bucketsToHdr(counts: Float64Array, base = 0): Histogram {
  const h = emptyHdr();
  for (let b = 0; b < BUCKETS; b++) {
    const n = counts[base + b];
    if (n > 0) h.recordValueWithCount(Math.max(1, bucketValue(b)), n);
  }
  return h;
}

/** The HdrHistogram compressed base64 form (the HdrHistogram log format's encoding). */
export function encodeHdr(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHdr(base64: string): Histogram {
  return hdr.decodeFromCompressedBase64(base64, 64);
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
}

/** p50, p99 and p99.9 of a histogram, in its unit; each at most `max` (the exact maximum, when known). */
export function percentiles(h: Histogram, max = Infinity): Percentiles {
  if (h.totalCount === 0) return { p50: 0, p99: 0, p999: 0 };
  const at = (p: number): number => Math.min(max, h.getValueAtPercentile(p));
  return { p50: at(50), p99: at(99), p999: at(99.9) };
}
