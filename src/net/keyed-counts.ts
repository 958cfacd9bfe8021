// A fixed-capacity table of counters keyed by two 32-bit words (e.g. a source
// address and a domain), for per-source limits on the tables packets fill:
// open addressing over typed arrays, keyed hashing (keyed-hash.ts, secret per
// process), linear probing bounded to `maxProbe` slots (a new key that finds
// no slot within it is refused, never a long scan), backward-shift deletion
// when a count drops to zero. Each key present has a stable id in
// [0, capacity) while its count is above zero, so callers can keep per-key
// data (e.g. list heads) in arrays of their own. Allocates nothing after
// construction.
//
// Unlike a JS Map keyed by numbers (V8 hashes numbers without a seed, so
// chosen keys can share a bucket chain), nobody can choose keys that collide.
import { khash2 } from './keyed-hash.ts';

/**
 * Empty slot i of the open-addressing index idx (linear probing; entries are
 * non-zero, 0 is empty) by backward-shift deletion: later entries of the run
 * move back so every key stays within its probe range from its home slot,
 * and no tombstones are left. hashOf(entry) gives an entry's hash (its home
 * is hashOf & mask). Shared by KeyedCounts and the router's connection index.
 */
export function backwardShiftDelete(idx: Int32Array, mask: number, i: number, hashOf: (entry: number) => number): void {
  for (;;) {
    idx[i] = 0;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = idx[j];
      if (v === 0) return;
      const home = hashOf(v) & mask;
      // The entry at j may stay if its home lies cyclically in (i, j].
      const stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!stays) {
        idx[i] = v;
        i = j;
        break;
      }
    }
  }
}

export class KeyedCounts {
  /** Distinct keys held at most. */
  readonly capacity: number;
  readonly maxProbe: number;
  /** Index slot -> id + 1 (0: empty). */
  readonly #idx: Int32Array;
  readonly #mask: number;
  // Per id: the key, its hash, its count (0: id free).
  readonly #a: Int32Array;
  readonly #b: Int32Array;
  readonly #h: Int32Array;
  readonly #homeOf = (v: number): number => this.#h[v - 1];
  readonly #n: Int32Array;
  readonly #freeIds: Int32Array;
  #freeTop: number;
  #size = 0;

  /** Room for `capacity` distinct keys (the index is at least twice as large). */
  constructor(capacity: number, maxProbe = 32) {
    if (!(capacity >= 1) || !(maxProbe >= 1)) throw new RangeError('KeyedCounts: capacity and maxProbe must be >= 1');
    this.capacity = capacity;
    this.maxProbe = maxProbe;
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.#idx = new Int32Array(size);
    this.#mask = size - 1;
    this.#a = new Int32Array(capacity);
    this.#b = new Int32Array(capacity);
    this.#h = new Int32Array(capacity);
    this.#n = new Int32Array(capacity);
    this.#freeIds = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.#freeIds[i] = capacity - 1 - i;
    this.#freeTop = capacity;
  }

  /** Keys with a count above zero. */
  get size(): number {
    return this.#size;
  }

  /** The id of (a, b) (int32 or u32 alike), or -1 when absent. */
  idOf(a: number, b: number): number {
    a |= 0;
    b |= 0;
    const idx = this.#idx;
    const mask = this.#mask;
    let i = khash2(a, b) & mask;
    for (let p = 0; p < this.maxProbe; p++) {
      const v = idx[i];
      if (v === 0) return -1;
      const id = v - 1;
      if (this.#a[id] === a && this.#b[id] === b) return id;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** The count of (a, b), 0 when absent. */
  get(a: number, b: number): number {
    const id = this.idOf(a, b);
    return id < 0 ? 0 : this.#n[id];
  }

  /** The count of an id (0 when free). */
  countOf(id: number): number {
    return this.#n[id];
  }

  /**
   * Add one to (a, b); returns its id, or -1 (nothing changed) when the key is
   * new and no slot is free within maxProbe or `capacity` keys are held.
   */
  inc(a: number, b: number): number {
    a |= 0;
    b |= 0;
    const idx = this.#idx;
    const mask = this.#mask;
    const h = khash2(a, b);
    let i = h & mask;
    for (let p = 0; p < this.maxProbe; p++) {
      const v = idx[i];
      if (v === 0) {
        if (this.#freeTop === 0) return -1;
        const id = this.#freeIds[--this.#freeTop];
        this.#a[id] = a;
        this.#b[id] = b;
        this.#h[id] = h;
        this.#n[id] = 1;
        idx[i] = id + 1;
        this.#size++;
        return id;
      }
      const id = v - 1;
      if (this.#a[id] === a && this.#b[id] === b) {
        this.#n[id]++;
        return id;
      }
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Take one from (a, b); at zero the key leaves the table and its id is free. */
  dec(a: number, b: number): void {
    a |= 0;
    b |= 0;
    const idx = this.#idx;
    const mask = this.#mask;
    let i = khash2(a, b) & mask;
    let id = -1;
    for (let p = 0; p < this.maxProbe; p++) {
      const v = idx[i];
      if (v === 0) return;
      if (this.#a[v - 1] === a && this.#b[v - 1] === b) {
        id = v - 1;
        break;
      }
      i = (i + 1) & mask;
    }
    if (id < 0) return;
    if (--this.#n[id] > 0) return;
    this.#size--;
    this.#freeIds[this.#freeTop++] = id;
    backwardShiftDelete(idx, mask, i, this.#homeOf);
  }

  /** Forget every key. */
  clear(): void {
    this.#idx.fill(0);
    this.#n.fill(0);
    for (let i = 0; i < this.capacity; i++) this.#freeIds[i] = this.capacity - 1 - i;
    this.#freeTop = this.capacity;
    this.#size = 0;
  }
}
