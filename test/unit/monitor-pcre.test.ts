// The monitor's pcre engines (issue 13, finding 7): a pattern whose
// backtracking is not proven bounded runs on RE2's linear-time engine, so the
// pathological (?:[a-z0-9]++)+; costs work proportional to the input (counted
// per rule, shown in the status); the static bound of pcre-bound.ts; patterns
// only a backtracking engine can run and that are not bounded are refused; the
// linear engine gives the same match ends as V8 where both are safe to run.
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Inspector } from '../../src/components/monitor/detect/inspect.ts';
import { pcreStatus } from '../../src/components/monitor/index.ts';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { backtracking } from '../../src/components/monitor/rules/pcre-bound.ts';
import { compileLinear, parsePcre, pcreSearch, V8_MAX_STEPS_PER_BYTE } from '../../src/components/monitor/rules/pcre.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../../src/components/monitor/rules/vars.ts';

const IDS = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'test', 'fixtures', 'ids');
const VARS = { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS };
const bytes = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));

test('backtracking bound: ways and steps per byte of known shapes', () => {
  assert.deepEqual(backtracking('abc'), { ways: 1, depth: 3, stepsPerByte: 3, backrefs: false, lookaround: false });
  assert.equal(backtracking('[0-9]{12}').stepsPerByte, 12);
  assert.equal(backtracking('(a|b){0,3}').ways, 1 + 2 + 4 + 8);
  assert.equal(backtracking('a{2,9}b?').ways, 8 * 2);
  assert.equal(backtracking('(?:[a-z0-9]+)+;').stepsPerByte, Infinity);
  assert.equal(backtracking('x.*y').stepsPerByte, Infinity);
  assert.equal(backtracking('((a{0,20}){0,20}){0,20}').stepsPerByte, Infinity, 'nested bounded repeats overflow to unbounded');
  assert.ok(backtracking('(a)\\1').backrefs && backtracking('(?<n>a)\\k<n>').backrefs);
  // A back reference compares up to its group's longest text.
  assert.equal(backtracking('([a-z]{2,9})x\\1').stepsPerByte, 8 * (9 + 1 + 9));
  assert.equal(backtracking('(?<n>abc)\\k<n>').depth, 6);
  assert.equal(backtracking('(a+)\\1').stepsPerByte, Infinity);
  assert.equal(backtracking('(a\\1)').stepsPerByte, Infinity, 'a reference inside its own group');
  assert.ok(backtracking('a(?=b)').lookaround && backtracking('(?<!a)b').lookaround);
  assert.equal(backtracking('a{x').stepsPerByte, 3, 'a "{" that is no quantifier is a literal');
});

test('the pathological pattern runs on the linear engine: work counted per rule grows with the input, never explodes', () => {
  const r = loadRules([{ name: 't.rules', text: 'alert tcp any any -> any any (msg:"evil"; pcre:"/(?:[a-z0-9]++)+;/"; sid:7;)\n' }], { vars: VARS, classifications: builtinClassifications() });
  assert.equal(r.errors.length, 0);
  const items = r.rules[0].buffers.get('payload')!;
  const it = items.find((i) => i.k === 'pcre');
  assert.ok(it !== undefined && it.k === 'pcre');
  assert.equal(it.spec.engine, 'linear');
  assert.match(it.spec.why, /unbounded/);
  const perByte = it.spec.workPerByte;
  assert.ok(perByte > 0 && perByte < 64, `RE2 program size ${perByte}`);
  const insp = new Inspector();
  const t0 = performance.now();
  let searched = 0;
  for (const n of [24, 64, 4096]) {
    const b = bytes('a'.repeat(n) + '!;'); // ';' present but never right after the run: no match
    assert.equal(insp.match(items, b, 0, b.length), false);
    searched += b.length;
    assert.equal(it.spec.stats.bytes, searched);
    assert.equal(it.spec.stats.work, searched * perByte, 'work is bytes times the program size: linear');
  }
  assert.equal(it.spec.stats.evaluations, 3);
  assert.ok(insp.match(items, bytes('xx abc9;'), 0, 8));
  assert.ok(performance.now() - t0 < 2000, 'backstop: seconds, not the minutes V8 would take');
  const st = pcreStatus(r.rules, false) as { linear: { patterns: number; evaluations: number }; rules: { sid: number; evaluations: number; work: number }[] };
  assert.equal(st.linear.patterns, 1);
  assert.equal(st.rules[0].sid, 7);
  assert.equal(st.rules[0].evaluations, 4);
});

test('bounded patterns stay on V8; unbounded ones that need backtracking are refused with the reason', () => {
  const a = parsePcre('"/^GET \\/[a-z]{1,8}\\.php/i"');
  assert.equal(a.engine, 'v8');
  assert.ok(a.workPerByte <= V8_MAX_STEPS_PER_BYTE);
  assert.equal(pcreSearch(a, 'GET /index.php?x'), 14);
  const r = loadRules([{ name: 'b.rules', text: 'alert tcp any any -> any any (msg:"br"; pcre:"/(a+)+\\1x/"; sid:9;)\n' }], { vars: VARS, classifications: builtinClassifications() });
  assert.equal(r.rules.length, 0);
  assert.match(r.errors[0].reason, /pcre: needs a back reference .* refused, it could stall the monitor/);
  // A bounded back reference is fine on V8.
  assert.equal(parsePcre('"/(ab|cd)\\1/"').engine, 'v8');
});

/** Each fixture rule's pcre options with inputs made of its own contents (so some match). */
function fixtureCases(): { pcre: string; inputs: string[] }[] {
  const out: { pcre: string; inputs: string[] }[] = [];
  for (const f of ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules']) {
    for (const line of readFileSync(join(IDS, 'et-open', f), 'utf8').split('\n')) {
      if (/^\s*#/.test(line)) continue;
      const contents = [...line.matchAll(/content:\s*!?"((?:[^"\\]|\\.)*)"/g)].map((m) =>
        m[1].replace(/\|([0-9a-fA-F ]+)\|/g, (_, h: string) => String.fromCharCode(...h.trim().split(/\s+/).map((x) => parseInt(x, 16)))).replace(/\\(.)/g, '$1'));
      for (const m of line.matchAll(/pcre:\s*(!?"(?:[^"\\]|\\.)*")/g)) {
        out.push({ pcre: m[1], inputs: [contents.join(''), contents.join(' '), contents.join('\r\n') + '\r\n', 'x ' + contents.join('1') + ' 1234567890abcdef\r\n\r\n'] });
      }
    }
  }
  return out;
}

test('linear and V8 engines agree on the fixtures\' patterns (where V8 is proven bounded)', () => {
  let compared = 0;
  let matched = 0;
  const diffs: string[] = [];
  for (const { pcre, inputs } of fixtureCases()) {
    const spec = parsePcre(pcre);
    if (spec.engine !== 'v8') continue;
    let re2;
    try {
      re2 = compileLinear(spec.re.source, spec.re.flags);
    } catch {
      continue; // a back reference: only V8 runs it
    }
    for (const s of inputs) {
      const v = pcreSearch(spec, s);
      const m = re2.matcher(s);
      const l = m.find() ? m.end() : -1;
      if (v >= 0) matched++;
      if (v !== l) diffs.push(`${pcre} on ${JSON.stringify(s)}: V8 ${v}, RE2 ${l}`);
      compared++;
    }
  }
  assert.ok(compared > 2000, `compared ${compared}`);
  assert.ok(matched >= 20, `only ${matched} matches: the inputs test too little`);
  assert.deepEqual(diffs, []);
});
