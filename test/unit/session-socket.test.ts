// The copying socket transport: round trip, a full socket (packets stay
// queued, nothing lost, order kept), oversize messages, reset, hang-up, and a
// cross-process exchange with a child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close as closeFd, writeBuf } from '../../src/sys/libc.ts';
import { createSocketSession, openSocketEnd } from '../../src/session/socket.ts';
import type { SocketEnd } from '../../src/session/socket.ts';
import { openSessionEnd } from '../../src/session/open.ts';
import { createSessionResources } from '../../src/session/create.ts';
import type { SessionResources } from '../../src/session/create.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { sinkPollable } from '../../src/session/pollable.ts';
import { checkPacket, fillPacket, packetLength, runTraffic } from './fixtures/session-traffic.ts';
import { spawnPeer } from './fixtures/session-spawn.ts';

function open(res: SessionResources, side: 0 | 1): SocketEnd {
  return openSocketEnd({ ...res.grants[side], name: side === 0 ? 'a' : 'b' });
}

function send(from: SessionEnd, side: number, i0: number, n: number): number {
  let k = 0;
  for (; k < n; k++) {
    const off = from.out.alloc();
    if (off < 0) break;
    const len = packetLength(side, i0 + k, from.out.slotSize);
    fillPacket(from.out.buf, off, side, i0 + k, len);
    from.out.submit(off, len);
  }
  from.out.flush();
  return k;
}

function receive(to: SessionEnd, side: number, i0: number, max = 1000): number {
  let i = i0;
  to.in.receive((off, len) => {
    assert.equal(checkPacket(to.in.buf, off, len, side, i, to.out.slotSize), '');
    i++;
  }, max);
  to.in.flushAcks();
  return i - i0;
}

test('socket: grants: one socket per side', () => {
  const res = createSocketSession({ slots: 8, slotSize: 1514 });
  try {
    assert.equal(res.fds.length, 2);
    assert.deepEqual(res.grants[0].fds, [res.fds[0]]);
    assert.deepEqual(res.grants[1].fds, [res.fds[1]]);
    assert.equal(res.grants[0].transport, 'socket');
    assert.equal(res.grants[1].slotSize, 1536);
    const e = openSessionEnd({ ...res.grants[1], name: 'b' });
    assert.equal(e.in.fd, res.fds[1]);
    assert.ok(e.out.address > 0 && e.in.address > 0, 'private buffers have addresses');
    e.close();
    assert.throws(() => openSocketEnd({ ...res.grants[0], name: 'x', fds: [] }), /1 fd/);
    const r2 = createSessionResources('socket', { slots: 2, slotSize: 64 });
    assert.equal(r2.fds.length, 2);
    r2.close();
  } finally {
    res.close();
  }
});

test('socket: round trip both directions', () => {
  const res = createSocketSession({ slots: 8, slotSize: 1514 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    assert.equal(send(a, 0, 0, 5), 5);
    assert.equal(a.out.free, 8, 'acks are local: slots free once written');
    assert.equal(receive(b, 0, 0), 5);
    assert.equal(send(b, 1, 0, 8), 8);
    assert.equal(receive(a, 1, 0), 8);
    assert.equal(a.stats()['out.packets'], 5);
    assert.equal(b.stats()['in.packets'], 5);
    assert.equal(a.stats()['in.packets'], 8);
    assert.equal(a.stats()['out.bytes'], b.stats()['in.bytes']);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

const S = 512;
test('socket: a full socket keeps packets queued in order; alloc fails only when every slot is queued', () => {
  const res = createSocketSession({ slots: S, slotSize: 1514 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    // The kernel queue of a seqpacket socket is short (socket buffer): the rest waits in a's queue.
    assert.equal(send(a, 0, 0, S), S);
    const queued = a.stats()['out.queued'];
    assert.ok(queued > 0, `some packets stayed queued (${queued})`);
    assert.ok(a.stats()['out.again'] >= 1);
    assert.equal(a.out.free, S - queued);
    let got = 0;
    let sent = S;
    for (let round = 0; round < 10000 && got < 2 * S; round++) {
      got += receive(b, 0, got, 7);
      a.out.spacePollable.run(false);
      if (sent < 2 * S) sent += send(a, 0, sent, 2 * S - sent);
    }
    assert.equal(got, 2 * S);
    assert.equal(a.stats()['out.queued'], 0);
    assert.equal(a.out.free, S);
    assert.equal(a.stats()['drop.send-error'], 0);
    // Every slot queued: alloc returns -1.
    for (let i = 0; i < S; i++) {
      const off = a.out.alloc();
      assert.ok(off >= 0);
      a.out.submit(off, 100);
    }
    a.out.flush();
    // Fill the socket further with no reader until alloc fails.
    let fails = 0;
    for (let i = 0; i < 10 * S && fails === 0; i++) {
      const off = a.out.alloc();
      if (off < 0) fails++;
      else {
        a.out.submit(off, 100);
        a.out.flush();
      }
    }
    assert.equal(fails, 1);
    assert.ok(a.stats()['out.alloc-fail'] >= 1);
    assert.equal(a.out.spacePollable.pending?.(), true, 'queued packets: retry pending');
    assert.equal(a.out.spacePollable.arm?.(), true, 'queued packets: do not sleep');
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('socket: queued packets drain through the sink pollable when the source goes quiet', () => {
  const res = createSocketSession({ slots: S, slotSize: 1514 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    assert.equal(send(a, 0, 0, S), S);
    assert.ok(a.stats()['out.queued'] > 0);
    assert.equal(a.in.pending(), true, "a's sink reports the queue as work");
    assert.equal(a.in.arm(), true, 'so the loop does not sleep on it');
    const pa = sinkPollable(a.in, () => assert.fail('nothing for a'));
    let got = 0;
    for (let round = 0; round < 10000 && got < S; round++) {
      got += receive(b, 0, got, 16);
      if (pa.pending?.()) pa.run(false); // what a's entrypoint does every turn; a never flushes again
    }
    assert.equal(got, S);
    assert.equal(a.stats()['out.queued'], 0);
    assert.equal(a.in.pending(), false);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('socket: oversize messages are dropped and counted', () => {
  const res = createSocketSession({ slots: 4, slotSize: 256 });
  const b = open(res, 1);
  try {
    const big = new Uint8Array(1000).fill(7);
    assert.equal(writeBuf(res.fds[0], big), 1000);
    assert.equal(writeBuf(res.fds[0], big, 256), 256);
    assert.equal(writeBuf(res.fds[0], big, 257), 257);
    const got: number[] = [];
    assert.equal(b.in.receive((off, len) => got.push(len), 10), 1);
    assert.deepEqual(got, [256]);
    assert.equal(b.stats()['drop.recv-oversize'], 2);
  } finally {
    b.close();
    res.close();
  }
});

test('socket: receive stops at max and says more may wait', () => {
  const res = createSocketSession({ slots: 8, slotSize: 256 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    send(a, 0, 0, 6);
    assert.equal(receive(b, 0, 0, 4), 4);
    assert.equal(b.in.pending(), true);
    assert.equal(receive(b, 0, 4, 4), 2);
    assert.equal(b.in.pending(), false);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('socket: reset drops queued packets and drains what waits in the socket', () => {
  const res = createSocketSession({ slots: 64, slotSize: 1514 });
  const a = open(res, 0);
  const b = open(res, 1);
  try {
    send(a, 0, 0, 64); // some in b's socket queue, the rest queued at a
    send(b, 1, 0, 3);
    const reserved = a.out.alloc();
    a.reset();
    assert.equal(a.stats()['out.queued'], 0);
    assert.equal(a.out.free, 63, 'queued slots freed, the reserved one kept');
    assert.equal(receive(a, 1, 0), 0, 'what b sent before the reset was drained');
    b.reset();
    assert.equal(receive(b, 0, 0), 0);
    a.out.submit(reserved, packetLength(0, 0, 1536));
    fillPacket(a.out.buf, reserved, 0, 0, packetLength(0, 0, 1536));
    a.out.flush();
    assert.equal(receive(b, 0, 0), 1);
  } finally {
    a.close();
    b.close();
    res.close();
  }
});

test('socket: a hang-up takes the sink out of the poll set', () => {
  const res = createSocketSession({ slots: 4, slotSize: 256 });
  const b = open(res, 1);
  try {
    const p = sinkPollable(b.in, () => assert.fail('nothing to deliver'));
    assert.equal(p.fd, res.fds[1]);
    closeFd(res.fds[0]);
    res.fds[0] = -1;
    assert.equal(p.run(true), 0);
    assert.equal(b.in.fd, -1);
    assert.equal(p.fd, -1, 'sinkPollable follows the sink');
    assert.equal(b.stats()['in.hangups'], 1);
  } finally {
    b.close();
    closeFd(res.fds[1]);
  }
});

for (const sides of [[0, 1], [1, 0]] as const) {
  test(`socket: two processes exchange 10000 packets each way, every byte checked (parent is side ${sides[0]})`, async () => {
    const res = createSocketSession({ slots: 32, slotSize: 2048 });
    const mine = open(res, sides[0]);
    try {
      const peer = spawnPeer(res.grants[sides[1]], 'child', 10000);
      const [ours, theirs] = await Promise.all([runTraffic(mine, sides[0], 10000), peer.result]);
      for (const r of [ours, theirs]) {
        assert.equal(r.errors, 0, r.firstError);
        assert.equal(r.sent, 10000);
        assert.equal(r.received, 10000);
        for (const [k, v] of Object.entries(r.stats)) if (k.startsWith('drop.')) assert.equal(v, 0, k);
      }
      assert.equal(ours.stats['out.bytes'], theirs.stats['in.bytes']);
    } finally {
      mine.close();
      res.close();
    }
  });
}
