// init's side of components that produce EVE records (the monitor): every
// `intervalMs` it asks each of them for the lines after the last sequence
// number it saw (query "eve"), appends them to the component's log file (the
// component itself can write nowhere) and keeps the last `keep` lines in
// memory for the control API (`GET /alerts?since=N`), numbered by its own
// sequence, so readers survive a restarted component. New lines also go to the
// source's block feedback, if it has one (block-feedback.ts). The log files
// rotate at LOG_MAX_BYTES (16 MiB), LOG_KEEP (4) old ones kept (eve.json.1 ...),
// src/sys/rotating-file.ts. Alert records are counted by (component,
// signature id) for GET /metrics (at most MAX_ALERT_SIGNATURES distinct ones;
// later ones are counted under sid "other").
//
// The answer comes from a component that may be compromised: it is checked
// (checkEveAnswer) before anything is written or kept. An answer of the wrong
// shape (no `lines`, a line that is not one JSON object on one line, more
// lines than asked, ...) is refused, counted and handed to `offend` (init kills
// and restarts the component); nothing of it reaches the log or the feedback.
import { RotatingFile, type RotatingFileOptions } from '../sys/rotating-file.ts';

export interface EveSource {
  component: string;
  /** Append-only log file, or undefined for memory only. */
  file: string | undefined;
  /** Block feedback: sees every new line (init commands the router on matches). */
  feedback?: { lines(lines: readonly string[]): void; status(): Record<string, unknown> };
}

type Query = (component: string, what: string, args: unknown) => Promise<{ result?: unknown; error?: string }>;

/** Most lines one answer may carry, and the longest line (an EVE record), in characters. */
export const MAX_EVE_LINES = 100000;
export const MAX_EVE_LINE = 256 * 1024;

/** Distinct (component, sid) pairs counted at most; alerts of further ones count under sid "other". */
export const MAX_ALERT_SIGNATURES = 1000;
/** Longest signature text kept for a count (the label of microgate_alerts_total). */
export const MAX_SIGNATURE_TEXT = 200;

export interface AlertCount { component: string; sid: string; signature: string; count: number }

export interface EveAnswer { seq: number; lines: string[]; missed: number }

/** The checked answer to query "eve", or what is wrong with it. */
export function checkEveAnswer(v: unknown): EveAnswer | string {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'the answer is not an object';
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'seq' && k !== 'lines' && k !== 'missed') return `the answer has an unknown key ${JSON.stringify(k.slice(0, 40))}`;
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0) return 'seq must be a non-negative integer';
  if (!Array.isArray(o.lines)) return 'lines must be an array';
  if (typeof o.missed !== 'number' || !Number.isSafeInteger(o.missed) || o.missed < 0) return 'missed must be a non-negative integer';
  if (o.lines.length > MAX_EVE_LINES) return `more than ${MAX_EVE_LINES} lines`;
  for (let i = 0; i < o.lines.length; i++) {
    const l: unknown = o.lines[i];
    if (typeof l !== 'string' || l.length > MAX_EVE_LINE) return `lines[${i}] must be a string of at most ${MAX_EVE_LINE} characters`;
    // One record per line: JSON.stringify never writes a raw line break, so one here forges records in the log.
    if (/[\r\n\u2028\u2029]/.test(l)) return `lines[${i}] holds a line break`;
    let rec: unknown;
    try {
      rec = JSON.parse(l);
    } catch {
      return `lines[${i}] is not JSON`;
    }
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return `lines[${i}] is not a JSON object`;
  }
  return { seq: o.seq, lines: o.lines as string[], missed: o.missed };
}

interface Cursor {
  src: EveSource;
  /** Its log file, opened at the first line. */
  out: RotatingFile | undefined;
  /** The component's own sequence number last read; resets when it restarts. */
  since: number;
  missed: number;
  errors: number;
  lastError: string;
  /** Answers refused for their shape. */
  refused: number;
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
  readonly #offend: (component: string, why: string) => void;

  readonly #rotate: RotatingFileOptions;
  /** Alerts by "component sid" (checked lines only). */
  readonly #alerts = new Map<string, AlertCount>();

  constructor(query: Query, sources: EveSource[], opts: { intervalMs?: number; keep?: number; log?: (l: string) => void; rotate?: RotatingFileOptions; offend?: (component: string, why: string) => void } = {}) {
    this.#query = query;
    this.#cursors = sources.map((src) => ({ src, out: undefined, since: 0, missed: 0, errors: 0, lastError: '', refused: 0 }));
    this.#offend = opts.offend ?? (() => {});
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
          c.lastError = (r.error ?? 'no answer').slice(0, 300);
          continue;
        }
        const res = checkEveAnswer(r.result);
        if (typeof res === 'string') {
          c.refused++;
          c.errors++;
          c.lastError = `answer refused: ${res}`;
          this.#offend(c.src.component, `its answer to query "eve" is refused: ${res}`);
          continue;
        }
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
            c.out ??= new RotatingFile(c.src.file, { mode: 0o600, ...this.#rotate });
            c.out.write(`${res.lines.join('\n')}\n`);
          } catch (e) {
            c.errors++;
            c.lastError = `cannot append to ${c.src.file}: ${(e as Error).message}`;
          }
        }
        c.src.feedback?.lines(res.lines);
        this.#countAlerts(c.src.component, res.lines);
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

  /** Count the alert records of checked lines (each is one JSON object: checkEveAnswer) by signature id. */
  #countAlerts(component: string, lines: readonly string[]): void {
    for (const l of lines) {
      const rec = JSON.parse(l) as Record<string, unknown>;
      if (rec.event_type !== 'alert') continue;
      const a = rec.alert !== null && typeof rec.alert === 'object' ? rec.alert as Record<string, unknown> : {};
      const id = a.signature_id;
      let sid = typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? String(id) : 'unknown';
      let key = `${component} ${sid}`;
      let n = this.#alerts.get(key);
      if (n === undefined && this.#alerts.size >= MAX_ALERT_SIGNATURES) {
        sid = 'other';
        key = `${component} other`;
        n = this.#alerts.get(key);
      }
      if (n === undefined) {
        const text = sid === 'other' ? '' : typeof a.signature === 'string' ? a.signature.slice(0, MAX_SIGNATURE_TEXT) : '';
        n = { component, sid, signature: text, count: 0 };
        this.#alerts.set(key, n);
      }
      n.count++;
    }
  }

  /** Alerts collected so far by (component, signature id), since init started (a restarted monitor does not reset them). */
  alertCounts(): AlertCount[] {
    return [...this.#alerts.values()].map((a) => ({ ...a }));
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
      component: c.src.component, file: c.src.file ?? null, fileBytes: c.out?.size ?? 0, rotations: c.out?.counters.rotations ?? 0, since: c.since, missed: c.missed, errors: c.errors, refused: c.refused, lastError: c.lastError,
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
