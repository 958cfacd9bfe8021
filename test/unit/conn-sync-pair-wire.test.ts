// The HA pair's sync message (issue 19, src/components/conn-sync/pair-wire.ts):
// a sealed batch opens on the other side; forged, altered, truncated,
// padded, replayed, reordered messages and a wrong key are refused with
// their reason; a restarted sender (new epoch) is accepted, an old epoch not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  PAIR_ERRORS, PAIR_FLAG_STATUS, PAIR_HEADER, PAIR_MAX_DATAGRAM, PAIR_MAX_RECORDS, PAIR_TAG, PairOpener, PairSealer,
} from '../../src/components/conn-sync/pair-wire.ts';
import { RECORD_LEN } from '../../src/components/router/conn-record.ts';

const KEY = randomBytes(32);
/** Gateway 1 sends to gateway 2. */
const A = { self: 1, peer: 2 };
const B = { self: 2, peer: 1 };

function batch(count: number): Uint8Array {
  const b = new Uint8Array(count * RECORD_LEN);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

const reason = (v: number): string => (v >= 0 ? `ok ${v}` : PAIR_ERRORS[-v]);

test('pair wire: a sealed batch opens whole on the other side', () => {
  const s = new PairSealer(KEY, A, 1000n);
  const o = new PairOpener(KEY, B);
  const out = new Uint8Array(PAIR_MAX_DATAGRAM);
  const recs = batch(PAIR_MAX_RECORDS);
  const len = s.seal(recs, PAIR_MAX_RECORDS, out);
  assert.ok(len <= PAIR_MAX_DATAGRAM);
  assert.equal(len, PAIR_HEADER + PAIR_MAX_RECORDS * RECORD_LEN + PAIR_TAG);
  assert.equal(o.open(out, len), PAIR_MAX_RECORDS);
  assert.deepEqual(out.subarray(PAIR_HEADER, PAIR_HEADER + recs.length), recs);
  assert.deepEqual(o.last, { epoch: 1000n, seq: 1n });
  assert.throws(() => s.seal(recs, PAIR_MAX_RECORDS + 1, out), /records per message/);
  assert.throws(() => new PairSealer(new Uint8Array(16), A), /at least 32 bytes/);
});

test('pair wire attacks: forged, altered, truncated, padded, replayed, reordered, wrong key, old epoch', () => {
  const s = new PairSealer(KEY, A, 2000n);
  const o = new PairOpener(KEY, B);
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) {
    const out = new Uint8Array(PAIR_MAX_DATAGRAM);
    const len = s.seal(batch(3), 3, out);
    msgs.push(out.slice(0, len));
  }
  const len = msgs[0].length;
  // Altered: any byte of header, records or tag.
  for (const at of [6 + 1, 12, 20, 27, 31, 35, PAIR_HEADER + 5, len - 1]) {
    const m = msgs[0].slice();
    m[at] ^= 1;
    const v = o.open(m, m.length);
    assert.ok(v < 0, `byte ${at} altered is refused`);
  }
  const hdr = msgs[0].slice();
  hdr[0] ^= 1;
  assert.equal(reason(o.open(hdr, hdr.length)), 'bad-magic');
  const ver = msgs[0].slice();
  ver[4] = 2;
  assert.equal(reason(o.open(ver, ver.length)), 'bad-version');
  const rec = msgs[0].slice();
  rec[PAIR_HEADER] ^= 0x40;
  assert.equal(reason(o.open(rec, rec.length)), 'forged');
  // Truncated and padded.
  assert.equal(reason(o.open(msgs[0], len - 1)), 'truncated');
  assert.equal(reason(o.open(msgs[0], 10)), 'truncated');
  const padded = new Uint8Array(len + 1);
  padded.set(msgs[0]);
  assert.equal(reason(o.open(padded, padded.length)), 'bad-length');
  // Wrong key: forged.
  const other = new PairOpener(randomBytes(32), B);
  assert.equal(reason(other.open(msgs[0], len)), 'forged');
  // A forged message with a made-up tag.
  const made = msgs[0].slice();
  made.set(randomBytes(PAIR_TAG), len - PAIR_TAG);
  assert.equal(reason(o.open(made, len)), 'forged');
  // None of that moved the replay window: the genuine ones open in order, once.
  assert.equal(o.open(msgs[0], len), 3);
  assert.equal(reason(o.open(msgs[0], len)), 'replayed');
  assert.equal(o.open(msgs[2], len), 3);
  assert.equal(reason(o.open(msgs[1], len)), 'replayed', 'an older sequence number after a newer one');
  assert.equal(o.open(msgs[3], len), 3);
  // A restarted sender (a later epoch, sequence from 1) is taken; then the old epoch is not.
  const s2 = new PairSealer(KEY, A, 3000n);
  const m2 = new Uint8Array(PAIR_MAX_DATAGRAM);
  const l2 = s2.seal(batch(1), 1, m2);
  assert.equal(o.open(m2, l2), 1);
  assert.equal(reason(o.open(msgs[3], len)), 'replayed');
  const s0 = new PairSealer(KEY, A, 1000n);
  const m0 = new Uint8Array(PAIR_MAX_DATAGRAM);
  const l0 = s0.seal(batch(1), 1, m0);
  assert.equal(reason(o.open(m0, l0)), 'replayed', 'an older epoch');
});

test('pair wire: a gateway\'s own message reflected back to it, one for another gateway, and a recorded one replayed into a restarted receiver are refused', () => {
  const clock = { t: 1.8e12 };
  const mine = new PairSealer(KEY, B, 5000n, () => clock.t); // gateway 2's own traffic to gateway 1
  const o = new PairOpener(KEY, B, { clockMs: () => clock.t });
  const out = new Uint8Array(PAIR_MAX_DATAGRAM);
  const l = mine.seal(batch(1), 1, out);
  assert.equal(reason(o.open(out, l)), 'wrong-peer', 'reflected: same key, but from us');
  const third = new PairSealer(KEY, { self: 1, peer: 3 }, 5000n, () => clock.t);
  const l3 = third.seal(batch(1), 1, out);
  assert.equal(reason(o.open(out, l3)), 'wrong-peer', 'addressed to another gateway');
  // The reflection did not move the window: the peer's genuine message (an older epoch) still opens.
  const peer = new PairSealer(KEY, A, 1000n, () => clock.t);
  const rec = new Uint8Array(PAIR_MAX_DATAGRAM);
  const lr = peer.seal(batch(2), 2, rec);
  assert.equal(o.open(rec, lr), 2);
  // Recorded, then replayed 10 minutes later into a receiver that restarted (no window): stale.
  clock.t += 600_000;
  assert.equal(reason(new PairOpener(KEY, B, { clockMs: () => clock.t }).open(rec, lr)), 'stale');
  assert.throws(() => new PairOpener(KEY, { self: 1, peer: 1 }), /two different integers/);
});

test('pair wire: a status block (flags 1) opens; flags 1 with more than one block, or other flags, do not', () => {
  const s = new PairSealer(KEY, A, 3000n);
  const o = new PairOpener(KEY, B);
  const out = new Uint8Array(PAIR_MAX_DATAGRAM);
  const len = s.seal(batch(1), 1, out, PAIR_FLAG_STATUS);
  assert.equal(o.open(out, len), 1);
  assert.equal(out[5], PAIR_FLAG_STATUS);
  assert.throws(() => s.seal(batch(2), 2, out, PAIR_FLAG_STATUS), /one block/);
  assert.throws(() => s.seal(batch(1), 1, out, 2), /flags/);
  // A genuine two-record message relabelled as status: refused before the tag is looked at.
  const two = s.seal(batch(2), 2, out);
  out[5] = PAIR_FLAG_STATUS;
  assert.equal(reason(o.open(out, two)), 'bad-count');
  out[5] = 2;
  assert.equal(reason(o.open(out, two)), 'bad-flags');
});
