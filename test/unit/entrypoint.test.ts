// The entrypoint loop's polling budget (scheduling.spin-us): work that comes
// within the budget is found without sleeping; a budget that keeps finding
// nothing is given up; budgets from grants are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Entrypoint, MAX_SPIN_NS, spinBudget } from '../../src/runtime/entrypoint.ts';
import type { Pollable } from '../../src/session/pollable.ts';

/** A peer that has one unit of work every `gapNs`, `count` times, seen through pending() as a ring would be. */
function peer(gapNs: number, count: number): Pollable & { done: number; finished: Promise<void> } {
  let next = process.hrtime.bigint() + BigInt(gapNs);
  let resolve!: () => void;
  const finished = new Promise<void>((r) => { resolve = r; });
  const p = {
    fd: -1,
    done: 0,
    finished,
    pending: () => p.done < count && process.hrtime.bigint() >= next,
    arm: () => p.pending(),
    run(): number {
      if (!p.pending()) return 0;
      p.done++;
      next = process.hrtime.bigint() + BigInt(gapNs);
      if (p.done === count) resolve();
      return 1;
    },
  };
  return p;
}

async function runLoop(spinNs: number, gapNs: number, count: number): Promise<Entrypoint['stats']> {
  const ep = new Entrypoint({ maxSleepMs: 1, spinNs });
  const p = peer(gapNs, count);
  ep.add(p);
  ep.start();
  await p.finished;
  ep.stop();
  return ep.stats;
}

test('work within the polling budget is found without sleeping; without a budget the loop sleeps', async () => {
  // Bounds with room for a loaded machine (a preempted loop may find an item already due, or miss a budget).
  const spun = await runLoop(2_000_000, 20_000, 200);
  assert.ok(spun.spinHits >= 170, `spin hits ${spun.spinHits}`);
  assert.ok(spun.sleeps <= 20, `sleeps ${spun.sleeps}`);
  const slept = await runLoop(0, 20_000, 200);
  assert.equal(slept.spins, 0);
  assert.equal(slept.spinHits, 0);
  assert.ok(slept.sleeps >= 50, `sleeps ${slept.sleeps}`);
});

test('a budget that keeps finding nothing is given up', async () => {
  // Work every 5 ms, a 50 us budget: three misses, then the loop sleeps at once.
  const s = await runLoop(50_000, 5_000_000, 12);
  assert.equal(s.spinHits, 0);
  assert.ok(s.sleeps >= 12, `sleeps ${s.sleeps}`);
  // Each miss spins at most ~50 us; after 3 the loop stops spinning: far fewer spin turns than a budget per gap.
  const perMiss = s.spins / 3;
  assert.ok(s.spins > 0 && perMiss < 5_000, `spins ${s.spins}`);
});

test('spinBudget: the largest sane value of the grants, bad values ignored, capped', () => {
  assert.equal(spinBudget([]), 0);
  assert.equal(spinBudget([{ spinNs: 20_000 }, {}, { spinNs: 50_000 }]), 50_000);
  assert.equal(spinBudget([{ spinNs: Number.NaN }, { spinNs: -5 }, { spinNs: Infinity }]), 0);
  assert.equal(spinBudget([{ spinNs: 1e12 }]), MAX_SPIN_NS);
  assert.equal(spinBudget([{ spinNs: '100' as unknown as number }]), 0);
});
