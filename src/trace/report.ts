// The report in the shape of the paper's Table 1: per component and
// procedure the count, mean, p50, p99, p99.9 and max in ns; a spike finder
// that names the procedures whose tail exceeds N x their median and says when
// the spikes happened; busy vs idle time of every entrypoint thread.
import { decodeHdr, percentiles } from './histogram.ts';
import type { TracerSnapshot } from './tracer.ts';

export interface ReportRow {
  component: string;
  procedure: string;
  count: number;
  mean_ns: number;
  p50_ns: number;
  p99_ns: number;
  p999_ns: number;
  max_ns: number;
}

export interface SpikeTime {
  /** CLOCK_MONOTONIC ns when the span started. */
  atNs: number;
  /** Seconds after the trace window started. */
  afterS: number;
  /** Wall-clock time (ISO 8601). */
  at: string;
  durNs: number;
}

export interface SpikeRow {
  component: string;
  procedure: string;
  p50_ns: number;
  p999_ns: number;
  max_ns: number;
  /** p99.9 / p50: the tail against the median. */
  ratio: number;
  /** Spans above factor x p50 among those the spike log or the event ring kept, longest first (at most 5). */
  when: SpikeTime[];
}

export interface LoopStats {
  turns: number;
  sleeps: number;
  busyNs: number;
  idleNs: number;
}

export interface LoopRow {
  /** The components that share this entrypoint thread. */
  thread: string;
  pid: number;
  windowNs: number;
  busyNs: number;
  idleNs: number;
  /** Neither in a loop turn nor blocked in poll: Node's event loop (timers, control messages, GC). */
  otherNs: number;
  busyPct: number;
  idlePct: number;
  otherPct: number;
  turns: number;
  sleeps: number;
}

export interface TraceReport {
  /** CLOCK_MONOTONIC ns: the earliest trace window start and the snapshot time. */
  sinceNs: number;
  nowNs: number;
  windowS: number;
  modes: Record<string, string>;
  /** Largest sampling divisor of any tracer: 1 in `sample` spans was timed (counts are exact). */
  sample: number;
  spikeFactor: number;
  rows: ReportRow[];
  spikes: SpikeRow[];
  loops: LoopRow[];
  events: { component: string; thread: string; capacity: number; total: number; lost: number }[];
}

/** Procedures that measure waiting, not work: left out of the spike finder. */
export function isWait(procedure: string): boolean {
  return procedure.endsWith('.wait');
}

export interface ReportOptions {
  /** Flag procedures whose p99.9 exceeds this many times their p50 (default 10). */
  spikeFactor?: number;
  /** Keep procedures with a zero count (default false). */
  all?: boolean;
  /** ns to add to CLOCK_MONOTONIC for Unix time; default: this process's. */
  unixOffsetNs?: bigint;
}

export function buildReport(snaps: readonly (TracerSnapshot & { loop?: LoopStats })[], opts: ReportOptions = {}): TraceReport {
  const factor = opts.spikeFactor ?? 10;
  const unixOff = opts.unixOffsetNs ?? BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
  const rows: ReportRow[] = [];
  const spikes: SpikeRow[] = [];
  const loops: LoopRow[] = [];
  const modes: Record<string, string> = {};
  const events: TraceReport['events'] = [];
  let since = Infinity;
  let now = 0;
  let sample = 1;
  for (const s of snaps) {
    sample = Math.max(sample, s.sample ?? 1);
    since = Math.min(since, s.sinceNs);
    now = Math.max(now, s.nowNs);
    modes[s.component] = s.mode;
    if (s.events !== undefined) events.push({ component: s.component, thread: s.thread, capacity: s.events.capacity, total: s.events.total, lost: s.events.lost });
    const when = (atNs: number, durNs: number): SpikeTime => ({
      atNs,
      afterS: Math.round((atNs - s.sinceNs) / 1e6) / 1000,
      at: new Date(Number((BigInt(Math.round(atNs)) + unixOff) / 1000000n)).toISOString(),
      durNs,
    });
    s.procs.forEach((p, idx) => {
      if (p.count === 0 && opts.all !== true) return;
      const timed = p.timed ?? p.count;
      const pc = timed === 0 || p.hdr === '' ? { p50: 0, p99: 0, p999: 0 } : percentiles(decodeHdr(p.hdr), p.maxNs);
      rows.push({
        component: s.component,
        procedure: p.name,
        count: p.count,
        mean_ns: timed === 0 ? 0 : Math.round(p.sumNs / timed),
        p50_ns: Math.round(pc.p50),
        p99_ns: Math.round(pc.p99),
        p999_ns: Math.round(pc.p999),
        max_ns: p.maxNs,
      });
      if (timed === 0 || isWait(p.name) || pc.p50 <= 0 || pc.p999 <= factor * pc.p50) return;
      const threshold = factor * pc.p50;
      const seen = new Map<number, number>();
      seen.set(p.maxAtNs, p.maxNs);
      for (const [at, d] of p.spikes) if (d > threshold) seen.set(at, d);
      const ev = s.events;
      if (ev !== undefined) {
        for (let i = 0; i < ev.t.length; i++) if (ev.proc[i] === idx && ev.dur[i] > threshold) seen.set(ev.t[i], ev.dur[i]);
      }
      const list = [...seen].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([at, d]) => when(at, d));
      spikes.push({
        component: s.component,
        procedure: p.name,
        p50_ns: Math.round(pc.p50),
        p999_ns: Math.round(pc.p999),
        max_ns: p.maxNs,
        ratio: Math.round((pc.p999 / pc.p50) * 10) / 10,
        when: list,
      });
    });
    const l = s.loop;
    if (l !== undefined) {
      const windowNs = Math.max(1, s.nowNs - s.sinceNs);
      const otherNs = Math.max(0, windowNs - l.busyNs - l.idleNs);
      const pct = (x: number): number => Math.round((x / windowNs) * 1000) / 10;
      loops.push({
        thread: s.component,
        pid: s.pid,
        windowNs,
        busyNs: l.busyNs,
        idleNs: l.idleNs,
        otherNs,
        busyPct: pct(l.busyNs),
        idlePct: pct(l.idleNs),
        otherPct: pct(otherNs),
        turns: l.turns,
        sleeps: l.sleeps,
      });
    }
  }
  rows.sort((a, b) => a.component.localeCompare(b.component) || a.procedure.localeCompare(b.procedure));
  // The longest stalls first.
  spikes.sort((a, b) => b.max_ns - a.max_ns);
  if (since === Infinity) since = 0;
  return { sinceNs: since, nowNs: now, windowS: Math.round((now - since) / 1e6) / 1000, modes, sample, spikeFactor: factor, rows, spikes, loops, events };
}

function fmtNs(ns: number): string {
  if (ns < 10_000) return String(Math.round(ns));
  if (ns < 10_000_000) return `${(ns / 1000).toFixed(ns < 100_000 ? 1 : 0)}k`;
  return `${(ns / 1e6).toFixed(ns < 100e6 ? 1 : 0)}M`;
}

function table(head: string[], rows: string[][], right: boolean[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (right[i] ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/** The report as readable text; at most `maxSpikes` spiking procedures (3 times each). */
export function formatReport(r: TraceReport, maxSpikes = 12): string {
  const out: string[] = [];
  const modes = [...new Set(Object.values(r.modes))].join(', ');
  out.push(`trace window ${r.windowS.toFixed(3)} s (mode: ${modes || 'none'}); durations in ns (k = 10^3, M = 10^6), each includes one clock read (~40-50 ns)`);
  if (r.sample > 1) out.push(`sampling: 1 in ${r.sample} spans timed; counts are exact, mean, percentiles, max and spikes are those of the timed spans`);
  out.push('');
  out.push(table(
    ['component', 'procedure', 'count', 'mean', 'p50', 'p99', 'p99.9', 'max'],
    r.rows.map((x) => [x.component, x.procedure, String(x.count), fmtNs(x.mean_ns), fmtNs(x.p50_ns), fmtNs(x.p99_ns), fmtNs(x.p999_ns), fmtNs(x.max_ns)]),
    [false, false, true, true, true, true, true, true],
  ));
  out.push('');
  if (r.spikes.length === 0) out.push(`spikes: no procedure's p99.9 exceeds ${r.spikeFactor} x its p50 (waits not counted)`);
  else {
    out.push(`spikes: ${r.spikes.length} procedures whose p99.9 exceeds ${r.spikeFactor} x their p50 (waits not counted), longest max first; when (after the window start):`);
    for (const s of r.spikes.slice(0, maxSpikes)) {
      const when = s.when.slice(0, 3).map((w) => `${fmtNs(w.durNs)} at ${w.afterS >= 0 ? '+' : ''}${w.afterS.toFixed(3)} s`).join(', ');
      out.push(`  ${`${s.component} ${s.procedure}`.padEnd(32)} p50 ${fmtNs(s.p50_ns).padStart(5)}  p99.9 ${fmtNs(s.p999_ns).padStart(5)} (${s.ratio}x)  max ${fmtNs(s.max_ns).padStart(5)}: ${when}`);
    }
    if (r.spikes.length > maxSpikes) out.push(`  ... and ${r.spikes.length - maxSpikes} more (--full-json lists all, with wall-clock times)`);
  }
  if (r.loops.length > 0) {
    out.push('');
    out.push('entrypoint threads: busy (running pollables) vs idle (blocked in poll) vs other (Node event loop: timers, control, GC)');
    out.push(table(
      ['thread', 'pid', 'busy %', 'idle %', 'other %', 'turns', 'sleeps'],
      r.loops.map((l) => [l.thread, String(l.pid), l.busyPct.toFixed(1), l.idlePct.toFixed(1), l.otherPct.toFixed(1), String(l.turns), String(l.sleeps)]),
      [false, true, true, true, true, true, true],
    ));
  }
  const lossy = r.events.filter((e) => e.lost > 0);
  if (lossy.length > 0) {
    out.push('');
    out.push(`event rings overwrote older events: ${lossy.map((e) => `${e.component} ${e.lost} of ${e.total}`).join(', ')}`);
  }
  return out.join('\n');
}
