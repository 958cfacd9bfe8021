// One budget for the application parsers' buffers (TLS handshakes, DNS over
// TCP) across all flows: a per-flow bound alone would let many flows, each
// holding a partial handshake, add up to gigabytes. A parser that cannot get
// the bytes it needs gives its side up (counted in `denied`); a flow's bytes
// come back when it ends.
export const APP_MEMCAP = 64 * 1024 * 1024;

export class AppMemory {
  used = 0;
  denied = 0;
  readonly cap: number;

  constructor(cap = APP_MEMCAP) {
    this.cap = cap;
  }

  /** Reserve n bytes; false (and counted) when the budget has no room. */
  take(n: number): boolean {
    if (this.used + n > this.cap) {
      this.denied++;
      return false;
    }
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** Without an engine (tests, tools): no shared limit beyond each parser's own. */
export const UNLIMITED = new AppMemory(Number.MAX_SAFE_INTEGER);
