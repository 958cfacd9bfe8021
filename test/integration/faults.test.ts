// Fault isolation with real faults (issue 9, item 1): a component's own
// uncaught exception, its memory-limit breach (the kernel's OOM killer) and a
// hang, injected through the control API on the component's own thread
// (config `debug: { fault-injection: true }`, src/init/fault.ts), in process
// and thread isolation; then connection state across a restart of the monitor
// and of the tunnel (SIGKILL while a TCP flow runs). Each fault must leave
// every other unit as it was (same PIDs, no restarts), init must restart the
// failed one, and lan -> wan forwarding must resume within about 1 s of the
// restart. Three labs, one per group of tests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { labControl, labDown, labUp, readLabState, type LabUpOptions } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import type { MicrogateLabOptions } from '../../src/lab/microgate-gateway.ts';
import { RHOST } from '../../src/lab/remote-site.ts';
import { LAN_HOST } from '../../src/lab/lab-plan.ts';
import { run } from '../../src/lab/netns.ts';
import { canRunLabs, killChild, nsExec, spawnInNetns, waitForListen } from './harness.ts';

const skip = canRunLabs() ? false : 'needs root (network namespaces)';
const WAN_HOST = '198.19.0.2';
/** Forwarding must resume within about 1 s of the restarted unit reporting "running". */
const RESUME_MS = 1000;

interface Component {
  name: string; unit: string; pid: number; state: string; restarts: number; hangs: number; oomKills: number; lastExit: string;
}

interface Lab { name: string; control: ControlClient; stateDir: string; lan: string; wan: string }

async function startLab(prefix: string, opts: Omit<LabUpOptions, 'name'>): Promise<Lab> {
  const name = `${prefix}${Math.random().toString(36).slice(2, 8)}`;
  try {
    await labUp({ name, ...opts });
  } catch (e) {
    await labDown(name);
    throw e;
  }
  const st = await readLabState(name);
  assert.ok(st !== null);
  return { name, control: labControl(st, 5000), stateDir: st.stateDir, lan: `mg-${name}-lan`, wan: `mg-${name}-wan` };
}

async function status(lab: Lab): Promise<Component[]> {
  return (await lab.control.get<{ components: Component[] }>('/status', 3000)).components;
}

async function reports(lab: Lab): Promise<{ name: string; status: any; counters: Record<string, number> }[]> {
  return (await lab.control.get<{ components: { name: string; status: any; counters: Record<string, number> }[] }>('/components')).components;
}

async function inject(lab: Lab, component: string, kind: string): Promise<{ status: number; body: any }> {
  const r = await lab.control.request('POST', `/components/${component}/fault`, { kind });
  return { status: r.status, body: JSON.parse(r.body.toString('utf8')) };
}

/** Poll /status until every component of `unit` runs under a pid other than `oldPid`; returns then and that status. */
async function waitRestarted(lab: Lab, unit: string, oldPid: number, timeoutMs = 10000): Promise<{ at: number; now: Component[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await status(lab);
    const mine = now.filter((c) => c.unit === unit);
    if (mine.length > 0 && mine.every((c) => c.state === 'running' && c.pid !== oldPid)) return { at: Date.now(), now };
    if (Date.now() > deadline) throw new Error(`${unit} not restarted within ${timeoutMs} ms: ${JSON.stringify(mine)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Ping every 50 ms until the first answer (at most `deadlineS`); returns when it came, or undefined. */
async function firstAnswer(netns: string, ip: string, deadlineS = 5): Promise<number | undefined> {
  const r = await nsExec(netns, 'ping', ['-n', '-c', '1', '-i', '0.05', '-W', '1', '-w', String(deadlineS), ip], { timeoutMs: (deadlineS + 5) * 1000 });
  return r.code === 0 ? Date.now() : undefined;
}

/** Every component outside `unit` is as it was: same pid, no restart, running. */
function assertOthersUntouched(before: Component[], after: Component[], unit: string): void {
  for (const b of before.filter((c) => c.unit !== unit)) {
    const a = after.find((c) => c.name === b.name);
    assert.ok(a !== undefined, `${b.name} still listed`);
    assert.deepEqual({ name: a.name, pid: a.pid, restarts: a.restarts, state: a.state }, { name: b.name, pid: b.pid, restarts: b.restarts, state: 'running' }, `${b.name} untouched`);
  }
}

/**
 * Inject `kind` into `component`, wait for init to restart its unit, check the
 * others, and time lan -> wan forwarding from the restart. Returns the failed
 * unit's new status entry and the recovery time.
 */
async function faultAndRecover(lab: Lab, component: string, kind: string): Promise<{ entry: Component; resumeMs: number }> {
  const before = await status(lab);
  const target = before.find((c) => c.name === component);
  assert.ok(target !== undefined && target.state === 'running');
  const r = await inject(lab, component, kind);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal(r.body.pid, target.pid);
  const { at, now } = await waitRestarted(lab, target.unit, target.pid);
  const answered = await firstAnswer(lab.lan, WAN_HOST);
  assert.ok(answered !== undefined, `lan -> wan forwarding resumed after ${kind} in ${component}`);
  const resumeMs = answered - at;
  assertOthersUntouched(before, await status(lab), target.unit);
  const entry = now.find((c) => c.name === component)!;
  assert.equal(entry.restarts, target.restarts + 1, `${target.unit} restarted once`);
  process.stdout.write(`# ${kind} in ${component} (unit ${target.unit}): restarted (${entry.lastExit}); lan -> wan answered ${resumeMs} ms after it ran again\n`);
  assert.ok(resumeMs <= RESUME_MS, `forwarding resumed ${resumeMs} ms after the restart (at most ${RESUME_MS})`);
  return { entry, resumeMs };
}

/** An iperf3 TCP flow from `client` to `serverIp` in `server` (-t seconds), running in the background. */
async function startFlow(client: string, server: string, serverIp: string, seconds: number): Promise<{ done: Promise<{ code: number | null; out: string; err: string }>; procs: ChildProcess[] }> {
  const srv = spawnInNetns(server, 'iperf3', ['-s', '-1', '-B', serverIp, '-p', '5201']);
  await waitForListen(server, 5201);
  const cli = spawnInNetns(client, 'iperf3', ['-c', serverIp, '-p', '5201', '-t', String(seconds), '--json']);
  let out = '';
  let err = '';
  cli.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  cli.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  // A flow that never recovers must not hang the test: the client is stopped well after its time.
  const guard = setTimeout(() => void killChild(cli), (seconds + 15) * 1000);
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => cli.once('close', (code) => {
    clearTimeout(guard);
    r({ code, out, err });
  }));
  return { done, procs: [srv, cli] };
}

describe('process isolation: every component its own process (lab with the monitor, memory limits)', { skip }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab('f', { microgate: { faultInjection: true, memoryMb: 192, monitor: {} } });
  });
  after(async () => {
    if (lab !== undefined) await labDown(lab.name);
  });

  test('an uncaught exception in drv-wan (injected with `microgate fault`): only drv-wan restarts, forwarding resumes', async () => {
    const before = await status(lab);
    const drv = before.find((c) => c.name === 'drv-wan')!;
    const cli = await run('node_modules/.bin/node', ['src/cli/main.ts', 'fault', '--lab', lab.name, '--component', 'drv-wan', '--kind', 'throw']);
    assert.match(cli.stdout, new RegExp(`throw injected into drv-wan \\(unit drv-wan, pid ${drv.pid}\\)`));
    const { at, now } = await waitRestarted(lab, 'drv-wan', drv.pid);
    const answered = await firstAnswer(lab.lan, WAN_HOST);
    assert.ok(answered !== undefined);
    assertOthersUntouched(before, await status(lab), 'drv-wan');
    const entry = now.find((c) => c.name === 'drv-wan')!;
    assert.equal(entry.restarts, 1);
    assert.match(entry.lastExit, /^exit code 1 at /);
    const log = readFileSync(join(lab.stateDir, 'gateway.log'), 'utf8');
    assert.match(log, /\[drv-wan\] Error: fault injection: an uncaught exception in component drv-wan/);
    process.stdout.write(`# throw in drv-wan: lan -> wan answered ${answered - at} ms after it ran again\n`);
    assert.ok(answered - at <= RESUME_MS, `forwarding resumed ${answered - at} ms after the restart`);
  });

  test('the router over its memory limit: the kernel kills it, init says "killed: memory limit" and restarts only the router', async () => {
    const { entry } = await faultAndRecover(lab, 'router', 'allocate');
    assert.match(entry.lastExit, /^killed: memory limit /);
    assert.equal(entry.oomKills, 1);
    const log = readFileSync(join(lab.stateDir, 'gateway.log'), 'utf8');
    assert.match(log, /init: router \(pid \d+\) was killed: memory limit .*; restarting in \d+ ms/);
    for (const c of await status(lab)) if (c.name !== 'router') assert.equal(c.oomKills, 0, c.name);
  });

  test('a component making a forbidden system call (ptrace of init) is killed by its seccomp filter and restarted', async () => {
    const { entry } = await faultAndRecover(lab, 'drv-dmz', 'forbidden-call');
    assert.match(entry.lastExit, /^signal SIGSYS \(killed by its seccomp filter: a forbidden system call\) at /);
    const log = readFileSync(join(lab.stateDir, 'gateway.log'), 'utf8');
    assert.match(log, /init: drv-dmz \(pid \d+\) died with signal SIGSYS \(killed by its seccomp filter/);
    assert.doesNotMatch(log, /ptrace of init was (NOT stopped|not killed)/);
  });

  test('a TCP flow survives a SIGKILL of the monitor: same conntrack entry, iperf3 completes, the new monitor sees traffic', async () => {
    const flow = await startFlow(lab.lan, lab.wan, WAN_HOST, 3);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const flows = (): Promise<{ src: string; nat: string; packets: number[] }[]> => reports(lab).then((rs) =>
        (rs.find((c) => c.name === 'router')!.status.connections as { proto: string; dst: string; src: string; nat: string; packets: number[] }[])
          .filter((c) => c.proto === 'tcp' && c.dst === `${WAN_HOST}:5201`));
      const ct = await flows();
      assert.ok(ct.length >= 1, 'the router tracks the flow');
      const before = await status(lab);
      const mon = before.find((c) => c.name === 'monitor')!;
      process.kill(mon.pid, 'SIGKILL');
      await waitRestarted(lab, 'monitor', mon.pid);
      assertOthersUntouched(before, await status(lab), 'monitor');
      const res = await flow.done;
      assert.equal(res.code, 0, `iperf3 completed: ${res.err}`);
      const j = JSON.parse(res.out) as { error?: string; end: { sum_received: { bytes: number } } };
      assert.equal(j.error, undefined);
      assert.ok(j.end.sum_received.bytes > 0);
      // The same connections (source port and NAT mapping), with packets counted after the kill.
      const later = await flows();
      for (const c of ct) {
        const l = later.find((x) => x.src === c.src && x.nat === c.nat);
        assert.ok(l !== undefined, `conntrack entry ${c.src} -> ${c.nat} kept`);
        assert.ok(l.packets[0] + l.packets[1] >= c.packets[0] + c.packets[1]);
      }
      const data = ct.reduce((a, c) => (c.packets[0] > a.packets[0] ? c : a));
      const dataLater = later.find((x) => x.src === data.src)!;
      assert.ok(dataLater.packets[0] > data.packets[0], 'the data connection carried packets after the kill');
      // The new monitor sees what crosses the router again (pings, in case it came up as the flow ended).
      let seen = 0;
      for (let i = 0; i < 10 && seen === 0; i++) {
        await firstAnswer(lab.lan, WAN_HOST);
        seen = (await reports(lab)).find((c) => c.name === 'monitor')?.counters.packets ?? 0;
        if (seen === 0) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(seen > 0, 'the restarted monitor sees traffic');
      const now = (await status(lab)).find((c) => c.name === 'monitor')!;
      assert.equal(now.restarts, 1);
    } finally {
      for (const p of flow.procs) await killChild(p);
    }
  });
});

describe('thread isolation: the shared host is the unit that fails and restarts', { skip }, () => {
  let lab: Lab;
  before(async () => {
    const mg: MicrogateLabOptions = { faultInjection: true, isolation: 'thread', memoryMb: 64, heartbeatMs: 200 };
    lab = await startLab('g', { microgate: mg });
  });
  after(async () => {
    if (lab !== undefined) await labDown(lab.name);
  });

  test('an uncaught exception on the router\'s thread ends the host; init restarts it; forwarding resumes', async () => {
    const { entry } = await faultAndRecover(lab, 'router', 'throw');
    assert.equal(entry.unit, 'host');
    assert.match(entry.lastExit, /^exit code 70 at /);
    assert.match(readFileSync(join(lab.stateDir, 'gateway.log'), 'utf8'), /host: thread component router crashed: Error: fault injection/);
  });

  test('a thread component over the host\'s memory limit: the kernel kills the host, "killed: memory limit"', async () => {
    const { entry } = await faultAndRecover(lab, 'drv-lan', 'allocate');
    assert.match(entry.lastExit, /^killed: memory limit /);
    assert.equal(entry.oomKills, 1);
  });

  test('a hung thread component silences its host\'s heartbeat: init kills and restarts the host', async () => {
    const { entry } = await faultAndRecover(lab, 'drv-wan', 'hang');
    assert.equal(entry.hangs, 1);
    assert.match(readFileSync(join(lab.stateDir, 'gateway.log'), 'utf8'), /init: host \(pid \d+\) missed 5 heartbeats/);
  });
});

describe('the tunnel: a TCP flow to the remote site survives a SIGKILL of the tunnel; a killed keystore comes back with the key', { skip }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab('h', { microgate: {}, remoteSite: {} });
  });
  after(async () => {
    if (lab !== undefined) await labDown(lab.name);
  });

  test('the restarted tunnel re-handshakes (the keystore kept the key) and the same iperf3 connection completes', async () => {
    const rhost = `mg-${lab.name}-rhost`;
    const flow = await startFlow(lab.lan, rhost, RHOST, 4); // killed after 1 s: 3 s left to restart, handshake and carry data
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const before = await status(lab);
      const tunnel = before.find((c) => c.name === 'tunnel')!;
      const killedAt = Math.floor(Date.now() / 1000);
      process.kill(tunnel.pid, 'SIGKILL');
      await waitRestarted(lab, 'tunnel', tunnel.pid);
      const res = await flow.done;
      assert.equal(res.code, 0, `iperf3 completed: ${res.err}`);
      const j = JSON.parse(res.out) as { error?: string; end: { sum_received: { bytes: number } }; intervals: { sum: { bytes: number } }[] };
      assert.equal(j.error, undefined);
      assert.ok(j.intervals.at(-1)!.sum.bytes > 0, 'data flowed in the last second, after the restart');
      process.stdout.write(`# iperf3 lan -> remote host across the tunnel kill, MB per second: ${j.intervals.map((x) => (x.sum.bytes / 1e6).toFixed(0)).join(' ')}\n`);
      assertOthersUntouched(before, await status(lab), 'tunnel');
      assert.equal((await status(lab)).find((c) => c.name === 'tunnel')?.restarts, 1);
      const t = (await reports(lab)).find((c) => c.name === 'tunnel')!;
      // Counters of the new incarnation: it initiated a handshake and completed it, with the keystore's help.
      assert.ok(t.counters['handshake.initiation-sent'] >= 1, JSON.stringify(t.counters));
      assert.ok(t.counters['handshake.completed'] >= 1, JSON.stringify(t.counters));
      assert.ok(t.counters['keystore.answers'] >= 1, JSON.stringify(t.counters));
      const wg = await nsExec(`mg-${lab.name}-rsite`, 'wg', ['show', `mg${lab.name}g`, 'latest-handshakes']);
      const latest = Number(/\s(\d+)\s*$/m.exec(wg.stdout)?.[1] ?? 0);
      assert.ok(latest >= killedAt, `wireguard-go handshook again after the kill (latest ${latest}, kill ${killedAt})`);
    } finally {
      for (const p of flow.procs) await killChild(p);
    }
  });

  test('a restarted keystore reads the key again (init keeps the fd) and serves the next handshake', async () => {
    const before = await status(lab);
    const ks = before.find((c) => c.name === 'keystore')!;
    process.kill(ks.pid, 'SIGKILL');
    await waitRestarted(lab, 'keystore', ks.pid);
    assertOthersUntouched(before, await status(lab), 'keystore');
    // The tunnel keeps its session keys; a new tunnel has none and must ask the new keystore for a handshake.
    const tunnel = before.find((c) => c.name === 'tunnel')!;
    process.kill(tunnel.pid, 'SIGKILL');
    const { at } = await waitRestarted(lab, 'tunnel', tunnel.pid);
    const answered = await firstAnswer(lab.lan, RHOST, 10);
    assert.ok(answered !== undefined, 'lan -> remote host answers through the tunnel after the keystore and tunnel restarts');
    process.stdout.write(`# new keystore, new tunnel: lan -> remote host answered ${answered - at} ms after the tunnel ran again\n`);
    // The new tunnel's first initiation waits for ARP and goes out when it resolves, not at the 5 s retransmission.
    assert.ok(answered - at < 3000, `answered ${answered - at} ms after the restart: the first initiation was not sent at once`);
    const t = (await reports(lab)).find((c) => c.name === 'tunnel')!;
    assert.ok(t.counters['handshake.completed'] >= 1, JSON.stringify(t.counters));
    assert.ok(t.counters['keystore.answers'] >= 1, JSON.stringify(t.counters));
    const now = await status(lab);
    assert.equal(now.find((c) => c.name === 'keystore')?.state, 'running');
  });

  test('when only the remote site sends, a restarted tunnel handshakes on its first packet for the lost keys', async () => {
    const rhost = `mg-${lab.name}-rhost`;
    assert.ok((await firstAnswer(rhost, LAN_HOST, 10)) !== undefined, 'remote host -> lan works before the kill');
    const before = await status(lab);
    const tunnel = before.find((c) => c.name === 'tunnel')!;
    process.kill(tunnel.pid, 'SIGKILL');
    const { at } = await waitRestarted(lab, 'tunnel', tunnel.pid);
    // Nothing from the lan: wireguard-go keeps sending with the keys the old tunnel had.
    const answered = await firstAnswer(rhost, LAN_HOST, 12);
    assert.ok(answered !== undefined, 'remote host -> lan answers again');
    process.stdout.write(`# peer-only traffic after a tunnel restart: answered ${answered - at} ms after the tunnel ran again\n`);
    const t = (await reports(lab)).find((c) => c.name === 'tunnel')!;
    assert.ok(t.counters['handshake.initiated-on-unknown'] >= 1, JSON.stringify(t.counters));
    // wireguard-go alone would wait for its own timers (~15 s without an answer).
    assert.ok(answered - at < 5000, `answered ${answered - at} ms after the restart`);
    assertOthersUntouched(before, await status(lab), 'tunnel');
  });
});
