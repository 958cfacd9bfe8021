// An append-only log file of bounded size: lines are appended (synchronously,
// whole lines only) until the next one would take the file past `maxBytes`;
// then FILE.(keep-1) -> FILE.keep, ..., FILE -> FILE.1 (renames only: the
// oldest is overwritten, nothing is unlinked) and a fresh FILE is started. So
// the log and its `keep` predecessors never hold more than (keep + 1) *
// maxBytes. One writer per file: the audit log of the file gateway, the EVE
// logs init collects, init's own log.
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** The project's log size: 16 MiB per file, 4 rotated files kept (80 MiB in all). */
export const LOG_MAX_BYTES = 16 * 1024 * 1024;
export const LOG_KEEP = 4;

export interface RotatingFileOptions {
  maxBytes?: number;
  keep?: number;
  mode?: number;
}

export class RotatingFile {
  readonly path: string;
  readonly maxBytes: number;
  readonly keep: number;
  readonly #mode: number;
  #fd = -1;
  #size = 0;
  /** Rotations done, and lines longer than maxBytes (cut to fit). */
  readonly counters = { rotations: 0, truncated: 0 };

  constructor(path: string, opts: RotatingFileOptions = {}) {
    this.path = path;
    this.maxBytes = opts.maxBytes ?? LOG_MAX_BYTES;
    this.keep = opts.keep ?? LOG_KEEP;
    this.#mode = opts.mode ?? 0o640;
    if (!(this.maxBytes >= 64) || !Number.isInteger(this.keep) || this.keep < 1) throw new RangeError('RotatingFile: maxBytes >= 64 and keep >= 1 expected');
    mkdirSync(dirname(path), { recursive: true });
    this.#open();
  }

  /** Append `text` (one or more whole lines); throws what the file system throws. */
  write(text: string): void {
    let buf = Buffer.from(text, 'utf8');
    if (buf.length > this.maxBytes) {
      // A single record larger than the whole file: keep its start, marked.
      buf = Buffer.concat([buf.subarray(0, this.maxBytes - 16), Buffer.from(' [truncated]\n')]);
      this.counters.truncated++;
    }
    if (this.#size > 0 && this.#size + buf.length > this.maxBytes) this.#rotate();
    let off = 0;
    while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
    this.#size += buf.length;
  }

  /** Bytes in the current file. */
  get size(): number {
    return this.#size;
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  #open(): void {
    this.#fd = openSync(this.path, 'a', this.#mode);
    this.#size = fstatSync(this.#fd).size;
  }

  #rotate(): void {
    this.close();
    try {
      for (let i = this.keep - 1; i >= 1; i--) {
        try {
          renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      renameSync(this.path, `${this.path}.1`);
      this.counters.rotations++;
    } finally {
      this.#open(); // on a failed rename: the same file again (the caller sees the error)
    }
  }
}
