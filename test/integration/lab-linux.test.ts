// The lab with the Linux reference gateway: real namespaces, real hosts, real
// traffic. Needs root and the tools of scripts/setup.sh. Run with
//   npx node --test --test-concurrency=1 test/integration/lab-linux.test.ts
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { labCommand } from '../../src/lab/cli.ts';
import { labDown, labStatus, labUp, statePath, type LabState } from '../../src/lab/lab.ts';
import { linuxGatewayCounters } from '../../src/lab/linux-gateway.ts';
import { createNetns, ip, sysctlGet } from '../../src/lab/netns.ts';
import { LAB_UID_FIRST } from '../../src/lab/uid-alloc.ts';
import { labStateDir, makePlan, validateLabName } from '../../src/lab/lab-plan.ts';
import {
  canRunLabs, iperf3Pair, killChild, labLeftovers, nsExec, ping, spawnInNetns, uniqueLabName,
  waitForListen, withLab,
} from './harness.ts';

const skip = canRunLabs() ? false : 'needs root';
const LAN_GW = '198.18.0.1';
const WAN_GW = '198.19.0.1';
const WAN_HOST = '198.19.0.2';
const LAN_HOST = '198.18.0.2';

/** Run the CLI with stdout/stderr captured. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((s: string | Uint8Array) => { stdout += String(s); return true; }) as typeof ow;
  process.stderr.write = ((s: string | Uint8Array) => { stderr += String(s); return true; }) as typeof ew;
  try {
    return { code: await labCommand(argv), stdout, stderr };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

test('lab names are validated', () => {
  for (const ok of ['a', 'lab1', 'abcdefgh', uniqueLabName()]) validateLabName(ok);
  for (const bad of ['', 'A', '1ab', 'abcdefghi', 'a-b', 'a_b', 'lab 1']) {
    assert.throws(() => validateLabName(bad), /invalid lab name/);
  }
});

test('plan: names fit the kernel limits and the RFC 2544 ranges', async () => {
  const p = await makePlan('abcdefgh', 'linux', LAB_UID_FIRST);
  assert.equal(p.hosts.lan.netns, 'mg-abcdefgh-lan');
  assert.equal(p.hosts.wan.netns, 'mg-abcdefgh-wan');
  assert.equal(p.linux?.gwNetns, 'mg-abcdefgh-gw');
  assert.equal(p.hosts.dmz.netns, 'mg-abcdefgh-dmz');
  for (const n of [p.hosts.lan.ifname, p.hosts.wan.ifname, p.hosts.dmz.ifname, p.linux!.lanIfname, p.linux!.wanIfname, p.linux!.dmzIfname]) {
    assert.ok(n.length <= 15, n);
  }
  assert.deepEqual(p.gatewayAddresses, { wan: WAN_GW, lan: LAN_GW, dmz: '198.18.128.1' });
  assert.equal(p.hosts.dmz.gateway, '198.18.128.1');
  assert.equal(p.hosts.lan.gateway, LAN_GW);
  assert.equal(p.hosts.wan.gateway, undefined);
  assert.equal(p.controlSocket, '/run/microgate/labs/abcdefgh/control/control.sock');
  assert.equal((await makePlan('x', 'microgate', LAB_UID_FIRST)).linux, undefined);
});

test('cli: usage errors exit 2, help exits 0', async () => {
  assert.equal((await cli(['--help'])).code, 0);
  for (const sub of ['up', 'down', 'status']) {
    const r = await cli([sub, '--help']);
    assert.equal(r.code, 0, sub);
    assert.match(r.stdout, new RegExp(`microgate lab ${sub}`));
  }
  assert.equal((await cli([])).code, 2);
  assert.equal((await cli(['frobnicate'])).code, 2);
  const bad = await cli(['up', '--name', 'Bad']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^microgate lab: invalid lab name "Bad"/);
  assert.equal((await cli(['up'])).code, 2);
  assert.equal((await cli(['up', '--name', 'x', '--gateway', 'bsd'])).code, 2);
  assert.equal((await cli(['down', '--bogus'])).code, 2);
});

const WAN6 = '2001:db8:ff::2';
const LAN6 = '2001:db8:0:1::2';

test('linux gateway lab', { skip }, async (t) => {
  const name = uniqueLabName();
  await withLab({ name, gateway: 'linux' }, async (lab) => {
    const lan = lab.hosts.lan.netns;
    const wan = lab.hosts.wan.netns;

    await t.test('lab info, state and status', async () => {
      assert.deepEqual(lab, {
        name, gateway: 'linux',
        hosts: {
          wan: { netns: `mg-${name}-wan`, ip: WAN_HOST, ip6: WAN6 }, lan: { netns: `mg-${name}-lan`, ip: LAN_HOST, ip6: LAN6 },
          dmz: { netns: `mg-${name}-dmz`, ip: '198.18.128.2', ip6: '2001:db8:0:80::2' },
        },
        gatewayAddresses: { wan: WAN_GW, lan: LAN_GW, dmz: '198.18.128.1' },
        gatewayAddresses6: { wan: '2001:db8:ff::1', lan: '2001:db8:0:1::1', dmz: '2001:db8:0:80::1' },
        forwards: [
          { proto: 'tcp', from: `${WAN_GW}:80`, to: '198.18.128.2:8080' },
          { proto: 'udp', from: `${WAN_GW}:53`, to: '198.18.128.2:5353' },
        ],
        services: [],
        control: null,
        components: [],
      });
      const st = JSON.parse(await readFile(statePath(name), 'utf8')) as LabState;
      assert.equal(st.status, 'up');
      assert.equal(st.gateway, 'linux');
      assert.deepEqual(st.namespaces, [`mg-${name}-wan`, `mg-${name}-lan`, `mg-${name}-dmz`, `mg-${name}-gw`]);
      assert.deepEqual(st.interfaces, [`mg${name}w`, `mg${name}l`, `mg${name}d`, `mg${name}W`, `mg${name}L`, `mg${name}D`]);
      assert.ok(existsSync(st.logFile));
      const s = (await labStatus()).find(l => l.name === name);
      assert.equal(s?.status, 'up');
      const js = await cli(['status', '--json']);
      assert.equal(js.code, 0);
      assert.ok((JSON.parse(js.stdout) as { name: string }[]).some(l => l.name === name));
    });

    await t.test('a second lab up with the same name is refused and harms nothing', async () => {
      await assert.rejects(labUp({ name, gateway: 'linux' }), /exists/);
      const r = await cli(['up', '--name', name, '--gateway', 'linux']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^microgate lab: lab \w+ exists/);
      assert.ok((await ping(lan, LAN_GW)).ok);
    });

    await t.test('forwarding: off in the hosts, on in the gateway', async () => {
      assert.equal(await sysctlGet(lan, 'net.ipv4.ip_forward'), '0');
      assert.equal(await sysctlGet(wan, 'net.ipv4.ip_forward'), '0');
      assert.equal(await sysctlGet(`mg-${name}-gw`, 'net.ipv4.ip_forward'), '1');
      const routes = (await ip(['-4', 'route', 'show'], wan)).stdout;
      assert.doesNotMatch(routes, /default/, 'the wan host has only its connected route');
    });

    await t.test('lan host pings both gateway addresses', async () => {
      const a = await ping(lan, LAN_GW, { count: 2 });
      assert.ok(a.ok, a.stdout + a.stderr);
      const b = await ping(lan, WAN_GW, { count: 2 });
      assert.ok(b.ok, b.stdout + b.stderr);
    });

    await t.test('lan host pings the wan host; wan host pings its gateway', async () => {
      const a = await ping(lan, WAN_HOST, { count: 3 });
      assert.ok(a.ok, a.stdout + a.stderr);
      assert.match(a.stdout, /ttl=63/, 'one hop');
      const b = await ping(wan, WAN_GW);
      assert.ok(b.ok, b.stdout + b.stderr);
    });

    await t.test('TTL expiry: the gateway answers time exceeded from 198.18.0.1', async () => {
      const r = await ping(lan, WAN_HOST, { count: 1, ttl: 1 });
      assert.equal(r.received, 0);
      assert.ok(r.errors.some(l => l.startsWith(`From ${LAN_GW} `) && /Time to live exceeded/.test(l)), r.stdout);
    });

    await t.test('masquerade: the wan host sees lan connections from 198.19.0.1', async () => {
      const r = await iperf3Pair({ serverNetns: wan, serverIp: WAN_HOST, clientNetns: lan, seconds: 1 });
      assert.equal(r.serverSawPeer, WAN_GW);
      const c = await linuxGatewayCounters((await readState(name)).plan);
      assert.ok(c.masquerade.packets > 0);
    });

    await t.test('new TCP from wan to lan is dropped (and counted)', async () => {
      // Give the wan host a route, so that its SYN reaches the gateway's filter at all.
      await ip(['route', 'add', '198.18.0.0/24', 'via', WAN_GW], wan);
      const listener = spawnInNetns(lan, 'nc', ['-l', '-k', LAN_HOST, '5555']);
      try {
        await waitForListen(lan, 5555);
        const local = await nsExec(lan, 'nc', ['-z', '-w', '2', LAN_HOST, '5555']);
        assert.equal(local.code, 0, 'the listener accepts connections inside the lan');
        const plan = (await readState(name)).plan;
        const before = (await linuxGatewayCounters(plan))['forward-wan-drop'].packets;
        const r = await nsExec(wan, 'nc', ['-z', '-w', '2', LAN_HOST, '5555'], { timeoutMs: 10_000 });
        assert.notEqual(r.code, 0, 'the connection from wan must fail');
        const after = (await linuxGatewayCounters(plan))['forward-wan-drop'].packets;
        assert.ok(after > before, `forward-wan-drop counter ${before} -> ${after}`);
        // And the gateway itself accepts nothing but echo from the wan.
        const g = await nsExec(wan, 'nc', ['-z', '-w', '1', WAN_GW, '22'], { timeoutMs: 10_000 });
        assert.notEqual(g.code, 0);
        assert.ok((await linuxGatewayCounters(plan))['input-wan-drop'].packets > 0);
      } finally {
        await killChild(listener);
        await ip(['route', 'del', '198.18.0.0/24', 'via', WAN_GW], wan).catch(() => {});
      }
    });

    await t.test('IPv6: forwarded, routed (no NAT66), the same policy: lan -> wan opens, wan -> lan is dropped', async () => {
      assert.equal(await sysctlGet(`mg-${name}-gw`, 'net.ipv6.conf.all.forwarding'), '1');
      const a = await ping(lan, WAN6, { count: 2 });
      assert.ok(a.ok, a.stdout + a.stderr);
      assert.match(a.stdout, /ttl=63/, 'one hop');
      const g = await ping(lan, '2001:db8:0:1::1');
      assert.ok(g.ok, g.stdout + g.stderr);
      const r = await iperf3Pair({ serverNetns: wan, serverIp: WAN6, clientNetns: lan, seconds: 1 });
      assert.equal(r.serverSawPeer, LAN6, 'routed: the wan host sees the lan host itself');
      const plan = (await readState(name)).plan;
      const before = (await linuxGatewayCounters(plan))['forward-wan-drop'].packets;
      const w = await ping(wan, LAN6, { count: 1, timeoutS: 1 });
      assert.equal(w.received, 0, 'nothing new from the wan');
      assert.ok((await linuxGatewayCounters(plan))['forward-wan-drop'].packets > before);
    });

    for (const reverse of [false, true]) {
      await t.test(`iperf3 TCP ${reverse ? 'wan -> lan (-R)' : 'lan -> wan'}`, async (st) => {
        const r = await iperf3Pair({ serverNetns: wan, serverIp: WAN_HOST, clientNetns: lan, seconds: 2, reverse });
        st.diagnostic(`iperf3 ${reverse ? '-R' : 'lan->wan'}: ${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ${r.retransmits} retransmits`);
        assert.ok(r.bitsPerSecond > 0);
      });
    }
  });

  const left = await labLeftovers(name);
  assert.deepEqual(left, { namespaces: [], links: [] });
  assert.equal(existsSync(labStateDir(name)), false);
  assert.equal((await labStatus()).some(l => l.name === name), false);
});

async function readState(name: string): Promise<LabState> {
  return JSON.parse(await readFile(statePath(name), 'utf8')) as LabState;
}

test('withLab tears the lab down when the test body throws', { skip }, async () => {
  const name = uniqueLabName();
  await assert.rejects(withLab({ name, gateway: 'linux' }, async () => { throw new Error('boom'); }), /boom/);
  assert.deepEqual(await labLeftovers(name), { namespaces: [], links: [] });
  assert.equal(existsSync(labStateDir(name)), false);
});

test('lab up refuses when parts of the lab exist, and lab down removes a half-built lab', { skip }, async () => {
  const name = uniqueLabName();
  try {
    // Half-built: one namespace, a process running in it, a stray link in the root namespace, no state.
    await createNetns(`mg-${name}-wan`);
    await ip(['link', 'add', `mg${name}W`, 'type', 'veth', 'peer', 'name', `mg${name}L`]);
    const sleeper = spawnInNetns(`mg-${name}-wan`, 'sleep', ['60']);
    const status = (await labStatus()).find(l => l.name === name);
    assert.equal(status?.status, 'orphaned');

    await assert.rejects(labUp({ name, gateway: 'linux' }), /exists/);
    assert.deepEqual(await labLeftovers(name), { namespaces: [`mg-${name}-wan`], links: [`mg${name}L`, `mg${name}W`] },
      'a refused lab up removes nothing');

    const exited = new Promise(r => sleeper.once('exit', r));
    const r = await cli(['down', '--name', name]);
    assert.equal(r.code, 0, r.stderr);
    await exited;
    assert.deepEqual(await labLeftovers(name), { namespaces: [], links: [] });
    assert.equal((await cli(['down', '--name', name])).code, 0, 'lab down is idempotent');
  } finally {
    await labDown(name).catch(() => {});
  }
});
