// Supervision and the privilege audit on a live lab: heartbeats find a hung
// component, memory limits are in place, a "never" restart policy fails
// closed, and the audit finds nothing beyond the grants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labControl, labUp, labDown, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import type { MicrogateLabOptions } from '../../src/lab/microgate-gateway.ts';
import { ping } from '../../src/lab/traffic.ts';
import { nsExec, run } from '../../src/lab/netns.ts';

interface Component { name: string; pid: number; state: string; restarts: number; hangs: number; memoryBytes?: number }

async function withLab(opts: MicrogateLabOptions, fn: (name: string, port: ControlClient, lan: string, wanIp: string, info: LabInfo) => Promise<void>): Promise<void> {
  const name = `s${Math.random().toString(36).slice(2, 8)}`;
  try {
    const info = await labUp({ name, gateway: 'microgate', microgate: opts });
    const st = await readLabState(name);
    assert.ok(st);
    await fn(name, labControl(st), info.hosts.lan.netns, info.hosts.wan.ip, info);
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

test('attack: a stopped egress driver cannot hold the lan (backpressure\'s stall guard): lan -> dmz answers while lan -> wan frames pile up behind it', async () => {
  // Heartbeats off: the stopped driver stays stopped (init would restart it after 5 missed ones).
  await withLab({ heartbeatMs: 0 }, async (name, port, lan, wanIp, info) => {
    const dmzIp = info.hosts.dmz.ip;
    assert.equal((await ping(lan, dmzIp)).received, 3);
    assert.equal((await ping(lan, wanIp)).received, 3, 'the wan host is resolved: frames to it go to the egress, not to the ARP queue');
    const drv = (await components(port)).find((c) => c.name === 'drv-wan')!;
    process.kill(drv.pid, 'SIGSTOP');
    try {
      // 2 s of UDP from the lan host to the wan host, one connection (a fixed source port: the per-source
      // connection limit would otherwise refuse the pings): the wan egress (256 slots) is full within milliseconds.
      const flood = nsExec(lan, 'timeout', ['2', 'hping3', '--flood', '--udp', '-k', '-s', '5000', '-p', '9', wanIp], { timeoutMs: 10_000 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      const during = await ping(lan, dmzIp, { count: 10, intervalS: 0.1 });
      await flood;
      const after = await ping(lan, dmzIp, { count: 5, intervalS: 0.1 });
      const router = (await port.get<{ components: { name: string; counters: Record<string, number> }[] }>('/components', 3000))
        .components.find((c) => c.name === 'router')!;
      const log = readFileSync(join((await readLabState(name))!.stateDir, 'gateway.log'), 'utf8');
      const why = `pings ${during.received}/10 during, ${after.received}/5 after; router ${JSON.stringify(Object.fromEntries(Object.entries(router.counters).filter(([k]) => /egress|forwarded/.test(k))))}`;
      // Without the guard the lan stays held while drv-wan is stopped: no lan -> dmz ping would be answered.
      assert.ok(during.received >= 5, `lan -> dmz answered during the flood: ${why}`);
      assert.equal(after.received, 5, `and after it: ${why}`);
      assert.equal(router.counters['egress-stall.wan'], 1, `the stall was counted once: ${why}`);
      assert.ok(router.counters['drop.egress-full'] > 0, `frames to the stopped driver were dropped at its egress: ${why}`);
      assert.match(log, /router: egress wan freed no slot for \d+ ms: not holding ingresses for it for 10 s/);
    } finally {
      process.kill(drv.pid, 'SIGCONT');
    }
    assert.equal((await ping(lan, wanIp)).received, 3, 'the driver runs again: lan -> wan answers');
  });
});
