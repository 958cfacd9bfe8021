// The router's WAN DHCP client (`address: dhcp`) against a real DHCP server:
// busybox udhcpd in the wan namespace leases the gateway an address (12 s
// lease), the default gateway comes from the lease, and NAT masquerades the
// lan host behind the leased address (a UDP server on the wan host, behind that
// gateway, sees it as the source). Then udhcpd is restarted with another pool:
// it stays silent to the renewal, the lease ends, the client takes a new
// address, and NAT uses the new one. A clean stop sends a RELEASE: udhcpd's
// lease file shows the lease expired.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createNetns, deleteNetns, ip } from '../../src/lab/netns.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';
import { ControlClient } from '../../src/sys/control-client.ts';
import { killChild, nsExec, spawnInNetns } from './harness.ts';

const id = Math.random().toString(36).slice(2, 7);
const ns = { a: `mg-dc${id}-a`, b: `mg-dc${id}-b`, nic: `mg-dc${id}-n` };
const dir = mkdtempSync(join(tmpdir(), 'mg-dhcpc-'));
const procs: ChildProcess[] = [];

after(async () => {
  for (const p of procs) await killChild(p, 3000);
  for (const n of Object.values(ns)) await deleteNetns(n).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

interface ClientStatus { state: string; address: string | null; gateway: string | null; server: string | null }

test('the wan address from a DHCP server (busybox udhcpd): NAT uses it; a new address after the server changed its pool, and NAT follows', async (t) => {
  const A = `mgdc${id}A`;
  const B = `mgdc${id}B`;
  const a = `mgdc${id}a`;
  const b = `mgdc${id}b`;
  for (const n of Object.values(ns)) await createNetns(n);
  await ip(['link', 'add', a, 'netns', ns.a, 'type', 'veth', 'peer', 'name', A, 'netns', ns.nic]);
  await ip(['link', 'add', b, 'netns', ns.b, 'type', 'veth', 'peer', 'name', B, 'netns', ns.nic]);
  for (const l of [A, B]) await ip(['link', 'set', l, 'up'], ns.nic);
  await ip(['addr', 'add', '10.1.0.2/24', 'dev', a], ns.a);
  await ip(['link', 'set', a, 'up'], ns.a);
  await ip(['route', 'add', 'default', 'via', '10.1.0.1'], ns.a);
  await ip(['addr', 'add', '198.19.0.2/24', 'dev', b], ns.b);
  await ip(['link', 'set', b, 'up'], ns.b);
  // A "remote" address on the wan host, off the leased prefix: reached only through the lease's gateway.
  await ip(['addr', 'add', '203.0.113.9/32', 'dev', 'lo'], ns.b);
  await ip(['link', 'set', 'lo', 'up'], ns.b);

  const udhcpd = (pool: string): ChildProcess => {
    const [start, end] = pool.split('-');
    const conf = join(dir, `udhcpd-${start}.conf`);
    writeFileSync(conf, `start ${start}\nend ${end}\ninterface ${b}\nlease_file ${join(dir, `leases-${start}`)}\npidfile ${join(dir, `udhcpd-${start}.pid`)}\n`
      + 'min_lease 10\noption subnet 255.255.255.0\noption router 198.19.0.2\noption dns 198.19.0.2\noption lease 12\n');
    writeFileSync(join(dir, `leases-${start}`), '');
    const p = spawnInNetns(ns.b, 'busybox', ['udhcpd', '-f', conf]);
    procs.push(p);
    return p;
  };
  let server = udhcpd('198.19.0.100-198.19.0.110');

  // The wan host's UDP server: one line per datagram, the source address.
  const sink = spawnInNetns(ns.b, process.execPath, ['-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m, r) => console.log('from ' + r.address + ' ' + m));
    s.bind(9000, () => console.log('listening'));`]);
  procs.push(sink);
  let seen = '';
  sink.stdout!.on('data', (d: Buffer) => (seen += d.toString()));

  const socket = join(dir, 'control.sock');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `control: { socket: ${socket} }
sandbox: { uid-base: ${findFreeUidRange(99000, 99999, 64).first} }
devices:
  port-a: { kind: packet, ifname: ${A}, netns: ${ns.nic} }
  port-b: { kind: packet, ifname: ${B}, netns: ${ns.nic} }
components:
  - { name: drv-a, type: nic-driver, devices: { tap: port-a } }
  - { name: drv-b, type: nic-driver, devices: { tap: port-b } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 10.1.0.1/24, ip: [{ to: wan }] }
        wan: { address: dhcp, nat: { from: [lan] } }
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
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await waitFor('init: ready', () => log.includes('init: ready'));
  const control = new ControlClient({ socket });
  const dhcp = async (): Promise<ClientStatus> => {
    const r = await control.get<{ components: { name: string; status: { dhcpClient?: { wan: ClientStatus } } }[] }>('/components');
    return r.components.find((c) => c.name === 'router')!.status.dhcpClient!.wan;
  };
  const inPool = (s: ClientStatus, prefix: string): boolean => s.state === 'bound' && s.address !== null && s.address.startsWith(prefix) && s.address.endsWith('/24');

  let t1 = Date.now();
  await waitFor('a lease from udhcpd', async () => inPool(await dhcp(), '198.19.0.1'), 40000);
  const firstLeaseMs = Date.now() - t1;
  const first = await dhcp();
  assert.match(first.address!, /^198\.19\.0\.(10\d|110)\/24$/);
  assert.deepEqual([first.gateway, first.server], ['198.19.0.2', '198.19.0.2']);
  const firstIp = first.address!.split('/')[0];

  const send = async (text: string): Promise<void> => {
    const r = await nsExec(ns.a, process.execPath, ['-e', `
      const s = require('node:dgram').createSocket('udp4');
      s.send('${text}', 9000, '203.0.113.9', () => s.close());`]);
    assert.equal(r.code, 0, r.stderr);
  };
  await waitFor('the UDP server listening', () => seen.includes('listening'));
  await send('one');
  await waitFor('the first datagram at the wan host', () => seen.includes(' one'), 10000);
  assert.match(seen, new RegExp(`from ${firstIp.replace(/\./g, '\\.')} one`), 'masqueraded behind the leased address, through the leased gateway');

  // udhcpd restarted with another pool and no memory of the lease: silent to the renewal (T1 6 s) and rebinding; the lease ends at 12 s.
  await killChild(server);
  server = udhcpd('198.19.0.200-198.19.0.210');
  t1 = Date.now();
  await waitFor('a new address from the new pool', async () => inPool(await dhcp(), '198.19.0.2'), 60000);
  t.diagnostic(`first lease ${firstLeaseMs} ms after init was ready; the new address ${Date.now() - t1} ms after udhcpd restarted with the new pool (lease 12 s, T1 6 s)`);
  const second = await dhcp();
  assert.match(second.address!, /^198\.19\.0\.(20\d|210)\/24$/);
  const secondIp = second.address!.split('/')[0];
  assert.match(log, new RegExp(`domain wan: address (${firstIp.replace(/\./g, '\\.')}|none) -> ${secondIp.replace(/\./g, '\\.')}/24`));
  await send('two');
  await waitFor('the second datagram at the wan host', () => seen.includes(' two'), 10000);
  assert.match(seen, new RegExp(`from ${secondIp.replace(/\./g, '\\.')} two`), 'NAT uses the new address');
  const counters = (await control.get<Record<string, Record<string, number>>>('/counters')).router;
  t.diagnostic(`leases: ${firstIp} then ${secondIp}; router dhcpc counters ${JSON.stringify(Object.fromEntries(Object.entries(counters).filter(([k]) => k.startsWith('dhcpc') || k.includes('dhcp'))))}`);
  assert.ok(counters['dhcpc.leased'] >= 2);
  assert.ok(counters['dhcpc.lost'] >= 1);

  // A clean stop releases the lease: udhcpd's lease file (written on SIGUSR1) shows it expired.
  const leases = async (): Promise<string> => {
    server.kill('SIGUSR1');
    await new Promise((r) => setTimeout(r, 500));
    return (await nsExec(ns.b, 'busybox', ['dumpleases', '-f', join(dir, 'leases-198.19.0.200')])).stdout;
  };
  const row = (text: string): string => text.split('\n').find((l) => l.includes(` ${secondIp} `)) ?? '';
  assert.doesNotMatch(row(await leases()), /expired/, 'leased while the gateway runs');
  const exited = new Promise((r) => init.once('exit', r));
  init.kill('SIGTERM');
  await exited;
  const released = row(await leases());
  t.diagnostic(`udhcpd's lease after the stop: ${released.trim()}`);
  assert.match(released, /expired/, 'the RELEASE reached the server');
});
