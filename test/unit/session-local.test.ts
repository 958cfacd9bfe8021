// The in-process transport: the shared ring cases, plus what is particular to
// local sessions (no fds, pending() drives everything, an entrypoint loop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalSession } from '../../src/session/local.ts';
import { openSessionEnd } from '../../src/session/open.ts';
import { createSessionResources } from '../../src/session/create.ts';
import { Entrypoint } from '../../src/runtime/entrypoint.ts';
import { ringCases } from './fixtures/ring-cases.ts';
import { runTraffic } from './fixtures/session-traffic.ts';

ringCases('local', (slots, slotSize) => {
  const [a, b] = createLocalSession({ slots, slotSize });
  return { a, b, close: () => { a.close(); b.close(); } };
});

test('local: names, no fds, real addresses', () => {
  const [a, b] = createLocalSession({ slots: 2, slotSize: 64, names: ['lan', 'uplink'] });
  assert.equal(a.name, 'lan');
  assert.equal(b.name, 'uplink');
  for (const e of [a, b]) {
    assert.equal(e.in.fd, -1);
    assert.equal(e.out.spacePollable.fd, -1);
    assert.ok(e.out.address > 0 && e.in.address > 0, 'anonymous mapping: slots have addresses');
    assert.equal(e.out.buf.byteLength, 2 * 64);
  }
  // a's out buffer is b's in buffer, and the other way round.
  a.out.buf[5] = 99;
  assert.equal(b.in.buf[5], 99);
  b.out.buf[7] = 42;
  assert.equal(a.in.buf[7], 42);
  assert.equal(a.out.address, b.in.address);
  assert.equal(b.out.address, a.in.address);
  // The memory stays until both ends are closed.
  a.close();
  b.out.buf[9] = 1;
  assert.equal(b.out.buf[9], 1);
  b.close();
});

test('local: arm/disarm without fds: arm reports packets that arrived', () => {
  const [a, b] = createLocalSession({ slots: 2, slotSize: 64 });
  assert.equal(b.in.arm(), false);
  const off = a.out.alloc();
  a.out.submit(off, 10);
  a.out.flush();
  assert.equal(a.stats()['out.wakeups'], 1, 'the waiting flag was consumed (no fd to write)');
  assert.equal(b.in.arm(), true);
  b.in.disarm();
  b.in.clearWakeup();
});

test('local: both ends on one entrypoint exchange 10000 packets each way', async () => {
  const [a, b] = createLocalSession({ slots: 16, slotSize: 2048 });
  const ep = new Entrypoint({ maxSleepMs: 10 });
  const [ra, rb] = await Promise.all([runTraffic(a, 0, 10000, ep), runTraffic(b, 1, 10000, ep)]);
  ep.stop();
  for (const r of [ra, rb]) {
    assert.equal(r.errors, 0, r.firstError);
    assert.equal(r.sent, 10000);
    assert.equal(r.received, 10000);
  }
});

test('local: cannot be opened from a grant or created as kernel resources', () => {
  assert.throws(() => openSessionEnd({ name: 'x', transport: 'local', side: 0, slots: 2, slotSize: 64, fds: [] }), /createLocalSession/);
  assert.throws(() => createSessionResources('local', { slots: 2, slotSize: 64 }), /createLocalSession/);
});

test('local: bad geometry is refused', () => {
  assert.throws(() => createLocalSession({ slots: 0, slotSize: 64 }), RangeError);
  assert.throws(() => createLocalSession({ slots: 2.5, slotSize: 64 }), RangeError);
  assert.throws(() => createLocalSession({ slots: 4, slotSize: 0 }), RangeError);
  assert.throws(() => createLocalSession({ slots: 1 << 17, slotSize: 64 }), RangeError);
  assert.throws(() => createLocalSession({ slots: 65536, slotSize: 65536 }), RangeError);
});
