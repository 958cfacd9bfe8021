// A set of IPv4 prefixes with optional expiry, answering "is this address in
// it?" without allocating: one open-addressing table per distinct prefix
// length (keys are the masked addresses), probed longest length first. A
// lookup costs one hash probe per distinct length in the set (at most 33).
// Adding happens on the control plane (config, reload, block feedback) and
// may reallocate (the load stays <= 1/2).
//
// Entries can come from packets (block feedback blocks the sources of alerts,
// which an attacker chooses), and every packet's source is looked up: the
// hash is keyed with the process's secret (src/net/keyed-hash.ts), so chosen
// entries do not pile up in one probe run that every lookup would walk.
import { khash2 } from '../../net/keyed-hash.ts';

function hash(key: number, length: number): number {
  return khash2(key, length);
}

class LengthTable {
  readonly length: number;
  readonly mask: number;
  keys: Int32Array;
  expires: Float64Array;
  used: Uint8Array;
  count = 0;
  constructor(length: number, capacity = 8) {
    this.length = length;
    this.mask = length === 0 ? 0 : length >= 32 ? -1 : (-1 << (32 - length));
    this.keys = new Int32Array(capacity);
    this.expires = new Float64Array(capacity);
    this.used = new Uint8Array(capacity);
  }
  /** Slot of key, or -1. */
  find(key: number): number {
    const cap = this.keys.length - 1;
    let i = hash(key, this.length) & cap;
    for (;;) {
      if (this.used[i] === 0) return -1;
      if (this.keys[i] === key) return i;
      i = (i + 1) & cap;
    }
  }
  put(key: number, expires: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.#grow();
    const cap = this.keys.length - 1;
    let i = hash(key, this.length) & cap;
    while (this.used[i] !== 0 && this.keys[i] !== key) i = (i + 1) & cap;
    if (this.used[i] === 0) this.count++;
    this.used[i] = 1;
    this.keys[i] = key;
    this.expires[i] = expires;
  }
  #grow(): void {
    const { keys, expires, used } = this;
    const cap = keys.length * 2;
    this.keys = new Int32Array(cap);
    this.expires = new Float64Array(cap);
    this.used = new Uint8Array(cap);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (used[i] !== 0) this.put(keys[i], expires[i]);
  }
}

export interface BlockedPrefix {
  network: number;
  prefix: number;
  /** Monotonic ms (the router's clock) when it stops blocking; Infinity: never. */
  expires: number;
}

export class Blocklist {
  #tables: LengthTable[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Block network/prefix until `expires` (monotonic ms; Infinity: for good). Re-adding updates the expiry. */
  add(network: number, prefix: number, expires: number): void {
    let t = this.#tables.find((x) => x.length === prefix);
    if (t === undefined) {
      t = new LengthTable(prefix);
      this.#tables.push(t);
      this.#tables.sort((a, b) => b.length - a.length);
    }
    const key = (network | 0) & t.mask;
    const before = t.count;
    t.put(key, expires);
    if (t.count !== before) this.#size++;
  }

  /** Is addr (int32 or u32) in an entry that has not expired at `now`? */
  has(addr: number, now: number): boolean {
    const tables = this.#tables;
    for (let i = 0; i < tables.length; i++) {
      const t = tables[i];
      const s = t.find(addr & t.mask);
      if (s >= 0 && t.expires[s] > now) return true;
    }
    return false;
  }

  /** Every entry (expired ones too), longest prefix first: for status. */
  entries(): BlockedPrefix[] {
    const out: BlockedPrefix[] = [];
    for (const t of this.#tables) {
      for (let i = 0; i < t.keys.length; i++) {
        if (t.used[i] !== 0) out.push({ network: t.keys[i] >>> 0, prefix: t.length, expires: t.expires[i] });
      }
    }
    return out;
  }
}
