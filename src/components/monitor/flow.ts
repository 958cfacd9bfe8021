// Flows: bidirectional, keyed like Suricata's (addresses, ports, protocol,
// VLAN; ICMP keyed by type pairs so an echo and its reply share a flow).
// The table is bounded (`max` flows): when full, the least recently used flow
// is evicted (and counted). Lookup hashes the tuple into a fixed array of
// buckets (at least `max`) chained through the flows: nothing is allocated
// for a known flow.
//
// Packets choose the tuples, so the table resists hash flooding (issue 13):
// the hash is keyed with the process's secret (src/net/keyed-hash.ts), a
// bucket's chain holds at most MAX_CHAIN flows (a new flow beyond it is not
// tracked, counted `chainFull`), and one client address (per VLAN) holds at
// most `maxPerSource` flows: past it, that source's least recently used flow
// is evicted (counted `sourceEvicted`), never another source's.
import { khash2, khash3, khashBytes } from '../../net/keyed-hash.ts';
import { KeyedCounts } from '../../net/keyed-counts.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP } from './proto.ts';
import type { Stream } from './stream.ts';

/**
 * What the flow table reads of a decoded packet (packet.ts's Packet), and sets
 * on it: its flow and direction. A structural type, so this module and
 * packet.ts do not import each other.
 */
export interface FlowPacket {
  readonly buf: Uint8Array;
  readonly tsSec: number;
  readonly tsUsec: number;
  readonly vlan0: number;
  readonly ipVer: number;
  readonly src4: number;
  readonly dst4: number;
  readonly src6: number;
  readonly dst6: number;
  readonly proto: number;
  readonly sp: number;
  readonly dp: number;
  readonly tcpFlags: number;
  readonly icmpType: number;
  flow: Flow | null;
  toServer: boolean;
}

export const FLOW_NEW = 0;
export const FLOW_ESTABLISHED = 1;
export const FLOW_CLOSED = 2;
export const FLOW_STATE_NAMES = ['new', 'established', 'closed'] as const;

// TCP tracking states.
export const TCP_NONE = 0;
export const TCP_SYN_SENT = 1;
export const TCP_SYN_RECV = 2;
export const TCP_ESTABLISHED = 3;
export const TCP_CLOSING = 4;
export const TCP_CLOSED = 5;

export class Flow {
  id = 0;
  /** Its bucket in the table. */
  hash = 0;
  next: Flow | null = null;
  // LRU list
  prev: Flow | null = null;
  after: Flow | null = null;
  /** Client address key (v4 address, v6 a keyed hash of it) and its id in the per-source table; LRU list of that source. */
  srcKey = 0;
  srcId = -1;
  srcPrev: Flow | null = null;
  srcAfter: Flow | null = null;

  ipVer = 4;
  proto = 0;
  /** Client (first sender) and server addresses: v4 int32 in [0], v6 16 bytes each. */
  readonly addr = new Uint8Array(32);
  src4 = 0;
  dst4 = 0;
  sp = 0;
  dp = 0;
  vlan = 0;
  /** ICMP: the client's type and the counterpart type (the key's "ports"). */

  startSec = 0;
  startUsec = 0;
  lastSec = 0;
  lastUsec = 0;
  lastMs = 0;
  pktsToServer = 0;
  pktsToClient = 0;
  bytesToServer = 0;
  bytesToClient = 0;
  state = FLOW_NEW;
  tcpState = TCP_NONE;
  /** TCP: the connection was picked up without its handshake. */
  midstream = false;
  finClient = false;
  finServer = false;
  alerted = false;
  /** Opened by the mirror's second copy of a forwarded packet (the same connection seen after NAT): no flow or http records. */
  secondCopy = false;
  /** Flowbits set on this flow (ids from the rule set). */
  bits: Set<number> | null = null;
  /** TCP streams, client->server [0] and server->client [1], created on first payload. */
  streams: [Stream | null, Stream | null] = [null, null];
  /** Application layer state (e.g. the HTTP parser), created on first payload. */
  app: unknown = null;
  appProto = '';
  /** Per-flow threshold state: "sid" -> count/window (by_flow thresholds). */
  thresholds: Map<number, { start: number; count: number }> | null = null;
  /** Set by a flow-level pass or an accept:flow firewall verdict: no more inspection. */
  passed = false;
  /** Firewall verdict for the whole flow ('' none, 'accept', 'drop'). */
  fwAction = '';
}

export interface FlowLimits {
  max: number;
  /** Flows one client address (per VLAN) holds at most; past it its least recently used flow is evicted. */
  maxPerSource: number;
  /** Idle timeouts, ms. */
  newMs: number;
  establishedMs: number;
  closedMs: number;
}

export const FLOW_DEFAULTS: FlowLimits = { max: 65536, maxPerSource: 16384, newMs: 30_000, establishedMs: 300_000, closedMs: 10_000 };

/** Reply types of ICMP request types (Suricata's ICMPV4_GET... counterpart), both ways. */
function icmpCounterpart(v6: boolean, t: number): number {
  if (!v6) {
    switch (t) {
      case 8: return 0;
      case 0: return 8;
      case 13: return 14;
      case 14: return 13;
      case 15: return 16;
      case 16: return 15;
      case 17: return 18;
      case 18: return 17;
      case 10: return 9;
      case 9: return 10;
      default: return t;
    }
  }
  switch (t) {
    case 128: return 129;
    case 129: return 128;
    case 133: return 134;
    case 134: return 133;
    case 135: return 136;
    case 136: return 135;
    default: return t;
  }
}

/** Flows one hash bucket chains at most (random keys: a handful at full load). */
export const MAX_CHAIN = 32;

export class FlowTable {
  readonly limits: FlowLimits;
  readonly #buckets: (Flow | null)[];
  readonly #mask: number;
  /** Flows per (client address key, VLAN); ids index #srcHead / #srcTail. */
  readonly #sources: KeyedCounts;
  readonly #srcHead: (Flow | null)[];
  readonly #srcTail: (Flow | null)[];
  #count = 0;
  #head: Flow | null = null; // least recently used
  #tail: Flow | null = null;
  #nextId = 1;
  #idBase: number;
  /** Called when a flow leaves the table (timeout, eviction, end of input). */
  onEnd: ((f: Flow, reason: string) => void) | null = null;
  readonly counters = { created: 0, evicted: 0, timeouts: 0, sourceEvicted: 0, chainFull: 0 };

  constructor(limits: FlowLimits = FLOW_DEFAULTS, idSeed = 0x5eed) {
    this.limits = limits;
    let size = 16;
    while (size < limits.max) size *= 2;
    this.#buckets = new Array<Flow | null>(size).fill(null);
    this.#mask = size - 1;
    this.#sources = new KeyedCounts(limits.max, 64);
    this.#srcHead = new Array<Flow | null>(limits.max).fill(null);
    this.#srcTail = new Array<Flow | null>(limits.max).fill(null);
    // Flow ids look like Suricata's: large, distinct per run.
    this.#idBase = (idSeed * 2654435761) % 1e12 * 1000;
  }

  get count(): number {
    return this.#count;
  }

  /** Find or create the flow of p (decoded, not a fragment); sets p.flow and p.toServer. */
  lookup(p: FlowPacket, nowMs: number): Flow | null {
    if (p.ipVer === 0 || p.proto < 0) return null;
    const v6 = p.ipVer === 6;
    const b = p.buf;
    const icmp = p.proto === PROTO_ICMP || p.proto === PROTO_ICMPV6;
    let sp = p.sp;
    let dp = p.dp;
    if (icmp) {
      sp = p.icmpType < 0 ? 0 : p.icmpType;
      dp = icmpCounterpart(v6, sp);
    }
    // Symmetric keyed hash of the tuple: each end hashed alone, combined by
    // operations that do not care about the order.
    const srcKey = v6 ? khashBytes(b, p.src6, 16, 6) : p.src4 | 0;
    const ha = v6 ? khash2(srcKey, sp) : khash2(p.src4, sp);
    const hb = v6 ? khash2(khashBytes(b, p.dst6, 16, 6), dp) : khash2(p.dst4, dp);
    const h = khash3(ha ^ hb, (ha + hb) | 0, p.proto | (p.vlan0 << 8));
    const bucket = h & this.#mask;
    let chain = 0;
    for (let f = this.#buckets[bucket]; f !== null; f = f.next) {
      chain++;
      if (f.proto !== p.proto || f.ipVer !== p.ipVer || f.vlan !== p.vlan0) continue;
      let dir = -1;
      if (f.sp === sp && f.dp === dp && sameAddr(f, p, true)) dir = 0;
      else if (f.sp === dp && f.dp === sp && sameAddr(f, p, false)) dir = 1;
      if (dir < 0) continue;
      this.#touch(f);
      p.flow = f;
      p.toServer = dir === 0;
      return f;
    }
    if (chain >= MAX_CHAIN) {
      this.counters.chainFull++;
      return null;
    }
    // The client of a new flow is the sender, except at a SYN/ACK (swapped below).
    const synAck = p.proto === PROTO_TCP && (p.tcpFlags & 0x12) === 0x12;
    const cKey = synAck ? (v6 ? khashBytes(b, p.dst6, 16, 6) : p.dst4 | 0) : srcKey;
    const cVlan = p.vlan0 | (v6 ? 0x10000 : 0);
    let sid = this.#sources.idOf(cKey, cVlan);
    if (sid >= 0 && this.#sources.countOf(sid) >= this.limits.maxPerSource) {
      const old = this.#srcHead[sid];
      if (old !== null) {
        this.counters.sourceEvicted++;
        this.#remove(old, 'forced');
      }
    }
    if (this.#count >= this.limits.max) this.#evictOne();
    sid = this.#sources.inc(cKey, cVlan);
    if (sid < 0) {
      this.counters.chainFull++;
      return null;
    }
    const f = new Flow();
    f.id = this.#idBase + this.#nextId++;
    f.hash = bucket;
    f.srcKey = cKey;
    f.srcId = sid;
    f.srcAfter = null;
    f.srcPrev = this.#srcTail[sid];
    if (f.srcPrev !== null) f.srcPrev.srcAfter = f;
    else this.#srcHead[sid] = f;
    this.#srcTail[sid] = f;
    f.ipVer = p.ipVer;
    f.proto = p.proto;
    f.vlan = p.vlan0;
    if (v6) {
      f.addr.set(b.subarray(p.src6, p.src6 + 16), 0);
      f.addr.set(b.subarray(p.dst6, p.dst6 + 16), 16);
    } else {
      f.src4 = p.src4;
      f.dst4 = p.dst4;
    }
    f.sp = sp;
    f.dp = dp;
    f.startSec = p.tsSec;
    f.startUsec = p.tsUsec;
    f.lastMs = nowMs;
    f.next = this.#buckets[bucket];
    this.#buckets[bucket] = f;
    this.#append(f);
    this.#count++;
    this.counters.created++;
    p.flow = f;
    p.toServer = true;
    // A connection picked up at its SYN/ACK: the sender is the server.
    if (synAck) {
      this.#swap(f);
      p.toServer = false;
    }
    return f;
  }

  /** The flow's direction swapped (the first packet came from the server). */
  #swap(f: Flow): void {
    if (f.ipVer === 6) {
      const tmp = f.addr.slice(0, 16);
      f.addr.copyWithin(0, 16, 32);
      f.addr.set(tmp, 16);
    } else {
      const t = f.src4;
      f.src4 = f.dst4;
      f.dst4 = t;
    }
    const t = f.sp;
    f.sp = f.dp;
    f.dp = t;
  }

  timeoutOf(f: Flow): number {
    if (f.state === FLOW_CLOSED) return this.limits.closedMs;
    if (f.state === FLOW_ESTABLISHED) return this.limits.establishedMs;
    return this.limits.newMs;
  }

  /** End flows idle past their timeout. */
  sweep(nowMs: number): void {
    let f = this.#head;
    while (f !== null) {
      const nxt = f.after;
      if (nowMs - f.lastMs > this.timeoutOf(f)) {
        this.counters.timeouts++;
        this.#remove(f, 'timeout');
      }
      f = nxt;
    }
  }

  /** End every flow (end of input, shutdown), oldest first. */
  flushAll(reason: string): void {
    while (this.#head !== null) this.#remove(this.#head, reason);
  }

  /** The longest bucket chain (for tests and status; walks every bucket). */
  longestChain(): number {
    let worst = 0;
    for (let f of this.#buckets) {
      let n = 0;
      for (; f !== null; f = f.next) n++;
      if (n > worst) worst = n;
    }
    return worst;
  }

  *all(): Iterable<Flow> {
    for (let f = this.#head; f !== null; f = f.after) yield f;
  }

  #evictOne(): void {
    const f = this.#head;
    if (f === null) return;
    this.counters.evicted++;
    this.#remove(f, 'forced');
  }

  #remove(f: Flow, reason: string): void {
    // unlink from bucket chain
    let cur = this.#buckets[f.hash];
    let prev: Flow | null = null;
    while (cur !== null && cur !== f) {
      prev = cur;
      cur = cur.next;
    }
    if (cur !== null) {
      if (prev === null) this.#buckets[f.hash] = f.next;
      else prev.next = f.next;
    }
    // unlink from its source's list
    const sid = f.srcId;
    if (sid >= 0) {
      if (f.srcPrev !== null) f.srcPrev.srcAfter = f.srcAfter;
      else this.#srcHead[sid] = f.srcAfter;
      if (f.srcAfter !== null) f.srcAfter.srcPrev = f.srcPrev;
      else this.#srcTail[sid] = f.srcPrev;
      f.srcPrev = f.srcAfter = null;
      f.srcId = -1;
      this.#sources.dec(f.srcKey, f.ipVer === 6 ? f.vlan | 0x10000 : f.vlan);
    }
    // unlink from LRU
    if (f.prev !== null) f.prev.after = f.after;
    else this.#head = f.after;
    if (f.after !== null) f.after.prev = f.prev;
    else this.#tail = f.prev;
    f.prev = f.after = f.next = null;
    this.#count--;
    this.onEnd?.(f, reason);
  }

  #append(f: Flow): void {
    f.prev = this.#tail;
    f.after = null;
    if (this.#tail !== null) this.#tail.after = f;
    else this.#head = f;
    this.#tail = f;
  }

  #touch(f: Flow): void {
    const sid = f.srcId;
    if (sid >= 0 && this.#srcTail[sid] !== f) {
      if (f.srcPrev !== null) f.srcPrev.srcAfter = f.srcAfter;
      else this.#srcHead[sid] = f.srcAfter;
      (f.srcAfter as Flow).srcPrev = f.srcPrev;
      f.srcAfter = null;
      f.srcPrev = this.#srcTail[sid];
      (f.srcPrev as Flow).srcAfter = f;
      this.#srcTail[sid] = f;
    }
    if (this.#tail === f) return;
    if (f.prev !== null) f.prev.after = f.after;
    else this.#head = f.after;
    if (f.after !== null) f.after.prev = f.prev;
    f.prev = f.after = null;
    this.#append(f);
  }
}

function sameAddr(f: Flow, p: FlowPacket, forward: boolean): boolean {
  if (f.ipVer === 4) return forward ? f.src4 === p.src4 && f.dst4 === p.dst4 : f.src4 === p.dst4 && f.dst4 === p.src4;
  const b = p.buf;
  const s = forward ? p.src6 : p.dst6;
  const d = forward ? p.dst6 : p.src6;
  for (let i = 0; i < 16; i++) if (f.addr[i] !== b[s + i] || f.addr[16 + i] !== b[d + i]) return false;
  return true;
}
