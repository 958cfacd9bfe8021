// The router's run-time blocklist: single source addresses blocked for a while
// on command (init's block feedback from the monitor), apart from the
// config's blocklists so a reload keeps them. Checked on every domain for the
// source address, before connection tracking, like a config blocklist entry
// (drops counted as `blocklisted`). Expired entries are swept on the router's
// timer.
//
// The addresses are the sources of alerts, which a sender can choose (spoofed
// packets that trigger rules), and every packet from a blocked source is
// looked up and counted: entries are found through a keyed hash index
// (src/net/keyed-counts.ts, bounded probing), not a JS Map (V8 hashes number
// keys without a seed, so chosen addresses could share one bucket chain).
// A lookup is one bounded probe run, nothing allocated.
import { KeyedCounts } from '../../net/keyed-counts.ts';

/** Entries held at most: a block beyond it is refused. */
export const MAX_RUNTIME_BLOCKS = 16384;

export interface RuntimeBlock {
  /** u32 */
  readonly ip: number;
  /** Router clock (monotonic ms) when it ends. */
  expires: number;
  /** Router clock when it was (last) added. */
  added: number;
  reason: string;
  /** Packets dropped because of it. */
  drops: number;
  /** Times it was added or refreshed. */
  times: number;
}

export class RuntimeBlocks {
  readonly #index = new KeyedCounts(MAX_RUNTIME_BLOCKS, 64);
  readonly #byId: (RuntimeBlock | undefined)[] = new Array<RuntimeBlock | undefined>(MAX_RUNTIME_BLOCKS).fill(undefined);
  /** Earliest expiry among the entries (Infinity: none). */
  #next = Infinity;

  get size(): number {
    return this.#index.size;
  }

  /**
   * Block ip (u32) until now + ms; a second block of the same address replaces
   * the first's expiry and reason. Returns false when full (MAX_RUNTIME_BLOCKS,
   * or no index slot within the probe bound).
   */
  add(ip: number, ms: number, reason: string, now: number): boolean {
    const expires = now + ms;
    let id = this.#index.idOf(ip, 0);
    let e = id < 0 ? undefined : this.#byId[id];
    if (e === undefined) {
      if (this.#index.size >= MAX_RUNTIME_BLOCKS) return false;
      id = this.#index.inc(ip, 0);
      if (id < 0) return false;
      e = { ip: ip >>> 0, expires, added: now, reason, drops: 0, times: 0 };
      this.#byId[id] = e;
    }
    e.expires = expires;
    e.added = now;
    e.reason = reason;
    e.times++;
    if (expires < this.#next) this.#next = expires;
    return true;
  }

  /** Is src (int32 or u32) blocked at now? Hot path: nothing allocated. */
  has(src: number, now: number): boolean {
    if (this.#index.size === 0) return false;
    const id = this.#index.idOf(src, 0);
    return id >= 0 && (this.#byId[id] as RuntimeBlock).expires > now;
  }

  /** Count a drop against src's entry (only called after has() said yes). */
  hit(src: number): void {
    const id = this.#index.idOf(src, 0);
    if (id >= 0) (this.#byId[id] as RuntimeBlock).drops++;
  }

  /** Forget expired entries; returns how many. */
  sweep(now: number): number {
    if (now < this.#next) return 0;
    let n = 0;
    let next = Infinity;
    const byId = this.#byId;
    for (let id = 0; id < byId.length; id++) {
      const e = byId[id];
      if (e === undefined) continue;
      if (e.expires <= now) {
        byId[id] = undefined;
        this.#index.dec(e.ip, 0);
        n++;
      } else if (e.expires < next) {
        next = e.expires;
      }
    }
    this.#next = next;
    return n;
  }

  /** Every entry, by index slot (not in the order they were added). */
  entries(): RuntimeBlock[] {
    return this.#byId.filter((e): e is RuntimeBlock => e !== undefined);
  }
}
