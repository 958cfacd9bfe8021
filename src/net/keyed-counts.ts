// A fixed-capacity table of counters keyed by two 32-bit words (e.g. a source
// address and a domain), for per-source limits on the tables packets fill:
// open addressing over typed arrays, keyed hashing (keyed-hash.ts, secret per
// process), linear probing bounded to `maxProbe` slots (an increment that
// finds no slot within it is refused, never a long scan), backward-shift
// deletion when a count drops to zero. Allocates nothing after construction.
//
// Unlike a JS Map keyed by numbers (V8 hashes numbers without a seed, so
// chosen keys can share a bucket chain), nobody can choose keys that collide.
import { khash2 } from './keyed-hash.ts';

export class KeyedCounts {
  /** Distinct keys held at most. */
  readonly capacity: number;
  readonly maxProbe: number;
  readonly #a: Int32Array;
  readonly #b: Int32Array;
  /** 0: empty slot. */
  readonly #n: Int32Array;
  readonly #mask: number;
  #size = 0;

  /** Room for `capacity` distinct keys (the index is at least twice as large). */
  constructor(capacity: number, maxProbe = 32) {
    if (!(capacity >= 1) || !(maxProbe >= 1)) throw new RangeError('KeyedCounts: capacity and maxProbe must be >= 1');
    this.capacity = capacity;
    this.maxProbe = maxProbe;
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.#a = new Int32Array(size);
    this.#b = new Int32Array(size);
    this.#n = new Int32Array(size);
    this.#mask = size - 1;
  }

  /** Keys with a count above zero. */
  get size(): number {
    return this.#size;
  }

  #find(a: number, b: number): number {
    const mask = this.#mask;
    let i = khash2(a, b) & mask;
    for (let p = 0; p < this.maxProbe; p++) {
      if (this.#n[i] === 0) return -1;
      if (this.#a[i] === a && this.#b[i] === b) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** The count of (a, b) (int32 or u32 alike), 0 when absent. */
  get(a: number, b: number): number {
    const i = this.#find(a | 0, b | 0);
    return i < 0 ? 0 : this.#n[i];
  }

  /** Add one to (a, b); false (nothing changed) when the key is new and no slot is free within maxProbe or the table holds `capacity` keys. */
  inc(a: number, b: number): boolean {
    a |= 0;
    b |= 0;
    const mask = this.#mask;
    let i = khash2(a, b) & mask;
    for (let p = 0; p < this.maxProbe; p++) {
      const n = this.#n[i];
      if (n === 0) {
        if (this.#size >= this.capacity) return false;
        this.#a[i] = a;
        this.#b[i] = b;
        this.#n[i] = 1;
        this.#size++;
        return true;
      }
      if (this.#a[i] === a && this.#b[i] === b) {
        this.#n[i] = n + 1;
        return true;
      }
      i = (i + 1) & mask;
    }
    return false;
  }

  /** Take one from (a, b); at zero the key leaves the table. */
  dec(a: number, b: number): void {
    let i = this.#find(a | 0, b | 0);
    if (i < 0) return;
    if (--this.#n[i] > 0) return;
    this.#size--;
    // Backward-shift deletion: move later entries of the run back so every
    // key stays within its probe range from its home slot.
    const mask = this.#mask;
    const A = this.#a;
    const B = this.#b;
    const N = this.#n;
    for (;;) {
      N[i] = 0;
      let j = i;
      for (;;) {
        j = (j + 1) & mask;
        if (N[j] === 0) return;
        const home = khash2(A[j], B[j]) & mask;
        const stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
          A[i] = A[j];
          B[i] = B[j];
          N[i] = N[j];
          i = j;
          break;
        }
      }
    }
  }

  /** Forget every key. */
  clear(): void {
    this.#n.fill(0);
    this.#size = 0;
  }
}
