// The nic-driver's receive from a packet link's PACKET_MMAP ring
// (src/components/nic-driver/ring.ts), with the test as the kernel: a ring in
// private memory whose frames it fills as tpacket_rcv does (TPACKET_V2
// header, the 10-byte virtio_net_hdr before the Ethernet header), and a
// SOCK_SEQPACKET pair standing in for the socket on which a frame too large
// for the ring waits whole (TP_STATUS_COPY). Checked: frames in ring order
// whichever way they came, the session's 12-byte header, ring frames handed
// back, the ring's wrap-around, bad ring headers and runts dropped and
// counted, a missing queued copy counted, and backpressure that leaves frames
// in the ring for later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, mapAnonymous, seqpacketPair, writeBuf } from '../../src/sys/libc.ts';
import { createLocalSession } from '../../src/session/local.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { ringReceive } from '../../src/components/nic-driver/ring.ts';
import { driverIo, VNET } from './driver-io.ts';
import { TP_LEN, TP_MAC, TP_SNAPLEN, TP_STATUS_COPY, TP_STATUS_KERNEL, TP_STATUS_USER } from '../../src/sys/packet-ring.ts';

const FRAME_SIZE = 2048;
/** Where tpacket_rcv puts the Ethernet header of a frame with a virtio-net header (seen on Linux 6.18). */
const MAC = 78;

function rig(frames: number, slots: number, slotSize = 2048) {
  const [link, peer] = seqpacketPair();
  const map = mapAnonymous(frames * FRAME_SIZE);
  const [drv, router] = createLocalSession({ slots, slotSize });
  const io = driverIo();
  const rx = ringReceive(link, { map, frameSize: FRAME_SIZE, frames }, drv.out, io);
  const ring = new DataView(map.buffer);
  const bytes = new Uint8Array(map.buffer);
  let head = 0;
  return {
    peer, drv, router, io, rx, ring,
    /** The kernel's side: the next ring frame gets `len` frame bytes of `tag` (cut to what fits, COPY: queued whole on the socket). */
    put(len: number, tag: number, o: { copy?: boolean; queued?: boolean; snap?: number; mac?: number; hdr?: number } = {}): number {
      const i = head;
      const b = i * FRAME_SIZE;
      assert.equal(ring.getUint32(b, true), TP_STATUS_KERNEL, `ring frame ${i} is the kernel's`);
      const mac = o.mac ?? MAC;
      const snap = o.snap ?? Math.min(len, FRAME_SIZE - mac);
      ring.setUint32(b + TP_LEN, len, true);
      ring.setUint32(b + TP_SNAPLEN, snap, true);
      ring.setUint16(b + TP_MAC, mac, true);
      if (mac >= 10 && mac <= FRAME_SIZE) for (let k = 0; k < 10; k++) bytes[b + mac - 10 + k] = o.hdr ?? 0x40 + k;
      if (mac + snap <= FRAME_SIZE) bytes.fill(tag, b + mac, b + mac + snap);
      if (o.copy === true && o.queued !== false) {
        const whole = new Uint8Array(VNET + len).fill(tag);
        whole.fill(0x40, 0, 10);
        whole.fill(0, 10, 12); // num_buffers: the socket's 12-byte header
        assert.equal(writeBuf(peer, whole), whole.length);
      }
      ring.setUint32(b, TP_STATUS_USER | (o.copy === true ? TP_STATUS_COPY : 0), true);
      head = (head + 1) % frames;
      return i;
    },
    status: (i: number): number => ring.getUint32(i * FRAME_SIZE, true),
    close(): void {
      rx.close();
      drv.close();
      router.close();
      close(link);
      close(peer);
    },
  };
}

/** Every packet the sink of `end` holds now: [length, first frame byte, header byte 0, num_buffers], acknowledged. */
function drain(end: SessionEnd): [number, number, number, number][] {
  const got: [number, number, number, number][] = [];
  const b = end.in.buf;
  end.in.receive((off, len) => got.push([len, b[off + VNET], b[off], b[off + 10] | b[off + 11]]), 1000);
  end.in.flushAcks();
  return got;
}

test('ring: frames from the ring and frames queued whole (COPY) arrive in ring order with the 12-byte header; ring frames go back to the kernel; the ring wraps', () => {
  const r = rig(8, 64, 128 * 1024);
  try {
    assert.equal(r.rx.run(), 0, 'an empty ring: nothing, no system call needed');
    const ids = [r.put(60, 1), r.put(9000, 2, { copy: true }), r.put(65000, 3, { copy: true }), r.put(1514, 4), r.put(30000, 5, { copy: true })];
    assert.equal(r.rx.run(), 5);
    assert.deepEqual(drain(r.router), [
      [VNET + 60, 1, 0x40, 0], [VNET + 9000, 2, 0x40, 0], [VNET + 65000, 3, 0x40, 0], [VNET + 1514, 4, 0x40, 0], [VNET + 30000, 5, 0x40, 0],
    ]);
    for (const i of ids) assert.equal(r.status(i), TP_STATUS_KERNEL, `ring frame ${i} handed back`);
    const c = r.io.counters;
    assert.equal(c.get('rx.frames'), 5);
    assert.equal(c.get('rx.bytes'), 60 + 9000 + 65000 + 1514 + 30000);
    // Past the ring's end: frames 5, 6, 7, then 0 and 1 again.
    for (let t = 10; t < 15; t++) r.put(100, t, t === 12 ? { copy: true } : {});
    assert.equal(r.rx.run(), 5);
    assert.deepEqual(drain(r.router).map(([len, tag]) => [len, tag]), [[112, 10], [112, 11], [112, 12], [112, 13], [112, 14]]);
  } finally {
    r.close();
  }
});

test('ring: a cut frame, a header pointing outside its ring frame, a runt and a missing queued copy are dropped and counted; the frames around them still arrive', () => {
  const r = rig(16, 64);
  try {
    r.put(60, 1);
    r.put(5000, 2, { snap: 1900 }); // too large and no room on the socket: cut, no COPY
    r.put(60, 3, { mac: 4000 }); // Ethernet header beyond the ring frame
    r.put(60, 4, { mac: 20 }); // inside the frame's own header
    r.put(2000, 5, { mac: 100, snap: 2000 }); // runs past the ring frame's end
    r.put(8, 6); // a runt: shorter than an Ethernet header
    r.put(9000, 7, { copy: true, queued: false }); // COPY, but its whole copy never reached the socket
    r.put(60, 8);
    assert.equal(r.rx.run(), 2, 'frames 1 and 8');
    assert.deepEqual(drain(r.router).map(([len, tag]) => [len, tag]), [[72, 1], [72, 8]]);
    const c = r.io.counters;
    assert.equal(c.get('drop.rx-truncated'), 4, 'cut, header outside the frame (twice), past the frame end');
    assert.equal(c.get('drop.rx-runt'), 1);
    assert.equal(c.get('drop.tap-read-error'), 1, 'the COPY frame whose copy was not queued');
    assert.equal(r.drv.stats()['out.busy-slots'], 2, 'only the two delivered ones (acknowledged, reclaimed at the next alloc): every slot of a dropped frame came back');
    for (let i = 0; i < 8; i++) assert.equal(r.status(i), TP_STATUS_KERNEL, `ring frame ${i} handed back`);
  } finally {
    r.close();
  }
});

test('ring: with every slot in flight the driver blocks (counted) and leaves the frames in the ring; they come once acks return', () => {
  const r = rig(8, 4, 256);
  try {
    for (let t = 0; t < 6; t++) r.put(60, 20 + t, t === 3 ? { copy: true } : {});
    assert.equal(r.rx.run(), 4, 'four slots');
    assert.equal(r.io.state.blocked, true);
    assert.equal(r.io.counters.get('rx.session-full'), 1);
    assert.equal(r.status(4), TP_STATUS_USER, 'frame 4 stays in the ring');
    assert.deepEqual(drain(r.router).map(([, tag]) => tag), [20, 21, 22, 23]);
    r.io.state.blocked = false; // what the driver's space pollable does when acks return
    assert.equal(r.rx.run(), 2);
    assert.deepEqual(drain(r.router).map(([, tag]) => tag), [24, 25]);
  } finally {
    r.close();
  }
});
