// init's supervision of a service (src/init/service-supervisor.ts) with a stand-in
// service kind: a tiny HTTP server in a network namespace of its own, started
// with `ip netns exec` like the file gateway. Health checks go into that
// namespace; a hung service (SIGSTOP) is killed after 5 failed checks and
// restarted, a killed one restarted, "never" leaves it failed, a config that
// does not load is retried with back-off, and stop() ends it by PID.
// (The file gateway itself under init: test/integration/file-gateway.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNetns, deleteNetns, netnsPids } from '../../src/lab/netns.ts';
import type { ServiceKind } from '../../src/init/service-kind.ts';
import { serviceKinds } from '../../src/services/index.ts';
import { ServiceSupervisor, type ServiceStatus } from '../../src/init/service-supervisor.ts';
import type { ServiceSpec } from '../../src/init/service-config.ts';
import { canRunLabs, uniqueLabName } from './harness.ts';

const skip = canRunLabs() ? false : 'needs root (network namespaces)';
const NETNS = `mg-${uniqueLabName()}-dmz`;
const PORT = 8099;
const SERVER = `require('node:http').createServer((q, s) => { s.writeHead(q.url === '/healthz' ? 200 : 404); s.end('ok'); })
  .listen(${PORT}, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => { console.log('SIGTERM'); process.exit(0); });`;

const standIn: ServiceKind = {
  load: (file) => {
    if (file.includes('broken')) throw new Error(`${file}:1: (top level): cannot read the file`);
    return {};
  },
  plan: (_cfg, o) => ({
    command: { file: 'ip', args: ['netns', 'exec', o.netns, process.execPath, '-e', SERVER] },
    grants: { read: [], write: [], net: true },
    health: { host: '127.0.0.1', port: PORT, path: '/healthz', tls: false },
    listen: [{ host: '127.0.0.1', port: PORT }],
    upstream: [],
  }),
};

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { name: 'stand-in', kind: 'test-stand-in', configFile: '/nonexistent/stand-in.yaml', netns: NETNS, uid: 61099, memoryMb: undefined, restart: 'always', heartbeatMs: 100, path: 'services[0]', ...over };
}

const lines: string[] = [];
const log = (l: string): void => { lines.push(l); };

async function until(sup: ServiceSupervisor, ok: (s: ServiceStatus) => boolean, ms: number): Promise<ServiceStatus> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = sup.status()[0];
    if (ok(s)) return s;
    if (Date.now() > deadline) assert.fail(`not reached within ${ms} ms: ${JSON.stringify(s)}\n${lines.slice(-10).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  if (skip) return;
  serviceKinds['test-stand-in'] = standIn;
  await createNetns(NETNS);
});

after(async () => {
  if (skip) return;
  delete serviceKinds['test-stand-in'];
  for (const pid of await netnsPids(NETNS)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await deleteNetns(NETNS);
});

test('health-checked in its namespace; hung (SIGSTOP): killed after 5 failed checks and restarted; SIGKILL: restarted; stop: SIGTERM by PID', { skip }, async () => {
  const sup = new ServiceSupervisor([spec()], { log, kinds: serviceKinds, cgroups: undefined });
  try {
    sup.start();
    const first = await until(sup, (s) => s.state === 'running', 10_000);
    assert.equal(first.lastHealth, 'ok');
    assert.ok(first.memoryBytes !== undefined && first.memoryBytes > 0, 'memory (resident set without a cgroup)');
    assert.deepEqual(await netnsPids(NETNS), [first.pid], 'the PID init keeps is the server in the namespace');

    process.kill(first.pid, 'SIGSTOP');
    const t0 = Date.now();
    const second = await until(sup, (s) => s.state === 'running' && s.pid !== first.pid, 10_000);
    assert.equal(second.hangs, 1);
    assert.equal(second.restarts, 1);
    assert.match(second.lastExit, /^killed: 5 health checks failed in a row \(500 ms; last: no answer (for \d+ ms|within 1000 ms)/);
    assert.ok(Date.now() - t0 >= 500, 'not before 5 intervals');

    process.kill(second.pid, 'SIGKILL');
    const third = await until(sup, (s) => s.state === 'running' && s.pid !== second.pid, 10_000);
    assert.equal(third.restarts, 2);
    assert.match(third.lastExit, /^signal SIGKILL at /);
  } finally {
    await sup.stop();
  }
  const end = sup.status()[0];
  assert.equal(end.state, 'stopped');
  assert.match(end.lastExit, /^exit code 0 at /, 'it ended on its SIGTERM');
  assert.deepEqual(await netnsPids(NETNS), []);
  assert.ok(lines.some((l) => l === '[stand-in] SIGTERM'), "the service's output goes to init's log, prefixed");
});

test('restart policy never: a killed service stays failed; a config that does not load: retried with back-off', { skip }, async () => {
  const never = new ServiceSupervisor([spec({ restart: 'never' })], { log, kinds: serviceKinds, cgroups: undefined });
  try {
    never.start();
    const s = await until(never, (x) => x.state === 'running', 10_000);
    process.kill(s.pid, 'SIGKILL');
    const failed = await until(never, (x) => x.state === 'failed', 5000);
    assert.equal(failed.restarts, 0);
    assert.equal(failed.pid, 0);
  } finally {
    await never.stop();
  }
  const broken = new ServiceSupervisor([spec({ configFile: '/nonexistent/broken.yaml' })], { log, kinds: serviceKinds, cgroups: undefined });
  try {
    broken.start();
    const s = await until(broken, (x) => x.restarts >= 2, 5000);
    assert.equal(s.state, 'restarting');
    assert.match(s.lastExit, /^not started: \/nonexistent\/broken\.yaml:1: \(top level\): cannot read the file at /);
  } finally {
    await broken.stop();
  }
});
