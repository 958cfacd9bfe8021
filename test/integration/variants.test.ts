// The same gateway under every isolation mode and both transports: the
// component code is identical, only what separates the components changes.
// And on packet links (veth pairs, AF_PACKET): the drivers batch their frames
// (recvmmsg/sendmmsg), the lab comes down without a link left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { labControl, labUp, labDown, readLabState } from '../../src/lab/lab.ts';
import type { MicrogateLabOptions } from '../../src/lab/microgate-gateway.ts';
import { ping, iperf3 } from '../../src/lab/traffic.ts';

const execFileP = promisify(execFile);

interface Status {
  components: { name: string; unit: string; pid: number; uid: number; isolation: string; restarts: number }[];
}

async function status(name: string): Promise<Status> {
  const st = await readLabState(name);
  assert.ok(st);
  return labControl(st).get<Status>('/status', 3000);
}

const variants: [string, MicrogateLabOptions][] = [
  ['thread isolation, shm sessions', { isolation: 'thread' }],
  ['inline isolation, local sessions', { isolation: 'inline' }],
  ['process isolation, socket (copy) sessions', { isolation: 'process', transport: 'socket' }],
  ['process isolation, packet links on veth pairs', { isolation: 'process', link: 'packet' }],
  ['process isolation, packet links, socket (copy) sessions', { isolation: 'process', transport: 'socket', link: 'packet' }],
];

for (const [title, opts] of variants) {
  test(`${title}: ping and iperf3 both ways cross the gateway`, async () => {
    const name = `v${Math.random().toString(36).slice(2, 8)}`;
    try {
      const info = await labUp({ name, gateway: 'microgate', microgate: opts });
      const lan = info.hosts.lan.netns;
      assert.equal((await ping(lan, info.hosts.wan.ip)).received, 3);
      const base = { serverNetns: info.hosts.wan.netns, serverIp: info.hosts.wan.ip, clientNetns: lan, seconds: 1 };
      assert.ok((await iperf3(base)).bitsPerSecond > 0);
      assert.ok((await iperf3({ ...base, reverse: true })).bitsPerSecond > 0);
      const st = await status(name);
      assert.equal(st.components.length, 4);
      for (const c of st.components) assert.equal(c.isolation, opts.isolation);
      if (opts.link === 'packet') {
        const lab = await readLabState(name);
        assert.ok(lab);
        const reports = (await labControl(lab).get<{ components: { name: string; status: Record<string, unknown>; counters: Record<string, number> }[] }>('/components', 5000)).components;
        for (const d of reports.filter((r) => r.name.startsWith('drv-'))) assert.equal(d.status.batched, true, `${d.name} batches its link I/O`);
        const lanDrv = reports.find((r) => r.name === 'drv-lan')!;
        assert.ok(lanDrv.counters['rx.frames'] > 100 && lanDrv.counters['tx.frames'] > 100, JSON.stringify(lanDrv.counters));
      }
      if (opts.isolation !== 'process') {
        // All components share one sandboxed host process, which is not root either.
        const pids = new Set(st.components.map((c) => c.pid));
        assert.equal(pids.size, 1);
        const pid = st.components[0].pid;
        const s = readFileSync(`/proc/${pid}/status`, 'utf8');
        assert.notEqual(Number(/^Uid:\s+(\d+)/m.exec(s)?.[1]), 0);
        assert.match(s, /^NoNewPrivs:\s+1$/m);
        // Killing the host restarts it, with every component in it.
        process.kill(pid, 'SIGKILL');
        const t0 = Date.now();
        let back = false;
        while (!back && Date.now() - t0 < 3000) back = (await ping(lan, info.hosts.wan.ip, { count: 1, timeoutS: 0.3 })).received === 1;
        assert.ok(back, 'ping resumed after the host restarted');
        assert.ok((await status(name)).components.every((c) => c.restarts === 1 && c.pid !== pid));
      }
    } finally {
      await labDown(name);
    }
    // labDown checks it too: neither the hosts' nor the gateway's ends of the veth pairs are left.
    const { stdout } = await execFileP('ip', ['-o', 'link', 'show']);
    assert.ok(!stdout.includes(`mg${name}`), `links of lab ${name} left: ${stdout.split('\n').filter((l) => l.includes(`mg${name}`)).join('; ')}`);
  });
}
