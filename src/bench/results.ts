// From the runs to the result: per configuration and metric the median and
// spread of the repetitions; per microgate configuration and metric the ratio
// to the Linux reference on the same cores (the median of the per-repetition
// ratios, each repetition's pair measured back to back); the goals.
import type { BenchConfig, BenchOptions, Plan, TestSpec } from './plan.ts';
import type { CpuUsage } from './procstat.ts';
import { metricsFor, type MetricSpec } from './metrics.ts';
import { ratio, summarize, type Summary } from './stats.ts';
import { evaluateGoals, type Goal } from './goals.ts';
import type { TraceSummary } from './trace.ts';

export interface RunRecord {
  config: string;
  test: string;
  rep: number;
  startedAt: string;
  /** Wall time of the whole run, seconds. */
  seconds: number;
  values: Record<string, number>;
  /** Gateway processes (microgate) and the machine, over the run. */
  cpu?: CpuUsage;
  error?: string;
}

export interface RatioSummary {
  /** Median of the per-repetition ratios microgate / Linux. */
  ratio: number;
  min: number;
  max: number;
  /** The per-repetition ratios, in repetition order (pairs where both runs gave a value). */
  samples: number[];
  /** The Linux configuration compared against. */
  against: string;
}

export interface BenchResult {
  tool: 'microgate bench';
  version: 1;
  /** Base microgate configuration, TCP send / receive, microgate / Linux. null when not measured. */
  tx_ratio: number | null;
  rx_ratio: number | null;
  /** The same over IPv6 (tcp6-tx, tcp6-rx; null when not measured). */
  tx6_ratio: number | null;
  rx6_ratio: number | null;
  base: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: { cpus: number; cpuModel: string; kernel: string; node: string; iperf3: string; sockperf: string };
  options: BenchOptions;
  configs: BenchConfig[];
  /** Lab names used, by lab key (BenchConfig.lab). */
  labs: Record<string, string>;
  tests: TestSpec[];
  metrics: MetricSpec[];
  /** summaries[configId][testId][key] */
  summaries: Record<string, Record<string, Record<string, Summary>>>;
  /** ratios[configId][testId][key], microgate configurations only, ratio metrics only. */
  ratios: Record<string, Record<string, Record<string, RatioSummary>>>;
  goals: Goal[];
  /** Mean CPU per gateway unit / thread over the TCP runs, per configuration and test. */
  cpu: Record<string, Record<string, CpuSummary>>;
  /** Table-1-style breakdowns of the traced configurations, per configuration id. */
  trace: Record<string, TraceSummary[]> | null;
  /** Why tracing was not included, when a configuration asked for it and it could not be. */
  traceNote: string | null;
  failures: { config: string; test: string; rep: number; error: string }[];
  /** The run was interrupted: `runs` holds fewer than `plannedRuns`. */
  interrupted: boolean;
  plannedRuns: number;
  runs: RunRecord[];
}

export interface CpuSummary {
  units: { name: string; cpuPct: number; threads: { comm: string; cpuPct: number }[] }[];
  system: { busyPct: number; userPct: number; systemPct: number; softirqPct: number; cpus: number };
}

function meanOf(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

/** Average the CPU samples of the runs of one configuration and test. */
export function summarizeCpu(records: readonly RunRecord[]): CpuSummary | undefined {
  const withCpu = records.filter((r) => r.cpu !== undefined && r.error === undefined).map((r) => r.cpu as CpuUsage);
  if (withCpu.length === 0) return undefined;
  const names = [...new Set(withCpu.flatMap((c) => c.units.map((u) => u.name)))];
  const units = names.map((name) => {
    const us = withCpu.map((c) => c.units.find((u) => u.name === name)).filter((u) => u !== undefined);
    // Threads are matched by name and rank among threads of that name, busiest first
    // (tids change when a component restarts; worker threads all share one name).
    const sums = new Map<string, number>();
    for (const u of us) {
      const rank = new Map<string, number>();
      for (const t of u.threads) {
        const k = rank.get(t.comm) ?? 0;
        rank.set(t.comm, k + 1);
        const key = k === 0 ? t.comm : `${t.comm}#${k + 1}`;
        sums.set(key, (sums.get(key) ?? 0) + t.cpuPct);
      }
    }
    const threads = [...sums].map(([comm, sum]) => ({ comm, cpuPct: sum / us.length })).sort((x, y) => y.cpuPct - x.cpuPct);
    return { name, cpuPct: meanOf(us.map((u) => u.cpuPct)), threads };
  });
  const sys = withCpu.map((c) => c.system);
  return {
    units,
    system: {
      cpus: sys[0].cpus,
      busyPct: meanOf(sys.map((s) => s.busyPct)),
      userPct: meanOf(sys.map((s) => s.userPct)),
      systemPct: meanOf(sys.map((s) => s.systemPct)),
      softirqPct: meanOf(sys.map((s) => s.softirqPct)),
    },
  };
}

export interface AggregateInput {
  plan: Plan;
  options: BenchOptions;
  runs: RunRecord[];
  labs: Record<string, string>;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: BenchResult['machine'];
  trace: Record<string, TraceSummary[]> | null;
  traceNote: string | null;
  interrupted?: boolean;
}

export function aggregate(a: AggregateInput): BenchResult {
  const { plan, runs } = a;
  const metrics = metricsFor(plan.tests);
  const summaries: BenchResult['summaries'] = {};
  const cpu: BenchResult['cpu'] = {};
  for (const c of plan.configs) {
    summaries[c.id] = {};
    for (const t of plan.tests) {
      const rs = runs.filter((r) => r.config === c.id && r.test === t.id);
      const byKey: Record<string, Summary> = {};
      for (const m of metrics.filter((x) => x.test === t.id)) byKey[m.key] = summarize(rs.map((r) => (r.error ? NaN : r.values[m.key] ?? NaN)));
      summaries[c.id][t.id] = byKey;
      const cs = summarizeCpu(rs);
      if (cs) (cpu[c.id] ??= {})[t.id] = cs;
    }
  }

  const ratios: BenchResult['ratios'] = {};
  for (const c of plan.configs.filter((x) => x.gateway === 'microgate')) {
    const ref = plan.configs.find((x) => x.gateway === 'linux' && x.cores === c.cores);
    if (!ref) continue;
    ratios[c.id] = {};
    for (const t of plan.tests) {
      const out: Record<string, RatioSummary> = {};
      for (const m of metrics.filter((x) => x.test === t.id && x.ratio)) {
        const pairs: number[] = [];
        for (let rep = 1; rep <= a.options.repeat; rep++) {
          const mine = runs.find((r) => r.config === c.id && r.test === t.id && r.rep === rep && !r.error);
          const theirs = runs.find((r) => r.config === ref.id && r.test === t.id && r.rep === rep && !r.error);
          if (mine && theirs) pairs.push(ratio(mine.values[m.key] ?? NaN, theirs.values[m.key] ?? NaN));
        }
        const s = summarize(pairs);
        const fallback = ratio(summaries[c.id][t.id][m.key].median, summaries[ref.id][t.id][m.key].median);
        out[m.key] = Number.isFinite(s.median)
          ? { ratio: s.median, min: s.min, max: s.max, samples: s.samples, against: ref.id }
          : { ratio: fallback, min: NaN, max: NaN, samples: [], against: ref.id };
      }
      ratios[c.id][t.id] = out;
    }
  }

  const baseRatio = (test: string): number | null => {
    const v = ratios[plan.base]?.[test]?.gbps?.ratio;
    return v !== undefined && Number.isFinite(v) ? v : null;
  };
  const result: BenchResult = {
    tool: 'microgate bench',
    version: 1,
    tx_ratio: baseRatio('tcp-tx'),
    rx_ratio: baseRatio('tcp-rx'),
    tx6_ratio: baseRatio('tcp6-tx'),
    rx6_ratio: baseRatio('tcp6-rx'),
    base: plan.base,
    startedAt: a.startedAt,
    finishedAt: a.finishedAt,
    command: a.command,
    machine: a.machine,
    options: a.options,
    configs: plan.configs,
    labs: a.labs,
    tests: plan.tests,
    metrics,
    summaries,
    ratios,
    goals: [],
    cpu,
    trace: a.trace,
    traceNote: a.traceNote,
    failures: runs.filter((r) => r.error !== undefined).map((r) => ({ config: r.config, test: r.test, rep: r.rep, error: r.error as string })),
    interrupted: a.interrupted ?? false,
    plannedRuns: plan.runs.length,
    runs,
  };
  result.goals = evaluateGoals(result);
  return result;
}

