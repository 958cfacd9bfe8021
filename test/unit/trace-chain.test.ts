// Chained tracepoints through a real session (in-process rings): the stages a
// driver and a router record, each starting at the previous one's reading, so
// that one clock read serves the end of one stage and the start of the next.
// The event ring shows it: events of a chain are contiguous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalSession } from '../../src/session/local.ts';
import { createSessionResources } from '../../src/session/create.ts';
import { openSocketEnd } from '../../src/session/socket.ts';
import { sinkPollable, traceRuns } from '../../src/session/pollable.ts';
import { Tracer } from '../../src/trace/tracer.ts';
import type { EventsSnapshot, TracerSnapshot } from '../../src/trace/tracer.ts';

interface Ev { name: string; t: number; end: number; arg: number }

function events(s: TracerSnapshot): Ev[] {
  const e = s.events as EventsSnapshot;
  return e.t.map((t, i) => ({ name: s.procs[e.proc[i]].name, t, end: t + e.dur[i], arg: e.arg[i] }));
}

/** Two readings are the same one: ns, start rounded and duration truncated, so 2 ns slack. */
function assertSame(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 2, `${what} (${a} vs ${b})`);
}

/** Each event starts where the previous one ended (ns, rounded: 2 ns slack). */
function assertContiguous(evs: Ev[], what: string): void {
  for (let i = 1; i < evs.length; i++) {
    assert.ok(Math.abs(evs[i].t - evs[i - 1].end) <= 2, `${what}: ${evs[i].name} (#${i}) starts where ${evs[i - 1].name} ended (${evs[i].t} vs ${evs[i - 1].end})`);
  }
}

test('a driver-like sender and a router-like receiver over a session: every stage recorded, chained end to start', () => {
  const [a, b] = createLocalSession({ slots: 8, slotSize: 256, names: ['nic', 'lan'] });
  try {
    const ta = new Tracer({ component: 'drv', mode: 'events', ringEvents: 256 });
    const tb = new Tracer({ component: 'router', mode: 'events', ringEvents: 256 });
    a.attachTrace(ta, 'nic');
    b.attachTrace(tb, 'lan');
    const pPacket = tb.proc('router.packet');

    // The sender, as the nic-driver's receive loop is: no tracer call of its
    // own; the session end times the fill (traceFill) and traceRuns the batch.
    a.out.traceFill('driver.read');
    let batch = 0;
    const rx = traceRuns(ta, 'driver.rx_batch', {
      fd: -1,
      run(): number {
        for (let i = 0; i < batch; i++) {
          const off = a.out.alloc();
          assert.ok(off >= 0);
          a.out.buf.fill(i + 1, off, off + 60);
          a.out.submit(off, 60);
        }
        a.out.flush();
        return batch;
      },
    }, true);
    const send = (n: number): void => {
      batch = n;
      rx.run(false);
    };
    // The receiver, as the router's packet handler does it (its own tracepoints, chained).
    const seen: number[] = [];
    const p = sinkPollable(b.in, (off, len) => {
      const t0 = tb.latest();
      seen.push(b.in.buf[off]);
      tb.end(pPacket, t0, len);
      tb.chainNext();
    });

    send(3);
    assert.equal(p.run(false), 3);
    assert.deepEqual(seen, [1, 2, 3]);
    // The next batch reclaims the acknowledged slots inside alloc_packet.
    send(2);
    assert.equal(p.run(false), 2);

    const ea = events(ta.snapshot({ events: true }));
    assert.deepEqual(ea.map((e) => e.name), [
      'nic.alloc_packet', 'driver.read', 'nic.submit_packet', 'nic.alloc_packet', 'driver.read', 'nic.submit_packet',
      'nic.alloc_packet', 'driver.read', 'nic.submit_packet', 'nic.flush', 'driver.rx_batch',
      'nic.get_acked', 'nic.alloc_packet', 'driver.read', 'nic.submit_packet', 'nic.alloc_packet', 'driver.read', 'nic.submit_packet',
      'nic.flush', 'driver.rx_batch',
    ]);
    // Within a batch, the stages are contiguous; rx_batch spans them all.
    assertContiguous(ea.slice(0, 10), 'first batch');
    assert.equal(ea[10].t, ea[0].t, 'rx_batch starts with the first alloc_packet');
    assertSame(ea[10].end, ea[9].end, 'rx_batch ends with flush');
    assert.equal(ea[10].arg, 3);
    assert.ok(ea.filter((e) => e.name === 'driver.read').every((e) => e.arg === 60), 'the fill carries the bytes submitted');
    // get_acked runs inside alloc_packet: same start, same end.
    assert.equal(ea[11].t, ea[12].t);
    assertSame(ea[11].end, ea[12].end, 'get_acked ends with alloc_packet');
    assert.equal(ea[11].arg, 3, 'three slots reclaimed');
    assertContiguous(ea.slice(12, 19), 'second batch');

    const eb = events(tb.snapshot({ events: true }));
    assert.deepEqual(eb.map((e) => e.name), [
      'lan.get_packet', 'router.packet', 'lan.get_packet', 'router.packet', 'lan.get_packet', 'router.packet', 'lan.acknowledge_packet',
      'lan.get_packet', 'router.packet', 'lan.get_packet', 'router.packet', 'lan.acknowledge_packet',
    ]);
    assertContiguous(eb.slice(0, 7), 'first batch');
    assertContiguous(eb.slice(7), 'second batch');
    assert.equal(eb[6].arg, 3, 'three acknowledged at once');
    assert.ok(ea.every((e) => e.end >= e.t) && eb.every((e) => e.end >= e.t));
  } finally {
    a.close();
    b.close();
  }
});

test('a stale reading is never chained: a sink that was not just woken reads the clock', async () => {
  const [a, b] = createLocalSession({ slots: 4, slotSize: 128 });
  try {
    const tb = new Tracer({ component: 'r', mode: 'events', ringEvents: 64 });
    b.attachTrace(tb);
    const pX = tb.proc('x');
    // A reading long before the batch: the batch's first get_packet must not start there.
    const old = tb.end(pX, tb.begin());
    await new Promise((r) => setTimeout(r, 20));
    const off = a.out.alloc();
    a.out.submit(off, 10);
    a.out.flush();
    b.in.receive(() => undefined, 8);
    b.in.flushAcks();
    const eb = events(tb.snapshot({ events: true }));
    assert.deepEqual(eb.map((e) => e.name), ['x', 'b.get_packet', 'b.acknowledge_packet']);
    assert.ok(eb[1].end - eb[1].t < 10e6, `get_packet took ${eb[1].end - eb[1].t} ns, not the 20 ms since the old reading`);
    assert.ok(eb[1].t > Math.round(tb.toMonotonicNs(old)) + 10e6);
  } finally {
    a.close();
    b.close();
  }
});

test('traceHandler: a sink times the handling of each packet with no tracepoint in the handler; a released fill counts with argument 0', () => {
  const [a, b] = createLocalSession({ slots: 8, slotSize: 256, names: ['nic', 'nic'] });
  try {
    const ta = new Tracer({ component: 'drv-a', mode: 'events', ringEvents: 256 });
    const tb = new Tracer({ component: 'drv-b', mode: 'events', ringEvents: 256 });
    // Named before the tracer is attached, as a component may: registered at attach.
    b.in.traceHandler('driver.write');
    a.out.traceFill('driver.read');
    a.attachTrace(ta, 'nic');
    b.attachTrace(tb, 'nic');
    for (let i = 0; i < 3; i++) {
      const off = a.out.alloc();
      a.out.submit(off, 40 + i);
    }
    const spare = a.out.alloc();
    a.out.release(spare);
    a.out.flush();
    let sum = 0;
    const p = sinkPollable(b.in, (off, len) => {
      for (let k = 0; k < 2000; k++) sum += b.in.buf[off + (k % len)];
    });
    assert.equal(p.run(false), 3);
    assert.ok(sum >= 0);
    const ea = events(ta.snapshot({ events: true }));
    const reads = ea.filter((e) => e.name === 'driver.read');
    assert.deepEqual(reads.map((e) => e.arg), [40, 41, 42, 0]);
    const eb = events(tb.snapshot({ events: true }));
    assert.deepEqual(eb.map((e) => e.name), [
      'nic.get_packet', 'driver.write', 'nic.get_packet', 'driver.write', 'nic.get_packet', 'driver.write', 'nic.acknowledge_packet',
    ]);
    assertContiguous(eb, 'get, handle, get, ... acknowledge');
    assert.deepEqual(eb.filter((e) => e.name === 'driver.write').map((e) => e.arg), [40, 41, 42]);
  } finally {
    a.close();
    b.close();
  }
});

test('traceFill and traceHandler over the socket transport: the same stages, fill chained to submit, handling to the next get_packet', () => {
  const res = createSessionResources('socket', { slots: 4, slotSize: 256 });
  const a = openSocketEnd({ ...res.grants[0], name: 'nic' });
  const b = openSocketEnd({ ...res.grants[1], name: 'nic' });
  try {
    const ta = new Tracer({ component: 'drv-a', mode: 'events', ringEvents: 256 });
    const tb = new Tracer({ component: 'drv-b', mode: 'events', ringEvents: 256 });
    a.attachTrace(ta, 'nic');
    b.attachTrace(tb, 'nic');
    a.out.traceFill('driver.read');
    b.in.traceHandler('driver.write');
    for (let i = 0; i < 2; i++) {
      const off = a.out.alloc();
      a.out.buf.fill(7, off, off + 50 + i);
      a.out.submit(off, 50 + i);
    }
    a.out.flush();
    const lens: number[] = [];
    assert.equal(b.in.receive((_off, len) => lens.push(len), 8), 2);
    assert.deepEqual(lens, [50, 51]);
    const ea = events(ta.snapshot({ events: true }));
    assert.deepEqual(ea.filter((e) => e.name !== 'nic.send').map((e) => e.name), [
      'nic.alloc_packet', 'driver.read', 'nic.submit_packet', 'nic.alloc_packet', 'driver.read', 'nic.submit_packet',
    ]);
    const reads = ea.filter((e) => e.name === 'driver.read');
    assert.deepEqual(reads.map((e) => e.arg), [50, 51]);
    assertSame(reads[0].t, ea[0].end, 'the fill starts where alloc_packet ended');
    const eb = events(tb.snapshot({ events: true }));
    assert.deepEqual(eb.map((e) => e.name), ['nic.get_packet', 'driver.write', 'nic.get_packet', 'driver.write']);
    assertContiguous(eb, 'get, handle, get, handle');
    assert.deepEqual(eb.filter((e) => e.name === 'driver.write').map((e) => e.arg), [50, 51]);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('traceRuns: one span per run() with the work it returned; with tracing off it records nothing and the pollable runs the same', () => {
  const tr = new Tracer({ component: 'c', mode: 'events', ringEvents: 64 });
  let k = 0;
  const p = traceRuns(tr, 'c.batch', { fd: -1, run: (readable: boolean) => (readable ? ++k : 0) });
  assert.equal(p.run(true), 1);
  assert.equal(p.run(false), 0);
  assert.equal(p.run(true), 2);
  const e = events(tr.snapshot({ events: true }));
  assert.deepEqual(e.map((x) => [x.name, x.arg]), [['c.batch', 1], ['c.batch', 0], ['c.batch', 2]]);
  tr.setMode('off', true);
  assert.equal(p.run(true), 3);
  assert.equal(tr.count('c.batch'), 0);
});
