// The shared-memory transport: the shared ring cases over a real memfd (both
// ends mapped in this process), the eventfd wake-up protocol, attach checks,
// restart/reset, and a cross-process exchange with a child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ftruncateSync } from 'node:fs';
import { POLLIN, poll, memfdSeals, F_SEAL_SHRINK, F_SEAL_GROW } from '../../src/sys/libc.ts';
import { createShmSession, openShmEnd } from '../../src/session/shm.ts';
import { openSessionEnd } from '../../src/session/open.ts';
import { createSessionResources } from '../../src/session/create.ts';
import type { SessionResources } from '../../src/session/create.ts';
import type { RingEnd } from '../../src/session/ring.ts';
import { ringCases, receiveAll, sendSome } from './fixtures/ring-cases.ts';
import { runTraffic } from './fixtures/session-traffic.ts';
import { spawnPeer } from './fixtures/session-spawn.ts';

function open(res: SessionResources, side: 0 | 1, name = side === 0 ? 'a' : 'b'): RingEnd {
  return openShmEnd({ ...res.grants[side], name });
}

ringCases('shm', (slots, slotSize) => {
  const res = createShmSession({ slots, slotSize });
  const a = open(res, 0);
  const b = open(res, 1);
  return {
    a,
    b,
    close: () => {
      a.close();
      b.close();
      res.close();
    },
  };
});

const pfd = new Uint8Array(8);
const pview = new DataView(pfd.buffer);
function readable(fd: number): boolean {
  pview.setInt32(0, fd, true);
  pview.setInt16(4, POLLIN, true);
  pview.setInt16(6, 0, true);
  return poll(pfd, 1, 0) > 0;
}

test('shm: grants: five fds in the documented order, geometry rounded, sealed memfd', () => {
  const res = createShmSession({ slots: 8, slotSize: 1514 });
  try {
    assert.equal(res.fds.length, 5);
    for (const side of [0, 1] as const) {
      const g = res.grants[side];
      assert.equal(g.transport, 'shm');
      assert.equal(g.side, side);
      assert.equal(g.slots, 8);
      assert.equal(g.slotSize, 1536);
      assert.deepEqual(g.fds, res.fds);
    }
    const seals = memfdSeals(res.fds[0]);
    assert.equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
    assert.throws(() => ftruncateSync(res.fds[0], 4096), /EPERM/, 'a peer cannot shrink the memory under the other');
    // The dispatcher gives the same.
    const r2 = createSessionResources('shm', { slots: 2, slotSize: 64 });
    assert.equal(r2.fds.length, 5);
    r2.close();
  } finally {
    res.close();
  }
});

test('shm: attach refuses a grant that does not match the memory', () => {
  const res = createShmSession({ slots: 8, slotSize: 1514 });
  try {
    const g = { ...res.grants[1], name: 'b' };
    assert.throws(() => openShmEnd({ ...g, slots: 16 }), /memfd is|header word/);
    assert.throws(() => openShmEnd({ ...g, slotSize: 1600 }), /header word|memfd is/);
    assert.throws(() => openShmEnd({ ...g, slots: 4 }), /header word/);
    assert.throws(() => openShmEnd({ ...g, fds: g.fds.slice(0, 4) }), /5 fds/);
    assert.throws(() => openShmEnd({ ...g, transport: 'socket' }), /transport/);
    const e = openSessionEnd(g);
    assert.equal(e.name, 'b');
    e.close();
  } finally {
    res.close();
  }
});

test('shm: buffers are shared, addresses are real', () => {
  const res = createShmSession({ slots: 4, slotSize: 256 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    a.out.buf[3] = 17;
    assert.equal(b.in.buf[3], 17);
    b.out.buf[300] = 23;
    assert.equal(a.in.buf[300], 23);
    assert.ok(a.out.address > 0 && b.in.address > 0);
    assert.notEqual(a.out.address, a.in.address);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('shm: the sink is woken only when it armed, once per batch', () => {
  const res = createShmSession({ slots: 8, slotSize: 256 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    assert.equal(b.in.fd, res.fds[1], 'a->b submit eventfd');
    assert.equal(a.in.fd, res.fds[3], 'b->a submit eventfd');
    // Not armed: a batch is published silently.
    sendSome(a, 0, 0, 3);
    assert.equal(readable(b.in.fd), false);
    assert.equal(a.stats()['out.wakeups'], 0);
    // Armed with packets waiting: arm says so, no wake-up needed.
    assert.equal(b.in.arm(), true);
    b.in.disarm();
    assert.equal(receiveAll(b, 0, 0), 3);
    // Armed on an empty ring: the next batch writes the eventfd, once.
    assert.equal(b.in.arm(), false);
    sendSome(a, 0, 3, 4);
    assert.equal(readable(b.in.fd), true);
    assert.equal(a.stats()['out.wakeups'], 1);
    sendSome(a, 0, 7, 1);
    assert.equal(a.stats()['out.wakeups'], 1, 'the flag was consumed by the first batch');
    b.in.disarm();
    b.in.clearWakeup();
    assert.equal(readable(b.in.fd), false, 'clearWakeup consumed the eventfd');
    assert.equal(receiveAll(b, 0, 3), 5);
    // Armed, then disarmed before a batch: no wake-up.
    assert.equal(b.in.arm(), false);
    b.in.disarm();
    sendSome(a, 0, 8, 1);
    assert.equal(readable(b.in.fd), false);
    assert.equal(a.stats()['out.wakeups'], 1);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('shm: a source out of slots is woken by acks only when it armed', () => {
  const res = createShmSession({ slots: 4, slotSize: 256 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    const space = a.out.spacePollable;
    assert.equal(space.fd, res.fds[2], 'a->b ack eventfd');
    assert.equal(b.out.spacePollable.fd, res.fds[4], 'b->a ack eventfd');
    assert.equal(space.active?.(), false);
    assert.equal(space.arm?.(), false, 'slots free: nothing to wait for, not armed');
    space.disarm?.();
    sendSome(a, 0, 0, 4);
    assert.equal(space.active?.(), true);
    assert.equal(space.pending?.(), false);
    assert.equal(space.arm?.(), false, 'armed, no acks yet');
    assert.equal(b.in.receive(() => {}, 2), 2);
    b.in.flushAcks();
    assert.equal(readable(space.fd), true, 'the ack batch wrote the eventfd');
    assert.equal(b.stats()['in.wakeups'], 1);
    space.disarm?.();
    assert.equal(space.run(true), 2, 'run reclaims');
    assert.equal(readable(space.fd), false, 'run consumed the wake-up');
    assert.equal(space.active?.(), false);
    // Not armed: acks come back silently.
    assert.equal(b.in.receive(() => {}, 2), 2);
    b.in.flushAcks();
    assert.equal(readable(space.fd), false);
    assert.equal(b.stats()['in.wakeups'], 1);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('shm: a restarted side attaches fresh after the survivor reset', () => {
  const res = createShmSession({ slots: 4, slotSize: 512 });
  const a = open(res, 0);
  let b = open(res, 1);
  try {
    sendSome(a, 0, 0, 4);
    sendSome(b, 1, 0, 2);
    assert.equal(b.in.receive(() => {}, 1), 1);
    assert.equal(b.in.arm(), true);
    // b dies mid-flight (armed, holding a packet, with packets in flight to a).
    b.close();
    assert.equal(a.out.alloc(), -1);
    a.reset();
    assert.equal(a.out.free, 4);
    assert.equal(a.in.pending(), false);
    // The restarted b.
    b = open(res, 1, 'b2');
    assert.equal(b.in.pending(), false);
    assert.equal(b.out.free, 4);
    sendSome(a, 0, 0, 4);
    assert.equal(receiveAll(b, 0, 0), 4);
    sendSome(b, 1, 0, 4);
    assert.equal(receiveAll(a, 1, 0), 4);
    assert.ok(a.out.alloc() >= 0);
    for (const [k, v] of Object.entries({ ...a.stats(), ...b.stats() })) if (k.startsWith('drop.')) assert.equal(v, 0, k);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('shm: a restarted side that attached before the survivor reset follows the new generation', () => {
  const res = createShmSession({ slots: 4, slotSize: 512 });
  const a = open(res, 0);
  let b = open(res, 1);
  try {
    sendSome(a, 0, 0, 3);
    sendSome(b, 1, 0, 3);
    b.close();
    b = open(res, 1, 'b2'); // reads the stale indices
    a.reset(); // init's reset arrives late
    sendSome(a, 0, 0, 4);
    assert.equal(receiveAll(b, 0, 0), 4);
    sendSome(b, 1, 0, 4);
    assert.equal(receiveAll(a, 1, 0), 4);
    assert.equal(b.stats()['drop.ack-not-in-flight'], 0);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

for (const sides of [[0, 1], [1, 0]] as const) {
  test(`shm: two processes exchange 10000 packets each way, every byte checked (parent is side ${sides[0]})`, async () => {
    const res = createShmSession({ slots: 32, slotSize: 2048 });
    const mine = open(res, sides[0], 'parent');
    try {
      const peer = spawnPeer(res.grants[sides[1]], 'child', 10000);
      const [ours, theirs] = await Promise.all([runTraffic(mine, sides[0], 10000), peer.result]);
      for (const r of [ours, theirs]) {
        assert.equal(r.errors, 0, r.firstError);
        assert.equal(r.sent, 10000);
        assert.equal(r.received, 10000);
        for (const [k, v] of Object.entries(r.stats)) if (k.startsWith('drop.')) assert.equal(v, 0, k);
      }
      assert.equal(ours.stats['out.packets'], theirs.stats['in.packets']);
      assert.equal(ours.stats['in.bytes'], theirs.stats['out.bytes']);
    } finally {
      mine.close();
      res.close();
    }
  });
}
