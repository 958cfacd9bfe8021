// Tracer rings and aggregates, histogram buckets and percentiles, the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RING_EVENTS, EVENT_BYTES, MAX_EVENT_ARG, MAX_EVENT_DUR_NS, MAX_PROCS, MIN_EVENT_ARG, Tracer } from '../../src/trace/tracer.ts';
import { DEFAULT_TRACE_SETTINGS } from '../../src/trace/protocol.ts';
import { BUCKETS, bucketOf, bucketRange, bucketsToHdr, decodeHdr, encodeHdr, percentiles } from '../../src/trace/histogram.ts';
import { buildReport, formatReport } from '../../src/trace/report.ts';

test('buckets: every value falls in its bucket, buckets never go backwards, relative width <= 1/32', () => {
  let prev = 0;
  for (let v = 0; v < 3e6; v = v < 200 ? v + 1 : Math.ceil(v * 1.003)) {
    const b = bucketOf(v);
    const [low, width] = bucketRange(b);
    assert.ok(low <= v && v < low + width, `${v} in bucket ${b} [${low}, ${low + width})`);
    assert.ok(b >= prev);
    if (v >= 64) assert.ok(width / low <= 1 / 32);
    prev = b;
  }
  for (const v of [2 ** 31 - 1, 2 ** 31, 2 ** 35 + 12345, 2 ** 40 - 1]) {
    const [low, width] = bucketRange(bucketOf(v));
    assert.ok(low <= v && v < low + width, String(v));
  }
  assert.equal(bucketOf(1e18), BUCKETS - 1);
});

test('percentiles from the buckets through HdrHistogram (and its base64 form) are within bucket resolution', () => {
  const counts = new Float64Array(BUCKETS);
  for (let v = 1; v <= 100000; v++) counts[bucketOf(v)]++;
  const p = percentiles(decodeHdr(encodeHdr(bucketsToHdr(counts))), 100000);
  for (const [got, want] of [[p.p50, 50000], [p.p99, 99000], [p.p999, 99900]]) {
    assert.ok(Math.abs(got - want) / want < 0.035, `${got} ~ ${want}`);
  }
});

test('off: a tracepoint records nothing; aggregates: count, sum, min, max, no events', () => {
  const tr = new Tracer({ component: 'c', mode: 'off' });
  const id = tr.proc('x');
  assert.equal(tr.begin(), 0);
  assert.equal(tr.end(id, tr.begin()), 0);
  assert.equal(tr.count('x'), 0);
  tr.setMode('aggregates');
  for (let i = 0; i < 10; i++) tr.record(id, performance.now(), 1000 * (i + 1));
  const t0 = tr.begin();
  assert.ok(t0 > 0);
  assert.ok(tr.end(id, t0) >= t0);
  const s = tr.snapshot({ events: true });
  const p = s.procs[0];
  assert.equal(p.count, 11);
  // The one real span takes whatever the machine gives it; the recorded ones are exact.
  assert.ok(p.maxNs >= 10000);
  assert.ok(p.minNs <= 1000);
  assert.ok(p.sumNs >= 55000);
  assert.equal(s.events?.total, 0);
  assert.equal(tr.proc('x'), id, 'registering again finds the same procedure');
});

test('events: the ring keeps the newest events, oldest first, and counts what it overwrote', () => {
  const tr = new Tracer({ component: 'c', mode: 'events', ringEvents: 16 });
  const a = tr.proc('a');
  const b = tr.proc('b');
  const base = performance.now();
  for (let i = 0; i < 40; i++) tr.record(i % 2 === 0 ? a : b, base + i, i * 10, i);
  const s = tr.snapshot({ events: true });
  const ev = s.events!;
  assert.equal(ev.total, 40);
  assert.equal(ev.lost, 24);
  assert.equal(ev.t.length, 16);
  assert.deepEqual(ev.arg, Array.from({ length: 16 }, (_, k) => 24 + k));
  assert.deepEqual(ev.dur, Array.from({ length: 16 }, (_, k) => (24 + k) * 10));
  assert.ok(ev.t.every((t, k) => k === 0 || t > ev.t[k - 1]), 'oldest first');
  assert.equal(s.procs[ev.proc[0]].name, 'a');
  assert.equal(tr.snapshot({ events: true, maxEvents: 3 }).events!.arg.join(), '37,38,39');
  tr.reset();
  assert.equal(tr.eventStats().total, 0);
  assert.equal(tr.count('a'), 0);
});

test('spikes: spans far above the mean are logged with their time; the report names them', () => {
  const tr = new Tracer({ component: 'drv', mode: 'aggregates' });
  const id = tr.proc('nic.submit_packet');
  tr.proc('ep.wait');
  const t = performance.now();
  for (let i = 0; i < 1000; i++) tr.record(id, t + i * 0.001, 190);
  for (let i = 0; i < 3; i++) tr.record(id, t + 5 + i, 160000 - i);
  const s = tr.snapshot();
  assert.equal(s.procs[0].spikes.length, 3);
  assert.equal(s.procs[0].spikes[0][1], 160000);
  const r = buildReport([{ ...s, loop: { turns: 10, sleeps: 5, busyNs: 1e6, idleNs: 3e6 } }], { spikeFactor: 10 });
  assert.equal(r.rows.length, 1, 'zero-count procedures are left out');
  const row = r.rows[0];
  assert.deepEqual([row.component, row.procedure, row.count, row.max_ns], ['drv', 'nic.submit_packet', 1003, 160000]);
  assert.ok(Math.abs(row.p50_ns - 190) <= 3, String(row.p50_ns));
  assert.equal(r.spikes.length, 1);
  assert.equal(r.spikes[0].when[0].durNs, 160000);
  assert.ok(r.spikes[0].ratio > 800, String(r.spikes[0].ratio));
  assert.deepEqual(r.spikes[0].when.map((w) => w.durNs), [160000, 159999, 159998]);
  assert.equal(r.loops[0].busyNs, 1e6);
  const text = formatReport(r);
  assert.match(text, /nic\.submit_packet/);
  assert.match(text, /spikes: 1 procedures.*\n {2}drv nic\.submit_packet +p50 +19\d .*max +160k: 160k at \+/);
});

test('sampling: every span is counted, about 1 in N is timed, chained stages follow their first', () => {
  const tr = new Tracer({ component: 'c', mode: 'aggregates', sample: 16 });
  const a = tr.proc('a');
  const b = tr.proc('b');
  for (let i = 0; i < 16000; i++) {
    const t1 = tr.end(a, tr.begin(), 1);
    tr.end(b, t1);
  }
  const [pa, pb] = tr.snapshot().procs;
  assert.equal(pa.count, 16000);
  assert.equal(pb.count, 16000);
  assert.ok(pa.timed > 700 && pa.timed < 1300, `about 1000 of 16000 timed (got ${pa.timed})`);
  assert.equal(pb.timed, pa.timed, 'b is timed exactly when a was');
  const r = buildReport([tr.snapshot()]);
  assert.equal(r.sample, 16);
  assert.equal(r.rows.find((x) => x.procedure === 'a')?.count, 16000);
  assert.match(formatReport(r), /1 in 16 spans timed/);
  assert.throws(() => tr.setSample(3), /power of two/);
  tr.setSample(1);
  tr.reset();
  for (let i = 0; i < 10; i++) tr.end(a, tr.begin());
  assert.equal(tr.snapshot().procs[0].timed, 10);
});

test('events are 16 bytes: a saturating 32-bit duration and 24-bit signed argument; aggregates keep the exact values', () => {
  const tr = new Tracer({ component: 'c', mode: 'events', ringEvents: 16 });
  const id = tr.proc('x');
  const t = performance.now();
  const cases: [dur: number, arg: number, wantDur: number, wantArg: number][] = [
    [123.7, 65550, 123, 65550], // a GSO frame's bytes
    [5e9, -11, MAX_EVENT_DUR_NS, -11], // 5 s saturates; -EAGAIN stays
    [MAX_EVENT_DUR_NS, MAX_EVENT_ARG + 1, MAX_EVENT_DUR_NS, MAX_EVENT_ARG],
    [0, -1e9, 0, MIN_EVENT_ARG],
    [1, 1e12, 1, MAX_EVENT_ARG],
    [7, MIN_EVENT_ARG, 7, MIN_EVENT_ARG],
  ];
  for (const [d, a] of cases) tr.record(id, t, d, a);
  const s = tr.snapshot({ events: true });
  assert.deepEqual(s.events!.dur, cases.map((c) => c[2]));
  assert.deepEqual(s.events!.arg, cases.map((c) => c[3]));
  assert.ok(s.events!.proc.every((p) => p === id));
  assert.equal(s.procs[0].maxNs, 5e9, 'the aggregates keep the unsaturated duration');
  assert.equal(s.procs[0].sumNs, Math.round(cases.reduce((x, c) => x + c[0], 0)));
});

test('procedure ids fit the event: the 257th procedure of a tracer is refused by name; ids stay right up to 255', () => {
  const tr = new Tracer({ component: 'router', mode: 'events', ringEvents: 16 });
  for (let i = 0; i < MAX_PROCS; i++) assert.equal(tr.proc(`p${i}`), i);
  assert.equal(tr.proc('p255'), 255, 'a known name is found, not registered again');
  assert.throws(() => tr.proc('one.too_many'), (e: Error) => e instanceof RangeError && /tracer "router".*"one\.too_many".*at most 256 procedures/.test(e.message));
  tr.record(255, performance.now(), 10, -5);
  tr.record(0, performance.now(), 10, 5);
  const s = tr.snapshot({ events: true });
  assert.deepEqual(s.events!.proc, [255, 0]);
  assert.deepEqual(s.events!.arg, [-5, 5]);
  assert.equal(s.procs[s.events!.proc[0]].name, 'p255');
  assert.equal(s.procs.length, MAX_PROCS);
});

test('ring size: 16 bytes per event, default 16384 (256 KiB), the same default in the config settings', () => {
  assert.equal(EVENT_BYTES, 16);
  assert.equal(DEFAULT_RING_EVENTS, 16384);
  assert.equal(DEFAULT_TRACE_SETTINGS.ringEvents, DEFAULT_RING_EVENTS);
  const tr = new Tracer({ component: 'c', mode: 'aggregates' });
  assert.equal(tr.eventStats().capacity, 0, 'no ring until events are switched on');
  tr.setMode('events');
  assert.equal(tr.eventStats().capacity, DEFAULT_RING_EVENTS);
  assert.throws(() => new Tracer({ component: 'c', ringEvents: 15 }), /ringEvents must be an integer in 16\.\./);
});

test('chainNext(): the next reading (a begin() or an end()) reuses the latest one; spans chain end to start', () => {
  const tr = new Tracer({ component: 'c', mode: 'events', ringEvents: 64 });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => tr.proc(n));
  const t0 = tr.begin();
  const t1 = tr.end(a, t0);
  assert.ok(t1 >= t0);
  assert.equal(tr.latest(), t1);
  // Chained start: no clock read, exactly the end of a.
  tr.chainNext();
  assert.equal(tr.begin(), t1);
  // The flag is used once: the next begin() reads the clock again.
  const t2 = tr.begin();
  assert.ok(t2 >= t1);
  // Chained end: b ends where the latest reading was (here t2).
  tr.chainNext();
  assert.equal(tr.end(b, t1, 3), t2);
  const t3 = tr.end(c, t2);
  assert.ok(t3 >= t2);
  const ev = tr.snapshot({ events: true }).events!;
  assert.deepEqual(ev.proc, [a, b, c]);
  // Contiguous: each event starts where the previous one ended (ns, rounded).
  for (let i = 1; i < ev.t.length; i++) assert.ok(Math.abs(ev.t[i] - (ev.t[i - 1] + ev.dur[i - 1])) <= 2, `event ${i} starts where ${i - 1} ended`);
  // Off: chainNext() is a no-op and switching modes drops a pending chain.
  tr.setMode('off');
  tr.chainNext();
  tr.setMode('aggregates');
  assert.ok(tr.begin() > t3, 'a fresh reading after the mode change');
  tr.chainNext();
  tr.setMode('aggregates');
  const t4 = tr.begin();
  assert.ok(t4 > 0 && t4 >= t3);
  tr.end(d, t4);
  assert.equal(tr.count('d'), 1);
});

test('chainNext() and sampling: a chain started untimed stays untimed, and a chained end after an untimed stage only counts', () => {
  const tr = new Tracer({ component: 'c', mode: 'aggregates', sample: 1024 });
  const a = tr.proc('a');
  const b = tr.proc('b');
  for (let i = 0; i < 4096; i++) {
    const t0 = tr.begin();
    const t1 = tr.end(a, t0);
    tr.chainNext();
    const t2 = tr.begin();
    assert.equal(t2, t1);
    tr.chainNext();
    tr.end(b, t2);
  }
  const [pa, pb] = tr.snapshot().procs;
  assert.equal(pa.count, 4096);
  assert.equal(pb.count, 4096);
  assert.equal(pb.timed, pa.timed, 'b is timed exactly when a was');
  assert.ok(pa.timed < 40, `about 4 of 4096 timed (got ${pa.timed})`);
  assert.ok(pb.minNs >= 0);
});

test('stage(): a stage inside a chain is timed with the chain (no sampling decision of its own), and reads the clock', () => {
  const tr = new Tracer({ component: 'c', mode: 'aggregates', sample: 16 });
  const [head, mid, tail, whole] = ['head', 'mid', 'tail', 'whole'].map((n) => tr.proc(n));
  for (let i = 0; i < 16000; i++) {
    const t0 = tr.begin();
    tr.end(head, t0);
    const tm = tr.stage(); // some work after head, then mid starts
    tr.end(mid, tm);
    tr.chainNext();
    const t3 = tr.begin(); // chained: tail starts where mid ended
    tr.end(tail, t3);
    tr.chainNext();
    tr.end(whole, t0); // ends where tail ended
  }
  const p = tr.snapshot().procs;
  assert.ok(p[0].timed > 700 && p[0].timed < 1300, `about 1000 of 16000 chains timed (got ${p[0].timed})`);
  for (const x of p) {
    assert.equal(x.count, 16000);
    assert.equal(x.timed, p[0].timed, `${x.name} is timed exactly when the chain's head was`);
  }
  // Every span timed: stage() reads the clock like begin().
  const all = new Tracer({ component: 'c', mode: 'aggregates' });
  const a = all.begin();
  const b = all.stage();
  assert.ok(a > 0 && b >= a);
  all.setMode('off');
  assert.equal(all.stage(), 0);
});

test('endAt(): a span between two readings already taken, no clock read; untimed ends only count; off records nothing', () => {
  const tr = new Tracer({ component: 'c', mode: 'events', ringEvents: 16 });
  const p = tr.proc('fill');
  const t0 = tr.begin();
  const t1 = tr.begin();
  assert.equal(tr.endAt(p, t0, t1, 7), t1);
  assert.equal(tr.latest(), t1, 'endAt() does not read the clock');
  tr.endAt(p, 0, t1, 1);
  const s = tr.snapshot({ events: true });
  assert.equal(s.procs[0].count, 2);
  assert.equal(s.procs[0].timed, 1);
  assert.deepEqual(s.events!.arg, [7]);
  assert.ok(Math.abs(s.events!.dur[0] - (t1 - t0) * 1e6) <= 1);
  tr.setMode('off');
  assert.equal(tr.endAt(p, t0, t1, 7), 0);
  assert.equal(tr.count('fill'), 2);
});
