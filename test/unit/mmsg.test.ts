// The mmsghdr vector of recvmmsg/sendmmsg (src/sys/mmsg.ts): its layout as
// the kernel reads it, and real calls over a SOCK_SEQPACKET pair (message
// boundaries like a packet socket's): several messages per call, sending from
// an offset, a message longer than its iovec flagged MSG_TRUNC, EAGAIN when
// nothing waits. And packetSocketStats (the nic-driver's timer calls it) on
// an fd that is no packet socket: -errno, never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, EAGAIN, MSG_TRUNC, mapAnonymous, seqpacketPair } from '../../src/sys/libc.ts';
import { IOVEC_SIZE, MMSGHDR_SIZE, MmsgVec } from '../../src/sys/mmsg.ts';
import { packetSocketStats } from '../../src/sys/packet.ts';

function u64(words: Uint32Array, byteOff: number): number {
  return words[byteOff >>> 2] + words[(byteOff >>> 2) + 1] * 2 ** 32;
}

test('layout: header i points at iovec i with iovlen 1; set() writes base and length', () => {
  const v = new MmsgVec(4);
  try {
    for (let i = 0; i < 4; i++) {
      const h = i * MMSGHDR_SIZE;
      assert.equal(u64(v.words, h), 0, 'msg_name NULL');
      assert.equal(u64(v.words, h + 16), v.address + 4 * MMSGHDR_SIZE + i * IOVEC_SIZE, 'msg_iov');
      assert.equal(u64(v.words, h + 24), 1, 'msg_iovlen');
      assert.equal(u64(v.words, h + 32), 0, 'msg_control NULL');
    }
    const addr = 0x7f12_3456_7890; // above 2^32: both halves matter
    v.set(2, addr, 65_550);
    const iov = 4 * MMSGHDR_SIZE + 2 * IOVEC_SIZE;
    assert.equal(u64(v.words, iov), addr);
    assert.equal(u64(v.words, iov + 8), 65_550);
    assert.equal(u64(v.words, iov - IOVEC_SIZE), 0, 'iovec 1 untouched');
  } finally {
    v.close();
  }
  assert.throws(() => new MmsgVec(0), RangeError);
  assert.throws(() => new MmsgVec(1025), RangeError);
});

test('sendmmsg then recvmmsg over a seqpacket pair: many messages per call, into given slots, no copy of ours', () => {
  const [a, b] = seqpacketPair();
  const slot = 2048;
  const mem = mapAnonymous(8 * slot);
  const buf = new Uint8Array(mem.buffer);
  const tx = new MmsgVec(8);
  const rx = new MmsgVec(8);
  try {
    assert.equal(rx.recv(b, 8), -EAGAIN, 'nothing waits yet');
    const sizes = [60, 1514, 100, 7];
    for (let i = 0; i < sizes.length; i++) {
      buf.fill(0x10 + i, i * slot, i * slot + sizes[i]);
      tx.set(i, mem.address + i * slot, sizes[i]);
    }
    // Messages 1..3 only: sending starts at an offset into the vector.
    assert.equal(tx.send(a, 1, 3), 3);
    for (let i = 0; i < 3; i++) assert.equal(tx.length(1 + i), sizes[1 + i], `msg_len of sent message ${1 + i}`);
    // Receive into slots 4..7 (reverse order, to see each lands where its iovec points).
    for (let i = 0; i < 4; i++) rx.set(i, mem.address + (7 - i) * slot, slot);
    assert.equal(rx.recv(b, 4), 3, 'three messages waited');
    for (let i = 0; i < 3; i++) {
      assert.equal(rx.length(i), sizes[1 + i]);
      assert.equal(rx.flags(i) & MSG_TRUNC, 0);
      const at = (7 - i) * slot;
      assert.ok(buf.subarray(at, at + sizes[1 + i]).every((x) => x === 0x11 + i), `message ${i} in slot ${7 - i}`);
    }
    assert.equal(rx.recv(b, 4), -EAGAIN, 'drained');
    // A message longer than its iovec: cut to the iovec and flagged.
    tx.set(0, mem.address, 1514);
    assert.equal(tx.send(a, 0, 1), 1);
    rx.set(0, mem.address + 5 * slot, 100);
    assert.equal(rx.recv(b, 1), 1);
    assert.equal(rx.length(0), 100);
    assert.notEqual(rx.flags(0) & MSG_TRUNC, 0, 'MSG_TRUNC');
  } finally {
    tx.close();
    rx.close();
    mem.unmap();
    close(a);
    close(b);
  }
});

test('packetSocketStats on a socket that is not a packet socket, and on a closed fd: -errno, no throw', () => {
  const [a, b] = seqpacketPair();
  try {
    const r = packetSocketStats(a);
    assert.equal(typeof r, 'number');
    assert.ok((r as number) < 0, `-errno, got ${String(r)}`);
  } finally {
    close(a);
    close(b);
  }
  assert.equal(packetSocketStats(a), -9, 'EBADF once closed');
});
