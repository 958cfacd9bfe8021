// Small helpers shared by the router's config parsers (config.ts, policy-config.ts):
// a Checker that throws ConfigErrors naming the exact path and what was
// expected, and the path / value formatting those messages use.
import { ConfigError } from '../../runtime/component.ts';

const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** " (got ...)" for error messages, as the gateway config loader words it. */
export function got(v: unknown): string {
  if (v === undefined) return ' (missing)';
  const s = JSON.stringify(v);
  return ` (got ${s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s})`;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** base + ".key" (or base + '["odd key"]'). */
export function keyPath(base: string, key: string): string {
  const k = NAME_RE.test(key) ? key : JSON.stringify(key);
  const seg = NAME_RE.test(key) ? `.${k}` : `[${k}]`;
  return base === '' ? (NAME_RE.test(key) ? k : seg) : base + seg;
}

export class Checker {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  fail(path: string, expected: string): never {
    throw new ConfigError(this.file, path, expected);
  }
  record(v: unknown, path: string, known: readonly string[], what: string): Record<string, unknown> {
    if (!isRecord(v)) this.fail(path, `expected ${what}${got(v)}`);
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) this.fail(keyPath(path, k), `unknown key; expected one of ${known.join(', ')}`);
    }
    return v;
  }
  int(v: unknown, path: string, def: number, min: number, max: number): number {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer from ${min} to ${max}${got(v)}`);
    }
    return v;
  }
  bool(v: unknown, path: string, def: boolean): boolean {
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false${got(v)}`);
    return v;
  }
  list(v: unknown, path: string, example: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list like ${example}${got(v)}`);
    return v;
  }
}

/** Parse "49152-65535" (or one port "5000", or a number). */
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
