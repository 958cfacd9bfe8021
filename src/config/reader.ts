// The one config reader: YAML text in, values read out with their path and
// source line, and one error class whose message names the file, the line,
// the path inside the document and what was expected, e.g.
//   gateway.yaml:14: components[1].isolation: expected one of process, thread, inline (got "proces")
// init's gateway config, every component's section and every service's own
// file are read with it. The YAML parser itself is yaml.ts (parseYaml), so a
// component that only reads its already-parsed section never loads it.

export class ConfigFileError extends Error {
  readonly code = 'MG_CONFIG_INVALID';
  readonly file: string;
  readonly path: string;
  constructor(file: string, line: number | undefined, path: string, expected: string) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${path || '(top level)'}: ${expected}`);
    this.name = 'ConfigFileError';
    this.file = file;
    this.path = path;
  }
}

export type Obj = Record<string, unknown>;

/** Reads values out of a parsed document, tracking paths and source lines for errors. */
export class Reader {
  readonly file: string;
  #lineOf: (path: (string | number)[]) => number | undefined;
  constructor(file: string, lineOf: (path: (string | number)[]) => number | undefined) {
    this.file = file;
    this.#lineOf = lineOf;
  }

  /** The source line of a path (or of its nearest ancestor in the document). */
  line(path: (string | number)[]): number | undefined {
    return this.#lineOf(path);
  }

  fail(path: (string | number)[], expected: string): never {
    throw new ConfigFileError(this.file, this.#lineOf(path), fmtPath(path), expected);
  }

  /** A mapping with only `known` keys; `what` names it in the error (default "a mapping"). */
  obj(v: unknown, path: (string | number)[], known: readonly string[], what = 'a mapping'): Obj {
    if (!isObj(v)) this.fail(path, `expected ${what}${got(v)}`);
    for (const k of Object.keys(v as Obj)) {
      if (!known.includes(k)) this.fail([...path, k], `unknown key; expected one of ${known.join(', ')}`);
    }
    return v as Obj;
  }

  str(v: unknown, path: (string | number)[], re?: RegExp, what = 'a string'): string {
    if (typeof v !== 'string' || (re !== undefined && !re.test(v))) this.fail(path, `expected ${what}${got(v)}`);
    return v;
  }

  /** An integer in [min, max]; with `def`, a missing value (undefined) is def. */
  int(v: unknown, path: (string | number)[], min: number, max: number, def?: number): number {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer from ${min} to ${max}${got(v)}`);
    }
    return v;
  }

  /** true or false; with `def`, a missing value (undefined) is def. */
  bool(v: unknown, path: (string | number)[], def?: boolean): boolean {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false${got(v)}`);
    return v;
  }

  /** A list; `example` shows one in the error ("expected a list like [1, 2]"). */
  list(v: unknown, path: (string | number)[], example: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list like ${example}${got(v)}`);
    return v;
  }

  oneOf<T extends string>(v: unknown, path: (string | number)[], options: readonly T[]): T {
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
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g;
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(`"${m[3]}"`) as string);
  }
  return out;
}
