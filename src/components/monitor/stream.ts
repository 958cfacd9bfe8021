// TCP stream reassembly, one Stream per flow direction, bounded. In-order
// data is appended (retransmitted bytes skipped); segments ahead of a gap
// wait, copied, until the gap fills (at most `maxSegments` per stream and
// `memcap` bytes in all, else dropped and counted and the gap is skipped).
// Each stream keeps only the last `overlap` bytes it delivered: detection
// inspects a window of those bytes plus the new ones, so a pattern split
// across segments is found, and a match lying wholly in old bytes is not
// reported twice. Past `depth` bytes a stream is no longer reassembled.
// Segments that overlap held ones with other data are resolved by the
// configured target-based policy (overlap.ts; `policy`, default bsd as
// Suricata's); bytes already delivered (inspected) never change.
import { insertPiece, piecesBytes, type OverlapPolicy, type Piece } from './overlap.ts';

export interface StreamLimits {
  depth: number;
  overlap: number;
  maxSegments: number;
  memcap: number;
  /** Which bytes win where held segments overlap (overlap.ts). */
  policy: OverlapPolicy;
}

export const STREAM_DEFAULTS: StreamLimits = { depth: 1 << 20, overlap: 2048, maxSegments: 64, memcap: 64 << 20, policy: 'bsd' };

export class Stream {
  /** Sequence number of the next expected byte (valid once `synced`). */
  next = 0;
  synced = false;
  /** Bytes delivered so far (stream offset of the next byte). */
  offset = 0;
  /** The last bytes delivered (up to `overlap`). */
  tail: Uint8Array | null = null;
  tailLen = 0;
  /** Position of `next` counting every byte of sequence space since the start, skipped gaps included. */
  pos = 0;
  /** Segments held ahead of `next` (positions as `pos`), sorted, overlaps resolved. */
  pending: Piece[] = [];
  pendingBytes = 0;
  depthReached = false;
  gaps = 0;
}

export interface StreamCounters {
  segments: number;
  retransmissions: number;
  outOfOrder: number;
  gaps: number;
  depthReached: number;
  memcap: number;
  /** Segments that overlapped held ones (resolved by the policy). */
  overlaps: number;
}

export class Reassembler {
  readonly limits: StreamLimits;
  readonly counters: StreamCounters = { segments: 0, retransmissions: 0, outOfOrder: 0, gaps: 0, depthReached: 0, memcap: 0, overlaps: 0 };
  /** Bytes held in pending segments and tails, all streams. */
  bytes = 0;
  /** The inspection window of the last segment: old tail bytes then new bytes. */
  window = new Uint8Array(4096);
  /** Bytes of the window that were delivered before (a match must end past them). */
  windowOld = 0;
  windowLen = 0;
  /** Stream offset of window[0]. */
  windowOffset = 0;

  constructor(limits: StreamLimits = STREAM_DEFAULTS) {
    this.limits = limits;
  }

  /** A SYN (or SYN/ACK) with sequence number isn: data starts at isn + 1. */
  syn(s: Stream, isn: number): void {
    if (s.synced && s.offset > 0) return;
    s.next = (isn + 1) >>> 0;
    s.synced = true;
  }

  /**
   * A segment with payload b[off, off+len) at sequence seq. Returns the number
   * of new in-order bytes made available in `window` (0: nothing new).
   */
  segment(s: Stream, seq: number, b: Uint8Array, off: number, len: number): number {
    if (len === 0) return 0;
    this.counters.segments++;
    if (s.depthReached) return 0;
    if (!s.synced) {
      s.next = seq;
      s.synced = true;
    }
    const ahead = (seq - s.next) | 0;
    this.#startWindow(s);
    let added = 0;
    if (ahead > 0) {
      this.counters.outOfOrder++;
      this.#hold(s, s.pos + ahead, b, off, len, false);
      return 0;
    }
    if (ahead + len <= 0) {
      this.counters.retransmissions++;
      return 0;
    }
    // Skip the bytes already delivered; with segments held, resolve the
    // overlaps first (the held ones may win bytes of this one).
    if (s.pending.length === 0) added += this.#deliver(s, b, off - ahead, len + ahead);
    else this.#hold(s, s.pos + ahead, b, off, len, true);
    added += this.#drainPending(s);
    // Too many bytes waiting behind a gap: give up on the gap.
    if (s.pending.length > this.limits.maxSegments) added += this.#skipGap(s);
    if (added > 0) this.#finishWindow(s);
    return added;
  }

  /** The flow ends (or a FIN): deliver what waits behind gaps. Returns new bytes in `window`. */
  flush(s: Stream): number {
    if (s.pending.length === 0) return 0;
    this.#startWindow(s);
    const added = this.#skipGap(s);
    if (added > 0) this.#finishWindow(s);
    return added;
  }

  /** Release everything a stream holds. */
  free(s: Stream): void {
    this.bytes -= s.pendingBytes + (s.tail === null ? 0 : s.tail.length);
    s.pending = [];
    s.pendingBytes = 0;
    s.tail = null;
    s.tailLen = 0;
  }

  #startWindow(s: Stream): void {
    const old = s.tailLen;
    this.#ensure(old + 2048);
    if (old > 0 && s.tail !== null) this.window.set(s.tail.subarray(0, old), 0);
    this.windowOld = old;
    this.windowLen = old;
    this.windowOffset = s.offset - old;
  }

  #finishWindow(s: Stream): void {
    // Keep the last `overlap` bytes as the stream's tail.
    const keep = Math.min(this.limits.overlap, this.windowLen);
    if (keep === 0) return;
    if (s.tail === null) {
      s.tail = new Uint8Array(this.limits.overlap);
      this.bytes += s.tail.length;
    }
    s.tail.set(this.window.subarray(this.windowLen - keep, this.windowLen), 0);
    s.tailLen = keep;
  }

  #deliver(s: Stream, b: Uint8Array, off: number, len: number): number {
    let n = len;
    const room = this.limits.depth - s.offset;
    if (n > room) {
      n = Math.max(0, room);
      s.depthReached = true;
      this.counters.depthReached++;
    }
    if (n > 0) {
      this.#ensure(this.windowLen + n);
      this.window.set(b.subarray(off, off + n), this.windowLen);
      this.windowLen += n;
      s.offset += n;
    }
    s.next = (s.next + len) >>> 0;
    s.pos += len;
    return n;
  }

  /** Hold b[off, off+len) at position `at` (force: in-order data, taken whatever the limits: it is delivered at once). */
  #hold(s: Stream, at: number, b: Uint8Array, off: number, len: number, force: boolean): void {
    if (!force && (this.bytes + len > this.limits.memcap || s.pending.length >= this.limits.maxSegments * 2)) {
      this.counters.memcap++;
      return;
    }
    const r = insertPiece(s.pending, this.limits.policy, at, at + len, b, off);
    if (r.overlapped) this.counters.overlaps++;
    const held = piecesBytes(r.pieces);
    this.bytes += held - s.pendingBytes;
    s.pendingBytes = held;
    s.pending = r.pieces;
  }

  /** Deliver the held pieces that now continue the stream. */
  #drainPending(s: Stream): number {
    let added = 0;
    while (s.pending.length > 0 && !s.depthReached) {
      const p = s.pending[0];
      if (p.s > s.pos) break;
      s.pending.shift();
      const n = p.e - p.s;
      s.pendingBytes -= n;
      this.bytes -= n;
      if (p.e > s.pos) {
        const skip = s.pos - p.s;
        added += this.#deliver(s, p.data, skip, n - skip);
      }
    }
    return added;
  }

  #skipGap(s: Stream): number {
    let added = 0;
    while (s.pending.length > 0 && !s.depthReached) {
      const gap = s.pending[0].s - s.pos;
      this.counters.gaps++;
      s.gaps++;
      s.next = (s.next + gap) >>> 0;
      s.pos += gap;
      added += this.#drainPending(s);
    }
    return added;
  }

  #ensure(n: number): void {
    if (n <= this.window.length) return;
    let m = this.window.length;
    while (m < n) m *= 2;
    const w = new Uint8Array(m);
    w.set(this.window.subarray(0, this.windowLen), 0);
    this.window = w;
  }
}
