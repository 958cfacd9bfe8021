// Running a suricata-verify test directory with our engine: its capture, its
// rules, its suricata.yaml (address/port groups, EVE types) and args
// (stream.midstream), then its test.yaml checks held against our EVE output
// exactly as suricata-verify's run.py evaluates them (filter counts with
// find_value semantics, __startswith/__endswith/__find/__contains/__len).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_EVE_TYPES, type EveType } from '../components/monitor/engine.ts';
import { runOffline } from '../components/monitor/offline.ts';

/** The Suricata version whose behaviour we follow (for requires/min-version/lt-version). */
export const EMULATED_VERSION: [number, number, number] = [9, 0, 0];
/** Features we have (requires: features). */
export const FEATURES = new Set<string>(['HAVE_JA3']);

export interface CheckResult {
  index: number;
  status: 'pass' | 'fail' | 'skip';
  detail: string;
}

export interface VerifyResult {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  reason: string;
  checks: CheckResult[];
  events: Record<string, unknown>[];
}

function parseVersion(v: unknown): [number, number, number] {
  const m = /(\d+)\.?(\d+)?\.?(\d+)?/.exec(String(v));
  if (m === null) return [0, 0, 0];
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

function cmpVersion(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Why the requirements are not met, or undefined. */
function unmet(req: Record<string, unknown> | undefined): string | undefined {
  if (req === undefined || req === null) return undefined;
  for (const [k, v] of Object.entries(req)) {
    if (k === 'min-version' && cmpVersion(EMULATED_VERSION, parseVersion(v)) < 0) return `needs Suricata >= ${String(v)}`;
    if (k === 'lt-version' && cmpVersion(EMULATED_VERSION, parseVersion(v)) >= 0) return `needs Suricata < ${String(v)}`;
    if (k === 'version') {
      const want = parseVersion(v);
      if (want[0] !== EMULATED_VERSION[0]) return `only for Suricata ${String(v)}`;
    }
    if (k === 'features') {
      for (const f of v as string[]) if (!FEATURES.has(f)) return `needs feature ${f}`;
    }
    if (k === 'env' || k === 'files' || k === 'config' || k === 'lambda') return `requirement "${k}" cannot be checked here`;
    // "script" requirements grep Suricata's source for a feature; we judge by our own support (see README).
  }
  return undefined;
}

/** run.py's find_value. */
export function findValue(name: string, obj: unknown): unknown {
  let cur: unknown = obj;
  for (const part of name.split('.')) {
    if (part === '__len') {
      if (typeof cur === 'string' || Array.isArray(cur)) return cur.length;
      if (cur !== null && typeof cur === 'object') return Object.keys(cur).length;
      return -1;
    }
    if (part === '__contains' || part === '__find' || part === '__startswith' || part === '__endswith') break;
    const m = /^(.*)\[(\d+)\]$/.exec(part);
    const key = m === null ? part : m[1];
    if (cur === null || typeof cur !== 'object' || !(key in (cur as Record<string, unknown>))) return null;
    cur = (cur as Record<string, unknown>)[key];
    if (m !== null) {
      if (!Array.isArray(cur) || Number(m[2]) >= cur.length) return null;
      cur = cur[Number(m[2])];
    }
  }
  return cur === undefined ? null : cur;
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function matches(ev: Record<string, unknown>, match: Record<string, unknown>): boolean {
  for (const [key, expected] of Object.entries(match)) {
    if (key === 'has-key') {
      if (findValue(String(expected), ev) === null) return false;
      continue;
    }
    if (key === 'not-has-key') {
      if (findValue(String(expected), ev) !== null) return false;
      continue;
    }
    const val = findValue(key, ev);
    if (key.endsWith('__find') || key.endsWith('__contains')) {
      if (typeof val === 'string' ? !val.includes(String(expected)) : !(Array.isArray(val) && val.includes(expected))) return false;
    } else if (key.endsWith('__startswith')) {
      if (typeof val !== 'string' || !val.startsWith(String(expected))) return false;
    } else if (key.endsWith('__endswith')) {
      if (typeof val !== 'string' || !val.endsWith(String(expected))) return false;
    } else if (!deepEqual(val, expected ?? null)) return false;
  }
  return true;
}

/** The capture a test uses; "pcap:" paths written for suricata-verify's tree are tried against this flat copy too. */
function findPcap(dir: string, cfg: Record<string, unknown>): string | undefined {
  const given = cfg.pcap;
  if (typeof given === 'string') {
    const direct = join(dir, given);
    if (existsSync(direct)) return direct;
    const flat = join(dirname(dir), basename(dirname(given)), basename(given));
    if (existsSync(flat)) return flat;
    return undefined;
  }
  const found = readdirSync(dir).filter((f) => f.endsWith('.pcap') || f.endsWith('.pcapng'));
  return found.length > 0 ? join(dir, found[0]) : undefined;
}

/** Run one suricata-verify test directory. */
export function runVerifyTest(dir: string, classificationFile?: string): VerifyResult {
  const name = basename(dir);
  const cfg = (parseYaml(readFileSync(join(dir, 'test.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
  const result: VerifyResult = { name, status: 'pass', reason: '', checks: [], events: [] };
  const why = unmet(cfg.requires as Record<string, unknown> | undefined);
  if (why !== undefined) {
    result.status = 'skip';
    result.reason = why;
    return result;
  }
  const pcap = findPcap(dir, cfg);
  if (pcap === undefined) {
    result.status = 'fail';
    result.reason = 'no capture found';
    return result;
  }
  const args = ((cfg.args as string[] | undefined) ?? []).join(' ');
  const midstream = /stream\.midstream=true/.test(args);
  // suricata.yaml: vars and EVE types.
  const vars: Record<string, string> = {};
  let types: EveType[] = [...DEFAULT_EVE_TYPES];
  const sy = join(dir, 'suricata.yaml');
  if (existsSync(sy)) {
    const y = (parseYaml(readFileSync(sy, 'utf8').replace(/^%YAML.*$/m, '')) ?? {}) as Record<string, any>;
    for (const group of ['address-groups', 'port-groups']) {
      for (const [k, v] of Object.entries((y.vars?.[group] ?? {}) as Record<string, unknown>)) vars[k] = String(v);
    }
    const eveOut = (y.outputs as Record<string, any>[] | undefined)?.find((o) => o['eve-log'] !== undefined)?.['eve-log'];
    if (eveOut?.types !== undefined) {
      types = [];
      for (const t of eveOut.types as unknown[]) {
        const tname = typeof t === 'string' ? t : Object.keys(t as object)[0];
        const opts = typeof t === 'string' ? {} : (t as Record<string, any>)[tname];
        if (opts?.enabled === false || opts?.enabled === 'no') continue;
        if (['alert', 'anomaly', 'flow', 'stats', 'http', 'arp', 'dns', 'tls'].includes(tname)) types.push(tname as EveType);
      }
    }
  }
  const ruleFiles = readdirSync(dir).filter((f) => f.endsWith('.rules')).map((f) => join(dir, f));
  const lines: string[] = [];
  const run = runOffline({
    pcap, ruleFiles, vars, midstream, eveTypes: types, classificationFile,
    emit: (l) => lines.push(l),
  });
  result.events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  if (run.error !== undefined) result.reason = run.error;
  const checks = (cfg.checks as Record<string, any>[] | undefined) ?? [];
  checks.forEach((c, index) => {
    if (c.filter !== undefined) {
      const f = c.filter as Record<string, any>;
      const req: Record<string, unknown> = { ...(f.requires ?? {}) };
      for (const k of ['min-version', 'lt-version', 'version']) if (f[k] !== undefined) req[k] = f[k];
      if (f.feature !== undefined) req.features = [f.feature];
      const w = unmet(req);
      if (w !== undefined) {
        result.checks.push({ index, status: 'skip', detail: w });
        return;
      }
      const n = result.events.filter((e) => matches(e, (f.match ?? {}) as Record<string, unknown>)).length;
      const ok = n === f.count;
      result.checks.push({ index, status: ok ? 'pass' : 'fail', detail: `filter ${JSON.stringify(f.match)}: expected ${f.count}, got ${n}` });
    } else if (c.shell !== undefined) {
      result.checks.push({ index, status: 'fail', detail: `shell check not run: ${JSON.stringify(c.shell.args)}` });
    } else if (c.stats !== undefined) {
      const stats = [...result.events].reverse().find((e) => e.event_type === 'stats')?.stats;
      const bad = Object.entries(c.stats as Record<string, unknown>).filter(([k, v]) => !deepEqual(findValue(k, stats), v));
      result.checks.push({ index, status: bad.length === 0 ? 'pass' : 'fail', detail: `stats ${JSON.stringify(c.stats)}` });
    } else {
      result.checks.push({ index, status: 'fail', detail: `unknown check kind ${Object.keys(c).join(',')}` });
    }
  });
  if (result.checks.some((c) => c.status === 'fail')) result.status = 'fail';
  return result;
}
