import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checksum, fold, partialChecksum4, partialUpdate16, partialUpdate32, pseudoSum4, pseudoSum4At, sum, update16, update32,
} from '../../src/net/checksum.ts';

/** The textbook algorithm, byte pair by byte pair (RFC 1071 section 4.1). */
function refSum(b: Uint8Array, off = 0, len = b.length - off): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    s += (b[off + i] << 8) + (i + 1 < len ? b[off + i + 1] : 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  }
  return s;
}
function refChecksum(b: Uint8Array, off = 0, len = b.length - off): number {
  return ~refSum(b, off, len) & 0xffff;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

test('RFC 1071 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
  const b = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(sum(b, 0, 8), 0x2ddf0);
  assert.equal(fold(sum(b, 0, 8)), 0xddf2);
  assert.equal(checksum(b, 0, 8), 0x220d);
});

test('a known IPv4 header checksum (b861)', () => {
  const h = new Uint8Array([0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
    0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]);
  assert.equal(checksum(h, 0, 20), 0xb861);
  h[10] = 0xb8; h[11] = 0x61;
  assert.equal(fold(sum(h, 0, 20)), 0xffff, 'a header with its checksum sums to all ones');
});

test('sum matches the reference for every length, offset and alignment (word path included)', () => {
  const r = rng(42);
  const ab = new ArrayBuffer(9000);
  const all = new Uint8Array(ab);
  for (let i = 0; i < all.length; i++) all[i] = r() & 0xff;
  for (const viewOff of [0, 1, 2, 3, 6]) {
    const view = new Uint8Array(ab, viewOff, 8100);
    for (const len of [0, 1, 2, 3, 7, 20, 127, 128, 129, 130, 255, 1500, 1501, 4000, 7990]) {
      for (const off of [0, 1, 2, 3, 4, 5, 14, 26]) {
        assert.equal(fold(sum(view, off, len)), refSum(view, off, len), `viewOff ${viewOff} off ${off} len ${len}`);
        assert.equal(checksum(view, off, len), refChecksum(view, off, len), `checksum viewOff ${viewOff} off ${off} len ${len}`);
      }
    }
  }
});

test('sum works over a SharedArrayBuffer and adds an initial value', () => {
  const sab = new SharedArrayBuffer(4096);
  const b = new Uint8Array(sab);
  const r = rng(7);
  for (let i = 0; i < b.length; i++) b[i] = r() & 0xff;
  assert.equal(fold(sum(b, 2, 3000, 0x1234)), fold(refSum(b, 2, 3000) + 0x1234));
});

test('update16 / update32 equal a full recomputation (RFC 1624)', () => {
  const r = rng(99);
  for (let n = 0; n < 2000; n++) {
    const b = new Uint8Array(40);
    for (let i = 0; i < b.length; i++) b[i] = r() & 0xff;
    b[10] = 0; b[11] = 0;
    const c0 = refChecksum(b);
    // change one word
    const at = 12 + 2 * (r() % 10);
    const old = (b[at] << 8) | b[at + 1];
    const nw = r() & 0xffff;
    b[at] = nw >>> 8; b[at + 1] = nw & 0xff;
    const c1 = refChecksum(b);
    const inc = update16(c0, old, nw);
    // 0x0000 and 0xffff are the same number in ones' complement; RFC 1624 eqn. 3 gives
    // the value a recomputation gives except for that representation.
    assert.equal(inc === 0xffff ? 0 : inc, c1 === 0xffff ? 0 : c1, `word update ${n}`);
    // change a 32-bit value
    const at4 = 20 + 4 * (r() % 5);
    const old4 = ((b[at4] << 24) | (b[at4 + 1] << 16) | (b[at4 + 2] << 8) | b[at4 + 3]) >>> 0;
    const new4 = r() >>> 0;
    b[at4] = new4 >>> 24; b[at4 + 1] = (new4 >>> 16) & 0xff; b[at4 + 2] = (new4 >>> 8) & 0xff; b[at4 + 3] = new4 & 0xff;
    const c2 = refChecksum(b);
    const inc2 = update32(c1, old4, new4);
    assert.equal(inc2 === 0xffff ? 0 : inc2, c2 === 0xffff ? 0 : c2, `dword update ${n}`);
  }
});

test('RFC 1624 section 4 example: eqn. 3 gives 0x0000, not 0xffff', () => {
  assert.equal(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
});

test('partial checksum updates track the pseudo-header sum of the new addresses', () => {
  const r = rng(5);
  for (let n = 0; n < 1000; n++) {
    const src = r() >>> 0;
    const dst = r() >>> 0;
    const nsrc = r() >>> 0;
    const len = r() & 0xffff;
    const p = partialChecksum4(src, dst, 6, len);
    assert.equal(p, fold(pseudoSum4(src, dst, 6, len)));
    assert.equal(partialUpdate32(p, src, nsrc), partialChecksum4(nsrc, dst, 6, len));
    const half = nsrc >>> 16;
    assert.equal(partialUpdate16(p, src >>> 16, half), partialChecksum4(((half << 16) | (src & 0xffff)) >>> 0, dst, 6, len));
  }
});

test('pseudoSum4At reads the addresses from an IPv4 header', () => {
  const h = new Uint8Array(20);
  h.set([198, 18, 0, 2], 12);
  h.set([203, 0, 113, 9], 16);
  assert.equal(pseudoSum4At(h, 0, 17, 28), pseudoSum4(0xc6120002, 0xcb007109, 17, 28));
  assert.equal(pseudoSum4(0xc6120002, 0xcb007109, 17, 28), 0xc612 + 0x0002 + 0xcb00 + 0x7109 + 17 + 28);
});
