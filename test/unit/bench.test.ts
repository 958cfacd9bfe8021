// The benchmark's pure parts: tool output parsers, statistics, the plan and
// its round-robin order, option errors, ratios and goals, the SVG charts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { BenchToolError, parseIperfTcp, parseIperfUdp, parseSockperf } from '../../src/bench/tools.ts';
import { median, summarize } from '../../src/bench/stats.ts';
import { parseProcStat, parseStatTicks } from '../../src/bench/procstat.ts';
import { cpuListFor, parseCpuList } from '../../src/bench/affinity.ts';
import { makePlan, variants, type BenchOptions } from '../../src/bench/plan.ts';
import { BenchUsageError, parseBenchArgs } from '../../src/bench/options.ts';
import { aggregate, type RunRecord } from '../../src/bench/results.ts';
import { metricsFor } from '../../src/bench/metrics.ts';
import { barChart } from '../../src/bench/svg.ts';
import { charts } from '../../src/bench/charts.ts';
import { markdownReport, ratioTable } from '../../src/bench/report.ts';
import { Progress, formatDuration } from '../../src/bench/progress.ts';

const tcpJson = (bps: number, extra: Record<string, unknown> = {}): string => JSON.stringify({
  start: {},
  end: {
    sum_sent: { bits_per_second: bps * 1.01, retransmits: 7 },
    sum_received: { bits_per_second: bps },
    cpu_utilization_percent: { host_total: 40, remote_total: 60 },
    ...extra,
  },
});

test('parseIperfTcp: received rate, retransmits, CPU of sender and receiver (swapped by -R)', () => {
  const v = parseIperfTcp(tcpJson(12.5e9), false);
  assert.deepEqual(v, { gbps: 12.5, retransmits: 7, senderCpu: 40, receiverCpu: 60 });
  const r = parseIperfTcp(tcpJson(12.5e9), true);
  assert.equal(r.senderCpu, 60);
  assert.equal(r.receiverCpu, 40);
});

test('parseIperfTcp: iperf3 errors and garbage give a BenchToolError that says what', () => {
  assert.throws(() => parseIperfTcp('{"error": "unable to connect to server: Connection refused"}', false), (e: Error) => e instanceof BenchToolError && /Connection refused/.test(e.message));
  assert.throws(() => parseIperfTcp('iperf3: error - boom', false), /printed no JSON: iperf3: error - boom/);
  assert.throws(() => parseIperfTcp('{"start": {}}', false), /no "end" section/);
  assert.throws(() => parseIperfTcp('{"end": {"sum_received": {}}}', false), /bits_per_second/);
});

test('parseIperfUdp: delivered and offered packet rates and loss from iperf3 3.12 JSON', () => {
  const text = JSON.stringify({
    end: {
      sum_sent: { seconds: 3.00015, packets: 597160, bytes: 38218240 },
      sum_received: { seconds: 3.000421, bytes: 17662144, lost_packets: 321188, packets: 597159 },
      sum: { seconds: 3.000421, lost_packets: 321188, packets: 597159 },
      cpu_utilization_percent: { host_total: 48, remote_total: 30 },
    },
  });
  const v = parseIperfUdp(text, false);
  assert.ok(Math.abs(v.pps - (597159 - 321188) / 3.000421) < 1e-6);
  assert.ok(Math.abs(v.sentPps - 597160 / 3.00015) < 1e-6);
  assert.ok(Math.abs(v.lossPct - 53.786) < 0.001);
  assert.equal(v.senderCpu, 48);
  // Older iperf3: only end.sum.
  const old = parseIperfUdp(JSON.stringify({ end: { sum: { seconds: 2, packets: 100, lost_packets: 10, bytes: 5760 } } }), false);
  assert.equal(old.pps, 45);
  assert.throws(() => parseIperfUdp(JSON.stringify({ end: { sum_received: { bits_per_second: 1 } } }), false), /no packets/);
});

const SOCKPERF = `sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m
sockperf: [Total Run] RunTime=3.000 sec; Warm up time=400 msec; SentMessages=39037; ReceivedMessages=39036
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=2.550 sec; SentMessages=36543; ReceivedMessages=36543
sockperf: \x1b[2;35m====> avg-rtt=69.767 (std-dev=101.360)\x1b[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Round trip is 69.767 usec
sockperf: \x1b[2;35mTotal 36543 observations\x1b[0m; each percentile contains 365.43 observations
sockperf: ---> <MAX> observation = 10512.871
sockperf: ---> percentile 99.999 = 10512.871
sockperf: ---> percentile 99.990 = 3678.712
sockperf: ---> percentile 99.900 =  802.051
sockperf: ---> percentile 99.000 =  188.880
sockperf: ---> percentile 90.000 =   80.569
sockperf: ---> percentile 75.000 =   63.043
sockperf: ---> percentile 50.000 =   59.808
sockperf: ---> percentile 25.000 =   58.957
sockperf: ---> <MIN> observation =   41.271
`;

test('parseSockperf: round-trip percentiles, avg, rate (colour codes stripped)', () => {
  const v = parseSockperf(SOCKPERF);
  assert.equal(v.p50, 59.808);
  assert.equal(v.p90, 80.569);
  assert.equal(v.p99, 188.88);
  assert.equal(v.p999, 802.051);
  assert.equal(v.p9999, 3678.712);
  assert.equal(v.max, 10512.871);
  assert.equal(v.min, 41.271);
  assert.equal(v.avg, 69.767);
  assert.equal(v.observations, 36543);
  assert.ok(Math.abs(v.rtps - 36543 / 2.55) < 1e-9);
  assert.throws(() => parseSockperf('sockperf: ERROR: Failed to connect (errno=111)\n'), /no percentiles: Failed to connect/);
});

test('stats: median and spread; missing samples counted, not averaged in', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const s = summarize([10, NaN, 8, 12]);
  assert.deepEqual(s, { samples: [10, 8, 12], missing: 1, median: 10, min: 8, max: 12, spread: 0.4 });
  assert.equal(summarize([5]).spread, 0);
  assert.ok(Number.isNaN(summarize([NaN]).median));
});

test('procstat: utime+stime of a stat line whose command has spaces and parens; /proc/stat totals', () => {
  const line = '1234 (node (worker) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 1000 200 0';
  assert.deepEqual(parseStatTicks(line), { comm: 'node (worker) x', ticks: 300 });
  assert.equal(parseStatTicks('garbage'), undefined);
  const t = parseProcStat('cpu  100 5 50 800 10 1 20 0 0 0\ncpu0 1 2 3 4\n');
  assert.deepEqual(t, { user: 105, system: 50, softirq: 20, irq: 1, idle: 810, total: 986 });
});

test('affinity: CPU lists', () => {
  assert.deepEqual(parseCpuList('0-2,5'), [0, 1, 2, 5]);
  assert.deepEqual(parseCpuList('3'), [3]);
  assert.throws(() => parseCpuList('a-b'), /bad CPU list/);
  assert.equal(cpuListFor(1, [2, 3]), '2');
  assert.equal(cpuListFor(2, [2, 3]), '2,3');
  assert.throws(() => cpuListFor(3, [0, 1]), /cannot use 3 core\(s\): this process may run on 2 CPU\(s\)/);
});

const opts = (o: Partial<BenchOptions> = {}): BenchOptions => ({
  isolation: ['process', 'thread', 'inline'], transport: ['shm', 'socket'], cores: [2, 1], slots: [1, 8], spin: [0], link: ['tap'], trace: ['off'],
  grid: false, repeat: 3, seconds: 5, sweepSeconds: 2, sizes: [64, 65536], tests: ['tcp', 'latency', 'udp', 'sweep'], udpSize: 64, latencySize: 64, frames: [64, 512], trialSeconds: 2, steps: 4, ...o,
});

test('plan: the base and one change at a time; one Linux reference per core count; labs shared across cores', () => {
  const p = makePlan(opts(), 2);
  assert.deepEqual(p.configs.map((c) => c.id), [
    'linux-c2', 'linux-c1',
    'mg-process-shm-x1-c2', 'mg-thread-shm-x1-c2', 'mg-inline-shm-x1-c2', 'mg-process-socket-x1-c2', 'mg-process-shm-x8-c2', 'mg-process-shm-x1-c1',
  ]);
  assert.equal(p.base, 'mg-process-shm-x1-c2');
  assert.deepEqual([...p.labs.keys()], ['linux', 'mg-process-shm-x1', 'mg-thread-shm-x1', 'mg-inline-shm-x1', 'mg-process-socket-x1', 'mg-process-shm-x8']);
  assert.equal(p.configs.find((c) => c.id === 'mg-process-shm-x1-c1')?.label, 'microgate process/shm, 1 core');
  assert.deepEqual(p.tests.map((t) => t.id), ['tcp-tx', 'tcp-rx', 'latency', 'udp-tx', 'udp-rx', 'sweep-64', 'sweep-65536']);
  assert.equal(p.runs.length, 3 * 7 * 8);
  // Round-robin: every test of every repetition runs each configuration once, the first one rotating.
  const first = p.runs.filter((r) => r.test.id === 'tcp-tx').map((r) => r.config.id);
  assert.deepEqual(first.slice(0, 8), p.configs.map((c) => c.id));
  assert.deepEqual(first.slice(8, 16), [...p.configs.slice(1), p.configs[0]].map((c) => c.id));
  for (const rep of [1, 2, 3]) for (const t of p.tests) assert.equal(new Set(p.runs.filter((r) => r.rep === rep && r.test.id === t.id).map((r) => r.config.id)).size, 8);
});

test('plan: tcp6 adds IPv6 TCP both ways (family 6, kind tcp: measured, summarised and charted as TCP), every configuration in the same run', () => {
  const p = makePlan(opts({ isolation: ['process'], transport: ['shm'], cores: [2], slots: [1], tests: ['tcp', 'tcp6'], repeat: 2 }), 2);
  assert.deepEqual(p.tests.map((t) => [t.id, t.kind, t.family, t.direction]), [
    ['tcp-tx', 'tcp', 4, 'tx'], ['tcp-rx', 'tcp', 4, 'rx'], ['tcp6-tx', 'tcp', 6, 'tx'], ['tcp6-rx', 'tcp', 6, 'rx'],
  ]);
  for (const id of ['tcp6-tx', 'tcp6-rx']) assert.deepEqual(p.runs.filter((r) => r.test.id === id).map((r) => r.config.id).sort(), ['linux-c2', 'linux-c2', 'mg-process-shm-x1-c2', 'mg-process-shm-x1-c2']);
  assert.deepEqual(metricsFor(p.tests).filter((m) => m.headline).map((m) => m.name), ['TCP send', 'TCP send, CPU per GB', 'TCP send, wake-ups per packet',
    'TCP receive', 'TCP receive, CPU per GB', 'TCP receive, wake-ups per packet', 'TCP/IPv6 send', 'TCP/IPv6 receive']);
  assert.deepEqual(parseBenchArgs(['--quick'], 2).options.tests, ['tcp', 'tcp6', 'latency', 'udp', 'small', 'sweep']);
});

test('plan: --grid takes every combination; traced variants share the untraced lab', () => {
  assert.equal(variants(opts({ grid: true })).length, 3 * 2 * 2 * 2);
  const p = makePlan(opts({ isolation: ['process'], transport: ['shm'], cores: [2], slots: [1], trace: ['off', 'aggregates'] }), 2);
  assert.deepEqual(p.configs.map((c) => `${c.id} ${c.lab}`), ['linux-c2 linux', 'mg-process-shm-x1-c2 mg-process-shm-x1', 'mg-process-shm-x1-c2-trace mg-process-shm-x1']);
});

test('plan: --link packet adds microgate on packet links (a lab of its own, TAP ids unchanged), alternating with TAP and Linux', () => {
  const p = makePlan(opts({ isolation: ['process'], transport: ['shm'], cores: [2], slots: [1], link: ['tap', 'packet'], tests: ['tcp'], repeat: 2 }), 2);
  assert.deepEqual(p.configs.map((c) => `${c.id} ${c.lab}`), ['linux-c2 linux', 'mg-process-shm-x1-c2 mg-process-shm-x1', 'mg-process-shm-x1-packet-c2 mg-process-shm-x1-packet']);
  assert.equal(p.configs[2].label, 'microgate process/shm, packet links');
  assert.deepEqual(p.labs.get('mg-process-shm-x1-packet'), { gateway: 'microgate', isolation: 'process', transport: 'shm', slots: 1, spin: 0, sync: false, link: 'packet' });
  // Round robin, the first configuration rotating per repetition.
  assert.deepEqual(p.runs.filter((r) => r.test.id === 'tcp-tx').map((r) => r.config.id), [
    'linux-c2', 'mg-process-shm-x1-c2', 'mg-process-shm-x1-packet-c2',
    'mg-process-shm-x1-c2', 'mg-process-shm-x1-packet-c2', 'linux-c2',
  ]);
  assert.equal(variants(opts({ grid: true, link: ['tap', 'packet'] })).length, 3 * 2 * 2 * 2 * 2);
});

test('options: defaults, --quick, and specific errors for bad values', () => {
  const d = parseBenchArgs([], 2).options;
  assert.deepEqual([d.isolation, d.transport, d.cores, d.slots, d.trace, d.repeat], [['process', 'thread', 'inline'], ['shm', 'socket'], [2, 1], [1, 8], ['off'], 3]);
  const q = parseBenchArgs(['--quick'], 2).options;
  assert.deepEqual([q.isolation, q.cores, q.repeat, q.seconds, q.sizes], [['process'], [2], 1, 1, [1024, 65536]]);
  assert.deepEqual(parseBenchArgs(['--quick', '--isolation', 'inline,process'], 2).options.isolation, ['inline', 'process']);
  assert.deepEqual(parseBenchArgs(['--trace', 'off,on,events'], 2).options.trace, ['off', 'aggregates', 'events']);
  assert.deepEqual(parseBenchArgs(['--slots', 'x1,8'], 2).options.slots, [1, 8]);
  assert.deepEqual(parseBenchArgs([], 1).options.cores, [1]);
  assert.deepEqual([d.link, q.link], [['tap'], ['tap']]);
  assert.deepEqual(parseBenchArgs(['--link', 'packet,tap'], 2).options.link, ['packet', 'tap']);
  const bad: [string[], RegExp][] = [
    [['--isolation', 'vm'], /--isolation: "vm" is not one of process, thread, inline/],
    [['--isolation', 'process,process'], /"process" is listed twice/],
    [['--slots', 'x3'], /--slots: "x3" is not a buffer multiplier/],
    [['--cores', '4'], /--cores: expected a whole number from 1 to 2, got "4"/],
    [['--repeat', '0'], /--repeat: expected a whole number from 1 to 100/],
    [['--seconds', '1.5'], /--seconds: expected whole seconds/],
    [['--tests', 'tcp,ping'], /"ping" is not one of tcp, tcp6, latency, udp, small, sweep/],
    [['--isolation', ''], /expected a comma-separated list/],
    [['--link', 'tun'], /--link: "tun" is not one of tap, packet/],
    [['extra'], /unexpected argument "extra"/],
  ];
  for (const [argv, re] of bad) assert.throws(() => parseBenchArgs(argv, 2), (e: Error) => e instanceof BenchUsageError && re.test(e.message), argv.join(' '));
});

/** A result from synthetic runs: Linux 10 Gbit/s both ways; microgate tx 9, 8, 7 and rx 6, 6, 6. */
function synthetic(): ReturnType<typeof aggregate> {
  const o = opts({ isolation: ['process', 'inline'], transport: ['shm'], cores: [2], slots: [1], tests: ['tcp', 'latency'], repeat: 3 });
  const plan = makePlan(o, 2);
  const runs: RunRecord[] = [];
  for (const r of plan.runs) {
    const mg = r.config.gateway === 'microgate';
    const inline = r.config.isolation === 'inline';
    let values: Record<string, number>;
    if (r.test.id === 'latency') values = { p50: mg ? 50 : 20, p99: mg ? 200 : 40, p999: mg ? 900 : 60, rtps: mg ? 10000 : 40000, max: 1000 };
    else if (r.test.id === 'tcp-tx') values = { gbps: mg ? (inline ? 10 : [9, 8, 7][r.rep - 1]) : 10, retransmits: 0, senderCpu: 50, receiverCpu: 50 };
    else values = { gbps: mg ? 6 : 10, retransmits: 0, senderCpu: 50, receiverCpu: 50 };
    runs.push({ config: r.config.id, test: r.test.id, rep: r.rep, startedAt: '', seconds: 1, values, cpu: mg ? { seconds: 1, units: [{ name: 'router', pid: 1, cpuPct: 30, threads: [] }], system: { cpus: 2, busyPct: 80, userPct: 30, systemPct: 40, softirqPct: 10 } } : undefined });
  }
  runs[runs.length - 1] = { ...runs[runs.length - 1], error: 'iperf3: boom', values: {} };
  return aggregate({ plan, options: o, runs, labs: { linux: 'b00000', 'mg-process-shm-x1': 'b00001' }, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z', command: 'npx microgate bench', machine: { cpus: 2, cpuModel: 'test', kernel: '6', node: '26', iperf3: 'iperf 3.12', sockperf: '3.7' }, trace: null, traceNote: null });
}

test('aggregate: paired per-repetition ratios, tx_ratio / rx_ratio, goals met, not met and not measured', () => {
  const r = synthetic();
  assert.equal(r.tx_ratio, 0.8);
  assert.equal(r.rx_ratio, 0.6);
  assert.deepEqual(r.ratios['mg-process-shm-x1-c2']['tcp-tx'].gbps, { ratio: 0.8, min: 0.7, max: 0.9, samples: [0.9, 0.8, 0.7], against: 'linux-c2' });
  assert.equal(r.ratios['mg-process-shm-x1-c2'].latency.p50.ratio, 2.5);
  assert.equal(r.failures.length, 1);
  const g = Object.fromEntries(r.goals.map((x) => [x.id, x]));
  assert.equal(g['tcp-vs-linux'].met, false);
  assert.equal(g['tcp-vs-linux'].value, 0.6);
  assert.deepEqual(g['tcp-vs-linux'].parts.map((p) => [p.figure, p.samples]), [['tcp-tx gbps', [0.9, 0.8, 0.7]], ['tcp-rx gbps', [0.6, 0.6, 0.6]]]);
  assert.equal(g['process-vs-inline'].met, false);
  assert.equal(g['process-vs-inline'].value, 0.8); // send 8 / 10 (9, 8, 7 / 10); receive 6 / 6
  // Latency: rate 10k vs 40k = 0.25x; added p50 50 - 20 = 30 µs (repetition 3 of microgate failed: 2 pairs).
  assert.equal(g['rr-rate'].value, 0.25);
  assert.equal(g['rr-rate'].met, false);
  assert.equal(g['rr-added-p50'].value, 30);
  assert.deepEqual(g['rr-added-p50'].parts[0].samples, [30, 30]);
  assert.equal(g['small-64'].met, null);
  assert.equal(g['cpu-per-gb'].met, null); // no cost columns in these runs
  assert.match(g['cpu-per-gb'].detail, /^not measured/);
  assert.equal(g['two-cores'].met, null);
  assert.match(g['two-cores'].detail, /not measured: run with --cores 2,1/);
  assert.equal(g['latency-tail'].met, false);
  assert.equal(g['latency-tail'].value, 18);
  assert.deepEqual(r.goals.map((x) => x.id), ['tcp-vs-linux', 'process-vs-inline', 'rr-rate', 'rr-added-p50', 'small-64', 'small-512', 'cpu-per-gb', 'cpu-per-mpkt', 'two-cores', 'latency-tail']);
  const table = ratioTable(r, { spread: true });
  assert.match(table, /^TCP send\s+Gbit\/s\s+10\.00\s+0\.80x \[0\.70-0\.90\]\s+1\.00x$/m);
  const md = markdownReport(r, { charts: [...charts(r).keys()] });
  assert.match(md, /\| TCP both ways ≥ 0\.9x Linux \(process isolation\) \| ≥ 0\.90 \| 0\.60 \| ❌ not met \| .*tcp-tx gbps 0\.80x \[0\.70–0\.90; 0\.90, 0\.80, 0\.70\]/);
  assert.match(md, /## Failures\n\n- mg-[a-z0-9-]+, latency, repetition 3: iperf3: boom/);
  assert.match(md, /router 30%/);
});

test('svg: well-formed, one bar per configuration and group, labels escaped', () => {
  const r = synthetic();
  const configs = r.configs.map((c, i) => (i === 0 ? { ...c, label: 'Linux <ref> & "nft"' } : c));
  const svg = barChart({ title: 'A & B', yLabel: 'Gbit/s', configs, groups: [
    { key: 'tx', label: 'send', bars: configs.map((c) => ({ config: c.id, value: 5, min: 4, max: 6, note: '0.5x' })) },
    { key: 'rx', label: 'receive', bars: configs.map((c) => ({ config: c.id, value: NaN })) },
  ] });
  assert.equal(XMLValidator.validate(svg), true);
  const doc = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === 'rect' || n === 'g' }).parse(svg);
  const rects = (doc.svg.g as { rect?: Record<string, string>[] }[]).flatMap((g) => g.rect ?? []).filter((x) => x['@_class'] === 'bar');
  assert.equal(rects.length, configs.length * 2);
  assert.ok(svg.includes('Linux &lt;ref&gt; &amp; &quot;nft&quot;'));
  assert.ok(rects.filter((x) => x['@_data-group'] === 'rx').every((x) => x['@_data-value'] === 'NaN' && x['@_height'] === '0'));
  for (const [name, text] of charts(r)) assert.equal(XMLValidator.validate(text), true, name);
});

test('progress: one line per run on a pipe, with the time left', () => {
  let text = '';
  const out = { write: (s: string) => ((text += s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  const p = new Progress(20, { out });
  p.begin(1, 2, 'rep 1 tcp-tx Linux', 10);
  p.end('12.00 Gbit/s');
  p.log('building lab');
  p.begin(2, 2, 'rep 1 tcp-tx microgate', 10);
  p.end('FAILED: boom');
  p.done();
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0], /^\[1\/2  0%\] rep 1 tcp-tx Linux {2}\(0s elapsed, ~20s left\) {2}12\.00 Gbit\/s$/);
  assert.equal(lines[1], 'building lab');
  assert.match(lines[2], /^\[2\/2 50%\] rep 1 tcp-tx microgate .*~5s left\) {2}FAILED: boom$/);
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(75), '1m15s');
});

test('plan: --sync off,on adds the base with conn-sync, in a lab of its own', () => {
  assert.deepEqual(parseBenchArgs(['--sync', 'off,on'], 2).options.sync, [false, true]);
  assert.throws(() => parseBenchArgs(['--sync', 'maybe'], 2), BenchUsageError);
  const p = makePlan(opts({ isolation: ['process'], transport: ['shm'], cores: [2], slots: [1], sync: [false, true] }), 2);
  assert.deepEqual(p.configs.map((c) => c.id), ['linux-c2', 'mg-process-shm-x1-c2', 'mg-process-shm-x1-sync-c2']);
  assert.equal(p.configs[2].label, 'microgate process/shm, conn-sync');
  assert.equal(p.labs.get('mg-process-shm-x1-sync')?.sync, true);
  assert.equal(p.labs.get('mg-process-shm-x1')?.sync, false);
});

test('--spin drivers:N: a budget for the drivers\' loops only, its own lab and label; bad values refused', () => {
  assert.deepEqual(parseBenchArgs(['--spin', '0,drivers:200,200'], 2).options.spin, [0, 'drivers:200', 200]);
  assert.throws(() => parseBenchArgs(['--spin', 'drivers:x'], 2), BenchUsageError);
  assert.throws(() => parseBenchArgs(['--spin', 'drivers:20000'], 2), BenchUsageError);
  const p = makePlan(opts({ isolation: ['process'], transport: ['shm'], cores: [2], slots: [1], spin: [0, 'drivers:200'], tests: ['tcp'] }), 2);
  const c = p.configs.find((x) => x.spin === 'drivers:200');
  assert.equal(c?.id, 'mg-process-shm-x1-spindrv200-c2');
  assert.equal(c?.label, 'microgate process/shm, polling 200 µs (drivers only)');
});
