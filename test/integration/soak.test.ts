// `microgate soak` in short (issue 9): 30 s of mixed traffic with a component
// killed every 6 s, then the leak and loss checks of src/lab/soak.ts. The full
// run (10 minutes) is documented in docs/RELIABILITY.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../../src/lab/soak.ts';
import { canRunLabs, labLeftovers, uniqueLabName } from './harness.ts';

const skip = canRunLabs() ? false : 'needs root';

test('soak 0.5 min: kills are survived, nothing leaks, nothing accepted is lost', { skip }, async (t) => {
  const name = uniqueLabName();
  const r = await runSoak({ minutes: 0.5, killEveryS: 6, name, log: (l) => t.diagnostic(l) });
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  assert.deepEqual(failed, [], 'every soak check passes');
  assert.ok(r.kills.length >= 3, `components killed: ${r.kills.map((k) => k.component).join(', ')}`);
  assert.ok(new Set(r.kills.map((k) => k.component)).has('router'), 'the router was among them');
  assert.ok(r.traffic.iperf3Runs >= 3 && r.traffic.fetches >= 3, `traffic rounds: ${r.rounds}`);
  for (const n of ['components running', 'restarts match kills', 'conntrack back to 0', 'session packet slots returned', 'file descriptors stable', 'every fetched file intact']) {
    assert.ok(r.checks.some((c) => c.name === n), `check "${n}" ran`);
  }
  assert.deepEqual(await labLeftovers(name), { namespaces: [], links: [] }, 'the soak removed its lab');
});
