// The sync message between the two gateways of an HA pair (issue 19): a
// batch of connection records (src/components/router/conn-record.ts) in one
// UDP datagram on the dedicated sync link, authenticated with a key both
// gateways share (HMAC-SHA256), numbered against replay.
//
//   0 "MGCS"   4 u8 version (1)   5 u8 flags   6 u16 records (1..PAIR_MAX_RECORDS)
//   (flags 0: a batch of connection records; PAIR_FLAG_STATUS: one 40-byte
//   status block instead, the sender's heartbeat: pair-status.ts)
//   8 u64 epoch (the sender's start, ms since 1970: a restarted sender starts a new, larger epoch)
//  16 u64 sequence (1, 2, ... within the epoch)
//  24 u32 sender id   28 u32 receiver id (each gateway's id in the pair)
//  32 u64 sent at (ms since 1970, the sender's clock)
//  40 records, 40 bytes each
//   . HMAC-SHA256(key, everything before it), 32 bytes
//
// PairOpener takes a message only when it is whole (its length is exactly
// the header, its records and the tag), the tag verifies (constant-time
// compare) and (epoch, sequence) is above the last one it took: a forged,
// altered, truncated, replayed or reordered message is refused with its
// reason, which the caller counts. Both gateways hold the same key, so the
// ids say which way a message goes: a gateway's own message reflected back to
// it verifies, and without them would be taken (and, its epoch being newer
// than the peer's, would make every genuine message of the peer "replayed"
// from then on); with them it is refused (`wrong-peer`). A receiver that
// restarted remembers no (epoch, sequence): `sent at` more than `maxSkewMs`
// (30 s) off its clock is refused (`stale`), so recorded traffic cannot be
// replayed into it later. The records are then still checked one by
// one like any others (decodeRecord, the router's import checks): the key
// proves who sent them, not that they are harmless.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { RECORD_LEN } from '../router/conn-record.ts';

export const PAIR_MAGIC = 0x4d47_4353; // "MGCS"
export const PAIR_VERSION = 1;
export const PAIR_HEADER = 40;
export const PAIR_TAG = 32;
/** Largest datagram: a 1500-byte link without fragments (1500 - 20 IP - 8 UDP). */
export const PAIR_MAX_DATAGRAM = 1472;
export const PAIR_MAX_RECORDS = Math.floor((PAIR_MAX_DATAGRAM - PAIR_HEADER - PAIR_TAG) / RECORD_LEN);
/** Shortest key accepted (bytes). */
export const PAIR_MIN_KEY = 32;

/** Flags value: the body is one status block (pair-status.ts), not records. */
export const PAIR_FLAG_STATUS = 1;

export const PAIR_ERRORS = ['ok', 'truncated', 'bad-magic', 'bad-version', 'bad-flags', 'bad-count', 'bad-length', 'forged', 'replayed', 'wrong-peer', 'stale'] as const;

/** This gateway's id and its peer's (u32 each, different). */
export interface PairEnds {
  self: number;
  peer: number;
}

function checkEnds(e: PairEnds): void {
  if (!Number.isInteger(e.self) || !Number.isInteger(e.peer) || e.self < 0 || e.peer < 0 || e.self > 0xffff_ffff || e.peer > 0xffff_ffff || e.self === e.peer) {
    throw new RangeError(`pair ids must be two different integers from 0 to 4294967295 (got ${e.self} and ${e.peer})`);
  }
}
export type PairError = typeof PAIR_ERRORS[number];

function checkKey(key: Uint8Array): void {
  if (key.length < PAIR_MIN_KEY) throw new RangeError(`the pair key must have at least ${PAIR_MIN_KEY} bytes (got ${key.length})`);
}

function setU64(b: Uint8Array, off: number, v: bigint): void {
  setU32(b, off, Number(v >> 32n));
  setU32(b, off + 4, Number(v & 0xffff_ffffn));
}

function getU64(b: Uint8Array, off: number): bigint {
  return (BigInt(getU32(b, off)) << 32n) | BigInt(getU32(b, off + 4));
}

function tag(key: Uint8Array, b: Uint8Array, len: number): Buffer {
  return createHmac('sha256', key).update(b.subarray(0, len)).digest();
}

/** The sending side: numbers and seals batches. */
export class PairSealer {
  readonly #key: Uint8Array;
  readonly #ends: PairEnds;
  readonly #clockMs: () => number;
  readonly epoch: bigint;
  #seq = 0n;

  constructor(key: Uint8Array, ends: PairEnds, epoch: bigint = BigInt(Date.now()), clockMs: () => number = Date.now) {
    checkKey(key);
    checkEnds(ends);
    this.#key = Uint8Array.from(key);
    this.#ends = { ...ends };
    this.#clockMs = clockMs;
    this.epoch = epoch;
  }

  /**
   * Seal `count` records (records[0 .. count * 40)) into out (at least
   * PAIR_MAX_DATAGRAM bytes); returns the datagram's length. With `flags`
   * PAIR_FLAG_STATUS, `records` is one 40-byte status block (count 1).
   */
  seal(records: Uint8Array, count: number, out: Uint8Array, flags = 0): number {
    if (count < 1 || count > PAIR_MAX_RECORDS) throw new RangeError(`1 to ${PAIR_MAX_RECORDS} records per message (got ${count})`);
    if (flags !== 0 && (flags !== PAIR_FLAG_STATUS || count !== 1)) throw new RangeError(`flags 0, or ${PAIR_FLAG_STATUS} with one block (got ${flags}, ${count})`);
    const body = count * RECORD_LEN;
    setU32(out, 0, PAIR_MAGIC);
    out[4] = PAIR_VERSION;
    out[5] = flags;
    setU16(out, 6, count);
    setU64(out, 8, this.epoch);
    this.#seq++;
    setU64(out, 16, this.#seq);
    setU32(out, 24, this.#ends.self);
    setU32(out, 28, this.#ends.peer);
    setU64(out, 32, BigInt(Math.floor(this.#clockMs())));
    out.set(records.subarray(0, body), PAIR_HEADER);
    const len = PAIR_HEADER + body;
    out.set(tag(this.#key, out, len), len);
    return len + PAIR_TAG;
  }
}

/** The receiving side: verifies and refuses replays. */
export class PairOpener {
  readonly #key: Uint8Array;
  readonly #ends: PairEnds;
  readonly #clockMs: () => number;
  readonly #maxSkewMs: number;
  #epoch = -1n;
  #seq = 0n;

  constructor(key: Uint8Array, ends: PairEnds, opts: { clockMs?: () => number; maxSkewMs?: number } = {}) {
    checkKey(key);
    checkEnds(ends);
    this.#key = Uint8Array.from(key);
    this.#ends = { ...ends };
    this.#clockMs = opts.clockMs ?? Date.now;
    this.#maxSkewMs = opts.maxSkewMs ?? 30_000;
  }

  /** The last (epoch, sequence) taken. */
  get last(): { epoch: bigint; seq: bigint } {
    return { epoch: this.#epoch, seq: this.#seq };
  }

  /**
   * Check the datagram b[0, len): the number of records (at b[PAIR_HEADER...])
   * when it is whole, authentic and new; else -(the index of the reason in
   * PAIR_ERRORS). b[5] then says what the body is (0 records, PAIR_FLAG_STATUS
   * one status block).
   */
  open(b: Uint8Array, len: number): number {
    const E = (why: PairError): number => -PAIR_ERRORS.indexOf(why);
    if (len < PAIR_HEADER + RECORD_LEN + PAIR_TAG || len > b.length) return E('truncated');
    if (getU32(b, 0) !== PAIR_MAGIC) return E('bad-magic');
    if (b[4] !== PAIR_VERSION) return E('bad-version');
    if (b[5] !== 0 && b[5] !== PAIR_FLAG_STATUS) return E('bad-flags');
    const count = getU16(b, 6);
    if (count < 1 || count > PAIR_MAX_RECORDS || (b[5] === PAIR_FLAG_STATUS && count !== 1)) return E('bad-count');
    const body = PAIR_HEADER + count * RECORD_LEN;
    if (len < body + PAIR_TAG) return E('truncated');
    if (len !== body + PAIR_TAG) return E('bad-length');
    const want = tag(this.#key, b, body);
    if (!timingSafeEqual(want, b.subarray(body, body + PAIR_TAG))) return E('forged');
    // Authentic from here: whoever holds the key sealed it. Which way, and when?
    if (getU32(b, 24) !== this.#ends.peer || getU32(b, 28) !== this.#ends.self) return E('wrong-peer');
    if (Math.abs(Number(getU64(b, 32)) - this.#clockMs()) > this.#maxSkewMs) return E('stale');
    const epoch = getU64(b, 8);
    const seq = getU64(b, 16);
    if (epoch < this.#epoch || (epoch === this.#epoch && seq <= this.#seq)) return E('replayed');
    this.#epoch = epoch;
    this.#seq = seq;
    return count;
  }
}
