// Token buckets for new-connection rate limits: one bucket (a domain's total)
// or a fixed array of buckets indexed by a hash of the source address (per
// source). Sources whose hashes collide share a bucket: memory stays fixed
// whatever the number of sources (a random-source flood cannot grow it), at
// the price of limiting colliding sources together. The hash is keyed with
// the process's secret (src/net/keyed-hash.ts), so nobody can pick source
// addresses that land in a victim's bucket to drain it. No allocation per call.
import { khash1 } from '../../net/keyed-hash.ts';

export class TokenBuckets {
  /** Tokens per millisecond. */
  readonly #rate: number;
  readonly #burst: number;
  readonly #mask: number;
  readonly #tokens: Float64Array;
  readonly #last: Float64Array;

  /** `rate` per second, bucket size `burst`, `buckets` a power of two (1: one shared bucket). */
  constructor(rate: number, burst: number, buckets = 1) {
    if ((buckets & (buckets - 1)) !== 0 || buckets < 1) throw new RangeError('TokenBuckets: buckets must be a power of two');
    this.#rate = rate / 1000;
    this.#burst = burst;
    this.#mask = buckets - 1;
    this.#tokens = new Float64Array(buckets).fill(burst);
    this.#last = new Float64Array(buckets).fill(-1e15);
  }

  /** Take one token for `key` at `now` (ms); false when its bucket is empty. */
  admit(key: number, now: number): boolean {
    const i = this.#mask === 0 ? 0 : khash1(key) & this.#mask;
    let t = this.#tokens[i] + (now - this.#last[i]) * this.#rate;
    if (t > this.#burst) t = this.#burst;
    this.#last[i] = now;
    if (t < 1) {
      this.#tokens[i] = t;
      return false;
    }
    this.#tokens[i] = t - 1;
    return true;
  }
}
