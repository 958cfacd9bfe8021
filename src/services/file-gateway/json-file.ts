// JSON files shared between the admin commands (writers, root) and the
// service (reader): written atomically (temporary file, fsync, rename), so a
// reader sees the old or the new content, never half of one; read back by
// polling the file's identity (inode, size, mtime), so the service picks up a
// change within `reloadMs` without any message from the writer.
import { chownSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

/** Write `data` as JSON to `file` atomically, with `mode` and (when given) group `gid`. */
export function writeJsonAtomic(file: string, data: unknown, opts: { mode?: number; uid?: number; gid?: number } = {}): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', opts.mode ?? 0o640);
  try {
    writeSync(fd, JSON.stringify(data, null, 2) + '\n');
    if (opts.gid !== undefined || opts.uid !== undefined) chownSync(tmp, opts.uid ?? -1, opts.gid ?? -1);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* gone */ }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  try {
    const dfd = openSync(dirname(file), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* a directory fsync is best effort (and not allowed for the sandboxed service) */ }
}

/** Read and parse a JSON file; undefined when it does not exist. Throws for other errors. */
export function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as unknown;
}

/**
 * A JSON file the service reads and re-reads when it changes. A missing file
 * is `empty`; a file that cannot be read or does not validate fails closed
 * (also `empty`: nobody logs in, nothing is published) and is reported
 * through `onError` until it is fixed.
 */
export class ReloadingJson<T> {
  readonly file: string;
  #parse: (raw: unknown) => T;
  #empty: T;
  #value: T;
  #stamp = '';
  #onError: (msg: string) => void;
  #onChange: (value: T) => void;

  constructor(file: string, parse: (raw: unknown) => T, empty: T, hooks: { onError?: (msg: string) => void; onChange?: (value: T) => void } = {}) {
    this.file = file;
    this.#parse = parse;
    this.#empty = empty;
    this.#value = empty;
    this.#onError = hooks.onError ?? (() => {});
    this.#onChange = hooks.onChange ?? (() => {});
    this.check();
  }

  get value(): T {
    return this.#value;
  }

  /** Re-read the file if its inode, size or mtime changed. Returns true when it was re-read. */
  check(): boolean {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      stamp = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `error:${(e as Error).message}`;
    }
    if (stamp === this.#stamp) return false;
    this.#stamp = stamp;
    try {
      const raw = readJson(this.file);
      this.#value = raw === undefined ? this.#empty : this.#parse(raw);
    } catch (e) {
      this.#value = this.#empty;
      this.#onError(`${this.file}: ${(e as Error).message}; using none until it is fixed`);
    }
    this.#onChange(this.#value);
    return true;
  }
}
