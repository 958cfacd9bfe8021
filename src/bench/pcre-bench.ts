// `microgate pcre-bench`: the measurement behind the monitor's two regex
// engines (src/components/monitor/rules/pcre.ts). Over every pcre of the ET
// Open rules and the suricata-verify tests in test/fixtures/ids:
//   1. how many compile: our translation for V8, RE2 through `re2js` (pure JS
//      port) and through `re2-wasm` (Google's C++ RE2 in WebAssembly);
//   2. which engine the monitor picks (V8 when its backtracking is proven
//      bounded, else linear);
//   3. search speed per pattern and payload, V8 vs re2js vs re2-wasm, in one run
//      (side-by-side ratios);
//   4. the pathological pattern of issue 13 (finding 7): V8 with the greedy
//      translation vs the linear engine, by input length.
// A command, not a test: numbers vary with the machine and what else runs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RE2JS } from 're2js';
import { parsePcre, pcreSearch, type PcreSpec } from '../components/monitor/rules/pcre.ts';
import { ROOT } from '../init/sandbox.ts';

const IDS_DIR = resolve(ROOT, 'test', 'fixtures', 'ids');

export const PCRE_BENCH_HELP = `Usage: microgate pcre-bench [--rounds N] [--json]

The monitor's pcre engines measured on the pcre options of ${IDS_DIR}:
compile success (V8 translation, re2js, re2-wasm), the engine the monitor
picks, search time per pattern V8 vs re2js vs re2-wasm (--rounds passes over
every pattern and payload, default 20), and the pathological pattern
(?:[a-z0-9]++)+; by input length. Needs the devDependency re2-wasm.`;

interface Re2Wasm {
  exec(s: string): unknown;
}

function ruleFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? ruleFiles(p) : p.endsWith('.rules') ? [p] : [];
  });
}

/** Every pcre option value of the rule files (commented-out rules skipped). */
export function fixturePcres(dir = IDS_DIR): string[] {
  const out: string[] = [];
  for (const f of ruleFiles(dir)) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (/^\s*#/.test(line)) continue;
      for (const m of line.matchAll(/pcre:\s*(!?"(?:[^"\\]|\\.)*")/g)) out.push(m[1]);
    }
  }
  return out;
}

function payloads(): { name: string; s: string }[] {
  const rnd = new Uint8Array(1460);
  let x = 0x2545f491;
  for (let i = 0; i < rnd.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    rnd[i] = x & 0xff;
  }
  const http = 'GET /index.php?id=1&user=admin&q=%27%20OR%201=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nCookie: session=0123456789abcdef\r\n\r\n';
  return [
    { name: 'random 1460 B', s: new TextDecoder('latin1').decode(rnd) },
    { name: 'HTTP request 1460 B', s: (http + 'A'.repeat(1460)).slice(0, 1460) },
  ];
}

function nsPer(rounds: number, n: number, fn: () => void): number {
  fn(); // warm up
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) fn();
  return Number(process.hrtime.bigint() - t0) / rounds / n;
}

export async function pcreBenchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { rounds: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help === true) {
    console.log(PCRE_BENCH_HELP);
    return 0;
  }
  const rounds = Number(values.rounds ?? 20);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error('pcre-bench: --rounds: expected a positive integer');
    return 2;
  }
  let RE2W: (new (p: string, f: string) => Re2Wasm) | null = null;
  try {
    RE2W = (createRequire(import.meta.url)('re2-wasm') as { RE2: new (p: string, f: string) => Re2Wasm }).RE2;
  } catch {
    console.error('pcre-bench: re2-wasm is not installed (npm install --include=dev): its column is left out');
  }
  const texts = fixturePcres();
  const specs: PcreSpec[] = [];
  const refused: string[] = [];
  let re2jsOk = 0;
  let wasmOk = 0;
  const all: { spec: PcreSpec; r2: RE2JS; w: Re2Wasm | null }[] = [];
  for (const t of texts) {
    let spec: PcreSpec;
    try {
      spec = parsePcre(t);
    } catch (e) {
      refused.push(`${t}: ${(e as Error).message}`);
      continue;
    }
    specs.push(spec);
    let fl = 0;
    if (spec.re.flags.includes('i')) fl |= RE2JS.CASE_INSENSITIVE;
    if (spec.re.flags.includes('s')) fl |= RE2JS.DOTALL;
    if (spec.re.flags.includes('m')) fl |= RE2JS.MULTILINE;
    let r2: RE2JS | null = null;
    let w: Re2Wasm | null = null;
    try {
      r2 = RE2JS.compile(RE2JS.translateRegExp(spec.re.source), fl);
      re2jsOk++;
    } catch { /* counted */ }
    if (RE2W !== null) {
      try {
        w = new RE2W(spec.re.source, spec.re.flags + 'u');
        wasmOk++;
      } catch { /* counted */ }
    }
    if (r2 !== null && (RE2W === null || w !== null)) all.push({ spec, r2, w });
  }
  const linear = specs.filter((s) => s.engine === 'linear');
  const result: Record<string, unknown> = {
    patterns: texts.length,
    compiled: { monitor: specs.length, v8Translation: specs.length + refused.filter((r) => r.includes('could stall')).length, re2js: re2jsOk, re2wasm: RE2W === null ? null : wasmOk },
    engines: { v8: specs.length - linear.length, linear: linear.length, refused: refused.length },
    refused,
    search: [] as unknown[],
    pathological: [] as unknown[],
  };
  const bufs = payloads();
  const search = result.search as Record<string, unknown>[];
  for (const p of bufs) {
    const v8 = nsPer(rounds, all.length, () => { for (const a of all) a.spec.re.exec(p.s); });
    const r2 = nsPer(rounds, all.length, () => { for (const a of all) if (a.r2.test(p.s)) a.r2.matcher(p.s).find(); });
    const w = RE2W === null ? NaN : nsPer(rounds, all.length, () => { for (const a of all) a.w!.exec(p.s); });
    const mon = nsPer(rounds, all.length, () => { for (const a of all) pcreSearch(a.spec, p.s); });
    search.push({ payload: p.name, patterns: all.length, nsPerSearch: { v8: Math.round(v8), re2js: Math.round(r2), re2wasm: Math.round(w), monitor: Math.round(mon) }, ratio: { re2jsOverV8: +(r2 / v8).toFixed(1), re2wasmOverV8: +(w / v8).toFixed(1), monitorOverV8: +(mon / v8).toFixed(2) } });
  }
  const evil = parsePcre('"/(?:[a-z0-9]++)+;/"');
  const greedy = new RegExp(evil.re.source, evil.re.flags);
  const path = result.pathological as Record<string, unknown>[];
  for (const n of [16, 20, 22, 24, 64, 4096, 65536]) {
    const s = 'a'.repeat(n) + '!;'; // a ';' after the run, but not right after it: no match
    const ms = (fn: () => void, reps: number) => nsPer(reps, 1, fn) / 1e6;
    const lin = ms(() => pcreSearch(evil, s), 5);
    const v8 = n <= 22 ? ms(() => greedy.exec(s), 1) : null;
    path.push({ chars: n, msLinear: +lin.toFixed(3), msV8Greedy: v8 === null ? 'not run (grows ~4x per 2 chars)' : +v8.toFixed(1) });
  }
  if (values.json === true) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  const c = result.compiled as Record<string, unknown>;
  const e = result.engines as Record<string, number>;
  console.log(`pcre options: ${texts.length}; translated for V8: ${c.v8Translation}; of the ${specs.length} the monitor loads, compiled by re2js ${c.re2js}, by re2-wasm ${c.re2wasm ?? 'n/a'}`);
  console.log(`monitor engines: V8 (bounded) ${e.v8}, linear (re2js) ${e.linear}, refused ${e.refused}`);
  for (const r of refused) console.log(`  refused: ${r}`);
  for (const s of search) console.log(`search ${String(s.payload)}, ${String(s.patterns)} patterns: ns/search ${JSON.stringify(s.nsPerSearch)}; ratios ${JSON.stringify(s.ratio)}`);
  for (const p of path) console.log(`(?:[a-z0-9]++)+; on ${String(p.chars)} chars: linear ${String(p.msLinear)} ms, V8 greedy ${String(p.msV8Greedy)}${typeof p.msV8Greedy === 'number' ? ' ms' : ''}`);
  return 0;
}
