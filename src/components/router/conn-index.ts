// What the IPv4 and IPv6 connection tables share (conntrack.ts, conntrack6.ts):
// a fixed capacity of connection objects, reused through a free list (a Conn
// is created once per slot ever used), each findable by two keys (original
// and reply direction) in one open-addressing Int32Array index with linear
// probing bounded to `maxProbe` slots from a key's home, and backward-shift
// deletion, so no lookup ever scans further. An index entry is
// `slot * 2 + direction + 1` (0 = empty); a connection keeps its keys' hashes
// in h0 / h1.
//
// The keys themselves, their hashes and the lookups are each table's own: the
// IPv4 table compares int32 fields, the IPv6 one four words per address, and
// neither pays for the other's (lookups read `index`, `mask` and `conns`
// directly). Backward-shift deletion is net/keyed-counts.ts's. Conn lives here (conntrack.ts re-exports it) so the table base
// needs no import of its subclasses' files.
import { backwardShiftDelete } from '../../net/keyed-counts.ts';

/** One connection: its two keys, state and times (tracking.ts), its place in the table. */
export class Conn {
  /** Index in the table (stable for the connection's life). */
  slot = -1;
  live = false;
  proto = 0;
  state = 0;
  /** Original direction, as it arrived on inDom. */
  inDom = 0;
  oSrc = 0;
  oSport = 0;
  oDst = 0;
  oDport = 0;
  /** Reply direction, as it arrives on outDom (rDst/rDport are the NAT address/port when nat). */
  outDom = 0;
  rSrc = 0;
  rSport = 0;
  rDst = 0;
  rDport = 0;
  nat = false;
  created = 0;
  expires = 0;
  finOrig = false;
  finReply = false;
  pktsOrig = 0;
  pktsReply = 0;
  /** Hashes of the two keys. */
  h0 = 0;
  h1 = 0;
}

export class ConnIndex<C extends Conn> {
  readonly max: number;
  readonly maxProbe: number;
  /** Every Conn ever created, by slot. */
  protected readonly conns: C[] = [];
  protected readonly index: Int32Array;
  protected readonly mask: number;
  readonly #free: C[] = [];
  readonly #make: () => C;
  /** The hash of an index entry's key. */
  readonly #hashOf = (v: number): number => {
    const r = v - 1;
    const c = this.conns[r >>> 1];
    return (r & 1) === 0 ? c.h0 : c.h1;
  };
  #count = 0;

  constructor(max: number, maxProbe: number, make: () => C) {
    this.max = max;
    this.maxProbe = maxProbe;
    this.#make = make;
    let size = 16;
    while (size < max * 4) size *= 2; // two keys per connection, load <= 1/2
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Live connections. */
  get count(): number {
    return this.#count;
  }

  /** Slots ever used (conn(0 .. slots - 1) exist; live ones have .live). */
  get slots(): number {
    return this.conns.length;
  }

  conn(slot: number): C {
    return this.conns[slot];
  }

  /**
   * A free Conn to fill in (keys, proto, state, nat, times), then link() it;
   * give it back with abandon() if it is not used. Undefined when the table is full.
   */
  acquire(): C | undefined {
    if (this.#count >= this.max) return undefined;
    let c = this.#free.pop();
    if (c === undefined) {
      c = this.#make();
      c.slot = this.conns.length;
      this.conns.push(c);
    }
    c.finOrig = false;
    c.finReply = false;
    c.pktsOrig = 0;
    c.pktsReply = 0;
    return c;
  }

  /** Give back an acquired Conn that was not linked. */
  abandon(c: C): void {
    if (!c.live) this.#free.push(c);
  }

  /** Place both keys of c (h0, h1 set); false, with nothing placed, when either finds no slot within maxProbe. */
  protected placeBoth(c: C): boolean {
    if (!this.#place(c.slot * 2, c.h0)) return false;
    if (!this.#place(c.slot * 2 + 1, c.h1)) {
      this.#unplace(c.slot * 2, c.h0);
      return false;
    }
    return true;
  }

  protected unplaceBoth(c: C): void {
    this.#unplace(c.slot * 2, c.h0);
    this.#unplace(c.slot * 2 + 1, c.h1);
  }

  /** c is placed and counted: it is in the table. */
  protected linked(c: C): void {
    c.live = true;
    this.#count++;
  }

  /** Take c out of the table; removed(c) is told after. */
  remove(c: C): void {
    if (!c.live) return;
    this.unplaceBoth(c);
    c.live = false;
    this.#count--;
    this.#free.push(c);
    this.removed(c);
  }

  /** What a table does when a connection leaves (per-source counts, NAT ports). */
  protected removed(_c: C): void {}

  /** Remove every connection that expired at `now`; returns how many. */
  sweep(now: number): number {
    let n = 0;
    const conns = this.conns;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (c.live && c.expires <= now) {
        this.remove(c);
        n++;
      }
    }
    return n;
  }

  /** Live connections, in slot order. */
  *live(): IterableIterator<C> {
    for (const c of this.conns) if (c.live) yield c;
  }

  /**
   * The longest distance (slots) of any key from its home slot: what a miss
   * costs at worst. For tests and status; walks the whole index.
   */
  longestProbe(): number {
    const idx = this.index;
    const mask = this.mask;
    let worst = 0;
    for (let i = 0; i < idx.length; i++) {
      const v = idx[i];
      if (v === 0) continue;
      const r = v - 1;
      const c = this.conns[r >>> 1];
      const home = ((r & 1) === 0 ? c.h0 : c.h1) & mask;
      const d = (i - home) & mask;
      if (d + 1 > worst) worst = d + 1;
    }
    return worst;
  }

  #place(ref: number, h: number): boolean {
    const idx = this.index;
    const mask = this.mask;
    const maxProbe = this.maxProbe;
    let i = h & mask;
    for (let p = 0; p < maxProbe; p++) {
      if (idx[i] === 0) {
        idx[i] = ref + 1;
        return true;
      }
      i = (i + 1) & mask;
    }
    return false;
  }

  #unplace(ref: number, h: number): void {
    const idx = this.index;
    const mask = this.mask;
    let i = h & mask;
    while (idx[i] !== ref + 1) {
      if (idx[i] === 0) return; // not present (cannot happen)
      i = (i + 1) & mask;
    }
    backwardShiftDelete(idx, mask, i, this.#hashOf);
  }
}
