// `microgate ha bench`: what the HA pair (issue 19, `lab up --ha`) costs and
// how fast it fails over, measured in one lab:
// Failover first, then the sync traffic (its UDP connections would fill the
// lan host's per-source conntrack quota, and the pings after takeovers fail).
// - failover: N takeovers (default 20), each a SIGKILL of the active's init
//   (`--kind kill`) or its lan TAP set down (`--kind link`); the time from
//   the fault to the standby's control API saying master (polled every
//   10 ms), and whether the lan host still reached the wan host afterwards;
//   the killed gateway is started again (or its link set up) and waited for
//   (its keepalived BACKUP) before the next. Median, p90, max.
// - sync traffic: new UDP connections at a set rate (default 1000 per
//   second, each its own source port, lan host -> wan host) for some seconds;
//   the active's conn-sync records and frames sent, its sync driver's bytes,
//   per second, and the same idle before it (heartbeats, periodic resyncs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { labDown, labRestartHaGateway, labUp, readLabState } from '../lab/lab.ts';
import type { HaGatewayPlan, LabPlan } from '../lab/lab-plan.ts';
import { haStatusOf } from '../lab/ha-lab.ts';
import { ip, nsExec } from '../lab/netns.ts';
import { ControlClient } from '../sys/control-client.ts';
import { sampleCpu } from './procstat.ts';

export const HA_BENCH_HELP = `Usage: microgate ha bench [--takeovers N] [--kind kill|link] [--rate N] [--seconds S] [--name LAB] [--json]

Builds an HA lab (lab up --ha), measures, removes it:
  failover       N takeovers (default 20): SIGKILL of the active's init (--kind kill, default)
                 or its lan TAP set down (--kind link); ms from the fault to the standby's
                 control API saying master; median, p90, max
  sync traffic   new UDP connections at --rate per second (default 1000) for --seconds
                 (default 5) through the active: the sync link's records, frames and bytes
                 per second, and the same while idle

Needs root and what scripts/setup.sh installs (keepalived, python3, curl).`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends `rate` UDP datagrams a second for `seconds`, each from a new socket (a new source port: a new connection). */
const FLOOD = `
import socket, sys, time
dst = (sys.argv[1], 9); rate = int(sys.argv[2]); secs = float(sys.argv[3])
t0 = time.time(); n = 0
while time.time() - t0 < secs:
    due = int((time.time() - t0) * rate)
    while n < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', dst); s.close(); n += 1
    time.sleep(0.001)
print(n)
`;

export interface HaBenchResult {
  kind: 'kill' | 'link';
  failoverMs: number[];
  median: number;
  p90: number;
  max: number;
  reachableAfter: number;
  /** The first failed ping's error, if any. */
  pingError?: string;
  sync: {
    rate: number;
    seconds: number;
    sent: number;
    idle: PerSecond;
    load: PerSecond;
    /** load minus idle, per 1,000 new connections per second. */
    per1000: PerSecond;
    /** CPU of the sync's processes during the load, % of one core: the active's router, conn-sync, sync driver; the standby's. */
    cpuPct: Record<string, number>;
  };
}

interface PerSecond { records: number; resynced: number; frames: number; bytes: number }

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function role(g: HaGatewayPlan): Promise<string | undefined> {
  return (await haStatusOf(g, 500))?.role as string | undefined;
}

async function vrrpState(g: HaGatewayPlan): Promise<string> {
  try {
    return readFileSync(join(g.stateDir, 'vrrp-events'), 'utf8').trim().split('\n').at(-1)?.split(' ')[1] ?? '';
  } catch {
    return '';
  }
}

async function waitUntil(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function syncCounters(g: HaGatewayPlan): Promise<PerSecond> {
  const all = await new ControlClient({ socket: g.controlSocket }, 3000).get<Record<string, Record<string, number>>>('/counters');
  const cs = all['conn-sync'] ?? {};
  return { records: cs['pair.records-sent'] ?? 0, resynced: cs['pair.records-resynced'] ?? 0, frames: cs['pair.frames-sent'] ?? 0, bytes: all['drv-sync']?.['tx.bytes'] ?? 0 };
}

function rate(a: PerSecond, b: PerSecond, s: number): PerSecond {
  const r = (x: number) => Math.round((x / s) * 10) / 10;
  return { records: r(b.records - a.records), resynced: r(b.resynced - a.resynced), frames: r(b.frames - a.frames), bytes: r(b.bytes - a.bytes) };
}

export async function haBench(opts: { takeovers: number; kind: 'kill' | 'link'; rate: number; seconds: number; name: string; log: (s: string) => void }): Promise<HaBenchResult> {
  const { name, log } = opts;
  try {
    const info = await labUp({ name, ha: true });
    const st = await readLabState(name);
    if (st?.plan.ha === undefined) throw new Error('the lab has no HA plan');
    const plan: LabPlan = st.plan;
    const gws = plan.ha!.gateways;
    const lan = info.hosts.lan.netns;
    const wanIp = info.hosts.wan.ip;
    const masterOf = async (): Promise<HaGatewayPlan> => ((await role(gws[0])) === 'master' ? gws[0] : gws[1]);

    // Failover first: the sync measurement's thousands of UDP connections would fill the lan host's
    // conntrack per-source quota (4096) for a minute, and the pings after each takeover would be refused.
    let m = await masterOf();
    const failoverMs: number[] = [];
    let reachableAfter = 0;
    let pingError: string | undefined;
    for (let i = 0; i < opts.takeovers; i++) {
      m = await masterOf();
      const s = m === gws[0] ? gws[1] : gws[0];
      await waitUntil(`gateway ${s.n}'s keepalived BACKUP`, 20_000, async () => (await vrrpState(s)) === 'BACKUP');
      const pid = (await readLabState(name))!.processes.find((p) => p.name === `init-${m.n}`)!.pid;
      const t = performance.now();
      if (opts.kind === 'kill') process.kill(pid, 'SIGKILL');
      else await ip(['link', 'set', m.taps.lan, 'down'], plan.hosts.lan.netns);
      for (;;) {
        if ((await role(s)) === 'master') break;
        if (performance.now() - t > 10_000) throw new Error(`takeover ${i + 1}: gateway ${s.n} not master after 10 s`);
        await sleep(10);
      }
      const ms = Math.round(performance.now() - t);
      failoverMs.push(ms);
      try {
        await nsExec(lan, 'ping', ['-n', '-q', '-c', '1', '-W', '2', wanIp], { timeoutMs: 5000 });
        reachableAfter++;
      } catch (e) {
        if (pingError === undefined) pingError = (e as Error).message.split('\n')[0];
      }
      log(`takeover ${i + 1}/${opts.takeovers} (${opts.kind}): gateway ${s.n} master after ${ms} ms`);
      if (opts.kind === 'kill') await labRestartHaGateway(name, m.n);
      else await ip(['link', 'set', m.taps.lan, 'up'], plan.hosts.lan.netns);
    }
    // Sync traffic: idle, then under new connections.
    m = await masterOf();
    await sleep(2000);
    const i0 = await syncCounters(m);
    await sleep(opts.seconds * 1000);
    const i1 = await syncCounters(m);
    const idle = rate(i0, i1, opts.seconds);
    const l0 = await syncCounters(m);
    const sb = m === gws[0] ? gws[1] : gws[0];
    const pids = async (g: HaGatewayPlan, side: string) => (await new ControlClient({ socket: g.controlSocket }, 3000).get<{ components: { name: string; pid: number }[] }>('/status')).components
      .filter((c) => ['router', 'conn-sync', 'drv-sync'].includes(c.name)).map((c) => ({ name: `${side} ${c.name}`, pid: c.pid }));
    const cpu = sampleCpu([...await pids(m, 'active'), ...await pids(sb, 'standby')]);
    const t0 = performance.now();
    const flood = await nsExec(lan, 'python3', ['-c', FLOOD, wanIp, String(opts.rate), String(opts.seconds)], { timeoutMs: (opts.seconds + 30) * 1000 });
    const l1 = await syncCounters(m);
    const cpuPct = Object.fromEntries(cpu().units.map((u) => [u.name, Math.round(u.cpuPct * 10) / 10]));
    const secs = (performance.now() - t0) / 1000;
    const load = rate(l0, l1, secs);
    const sent = Number(flood.stdout.trim());
    const k = 1000 / (sent / secs);
    const per1000 = {
      records: Math.round((load.records - idle.records) * k), resynced: Math.round((load.resynced - idle.resynced) * k),
      frames: Math.round((load.frames - idle.frames) * k), bytes: Math.round((load.bytes - idle.bytes) * k),
    };
    log(`sync: idle ${idle.frames} frames/s ${idle.bytes} B/s; ${Math.round(sent / secs)} new connections/s: ${load.records} records/s (${load.resynced} of them resync), ${load.frames} frames/s, ${load.bytes} B/s`);
    log(`cpu during the load (% of one core): ${Object.entries(cpuPct).map(([k, v]) => `${k} ${v}`).join(', ')}`);

    return {
      kind: opts.kind, failoverMs, median: quantile(failoverMs, 0.5), p90: quantile(failoverMs, 0.9), max: Math.max(...failoverMs), reachableAfter, ...(pingError === undefined ? {} : { pingError }),
      sync: { rate: opts.rate, seconds: opts.seconds, sent, idle, load, per1000, cpuPct },
    };
  } finally {
    await labDown(name);
  }
}

export async function haBenchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      takeovers: { type: 'string' }, kind: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' }, name: { type: 'string' },
      json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HA_BENCH_HELP}\n`);
    return 0;
  }
  const int = (v: string | undefined, def: number, min: number, max: number, what: string): number => {
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${what}: an integer from ${min} to ${max}`);
    return n;
  };
  const kind = values.kind ?? 'kill';
  if (kind !== 'kill' && kind !== 'link') throw new Error('--kind: kill or link');
  const r = await haBench({
    takeovers: int(values.takeovers, 20, 1, 1000, 'takeovers'), kind, rate: int(values.rate, 1000, 1, 100_000, 'rate'),
    seconds: int(values.seconds, 5, 1, 600, 'seconds'), name: values.name ?? 'habench',
    log: (s) => { if (values.json !== true) process.stdout.write(`${s}\n`); },
  });
  if (values.json === true) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    process.stdout.write(`failover (${r.kind}, ${r.failoverMs.length} takeovers): median ${r.median} ms, p90 ${r.p90} ms, max ${r.max} ms; lan -> wan ping answered after ${r.reachableAfter} of them${r.pingError === undefined ? '' : ` (first failure: ${r.pingError})`}\n`);
    process.stdout.write(`sync per 1,000 new connections/s: ${r.sync.per1000.records} records/s (${r.sync.per1000.resynced} resync), ${r.sync.per1000.frames} frames/s, ${r.sync.per1000.bytes} B/s (${Math.round(r.sync.per1000.bytes * 8 / 1000)} kbit/s) above idle (${r.sync.idle.bytes} B/s)\n`);
    process.stdout.write(`cpu at ${Math.round(r.sync.sent / r.sync.seconds)} new connections/s (% of one core): ${Object.entries(r.sync.cpuPct).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
  }
  return 0;
}
