// init's count of a service's event log (JSON lines the service appends, the
// file gateway's audit.jsonl: one line per login, list, download, refusal) by
// event and result, for GET /metrics (microgate_service_events_total). It
// costs the service nothing: init reads what was appended since its last look,
// when a scrape asks.
//
// The file lies in a folder the service writes, and the service may run an
// attacker's code, so init (root) opens it with O_NOFOLLOW and counts it only
// if it is a regular file owned by the service's uid (a symlink or hard link to
// a root-owned file is refused, never read); reads at most MAX_READ bytes a
// look; counts only lines that are one JSON object whose `event` and `result`
// are short names (LABEL_RE), at most MAX_PAIRS distinct pairs (further ones
// under event "other"); everything else is counted as rejected. A rotation
// (another inode, or a shorter file) starts again at the new file's start.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { LABEL_RE } from './metrics-read.ts';

/** Most bytes read in one look (the rest waits for the next). */
export const MAX_READ = 4 * 1024 * 1024;
/** Distinct (event, result) pairs counted at most. */
export const MAX_PAIRS = 200;
/** A longer line is not a record (the service writes short ones). */
const MAX_LINE = 64 * 1024;

export interface EventCount { event: string; result: string; count: number }

export class EventLogCounts {
  readonly file: string;
  readonly #uid: number;
  #ino = -1;
  #offset = 0;
  #partial = '';
  #counts = new Map<string, EventCount>();
  /** Lines that were not a record, and looks refused (not a regular file of the service's uid). */
  rejected = 0;
  refused = 0;
  lastProblem = '';

  /** Start counting at the file's current end: what the service appends from now on. */
  constructor(file: string, uid: number) {
    this.file = file;
    this.#uid = uid;
    this.#look(true);
  }

  /** Count what was appended since the last look. */
  poll(): void {
    this.#look(false);
  }

  counts(): EventCount[] {
    return [...this.#counts.values()].map((c) => ({ ...c }));
  }

  #look(skipToEnd: boolean): void {
    let fd: number;
    try {
      fd = openSync(this.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); // Node opens with O_CLOEXEC
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        this.refused++;
        this.lastProblem = `cannot open ${this.file}: ${code ?? (e as Error).message}`;
      }
      return;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.uid !== this.#uid) {
        this.refused++;
        this.lastProblem = `${this.file} is not a regular file owned by uid ${this.#uid}: not read`;
        return;
      }
      if (st.ino !== this.#ino || st.size < this.#offset) {
        this.#ino = st.ino;
        this.#offset = 0;
        this.#partial = '';
      }
      if (skipToEnd) {
        this.#offset = st.size;
        return;
      }
      const n = Math.min(st.size - this.#offset, MAX_READ);
      if (n <= 0) return;
      const buf = Buffer.allocUnsafe(n);
      const got = readSync(fd, buf, 0, n, this.#offset);
      this.#offset += got;
      this.#count(buf.subarray(0, got).toString('utf8'));
    } finally {
      closeSync(fd);
    }
  }

  #count(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > MAX_LINE) {
      this.rejected++;
      this.#partial = '';
    }
    for (const l of lines) {
      if (l === '') continue;
      let rec: unknown;
      try {
        rec = l.length > MAX_LINE ? undefined : JSON.parse(l);
      } catch {
        rec = undefined;
      }
      const o = rec !== null && typeof rec === 'object' && !Array.isArray(rec) ? (rec as Record<string, unknown>) : undefined;
      const event = o?.event;
      const result = o?.result;
      if (typeof event !== 'string' || typeof result !== 'string' || !LABEL_RE.test(event) || !LABEL_RE.test(result)) {
        this.rejected++;
        continue;
      }
      let key = `${event} ${result}`;
      let c = this.#counts.get(key);
      if (c === undefined && this.#counts.size >= MAX_PAIRS) {
        key = 'other other';
        c = this.#counts.get(key);
      }
      if (c === undefined) {
        c = key === 'other other' ? { event: 'other', result: 'other', count: 0 } : { event, result, count: 0 };
        this.#counts.set(key, c);
      }
      c.count++;
    }
  }
}
