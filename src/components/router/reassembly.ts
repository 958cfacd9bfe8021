// IPv4 reassembly for the router (RFC 791 3.2, RFC 815 hole tracking).
//
// Policy and NAT need the transport header, which only the first fragment
// carries, so the router rebuilds a fragmented datagram before it decides,
// the way Linux's conntrack does (nf_defrag_ipv4), and forwards the whole
// datagram (fragmenting it again on egress when it does not fit the egress
// MTU). The rebuilt datagram is the router's private copy: nothing a sender
// writes into a shared slot later changes it.
//
// Hostile fragments are the point of the limits: at most `maxDatagrams`
// datagrams in progress (each holds one preallocated 64 KiB buffer, so memory
// is bounded by maxDatagrams x 65,600 bytes), at most `maxPerSource` of them
// per source address, at most `maxFragments` fragments per datagram, and
// `timeoutMs` from the first fragment to the last. Any overlap between two
// fragments drops the whole datagram (as RFC 5722 requires for IPv6 and Linux
// does for IPv4 since FragmentSmack); an exact repeat of a fragment already
// held is ignored. A datagram reaching past 65535 bytes is dropped. Every
// refusal is a negative result the router counts as a drop reason. A datagram
// that times out after its first fragment arrived is reported (onTimeout), so
// the router can send "fragment reassembly time exceeded" (RFC 792).
//
// The limits, result codes and the config (`fragments`) are shared with the
// IPv6 reassembler (reassembly6.ts).
import { getU16, getU32, setU16 } from '../../net/bytes.ts';
import { IP_FLAG_MF, IP_FRAG, IP_FRAG_OFFSET_MASK, IP_ID, IP_PROTOCOL, IP_SRC, IP_DST, IP_TOTAL_LENGTH, ipv4SetChecksum } from '../../net/ipv4.ts';

export interface ReassemblyLimits {
  maxDatagrams: number;
  maxPerSource: number;
  maxFragments: number;
  timeoutMs: number;
}

/** Linux's ipfrag_time is 30 s; 64 datagrams hold at most ~4 MiB. */
export const REASSEMBLY_DEFAULTS: ReassemblyLimits = { maxDatagrams: 64, maxPerSource: 16, maxFragments: 64, timeoutMs: 30_000 };

export const REASM_HELD = 0;
export const REASM_DONE = 1;
export const REASM_ERR_OVERLAP = -1;
export const REASM_ERR_TOO_BIG = -2;
export const REASM_ERR_FULL = -3;
export const REASM_ERR_SOURCE_LIMIT = -4;
export const REASM_ERR_TOO_MANY_FRAGMENTS = -5;
export const REASM_ERR_BAD_LENGTH = -6;

/** Drop reasons (router counters) for the negative results. */
export const REASM_DROP_REASONS: Readonly<Record<number, string>> = {
  [REASM_ERR_OVERLAP]: 'frag-overlap',
  [REASM_ERR_TOO_BIG]: 'frag-too-big',
  [REASM_ERR_FULL]: 'frag-table-full',
  [REASM_ERR_SOURCE_LIMIT]: 'frag-source-limit',
  [REASM_ERR_TOO_MANY_FRAGMENTS]: 'frag-too-many',
  [REASM_ERR_BAD_LENGTH]: 'frag-bad-length',
};

const MAX_HEADER = 60;
const EMPTY = new Uint8Array(0);
const BUF_SIZE = MAX_HEADER + 65535;

interface Datagram {
  key: string;
  src: number;
  buf: Uint8Array;
  /** Header length of the first fragment, once it arrived (0 before). */
  ihl: number;
  /** Payload bytes held, and the payload's total length once the last fragment arrived (-1 before). */
  held: number;
  total: number;
  /** Received payload ranges [start, end), sorted, non-overlapping: start at 2k, end at 2k+1. */
  ranges: number[];
  fragments: number;
  deadline: number;
  /** Ingress domain, and the sender's MAC (for "reassembly time exceeded"). */
  dom: number;
  mac: Uint8Array;
}

/**
 * Called for a datagram that timed out after its first fragment arrived:
 * buf[0..quote) is that fragment's header and up to 8 bytes of its data (as an
 * ICMP error quotes them), mac the sender's MAC at buf[macOff], dom the
 * ingress domain. RFC 792: "fragment reassembly time exceeded" to the source.
 */
export type ReassemblyTimeout = (buf: Uint8Array, quote: number, mac: Uint8Array, dom: number) => void;

export class Ipv4Reassembler {
  readonly limits: ReassemblyLimits;
  readonly #inProgress = new Map<string, Datagram>();
  readonly #perSource = new Map<number, number>();
  readonly #free: Uint8Array[] = [];
  #allocated = 0;
  /** After REASM_DONE: the rebuilt datagram is out[0..outLength) (valid until the next offer). */
  out: Uint8Array = EMPTY;
  outLength = 0;
  #lastDone: Datagram | undefined;
  readonly stats = { fragments: 0, reassembled: 0, timedOut: 0, duplicates: 0, dropped: 0 };
  /** Told about each datagram that times out after its first fragment arrived (set by the router). */
  onTimeout: ReassemblyTimeout | undefined;

  constructor(limits: Partial<ReassemblyLimits> = {}) {
    this.limits = { ...REASSEMBLY_DEFAULTS, ...limits };
  }

  /** Datagrams in progress. */
  get size(): number {
    return this.#inProgress.size;
  }

  /** Bytes of buffers allocated (the memory bound: maxDatagrams x BUF_SIZE). */
  get memoryBytes(): number {
    return this.#allocated * BUF_SIZE;
  }

  /**
   * Offer the fragment whose (validated) IPv4 header is at buf[ip], `ihl`
   * bytes, `total` bytes in all. Returns REASM_HELD, REASM_DONE (the datagram
   * is in `out`), or a negative REASM_ERR_* (the fragment, and for an overlap
   * the whole datagram, is dropped). dom: the ingress domain; the sender's
   * MAC is read at buf[mac] when mac >= 0 (both for onTimeout).
   */
  offer(buf: Uint8Array, ip: number, ihl: number, total: number, now: number, dom = 0, mac = -1): number {
    this.#recycle();
    this.expire(now);
    this.stats.fragments++;
    const frag = getU16(buf, ip + IP_FRAG);
    const start = (frag & IP_FRAG_OFFSET_MASK) << 3;
    const more = (frag & IP_FLAG_MF) !== 0;
    const len = total - ihl;
    const end = start + len;
    if (end > 65535 - ihl) return this.#refuse(REASM_ERR_TOO_BIG);
    if (more && (len === 0 || (len & 7) !== 0)) return this.#refuse(REASM_ERR_BAD_LENGTH);
    const src = getU32(buf, ip + IP_SRC);
    const key = `${src},${getU32(buf, ip + IP_DST)},${buf[ip + IP_PROTOCOL]},${getU16(buf, ip + IP_ID)}`;
    let d = this.#inProgress.get(key);
    if (d === undefined) {
      if (this.#inProgress.size >= this.limits.maxDatagrams) return this.#refuse(REASM_ERR_FULL);
      const n = this.#perSource.get(src) ?? 0;
      if (n >= this.limits.maxPerSource) return this.#refuse(REASM_ERR_SOURCE_LIMIT);
      this.#perSource.set(src, n + 1);
      d = { key, src, buf: this.#take(), ihl: 0, held: 0, total: -1, ranges: [], fragments: 0, deadline: now + this.limits.timeoutMs, dom, mac: new Uint8Array(6) };
      this.#inProgress.set(key, d);
    }
    if (++d.fragments > this.limits.maxFragments) return this.#fail(d, REASM_ERR_TOO_MANY_FRAGMENTS);
    if (!more) {
      // Two different ends, or data already held past this end: inconsistent.
      if ((d.total >= 0 && d.total !== end) || (d.ranges.length > 0 && d.ranges[d.ranges.length - 1] > end)) return this.#fail(d, REASM_ERR_OVERLAP);
      d.total = end;
    } else if (d.total >= 0 && end > d.total) {
      return this.#fail(d, REASM_ERR_OVERLAP);
    }
    const placed = this.#place(d, start, end);
    if (placed < 0) return this.#fail(d, REASM_ERR_OVERLAP);
    if (placed === 0) {
      this.stats.duplicates++;
      return REASM_HELD;
    }
    if (start === 0) {
      d.ihl = ihl;
      d.buf.set(buf.subarray(ip, ip + ihl), 0);
      if (mac >= 0) d.mac.set(buf.subarray(mac, mac + 6));
    }
    // Payload goes after the largest possible header; moved behind the real one when done.
    d.buf.set(buf.subarray(ip + ihl, ip + total), MAX_HEADER + start);
    d.held += len;
    if (d.total < 0 || d.ihl === 0 || d.held !== d.total) return REASM_HELD;
    // Complete: header, then the payload right behind it.
    d.buf.copyWithin(d.ihl, MAX_HEADER, MAX_HEADER + d.total);
    setU16(d.buf, IP_TOTAL_LENGTH, d.ihl + d.total);
    // Offset 0, MF and DF clear (a datagram that arrived in fragments may be fragmented again); the reserved bit kept.
    setU16(d.buf, IP_FRAG, getU16(d.buf, IP_FRAG) & 0x8000);
    ipv4SetChecksum(d.buf, 0, d.ihl);
    this.#forget(d);
    this.out = d.buf;
    this.outLength = d.ihl + d.total;
    this.#lastDone = d;
    this.stats.reassembled++;
    return REASM_DONE;
  }

  /** Drop datagrams past their deadline (onTimeout told about those whose first fragment arrived); returns how many. */
  expire(now: number): number {
    let n = 0;
    for (const d of this.#inProgress.values()) {
      if (d.deadline > now) break; // insertion order = deadline order (constant timeout)
      if (d.ihl > 0 && this.onTimeout !== undefined) {
        // The first fragment's header, then the first 8 bytes of its data right behind it.
        const data = Math.min(8, d.ranges[1]);
        d.buf.copyWithin(d.ihl, MAX_HEADER, MAX_HEADER + data);
        this.onTimeout(d.buf, d.ihl + data, d.mac, d.dom);
      }
      this.#forget(d);
      this.#free.push(d.buf);
      n++;
    }
    this.stats.timedOut += n;
    return n;
  }

  /** Insert [start, end) into the sorted ranges: 1 placed, 0 an exact repeat, -1 an overlap. */
  #place(d: Datagram, start: number, end: number): number {
    const r = d.ranges;
    let i = 0;
    while (i < r.length && r[i + 1] <= start) i += 2;
    if (i < r.length && r[i] < end) return r[i] === start && r[i + 1] === end ? 0 : -1;
    // Merge with neighbours that touch.
    if (i > 0 && r[i - 1] === start) {
      if (i < r.length && r[i] === end) {
        r[i - 1] = r[i + 1];
        r.splice(i, 2);
      } else {
        r[i - 1] = end;
      }
    } else if (i < r.length && r[i] === end) {
      r[i] = start;
    } else {
      r.splice(i, 0, start, end);
    }
    return 1;
  }

  #fail(d: Datagram, code: number): number {
    this.#forget(d);
    this.#free.push(d.buf);
    return this.#refuse(code);
  }

  #refuse(code: number): number {
    this.stats.dropped++;
    return code;
  }

  #forget(d: Datagram): void {
    this.#inProgress.delete(d.key);
    const n = (this.#perSource.get(d.src) ?? 1) - 1;
    if (n <= 0) this.#perSource.delete(d.src);
    else this.#perSource.set(d.src, n);
  }

  #take(): Uint8Array {
    const b = this.#free.pop();
    if (b !== undefined) return b;
    this.#allocated++;
    return new Uint8Array(BUF_SIZE);
  }

  /** The buffer handed out with the last REASM_DONE goes back to the free list. */
  #recycle(): void {
    if (this.#lastDone === undefined) return;
    this.#free.push(this.#lastDone.buf);
    this.#lastDone = undefined;
    this.out = EMPTY;
    this.outLength = 0;
  }
}
