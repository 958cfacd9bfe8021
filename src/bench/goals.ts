// The goals, checked against a result. A goal whose configurations were
// not part of the run is "not measured" (met: null), never silently passed.
import type { BenchConfig } from './plan.ts';
import type { Summary } from './stats.ts';

export interface Goal {
  id: 'vs-linux' | 'rx-over-tx' | 'process-vs-inline' | 'two-cores' | 'latency-tail';
  text: string;
  /** The number compared with the target (the worse direction where there are two). */
  value: number | null;
  target: string;
  met: boolean | null;
  /** What was compared, with the numbers. */
  detail: string;
}

/** What the goals are checked against: the part of a BenchResult (results.ts) they read. */
export interface GoalInput {
  configs: readonly BenchConfig[];
  /** summaries[configId][testId][key] */
  summaries: Record<string, Record<string, Record<string, Summary>>>;
  /** ratios[configId][testId][key]: microgate / Linux. */
  ratios: Record<string, Record<string, Record<string, { ratio: number }>>>;
}

type R = GoalInput;

const med = (r: R, c: BenchConfig, test: string, key = 'gbps'): number => r.summaries[c.id]?.[test]?.[key]?.median ?? NaN;
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

function notMeasured(id: Goal['id'], text: string, target: string, why: string): Goal {
  return { id, text, value: null, target, met: null, detail: `not measured: ${why}` };
}

export function evaluateGoals(r: R): Goal[] {
  // A goal whose numbers are missing (its runs failed) is not measured, not failed.
  return evaluate(r).map((g) => (g.met !== null || g.detail.startsWith('not measured') ? g : { ...g, detail: `not measured: its runs gave no value (${g.detail})` }));
}

function evaluate(r: R): Goal[] {
  const goals: Goal[] = [];
  const p = processConfig(r);
  const hasTcp = p !== undefined && r.summaries[p.id]?.['tcp-tx'] !== undefined;

  {
    const text = 'microgate with process isolation ≥ 0.9x Linux in both directions';
    if (!p || !hasTcp) goals.push(notMeasured('vs-linux', text, '≥ 0.90', 'needs process isolation and the tcp figures'));
    else {
      const tx = r.ratios[p.id]?.['tcp-tx']?.gbps?.ratio ?? NaN;
      const rx = r.ratios[p.id]?.['tcp-rx']?.gbps?.ratio ?? NaN;
      const v = Math.min(tx, rx);
      goals.push({ id: 'vs-linux', text, value: Number.isFinite(v) ? v : null, target: '≥ 0.90', met: Number.isFinite(v) ? v >= 0.9 : null,
        detail: `${p.label}: send ${f2(tx)}x, receive ${f2(rx)}x Linux` });
    }
  }
  {
    const text = 'receive / send ≥ 0.95';
    if (!p || !hasTcp) goals.push(notMeasured('rx-over-tx', text, '≥ 0.95', 'needs the tcp figures'));
    else {
      const tx = med(r, p, 'tcp-tx');
      const rx = med(r, p, 'tcp-rx');
      const v = rx / tx;
      goals.push({ id: 'rx-over-tx', text, value: Number.isFinite(v) ? v : null, target: '≥ 0.95', met: Number.isFinite(v) ? v >= 0.95 : null,
        detail: `${p.label}: receive ${f2(rx)} / send ${f2(tx)} Gbit/s` });
    }
  }
  {
    const text = 'process isolation ≥ 0.9x inline mode';
    const inl = p && sibling(r, p, { isolation: 'inline' });
    if (!p || !inl || !hasTcp) goals.push(notMeasured('process-vs-inline', text, '≥ 0.90', 'run with --isolation process,inline'));
    else {
      const tx = med(r, p, 'tcp-tx') / med(r, inl, 'tcp-tx');
      const rx = med(r, p, 'tcp-rx') / med(r, inl, 'tcp-rx');
      const v = Math.min(tx, rx);
      goals.push({ id: 'process-vs-inline', text, value: Number.isFinite(v) ? v : null, target: '≥ 0.90', met: Number.isFinite(v) ? v >= 0.9 : null,
        detail: `send ${f2(med(r, p, 'tcp-tx'))} vs ${f2(med(r, inl, 'tcp-tx'))} Gbit/s (${f2(tx)}x), receive ${f2(med(r, p, 'tcp-rx'))} vs ${f2(med(r, inl, 'tcp-rx'))} (${f2(rx)}x)` });
    }
  }
  {
    const text = 'two cores not slower than one';
    const one = p && p.cores > 1 ? sibling(r, p, { cores: 1 }) : undefined;
    if (!p || !one || !hasTcp) goals.push(notMeasured('two-cores', text, '≥ 1.00', 'run with --cores 2,1'));
    else {
      const tx = med(r, p, 'tcp-tx') / med(r, one, 'tcp-tx');
      const rx = med(r, p, 'tcp-rx') / med(r, one, 'tcp-rx');
      const v = Math.min(tx, rx);
      goals.push({ id: 'two-cores', text, value: Number.isFinite(v) ? v : null, target: '≥ 1.00', met: Number.isFinite(v) ? v >= 1 : null,
        detail: `${p.cores} cores / 1 core: send ${f2(med(r, p, 'tcp-tx'))} / ${f2(med(r, one, 'tcp-tx'))} Gbit/s (${f2(tx)}x), receive ${f2(med(r, p, 'tcp-rx'))} / ${f2(med(r, one, 'tcp-rx'))} (${f2(rx)}x)` });
    }
  }
  {
    const text = 'latency p99.9 ≤ 10x p50';
    const lat = p && r.summaries[p.id]?.latency;
    if (!p || !lat) goals.push(notMeasured('latency-tail', text, '≤ 10', 'needs the latency figure'));
    else {
      const p50 = lat.p50.median;
      const p999 = lat.p999.median;
      const v = p999 / p50;
      const linux = r.configs.find((c) => c.gateway === 'linux' && c.cores === p.cores);
      const l = linux ? r.summaries[linux.id]?.latency : undefined;
      goals.push({ id: 'latency-tail', text, value: Number.isFinite(v) ? v : null, target: '≤ 10', met: Number.isFinite(v) ? v <= 10 : null,
        detail: `${p.label}: p50 ${p50.toFixed(1)} µs, p99.9 ${p999.toFixed(1)} µs` + (l ? `; Linux: p50 ${l.p50.median.toFixed(1)}, p99.9 ${l.p999.median.toFixed(1)} µs (${f2(l.p999.median / l.p50.median)}x)` : '') });
    }
  }
  return goals;
}
