// init's side of components that produce EVE records (the monitor): every
// `intervalMs` it asks each of them for the lines after the last sequence
// number it saw (query "eve"), appends them to the component's log file (the
// component itself can write nowhere) and keeps the last `keep` lines in
// memory for the control API (`GET /alerts?since=N`), numbered by its own
// sequence, so readers survive a restarted component. New lines also go to the
// source's block feedback, if it has one (block-feedback.ts). The log files
// rotate at LOG_MAX_BYTES (16 MiB), LOG_KEEP (4) old ones kept (eve.json.1 ...),
// src/sys/rotating-file.ts.
import { RotatingFile, type RotatingFileOptions } from '../sys/rotating-file.ts';

export interface EveSource {
  component: string;
  /** Append-only log file, or undefined for memory only. */
  file: string | undefined;
  /** Block feedback: sees every new line (init commands the router on matches). */
  feedback?: { lines(lines: readonly string[]): void; status(): Record<string, unknown> };
}

type Query = (component: string, what: string, args: unknown) => Promise<{ result?: unknown; error?: string }>;

interface Cursor {
  src: EveSource;
  /** Its log file, opened at the first line. */
  out: RotatingFile | undefined;
  /** The component's own sequence number last read; resets when it restarts. */
  since: number;
  missed: number;
  errors: number;
  lastError: string;
}

export class EveCollector {
  readonly #query: Query;
  readonly #cursors: Cursor[];
  readonly #keep: number;
  readonly #lines: string[] = [];
  /** Sequence number (init's) of #lines[#lines.length - 1]. */
  #seq = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;
  readonly #log: (line: string) => void;

  readonly #rotate: RotatingFileOptions;

  constructor(query: Query, sources: EveSource[], opts: { intervalMs?: number; keep?: number; log?: (l: string) => void; rotate?: RotatingFileOptions } = {}) {
    this.#query = query;
    this.#cursors = sources.map((src) => ({ src, out: undefined, since: 0, missed: 0, errors: 0, lastError: '' }));
    this.#keep = opts.keep ?? 10000;
    this.#log = opts.log ?? (() => {});
    this.#rotate = opts.rotate ?? {};
    this.#timer = setInterval(() => void this.collect(), opts.intervalMs ?? 500);
    this.#timer.unref();
  }

  /** One round of fetching (also called once more before init stops the components). */
  async collect(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (const c of this.#cursors) {
        const r = await this.#query(c.src.component, 'eve', { since: c.since });
        if (r.error !== undefined || r.result === undefined) {
          c.errors++;
          c.lastError = r.error ?? 'no answer';
          continue;
        }
        const res = r.result as { seq: number; lines: string[]; missed: number };
        if (res.seq < c.since) {
          // The component restarted: its numbering starts again.
          c.since = 0;
          continue;
        }
        c.since = res.seq;
        c.missed += res.missed;
        if (res.missed > 0) this.#log(`init: ${c.src.component}: ${res.missed} EVE lines were overwritten before init read them`);
        if (res.lines.length === 0) continue;
        if (c.src.file !== undefined) {
          try {
            c.out ??= new RotatingFile(c.src.file, this.#rotate);
            c.out.write(`${res.lines.join('\n')}\n`);
          } catch (e) {
            c.errors++;
            c.lastError = `cannot append to ${c.src.file}: ${(e as Error).message}`;
          }
        }
        c.src.feedback?.lines(res.lines);
        for (const l of res.lines) {
          this.#lines.push(l);
          this.#seq++;
        }
        if (this.#lines.length > this.#keep) this.#lines.splice(0, this.#lines.length - this.#keep);
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Lines after init's sequence number `since` (what is still kept). */
  since(since: number): { seq: number; lines: string[]; missed: number } {
    const firstSeq = this.#seq - this.#lines.length + 1;
    const from = Math.max(since + 1, firstSeq);
    const missed = Math.max(0, from - (since + 1));
    return { seq: this.#seq, lines: this.#lines.slice(from - firstSeq), missed };
  }

  status(): Record<string, unknown>[] {
    return this.#cursors.map((c) => ({
      component: c.src.component, file: c.src.file ?? null, fileBytes: c.out?.size ?? 0, rotations: c.out?.counters.rotations ?? 0, since: c.since, missed: c.missed, errors: c.errors, lastError: c.lastError,
      ...(c.src.feedback !== undefined ? { block: c.src.feedback.status() } : {}),
    }));
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.collect();
    for (const c of this.#cursors) {
      c.out?.close();
      c.out = undefined;
    }
  }
}
