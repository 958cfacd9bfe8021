// Block feedback, init's side: the EVE lines init collects from a monitor are
// held against the monitor's `block` entries (a matcher the component type
// supplies); a match makes init send the router the command
// `block {ip, seconds, reason}`. Exempt addresses are never sent (the router
// itself also refuses its own addresses). While an address is blocked, further
// matches refresh the block only once less than half of it is left, so a
// flood of alerts costs a few commands, not one per alert.

import { escapeText } from './host-messages.ts';
import type { BlockRequest, EveBlockMatcher } from '../runtime/component.ts';

export type { BlockRequest, EveBlockMatcher };

type Command = (component: string, what: string, args: unknown) => Promise<{ result?: unknown; error?: string }>;

/** Cheap test before JSON.parse: only alert and anomaly records can match. */
const CANDIDATE = /"event_type":"(?:alert|anomaly)"/;
/** Blocks remembered (oldest forgotten first), so the refresh rule stays bounded. */
const MAX_REMEMBERED = 16384;

export class BlockFeedback {
  readonly router: string;
  readonly #matcher: EveBlockMatcher;
  readonly #command: Command;
  readonly #log: (line: string) => void;
  readonly #clock: () => number;
  /** ip -> wall-clock ms until which init last had it blocked. */
  readonly #until = new Map<string, number>();
  #queue: BlockRequest[] = [];
  #sending: Promise<void> | undefined;
  readonly stats = { matched: 0, sent: 0, refreshSkipped: 0, exempt: 0, refused: 0, errors: 0, badLines: 0, lastError: '' };

  constructor(router: string, matcher: EveBlockMatcher, command: Command, opts: { log?: (l: string) => void; clock?: () => number } = {}) {
    this.router = router;
    this.#matcher = matcher;
    this.#command = command;
    this.#log = opts.log ?? (() => {});
    this.#clock = opts.clock ?? Date.now;
  }

  /** New EVE lines from the monitor: queue a block for each that matches (longest wins per address). */
  lines(lines: readonly string[]): void {
    const now = this.#clock();
    const want = new Map<string, BlockRequest>();
    for (const l of lines) {
      if (!CANDIDATE.test(l)) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(l);
      } catch {
        this.stats.badLines++;
        continue;
      }
      const b = this.#matcher.match(rec);
      if (b === undefined) continue;
      this.stats.matched++;
      if (this.#matcher.exempt(b.ip)) {
        this.stats.exempt++;
        continue;
      }
      const until = this.#until.get(b.ip);
      // Blocked with more than half of this block still to run: nothing to refresh.
      if (until !== undefined && until - now > (b.seconds * 1000) / 2) {
        this.stats.refreshSkipped++;
        continue;
      }
      const cur = want.get(b.ip);
      if (cur === undefined || b.seconds > cur.seconds) want.set(b.ip, b);
    }
    if (want.size === 0) return;
    for (const b of want.values()) {
      this.#until.delete(b.ip);
      this.#until.set(b.ip, now + b.seconds * 1000);
      this.#queue.push(b);
    }
    while (this.#until.size > MAX_REMEMBERED) this.#until.delete(this.#until.keys().next().value as string);
    this.#sending ??= this.#drain();
  }

  /** Resolves once every queued block has been sent (tests; init's stop). */
  async settled(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const b = this.#queue.shift()!;
        const r = await this.#command(this.router, 'block', { ip: b.ip, seconds: b.seconds, reason: b.reason });
        if (r.error === undefined) {
          this.stats.sent++;
          this.#log(`init: ${this.router}: blocked ${b.ip} for ${b.seconds} s (${escapeText(b.reason)})`);
          continue;
        }
        // The router refused (its own address...) or did not answer: try again on the next match.
        this.#until.delete(b.ip);
        if (/did not answer|is (?:starting|stopped|restarting|failed)|no component/.test(r.error)) this.stats.errors++;
        else this.stats.refused++;
        this.stats.lastError = r.error.slice(0, 300);
        this.#log(`init: ${this.router}: block ${b.ip} not applied: ${escapeText(r.error)}`);
      }
    } finally {
      this.#sending = undefined;
    }
  }

  status(): Record<string, unknown> {
    return { router: this.router, ...this.stats };
  }
}
