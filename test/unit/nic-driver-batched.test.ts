// The nic-driver's batched link I/O (src/components/nic-driver/batched.ts)
// against a real socket: a SOCK_SEQPACKET pair stands in for the packet
// socket (same message boundaries, same recvmmsg/sendmmsg), a local session
// for the Nic session. Receive: many frames per call into reserved slots, in
// order, runts and over-long frames dropped and counted, reservations kept
// across calls, backpressure when every slot is in flight, the 10-byte header
// widened. Send: one sendmmsg for the batch before its acks, runts counted, a
// full socket's frames counted as busy, a refused frame dropped with the rest
// still sent, and per frame over a socket session (whose sink reuses one
// buffer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, EAGAIN, readBuf, seqpacketPair, setsockopt, writeBuf } from '../../src/sys/libc.ts';
import { createLocalSession } from '../../src/session/local.ts';
import { createSocketSession, openSocketEnd } from '../../src/session/socket.ts';
import { sinkPollable } from '../../src/session/pollable.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { BATCH, batchedReceive, batchedSend } from '../../src/components/nic-driver/batched.ts';
import { driverIo, MIN_FRAME, VNET } from './driver-io.ts';

/** A link (seqpacket pair: the driver's end and the wire's), a local session (driver end, router end), the driver's batched I/O on them. */
function rig(slots: number, slotSize: number, pad = 0) {
  const [link, peer] = seqpacketPair();
  const [drv, router] = createLocalSession({ slots, slotSize });
  const io = driverIo(pad);
  const rx = batchedReceive(link, drv.out, io);
  const tx = batchedSend(link, drv.in, io);
  return {
    link, peer, drv, router, io, rx, tx,
    sendPollable: () => sinkPollable(drv.in, tx.frame, undefined, BATCH, tx.flush),
    close(): void {
      rx.close();
      tx.close();
      drv.close();
      router.close();
      close(link);
      close(peer);
    },
  };
}

/** A frame of `len` bytes whose every byte is `tag`. */
function frame(len: number, tag: number): Uint8Array {
  return new Uint8Array(len).fill(tag);
}

/** Everything the sink of `end` holds now: [length, first byte] per packet, acknowledged. */
function drain(end: SessionEnd): [number, number][] {
  const got: [number, number][] = [];
  end.in.receive((off, len) => got.push([len, end.in.buf[off]]), 1000);
  end.in.flushAcks();
  return got;
}

test('receive: one call takes every waiting frame into slots, in order; runts and over-long frames counted; reservations kept', () => {
  const r = rig(128, 2048);
  const { peer, drv, router, io, rx } = r;
  try {
    assert.equal(rx.run(), 0, 'nothing waits: EAGAIN, no error');
    assert.equal(rx.reserved(), BATCH);
    assert.equal(io.counters.get('drop.tap-read-error'), 0);
    const sent = [[MIN_FRAME + 46, 1], [1514 + VNET, 2], [10, 3], [2048 + 100, 4], [MIN_FRAME, 5]];
    for (const [len, tag] of sent) assert.equal(writeBuf(peer, frame(len, tag)), len);
    assert.equal(rx.run(), 3);
    assert.deepEqual(drain(router), [[MIN_FRAME + 46, 1], [1514 + VNET, 2], [MIN_FRAME, 5]]);
    const c = io.counters;
    assert.equal(c.get('rx.frames'), 3);
    assert.equal(c.get('rx.bytes'), (MIN_FRAME + 46) + (1514 + VNET) + MIN_FRAME - 3 * VNET);
    assert.equal(c.get('drop.rx-runt'), 1);
    assert.equal(c.get('drop.rx-truncated'), 1, 'longer than a slot: cut by the kernel (MSG_TRUNC), dropped');
    assert.equal(rx.reserved(), BATCH - 5, 'the unused reservations stay');
    // More than one batch waits: BATCH per call, the rest on the next.
    for (let i = 0; i < BATCH + 3; i++) writeBuf(peer, frame(100, i & 0xff));
    assert.equal(rx.run(), BATCH);
    assert.equal(rx.run(), 3);
    const got = drain(router);
    assert.equal(got.length, BATCH + 3);
    got.forEach(([len, tag], i) => assert.deepEqual([len, tag], [100, i & 0xff], `frame ${i} in order`));
    assert.equal(rx.run(), 0, 'EAGAIN; reclaims the acknowledged slots and refills the reservations');
    assert.equal(drv.stats()['out.busy-slots'], BATCH, 'busy: only the reservations (every submitted slot came back)');
  } finally {
    r.close();
  }
});

test('receive: with every slot in flight the driver blocks (counted), and reads on once acks return', () => {
  const r = rig(4, 256);
  const { peer, router, io, rx } = r;
  try {
    for (let i = 0; i < 6; i++) writeBuf(peer, frame(64, 10 + i));
    assert.equal(rx.run(), 4, 'four slots');
    assert.equal(io.state.blocked, false);
    assert.equal(rx.run(), 0);
    assert.equal(io.state.blocked, true, 'no slot to read into');
    assert.equal(io.counters.get('rx.session-full'), 1);
    assert.deepEqual(drain(router).map(([, t]) => t), [10, 11, 12, 13]);
    io.state.blocked = false; // what the driver's space pollable does when acks return
    assert.equal(rx.run(), 2);
    assert.deepEqual(drain(router).map(([, t]) => t), [14, 15]);
  } finally {
    r.close();
  }
});

test('receive and send with the classic 10-byte virtio-net header: widened to 12 in the slot, narrowed again on the way out', () => {
  const r = rig(8, 256, 2);
  const { peer, router, rx } = r;
  try {
    const f = new Uint8Array(10 + 60);
    for (let i = 0; i < f.length; i++) f[i] = i + 1;
    writeBuf(peer, f);
    assert.equal(rx.run(), 1);
    let slot: Uint8Array | undefined;
    router.in.receive((off, len) => { slot = router.in.buf.slice(off, off + len); }, 1);
    router.in.flushAcks();
    assert.ok(slot !== undefined);
    assert.equal(slot.length, 72);
    assert.deepEqual([...slot.subarray(0, 10)], [...f.subarray(0, 10)], 'the header at the slot start');
    assert.deepEqual([...slot.subarray(10, 12)], [0, 0], 'num_buffers 0');
    assert.deepEqual([...slot.subarray(12)], [...f.subarray(10)], 'the frame after 12 bytes');
    // Back: the router sends the 12-byte form, the link gets the 10-byte one.
    const off = router.out.alloc();
    router.out.buf.set(slot, off);
    router.out.submit(off, slot.length);
    router.out.flush();
    assert.equal(r.sendPollable().run(false), 1);
    const back = new Uint8Array(256);
    assert.equal(readBuf(peer, back), 70);
    assert.deepEqual([...back.subarray(0, 70)], [...f]);
  } finally {
    r.close();
  }
});

/** Submit frames of the given lengths (each filled with its index + 1) from `end`. */
function submit(end: SessionEnd, lens: number[]): void {
  lens.forEach((len, i) => {
    const off = end.out.alloc();
    assert.ok(off >= 0);
    end.out.buf.fill(i + 1, off, off + len);
    end.out.submit(off, len);
  });
  end.out.flush();
}

/** Every message waiting on `fd`: [length, first byte]. */
function readAll(fd: number): [number, number][] {
  const b = new Uint8Array(4096);
  const got: [number, number][] = [];
  for (;;) {
    const n = readBuf(fd, b);
    if (n < 0) {
      assert.equal(n, -EAGAIN);
      return got;
    }
    got.push([n, b[0]]);
  }
}

test('send: the batch leaves in one sendmmsg before its acks; runts counted; a full socket drops the batch as busy', () => {
  const r = rig(16, 2048);
  const { link, peer, router, io } = r;
  const p = r.sendPollable();
  try {
    submit(router, [100, 1514, 10, 60]);
    assert.equal(p.run(false), 4, 'four delivered to the driver');
    assert.deepEqual(readAll(peer), [[100, 1], [1514, 2], [60, 4]]);
    const c = io.counters;
    assert.equal(c.get('tx.frames'), 3);
    assert.equal(c.get('tx.bytes'), 100 + 1514 + 60 - 3 * VNET);
    assert.equal(c.get('drop.tx-runt'), 1);
    const probe = router.out.alloc(); // reclaims what was acknowledged
    assert.equal(router.stats()['out.busy-slots'], 1, 'all four acknowledged: only the probe is busy');
    router.out.release(probe);
    // Fill the link's socket: the next batch finds it full.
    const filler = new Uint8Array(1024);
    while (writeBuf(link, filler) > 0) { /* until EAGAIN */ }
    submit(router, [100, 200, 300]);
    assert.equal(p.run(false), 3);
    assert.equal(c.get('drop.tap-write-busy'), 3, 'each frame of the batch counted');
    assert.equal(c.get('tx.frames'), 3, 'none sent');
    assert.equal(c.get('drop.tap-write-rejected'), 0);
  } finally {
    r.close();
  }
});

test('send: a frame the kernel refuses is dropped and counted, the rest of the batch still goes (sendmmsg resumed after it)', () => {
  const r = rig(8, 16384);
  const { link, peer, router, io } = r;
  try {
    // A small send buffer: a message longer than it is refused (EMSGSIZE), as a packet socket refuses a bad GSO header.
    const SOL_SOCKET = 1;
    const SO_SNDBUF = 7;
    const v = new Uint8Array(4);
    new DataView(v.buffer).setInt32(0, 1, true);
    setsockopt(link, SOL_SOCKET, SO_SNDBUF, v); // the kernel's minimum, ~4.5 KiB
    submit(router, [100, 12000, 200]);
    assert.equal(r.sendPollable().run(false), 3);
    assert.deepEqual(readAll(peer), [[100, 1], [200, 3]], 'the first and the last sent, in order');
    assert.equal(io.counters.get('drop.tap-write-rejected'), 1);
    assert.equal(io.state.lastTxError, 90, 'EMSGSIZE');
    assert.equal(io.counters.get('tx.frames'), 2);
    assert.equal(io.counters.get('drop.tap-write-busy'), 0);
  } finally {
    r.close();
  }
});

test('send over a socket session (one receive buffer, heldUntilAck false): every frame is sent before the next overwrites it', () => {
  const [link, peer] = seqpacketPair();
  const res = createSocketSession({ slots: 8, slotSize: 2048 });
  const drv = openSocketEnd({ ...res.grants[0], name: 'nic' });
  const router = openSocketEnd({ ...res.grants[1], name: 'lan' });
  const io = driverIo();
  const tx = batchedSend(link, drv.in, io);
  try {
    assert.equal(drv.in.heldUntilAck, false);
    submit(router, [100, 200, 300]);
    assert.equal(sinkPollable(drv.in, tx.frame, undefined, BATCH, tx.flush).run(false), 3);
    assert.deepEqual(readAll(peer), [[100, 1], [200, 2], [300, 3]], 'each frame with its own bytes');
    assert.equal(io.counters.get('tx.frames'), 3);
  } finally {
    tx.close();
    drv.close();
    router.close();
    res.close();
    close(link);
    close(peer);
  }
});
