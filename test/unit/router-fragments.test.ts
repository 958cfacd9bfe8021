// IPv4 fragments: the router's bounded reassembler (src/components/router/reassembly.ts)
// and egress fragmentation (src/net/ipv4-frag.ts), cut and rebuilt against
// each other and against hostile fragment streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Ipv4Reassembler, REASM_DONE, REASM_ERR_BAD_LENGTH, REASM_ERR_FULL, REASM_ERR_OVERLAP, REASM_ERR_SOURCE_LIMIT,
  REASM_ERR_TOO_BIG, REASM_ERR_TOO_MANY_FRAGMENTS, REASM_HELD,
} from '../../src/components/router/reassembly.ts';
import { copiedOptions, fragmentCount, writeIpv4Fragment } from '../../src/net/ipv4-frag.ts';
import { checkIpv4, ipv4SetChecksum, IPPROTO_UDP, parseIpv4Packet, serializeIpv4Packet } from '../../src/net/ipv4.ts';

function datagram(size: number, opts: { id?: number; src?: string; options?: Uint8Array; flags?: number } = {}): Uint8Array {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 7 + 3) & 0xff;
  return serializeIpv4Packet({ protocol: IPPROTO_UDP, src: opts.src ?? '198.18.0.2', dst: '198.19.0.3', id: opts.id ?? 0x4242, payload, options: opts.options, flags: opts.flags });
}

/** Cut with our fragmenter; every fragment a valid IPv4 packet of at most mtu bytes. */
function cut(d: Uint8Array, mtu: number): Uint8Array[] {
  const ihl = (d[0] & 15) * 4;
  const n = fragmentCount(ihl, d.length, mtu);
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const f = new Uint8Array(mtu);
    const len = writeIpv4Fragment(d, 0, ihl, d.length, mtu, k, f, 0);
    assert.ok(len > 0 && len <= mtu);
    assert.ok(checkIpv4(f, 0, len) > 0, `fragment ${k} is a valid IPv4 packet`);
    out.push(f.subarray(0, len));
  }
  assert.equal(writeIpv4Fragment(d, 0, ihl, d.length, mtu, n, new Uint8Array(mtu), 0), 0);
  return out;
}

function offer(r: Ipv4Reassembler, f: Uint8Array, now = 0): number {
  const ihl = checkIpv4(f, 0, f.length);
  assert.ok(ihl > 0);
  return r.offer(f, 0, ihl, f.length, now);
}

test('an 8000-byte datagram cut for MTU 1500 and 576 (and 1000 bytes for 68) is rebuilt byte for byte, in any order', () => {
  for (const [mtu, size] of [[1500, 8000], [576, 8000], [68, 1000]]) {
    const d = datagram(size);
    const frags = cut(d, mtu);
    assert.equal(frags.length, Math.ceil((d.length - 20) / (Math.floor((mtu - 20) / 8) * 8)));
    for (const order of [frags, [...frags].reverse(), [...frags.slice(1), frags[0]]]) {
      const r = new Ipv4Reassembler();
      let res = REASM_HELD;
      order.forEach((f, i) => {
        res = offer(r, f);
        assert.equal(res, i === order.length - 1 ? REASM_DONE : REASM_HELD);
      });
      assert.equal(Buffer.compare(Buffer.from(r.out.subarray(0, r.outLength)), Buffer.from(d)), 0, `mtu ${mtu}`);
      assert.equal(r.size, 0);
    }
  }
});

test('later fragments keep only the options with the copied flag', () => {
  // Router alert (0x94, copied) then record route (0x07, not copied), padded to 4-byte words.
  const options = new Uint8Array([0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0]);
  const d = datagram(3000, { options });
  const frags = cut(d, 1500);
  assert.equal(parseIpv4Packet(frags[0]).ok && (parseIpv4Packet(frags[0]) as { value: { options: Uint8Array } }).value.options.length, 12);
  const later = parseIpv4Packet(frags[1]);
  assert.ok(later.ok);
  assert.deepEqual([...later.value.options], [0x94, 4, 0, 0]);
  assert.equal(copiedOptions(d, 0, 32), 4);
  const r = new Ipv4Reassembler();
  for (const f of frags) offer(r, f);
  assert.equal(Buffer.compare(Buffer.from(r.out.subarray(0, r.outLength)), Buffer.from(d)), 0);
});

test('overlapping fragments drop the whole datagram; an exact repeat is ignored', () => {
  const d = datagram(4000);
  const frags = cut(d, 1500);
  const r = new Ipv4Reassembler();
  assert.equal(offer(r, frags[0]), REASM_HELD);
  assert.equal(offer(r, frags[0]), REASM_HELD, 'exact repeat');
  assert.equal(r.stats.duplicates, 1);
  // A fragment at offset 8 (inside the first one): teardrop.
  const evil = frags[1].slice();
  evil[6] = 0x20; // MF, offset 8 bytes
  evil[7] = 0x01;
  ipv4SetChecksum(evil, 0, 20);
  assert.equal(offer(r, evil), REASM_ERR_OVERLAP);
  assert.equal(r.size, 0, 'the datagram is gone');
  // Two different last fragments.
  const r2 = new Ipv4Reassembler();
  const last = frags[frags.length - 1];
  offer(r2, last);
  const shorter = last.subarray(0, last.length - 8).slice();
  shorter[2] = (shorter.length >>> 8) & 0xff;
  shorter[3] = shorter.length & 0xff;
  ipv4SetChecksum(shorter, 0, 20);
  assert.equal(offer(r2, shorter), REASM_ERR_OVERLAP);
});

test('limits: table size, per source, fragments per datagram, size, length multiple of 8, timeout', () => {
  const r = new Ipv4Reassembler({ maxDatagrams: 4, maxPerSource: 2, maxFragments: 3, timeoutMs: 1000 });
  const first = (id: number, src = '198.18.0.2'): Uint8Array => cut(datagram(3000, { id, src }), 1500)[0];
  assert.equal(offer(r, first(1)), REASM_HELD);
  assert.equal(offer(r, first(2)), REASM_HELD);
  assert.equal(offer(r, first(3)), REASM_ERR_SOURCE_LIMIT, 'a third from the same source');
  assert.equal(offer(r, first(4, '198.18.0.3')), REASM_HELD, 'another source still gets room');
  assert.equal(offer(r, first(5, '198.18.0.4')), REASM_HELD);
  assert.equal(offer(r, first(6, '198.18.0.5')), REASM_ERR_FULL);
  assert.ok(r.memoryBytes <= 4 * 65600);
  // Time passes: everything in progress expires, room again.
  assert.equal(offer(r, first(6, '198.18.0.5'), 1001), REASM_HELD);
  assert.equal(r.stats.timedOut, 4);
  // Too many fragments of one datagram (tiny MTU).
  const tiny = cut(datagram(200, { id: 9, src: '198.18.0.9' }), 68);
  const r2 = new Ipv4Reassembler({ maxFragments: 3 });
  assert.equal(offer(r2, tiny[0]), REASM_HELD);
  assert.equal(offer(r2, tiny[1]), REASM_HELD);
  assert.equal(offer(r2, tiny[2]), REASM_HELD);
  assert.equal(offer(r2, tiny[3]), REASM_ERR_TOO_MANY_FRAGMENTS);
  // Past 65535 bytes (ping of death): offset 8189*8 with 100 bytes.
  const pod = tiny[1].slice();
  pod[6] = 0x1f;
  pod[7] = 0xfd;
  ipv4SetChecksum(pod, 0, 20);
  assert.equal(offer(new Ipv4Reassembler(), pod), REASM_ERR_TOO_BIG);
  // A non-last fragment whose payload is not a multiple of 8.
  const odd = datagram(21, { flags: 1 });
  assert.equal(offer(new Ipv4Reassembler(), odd), REASM_ERR_BAD_LENGTH);
});

test('a flood of random fragments keeps memory bounded and never throws', () => {
  const r = new Ipv4Reassembler({ maxDatagrams: 32 });
  for (let i = 0; i < 20000; i++) {
    const size = 8 + ((i * 37) % 600);
    const f = serializeIpv4Packet({
      protocol: IPPROTO_UDP, src: `198.18.${(i >> 8) & 255}.${i & 255}`, dst: '198.19.0.3', id: i % 97,
      flags: i % 3 === 0 ? 0 : 1, fragmentOffset: (i * 13) % 8000, payload: new Uint8Array(size & ~7 || 8),
    });
    const res = offer(r, f, i);
    assert.ok(res === REASM_HELD || res === REASM_DONE || res < 0);
    assert.ok(r.size <= 32);
  }
  assert.ok(r.memoryBytes <= 33 * 65600);
});
