// nic-driver on an existing interface through an AF_PACKET socket (instead of
// a TAP): two hosts, each joined by a veth pair to a "nic" namespace where
// init attaches to the gateway ends; microgate routes and NATs between them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createNetns, deleteNetns, ip, nsExec } from '../../src/lab/netns.ts';
import { ping, iperf3 } from '../../src/lab/traffic.ts';
import { pickFreePort } from '../../src/lab/plan.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';

const id = Math.random().toString(36).slice(2, 7);
const namespaces: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'mg-packet-'));
const inits: ChildProcess[] = [];

after(async () => {
  for (const init of inits) {
    if (init.exitCode !== null || init.signalCode !== null) continue;
    const exited = new Promise((r) => init.once('exit', r));
    init.kill('SIGTERM');
    await exited;
  }
  for (const n of namespaces) await deleteNetns(n).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

for (const hdr of [12, 10] as const) test(`a gateway attached to existing interfaces by AF_PACKET (${hdr}-byte virtio-net headers) forwards ping and iperf3 both ways`, async () => {
  const ns = { a: `mg-pk${id}${hdr}-a`, b: `mg-pk${id}${hdr}-b`, nic: `mg-pk${id}${hdr}-n` };
  namespaces.push(...Object.values(ns));
  const id2 = `${id}${hdr === 12 ? 'x' : 'y'}`;
  for (const n of Object.values(ns)) await createNetns(n);
  // veth pairs: host end in a/b, gateway end in the nic namespace (no address there: microgate owns it).
  await ip(['link', 'add', `mgpk${id2}a`, 'netns', ns.a, 'type', 'veth', 'peer', 'name', `mgpk${id2}A`, 'netns', ns.nic]);
  await ip(['link', 'add', `mgpk${id2}b`, 'netns', ns.b, 'type', 'veth', 'peer', 'name', `mgpk${id2}B`, 'netns', ns.nic]);
  for (const l of [`mgpk${id2}A`, `mgpk${id2}B`]) await ip(['link', 'set', l, 'up'], ns.nic);
  await ip(['addr', 'add', '198.18.0.2/24', 'dev', `mgpk${id2}a`], ns.a);
  await ip(['link', 'set', `mgpk${id2}a`, 'up'], ns.a);
  await ip(['route', 'add', 'default', 'via', '198.18.0.1'], ns.a);
  await ip(['addr', 'add', '198.19.0.2/24', 'dev', `mgpk${id2}b`], ns.b);
  await ip(['link', 'set', `mgpk${id2}b`, 'up'], ns.b);
  const port = await pickFreePort();
  const config = join(dir, `gateway${hdr}.yaml`);
  writeFileSync(config, `control: { listen: 127.0.0.1:${port} }
sandbox: { uid-base: ${findFreeUidRange(99000, 99999, 64).first} }
devices:
  port-a: { kind: packet, ifname: mgpk${id2}A, netns: ${ns.nic}, vnet-hdr: ${hdr} }
  port-b: { kind: packet, ifname: mgpk${id2}B, netns: ${ns.nic}, vnet-hdr: ${hdr} }
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
  inits.push(init);
  let log = '';
  init.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  init.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const t0 = Date.now();
  while (!log.includes('init: ready') && init.exitCode === null && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 100));
  assert.ok(log.includes('init: ready'), `init did not get ready:\n${log}`);
  assert.match(log, new RegExp(`packet socket on mgpk\\w+A in netns \\S+, ${hdr}-byte virtio-net headers`));

  assert.equal((await ping(ns.a, '198.18.0.1')).received, 3);
  assert.equal((await ping(ns.a, '198.19.0.2')).received, 3);
  const base = { serverNetns: ns.b, serverIp: '198.19.0.2', clientNetns: ns.a, seconds: 1 };
  assert.ok((await iperf3(base)).bitsPerSecond > 0);
  assert.ok((await iperf3({ ...base, reverse: true })).bitsPerSecond > 0);
  // Nothing new gets in from b (it routes a's prefix at the gateway, as an attacker would).
  await nsExec(ns.b, 'ip', ['route', 'add', '198.18.0.0/24', 'via', '198.19.0.1']);
  assert.equal((await ping(ns.b, '198.18.0.2', { count: 2, timeoutS: 1 })).received, 0);
  // The audit counts the packet sockets as granted devices.
  const r = await fetch(`http://127.0.0.1:${port}/audit`);
  const audit = (await r.json()) as { ok: boolean; units: { unit: string; violations: string[] }[] };
  assert.equal(audit.ok, true, JSON.stringify(audit.units.map((u) => [u.unit, u.violations])));
});
