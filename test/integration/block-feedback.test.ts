// Block feedback on a real lab: the monitor's `block` entry for the XMAS-scan
// rule makes init have the router blocklist the scanning wan host for a few
// seconds. An nmap -sX from the wan host raises the alert; then the host
// cannot even ping the gateway's wan address (drops counted as blocklisted)
// until the block expires, and afterwards it can again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { labControl, labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { canRunLabs, nsExec, ping } from './harness.ts';

const NAME = `b${Math.random().toString(36).slice(2, 8)}`;
const ROUTER_WAN = '198.19.0.1';
const BLOCK_S = 4;
const skip = !canRunLabs();
let lab: LabInfo;
let control: ControlClient;

interface Report { name: string; status: { policy?: { runtimeBlocks?: { ip: string; reason: string; active: boolean; drops: number }[] } }; counters: Record<string, number> }

async function router(): Promise<Report> {
  const rs = (await control.get<{ components: Report[] }>('/components', 5000)).components;
  const me = rs.find((x) => x.name === 'router');
  assert.ok(me !== undefined);
  return me;
}

before(async () => {
  if (skip) return;
  lab = await labUp({ name: NAME, microgate: { monitor: { extra: { block: [{ sid: 8000003, seconds: BLOCK_S }] } } } });
  const st = await readLabState(NAME);
  assert.ok(st !== null);
  control = labControl(st);
});

after(async () => {
  if (!skip) await labDown(NAME);
});

test('an XMAS scan from the wan host gets it blocked at the router until the block expires', { skip }, async () => {
  const wan = lab.hosts.wan;
  assert.ok((await ping(wan.netns, ROUTER_WAN)).ok, 'before the scan the wan host reaches the gateway');
  const scan = await nsExec(wan.netns, 'timeout', ['20', 'nmap', '-sX', '-n', '-Pn', '-T5', '--max-retries', '0', '-p', '1-10', ROUTER_WAN], { timeoutMs: 30000 });
  assert.equal(scan.code, 0, scan.stderr);
  // init polls the monitor every 500 ms, then commands the router.
  let blocks: NonNullable<NonNullable<Report['status']['policy']>['runtimeBlocks']> = [];
  for (const deadline = Date.now() + 3000; Date.now() < deadline;) {
    blocks = (await router()).status.policy?.runtimeBlocks ?? [];
    if (blocks.some((b) => b.ip === wan.ip && b.active)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const b = blocks.find((x) => x.ip === wan.ip);
  assert.ok(b !== undefined && b.active, `runtime blocks: ${JSON.stringify(blocks)}`);
  assert.match(b.reason, /^sid 8000003 "MICROGATE TCP XMAS scan/);
  const dropsBefore = (await router()).counters['domain.wan.drop.blocklisted'] ?? 0;
  const blocked = await ping(wan.netns, ROUTER_WAN, { timeoutS: 1 });
  assert.equal(blocked.received, 0, 'while blocked the ping gets no answer');
  const after1 = await router();
  assert.ok((after1.counters['domain.wan.drop.blocklisted'] ?? 0) > dropsBefore, 'the drop is counted as blocklisted');
  assert.ok((after1.status.policy?.runtimeBlocks ?? []).some((x) => x.ip === wan.ip && x.drops > 0));
  // After the block expires the host gets through again (no new alert: ping raises none).
  let ok = false;
  for (const deadline = Date.now() + (BLOCK_S + 4) * 1000; !ok && Date.now() < deadline;) ok = (await ping(wan.netns, ROUTER_WAN, { timeoutS: 1 })).ok;
  assert.ok(ok, 'the block expires');
  // The lan side was never affected.
  assert.ok((await ping(lab.hosts.lan.netns, wan.ip)).ok);
});
