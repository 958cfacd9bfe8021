// The one config reader: YAML text in, values read out with their path and
// source line, and one error class whose message names the file, the line,
// the path inside the document and what was expected, e.g.
//   gateway.yaml:14: components[1].isolation: expected one of process, thread, inline (got "proces")
// init's gateway config, every component's section and every service's own
// file are read with it. A component validates its section with a Reader
// that has no document (`new Reader(file)`, paths under its section's path):
// its errors carry no line, and init, which has the document, fills it in
// (ConfigFileError.withLine). YAML itself is parsed in yaml.ts, so a
// component that only reads its section never loads the YAML parser.
import { readFileSync } from 'node:fs';

/** Every config error: file, line (when known), path inside the document, what was expected. */
export class ConfigFileError extends Error {
  readonly code = 'MG_CONFIG_INVALID';
  readonly file: string;
  readonly path: string;
  readonly expected: string;
  readonly line: number | undefined;
  constructor(file: string, path: string, expected: string, line?: number) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${path || '(top level)'}: ${expected}`);
    this.name = 'ConfigFileError';
    this.file = file;
    this.path = path;
    this.expected = expected;
    this.line = line;
  }

  /** The same error with its source line (init knows the document a component section came from). */
  withLine(line: number | undefined): ConfigFileError {
    return line === undefined || this.line !== undefined ? this : new ConfigFileError(this.file, this.path, this.expected, line);
  }
}

export type Obj = Record<string, unknown>;
export type Path = (string | number)[];

/** Any string of at least one character (for Reader.str). */
export const NON_EMPTY = /^[\s\S]+$/;

/** Reads values out of a parsed document, tracking paths and source lines for errors. */
export class Reader {
  readonly file: string;
  #lineOf: (path: Path) => number | undefined;
  /** Without lineOf: a reader for values not from a document of its own (a component's section): no lines. */
  constructor(file: string, lineOf: (path: Path) => number | undefined = () => undefined) {
    this.file = file;
    this.#lineOf = lineOf;
  }

  /** The source line of a path (or of its nearest ancestor in the document). */
  line(path: Path): number | undefined {
    return this.#lineOf(path);
  }

  fail(path: Path, expected: string): never {
    throw new ConfigFileError(this.file, fmtPath(path), expected, this.#lineOf(path));
  }

  /** A mapping with only the known keys; `what` words the expectation ("a mapping like ..."). */
  obj(v: unknown, path: Path, known: readonly string[], what = 'a mapping'): Obj {
    if (!isObj(v)) this.fail(path, `expected ${what}${got(v)}`);
    for (const k of Object.keys(v as Obj)) {
      if (!known.includes(k)) this.fail([...path, k], `unknown key; expected one of ${known.join(', ')}`);
    }
    return v as Obj;
  }

  str(v: unknown, path: Path, re?: RegExp, what = 'a string'): string {
    if (typeof v !== 'string' || (re !== undefined && !re.test(v))) this.fail(path, `expected ${what}${got(v)}`);
    return v;
  }

  /** An integer in [min, max]; with `def`, a missing value (undefined) is def. */
  int(v: unknown, path: Path, min: number, max: number, def?: number): number {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer from ${min} to ${max}${got(v)}`);
    }
    return v;
  }

  /** true or false; with `def`, a missing value (undefined) is def. */
  bool(v: unknown, path: Path, def?: boolean): boolean {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false${got(v)}`);
    return v;
  }

  /** A list; `example` shows one in the error ("expected a list like [1, 2]"). */
  list(v: unknown, path: Path, example: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list like ${example}${got(v)}`);
    return v;
  }

  /** obj(), or {} when absent. */
  optObj(v: unknown, path: Path, known: readonly string[], what?: string): Obj {
    return v === undefined ? {} : this.obj(v, path, known, what);
  }

  /** A list of strings, or [] when absent. */
  strList(v: unknown, path: Path): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(path, `expected a list of strings${got(v)}`);
    return v as string[];
  }

  /** A number of seconds (fractions allowed) from min to max, returned in whole milliseconds; `defMs` when absent. */
  seconds(v: unknown, path: Path, defMs: number, min: number, max: number): number {
    if (v === undefined) return defMs;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(path, `expected a number of seconds from ${min} to ${max}${got(v)}`);
    return Math.round(v * 1000);
  }

  oneOf<T extends string>(v: unknown, path: Path, options: readonly T[]): T {
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
      this.fail(path, `expected one of ${options.join(', ')}${got(v)}`);
    }
    return v as T;
  }
}

export function got(v: unknown): string {
  if (v === undefined) return ' (missing)';
  const s = JSON.stringify(v);
  return ` (got ${s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s})`;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys written bare in a path; any other key is quoted, e.g. domains["my lan"] (parsePath reads both back). */
const BARE_KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** ['components', 2, 'config', 'my lan'] -> 'components[2].config["my lan"]' */
export function fmtPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (!BARE_KEY.test(p)) out += `[${JSON.stringify(p)}]`;
    else out += out === '' ? p : `.${p}`;
  }
  return out;
}

/** A port or a port range: 5000, "5000", "49152-65535" (1 to 65535, first <= last), or undefined. */
export function parsePortRange(v: unknown): { first: number; last: number } | undefined {
  if (typeof v === 'number') {
    return Number.isInteger(v) && v >= 1 && v <= 65535 ? { first: v, last: v } : undefined;
  }
  if (typeof v !== 'string') return undefined;
  const m = /^\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?$/.exec(v);
  if (m === null) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2] ?? m[1]);
  if (first < 1 || last > 65535 || first > last) return undefined;
  return { first, last };
}

/** "components[2].config.domains.lan" -> ['components', 2, 'config', 'domains', 'lan'] */
export function parsePath(path: string): Path {
  const out: Path = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g;
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(`"${m[3]}"`) as string);
  }
  return out;
}

/** Read a config file as text; a missing or unreadable file is a ConfigFileError. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(file, '', `cannot read the file: ${(e as Error).message}`);
  }
}
