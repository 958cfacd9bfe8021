// The strict rule parser (issue 18): a rule that does not parse exactly is
// rejected with file, line, sid and reason, never loaded as a rule that means
// something else. The case found by trying it (a missing ";" made msg swallow
// the content, loading a match-all rule), hand-written cases, and a fuzz test
// against the grammar: from every rule that loads (the built-in rules and the
// ET Open fixtures), deleting one unescaped quote, or the ";" that ends a
// quoted value, must give a rejected rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { builtinRulesText } from '../../src/components/monitor/index.ts';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../../src/components/monitor/rules/vars.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ET = join(REPO, 'test', 'fixtures', 'ids', 'et-open');
const OPTS = { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS }, classifications: builtinClassifications() };
const load = (text: string, name = 't.rules'): ReturnType<typeof loadRules> => loadRules([{ name, text }], OPTS);

test('a missing ";" between msg and content is rejected with file, line, sid and reason (it loaded as a match-all rule)', () => {
  const r = load('# a comment\nalert tcp any any -> any any (msg:"broken rule" content:"x"; sid:9000003;)\n', 'local.rules');
  assert.equal(r.rules.length, 0);
  assert.equal(r.errors.length, 1);
  const e = r.errors[0];
  assert.equal(e.file, 'local.rules');
  assert.equal(e.line, 2);
  assert.equal(e.sid, 9000003);
  assert.match(e.reason, /^msg: expected one quoted string .*";" missing/);
});

test('quoting as Suricata\'s: escaped quotes and semicolons inside a string load; stray text or a second string does not', () => {
  const ok = load([
    'alert tcp any any -> any any (msg:"say \\"hi\\"; twice"; content:"a\\;b\\"c"; sid:1;)',
    'alert tcp any any -> any any (msg:"neg"; content:!"x"; sid:2;)',
  ].join('\n'));
  assert.deepEqual(ok.errors.map((e) => e.reason), []);
  assert.equal(ok.rules[0].msg, 'say "hi"; twice');
  const bad: [string, RegExp][] = [
    ['alert tcp any any -> any any (msg:"m"; content:"a" nocase; sid:3;)', /content: expected one quoted string \(text after the closing quote: "nocase"/],
    ['alert tcp any any -> any any (msg:"m"; content:"a" content:"b"; sid:4;)', /content: expected one quoted string \(found 4/],
    ['alert tcp any any -> any any (msg:"m"; nocase content:"a"; sid:5;)', /"nocase content" is not a keyword/],
    ['alert tcp any any -> any any (msg:"m"; content:"a"; nocase depth:3; sid:6;)', /"nocase depth" is not a keyword/],
    ['alert tcp any any -> any any (msg:"m; content:"a"; sid:7;)', /quote|quoted/],
    ['alert tcp any any -> any any (msg:"m"; content:"a; sid:8;)', /unterminated quoted string/],
  ];
  for (const [text, re] of bad) {
    const r = load(text);
    assert.equal(r.rules.length, 0, text);
    assert.equal(r.errors.length, 1, text);
    assert.match(r.errors[0].reason, re, text);
    assert.equal(r.errors[0].line, 1);
  }
});

/** Rules that load: the built-in ones and the ET Open fixtures'. */
function loadedRules(): string[] {
  const texts = [builtinRulesText()];
  if (existsSync(ET)) for (const f of ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules']) texts.push(readFileSync(join(ET, f), 'utf8'));
  return texts.flatMap((t) => load(t).rules.map((r) => r.text));
}

/** Positions of unescaped quotes, and of the ";" right after a closing quote (the end of a quoted value). */
function cutPoints(text: string): { quotes: number[]; ends: number[] } {
  const quotes: number[] = [];
  const ends: number[] = [];
  let open = false;
  for (let i = text.indexOf('('); i < text.length; i++) {
    if (text[i] === '\\') {
      i++;
      continue;
    }
    if (text[i] === '"') {
      quotes.push(i);
      open = !open;
      if (!open) {
        let j = i + 1;
        while (text[j] === ' ') j++;
        if (text[j] === ';' && text.slice(j + 1).trim() !== ')') ends.push(j);
      }
    }
  }
  return { quotes, ends };
}

test('fuzz: deleting one quote, or the ";" after a quoted value, of any rule that loads gives a rejected rule', () => {
  const rules = loadedRules();
  assert.ok(rules.length > 400, `rules that load: ${rules.length}`);
  const withQuotes = rules.filter((t) => cutPoints(t).ends.length > 0);
  fc.assert(fc.property(fc.integer({ min: 0, max: withQuotes.length - 1 }), fc.nat(), fc.boolean(), (ri, k, quote) => {
    const text = withQuotes[ri];
    const { quotes, ends } = cutPoints(text);
    const at = quote ? quotes[k % quotes.length] : ends[k % ends.length];
    const cut = text.slice(0, at) + text.slice(at + 1);
    const r = load(cut);
    assert.equal(r.rules.length, 0, `loaded after deleting ${JSON.stringify(text[at])} at ${at}: ${cut}`);
    assert.equal(r.errors.length, 1);
    assert.ok(r.errors[0].reason.length > 5 && r.errors[0].line === 1);
  }), { numRuns: 1500, seed: 18 });
});
