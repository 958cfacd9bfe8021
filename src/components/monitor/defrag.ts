// IPv4 and IPv6 defragmentation with bounded memory. Fragments are tracked
// per (version, source, destination, id, protocol); a datagram is rebuilt
// once its last fragment is in and no hole is left. Overlaps raise
// ipv{4,6}.frag_overlap (teardrop) and are resolved by the configured
// target-based policy (overlap.ts; `policy`, default bsd as Suricata's: the
// fragment that starts lower wins, on equal starts the earlier). A fragment reaching past 65535 bytes raises
// ipv{4,6}.frag_pkt_too_large (ping of death) and is not kept. Limits:
// `maxTrackers` datagrams in progress, `maxBytes` fragment bytes held in all,
// `maxFragments` per datagram, `timeoutMs` of inactivity; whatever exceeds a
// limit is dropped and counted. One source address holds at most
// `maxTrackersPerSource` datagrams in progress: a new one past it evicts that
// source's oldest (counted `sourceEvicted`), so a fragment flood from one
// sender cannot fill the trackers and leave everyone else's fragments
// unreassembled (an evasion), and cannot shield its own later datagrams either.
import { EV } from './events.ts';
import { insertPiece, piecesBytes, type OverlapPolicy, type Piece } from './overlap.ts';
import type { Packet } from './packet.ts';

export interface DefragLimits {
  maxTrackers: number;
  maxTrackersPerSource: number;
  maxBytes: number;
  maxFragments: number;
  timeoutMs: number;
  /** Which bytes win where fragments overlap (overlap.ts). */
  policy: OverlapPolicy;
}

export const DEFRAG_DEFAULTS: DefragLimits = { maxTrackers: 4096, maxTrackersPerSource: 256, maxBytes: 16 << 20, maxFragments: 256, timeoutMs: 60_000, policy: 'bsd' };

interface Tracker {
  key: string;
  /** The source address (text), its group in #bySource. */
  source: string;
  ver: number;
  /** Header bytes to put in front of the rebuilt payload: v4 the first fragment's header, v6 the unfragmentable part. */
  hdr: Uint8Array | null;
  /** v6: the upper-layer protocol (the fragment header's next header). */
  nextHeader: number;
  /** The payload bytes held, resolved by the policy (sorted, non-overlapping). */
  pieces: Piece[];
  /** Fragments taken. */
  frags: number;
  /** Payload length, known once the last fragment (MF clear) arrived; -1 before. */
  total: number;
  bytes: number;
  lastSeen: number;
  overlap: boolean;
}

export interface DefragCounters {
  fragments: number;
  reassembled: number;
  overlaps: number;
  tooLarge: number;
  timeouts: number;
  trackersFull: number;
  sourceEvicted: number;
  memcap: number;
  tooManyFragments: number;
}

export class Defrag {
  readonly limits: DefragLimits;
  readonly counters: DefragCounters = {
    fragments: 0, reassembled: 0, overlaps: 0, tooLarge: 0, timeouts: 0, trackersFull: 0, sourceEvicted: 0, memcap: 0, tooManyFragments: 0,
  };
  #trackers = new Map<string, Tracker>();
  /** Trackers by source address, oldest first. */
  readonly #bySource = new Map<string, Set<Tracker>>();
  #bytes = 0;

  constructor(limits: DefragLimits = DEFRAG_DEFAULTS) {
    this.limits = limits;
  }

  get trackers(): number {
    return this.#trackers.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Take fragment p (decoded up to its IP header, p.isFragment). Raises events
   * on p. Returns the rebuilt datagram (IP header + payload) when this fragment
   * completes one, else null.
   */
  add(p: Packet, nowMs: number): Uint8Array | null {
    const c = this.counters;
    c.fragments++;
    const v6 = p.ipVer === 6;
    const b = p.buf;
    const off = p.fragOff;
    const len = p.payLen;
    const hdrLen = v6 ? 0 : p.ipHlen;
    if (off + len + hdrLen > 65535) {
      p.event(v6 ? EV['ipv6.frag_pkt_too_large'] : EV['ipv4.frag_pkt_too_large']);
      c.tooLarge++;
      return null;
    }
    const source = v6 ? hex(b, p.src6, 16) : String(p.src4 >>> 0);
    const key = v6
      ? `6|${source}|${hex(b, p.dst6, 16)}|${p.ipId}|${p.proto}`
      : `4|${p.src4}|${p.dst4}|${p.ipId}|${p.proto}`;
    let t = this.#trackers.get(key);
    if (t === undefined) {
      const mine = this.#bySource.get(source);
      if (mine !== undefined && mine.size >= this.limits.maxTrackersPerSource) {
        c.sourceEvicted++;
        this.#remove(mine.values().next().value as Tracker);
      }
      if (this.#trackers.size >= this.limits.maxTrackers) {
        this.sweep(nowMs);
        if (this.#trackers.size >= this.limits.maxTrackers) {
          c.trackersFull++;
          return null;
        }
      }
      t = { key, source, ver: p.ipVer, hdr: null, nextHeader: p.proto, pieces: [], frags: 0, total: -1, bytes: 0, lastSeen: nowMs, overlap: false };
      this.#trackers.set(key, t);
      let set = this.#bySource.get(source);
      if (set === undefined) {
        set = new Set();
        this.#bySource.set(source, set);
      }
      set.add(t);
    }
    t.lastSeen = nowMs;
    if (t.frags >= this.limits.maxFragments) {
      c.tooManyFragments++;
      this.#remove(t);
      return null;
    }
    const end = off + len;
    if (!p.mf) {
      if (t.total >= 0 && t.total !== end) {
        // A second "last" fragment that disagrees: keep the first, count it as overlap.
        p.event(v6 ? EV['ipv6.frag_overlap'] : EV['ipv4.frag_overlap']);
      } else t.total = end;
    }
    if (this.#bytes + len > this.limits.maxBytes) {
      c.memcap++;
      return null;
    }
    if (off === 0 && t.hdr === null) {
      if (v6) {
        t.hdr = b.slice(p.l3, p.v6Frag);
        t.nextHeader = p.proto;
      } else t.hdr = b.slice(p.l3, p.l3 + p.ipHlen);
    }
    if (len > 0) {
      t.frags++;
      const r = insertPiece(t.pieces, this.limits.policy, off, end, b, p.payOff);
      if (r.overlapped) {
        if (!t.overlap) c.overlaps++;
        t.overlap = true;
        p.event(v6 ? EV['ipv6.frag_overlap'] : EV['ipv4.frag_overlap']);
      }
      t.pieces = r.pieces;
      const held = piecesBytes(r.pieces);
      this.#bytes += held - t.bytes;
      t.bytes = held;
    }
    if (t.total < 0 || t.hdr === null || !covered(t.pieces, t.total)) return null;
    const out = this.#rebuild(t);
    this.#remove(t);
    c.reassembled++;
    return out;
  }

  #rebuild(t: Tracker): Uint8Array {
    const hdr = t.hdr as Uint8Array;
    const out = new Uint8Array(hdr.length + t.total);
    // The pieces do not overlap: the policy already chose every byte.
    for (const f of t.pieces) {
      const n = Math.min(f.e, t.total) - f.s;
      if (n > 0) out.set(n === f.data.length ? f.data : f.data.subarray(0, n), hdr.length + f.s);
    }
    out.set(hdr, 0);
    if (t.ver === 4) {
      const total = hdr.length + t.total;
      out[2] = total >>> 8;
      out[3] = total & 0xff;
      out[6] &= 0x40; // keep DF, clear MF and the offset
      out[7] = 0;
      out[10] = 0;
      out[11] = 0;
      let s = 0;
      for (let i = 0; i < hdr.length; i += 2) s += (out[i] << 8) | out[i + 1];
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      const ck = ~s & 0xffff;
      out[10] = ck >>> 8;
      out[11] = ck & 0xff;
    } else {
      const plen = hdr.length - 40 + t.total;
      out[4] = plen >>> 8;
      out[5] = plen & 0xff;
      // Patch the next-header field that pointed at the fragment header.
      let nhAt = 6;
      let nh = out[6];
      let at = 40;
      while (nh !== 44 && at + 8 <= hdr.length) {
        nhAt = at;
        const hl = nh === 51 ? (out[at + 1] + 2) << 2 : (out[at + 1] + 1) << 3;
        nh = out[at];
        at += hl;
      }
      out[nhAt] = t.nextHeader;
    }
    return out;
  }

  #remove(t: Tracker): void {
    this.#bytes -= t.bytes;
    this.#trackers.delete(t.key);
    const set = this.#bySource.get(t.source);
    if (set !== undefined) {
      set.delete(t);
      if (set.size === 0) this.#bySource.delete(t.source);
    }
  }

  /** Drop trackers idle for longer than the timeout. */
  sweep(nowMs: number): void {
    for (const t of this.#trackers.values()) {
      if (nowMs - t.lastSeen > this.limits.timeoutMs) {
        this.counters.timeouts++;
        this.#remove(t);
      }
    }
  }
}

/** Do the pieces (sorted) cover [0, total) without a hole? */
function covered(pieces: readonly Piece[], total: number): boolean {
  let reach = 0;
  for (const f of pieces) {
    if (f.s > reach) return false;
    reach = Math.max(reach, f.e);
    if (reach >= total) return true;
  }
  return reach >= total;
}

function hex(b: Uint8Array, off: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += b[off + i].toString(16).padStart(2, '0');
  return s;
}
