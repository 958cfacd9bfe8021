// Flows: bidirectional, keyed like Suricata's (addresses, ports, protocol,
// VLAN; ICMP keyed by type pairs so an echo and its reply share a flow).
// The table is bounded (`max` flows): when full, the least recently used flow
// is evicted (and counted). Lookup hashes the tuple into a Map of numeric
// buckets chained through the flows: nothing is allocated for a known flow.
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, type Packet } from './packet.ts';
import type { Stream } from './stream.ts';

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
  hash = 0;
  next: Flow | null = null;
  // LRU list
  prev: Flow | null = null;
  after: Flow | null = null;

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
  /** Idle timeouts, ms. */
  newMs: number;
  establishedMs: number;
  closedMs: number;
}

export const FLOW_DEFAULTS: FlowLimits = { max: 65536, newMs: 30_000, establishedMs: 300_000, closedMs: 10_000 };

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

export class FlowTable {
  readonly limits: FlowLimits;
  #buckets = new Map<number, Flow>();
  #count = 0;
  #head: Flow | null = null; // least recently used
  #tail: Flow | null = null;
  #nextId = 1;
  #idBase: number;
  /** Called when a flow leaves the table (timeout, eviction, end of input). */
  onEnd: ((f: Flow, reason: string) => void) | null = null;
  readonly counters = { created: 0, evicted: 0, timeouts: 0 };

  constructor(limits: FlowLimits = FLOW_DEFAULTS, idSeed = 0x5eed) {
    this.limits = limits;
    // Flow ids look like Suricata's: large, distinct per run.
    this.#idBase = (idSeed * 2654435761) % 1e12 * 1000;
  }

  get count(): number {
    return this.#count;
  }

  /** Find or create the flow of p (decoded, not a fragment); sets p.flow and p.toServer. */
  lookup(p: Packet, nowMs: number): Flow | null {
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
    // Symmetric hash of the tuple.
    let ha = v6 ? hashBytes(b, p.src6, 16) : p.src4 | 0;
    let hb = v6 ? hashBytes(b, p.dst6, 16) : p.dst4 | 0;
    ha = Math.imul(ha ^ sp, 0x9e3779b1);
    hb = Math.imul(hb ^ dp, 0x9e3779b1);
    const h = ((ha ^ hb) + Math.imul(p.proto + (p.vlan0 << 8), 0x85ebca6b)) | 0;
    for (let f = this.#buckets.get(h) ?? null; f !== null; f = f.next) {
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
    if (this.#count >= this.limits.max) this.#evictOne();
    const f = new Flow();
    f.id = this.#idBase + this.#nextId++;
    f.hash = h;
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
    f.next = this.#buckets.get(h) ?? null;
    this.#buckets.set(h, f);
    this.#append(f);
    this.#count++;
    this.counters.created++;
    p.flow = f;
    p.toServer = true;
    // A connection picked up at its SYN/ACK: the sender is the server.
    if (p.proto === PROTO_TCP && (p.tcpFlags & 0x12) === 0x12) {
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
    let cur = this.#buckets.get(f.hash) ?? null;
    let prev: Flow | null = null;
    while (cur !== null && cur !== f) {
      prev = cur;
      cur = cur.next;
    }
    if (cur !== null) {
      if (prev === null) {
        if (f.next === null) this.#buckets.delete(f.hash);
        else this.#buckets.set(f.hash, f.next);
      } else prev.next = f.next;
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
    if (this.#tail === f) return;
    if (f.prev !== null) f.prev.after = f.after;
    else this.#head = f.after;
    if (f.after !== null) f.after.prev = f.prev;
    f.prev = f.after = null;
    this.#append(f);
  }
}

function hashBytes(b: Uint8Array, off: number, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[off + i], 0x01000193);
  return h;
}

function sameAddr(f: Flow, p: Packet, forward: boolean): boolean {
  if (f.ipVer === 4) return forward ? f.src4 === p.src4 && f.dst4 === p.dst4 : f.src4 === p.dst4 && f.dst4 === p.src4;
  const b = p.buf;
  const s = forward ? p.src6 : p.dst6;
  const d = forward ? p.dst6 : p.src6;
  for (let i = 0; i < 16; i++) if (f.addr[i] !== b[s + i] || f.addr[16 + i] !== b[d + i]) return false;
  return true;
}
