// Throttles. LoginThrottle: failed logins are counted per account name (any
// name, existing or not, so a lockout says nothing about which accounts
// exist) and per source address within a window; reaching the limit locks
// that account or source out for `lockoutMs`, during which logins are refused
// without checking the password. RequestBuckets: a token bucket per source
// address for every request. Both forget old entries and are bounded in size.

export interface LoginThrottleOptions {
  accountFailures: number;
  sourceFailures: number;
  windowMs: number;
  lockoutMs: number;
  /** Most entries kept per table (oldest dropped first). */
  maxEntries?: number;
}

interface Failures {
  count: number;
  first: number;
  lockedUntil: number;
}

class FailureTable {
  #m = new Map<string, Failures>();
  #limit: number;
  #windowMs: number;
  #lockoutMs: number;
  #max: number;
  constructor(limit: number, windowMs: number, lockoutMs: number, max: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#lockoutMs = lockoutMs;
    this.#max = max;
  }
  lockedFor(key: string, now: number): number {
    const f = this.#m.get(key);
    return f !== undefined && f.lockedUntil > now ? f.lockedUntil - now : 0;
  }
  /** Count a failure; returns true when it locked the key. */
  fail(key: string, now: number): boolean {
    let f = this.#m.get(key);
    if (f === undefined || (now - f.first > this.#windowMs && f.lockedUntil <= now)) {
      if (f === undefined && this.#m.size >= this.#max) this.#evict(now);
      f = { count: 0, first: now, lockedUntil: 0 };
      this.#m.delete(key);
      this.#m.set(key, f);
    }
    f.count++;
    if (f.count >= this.#limit) {
      f.lockedUntil = now + this.#lockoutMs;
      f.count = 0;
      f.first = now;
      return true;
    }
    return false;
  }
  clear(key: string): void {
    this.#m.delete(key);
  }
  get size(): number {
    return this.#m.size;
  }
  #evict(now: number): void {
    for (const [k, f] of this.#m) {
      if (f.lockedUntil <= now && now - f.first > this.#windowMs) this.#m.delete(k);
    }
    // Still full: drop the oldest unlocked entry (locked ones stay locked).
    for (const [k, f] of this.#m) {
      if (this.#m.size < this.#max) break;
      if (f.lockedUntil <= now) this.#m.delete(k);
    }
    if (this.#m.size >= this.#max) {
      const first = this.#m.keys().next().value;
      if (first !== undefined) this.#m.delete(first);
    }
  }
}

export type LoginVerdict = { locked: false } | { locked: true; by: 'account' | 'source'; retryAfterMs: number };

export class LoginThrottle {
  #accounts: FailureTable;
  #sources: FailureTable;
  constructor(o: LoginThrottleOptions) {
    const max = o.maxEntries ?? 100_000;
    this.#accounts = new FailureTable(o.accountFailures, o.windowMs, o.lockoutMs, max);
    this.#sources = new FailureTable(o.sourceFailures, o.windowMs, o.lockoutMs, max);
  }
  check(account: string, source: string, now: number): LoginVerdict {
    const s = this.#sources.lockedFor(source, now);
    if (s > 0) return { locked: true, by: 'source', retryAfterMs: s };
    const a = this.#accounts.lockedFor(account, now);
    if (a > 0) return { locked: true, by: 'account', retryAfterMs: a };
    return { locked: false };
  }
  /** Count a failed attempt; returns which lockouts it started. */
  fail(account: string, source: string, now: number): { account: boolean; source: boolean } {
    return { account: this.#accounts.fail(account, now), source: this.#sources.fail(source, now) };
  }
  /** A failure that has no account (a wrong public-link token): counts for the source only. */
  failSource(source: string, now: number): boolean {
    return this.#sources.fail(source, now);
  }
  sourceLockedFor(source: string, now: number): number {
    return this.#sources.lockedFor(source, now);
  }
  /** A successful login clears the account's failures (not the source's). */
  succeed(account: string): void {
    this.#accounts.clear(account);
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
