// The router's run-time blocklist: single source addresses blocked for a while
// on command (init's block feedback from the monitor), apart from the
// config's blocklists so a reload keeps them. Checked on every domain for the
// source address, before connection tracking, like a config blocklist entry
// (drops counted as `blocklisted`). A lookup is one hash probe (Blocklist);
// expired entries are swept on the router's timer.
import { Blocklist } from './blocklist.ts';

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
  #set = new Blocklist();
  readonly #entries = new Map<number, RuntimeBlock>();
  /** Earliest expiry among the entries (Infinity: none). */
  #next = Infinity;

  get size(): number {
    return this.#entries.size;
  }

  /** Block ip (u32) until now + ms; a second block of the same address replaces the first's expiry and reason. Returns false when full. */
  add(ip: number, ms: number, reason: string, now: number): boolean {
    const expires = now + ms;
    let e = this.#entries.get(ip);
    if (e === undefined) {
      if (this.#entries.size >= MAX_RUNTIME_BLOCKS) return false;
      e = { ip, expires, added: now, reason, drops: 0, times: 0 };
      this.#entries.set(ip, e);
    }
    e.expires = expires;
    e.added = now;
    e.reason = reason;
    e.times++;
    this.#set.add(ip, 32, expires);
    if (expires < this.#next) this.#next = expires;
    return true;
  }

  /** Is src (int32 or u32) blocked at now? Hot path: nothing allocated. */
  has(src: number, now: number): boolean {
    return this.#entries.size > 0 && this.#set.has(src, now);
  }

  /** Count a drop against src's entry (only called after has() said yes). */
  hit(src: number): void {
    const e = this.#entries.get(src >>> 0);
    if (e !== undefined) e.drops++;
  }

  /** Forget expired entries; returns how many. */
  sweep(now: number): number {
    if (now < this.#next) return 0;
    let n = 0;
    let next = Infinity;
    for (const [ip, e] of this.#entries) {
      if (e.expires <= now) {
        this.#entries.delete(ip);
        n++;
      } else if (e.expires < next) {
        next = e.expires;
      }
    }
    this.#next = next;
    // The hash set cannot delete: build it again from what is left.
    const set = new Blocklist();
    for (const e of this.#entries.values()) set.add(e.ip, 32, e.expires);
    this.#set = set;
    return n;
  }

  entries(): RuntimeBlock[] {
    return [...this.#entries.values()];
  }
}
