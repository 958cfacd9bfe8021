// Counters: named, numbered at registration so the hot path only adds to a
// Float64Array slot (no strings, no maps, no allocation per packet).
// Drops are counters named "drop.<reason>", as Genode's nic_router names a
// reason for every drop.

export class Counters {
  #names: string[] = [];
  #index = new Map<string, number>();
  #values = new Float64Array(64);

  /** Register (or find) a counter; keep the returned id for the hot path. */
  define(name: string): number {
    const known = this.#index.get(name);
    if (known !== undefined) return known;
    const id = this.#names.length;
    this.#names.push(name);
    this.#index.set(name, id);
    if (id >= this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    return id;
  }

  /** Register a drop reason: the counter "drop.<reason>". */
  dropReason(reason: string): number {
    return this.define(`drop.${reason}`);
  }

  add(id: number, n = 1): void {
    this.#values[id] += n;
  }

  get(name: string): number {
    const id = this.#index.get(name);
    return id === undefined ? 0 : this.#values[id];
  }

  /** Every counter that is not zero, by name. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < this.#names.length; i++) {
      if (this.#values[i] !== 0) out[this.#names[i]] = this.#values[i];
    }
    return out;
  }

  /** Sum of all drop counters. */
  drops(): number {
    let sum = 0;
    for (let i = 0; i < this.#names.length; i++) if (this.#names[i].startsWith('drop.')) sum += this.#values[i];
    return sum;
  }
}
