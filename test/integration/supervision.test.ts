// Supervision and the privilege audit on a live lab: heartbeats find a hung
// component, memory limits are in place, a "never" restart policy fails
// closed, and the audit finds nothing beyond the grants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { labControl, labUp, labDown, readLabState } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import type { MicrogateLabOptions } from '../../src/lab/microgate-gateway.ts';
import { ping } from '../../src/lab/traffic.ts';
import { run } from '../../src/lab/netns.ts';

interface Component { name: string; pid: number; state: string; restarts: number; hangs: number; memoryBytes?: number }

async function withLab(opts: MicrogateLabOptions, fn: (name: string, port: ControlClient, lan: string, wanIp: string) => Promise<void>): Promise<void> {
  const name = `s${Math.random().toString(36).slice(2, 8)}`;
  try {
    const info = await labUp({ name, gateway: 'microgate', microgate: opts });
    const st = await readLabState(name);
    assert.ok(st);
    await fn(name, labControl(st), info.hosts.lan.netns, info.hosts.wan.ip);
  } finally {
    await labDown(name);
  }
}

async function components(control: ControlClient): Promise<Component[]> {
  return (await control.get<{ components: Component[] }>('/status', 3000)).components;
}

const microgate = ['node_modules/.bin/node', 'src/cli/main.ts'];

test('audit: every component within its grants (CLI exit 0); heartbeat kills and restarts a hung component; memory limits in place', async () => {
  await withLab({ heartbeatMs: 200, memoryMb: 192 }, async (name, port, lan, wanIp) => {
    const audit = await run(microgate[0], [microgate[1], 'audit', '--lab', name, '--json']);
    const body = JSON.parse(audit.stdout) as { ok: boolean; units: { unit: string; violations: string[]; fds: unknown[] }[] };
    assert.equal(body.ok, true, JSON.stringify(body.units.map((u) => [u.unit, u.violations])));
    assert.equal(body.units.length, (await components(port)).length, 'one unit per process-isolated component');

    const before = await components(port);
    for (const c of before) {
      assert.ok(c.memoryBytes !== undefined && c.memoryBytes > 0, `${c.name} memory accounted`);
      const cg = readFileSync(`/proc/${c.pid}/cgroup`, 'utf8');
      assert.match(cg, /microgate\.\d+\/[a-z-]+/, `${c.name} in its memory cgroup: ${cg}`);
    }
    // A hung driver (stopped, so it answers nothing) is killed after 5 missed heartbeats (1 s) and restarted.
    const drv = before.find((c) => c.name === 'drv-wan')!;
    process.kill(drv.pid, 'SIGSTOP');
    const t0 = Date.now();
    let after: Component | undefined;
    while (Date.now() - t0 < 6000) {
      await new Promise((r) => setTimeout(r, 200));
      after = (await components(port)).find((c) => c.name === 'drv-wan');
      if (after !== undefined && after.state === 'running' && after.pid !== drv.pid) break;
    }
    assert.ok(after && after.pid !== drv.pid && after.hangs === 1, `restarted after the hang: ${JSON.stringify(after)}`);
    assert.equal((await ping(lan, wanIp)).received, 3);
  });
});

test('restart policy "never": a dead router stays down and the gateway forwards nothing (fail closed)', async () => {
  await withLab({ restart: 'never' }, async (_name, port, lan, wanIp) => {
    assert.equal((await ping(lan, wanIp)).received, 3);
    const router = (await components(port)).find((c) => c.name === 'router')!;
    process.kill(router.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const now = (await components(port)).find((c) => c.name === 'router')!;
    assert.equal(now.state, 'failed');
    assert.equal((await ping(lan, wanIp, { count: 2, timeoutS: 1 })).received, 0);
  });
});
