// nic-driver on an existing interface through an AF_PACKET socket (instead of
// a TAP): two hosts, each joined by a veth pair to a "nic" namespace where the
// gateway's ends are; microgate routes and NATs between them. init gives each
// packet link a network namespace of its own (src/init/packet-link.ts): the
// attack (fault kind escape-link: the driver itself, in its sandbox, sends on
// and sets promiscuous every interface index) reaches nothing but its own link,
// while the same attempt from a socket in the shared "nic" namespace (the old
// layout, the control) does reach a bystander interface there. Also: a process
// with a component's uid cannot read its memory; the audit says dumpable=0.
// The drivers batch (recvmmsg/sendmmsg): TCP bulk with GSO frames whole and
// 64-byte UDP both ways; a driver stopped under a flood: the kernel's drops at
// its full socket queue are counted (drop.link-queue), every frame accounted for.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createNetns, deleteNetns, ip, listLinks, nsExec, sysctl } from '../../src/lab/netns.ts';
import { ping, iperf3 } from '../../src/lab/traffic.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';
import { openPacketSocket } from '../../src/sys/packet.ts';
import { escapeLink, type EscapeReport } from '../../src/runtime/fault-inject.ts';
import { readMemAs } from './mem-read.ts';
import { ControlClient } from '../../src/sys/control-client.ts';
import type { ComponentReport } from '../../src/runtime/messages.ts';

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

/** tx packets and promiscuity of a link, from `ip -s -d -j`. */
async function linkStats(ifname: string, netns: string): Promise<{ tx: number; promiscuity: number }> {
  const { stdout } = await ip(['-s', '-d', '-j', 'link', 'show', 'dev', ifname], netns);
  const l = (JSON.parse(stdout) as { promiscuity: number; stats64: { tx: { packets: number } } }[])[0];
  return { tx: l.stats64.tx.packets, promiscuity: l.promiscuity };
}

interface AuditBody {
  ok: boolean;
  units: { unit: string; pid: number; uid: number; dumpable: number; violations: string[]; links: { device: string; ifname: string; netnsInterfaces: string[] }[] }[];
}

for (const hdr of [12, 10] as const) test(`a gateway attached to existing interfaces by AF_PACKET (${hdr}-byte virtio-net headers): each link in a namespace of its own, forwarding both ways, no escape; ${hdr === 12 ? 'moved back at a clean stop' : 'deleted with its peer (veth) when init is killed'}`, async (t) => {
  const ns = { a: `mg-pk${id}${hdr}-a`, b: `mg-pk${id}${hdr}-b`, nic: `mg-pk${id}${hdr}-n` };
  namespaces.push(...Object.values(ns));
  const id2 = `${id}${hdr === 12 ? 'x' : 'y'}`;
  const A = `mgpk${id2}A`;
  const B = `mgpk${id2}B`;
  const C = `mgpk${id2}C`; // a bystander in the nic namespace: no driver may reach it
  for (const n of Object.values(ns)) await createNetns(n);
  // veth pairs: host end in a/b, gateway end in the nic namespace (no address there: microgate owns it).
  await ip(['link', 'add', `mgpk${id2}a`, 'netns', ns.a, 'type', 'veth', 'peer', 'name', A, 'netns', ns.nic]);
  await ip(['link', 'add', `mgpk${id2}b`, 'netns', ns.b, 'type', 'veth', 'peer', 'name', B, 'netns', ns.nic]);
  await ip(['link', 'add', `mgpk${id2}c`, 'netns', ns.b, 'type', 'veth', 'peer', 'name', C, 'netns', ns.nic]);
  // No IPv6 on the bystander: nothing of the kernel's own sends on it, so its tx counter counts only intruders.
  await sysctl(ns.nic, `net.ipv6.conf.${C}.disable_ipv6`, 1);
  for (const l of [A, B, C]) await ip(['link', 'set', l, 'up'], ns.nic);
  await ip(['link', 'set', `mgpk${id2}c`, 'up'], ns.b);
  await ip(['addr', 'add', '198.18.0.2/24', 'dev', `mgpk${id2}a`], ns.a);
  await ip(['link', 'set', `mgpk${id2}a`, 'up'], ns.a);
  await ip(['route', 'add', 'default', 'via', '198.18.0.1'], ns.a);
  await ip(['addr', 'add', '198.19.0.2/24', 'dev', `mgpk${id2}b`], ns.b);
  await ip(['link', 'set', `mgpk${id2}b`, 'up'], ns.b);
  const index = async (n: string): Promise<number> => (await listLinks(ns.nic)).find((l) => l.ifname === n)!.ifindex;
  const cIndex = await index(C);

  let control: EscapeReport | undefined;
  if (hdr === 12) {
    // The control: a packet socket on A made in the shared nic namespace (how init made it before) reaches C and B.
    const nicFd = openSync(`/run/netns/${ns.nic}`, 'r');
    const ps = openPacketSocket(A, nicFd, 12);
    closeSync(nicFd);
    try {
      control = escapeLink({ fd: ps.fd, vnetHdrLen: ps.vnetHdrLen }, 256);
    } finally {
      closeSync(ps.fd);
    }
    assert.equal(control.ownSend, 'ok');
    assert.ok(control.sentOn.includes(cIndex) && control.sentOn.includes(await index(B)), `the control must reach C and B: ${JSON.stringify(control)}`);
    assert.ok(control.promiscOn.includes(cIndex));
    t.diagnostic(`control (socket in the shared namespace): ${JSON.stringify(control)}`);
  }
  const before = await linkStats(C, ns.nic);
  assert.equal(before.promiscuity, 0, 'the control socket is closed: its promiscuous membership went with it');

  // mkdtemp's folder is root-only (0700): a valid home for the control socket.
  const socket = join(dir, `control${hdr}.sock`);
  const config = join(dir, `gateway${hdr}.yaml`);
  writeFileSync(config, `control: { socket: ${socket} }
sandbox: { uid-base: ${findFreeUidRange(99000, 99999, 64).first} }
debug: { fault-injection: true }
devices:
  port-a: { kind: packet, ifname: ${A}, netns: ${ns.nic}, vnet-hdr: ${hdr} }
  port-b: { kind: packet, ifname: ${B}, netns: ${ns.nic}, vnet-hdr: ${hdr} }
components:
  - { name: drv-a, type: nic-driver, devices: { tap: port-a } }
  - { name: drv-b, type: nic-driver, devices: { tap: port-b }${hdr === 10 ? ', config: { rx-ring: false }' : ''} }
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
  while (!log.includes('init: ready') && init.exitCode === null && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 100));
  assert.ok(log.includes('init: ready'), `init did not get ready:\n${log}`);
  assert.match(log, new RegExp(`packet socket on ${A} \\(moved from netns ${ns.nic} into a network namespace of its own\\), ${hdr}-byte virtio-net headers`));
  assert.deepEqual((await listLinks(ns.nic)).map((l) => l.ifname).sort(), [C, 'lo'].sort(), 'A and B left the shared namespace');

  assert.equal((await ping(ns.a, '198.18.0.1')).received, 3);
  assert.equal((await ping(ns.a, '198.19.0.2')).received, 3);
  // Bulk and small frames both ways, through the drivers' batched receive and send: a PACKET_MMAP
  // ring (GSO super-frames queued whole, by recvmmsg) or, drv-b with the 10-byte header, recvmmsg alone.
  const api = new ControlClient({ socket });
  const reports = async (): Promise<ComponentReport[]> => (await api.get<{ components: ComponentReport[] }>('/components', 5000)).components;
  const drivers = async (): Promise<Record<string, Record<string, number>>> =>
    Object.fromEntries((await reports()).filter((r) => r.name.startsWith('drv-')).map((r) => [r.name, r.counters]));
  for (const r of (await reports()).filter((x) => x.name.startsWith('drv-'))) {
    assert.equal(r.status.batched, true, `${r.name} sends by sendmmsg`);
    assert.equal(r.status.rxRing, !(hdr === 10 && r.name === 'drv-b'), `${r.name} receives through ${hdr === 10 && r.name === 'drv-b' ? 'recvmmsg (rx-ring: false)' : 'the ring'}`);
  }
  const base = { serverNetns: ns.b, serverIp: '198.19.0.2', clientNetns: ns.a, seconds: 1 };
  for (const reverse of [false, true]) {
    const c0 = await drivers();
    assert.ok((await iperf3({ ...base, reverse })).bitsPerSecond > 0);
    const c1 = await drivers();
    // TCP bulk: GSO super-frames cross whole (more than an MTU per frame on average) on both links.
    const [from, to] = reverse ? ['drv-b', 'drv-a'] : ['drv-a', 'drv-b'];
    const rxFrames = c1[from]['rx.frames'] - c0[from]['rx.frames'];
    const rxBytes = c1[from]['rx.bytes'] - c0[from]['rx.bytes'];
    const txFrames = c1[to]['tx.frames'] - c0[to]['tx.frames'];
    const txBytes = c1[to]['tx.bytes'] - c0[to]['tx.bytes'];
    t.diagnostic(`TCP ${reverse ? 'b -> a' : 'a -> b'}: ${from} received ${rxFrames} frames (${Math.round(rxBytes / rxFrames)} B each), ${to} sent ${txFrames} (${Math.round(txBytes / txFrames)} B each)`);
    assert.ok(rxFrames > 100 && rxBytes / rxFrames > 1514, `${from}: GSO frames received whole: ${rxFrames} frames, ${rxBytes} B`);
    assert.ok(txFrames > 100 && txBytes / txFrames > 1514, `${to}: GSO frames sent whole: ${txFrames} frames, ${txBytes} B`);
    // Small frames: 64-byte UDP datagrams, unpaced, the same way.
    const u = await iperf3({ ...base, reverse, extra: ['-u', '-l', '64', '-b', '0'] });
    const c2 = await drivers();
    const smallRx = c2[from]['rx.frames'] - c1[from]['rx.frames'];
    const smallTx = c2[to]['tx.frames'] - c1[to]['tx.frames'];
    t.diagnostic(`UDP 64 B ${reverse ? 'b -> a' : 'a -> b'}: ${Math.round(u.bitsPerSecond / 8 / 64)} datagrams/s delivered; ${from} received ${smallRx} frames, ${to} sent ${smallTx}`);
    assert.ok(u.bitsPerSecond > 0 && smallRx > 1000 && smallTx > 1000, `64-byte datagrams forwarded: ${smallRx} in, ${smallTx} out`);
    for (const d of ['drv-a', 'drv-b']) {
      for (const k of ['drop.tap-read-error', 'drop.rx-truncated', 'drop.rx-runt', 'drop.tap-write-rejected', 'drop.tx-runt']) assert.equal(c2[d][k] ?? 0, 0, `${d} ${k}`);
    }
  }
  // A driver that does not read in time: the kernel drops at the socket's full queue, and the driver counts it (PACKET_STATISTICS).
  const drvB = (await api.get<{ components: { name: string; pid: number }[] }>('/status', 5000)).components.find((c) => c.name === 'drv-b')!;
  const q0 = (await drivers())['drv-b'];
  process.kill(drvB.pid, 'SIGSTOP');
  try {
    // 20,000 datagrams of 1400 bytes to the gateway's wan address: ~28 MB against a 4 MiB (x2) socket buffer.
    await nsExec(ns.b, 'python3', ['-c', 'import socket\ns=socket.socket(2,2)\nfor _ in range(20000): s.sendto(b"x"*1400, ("198.19.0.1", 9))']);
  } finally {
    process.kill(drvB.pid, 'SIGCONT');
  }
  let q1 = (await drivers())['drv-b'];
  const t3 = Date.now();
  const seen = (q: Record<string, number>): number => (q['drop.link-queue'] ?? 0) - (q0['drop.link-queue'] ?? 0) + q['rx.frames'] - q0['rx.frames'];
  while (seen(q1) < 20_000 && Date.now() - t3 < 5000) {
    await new Promise((r) => setTimeout(r, 200));
    q1 = (await drivers())['drv-b'];
  }
  const qDrops = (q1['drop.link-queue'] ?? 0) - (q0['drop.link-queue'] ?? 0);
  const qRead = q1['rx.frames'] - q0['rx.frames'];
  t.diagnostic(`drv-b stopped while 20,000 frames came: ${qRead} read after it went on, ${qDrops} counted as drop.link-queue`);
  assert.ok(qDrops > 1000 && qRead > 1000, `queue drops counted (${qDrops}) and the queued frames read (${qRead})`);
  // Every frame is either read or counted (a few more reads: the kernel's own frames on the link meanwhile).
  assert.ok(qDrops + qRead >= 20_000 && qDrops + qRead <= 20_000 + 100, `all 20,000 accounted for, none twice: ${qDrops} + ${qRead}`);
  assert.equal((await ping(ns.a, '198.19.0.2')).received, 3, 'forwarding goes on');

  // Nothing new gets in from b (it routes a's prefix at the gateway, as an attacker would).
  await nsExec(ns.b, 'ip', ['route', 'add', '198.18.0.0/24', 'via', '198.19.0.1']);
  assert.equal((await ping(ns.b, '198.18.0.2', { count: 2, timeoutS: 1 })).received, 0);

  // The audit: packet sockets counted as granted devices, each link's namespace holding lo and the link only, nothing dumpable.
  const audit = await api.get<AuditBody>('/audit');
  assert.equal(audit.ok, true, JSON.stringify(audit.units.map((u) => [u.unit, u.violations])));
  const drvA = audit.units.find((u) => u.unit === 'drv-a')!;
  assert.deepEqual(drvA.links, [{ device: 'port-a', ifname: A, netnsInterfaces: ['lo', A] }]);
  for (const u of audit.units) assert.equal(u.dumpable, 0, `${u.unit} must not be dumpable`);
  // A process with the router's uid cannot read the router's memory.
  const router = audit.units.find((u) => u.unit === 'router')!;
  const mem = await readMemAs(router.uid, router.pid);
  assert.deepEqual([mem.ok, mem.error], [false, 'EACCES'], `reading the router's memory as its uid ${router.uid}`);

  if (hdr === 12) {
    // The attack, from inside drv-a's sandbox with its own socket: every interface index, send and promiscuous.
    const r = await new ControlClient({ socket }).request('POST', '/components/drv-a/fault', { kind: 'escape-link' });
    assert.equal(r.status, 202, r.body.toString('utf8'));
    const t1 = Date.now();
    let m: RegExpExecArray | null = null;
    while ((m = /fault injection: escape-link: (\{.*\})/.exec(log)) === null && Date.now() - t1 < 30000) await new Promise((res) => setTimeout(res, 100));
    assert.ok(m !== null, `no escape-link report in the log:\n${log.slice(-2000)}`);
    const esc = JSON.parse(m[1]) as EscapeReport;
    t.diagnostic(`escape-link inside drv-a (${Date.now() - t1} ms to the report): ${JSON.stringify(esc)}`);
    assert.equal(esc.ownSend, 'ok', 'the control inside: it can send on its own link');
    assert.equal(esc.ownPromisc, 'ok');
    assert.equal(esc.tried, 65534);
    // Index 1 is the lo of its own namespace (down: nothing to send on; promiscuous there changes nothing).
    assert.deepEqual(esc.sentOn, [], `sent on other interfaces: ${JSON.stringify(esc)}`);
    assert.ok(esc.promiscOn.every((i) => i === 1), `promiscuous elsewhere: ${JSON.stringify(esc)}`);
    const afterAttack = await linkStats(C, ns.nic);
    assert.equal(afterAttack.tx, before.tx, 'nothing went out on the bystander');
    assert.equal(afterAttack.promiscuity, 0, 'the bystander is not promiscuous');
    assert.equal((await ping(ns.a, '198.19.0.2')).received, 3, 'the driver runs on and forwards');

    // A driver killed while its receive ring is set: init hands the same socket to the new one, which
    // removes the old ring and sets its own (a stale ring would take every frame while nobody reads it).
    type Unit = { name: string; pid: number; state: string; restarts: number };
    const units = async (): Promise<Unit[]> => (await api.get<{ components: Unit[] }>('/status', 5000)).components;
    const old = (await units()).find((u) => u.name === 'drv-a')!;
    process.kill(old.pid, 'SIGKILL');
    const t4 = Date.now();
    let now = old;
    while ((now.pid === old.pid || now.state !== 'running') && Date.now() - t4 < 10000) {
      await new Promise((res) => setTimeout(res, 100));
      now = (await units()).find((u) => u.name === 'drv-a')!;
    }
    assert.equal(now.state, 'running', `drv-a restarted: ${JSON.stringify(now)}`);
    assert.equal(now.restarts, old.restarts + 1);
    assert.equal((await reports()).find((r) => r.name === 'drv-a')!.status.rxRing, true, 'the restarted driver receives through a ring of its own');
    assert.equal((await ping(ns.a, '198.19.0.2', { count: 3, timeoutS: 2 })).received, 3, 'forwarding through the restarted driver');
    assert.ok((await iperf3({ ...base, seconds: 1 })).bitsPerSecond > 0, 'bulk through the restarted driver');
  }

  const exited = new Promise((res) => init.once('exit', res));
  if (hdr === 12) {
    // A clean stop moves both interfaces back, up as they were.
    init.kill('SIGTERM');
    await exited;
    const home = await listLinks(ns.nic);
    for (const l of [A, B]) assert.ok(home.find((x) => x.ifname === l)?.flags.includes('UP'), `${l} back in ${ns.nic} and up: ${JSON.stringify(home)}`);
    assert.match(log, new RegExp(`interface ${A} moved back to netns ${ns.nic}`));
  } else {
    // init killed: its components leave with it, the links' namespaces end, and the kernel deletes a veth with its peer.
    init.kill('SIGKILL');
    await exited;
    const pids = audit.units.map((u) => u.pid);
    const gone = async (): Promise<boolean> => {
      const alive = pids.filter((p) => { try { process.kill(p, 0); return true; } catch { return false; } });
      const links = [...(await listLinks(ns.nic)), ...(await listLinks(ns.a))].map((l) => l.ifname);
      return alive.length === 0 && !links.includes(A) && !links.includes(`mgpk${id2}a`);
    };
    const t2 = Date.now();
    while (!(await gone()) && Date.now() - t2 < 10000) await new Promise((res) => setTimeout(res, 200));
    assert.ok(await gone(), `after SIGKILL of init: components ${pids.join(',')} gone, ${A} and its peer deleted: ${JSON.stringify(await listLinks(ns.nic))}`);
  }
});

test('a packet device with an address is refused before anything moves', async () => {
  const nsn = `mg-pk${id}-r`;
  namespaces.push(nsn);
  await createNetns(nsn);
  const L = `mgpk${id}rA`;
  await ip(['link', 'add', L, 'netns', nsn, 'type', 'veth', 'peer', 'name', `mgpk${id}ra`, 'netns', nsn]);
  await ip(['addr', 'add', '192.0.2.1/24', 'dev', L], nsn);
  const config = join(dir, 'refused.yaml');
  writeFileSync(config, `control: { socket: ${join(dir, 'refused.sock')} }
sandbox: { uid-base: ${findFreeUidRange(99000, 99999, 64).first} }
devices:
  port-a: { kind: packet, ifname: ${L}, netns: ${nsn} }
components:
  - { name: drv-a, type: nic-driver, devices: { tap: port-a } }
  - name: router
    type: router
    config: { domains: { lan: { address: 198.18.0.1/24 } } }
sessions:
  - { between: [drv-a.nic, router.lan] }
`);
  const root = resolve(import.meta.dirname, '../..');
  const init = spawn(process.execPath, [join(root, 'src/cli/main.ts'), 'run', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  inits.push(init);
  let out = '';
  init.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  init.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise((res) => init.once('exit', res));
  assert.notEqual(code, 0);
  assert.match(out, new RegExp(`refused\\.yaml: devices\\.port-a: cannot attach to interface "${L}": interface "${L}" has the address 192\\.0\\.2\\.1/24: a packet device must carry none`));
  assert.ok((await listLinks(nsn)).some((l) => l.ifname === L), 'it stays where it was');
});
