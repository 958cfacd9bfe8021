// How far into the payload a rule's fast pattern can end (rules/fast-bound.ts):
// the packet prefilter looks that far and no further, so a bound too small
// would miss attacks (test/unit/monitor-engine.test.ts feeds matches at the
// latest end a bound allows through the engine, past the stream depth).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { topLevelAlternation } from '../../src/components/monitor/rules/pcre.ts';

function bound(opts: string): number {
  const r = loadRules([{ name: 't.rules', text: `alert tcp any any -> any any (msg:"t"; ${opts} sid:1;)` }], { vars: {}, classifications: builtinClassifications() });
  assert.deepEqual(r.errors, []);
  return r.rules[0].fastEnd;
}

test('fast pattern bound: absolute contents end by offset + depth', () => {
  assert.equal(bound('content:"abc"; startswith;'), 3);
  assert.equal(bound('content:"abc"; offset:4; depth:10;'), 14);
  assert.equal(bound('content:"abc";'), -1);
  assert.equal(bound('content:"abc"; offset:4;'), -1);
});

test('fast pattern bound: relative contents from the previous match\'s latest end', () => {
  assert.equal(bound('content:"x"; depth:1; content:"abcdef"; distance:2; within:8;'), 11);
  assert.equal(bound('content:"x"; content:"abcdef"; distance:2; within:8;'), -1, 'the first content can be anywhere');
  assert.equal(bound('content:"x"; depth:1; content:"abcdef"; distance:2;'), -1, 'no within');
  assert.equal(bound('content:"abcdef"; within:8;'), 8);
  assert.equal(bound('content:"x"; depth:1; content:!"zz"; content:"abcdef"; within:8;'), 9, 'a negated content moves no cursor');
  assert.equal(bound('content:"x"; depth:1; byte_jump:1,0,relative; content:"abcdef"; within:8;'), -1, 'byte_jump moves it anywhere');
});

test('fast pattern bound: an anchored, bounded pcre before it', () => {
  // ET 2044751 ("Interactive Reverse Shell Without TTY"): ^ counts as one atom, so 5, then within 30.
  assert.equal(bound('pcre:"/^(?:ba)?sh/"; content:"|3a 20|no|20|job|20|control"; fast_pattern; within:30;'), 35);
  assert.equal(bound('pcre:"/^a|b/"; content:"abcdef"; within:8;'), -1, '^ anchors one branch only');
  assert.equal(bound('pcre:"/^a+/"; content:"abcdef"; within:8;'), -1, 'unbounded repetition');
  assert.equal(bound('pcre:"/^ab/m"; content:"abcdef"; within:8;'), -1, '/m: ^ at every line');
  assert.equal(bound('pcre:"/ab/A"; content:"abcdef"; within:8;'), 11, "/A anchors (^(?: ... ): 3 atoms)");
  assert.equal(topLevelAlternation('^(a|b)[|]\\|c'), false);
  assert.equal(topLevelAlternation('^a|b'), true);
});
