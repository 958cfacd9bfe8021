// `microgate trace bench`: what tracing costs.
//   1. In this process: the ns of one tracepoint (t() + span()) with tracing
//      off, aggregates only and full event rings; the clock alone; and the
//      histogram libraries' per-value cost that decided the design.
//   2. Through a lab: iperf3 throughput lan -> wan with the gateway's tracing
//      off, aggregates only, full event rings, and aggregates timing 1 in 16
//      spans, in the same run, alternating (the order rotates every round),
//      plus the CPU time the gateway's processes spent per GB forwarded
//      (steadier than throughput on a busy machine).
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import hdr from 'hdr-histogram-js';
import { Tracer } from '../trace/tracer.ts';
import type { TraceMode } from '../trace/tracer.ts';
import { bucketOf, BUCKETS } from '../trace/histogram.ts';
import { TraceClient } from '../trace/client.ts';
import { labDown, labUp, readLabState } from '../lab/lab.ts';
import { iperf3 } from '../lab/traffic.ts';

export const TRACE_BENCH_HELP = `Usage: microgate trace bench [--lab NAME] [--seconds S] [--rounds R] [--reverse] [--micro-only] [--json]

Measure what tracing costs:
  micro      ns per tracepoint (t() + span()) with tracing off / aggregates / events /
             aggregates timing 1 in 16, the clock read alone, and per-value cost of the
             histogram options
  lab        iperf3 lan -> wan through microgate with tracing off / aggregates / events /
             aggregates timing 1 in 16, alternating in one run (order rotated each round);
             Gbit/s and the gateway's CPU seconds per GB forwarded. Builds (and removes)
             its own lab unless --lab.

Options:
  --lab NAME      use this running microgate lab (its tracing mode is restored to aggregates after)
  --seconds S     iperf3 seconds per run (default 5)
  --rounds R      rounds of the three modes (default 3)
  --reverse       wan -> lan instead (iperf3 -R)
  --micro-only    skip the lab part
  --json          print the results as JSON
  -h, --help      this help`;

/** What the lab part compares. */
export const CONFIGS = [
  { label: 'off', mode: 'off', sample: 1 },
  { label: 'aggregates', mode: 'aggregates', sample: 1 },
  { label: 'events', mode: 'events', sample: 1 },
  { label: 'aggr 1/16', mode: 'aggregates', sample: 16 },
] as const satisfies readonly { label: string; mode: TraceMode; sample: number }[];
export type ConfigLabel = typeof CONFIGS[number]['label'];

export interface MicroResult {
  clockNs: number;
  tracepointNs: Record<ConfigLabel, number>;
  hdrRecordNs: number;
  bucketRecordNs: number;
}

export interface LabRun {
  round: number;
  mode: ConfigLabel;
  gbitPerS: number;
  retransmits: number;
  /** CPU seconds (user + system) of the gateway's processes per GB received by iperf3. */
  cpuSPerGB: number;
}

export interface LabResult {
  seconds: number;
  reverse: boolean;
  runs: LabRun[];
  summary: { mode: ConfigLabel; medianGbitPerS: number; minGbitPerS: number; maxGbitPerS: number; vsOffPct: number; medianCpuSPerGB: number; cpuVsOffPct: number }[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 === 1 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** ns per iteration of `body`, best of `reps` runs of `n` iterations, minus an empty loop's. */
function perOp(n: number, reps: number, body: (i: number) => number): number {
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink += body(i);
    const t1 = performance.now();
    best = Math.min(best, ((t1 - t0) * 1e6) / n);
  }
  let base = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink += i & 1;
    const t1 = performance.now();
    base = Math.min(base, ((t1 - t0) * 1e6) / n);
  }
  if (sink === -1) process.stdout.write('');
  return Math.max(0, best - base);
}

export function microBench(n = 2_000_000, reps = 5): MicroResult {
  const tp: Partial<Record<ConfigLabel, number>> = {};
  for (const c of CONFIGS) {
    const tr = new Tracer({ component: 'bench', mode: c.mode, sample: c.sample });
    const id = tr.proc('bench.op');
    tp[c.label] = perOp(n, reps, (i) => {
      const t0 = tr.t();
      tr.span(id, t0);
      return i & 1;
    });
  }
  const clockNs = perOp(n, reps, () => (performance.now() > 0 ? 1 : 0));
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 2 ** 42, numberOfSignificantValueDigits: 3 });
  const hdrRecordNs = perOp(n, reps, (i) => {
    h.recordValue(100 + ((i * 7919) % 100000));
    return 1;
  });
  const counts = new Float64Array(BUCKETS);
  const bucketRecordNs = perOp(n, reps, (i) => {
    counts[bucketOf(100 + ((i * 7919) % 100000))]++;
    return 1;
  });
  const r = (x: number): number => Math.round(x * 10) / 10;
  return {
    clockNs: r(clockNs),
    tracepointNs: { off: r(tp.off!), aggregates: r(tp.aggregates!), events: r(tp.events!), 'aggr 1/16': r(tp['aggr 1/16']!) },
    hdrRecordNs: r(hdrRecordNs),
    bucketRecordNs: r(bucketRecordNs),
  };
}

/** utime + stime of a process, seconds (0 if it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
  } catch {
    return 0;
  }
}

async function gatewayPids(client: TraceClient): Promise<number[]> {
  const s = await client.get<{ components: { pid: number }[] }>('/status');
  return [...new Set(s.components.map((c) => c.pid))].filter((p) => p > 0);
}

export async function labBench(o: { lab: string; seconds: number; rounds: number; reverse: boolean; log: (l: string) => void }): Promise<LabResult> {
  const st = await readLabState(o.lab);
  if (st === null || st.info === null) throw new Error(`no lab "${o.lab}"`);
  const client = new TraceClient(`http://127.0.0.1:${st.controlPort}`);
  const info = st.info;
  const modes = CONFIGS;
  const runs: LabRun[] = [];
  try {
    // One warm-up run, not counted.
    await iperf3({ serverNetns: info.hosts.wan.netns, serverIp: info.hosts.wan.ip, clientNetns: info.hosts.lan.netns, seconds: 1, reverse: o.reverse });
    for (let round = 0; round < o.rounds; round++) {
      for (let k = 0; k < modes.length; k++) {
        const cfg = modes[(k + round) % modes.length];
        const mode = cfg.label;
        await client.mode(cfg.mode, true, cfg.sample);
        const pids = await gatewayPids(client);
        const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
        const r = await iperf3({ serverNetns: info.hosts.wan.netns, serverIp: info.hosts.wan.ip, clientNetns: info.hosts.lan.netns, seconds: o.seconds, reverse: o.reverse });
        const cpu1 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
        const gb = (r.bitsPerSecond * o.seconds) / 8e9;
        const run: LabRun = { round: round + 1, mode, gbitPerS: Math.round(r.bitsPerSecond / 1e7) / 100, retransmits: r.retransmits, cpuSPerGB: Math.round(((cpu1 - cpu0) / gb) * 1000) / 1000 };
        runs.push(run);
        o.log(`round ${run.round} ${mode.padEnd(10)} ${run.gbitPerS.toFixed(2)} Gbit/s, ${run.retransmits} retransmits, gateway CPU ${run.cpuSPerGB.toFixed(3)} s/GB`);
      }
    }
  } finally {
    await client.mode('aggregates', true, 1).catch(() => undefined);
  }
  const off = runs.filter((r) => r.mode === 'off');
  const offG = median(off.map((r) => r.gbitPerS));
  const offC = median(off.map((r) => r.cpuSPerGB));
  const summary = modes.map(({ label: mode }) => {
    const rs = runs.filter((r) => r.mode === mode);
    const g = rs.map((r) => r.gbitPerS);
    const m = median(g);
    const c = median(rs.map((r) => r.cpuSPerGB));
    return {
      mode,
      medianGbitPerS: m,
      minGbitPerS: Math.min(...g),
      maxGbitPerS: Math.max(...g),
      vsOffPct: Math.round(((m - offG) / offG) * 1000) / 10,
      medianCpuSPerGB: c,
      cpuVsOffPct: Math.round(((c - offC) / offC) * 1000) / 10,
    };
  });
  return { seconds: o.seconds, reverse: o.reverse, runs, summary };
}

export async function traceBenchCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      lab: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      reverse: { type: 'boolean' },
      'micro-only': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(`${TRACE_BENCH_HELP}\n`);
    return 0;
  }
  const seconds = Number(v.seconds ?? 5);
  const rounds = Number(v.rounds ?? 3);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
    process.stderr.write('microgate trace bench: --seconds: expected an integer from 1 to 600\n');
    return 2;
  }
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    process.stderr.write('microgate trace bench: --rounds: expected an integer from 1 to 100\n');
    return 2;
  }
  const log = (l: string): void => {
    if (!v.json) process.stdout.write(`${l}\n`);
  };
  const micro = microBench();
  log('tracepoint cost (t() + span(), in this process; best of 5 x 2M):');
  log(`  tracing off         ${micro.tracepointNs.off.toFixed(1)} ns`);
  log(`  aggregates          ${micro.tracepointNs.aggregates.toFixed(1)} ns`);
  log(`  aggregates + events ${micro.tracepointNs.events.toFixed(1)} ns`);
  log(`  aggregates, 1 in 16 timed ${micro.tracepointNs['aggr 1/16'].toFixed(1)} ns (average)`);
  log(`  (one performance.now() ${micro.clockNs.toFixed(1)} ns; per value: hdr-histogram-js recordValue ${micro.hdrRecordNs.toFixed(1)} ns, own log-linear buckets ${micro.bucketRecordNs.toFixed(1)} ns)`);
  let lab: LabResult | undefined;
  if (!v['micro-only']) {
    if (process.getuid?.() !== 0) {
      process.stderr.write('microgate trace bench: the lab part needs root (or use --micro-only)\n');
      return 1;
    }
    const own = v.lab === undefined;
    const name = v.lab ?? `tb${Math.random().toString(36).slice(2, 8)}`;
    try {
      if (own) {
        log(`building lab ${name} ...`);
        await labUp({ name, gateway: 'microgate' });
      }
      log(`iperf3 ${v.reverse ? 'wan -> lan' : 'lan -> wan'}, ${seconds} s per run, ${rounds} rounds of ${CONFIGS.map((c) => c.label).join(' / ')} (rotating):`);
      lab = await labBench({ lab: name, seconds, rounds, reverse: v.reverse === true, log });
    } finally {
      if (own) await labDown(name);
    }
    log('');
    log('mode        median Gbit/s  (min - max)     vs off   gateway CPU s/GB  vs off');
    for (const s of lab.summary) {
      log(`${s.mode.padEnd(10)}  ${s.medianGbitPerS.toFixed(2).padStart(12)}  (${s.minGbitPerS.toFixed(2)} - ${s.maxGbitPerS.toFixed(2)})  ${`${s.vsOffPct >= 0 ? '+' : ''}${s.vsOffPct.toFixed(1)}%`.padStart(7)}  ${s.medianCpuSPerGB.toFixed(3).padStart(16)}  ${`${s.cpuVsOffPct >= 0 ? '+' : ''}${s.cpuVsOffPct.toFixed(1)}%`.padStart(6)}`);
    }
  }
  if (v.json) process.stdout.write(`${JSON.stringify({ micro, lab }, null, 2)}\n`);
  return 0;
}
