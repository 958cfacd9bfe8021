// `microgate trace bench`: what tracing costs.
//   1. In this process: the ns of one tracepoint (begin() + end()) with tracing
//      off, aggregates only and full event rings; the clock alone; and the
//      histogram libraries' per-value cost that decided the design.
//   2. Through a lab: iperf3 throughput lan -> wan with the gateway's tracing
//      off, aggregates only, full event rings, and aggregates timing 1 in 16
//      spans, in the same run, alternating (the order rotates every round),
//      plus the CPU time the gateway's processes spent per GB forwarded
//      (steadier than throughput on a busy machine). Besides the medians of
//      each mode, the median of the per-round differences to "off" (each
//      round measures every mode within seconds, so a load that comes and goes
//      on a shared machine affects both sides of a difference alike).
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import hdr from 'hdr-histogram-js';
import { Tracer } from '../trace/tracer.ts';
import type { TraceMode } from '../trace/tracer.ts';
import { bucketOf, BUCKETS } from '../trace/histogram.ts';
import { TraceClient } from '../trace/client.ts';
import { labControl, labDown, labUp, readLabState } from '../lab/lab.ts';
import { pathBench } from './trace-path.ts';
import type { PathResult } from './trace-path.ts';
import { iperf3 } from '../lab/traffic.ts';
import { median, quantile } from './stats.ts';

export const TRACE_BENCH_HELP = `Usage: microgate trace bench [--lab NAME] [--seconds S] [--rounds R] [--modes LIST] [--reverse] [--micro-only] [--json]

Measure what tracing costs:
  micro      ns per tracepoint (begin() + end()) with tracing off / aggregates / events /
             aggregates timing 1 in 16, per chained stage (end() from the previous
             reading), the clock read alone, and per-value cost of the histogram options
  path       CPU ns per packet forwarded in this process by the real router between two
             simulated drivers (src/bench/trace-path.ts), tracing off / aggregates / events
  lab        iperf3 lan -> wan through microgate with tracing off / aggregates / events /
             aggregates timing 1 in 16, alternating in one run (order rotated each round);
             Gbit/s and the gateway's CPU seconds per GB forwarded: the median of each
             mode, and the median over rounds of each mode's difference to "off" in the
             same round. Builds (and removes) its own lab unless --lab.

Options:
  --lab NAME      use this running microgate lab (its tracing mode is restored to aggregates after)
  --seconds S     iperf3 seconds per run (default 5)
  --rounds R      rounds of the modes (default 3)
  --modes LIST    comma-separated subset of off,aggregates,events,aggr-1/16 (default all; off is always run)
  --reverse       wan -> lan instead (iperf3 -R)
  --micro-only    skip the lab part (micro and path only)
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
  /** One stage of a chain: end() from the previous stage's reading (one clock read), aggregates and events. */
  chainedStageNs: { aggregates: number; events: number };
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
  summary: {
    mode: ConfigLabel;
    medianGbitPerS: number;
    minGbitPerS: number;
    maxGbitPerS: number;
    /** Median of this mode against the median of off. */
    vsOffPct: number;
    medianCpuSPerGB: number;
    cpuVsOffPct: number;
    /** Median over rounds of (this mode / off in the same round - 1). */
    pairedVsOffPct: number;
    pairedCpuVsOffPct: number;
    /** Quartiles of the per-round differences (the spread the noise leaves). */
    pairedVsOffIqrPct: [number, number];
    pairedCpuVsOffIqrPct: [number, number];
  }[];
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
      const t0 = tr.begin();
      tr.end(id, t0);
      return i & 1;
    });
  }
  // Four stages in a chain: each end() starts at the next stage from the previous one's reading.
  const chained = (mode: TraceMode): number => {
    const tr = new Tracer({ component: 'bench', mode });
    const ids = [tr.proc('a'), tr.proc('b'), tr.proc('c'), tr.proc('d')];
    return perOp(n / 4, reps, (i) => {
      let t = tr.latest();
      if (t === 0) t = tr.begin();
      t = tr.end(ids[0], t);
      t = tr.end(ids[1], t, i);
      t = tr.end(ids[2], t);
      tr.end(ids[3], t);
      return i & 1;
    }) / 4;
  };
  const chainedStageNs = { aggregates: chained('aggregates'), events: chained('events') };
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
    chainedStageNs: { aggregates: r(chainedStageNs.aggregates), events: r(chainedStageNs.events) },
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

/** The configurations a lab run measures: "off" and the chosen modes (all when none are chosen). */
function benchConfigs(chosen: readonly ConfigLabel[] | undefined): typeof CONFIGS[number][] {
  return CONFIGS.filter((c) => c.label === 'off' || chosen === undefined || chosen.includes(c.label));
}

export async function labBench(o: { lab: string; seconds: number; rounds: number; reverse: boolean; modes?: readonly ConfigLabel[]; log: (l: string) => void }): Promise<LabResult> {
  const st = await readLabState(o.lab);
  if (st === null || st.info === null) throw new Error(`no lab "${o.lab}"`);
  const client = new TraceClient(labControl(st).target);
  const info = st.info;
  const modes = benchConfigs(o.modes);
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
  const pct = (x: number): number => Math.round(x * 1000) / 10;
  const summary = modes.map(({ label: mode }) => {
    const rs = runs.filter((r) => r.mode === mode);
    const g = rs.map((r) => r.gbitPerS);
    const m = median(g);
    const c = median(rs.map((r) => r.cpuSPerGB));
    // Paired: this mode against off of the same round.
    const pg: number[] = [];
    const pc: number[] = [];
    for (const r of rs) {
      const o = off.find((x) => x.round === r.round);
      if (o === undefined) continue;
      pg.push(r.gbitPerS / o.gbitPerS - 1);
      pc.push(r.cpuSPerGB / o.cpuSPerGB - 1);
    }
    return {
      mode,
      medianGbitPerS: m,
      minGbitPerS: Math.min(...g),
      maxGbitPerS: Math.max(...g),
      vsOffPct: pct((m - offG) / offG),
      medianCpuSPerGB: c,
      cpuVsOffPct: pct((c - offC) / offC),
      pairedVsOffPct: pct(median(pg)),
      pairedCpuVsOffPct: pct(median(pc)),
      pairedVsOffIqrPct: [pct(quantile(pg, 0.25)), pct(quantile(pg, 0.75))] as [number, number],
      pairedCpuVsOffIqrPct: [pct(quantile(pc, 0.25)), pct(quantile(pc, 0.75))] as [number, number],
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
      modes: { type: 'string' },
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
  let modes: ConfigLabel[] | undefined;
  if (v.modes !== undefined) {
    const known = new Map<string, ConfigLabel>(CONFIGS.map((c) => [c.label.replace(' ', '-'), c.label]));
    modes = [];
    for (const m of v.modes.split(',')) {
      const l = known.get(m.trim());
      if (l === undefined) {
        process.stderr.write(`microgate trace bench: --modes: unknown mode "${m}"; expected a comma-separated subset of ${[...known.keys()].join(',')}\n`);
        return 2;
      }
      modes.push(l);
    }
  }
  const log = (l: string): void => {
    if (!v.json) process.stdout.write(`${l}\n`);
  };
  const micro = microBench();
  log('tracepoint cost (begin() + end(), in this process; best of 5 x 2M):');
  log(`  tracing off         ${micro.tracepointNs.off.toFixed(1)} ns`);
  log(`  aggregates          ${micro.tracepointNs.aggregates.toFixed(1)} ns`);
  log(`  aggregates + events ${micro.tracepointNs.events.toFixed(1)} ns`);
  log(`  aggregates, 1 in 16 timed ${micro.tracepointNs['aggr 1/16'].toFixed(1)} ns (average)`);
  log(`  one chained stage (end() from the previous reading): aggregates ${micro.chainedStageNs.aggregates.toFixed(1)} ns, aggregates + events ${micro.chainedStageNs.events.toFixed(1)} ns`);
  log(`  (one performance.now() ${micro.clockNs.toFixed(1)} ns; per value: hdr-histogram-js recordValue ${micro.hdrRecordNs.toFixed(1)} ns, own log-linear buckets ${micro.bucketRecordNs.toFixed(1)} ns)`);
  const path: PathResult = pathBench();
  const pn = path.nsPerPacket;
  const vs = (x: number): string => `+${x - pn.off} ns = +${(((x - pn.off) / pn.off) * 100).toFixed(0)}%, ${((x - pn.off) / path.spansPerPacket).toFixed(0)} ns per tracepoint`;
  log(`forwarding path in this process (drivers simulated, the router real; ${path.payload} B UDP, batches of ${path.batch}; CPU ns per packet, median of 7):`);
  log(`  tracing off ${pn.off} ns; aggregates ${pn.aggregates} ns (${vs(pn.aggregates)}); aggregates + events ${pn.events} ns (${vs(pn.events)}); ${path.spansPerPacket} tracepoints per packet`);
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
      log(`iperf3 ${v.reverse ? 'wan -> lan' : 'lan -> wan'}, ${seconds} s per run, ${rounds} rounds of ${benchConfigs(modes).map((c) => c.label).join(' / ')} (rotating):`);
      lab = await labBench({ lab: name, seconds, rounds, reverse: v.reverse === true, modes, log });
    } finally {
      if (own) await labDown(name);
    }
    log('');
    const sg = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;
    const iqr = (q: [number, number]): string => `[${sg(q[0])}, ${sg(q[1])}]`;
    log('mode        median Gbit/s  (min - max)     vs off   gateway CPU s/GB  vs off   paired vs off: Gbit/s [quartiles]     CPU/GB [quartiles]');
    for (const s of lab.summary) {
      log(`${s.mode.padEnd(10)}  ${s.medianGbitPerS.toFixed(2).padStart(12)}  (${s.minGbitPerS.toFixed(2)} - ${s.maxGbitPerS.toFixed(2)})  ${sg(s.vsOffPct).padStart(7)}  ${s.medianCpuSPerGB.toFixed(3).padStart(16)}  ${sg(s.cpuVsOffPct).padStart(6)}  ${sg(s.pairedVsOffPct).padStart(21)} ${iqr(s.pairedVsOffIqrPct).padEnd(16)}  ${sg(s.pairedCpuVsOffPct).padStart(6)} ${iqr(s.pairedCpuVsOffIqrPct)}`);
    }
    log('(paired: the median over rounds of each mode against off in the same round; quartiles of those per-round differences)');
  }
  if (v.json) process.stdout.write(`${JSON.stringify({ micro, path, lab }, null, 2)}\n`);
  return 0;
}
