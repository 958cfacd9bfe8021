// The router's backpressure bookkeeping (egress-hold.ts) on fake egresses and
// a fake clock: which ingress is held by which egress, for how long, and the
// cooldown after a stall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { EgressHold, HOLD_COOLDOWN_MS, HOLD_MAX_MS } from '../../src/components/router/egress-hold.ts';
import type { EgressPort } from '../../src/components/router/types.ts';

function port(free: { n: number } | undefined): EgressPort {
  const p: EgressPort = { buf: new Uint8Array(0), slotSize: 64, alloc: () => -1, submit: () => {}, flush: () => {} };
  return free === undefined ? p : { ...p, available: () => free.n };
}

function setup(on = [true, true, true]) {
  const free = [{ n: 8 }, { n: 8 }, { n: 8 }];
  const clock = { t: 5_000 };
  const counters = new Counters();
  const log: string[] = [];
  const hold = new EgressHold(['lan', 'wan', 'dmz'], on, free.map((f) => port(f)), counters, () => clock.t, (l) => log.push(l));
  return { hold, free, clock, counters, log };
}

test('egress hold: only the egresses an ingress\'s last batch used can hold it; an empty batch keeps them', () => {
  const { hold, free, counters } = setup();
  free[1].n = 0;
  assert.equal(hold.held(0), false, 'lan has sent nothing yet');
  hold.use(0, 1);
  hold.done(0, 1);
  assert.equal(hold.held(0), true, 'lan sent to wan, and wan has no free slot');
  assert.equal(hold.held(2), false, 'dmz sent nothing to wan: not held');
  assert.ok(hold.holding(1));
  assert.equal(counters.get('egress-hold.wan'), 1);
  assert.equal(hold.held(0), true);
  assert.equal(counters.get('egress-hold.wan'), 1, 'one hold, however often it is asked');
  hold.done(0, 0);
  assert.equal(hold.held(0), true, 'an empty batch does not forget where lan sends');
  free[1].n = 3;
  hold.reclaimed(1);
  assert.ok(!hold.holding(1));
  assert.equal(hold.held(0), false, 'slots back: a full batch (the next one finds out if it overflows)');
  hold.use(0, 2);
  hold.done(0, 5);
  free[1].n = 0;
  assert.equal(hold.held(0), false, 'lan\'s last batch went to dmz only');
});

test('egress hold: a stall (no slot for HOLD_MAX_MS) turns the egress\'s backpressure off for HOLD_COOLDOWN_MS, counted and logged', () => {
  const { hold, free, clock, counters, log } = setup();
  hold.use(0, 1);
  hold.done(0, 1);
  free[1].n = 0;
  assert.equal(hold.held(0), true);
  clock.t += HOLD_MAX_MS;
  assert.equal(hold.held(0), true, 'still within HOLD_MAX_MS');
  clock.t += 1;
  assert.equal(hold.held(0), false, 'stalled: lan runs, its frames to wan will be dropped');
  assert.equal(counters.get('egress-stall.wan'), 1);
  assert.equal(log.length, 1);
  assert.match(log[0], /egress wan freed no slot for 21 ms/);
  assert.deepEqual(hold.status(), { wan: HOLD_COOLDOWN_MS });
  clock.t += HOLD_COOLDOWN_MS - 1;
  assert.equal(hold.held(0), false, 'cooling down');
  clock.t += 1;
  assert.equal(hold.held(0), true, 'after the cooldown the egress holds again');
  assert.deepEqual(hold.status(), {});
  assert.equal(counters.get('egress-hold.wan'), 2);
});

test('egress hold: backpressure off by config (and back on by reconfigure); an egress that cannot count its slots never holds', () => {
  const { hold, free } = setup([true, false, true]);
  hold.use(0, 1);
  hold.done(0, 1);
  free[1].n = 0;
  assert.equal(hold.held(0), false);
  hold.configure([true, true, true]);
  assert.equal(hold.held(0), true);
  const counters = new Counters();
  const h2 = new EgressHold(['lan', 'wan'], [true, true], [port({ n: 1 }), port(undefined)], counters, () => 0);
  h2.use(0, 1);
  h2.done(0, 1);
  assert.equal(h2.held(0), false);
});

test('config: backpressure is true or false per domain (default true), checked with its path', () => {
  const cfg = parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24' }, wan: { address: '198.19.0.1/24', backpressure: false } } }, 'router', { file: 't.yaml', path: 'c' });
  assert.deepEqual(cfg.domains.map((d) => d.backpressure), [true, false]);
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', backpressure: 'yes' } } }, 'router', { file: 't.yaml', path: 'c' }),
    /t\.yaml: c\.domains\.lan\.backpressure: expected true or false/);
});
