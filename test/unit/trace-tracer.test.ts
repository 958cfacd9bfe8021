// Tracer rings and aggregates, histogram buckets and percentiles, the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracer } from '../../src/trace/tracer.ts';
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
  assert.equal(tr.t(), 0);
  assert.equal(tr.span(id, tr.t()), 0);
  assert.equal(tr.count('x'), 0);
  tr.setMode('aggregates');
  for (let i = 0; i < 10; i++) tr.record(id, performance.now(), 1000 * (i + 1));
  const t0 = tr.t();
  assert.ok(t0 > 0);
  assert.ok(tr.span(id, t0) >= t0);
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
    const t1 = tr.spanArg(a, tr.t(), 1);
    tr.span(b, t1);
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
  for (let i = 0; i < 10; i++) tr.span(a, tr.t());
  assert.equal(tr.snapshot().procs[0].timed, 10);
});
