// The HA pair (issue 19, `lab up --ha`): two microgate gateways between the
// same hosts, keepalived electing the active one. With a long-lived TCP
// session (an echo client in the lan, its server on the wan host, through
// the NAT), a second one over IPv6 (routed), and iperf3 running through the
// active gateway:
// - SIGKILL of the active's init: the standby is master within 2 s, both TCP
//   sessions go on (the same connections, no reconnect), iperf3 completes;
// - the killed gateway comes back as backup and gets the table;
// - a link down on the active (its lan TAP): the standby takes over within 2 s;
// - the sync link down: counted and logged on both sides (degraded), and
//   still exactly one master (no split brain forwarding twice);
// - a forged sync frame on the link is dropped and counted.
// The echo client and server, iperf3 are tracked by PID and stopped, the lab
// torn down, in finally.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labDown, labRestartHaGateway, labUp, readLabState } from '../../src/lab/lab.ts';
import type { HaGatewayPlan, LabPlan } from '../../src/lab/lab-plan.ts';
import { haStatusOf } from '../../src/lab/ha-lab.ts';
import { ip, nsExec } from '../../src/lab/netns.ts';
import { ControlClient } from '../../src/sys/control-client.ts';
import { ECHO_CLIENT, ECHO_SERVER, canRunLabs, killChild, spawnInNetns, uniqueLabName, waitForListen } from './harness.ts';

// A forged pair frame: broadcast, EtherType 0x88B5, a well-formed header for 1 record, a tag of zeros.
const FORGE = `
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((sys.argv[1], 0))
now = int(time.time() * 1000)
hdr = b'MGCS' + bytes([1, 0]) + struct.pack('>HQQIIQ', 1, now, 1 << 40, 1, 2, now)
s.send(b'\\xff' * 6 + bytes.fromhex('026d00000063') + b'\\x88\\xb5' + hdr + bytes(40) + bytes(32))
`;

function collect(c: ChildProcess): () => string {
  let out = '';
  c.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  c.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return () => out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function role(g: HaGatewayPlan): Promise<string | undefined> {
  return (await haStatusOf(g, 500))?.role as string | undefined;
}

/** Poll until gateway g is master; ms from t0. */
async function masterAfter(g: HaGatewayPlan, t0: number, limitMs: number): Promise<number> {
  for (;;) {
    if ((await role(g)) === 'master') return performance.now() - t0;
    if (performance.now() - t0 > limitMs) throw new Error(`gateway ${g.n} not master ${limitMs} ms after the fault`);
    await sleep(20);
  }
}

/** Wait until gateway g's keepalived last reported `want` (its notify script logs each state). */
async function vrrpState(g: HaGatewayPlan, want: string, limitMs: number): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    let last = '';
    try {
      last = readFileSync(join(g.stateDir, 'vrrp-events'), 'utf8').trim().split('\n').at(-1)?.split(' ')[1] ?? '';
    } catch { /* not yet */ }
    if (last === want) return;
    if (performance.now() - t0 > limitMs) throw new Error(`keepalived of gateway ${g.n} is ${last || 'silent'}, not ${want}, after ${limitMs} ms`);
    await sleep(100);
  }
}

async function counters(g: HaGatewayPlan, component: string): Promise<Record<string, number>> {
  const all = await new ControlClient({ socket: g.controlSocket }, 3000).get<Record<string, Record<string, number>>>('/counters');
  return all[component] ?? {};
}

/** The largest gap between echoes (ms) after time t (s), and how many came after it. */
function echoGap(out: string, afterS: number): { gapMs: number; after: number } {
  const ts = out.split('\n').filter((l) => l.startsWith('echo ')).map((l) => Number(l.split(' ')[2]));
  let gap = 0;
  let after = 0;
  for (let i = 1; i < ts.length; i++) {
    if (ts[i] < afterS) continue;
    after++;
    gap = Math.max(gap, ts[i] - ts[i - 1]);
  }
  return { gapMs: Math.round(gap * 1000), after };
}

test('HA pair: takeover on SIGKILL of init and on a link down keeps a TCP session and an IPv6 one; the sync link down is degraded, not split; forged sync frames are dropped', { skip: !canRunLabs() && 'needs root', timeout: 170_000 }, async () => {
  const name = uniqueLabName();
  const kids: ChildProcess[] = [];
  try {
    const info = await labUp({ name, ha: true });
    const st = await readLabState(name);
    assert.ok(st?.plan.ha);
    const plan: LabPlan = st.plan;
    const [g1, g2] = plan.ha!.gateways;
    let master = (await role(g1)) === 'master' ? g1 : g2;
    let standby = master === g1 ? g2 : g1;
    assert.equal(await role(standby), 'backup');
    const wan = info.hosts.wan;
    assert.ok(wan.ip6 !== undefined && info.hosts.lan.ip6 !== undefined, 'the HA lab has IPv6 on lan and wan');
    kids.push(spawnInNetns(wan.netns, 'python3', ['-c', ECHO_SERVER, wan.ip]));
    kids.push(spawnInNetns(wan.netns, 'python3', ['-c', ECHO_SERVER, wan.ip6]));
    await waitForListen(wan.netns, 7777);
    await sleep(500); // the other of the two servers
    const client = spawnInNetns(info.hosts.lan.netns, 'python3', ['-c', ECHO_CLIENT, wan.ip, '60', '0.05']);
    kids.push(client);
    const out = collect(client);
    const client6 = spawnInNetns(info.hosts.lan.netns, 'python3', ['-c', ECHO_CLIENT, wan.ip6, '60', '0.05']);
    kids.push(client6);
    const out6 = collect(client6);
    const iperfServer = spawnInNetns(wan.netns, 'iperf3', ['-s', '-1', '-B', wan.ip, '-p', '5301']);
    kids.push(iperfServer);
    await waitForListen(wan.netns, 5301);
    await sleep(1500);
    assert.match(out(), /connected/);
    assert.match(out6(), /connected/);
    // The standby holds the sessions (its router imported them from the sync link).
    const sb = await counters(standby, 'router');
    assert.ok((sb['sync.imported'] ?? 0) >= 2, `the standby's router imported connections (${sb['sync.imported']})`);

    // 1. SIGKILL of the active's init, iperf3 running.
    const iperf = nsExec(info.hosts.lan.netns, 'iperf3', ['-c', wan.ip, '-p', '5301', '-t', '6', '-b', '200M', '--json'], { timeoutMs: 30_000 })
      .then((r) => ({ code: 0, stdout: r.stdout }), (e: Error & { stdout?: string }) => ({ code: 1, stdout: e.stdout ?? String(e) }));
    await sleep(2000);
    const killedPid = st.processes.find((p) => p.name === `init-${master.n}`)!.pid;
    const tKill = Date.now() / 1000;
    const t0 = performance.now();
    process.kill(killedPid, 'SIGKILL');
    const failover1 = await masterAfter(standby, t0, 5000);
    const ip3 = await iperf;
    assert.equal(ip3.code, 0, `iperf3 completed through the takeover: ${ip3.stdout.slice(0, 300)}`);
    const ipj = JSON.parse(ip3.stdout) as { end: { sum_received: { bytes: number } }; intervals: { sum: { bytes: number } }[] };
    const lastIntervals = ipj.intervals.slice(-2).map((i) => i.sum.bytes);
    assert.ok(lastIntervals.every((b) => b > 0), `iperf3 resumed: bytes of its last intervals ${lastIntervals.join(', ')}`);
    await sleep(1500);
    const g1gap = echoGap(out(), tKill - 0.2);
    assert.ok(!/closed/.test(out()), `the TCP session survived the SIGKILL: ${out().split('\n').slice(-3).join(' | ')}`);
    assert.ok(g1gap.after > 10, 'echoes continue after the takeover');
    const g1gap6 = echoGap(out6(), tKill - 0.2);
    assert.ok(!/closed/.test(out6()), `the IPv6 TCP session survived the SIGKILL: ${out6().split('\n').slice(-3).join(' | ')}`);
    assert.ok(g1gap6.after > 10, 'IPv6 echoes continue after the takeover');
    [master, standby] = [standby, master];

    // 2. The killed gateway comes back as backup and gets the table.
    await labRestartHaGateway(name, standby.n);
    const back = performance.now();
    for (;;) {
      const s = await haStatusOf(standby);
      const pair = (s?.connSync as { entries?: number; pair?: { link?: string } } | undefined);
      if (s?.role === 'backup' && pair?.pair?.link === 'up' && (pair.entries ?? 0) >= 1) break;
      if (performance.now() - back > 15_000) throw new Error(`the restarted gateway did not sync: ${JSON.stringify(s)}`);
      await sleep(200);
    }
    assert.equal(await role(master), 'master', 'it stays backup (nopreempt)');
    // ... and its keepalived has left FAULT (its liveness TAP is back, its health check passes): it can take over again.
    await vrrpState(standby, 'BACKUP', 10_000);

    // 3. A link down on the active: its lan TAP goes down at the bridge.
    const tLink = Date.now() / 1000;
    const t1 = performance.now();
    await ip(['link', 'set', master.taps.lan, 'down'], plan.hosts.lan.netns);
    const failover2 = await masterAfter(standby, t1, 5000);
    await sleep(1500);
    const g2gap = echoGap(out(), tLink - 0.2);
    assert.ok(!/closed/.test(out()), 'the TCP session survived the link down');
    assert.ok(g2gap.after > 10);
    const g2gap6 = echoGap(out6(), tLink - 0.2);
    assert.ok(!/closed/.test(out6()), 'the IPv6 TCP session survived the link down');
    assert.ok(g2gap6.after > 10);
    await ip(['link', 'set', master.taps.lan, 'up'], plan.hosts.lan.netns);
    [master, standby] = [standby, master];
    for (let i = 0; (await role(standby)) !== 'backup'; i++) {
      if (i > 50) throw new Error('the gateway whose link came back did not become backup');
      await sleep(100);
    }

    // 4. The sync link down: degraded on both sides, counted and logged, still one master.
    const downBefore = (await counters(master, 'conn-sync'))['pair.down'] ?? 0;
    await ip(['link', 'set', master.taps.sync, 'down'], plan.ha!.syncNetns);
    await sleep(2500);
    const [sm, ss] = await Promise.all([haStatusOf(master), haStatusOf(standby)]);
    const link = (s: Record<string, unknown> | undefined) => ((s?.connSync as { pair?: { link?: string } }).pair?.link);
    assert.equal(link(sm), 'down');
    assert.equal(link(ss), 'down');
    assert.equal(sm?.role, 'master');
    assert.equal(ss?.role, 'backup', 'no second master: the sync link does not elect');
    assert.equal((await counters(master, 'conn-sync'))['pair.down'], downBefore + 1);
    const rb = await counters(standby, 'router');
    assert.equal((await haStatusOf(standby))?.router && ((await haStatusOf(standby))?.router as { role: string }).role, 'backup');
    const echoesBefore = echoGap(out(), 0).after;
    await sleep(1000);
    assert.ok(echoGap(out(), 0).after > echoesBefore + 10, 'traffic flows through the one master meanwhile');
    assert.ok(((await counters(standby, 'router'))['drop.ha-backup'] ?? 0) >= (rb['drop.ha-backup'] ?? 0), 'the backup forwards nothing');
    await ip(['link', 'set', master.taps.sync, 'up'], plan.ha!.syncNetns);

    // 5. A forged sync frame (a header that parses, a tag that does not verify) on the link.
    await sleep(1000);
    const forgedBefore = (await counters(standby, 'conn-sync'))['drop.pair-forged'] ?? 0;
    await nsExec(plan.ha!.syncNetns, 'python3', ['-c', FORGE, plan.ha!.syncBridge], { timeoutMs: 5000 });
    await sleep(300);
    const forgedAfter = (await counters(standby, 'conn-sync'))['drop.pair-forged'] ?? 0;
    assert.equal(forgedAfter, forgedBefore + 1, 'the forged frame is dropped and counted');

    // The sessions are still the first ones.
    for (const o of [out(), out6()]) {
      assert.ok(!/closed/.test(o));
      assert.equal(o.split('\n').filter((l) => l === 'connected').length, 1);
    }
    process.stdout.write(`# failover: SIGKILL of init ${Math.round(failover1)} ms (echo gap ${g1gap.gapMs} ms, IPv6 ${g1gap6.gapMs} ms), link down ${Math.round(failover2)} ms (echo gap ${g2gap.gapMs} ms, IPv6 ${g2gap6.gapMs} ms); iperf3 ${Math.round(ipj.end.sum_received.bytes / 1e6)} MB\n`);
    assert.ok(failover1 < 2000, `takeover after SIGKILL within 2 s (${Math.round(failover1)} ms)`);
    assert.ok(failover2 < 2000, `takeover after a link down within 2 s (${Math.round(failover2)} ms)`);
    // The session's pause: the takeover plus TCP's retransmission backoff (RTO 0.2, 0.4, 0.8 s ... doubling).
    assert.ok(g1gap.gapMs < 2000, `the session paused less than 2 s after the SIGKILL (${g1gap.gapMs} ms)`);
    assert.ok(g2gap.gapMs < 3000, `the session paused less than 3 s after the link down (${g2gap.gapMs} ms)`);
  } finally {
    for (const k of kids) await killChild(k);
    await labDown(name);
  }
});
