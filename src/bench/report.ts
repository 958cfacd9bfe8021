// Human-readable output of a result: the terminal table of ratios and the
// Markdown report (goals, ratios, absolute values, CPU, trace, method).
import type { BenchConfig } from './plan.ts';
import { fmt, type MetricSpec } from './metrics.ts';
import type { BenchResult, CpuSummary } from './results.ts';
import { fmtNs, type TraceSummary } from './trace.ts';

/** Column header for a configuration: its label without the "microgate " prefix. */
export function shortLabel(c: BenchConfig): string {
  return c.label.replace(/^microgate /, '');
}

function pad(rows: string[][]): string {
  const w: number[] = [];
  for (const r of rows) r.forEach((c, i) => (w[i] = Math.max(w[i] ?? 0, [...c].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd()).join('\n');
}

function value(r: BenchResult, c: BenchConfig, m: MetricSpec): number {
  return (r.summaries[c.id]?.[m.test]?.[m.key]?.median ?? NaN) * m.scale;
}

function ratioCell(r: BenchResult, c: BenchConfig, m: MetricSpec, spread: boolean): string {
  if (!m.ratio) return fmt(value(r, c, m), m.digits);
  const q = r.ratios[c.id]?.[m.test]?.[m.key];
  if (!q || !Number.isFinite(q.ratio)) return 'n/a';
  const s = spread && Number.isFinite(q.min) && Number.isFinite(q.max) && q.max > q.min ? ` [${q.min.toFixed(2)}-${q.max.toFixed(2)}]` : '';
  return `${q.ratio.toFixed(2)}x${s}`;
}

/**
 * The terminal table: one row per headline figure; Linux columns give the
 * value, microgate columns the ratio to Linux on the same cores (values for
 * metrics where a ratio means nothing, such as loss %).
 */
export function ratioTable(r: BenchResult, opts: { spread?: boolean } = {}): string {
  const ms = r.metrics.filter((m) => m.headline);
  const head = ['figure', 'unit', ...r.configs.map(shortLabel)];
  const rows = [head];
  for (const m of ms) {
    rows.push([m.name, m.unit, ...r.configs.map((c) => (c.gateway === 'linux' ? fmt(value(r, c, m), m.digits) : ratioCell(r, c, m, opts.spread ?? false)))]);
  }
  return pad(rows);
}

/** A Markdown table; the first `left` columns are left-aligned, the rest (numbers) right-aligned. */
function mdTable(rows: string[][], left = 2): string {
  const [h, ...b] = rows;
  const cell = (c: string): string => c.replace(/\|/g, '\\|');
  return [`| ${h.map(cell).join(' | ')} |`, `|${h.map((_, i) => (i < left ? '---' : '---:')).join('|')}|`, ...b.map((x) => `| ${x.map(cell).join(' | ')} |`)].join('\n');
}

function absCell(r: BenchResult, c: BenchConfig, m: MetricSpec): string {
  const s = r.summaries[c.id]?.[m.test]?.[m.key];
  if (!s || !Number.isFinite(s.median)) return 'n/a';
  const v = (x: number): string => (x * m.scale).toFixed(m.digits);
  return s.samples.length > 1 ? `${v(s.median)} (${v(s.min)}–${v(s.max)})` : v(s.median);
}

function cpuLine(c: CpuSummary | undefined): string {
  if (!c) return 'n/a';
  const units = c.units.filter((u) => u.name !== 'init' || u.cpuPct >= 1).map((u) => {
    // Threads only where more than one does real work (the shared host of thread components).
    const busy = u.threads.filter((x) => x.cpuPct >= 3);
    const t = busy.length > 1 ? ` [${busy.slice(0, 4).map((x) => `${x.comm} ${x.cpuPct.toFixed(0)}`).join(', ')}]` : '';
    return `${u.name} ${u.cpuPct.toFixed(0)}%${t}`;
  });
  return units.join(', ') || '–';
}

function sysLine(c: CpuSummary | undefined): string {
  if (!c) return 'n/a';
  const s = c.system;
  return `${s.busyPct.toFixed(0)}% busy (user ${s.userPct.toFixed(0)}, sys ${s.systemPct.toFixed(0)}, softirq ${s.softirqPct.toFixed(0)}) of ${s.cpus} CPUs`;
}

const goalMark = (met: boolean | null): string => (met === null ? '– not measured' : met ? '✅ met' : '❌ not met');

export function markdownReport(r: BenchResult, files: { charts: string[] }): string {
  const o = r.options;
  const L: string[] = [];
  const mgs = r.configs.filter((c) => c.gateway === 'microgate');
  L.push(`# microgate bench: ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC`);
  L.push('');
  L.push(`Command: \`${r.command}\``);
  L.push('');
  L.push(`Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), Linux ${r.machine.kernel}, Node ${r.machine.node}, ${r.machine.iperf3}, sockperf ${r.machine.sockperf}.`);
  L.push(`Each figure ${o.repeat} time${o.repeat === 1 ? '' : 's'} (${o.seconds} s per run, ${o.sweepSeconds} s per sweep size), configurations alternated round-robin; values are medians, spreads min–max.`);
  L.push('');
  L.push(`**tx_ratio ${r.tx_ratio?.toFixed(2) ?? 'n/a'}, rx_ratio ${r.rx_ratio?.toFixed(2) ?? 'n/a'}** (${r.configs.find((c) => c.id === r.base)?.label ?? r.base} / Linux, TCP send and receive)` +
    (r.tx6_ratio !== null || r.rx6_ratio !== null ? `; over IPv6 **tx6_ratio ${r.tx6_ratio?.toFixed(2) ?? 'n/a'}, rx6_ratio ${r.rx6_ratio?.toFixed(2) ?? 'n/a'}** (routed, no NAT on either side).` : '.'));
  if (r.interrupted) L.push(`\n**Interrupted**: ${r.runs.length} of ${r.plannedRuns} runs done; the numbers are partial.`);
  if (r.failures.length) L.push(`\n**${r.failures.length} run(s) failed**: see "Failures" below.`);
  L.push('');
  L.push('## Goals');
  L.push('');
  L.push(mdTable([['goal', 'target', 'measured', 'result', 'detail'], ...r.goals.map((g) => [g.text, g.target, g.value === null ? '–' : g.value.toFixed(2), goalMark(g.met), g.detail])], 5));
  L.push('');
  L.push('## Ratios microgate / Linux');
  L.push('');
  L.push('Linux columns: the value. microgate columns: the median of the per-repetition ratios to Linux on the same cores (each pair measured back to back), [min–max]. Above 1 is better for throughput and rates, worse for latency.');
  L.push('');
  const ms = r.metrics.filter((m) => m.headline);
  L.push(mdTable([['figure', 'unit', ...r.configs.map(shortLabel)], ...ms.map((m) => [m.name, m.unit, ...r.configs.map((c) => (c.gateway === 'linux' ? fmt(value(r, c, m), m.digits) : ratioCell(r, c, m, true)))])]));
  L.push('');
  L.push('## Charts');
  L.push('');
  for (const f of files.charts) L.push(`![${f}](${f})`, '');
  L.push('## Values');
  L.push('');
  L.push('Median (min–max) of the repetitions.');
  L.push('');
  L.push(mdTable([['figure', 'unit', ...r.configs.map(shortLabel)], ...r.metrics.map((m) => [m.name, m.unit, ...r.configs.map((c) => absCell(r, c, m))])]));
  L.push('');
  L.push('## Where the CPU goes');
  L.push('');
  L.push('Mean over the runs of each figure, from /proc: percent of one CPU per gateway process (and its busiest threads), and the whole machine from /proc/stat. The iperf3 rows are iperf3\'s own accounting. A process near 100 % is the bottleneck; softirq is where the kernel forwards (Linux) and moves TAP frames. The machine column counts everything on it, other users included.');
  L.push('');
  for (const test of r.tests.filter((t) => t.kind === 'tcp' || t.kind === 'udp')) {
    L.push(`### ${test.title}`);
    L.push('');
    const rows = [['configuration', 'value', 'gateway processes (% of one CPU)', 'machine', 'iperf3 sender / receiver CPU']];
    for (const c of r.configs) {
      const key = test.kind === 'tcp' ? 'gbps' : 'pps';
      const m = r.metrics.find((x) => x.test === test.id && x.key === key);
      const s = r.summaries[c.id]?.[test.id];
      const iperf = s?.senderCpu ? `${fmt(s.senderCpu.median, 0)}% / ${fmt(s.receiverCpu.median, 0)}%` : 'n/a';
      rows.push([c.label, m ? `${absCell(r, c, m)} ${m.unit}` : '', c.gateway === 'linux' ? '(kernel: softirq)' : cpuLine(r.cpu[c.id]?.[test.id]), sysLine(r.cpu[c.id]?.[test.id]), iperf]);
    }
    L.push(mdTable(rows, 5));
    L.push('');
  }
  L.push('## Cost per byte, per packet, per transaction');
  L.push('');
  L.push('Per run: CPU = the gateway\'s own processes (init and the components, user + system; none for Linux) + the whole machine\'s softirq and irq time, in CPU seconds, divided by the GB and the million frames the two end hosts received during the run (their interface counters: what was forwarded, both ways). Small packets: during the overload trial only (the unlimited generator saturating either gateway), not over the paced search trials, which run each gateway at rates of its own. Linux forwards in softirq, so that is all of its cost; the softirq time also holds the end hosts\' own receive path and whatever else the machine does, for both gateways alike. Wake-ups: sent by all of microgate\'s session rings (`out.wakeups` + `in.wakeups`, GET /components before and after the run) per packet the router forwarded, and per sockperf transaction. Median (min–max).');
  L.push('');
  {
    const cols = ['cpuPerGB', 'cpuPerMpkt', 'wakeupsPerPkt', 'wakeupsPerTxn'];
    const rows = [['figure', 'configuration', 'CPU s / GB', 'CPU s / M packets', 'wake-ups / packet', 'wake-ups / transaction']];
    for (const t of r.tests.filter((x) => x.kind !== 'sweep')) {
      for (const c of r.configs) {
        const cells = cols.map((k) => {
          const m = r.metrics.find((x) => x.test === t.id && x.key === k);
          return m ? absCell(r, c, m) : '';
        });
        rows.push([t.id, c.label, ...cells]);
      }
    }
    L.push(mdTable(rows));
  }
  L.push('');
  L.push('## Trace');
  L.push('');
  const traced = mgs.filter((c) => c.trace !== 'off');
  if (traced.length === 0) {
    L.push('Not traced in this run (`--trace off,on` adds a traced configuration; untraced runs switch the tracepoints off).');
  } else if (!r.trace || Object.keys(r.trace).length === 0) {
    L.push(`Tracing was asked for but not recorded: ${r.traceNote ?? 'no trace data'}.`);
  } else {
    L.push(traceSection(r));
  }
  L.push('');
  if (r.failures.length) {
    L.push('## Failures');
    L.push('');
    for (const f of r.failures) L.push(`- ${f.config}, ${f.test}, repetition ${f.rep}: ${f.error.split('\n')[0]}`);
    L.push('');
  }
  L.push('## Method');
  L.push('');
  L.push('- Topology: lan host (netns, 198.18.0.2) — gateway — wan host (netns, 198.19.0.2). The Linux reference forwards in the kernel with nftables masquerade and a stateful filter equivalent to microgate\'s config (see src/lab/README.md); microgate runs init, two nic-drivers and the router as configured.');
  L.push('- send = lan → wan (iperf3 client in the lan host); receive = wan → lan (iperf3 -R: the wan host sends into the trusted side). The paper\'s "SRV Host - PC Client" and "PC Host - SRV Client".');
  L.push(`- Latency: sockperf ping-pong over TCP, ${o.latencySize}-byte messages, round-trip percentiles (--full-rtt). UDP: iperf3 -u -l ${o.udpSize} -b 0 from one sender; delivered = received datagrams per second, loss from iperf3's sequence numbers. Small packets (small-SIZE, RFC 2544 style): trafgen (netsniff-ng) in the lan host sends SIZE-byte frames (with FCS) of UDP to the wan host; first ${o.trialSeconds} s unlimited on every CPU of the run (overload: delivered and offered), then ${o.steps} binary-search trials at set rates (one trafgen process) for the highest rate with < 0.1 % loss; delivered = frames the wan host's interfaces received.`);
  L.push(`- Goals: each compares figures per repetition (each pair measured back to back); the value is the worst figure's median, the detail gives every repetition. Added p50 = microgate p50 − Linux p50 of the same repetition. Sweep: iperf3 TCP with -l SIZE (write size, like netperf -m).`);
  L.push('- Cores: "N cores" runs the whole experiment on the first N CPUs: the traffic tools of both hosts (taskset -c) and, for microgate, every thread of init and the components (taskset -a -p, before each run). The Linux kernel forwards in softirq context on the CPU of the sender, so pinning the tools pins its forwarding too.');
  L.push('- Buffers: x1 = 256 slots per session direction (the default), x8 = 2048.');
  L.push('- All labs are built once and stay up; the runs go repetition by repetition, figure by figure, the configurations round-robin with the first one rotating, so noise on the machine hits every configuration alike.');
  L.push('');
  return `${L.join('\n')}\n`;
}

/** The last repetition's trace of each figure but the sweep, per traced configuration. */
function traceSection(r: BenchResult): string {
  const L: string[] = [];
  L.push('The gateway\'s tracepoints during the traced configuration\'s runs (last repetition of each figure; all of them are in bench.json). Durations in ns (k = 10^3, M = 10^6); each includes one clock read (~40-50 ns). Spikes: procedures whose max exceeds 10x their p50. Entrypoint threads: busy = running pollables, idle = blocked in poll, other = Node\'s event loop (timers, control, GC).');
  L.push('');
  for (const [id, traces] of Object.entries(r.trace ?? {})) {
    const label = r.configs.find((c) => c.id === id)?.label ?? id;
    const last = new Map<string, TraceSummary>();
    for (const t of traces) if (!t.test.startsWith('sweep-')) last.set(t.test, t);
    for (const t of last.values()) {
      const title = r.tests.find((x) => x.id === t.test)?.title ?? t.test;
      L.push(`### ${label}: ${title}, repetition ${t.rep} (trace window ${t.windowS.toFixed(1)} s, mode ${t.mode})`);
      L.push('');
      L.push(mdTable([['component', 'procedure', 'count', 'mean', 'p50', 'p99', 'p99.9', 'max'],
        ...t.rows.map((x) => [x.component, x.procedure, String(x.count), fmtNs(x.mean_ns), fmtNs(x.p50_ns), fmtNs(x.p99_ns), fmtNs(x.p999_ns), fmtNs(x.max_ns)])]));
      L.push('');
      if (t.spikes.length > 0) {
        L.push(`Spikes: ${t.spikes.slice(0, 6).map((x) => `${x.component} ${x.procedure} max ${fmtNs(x.max_ns)} = ${x.ratio}x p50`).join('; ')}.`);
        L.push('');
      }
      if (t.loops.length > 0) {
        L.push(mdTable([['entrypoint thread', 'busy %', 'idle %', 'other %', 'turns', 'sleeps'],
          ...t.loops.map((l) => [l.thread, l.busyPct.toFixed(1), l.idlePct.toFixed(1), l.otherPct.toFixed(1), String(l.turns), String(l.sleeps)])], 1));
        L.push('');
      }
    }
  }
  return L.join('\n');
}
