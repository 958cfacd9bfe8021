// The IPv6 neighbor cache of one domain (RFC 4861 7.3, kept as simple as the
// ARP cache): at most `cap` entries in a fixed open-addressing table keyed on
// the address's four int32 words; no allocation after construction. Entries
// are resolving (an NS sent, no MAC yet), reachable (a MAC, until the ARP
// timeout), stale (the MAC still used while a refresh NS is out) or failed
// (no answer after max-tries: unusable until resolved again). Entries are
// never removed one by one; when the table is full, failed and expired ones
// are dropped by rebuilding it (rare, bounded work). Packets waiting for a
// resolving neighbor are queued per entry in the link's pending pool (the
// buffers ARP uses, with the same arp.max-pending bound).
import { getI32 } from '../../net/bytes.ts';
import { khash4 } from '../../net/keyed-hash.ts';

export const NB_EMPTY = 0;
export const NB_RESOLVING = 1;
export const NB_REACHABLE = 2;
export const NB_STALE = 3;
export const NB_FAILED = 4;
export const NB_STATE_NAMES = ['', 'resolving', 'reachable', 'stale', 'failed'] as const;

export class NeighborCache {
  readonly cap: number;
  readonly size: number;
  readonly keys: Int32Array;
  readonly state: Uint8Array;
  readonly mac: Uint8Array;
  readonly expires: Float64Array;
  readonly nextTry: Float64Array;
  readonly tries: Uint8Array;
  /** Per slot: pool ids (link.pool) of the packets waiting for this neighbor and their lengths (arrays made on first use, reused). */
  readonly queue: (number[] | undefined)[];
  readonly queueLen: (number[] | undefined)[];
  #count = 0;
  /** Entries resolving or stale with a refresh out (the timer scans only when > 0). */
  pending = 0;

  constructor(cap = 4096) {
    this.cap = cap;
    let size = 16;
    while (size < cap * 2) size *= 2;
    this.size = size;
    this.keys = new Int32Array(size * 4);
    this.state = new Uint8Array(size);
    this.mac = new Uint8Array(size * 6);
    this.expires = new Float64Array(size);
    this.nextTry = new Float64Array(size);
    this.tries = new Uint8Array(size);
    this.queue = new Array<number[] | undefined>(size).fill(undefined);
    this.queueLen = new Array<number[] | undefined>(size).fill(undefined);
  }

  /** Packets waiting on slot i. */
  queued(i: number): number {
    return this.queue[i]?.length ?? 0;
  }

  get count(): number {
    return this.#count;
  }

  /** Keyed (HalfSipHash, src/net/keyed-hash.ts): hosts on the link choose the addresses learned. */
  #home(w0: number, w1: number, w2: number, w3: number): number {
    return khash4(w0, w1, w2, w3) & (this.size - 1);
  }

  /** The slot of the address at buf[off..off+16], or -1. */
  find(buf: Uint8Array, off: number): number {
    const w0 = getI32(buf, off), w1 = getI32(buf, off + 4), w2 = getI32(buf, off + 8), w3 = getI32(buf, off + 12);
    const k = this.keys;
    for (let i = this.#home(w0, w1, w2, w3); ; i = (i + 1) & (this.size - 1)) {
      if (this.state[i] === NB_EMPTY) return -1;
      const b = i * 4;
      if (k[b] === w0 && k[b + 1] === w1 && k[b + 2] === w2 && k[b + 3] === w3) return i;
    }
  }

  /** The slot of the address (a new entry in state `st` if absent), or -1 when the cache is full of live entries. */
  insert(buf: Uint8Array, off: number, st: number, now: number): number {
    const found = this.find(buf, off);
    if (found >= 0) return found;
    if (this.#count >= this.cap && this.#compact(now) >= this.cap) return -1;
    const w0 = getI32(buf, off), w1 = getI32(buf, off + 4), w2 = getI32(buf, off + 8), w3 = getI32(buf, off + 12);
    let i = this.#home(w0, w1, w2, w3);
    while (this.state[i] !== NB_EMPTY) i = (i + 1) & (this.size - 1);
    const b = i * 4;
    this.keys[b] = w0;
    this.keys[b + 1] = w1;
    this.keys[b + 2] = w2;
    this.keys[b + 3] = w3;
    this.state[i] = st;
    this.tries[i] = 0;
    this.nextTry[i] = 0;
    this.expires[i] = 0;
    this.#count++;
    return i;
  }

  /** Rebuild without failed and long-expired entries; returns the count after. */
  #compact(now: number): number {
    const keep: number[] = [];
    const queues: (number[] | undefined)[] = [];
    const lens: (number[] | undefined)[] = [];
    for (let i = 0; i < this.size; i++) {
      const st = this.state[i];
      if (st === NB_EMPTY || st === NB_FAILED || (st === NB_STALE && this.expires[i] <= now)) continue;
      keep.push(i, this.keys[i * 4], this.keys[i * 4 + 1], this.keys[i * 4 + 2], this.keys[i * 4 + 3], st, this.expires[i], this.nextTry[i], this.tries[i],
        this.mac[i * 6], this.mac[i * 6 + 1], this.mac[i * 6 + 2], this.mac[i * 6 + 3], this.mac[i * 6 + 4], this.mac[i * 6 + 5]);
      queues.push(this.queue[i]);
      lens.push(this.queueLen[i]);
    }
    this.state.fill(NB_EMPTY);
    this.queue.fill(undefined);
    this.queueLen.fill(undefined);
    this.#count = 0;
    this.pending = 0;
    for (let r = 0; r < keep.length; r += 15) {
      let i = this.#home(keep[r + 1], keep[r + 2], keep[r + 3], keep[r + 4]);
      while (this.state[i] !== NB_EMPTY) i = (i + 1) & (this.size - 1);
      for (let w = 0; w < 4; w++) this.keys[i * 4 + w] = keep[r + 1 + w];
      this.state[i] = keep[r + 5];
      this.expires[i] = keep[r + 6];
      this.nextTry[i] = keep[r + 7];
      this.tries[i] = keep[r + 8];
      for (let m = 0; m < 6; m++) this.mac[i * 6 + m] = keep[r + 9 + m];
      this.queue[i] = queues[r / 15];
      this.queueLen[i] = lens[r / 15];
      if (this.state[i] === NB_RESOLVING || this.tries[i] > 0) this.pending++;
      this.#count++;
    }
    return this.#count;
  }

  /** Store a MAC (6 bytes at buf[off]) for slot i: reachable until now + timeoutMs. */
  learn(i: number, buf: Uint8Array, off: number, now: number, timeoutMs: number): void {
    if (this.state[i] === NB_RESOLVING || this.tries[i] > 0) this.pending = Math.max(0, this.pending - 1);
    for (let m = 0; m < 6; m++) this.mac[i * 6 + m] = buf[off + m];
    this.state[i] = NB_REACHABLE;
    this.tries[i] = 0;
    this.expires[i] = now + timeoutMs;
  }

  /** Forget everything (the domain's session was reset); the caller freed the queued packets. */
  clear(): void {
    for (const q of this.queue) if (q !== undefined) q.length = 0;
    for (const q of this.queueLen) if (q !== undefined) q.length = 0;
    this.state.fill(NB_EMPTY);
    this.#count = 0;
    this.pending = 0;
  }
}
