// The goals of issue 17, checked against a result. Each goal compares
// figures of the process-isolated configuration with the Linux reference on
// the same cores (or with inline mode), repetition by repetition: the value is
// the worst figure's median, and every figure's per-repetition values and
// their spread are kept. A goal whose figures were not part of the run (or
// whose runs failed) is "not measured" (met: null), never silently passed.
import type { BenchConfig } from './plan.ts';
import { summarize, type Summary } from './stats.ts';

export type GoalId = 'tcp-vs-linux' | 'process-vs-inline' | 'rr-rate' | 'rr-added-p50' | 'small-64' | 'small-512'
  | 'cpu-per-gb' | 'cpu-per-mpkt' | 'two-cores' | 'latency-tail';

/** One figure a goal compares: its per-repetition values and their spread. */
export interface GoalPart {
  /** "tcp-tx gbps": test and metric. */
  figure: string;
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export interface Goal {
  id: GoalId;
  text: string;
  /** The number compared with the target: the worst part's median. */
  value: number | null;
  target: string;
  met: boolean | null;
  /** What was compared, with the numbers. */
  detail: string;
  parts: GoalPart[];
}

/** What the goals are checked against: the part of a BenchResult (results.ts) they read. */
export interface GoalInput {
  configs: readonly BenchConfig[];
  /** summaries[configId][testId][key] */
  summaries: Record<string, Record<string, Record<string, Summary>>>;
  /** The runs (results.ts RunRecord): the per-repetition pairs. */
  runs: readonly { config: string; test: string; rep: number; values: Record<string, number>; error?: string }[];
}

type R = GoalInput;

const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');

/** The process-isolated configuration the goals are about: the first one with the most cores, untraced. */
function processConfig(r: R): BenchConfig | undefined {
  const ps = r.configs.filter((c) => c.gateway === 'microgate' && c.isolation === 'process' && c.trace === 'off');
  const maxCores = Math.max(...ps.map((c) => c.cores));
  return ps.find((c) => c.cores === maxCores);
}

function sibling(r: R, c: BenchConfig, change: Partial<BenchConfig>): BenchConfig | undefined {
  const want = { ...c, ...change };
  return r.configs.find((x) => x.gateway === 'microgate' && x.isolation === want.isolation && x.transport === want.transport
    && x.slots === want.slots && x.cores === want.cores && x.trace === want.trace);
}

function linuxFor(r: R, c: BenchConfig): BenchConfig | undefined {
  return r.configs.find((x) => x.gateway === 'linux' && x.cores === c.cores);
}

/** Per repetition: f(a's value, b's value) of one test and metric, where both runs gave one. */
export function paired(r: R, a: BenchConfig, b: BenchConfig, test: string, key: string, f: (x: number, y: number) => number): GoalPart {
  const reps = [...new Set(r.runs.filter((x) => x.test === test).map((x) => x.rep))].sort((x, y) => x - y);
  const out: number[] = [];
  for (const rep of reps) {
    const x = r.runs.find((q) => q.config === a.id && q.test === test && q.rep === rep && q.error === undefined)?.values[key];
    const y = r.runs.find((q) => q.config === b.id && q.test === test && q.rep === rep && q.error === undefined)?.values[key];
    if (typeof x === 'number' && typeof y === 'number') {
      const v = f(x, y);
      if (Number.isFinite(v)) out.push(v);
    }
  }
  const s = summarize(out);
  return { figure: `${test} ${key}`, median: s.median, min: s.min, max: s.max, samples: s.samples };
}

const div = (x: number, y: number): number => (y !== 0 ? x / y : NaN);
const sub = (x: number, y: number): number => x - y;

function fmtPart(p: GoalPart, digits = 2, unit = 'x'): string {
  const d = (v: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
  const spread = p.samples.length > 1 ? ` [${d(p.min)}–${d(p.max)}; ${p.samples.map(d).join(', ')}]` : '';
  return `${p.figure} ${d(p.median)}${unit}${spread}`;
}

interface Check {
  id: GoalId;
  text: string;
  target: string;
  /** Which way the target goes. */
  op: '>=' | '<=';
  bound: number;
}

/** A goal from its parts: the worst part's median against the bound. */
function judge(c: Check, parts: GoalPart[], prefix: string, digits = 2, unit = 'x'): Goal {
  const measured = parts.filter((p) => Number.isFinite(p.median));
  if (measured.length === 0 || measured.length < parts.length) {
    return { id: c.id, text: c.text, value: null, target: c.target, met: null, parts,
      detail: `not measured: its runs gave no value (${parts.filter((p) => !Number.isFinite(p.median)).map((p) => p.figure).join(', ')})` };
  }
  const worst = measured.reduce((a, b) => ((c.op === '>=' ? b.median < a.median : b.median > a.median) ? b : a));
  const met = c.op === '>=' ? worst.median >= c.bound : worst.median <= c.bound;
  return { id: c.id, text: c.text, value: worst.median, target: c.target, met, parts, detail: `${prefix}${parts.map((p) => fmtPart(p, digits, unit)).join('; ')}` };
}

function notMeasured(c: Check, why: string): Goal {
  return { id: c.id, text: c.text, value: null, target: c.target, met: null, detail: `not measured: ${why}`, parts: [] };
}

const has = (r: R, c: BenchConfig | undefined, test: string): boolean => c !== undefined && r.runs.some((x) => x.config === c.id && x.test === test);

export function evaluateGoals(r: R): Goal[] {
  const goals: Goal[] = [];
  const p = processConfig(r);
  const linux = p && linuxFor(r, p);
  const label = p ? `${p.label} / ${linux?.label ?? 'Linux'}, per repetition [min–max; each]: ` : '';
  const vsLinux = (c: Check, figures: [string, string][], f = div, digits = 2, unit = 'x'): void => {
    if (!p || !linux || !figures.every(([t]) => has(r, p, t) && has(r, linux, t))) {
      goals.push(notMeasured(c, `needs process isolation, Linux and ${[...new Set(figures.map(([t]) => t))].join(', ')} (--tests)`));
    } else goals.push(judge(c, figures.map(([t, k]) => paired(r, p, linux, t, k, f)), label, digits, unit));
  };

  vsLinux({ id: 'tcp-vs-linux', text: 'TCP both ways ≥ 0.9x Linux (process isolation)', target: '≥ 0.90', op: '>=', bound: 0.9 },
    [['tcp-tx', 'gbps'], ['tcp-rx', 'gbps']]);
  {
    const c: Check = { id: 'process-vs-inline', text: 'process isolation ≥ 0.9x inline mode (TCP both ways)', target: '≥ 0.90', op: '>=', bound: 0.9 };
    const inl = p && sibling(r, p, { isolation: 'inline' });
    if (!p || !inl || !has(r, p, 'tcp-tx') || !has(r, inl, 'tcp-tx')) goals.push(notMeasured(c, 'run with --isolation process,inline and --tests tcp'));
    else goals.push(judge(c, [paired(r, p, inl, 'tcp-tx', 'gbps', div), paired(r, p, inl, 'tcp-rx', 'gbps', div)], `${p.label} / ${inl.label}, per repetition: `));
  }
  vsLinux({ id: 'rr-rate', text: 'request/response transactions per second ≥ 0.7x Linux (sockperf ping-pong, one at a time)', target: '≥ 0.70', op: '>=', bound: 0.7 },
    [['latency', 'rtps']]);
  vsLinux({ id: 'rr-added-p50', text: 'microgate\'s added p50 per round trip ≤ 20 µs (microgate p50 − Linux p50)', target: '≤ 20 µs', op: '<=', bound: 20 },
    [['latency', 'p50']], sub, 1, ' µs');
  for (const size of [64, 512] as const) {
    vsLinux({ id: `small-${size}`, text: `${size}-byte frames ≥ 0.7x Linux: highest rate with < 0.1 % loss and delivered at overload (trafgen)`, target: '≥ 0.70', op: '>=', bound: 0.7 },
      [[`small-${size}`, 'noLossPps'], [`small-${size}`, 'overloadPps']]);
    // Whether the generator saturated Linux: without loss at overload, Linux's figures are the generator's limit.
    const g = goals[goals.length - 1];
    const loss = linux ? r.summaries[linux.id]?.[`small-${size}`]?.overloadLossPct?.median : undefined;
    if (g.met !== null && loss !== undefined && Number.isFinite(loss)) {
      g.detail += loss >= 1 ? `; Linux lost ${loss.toFixed(1)} % at overload: the generator saturated it`
        : `; Linux lost only ${loss.toFixed(2)} % at overload: the generator did not saturate it, so Linux's figures are the generator's rate (a lower bound)`;
    }
  }
  vsLinux({ id: 'cpu-per-gb', text: 'CPU seconds per GB forwarded ≤ 1.5x Linux (TCP both ways)', target: '≤ 1.50', op: '<=', bound: 1.5 },
    [['tcp-tx', 'cpuPerGB'], ['tcp-rx', 'cpuPerGB']]);
  {
    // Per million packets: the small-packet figures, or iperf3's UDP where those were not run.
    const small = ['small-64', 'small-512'].filter((t) => has(r, p, t));
    const tests = small.length > 0 ? small : ['udp-tx', 'udp-rx'].filter((t) => has(r, p, t));
    vsLinux({ id: 'cpu-per-mpkt', text: 'CPU seconds per million packets ≤ 1.5x Linux (small packets)', target: '≤ 1.50', op: '<=', bound: 1.5 },
      (tests.length > 0 ? tests : ['small-64']).map((t): [string, string] => [t, 'cpuPerMpkt']));
  }
  {
    // An earlier issue's goal, kept: more CPUs must not make it slower.
    const c: Check = { id: 'two-cores', text: 'two cores not slower than one (TCP both ways)', target: '≥ 1.00', op: '>=', bound: 1 };
    const one = p && p.cores > 1 ? sibling(r, p, { cores: 1 }) : undefined;
    if (!p || !one || !has(r, p, 'tcp-tx')) goals.push(notMeasured(c, 'run with --cores 2,1'));
    else goals.push(judge(c, [paired(r, p, one, 'tcp-tx', 'gbps', div), paired(r, p, one, 'tcp-rx', 'gbps', div)], `${p.cores} cores / 1 core, per repetition: `));
  }
  {
    // An earlier issue's goal, kept: the tail of the round trip.
    const c: Check = { id: 'latency-tail', text: 'latency p99.9 ≤ 10x p50', target: '≤ 10', op: '<=', bound: 10 };
    if (!p || !has(r, p, 'latency')) goals.push(notMeasured(c, 'needs the latency figure'));
    else goals.push(judge(c, [tail(r, p)], `${p.label}, per repetition: `));
  }
  return goals;
}

/** p99.9 / p50 of each repetition of one configuration's latency runs. */
function tail(r: R, c: BenchConfig): GoalPart {
  const v = r.runs.filter((x) => x.config === c.id && x.test === 'latency' && x.error === undefined).map((x) => div(x.values.p999 ?? NaN, x.values.p50 ?? NaN));
  const s = summarize(v);
  return { figure: 'latency p99.9/p50', median: s.median, min: s.min, max: s.max, samples: s.samples };
}
