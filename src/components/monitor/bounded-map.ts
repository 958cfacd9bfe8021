// A Map bounded in total and per group (a group is who created the entry,
// e.g. a source address): a new entry past `maxPerGroup` evicts the oldest
// entry of its own group, past `max` the oldest entry of all; both counted.
// So one sender filling the table only pushes out its own state, never
// everyone else's (which would let it wipe what the detectors had gathered
// about another attacker). Keys are strings (V8's string hash is seeded, so
// the only attack on a Map of them is its size, bounded here).
// Allocates per new entry (control-plane rate: new keys), not per lookup.

interface Slot<V> {
  value: V;
  group: string;
}

export class BoundedMap<V> {
  readonly max: number;
  readonly maxPerGroup: number;
  readonly #map = new Map<string, Slot<V>>();
  readonly #groups = new Map<string, Set<string>>();
  /** Evicted because the whole map was full / because their group was. */
  readonly counters = { evicted: 0, groupEvicted: 0 };
  /** Called for every entry that leaves by eviction (not by delete()). */
  onEvict: ((key: string, value: V) => void) | null = null;

  constructor(max: number, maxPerGroup: number) {
    if (!(max >= 1) || !(maxPerGroup >= 1)) throw new RangeError('BoundedMap: max and maxPerGroup must be >= 1');
    this.max = max;
    this.maxPerGroup = maxPerGroup;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    return this.#map.get(key)?.value;
  }

  /** Entries of one group. */
  groupSize(group: string): number {
    return this.#groups.get(group)?.size ?? 0;
  }

  /** Set key (of `group`) to value; a new key may evict the oldest of its group, then the oldest of all. */
  set(key: string, group: string, value: V): void {
    const cur = this.#map.get(key);
    if (cur !== undefined) {
      cur.value = value;
      return;
    }
    let g = this.#groups.get(group);
    if (g !== undefined && g.size >= this.maxPerGroup) {
      const oldest = g.values().next().value as string;
      this.counters.groupEvicted++;
      this.#evict(oldest);
      g = this.#groups.get(group);
    }
    while (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next().value as string;
      this.counters.evicted++;
      this.#evict(oldest);
    }
    if (g === undefined) {
      g = new Set();
      this.#groups.set(group, g);
    }
    g.add(key);
    this.#map.set(key, { value, group });
  }

  #evict(key: string): void {
    const s = this.#map.get(key);
    if (s === undefined) return;
    this.delete(key);
    this.onEvict?.(key, s.value);
  }

  delete(key: string): boolean {
    const s = this.#map.get(key);
    if (s === undefined) return false;
    this.#map.delete(key);
    const g = this.#groups.get(s.group);
    if (g !== undefined) {
      g.delete(key);
      if (g.size === 0) this.#groups.delete(s.group);
    }
    return true;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const [k, s] of this.#map) yield [k, s.value];
  }

  *values(): IterableIterator<V> {
    for (const s of this.#map.values()) yield s.value;
  }
}
