// Throttles. LoginThrottle: failed logins are counted per (account, source)
// pair and per source, never per account alone, so nobody can lock an account's
// owner out by failing logins in their name: a different source logs in at
// once. After `freeFailures` failures of a pair (or `sourceFailures` of a
// source, over any names and wrong public-link tokens) each further failure
// makes that pair (source) wait before its next attempt: `delayMs`, doubling
// per failure up to `maxDelayMs`. Attempts while waiting are refused without a
// password check and without counting. Memory is bounded: at most `maxPerSource`
// pairs per source and `maxTracked` entries in all; the least recently failing
// are forgotten first. IPv6 sources are counted per /64 (what one host usually
// holds). RequestBuckets: a token bucket per source address for every request.

export interface LoginThrottleOptions {
  /** Failures of one (account, source) pair before delays begin. */
  freeFailures: number;
  /** Failures of one source (any accounts, public-link tokens) before its delays begin. */
  sourceFailures: number;
  /** First delay; doubles per further failure. */
  delayMs: number;
  maxDelayMs: number;
  /** An entry without a new failure for this long is forgotten. */
  windowMs: number;
  /** Most entries (sources + pairs) kept in all. */
  maxTracked?: number;
  /** Most account pairs kept per source. */
  maxPerSource?: number;
}

interface Failures {
  count: number;
  last: number;
  /** No attempt before this time. */
  next: number;
}

interface SourceEntry extends Failures {
  pairs: Map<string, Failures>;
}

export type LoginVerdict = { locked: false } | { locked: true; by: 'account-source' | 'source'; retryAfterMs: number };

/** The key a source is counted under: an IPv4 address as is, an IPv6 address by its /64. */
export function sourceKey(addr: string): string {
  if (!addr.includes(':')) return addr;
  const [head, tail] = addr.split('::', 2);
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined ? [] : tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

export class LoginThrottle {
  readonly #o: Required<LoginThrottleOptions>;
  /** Least recently failing first (an entry moves to the end on each failure). */
  readonly #sources = new Map<string, SourceEntry>();
  #entries = 0;
  readonly counters = { failures: 0, refused: 0, forgotten: 0 };

  constructor(o: LoginThrottleOptions) {
    this.#o = { maxTracked: 100_000, maxPerSource: 100, ...o };
  }

  /** May `account` try a password from `source` now? */
  check(account: string, source: string, now: number): LoginVerdict {
    const s = this.#live(sourceKey(source), now);
    if (s === undefined) return { locked: false };
    if (s.next > now) {
      this.counters.refused++;
      return { locked: true, by: 'source', retryAfterMs: s.next - now };
    }
    const p = s.pairs.get(account);
    if (p !== undefined && p.next > now) {
      this.counters.refused++;
      return { locked: true, by: 'account-source', retryAfterMs: p.next - now };
    }
    return { locked: false };
  }

  /** Count a failed login; returns the delays it started (0: none). */
  fail(account: string, source: string, now: number): { pairDelayMs: number; sourceDelayMs: number } {
    const s = this.#touchSource(sourceKey(source), now);
    let p = s.pairs.get(account);
    if (p !== undefined && now - p.last > this.#o.windowMs) {
      s.pairs.delete(account);
      this.#entries--;
      p = undefined;
    }
    if (p === undefined) {
      if (s.pairs.size >= this.#o.maxPerSource) this.#forgetOldestPair(s);
      p = { count: 0, last: now, next: 0 };
      this.#entries++;
      this.#bound(s);
    }
    s.pairs.delete(account);
    s.pairs.set(account, p);
    return { pairDelayMs: this.#count(p, this.#o.freeFailures, now), sourceDelayMs: this.#count(s, this.#o.sourceFailures, now) };
  }

  /** A failure that has no account (a wrong public-link token): counts for the source only. */
  failSource(source: string, now: number): number {
    return this.#count(this.#touchSource(sourceKey(source), now), this.#o.sourceFailures, now);
  }

  /** How long the source must wait (0: not at all). */
  sourceLockedFor(source: string, now: number): number {
    const s = this.#live(sourceKey(source), now);
    return s !== undefined && s.next > now ? s.next - now : 0;
  }

  /** A successful login clears its pair's failures (not the source's). */
  succeed(account: string, source: string): void {
    const s = this.#sources.get(sourceKey(source));
    if (s !== undefined && s.pairs.delete(account)) this.#entries--;
  }

  /** Entries kept (sources + pairs). */
  get size(): number {
    return this.#entries;
  }

  #count(f: Failures, free: number, now: number): number {
    this.counters.failures++;
    f.count++;
    f.last = now;
    if (f.count <= free) return 0;
    const delay = Math.min(this.#o.maxDelayMs, this.#o.delayMs * 2 ** Math.min(f.count - free - 1, 40));
    f.next = now + delay;
    return delay;
  }

  /** The source's entry if it is still within the window (else forgotten). */
  #live(key: string, now: number): SourceEntry | undefined {
    const s = this.#sources.get(key);
    if (s === undefined) return undefined;
    const newest = Math.max(s.last, ...[...s.pairs.values()].map((p) => p.last));
    if (now - newest > this.#o.windowMs && s.next <= now) {
      this.#drop(key, s);
      return undefined;
    }
    return s;
  }

  #touchSource(key: string, now: number): SourceEntry {
    let s = this.#live(key, now);
    if (s === undefined) {
      s = { count: 0, last: now, next: 0, pairs: new Map() };
      this.#entries++;
    } else {
      if (now - s.last > this.#o.windowMs && s.next <= now) { s.count = 0; s.next = 0; }
      this.#sources.delete(key);
    }
    this.#sources.set(key, s);
    this.#bound(s);
    return s;
  }

  /** Over the total bound: forget the least recently failing sources (never `keep`). */
  #bound(keep: SourceEntry): void {
    for (const [k, s] of this.#sources) {
      if (this.#entries <= this.#o.maxTracked) return;
      if (s === keep) {
        if (s.pairs.size > 0) this.#forgetOldestPair(s);
        continue;
      }
      this.#drop(k, s);
    }
  }

  #forgetOldestPair(s: SourceEntry): void {
    const first = s.pairs.keys().next().value;
    if (first === undefined) return;
    s.pairs.delete(first);
    this.#entries--;
    this.counters.forgotten++;
  }

  #drop(key: string, s: SourceEntry): void {
    this.#sources.delete(key);
    this.#entries -= 1 + s.pairs.size;
    this.counters.forgotten += 1 + s.pairs.size;
  }
}

export class RequestBuckets {
  #m = new Map<string, { tokens: number; at: number }>();
  #rate: number;
  #burst: number;
  #max: number;
  constructor(ratePerSecond: number, burst: number, maxEntries = 100_000) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#max = maxEntries;
  }
  /** Take one token for `source`; false when its bucket is empty. */
  take(source: string, now: number): boolean {
    let b = this.#m.get(source);
    if (b === undefined) {
      if (this.#m.size >= this.#max) this.#evict(now);
      b = { tokens: this.#burst, at: now };
      this.#m.set(source, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) * this.#rate) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
  #evict(now: number): void {
    const full = (this.#burst / this.#rate) * 1000;
    for (const [k, b] of this.#m) if (now - b.at > full) this.#m.delete(k);
    if (this.#m.size >= this.#max) {
      const first = this.#m.keys().next().value;
      if (first !== undefined) this.#m.delete(first);
    }
  }
}

/** A counting semaphore: at most `n` password checks at once, the rest wait (up to `queue`). */
export class Gate {
  #free: number;
  #waiting: (() => void)[] = [];
  #queue: number;
  constructor(n: number, queue: number) {
    this.#free = n;
    this.#queue = queue;
  }
  /** Resolves to a release function, or undefined when too many already wait. */
  async enter(): Promise<(() => void) | undefined> {
    if (this.#free > 0) {
      this.#free--;
    } else {
      if (this.#waiting.length >= this.#queue) return undefined;
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiting.shift();
      if (next !== undefined) next();
      else this.#free++;
    };
  }
}
