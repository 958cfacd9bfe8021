// The life cycle of `kind: packet` links (src/init/link-watch.ts): a gateway
// on two veth "NICs" while a ping from the lan host to the wan host runs. The
// wan link loses its carrier (the peer set down) and gets it back; then the
// veth pair is deleted (the gateway's end goes with it) and created again
// under the same names. Meanwhile /status says the driver is degraded, with
// the reason; afterwards forwarding resumes, and the counters (link.down,
// link.up, link.reattached) and the log say what happened. At the start: the
// wan port is down (a warning), the lan port carries a host address that
// `host-addresses: warn` lets through with a warning, and both have IPv6
// autoconfiguration on in the host (a warning each).
import { parsePrometheus, value, type PromFamily } from '../fixtures/prom-parse.ts';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createNetns, deleteNetns, ip, listLinks } from '../../src/lab/netns.ts';
import { ping } from '../../src/lab/traffic.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';
import { ControlClient } from '../../src/sys/control-client.ts';
import { killChild, spawnInNetns } from './harness.ts';

const id = Math.random().toString(36).slice(2, 7);
const ns = { a: `mg-lc${id}-a`, b: `mg-lc${id}-b`, nic: `mg-lc${id}-n` };
const dir = mkdtempSync(join(tmpdir(), 'mg-lifecycle-'));
const procs: ChildProcess[] = [];

after(async () => {
  for (const p of procs) await killChild(p, 3000);
  for (const n of Object.values(ns)) await deleteNetns(n).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

interface LinkHealth { device: string; ifname: string; state: string; reason: string; ifindex: number; counts: { down: number; up: number; reattached: number } }
interface Status { ready: boolean; components: { name: string; state: string; restarts: number; health: string; degraded: string; links: LinkHealth[] }[] }

test('a packet link that loses its carrier, and one deleted and recreated: degraded meanwhile, reattached, forwarding resumes, counted', async (t) => {
  const A = `mglc${id}A`; // the gateway's lan port (in nic)
  const B = `mglc${id}B`; // the gateway's wan port (in nic)
  const a = `mglc${id}a`;
  const b = `mglc${id}b`;
  for (const n of Object.values(ns)) await createNetns(n);
  await ip(['link', 'add', a, 'netns', ns.a, 'type', 'veth', 'peer', 'name', A, 'netns', ns.nic]);
  await ip(['addr', 'add', '192.0.2.1/24', 'dev', A], ns.nic); // a host address left on a gateway port
  await ip(['link', 'set', A, 'up'], ns.nic); // B stays down: a warning
  await ip(['addr', 'add', '198.18.0.2/24', 'dev', a], ns.a);
  await ip(['link', 'set', a, 'up'], ns.a);
  await ip(['route', 'add', 'default', 'via', '198.18.0.1'], ns.a);
  const makeWan = async (hostAddress?: string): Promise<void> => {
    if (hostAddress === undefined) {
      await ip(['link', 'add', b, 'netns', ns.b, 'type', 'veth', 'peer', 'name', B, 'netns', ns.nic]);
    } else {
      // The gateway's end appears under its name only once it carries the address (a rename is atomic).
      await ip(['link', 'add', b, 'netns', ns.b, 'type', 'veth', 'peer', 'name', `mglc${id}T`, 'netns', ns.nic]);
      await ip(['addr', 'add', hostAddress, 'dev', `mglc${id}T`], ns.nic);
      await ip(['link', 'set', `mglc${id}T`, 'name', B], ns.nic);
    }
    await ip(['addr', 'add', '198.19.0.2/24', 'dev', b], ns.b);
    await ip(['link', 'set', b, 'up'], ns.b);
  };
  await makeWan();

  const socket = join(dir, 'control.sock');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `control: { socket: ${socket} }
sandbox: { uid-base: ${findFreeUidRange(99000, 99999, 64).first} }
devices:
  port-a: { kind: packet, ifname: ${A}, netns: ${ns.nic}, host-addresses: warn }
  port-b: { kind: packet, ifname: ${B}, netns: ${ns.nic} }
components:
  - { name: drv-a, type: nic-driver, devices: { tap: port-a } }
  - { name: drv-b, type: nic-driver, devices: { tap: port-b } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24, forward: [{ to: wan, nat: true }] }
        wan: { address: 198.19.0.1/24 }
sessions:
  - { between: [drv-a.nic, router.lan] }
  - { between: [drv-b.nic, router.wan] }
`);
  const root = resolve(import.meta.dirname, '../..');
  const init = spawn(process.execPath, [join(root, 'src/cli/main.ts'), 'run', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(init);
  let log = '';
  init.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  init.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const waitFor = async (what: string, ok: () => boolean | Promise<boolean>, ms = 30000): Promise<void> => {
    const t0 = Date.now();
    while (!(await ok())) {
      if (Date.now() - t0 > ms || init.exitCode !== null) assert.fail(`${what} did not happen within ${ms} ms:\n${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await waitFor('init: ready', () => log.includes('init: ready'));

  // The warnings: each names the interface and what to do.
  assert.match(log, new RegExp(`device port-a: warning: interface "${A}" in network namespace ${ns.nic} has the host address 192\\.0\\.2\\.1/24: it is dropped .*remove it from the host's network configuration`));
  assert.match(log, new RegExp(`device port-b: warning: interface "${B}" in network namespace ${ns.nic} is down: init sets it up`));
  assert.match(log, new RegExp(`device port-a: warning: interface "${A}" .* has IPv6 autoconfiguration on \\(accept_ra=1, autoconf=1\\).*net\\.ipv6\\.conf\\.${A}\\.accept_ra=0`));

  const control = new ControlClient({ socket });
  const status = async (): Promise<Status> => control.get<Status>('/status');
  const drv = async (name: string): Promise<Status['components'][number]> => (await status()).components.find((c) => c.name === name)!;
  const counters = async (): Promise<Record<string, number>> => (await control.get<Record<string, Record<string, number>>>('/counters'))['drv-b'] ?? {};

  assert.equal((await drv('drv-b')).health, 'ok');
  assert.equal((await ping(ns.a, '198.19.0.2')).received, 3, 'forwarding at the start');
  const firstIndex = (await drv('drv-b')).links[0].ifindex;

  // A ping that runs through everything below (5 per second), for the record.
  const pinger = spawnInNetns(ns.a, 'ping', ['-n', '-D', '-i', '0.2', '-W', '1', '198.19.0.2']);
  procs.push(pinger);
  let pings = '';
  pinger.stdout!.on('data', (d: Buffer) => (pings += d.toString()));
  const replies = (): number => (pings.match(/bytes from/g) ?? []).length;
  const repliesSince = async (n: number, what: string): Promise<void> => waitFor(what, () => replies() > n + 3, 20000);

  // 1. The carrier goes (the wan host's end set down) and comes back.
  await repliesSince(0, 'the running ping gets replies');
  const times: Record<string, number> = {};
  let t1 = Date.now();
  await ip(['link', 'set', b, 'down'], ns.b);
  await waitFor('drv-b degraded (no carrier)', async () => (await drv('drv-b')).health === 'degraded');
  times.carrierLossSeenMs = Date.now() - t1;
  const down = await drv('drv-b');
  assert.match(down.degraded, new RegExp(`${B} down: no carrier`));
  assert.equal(down.state, 'running', 'the process runs on; the link is what is down');
  assert.equal((await ping(ns.a, '198.19.0.2', { count: 2, timeoutS: 1 })).received, 0, 'nothing crosses a link without carrier');
  t1 = Date.now();
  await ip(['link', 'set', b, 'up'], ns.b);
  await waitFor('drv-b ok again', async () => (await drv('drv-b')).health === 'ok');
  times.carrierBackSeenMs = Date.now() - t1;
  let n = replies();
  await repliesSince(n, 'forwarding after the carrier came back');
  let c = await counters();
  assert.equal(c['link.down'], 1);
  assert.equal(c['link.up'], 1);
  assert.equal(c['link.reattached'], 0);
  assert.equal((await drv('drv-b')).restarts, 0, 'a carrier change needs no restart');

  // 2. The veth pair is deleted: the gateway's end (in its own namespace) goes with it.
  t1 = Date.now();
  await ip(['link', 'del', b], ns.b);
  await waitFor('drv-b degraded (gone)', async () => (await drv('drv-b')).links[0]?.state === 'gone');
  times.deletionSeenMs = Date.now() - t1;
  const gone = await drv('drv-b');
  assert.equal(gone.health, 'degraded');
  assert.match(gone.degraded, new RegExp(`${B} gone: the interface was deleted`));
  // GET /metrics says the same (issue 16), read by the reference Prometheus parser.
  const metrics = async (): Promise<PromFamily[]> => parsePrometheus((await control.request('GET', '/metrics')).body.toString('utf8'));
  let m = await metrics();
  assert.equal(value(m, 'microgate_component_degraded', { component: 'drv-b' }), 1);
  assert.equal(value(m, 'microgate_component_up', { component: 'drv-b' }), 1, 'the process runs');
  assert.equal(value(m, 'microgate_link_up', { component: 'drv-b', device: 'port-b' }), 0);
  assert.equal(value(m, 'microgate_link_changes_total', { component: 'drv-b', to: 'down' }), 2);
  assert.match(log, new RegExp(`device port-b: interface ${B} is gone: .*degraded`));
  assert.equal((await ping(ns.a, '198.19.0.2', { count: 2, timeoutS: 1 })).received, 0);
  // The old driver holds a dead socket: a read error or two, not a spin.
  const dead = await counters();
  assert.ok((dead['drop.tap-read-error'] ?? 0) <= 5, `the dead socket: ${JSON.stringify(dead)}`);
  // An attacker (or a careless host) puts an interface of that name back, with a host address: refused, still degraded.
  await makeWan('192.0.2.9/24');
  await waitFor('the recreated port refused', async () => (await counters())['link.reattach-failed'] >= 1);
  const refused = await drv('drv-b');
  assert.equal(refused.health, 'degraded');
  assert.match(refused.degraded, /cannot be attached: interface .* has the address 192\.0\.2\.9\/24/);
  assert.equal(refused.restarts, 0);
  assert.ok((await listLinks(ns.nic)).some((l) => l.ifname === B), 'the refused interface stays where it is');
  assert.equal(log.split('\n').filter((l) => l.includes('192.0.2.9/24')).length, 1, 'a refusal repeated every tick is logged once');
  await ip(['link', 'del', b], ns.b);
  // ... and created again under the same names, as the host should (new ifindex, new MACs).
  t1 = Date.now();
  await makeWan();
  await waitFor('drv-b reattached and running', async () => {
    const d = await drv('drv-b');
    return d.health === 'ok' && d.state === 'running' && d.restarts === 1;
  });
  times.recreatedToRunningMs = Date.now() - t1;
  const back = await drv('drv-b');
  m = await metrics();
  assert.equal(value(m, 'microgate_component_degraded', { component: 'drv-b' }), 0);
  assert.equal(value(m, 'microgate_link_up', { component: 'drv-b', device: 'port-b' }), 1);
  assert.equal(value(m, 'microgate_link_reattaches_total', { component: 'drv-b', result: 'ok' }), 1);
  assert.ok((value(m, 'microgate_link_reattaches_total', { component: 'drv-b', result: 'failed' }) ?? 0) >= 1);
  assert.equal(value(m, 'microgate_component_restarts_total', { component: 'drv-b' }), 1);
  assert.notEqual(back.links[0].ifindex, firstIndex, 'a new interface');
  assert.match(log, new RegExp(`interface ${B} is back \\(ifindex ${back.links[0].ifindex}\\): reattached`));
  assert.match(log, /restarting drv-b \(pid \d+\) to hand it over/);
  assert.deepEqual((await listLinks(ns.nic)).map((l) => l.ifname), ['lo'], 'the recreated port moved out of the host namespace again');
  // The wan host's new end has a new MAC: the router learns it from its ARP request.
  assert.equal((await ping(ns.b, '198.19.0.1', { count: 2 })).received, 2, 'the wan host reaches the gateway over the new link');
  n = replies();
  await repliesSince(n, 'the running ping gets replies again');
  times.recreatedToForwardingMs = Date.now() - t1;
  assert.equal((await ping(ns.a, '198.19.0.2')).received, 3, 'forwarding resumed');
  c = await counters();
  assert.equal(c['link.down'], 2);
  assert.equal(c['link.up'], 2);
  assert.equal(c['link.reattached'], 1);
  assert.ok(c['link.reattach-failed'] >= 1);
  await killChild(pinger);
  t.diagnostic(`times (status polled every 100 ms; init looks every 250 ms): ${JSON.stringify(times)}`);
  t.diagnostic(`ping during it all: ${replies()} replies; drv-b counters ${JSON.stringify(c)}`);

  // A clean stop moves both ports home (the recreated one too); A without the host address the move dropped.
  const exited = new Promise((r) => init.once('exit', r));
  init.kill('SIGTERM');
  await exited;
  const home = await listLinks(ns.nic);
  assert.deepEqual(home.map((l) => l.ifname).sort(), [A, B, 'lo'].sort());
  const { stdout } = await ip(['-j', 'addr', 'show', 'dev', A], ns.nic);
  assert.deepEqual((JSON.parse(stdout) as { addr_info: { family: string }[] }[])[0].addr_info.filter((x) => x.family === 'inet'), []);
});
