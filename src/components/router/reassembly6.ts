// IPv6 reassembly for the router's decision (RFC 8200 4.5, RFC 5722, RFC 7112).
//
// The policy and the connection table need the transport header and its
// checksum, so the router rebuilds a fragmented IPv6 datagram to decide on it,
// as Linux's nf_defrag_ipv6 does; but an IPv6 router never fragments and
// there is no NAT66, so what leaves are the ORIGINAL fragments, unchanged
// (but for the hop limit): each datagram in progress keeps the frames of its
// fragments (Ethernet header on) in one buffer, and the rebuilt datagram is
// written into one shared output buffer only when the last piece arrived.
//
// Bounds, from the same `fragments` config as IPv4 (reassembly.ts): at most
// `maxDatagrams` in progress (each holds one RAW_CAP buffer, allocated on
// first use and reused: memory <= maxDatagrams x RAW_CAP, plus the shared
// output buffer), at most `maxPerSource` of them per source /64 (a host picks
// freely inside its /64), at most `maxFragments` fragments each, `timeoutMs`
// from the first fragment to the last. RFC 5722: a fragment overlapping
// another drops the whole datagram (an exact repeat is ignored). A datagram
// past 65535 bytes of payload, or whose frames overflow RAW_CAP, is dropped.
//
// Datagrams are found by (source, destination, identification) through a
// chained hash index keyed with the process secret (net/keyed-hash.ts: the
// sender chooses all 9 words). Nothing is allocated per fragment.
import { getI32 } from '../../net/bytes.ts';
import { ETH_HLEN } from '../../net/ethernet.ts';
import { IP6_DST, IP6_PAYLOAD_LENGTH, IP6_SRC, IPV6_HLEN, IPV6_MAX_CHAIN } from '../../net/ipv6.ts';
import { KeyedCounts } from '../../net/keyed-counts.ts';
import { khash2, khash4 } from '../../net/keyed-hash.ts';
import {
  REASM_DONE, REASM_ERR_BAD_LENGTH, REASM_ERR_FULL, REASM_ERR_OVERLAP, REASM_ERR_SOURCE_LIMIT, REASM_ERR_TOO_BIG,
  REASM_ERR_TOO_MANY_FRAGMENTS, REASM_HELD, REASSEMBLY_DEFAULTS, type ReassemblyLimits,
} from './reassembly.ts';

/** Drop reasons (router counters) for the negative results. */
export const REASM6_DROP_REASONS: Readonly<Record<number, string>> = {
  [REASM_ERR_OVERLAP]: 'ip6-frag-overlap',
  [REASM_ERR_TOO_BIG]: 'ip6-frag-too-big',
  [REASM_ERR_FULL]: 'ip6-frag-table-full',
  [REASM_ERR_SOURCE_LIMIT]: 'ip6-frag-source-limit',
  [REASM_ERR_TOO_MANY_FRAGMENTS]: 'ip6-frag-too-many',
  [REASM_ERR_BAD_LENGTH]: 'ip6-frag-bad-length',
};

/** Bytes of fragment frames one datagram may hold: 64 KiB of payload and the headers of its fragments. */
export const RAW_CAP = 128 * 1024;
/** The rebuilt datagram: Ethernet + the unfragmentable headers + 64 KiB. */
const OUT_CAP = ETH_HLEN + IPV6_HLEN + IPV6_MAX_CHAIN + 65535;
const NONE = -1;
/** A slot's fields: ingress domain, fragments held, bytes of its frame buffer used, payload bytes held, payload total (-1 until the last fragment), the first fragment's index (-1). */
const S_DOM = 0;
const S_COUNT = 1;
const S_RAW_USED = 2;
const S_HELD = 3;
const S_TOTAL = 4;
const S_FIRST = 5;
const SLOT_WORDS = 6;

export class Ipv6Reassembler {
  readonly limits: ReassemblyLimits;
  /**
   * After REASM_DONE: the rebuilt frame (Ethernet header on) is
   * out[headroom, headroom + outLength); its fragments are fragment(k), k < fragments.
   */
  readonly out: Uint8Array;
  readonly headroom: number;
  outLength = 0;
  /** Told about each datagram that times out after its first fragment arrived (frame buffer, offset, length, domain). */
  onTimeout: ((buf: Uint8Array, at: number, len: number, dom: number) => void) | undefined;
  /** The slot handed out with the last REASM_DONE (its fragments stay readable until the next offer or expire). */
  #done = NONE;
  readonly stats = { fragments: 0, reassembled: 0, timedOut: 0, duplicates: 0, dropped: 0 };

  readonly #max: number;
  readonly #maxFrags: number;
  /** Per slot: in use, 9 key words (source, destination, identification), deadline. */
  readonly #used: Uint8Array;
  readonly #key: Int32Array;
  readonly #deadline: Float64Array;
  /** Per slot, SLOT_WORDS words at s * SLOT_WORDS: the S_* fields. */
  readonly #slot: Int32Array;
  /** Per slot: the frames (allocated on first use) and per fragment [start, end, frame offset in raw, frame length, data offset in the frame]. */
  readonly #raw: (Uint8Array | undefined)[];
  readonly #frag: (Int32Array | undefined)[];
  /** Chained hash index: bucket heads and next links (slot numbers, -1 ends). */
  readonly #heads: Int32Array;
  readonly #next: Int32Array;
  readonly #hmask: number;
  readonly #bySource: KeyedCounts;
  #freeSlots: Int32Array;
  #nFree: number;
  #inUse = 0;
  #allocated = 0;
  #minDeadline = Infinity;
  /** The last REASM_DONE datagram's fragment indexes in offset order. */
  readonly #order: Int32Array;

  /** headroom: bytes left free before the rebuilt frame in `out` (the router's virtio-net header). */
  constructor(limits: Partial<ReassemblyLimits> = {}, headroom = 0) {
    this.limits = { ...REASSEMBLY_DEFAULTS, ...limits };
    this.headroom = headroom;
    this.out = new Uint8Array(headroom + OUT_CAP);
    const max = this.#max = this.limits.maxDatagrams;
    this.#maxFrags = this.limits.maxFragments;
    this.#order = new Int32Array(this.#maxFrags);
    this.#used = new Uint8Array(max);
    this.#key = new Int32Array(max * 9);
    this.#deadline = new Float64Array(max);
    this.#slot = new Int32Array(max * SLOT_WORDS);
    this.#raw = new Array<Uint8Array | undefined>(max).fill(undefined);
    this.#frag = new Array<Int32Array | undefined>(max).fill(undefined);
    let size = 16;
    while (size < max * 2) size *= 2;
    this.#heads = new Int32Array(size).fill(NONE);
    this.#hmask = size - 1;
    this.#next = new Int32Array(max).fill(NONE);
    this.#bySource = new KeyedCounts(max, 64);
    this.#freeSlots = Int32Array.from({ length: max }, (_, i) => max - 1 - i);
    this.#nFree = max;
  }

  /** Datagrams in progress. */
  get size(): number {
    return this.#inUse;
  }

  /** Bytes of buffers allocated: the memory bound is maxDatagrams x (RAW_CAP + 20 x maxFragments) + the output buffer. */
  get memoryBytes(): number {
    return this.#allocated * (RAW_CAP + 20 * this.#maxFrags) + OUT_CAP;
  }

  /**
   * Offer the fragment whose frame starts at buf[eth] (Ethernet header, then
   * the validated IPv6 packet of n bytes at eth + 14) with its fragment header
   * at fragOff bytes from the IPv6 header (fragment offset `start` bytes,
   * more-fragments `more`), arrived on domain dom. Returns REASM_HELD,
   * REASM_DONE (the rebuilt frame is in `out`), or a negative REASM_ERR_*.
   */
  offer(buf: Uint8Array, eth: number, n: number, fragOff: number, start: number, more: boolean, dom: number, now: number): number {
    this.#release();
    this.expire(now);
    this.stats.fragments++;
    const ip = eth + ETH_HLEN;
    const dataOff = fragOff + 8;
    const len = n - dataOff;
    const end = start + len;
    if (end > 65535) return this.#refuse(REASM_ERR_TOO_BIG);
    if (more && (len === 0 || (len & 7) !== 0)) return this.#refuse(REASM_ERR_BAD_LENGTH);
    const id = getI32(buf, ip + fragOff + 4);
    const h = khash4(khashAddr(buf, ip + IP6_SRC), khashAddr(buf, ip + IP6_DST), id, 0x6f726167) & this.#hmask;
    let s = this.#find(h, buf, ip, id);
    if (s === NONE) {
      if (this.#inUse >= this.#max) return this.#refuse(REASM_ERR_FULL);
      const src64 = khash2(getI32(buf, ip + IP6_SRC), getI32(buf, ip + IP6_SRC + 4));
      if (this.#bySource.get(src64, 0) >= this.limits.maxPerSource || this.#bySource.inc(src64, 0) < 0) return this.#refuse(REASM_ERR_SOURCE_LIMIT);
      s = this.#open(h, buf, ip, id, dom, now);
    }
    const k = this.#slot[s * SLOT_WORDS + S_COUNT];
    if (k >= this.#maxFrags) return this.#fail(s, REASM_ERR_TOO_MANY_FRAGMENTS);
    const f = this.#frag[s] as Int32Array;
    const total = this.#slot[s * SLOT_WORDS + S_TOTAL];
    if (!more) {
      if (total >= 0 && total !== end) return this.#fail(s, REASM_ERR_OVERLAP);
      for (let j = 0; j < k; j++) if (f[j * 5 + 1] > end) return this.#fail(s, REASM_ERR_OVERLAP);
    } else if (total >= 0 && end > total) {
      return this.#fail(s, REASM_ERR_OVERLAP);
    }
    for (let j = 0; j < k; j++) {
      const fs = f[j * 5];
      const fe = f[j * 5 + 1];
      if (fs === start && fe === end) { // an exact repeat: ignored (RFC 8200 4.5 allows the repeat, not a change)
        this.stats.duplicates++;
        return REASM_HELD;
      }
      if (start < fe && fs < end) return this.#fail(s, REASM_ERR_OVERLAP); // RFC 5722
    }
    const frameLen = ETH_HLEN + n;
    const at = this.#slot[s * SLOT_WORDS + S_RAW_USED];
    if (at + frameLen > RAW_CAP) return this.#fail(s, REASM_ERR_TOO_BIG);
    const raw = this.#raw[s] as Uint8Array;
    raw.set(buf.subarray(eth, eth + frameLen), at);
    this.#slot[s * SLOT_WORDS + S_RAW_USED] = at + frameLen;
    f[k * 5] = start;
    f[k * 5 + 1] = end;
    f[k * 5 + 2] = at;
    f[k * 5 + 3] = frameLen;
    f[k * 5 + 4] = ETH_HLEN + dataOff;
    this.#slot[s * SLOT_WORDS + S_COUNT] = k + 1;
    if (!more) this.#slot[s * SLOT_WORDS + S_TOTAL] = end;
    if (start === 0) this.#slot[s * SLOT_WORDS + S_FIRST] = k;
    this.#slot[s * SLOT_WORDS + S_HELD] += len;
    if (this.#slot[s * SLOT_WORDS + S_TOTAL] < 0 || this.#slot[s * SLOT_WORDS + S_FIRST] < 0 || this.#slot[s * SLOT_WORDS + S_HELD] !== this.#slot[s * SLOT_WORDS + S_TOTAL]) return REASM_HELD;
    return this.#complete(s);
  }

  /** The rebuilt frame: the first fragment's Ethernet and unfragmentable headers, then the payload in order. */
  #complete(s: number): number {
    const f = this.#frag[s] as Int32Array;
    const raw = this.#raw[s] as Uint8Array;
    const fi = this.#slot[s * SLOT_WORDS + S_FIRST];
    const fAt = f[fi * 5 + 2];
    const fragHdr = f[fi * 5 + 4] - 8; // the fragment header, from the frame's start
    const total = this.#slot[s * SLOT_WORDS + S_TOTAL];
    const o = this.out;
    const h = this.headroom;
    if (fragHdr + total > OUT_CAP || fragHdr - ETH_HLEN - IPV6_HLEN + total > 65535) return this.#fail(s, REASM_ERR_TOO_BIG);
    o.set(raw.subarray(fAt, fAt + fragHdr), h);
    // The header that named the fragment header now names what the fragment header named.
    o[h + this.#nextHeaderField(raw, fAt, fragHdr)] = raw[fAt + fragHdr];
    for (let j = 0; j < this.#slot[s * SLOT_WORDS + S_COUNT]; j++) {
      const at = f[j * 5 + 2];
      const d = f[j * 5 + 4];
      o.set(raw.subarray(at + d, at + f[j * 5 + 3]), h + fragHdr + f[j * 5]);
    }
    const plen = fragHdr - ETH_HLEN - IPV6_HLEN + total;
    o[h + ETH_HLEN + IP6_PAYLOAD_LENGTH] = plen >>> 8;
    o[h + ETH_HLEN + IP6_PAYLOAD_LENGTH + 1] = plen & 0xff;
    this.outLength = fragHdr + total;
    this.#close(s);
    this.#sortByOffset(s);
    this.#done = s; // its frames are read by fragment() until the next offer
    this.stats.reassembled++;
    return REASM_DONE;
  }

  /** Offset in out of the next-header byte that names the fragment header at fragHdr (frame offsets). */
  #nextHeaderField(raw: Uint8Array, fAt: number, fragHdr: number): number {
    let field = ETH_HLEN + 6;
    let at = ETH_HLEN + IPV6_HLEN;
    let nh = raw[fAt + field];
    // walkIpv6 validated this chain; follow it to the fragment header.
    while (at < fragHdr) {
      field = at;
      const hlen = nh === 51 ? (raw[fAt + at + 1] + 2) << 2 : (raw[fAt + at + 1] + 1) << 3;
      nh = raw[fAt + at];
      at += hlen;
    }
    return field;
  }

  /** Fragments of the datagram of the last REASM_DONE. */
  get fragments(): number {
    return this.#done === NONE ? 0 : this.#slot[this.#done * SLOT_WORDS + S_COUNT];
  }

  /**
   * The k-th fragment of the last REASM_DONE datagram in offset order: its
   * frame (Ethernet header on) is fragmentBuf[at, at + returned length).
   */
  fragment(k: number): number {
    const s = this.#done;
    if (s === NONE) return 0;
    const f = this.#frag[s] as Int32Array;
    const j = this.#order[k];
    this.fragmentAt = f[j * 5 + 2];
    return f[j * 5 + 3];
  }

  /** Where fragment() found its frame, in fragmentBuf. */
  fragmentAt = 0;
  get fragmentBuf(): Uint8Array {
    return this.#raw[this.#done] as Uint8Array;
  }

  /**
   * The fragments of slot s in offset order into #order (starts are distinct:
   * overlaps were refused). Insertion sort of start << 13 | index (starts are
   * multiples of 8 below 65536, indexes below 8192): linear for fragments
   * that arrived in order, no allocation.
   */
  #sortByOffset(s: number): void {
    const f = this.#frag[s] as Int32Array;
    const o = this.#order;
    const count = this.#slot[s * SLOT_WORDS + S_COUNT];
    for (let i = 0; i < count; i++) {
      const key = (f[i * 5] << 10) | i; // start is a multiple of 8: (start >> 3) << 13
      let j = i - 1;
      while (j >= 0 && o[j] > key) {
        o[j + 1] = o[j];
        j--;
      }
      o[j + 1] = key;
    }
    for (let i = 0; i < count; i++) o[i] &= 0x1fff;
  }

  /**
   * Drop datagrams past their deadline; for each whose first fragment arrived,
   * onTimeout(frame buffer, offset, length, domain) is called first (for the
   * ICMPv6 "fragment reassembly time exceeded", RFC 8200 4.5). Returns how many.
   */
  expire(now: number): number {
    const onTimeout = this.onTimeout;
    if (now < this.#minDeadline) return 0;
    let n = 0;
    let min = Infinity;
    for (let s = 0; s < this.#max; s++) {
      if (this.#used[s] === 0) continue;
      if (this.#deadline[s] > now) {
        if (this.#deadline[s] < min) min = this.#deadline[s];
        continue;
      }
      const fi = this.#slot[s * SLOT_WORDS + S_FIRST];
      if (fi >= 0 && onTimeout !== undefined) {
        const f = this.#frag[s] as Int32Array;
        onTimeout(this.#raw[s] as Uint8Array, f[fi * 5 + 2], f[fi * 5 + 3], this.#slot[s * SLOT_WORDS + S_DOM]);
      }
      this.#close(s);
      this.#freeSlots[this.#nFree++] = s;
      n++;
    }
    this.#minDeadline = min;
    this.stats.timedOut += n;
    return n;
  }

  #find(h: number, buf: Uint8Array, ip: number, id: number): number {
    const key = this.#key;
    for (let s = this.#heads[h]; s !== NONE; s = this.#next[s]) {
      const w = s * 9;
      if (key[w + 8] !== id) continue;
      let same = true;
      for (let i = 0; i < 8 && same; i++) same = key[w + i] === getI32(buf, ip + IP6_SRC + 4 * i);
      if (same) return s;
    }
    return NONE;
  }

  #open(h: number, buf: Uint8Array, ip: number, id: number, dom: number, now: number): number {
    const s = this.#freeSlots[--this.#nFree];
    const w = s * 9;
    for (let i = 0; i < 8; i++) this.#key[w + i] = getI32(buf, ip + IP6_SRC + 4 * i);
    this.#key[w + 8] = id;
    this.#used[s] = 1;
    this.#inUse++;
    const deadline = this.#deadline[s] = now + this.limits.timeoutMs;
    if (deadline < this.#minDeadline) this.#minDeadline = deadline;
    this.#slot[s * SLOT_WORDS + S_DOM] = dom;
    this.#slot[s * SLOT_WORDS + S_COUNT] = 0;
    this.#slot[s * SLOT_WORDS + S_RAW_USED] = 0;
    this.#slot[s * SLOT_WORDS + S_HELD] = 0;
    this.#slot[s * SLOT_WORDS + S_TOTAL] = -1;
    this.#slot[s * SLOT_WORDS + S_FIRST] = -1;
    if (this.#raw[s] === undefined) {
      this.#raw[s] = new Uint8Array(RAW_CAP);
      this.#frag[s] = new Int32Array(this.#maxFrags * 5);
      this.#allocated++;
    }
    this.#next[s] = this.#heads[h];
    this.#heads[h] = s;
    return s;
  }

  /** Take slot s out of the index and the per-source counts (its buffers stay with the slot). */
  #close(s: number): void {
    const w = s * 9;
    const h = khash4(khashWords(this.#key, w), khashWords(this.#key, w + 4), this.#key[w + 8], 0x6f726167) & this.#hmask;
    if (this.#heads[h] === s) {
      this.#heads[h] = this.#next[s];
    } else {
      let p = this.#heads[h];
      while (p !== NONE && this.#next[p] !== s) p = this.#next[p];
      if (p !== NONE) this.#next[p] = this.#next[s];
    }
    this.#next[s] = NONE;
    this.#used[s] = 0;
    this.#inUse--;
    this.#bySource.dec(khash2(this.#key[w], this.#key[w + 1]), 0);
  }

  #fail(s: number, code: number): number {
    this.#close(s);
    this.#freeSlots[this.#nFree++] = s;
    return this.#refuse(code);
  }

  #refuse(code: number): number {
    this.stats.dropped++;
    return code;
  }

  /** The slot of the last REASM_DONE goes back to the free list. */
  #release(): void {
    if (this.#done === NONE) return;
    this.#freeSlots[this.#nFree++] = this.#done;
    this.#done = NONE;
    this.outLength = 0;
  }
}

/** Keyed hash of the 16-byte address at buf[off]. */
function khashAddr(buf: Uint8Array, off: number): number {
  return khash4(getI32(buf, off), getI32(buf, off + 4), getI32(buf, off + 8), getI32(buf, off + 12));
}

function khashWords(w: Int32Array, at: number): number {
  return khash4(w[at], w[at + 1], w[at + 2], w[at + 3]);
}

export { REASM_DONE, REASM_HELD };
