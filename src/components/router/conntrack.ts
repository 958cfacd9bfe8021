// Connection tracking: a fixed-capacity table of connections, each findable by
// two keys (the original direction as it arrives on the ingress domain, the
// reply direction as it arrives on the egress domain), in one open-addressing
// hash index over an Int32Array (linear probing, backward-shift deletion).
// Lookups allocate nothing; a new connection reuses a freed Conn object or
// creates one (the only allocation, once per connection slot ever used).
//
// A key is (protocol, domain, src, sport, dst, dport); for ICMP echo both
// "ports" are the echo identifier.
//
// Packets choose keys, so the index resists hash flooding (issue 13): keys are
// hashed with HalfSipHash-1-3 under the process's random secret
// (src/net/keyed-hash.ts), a key lives at most `maxProbe` slots from its home
// slot (a connection that cannot be placed within it is refused, so no lookup
// ever scans further), and one source address (per ingress domain) holds at
// most `perSource` connections.
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { khash4 } from '../../net/keyed-hash.ts';
import { KeyedCounts } from '../../net/keyed-counts.ts';

// States (TCP ones follow the handshake; UDP / ICMP only note a reply).
export const CT_TCP_SYN_SENT = 1;
export const CT_TCP_ESTABLISHED = 2;
export const CT_TCP_CLOSING = 3;
export const CT_TCP_CLOSED = 4;
export const CT_NEW = 5;
export const CT_REPLIED = 6;

export const CT_STATE_NAMES: Record<number, string> = {
  [CT_TCP_SYN_SENT]: 'syn-sent',
  [CT_TCP_ESTABLISHED]: 'established',
  [CT_TCP_CLOSING]: 'closing',
  [CT_TCP_CLOSED]: 'closed',
  [CT_NEW]: 'new',
  [CT_REPLIED]: 'replied',
};

export function protoName(proto: number): string {
  return proto === IPPROTO_TCP ? 'tcp' : proto === IPPROTO_UDP ? 'udp' : proto === IPPROTO_ICMP ? 'icmp' : String(proto);
}

export class Conn {
  /** Index in the table (stable for the connection's life). */
  slot = -1;
  live = false;
  proto = 0;
  state = 0;
  /** Original direction, as it arrived on inDom. */
  inDom = 0;
  oSrc = 0;
  oSport = 0;
  oDst = 0;
  oDport = 0;
  /** Reply direction, as it arrives on outDom (rDst/rDport are the NAT address/port when nat). */
  outDom = 0;
  rSrc = 0;
  rSport = 0;
  rDst = 0;
  rDport = 0;
  nat = false;
  created = 0;
  expires = 0;
  finOrig = false;
  finReply = false;
  pktsOrig = 0;
  pktsReply = 0;
  /** Hashes of the two keys. */
  h0 = 0;
  h1 = 0;
}

/** The keyed hash of a connection key (this process's secret). */
export function ctHash(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
  return khash4((proto << 8) | dom, src, dst, (sport << 16) | dport);
}

/**
 * The hash this table used before issue 13: no secret, so anyone can compute
 * it and build keys that share a home slot. Kept for `microgate hash-bench`,
 * which reproduces the attack; `legacyHash: true` tables use it.
 */
export function ctHashLegacy(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
  let h = Math.imul(src ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ dst, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ ((sport << 16) | dport), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ ((proto << 8) | dom), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface ConnTableOptions {
  /** Slots a key may lie from its home slot (default CT_DEFAULT_MAX_PROBE). */
  maxProbe?: number;
  /** Connections one source address may hold per ingress domain (0: no limit; default none). */
  perSource?: number;
  /** The old unkeyed hash and unbounded probing (benchmarks only: the attack's baseline). */
  legacyHash?: boolean;
}

/**
 * Default probe bound. At the highest load (1/2) random keys need far fewer:
 * filling 16384 connections (32768 keys in 65536 slots) puts the farthest key
 * about 20 slots from home (test/unit/router-conntrack-hash.test.ts).
 */
export const CT_DEFAULT_MAX_PROBE = 64;

/** What link() says. */
export const CT_LINKED = 0;
/** No free slot within maxProbe of a key's home slot. */
export const CT_REFUSED_PROBE = 1;
/** The source already holds perSource connections. */
export const CT_REFUSED_SOURCE = 2;

export class ConnTable {
  readonly max: number;
  readonly maxProbe: number;
  readonly perSource: number;
  readonly #legacy: boolean;
  #conns: Conn[] = [];
  #free: Conn[] = [];
  #index: Int32Array;
  #mask: number;
  #count = 0;
  /** Live connections by (original source, ingress domain); undefined without a per-source limit. */
  readonly #bySource: KeyedCounts | undefined;
  /** Called when a connection leaves the table (to free its NAT port). */
  onRemove: ((c: Conn) => void) | undefined;

  constructor(max: number, opts: ConnTableOptions = {}) {
    this.max = max;
    this.#legacy = opts.legacyHash === true;
    this.maxProbe = this.#legacy ? Infinity : opts.maxProbe ?? CT_DEFAULT_MAX_PROBE;
    this.perSource = opts.perSource ?? 0;
    let size = 16;
    while (size < max * 4) size *= 2; // two keys per connection, load <= 1/2
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    // Every live connection has one source: max distinct sources at most.
    this.#bySource = this.perSource > 0 ? new KeyedCounts(max, this.maxProbe === Infinity ? 64 : this.maxProbe) : undefined;
  }

  get count(): number {
    return this.#count;
  }

  #hash(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
    return this.#legacy ? ctHashLegacy(proto, dom, src, sport, dst, dport) : ctHash(proto, dom, src, sport, dst, dport);
  }

  /** Find a key: returns slot * 2 + direction (0 original, 1 reply), or -1. */
  lookup(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
    const idx = this.#index;
    const mask = this.#mask;
    const maxProbe = this.maxProbe;
    let i = this.#hash(proto, dom, src, sport, dst, dport) & mask;
    for (let p = 0; p < maxProbe; p++) {
      const v = idx[i];
      if (v === 0) return -1;
      const ref = v - 1;
      const c = this.#conns[ref >>> 1];
      if (c.proto === proto) {
        if ((ref & 1) === 0) {
          if (c.inDom === dom && c.oSrc === src && c.oSport === sport && c.oDst === dst && c.oDport === dport) return ref;
        } else if (c.outDom === dom && c.rSrc === src && c.rSport === sport && c.rDst === dst && c.rDport === dport) return ref;
      }
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Would a new connection from src arriving on dom exceed the per-source limit? */
  sourceFull(dom: number, src: number): boolean {
    return this.#bySource !== undefined && this.#bySource.get(src, dom) >= this.perSource;
  }

  /** Connections src holds on dom (counted only with a per-source limit; else 0). */
  sourceCount(dom: number, src: number): number {
    return this.#bySource === undefined ? 0 : this.#bySource.get(src, dom);
  }

  /**
   * The longest distance (slots) of any key from its home slot: what a miss
   * costs at worst. For tests and status; walks the whole index.
   */
  longestProbe(): number {
    const idx = this.#index;
    const mask = this.#mask;
    let worst = 0;
    for (let i = 0; i < idx.length; i++) {
      const v = idx[i];
      if (v === 0) continue;
      const r = v - 1;
      const c = this.#conns[r >>> 1];
      const home = ((r & 1) === 0 ? c.h0 : c.h1) & mask;
      const d = (i - home) & mask;
      if (d + 1 > worst) worst = d + 1;
    }
    return worst;
  }

  conn(slot: number): Conn {
    return this.#conns[slot];
  }

  /**
   * A free Conn to fill in (all key fields, proto, state, nat, times), then
   * link() it; give it back with abandon() if it is not used. Returns
   * undefined when the table is full.
   */
  acquire(): Conn | undefined {
    if (this.#count >= this.max) return undefined;
    let c = this.#free.pop();
    if (c === undefined) {
      c = new Conn();
      c.slot = this.#conns.length;
      this.#conns.push(c);
    }
    c.finOrig = false;
    c.finReply = false;
    c.pktsOrig = 0;
    c.pktsReply = 0;
    return c;
  }

  abandon(c: Conn): void {
    if (!c.live) this.#free.push(c);
  }

  /**
   * Make an acquired, filled-in Conn findable by both keys (the caller checked
   * neither exists). Returns CT_LINKED, or why it was refused (the Conn is
   * then not in the table: abandon() it): CT_REFUSED_SOURCE (the source holds
   * perSource connections) or CT_REFUSED_PROBE (no free slot within maxProbe).
   */
  link(c: Conn): number {
    const bySource = this.#bySource;
    if (bySource !== undefined && bySource.get(c.oSrc, c.inDom) >= this.perSource) return CT_REFUSED_SOURCE;
    c.h0 = this.#hash(c.proto, c.inDom, c.oSrc, c.oSport, c.oDst, c.oDport);
    c.h1 = this.#hash(c.proto, c.outDom, c.rSrc, c.rSport, c.rDst, c.rDport);
    if (!this.#place(c.slot * 2, c.h0)) return CT_REFUSED_PROBE;
    if (!this.#place(c.slot * 2 + 1, c.h1)) {
      this.#unplace(c.slot * 2, c.h0);
      return CT_REFUSED_PROBE;
    }
    if (bySource !== undefined && bySource.inc(c.oSrc, c.inDom) < 0) {
      this.#unplace(c.slot * 2, c.h0);
      this.#unplace(c.slot * 2 + 1, c.h1);
      return CT_REFUSED_PROBE;
    }
    c.live = true;
    this.#count++;
    return CT_LINKED;
  }

  #place(ref: number, h: number): boolean {
    const idx = this.#index;
    const mask = this.#mask;
    const maxProbe = this.maxProbe;
    let i = h & mask;
    for (let p = 0; p < maxProbe; p++) {
      if (idx[i] === 0) {
        idx[i] = ref + 1;
        return true;
      }
      i = (i + 1) & mask;
    }
    return false;
  }

  #unplace(ref: number, h: number): void {
    const idx = this.#index;
    const mask = this.#mask;
    let i = h & mask;
    while (idx[i] !== ref + 1) {
      if (idx[i] === 0) return; // not present (cannot happen)
      i = (i + 1) & mask;
    }
    // Backward-shift deletion keeps every probe chain unbroken.
    for (;;) {
      idx[i] = 0;
      let j = i;
      for (;;) {
        j = (j + 1) & mask;
        const v = idx[j];
        if (v === 0) return;
        const r = v - 1;
        const c = this.#conns[r >>> 1];
        const home = ((r & 1) === 0 ? c.h0 : c.h1) & mask;
        // Entry at j may stay if its home lies cyclically in (i, j].
        const stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
          idx[i] = v;
          i = j;
          break;
        }
      }
    }
  }

  remove(c: Conn): void {
    if (!c.live) return;
    this.#unplace(c.slot * 2, c.h0);
    this.#unplace(c.slot * 2 + 1, c.h1);
    this.#bySource?.dec(c.oSrc, c.inDom);
    c.live = false;
    this.#count--;
    this.#free.push(c);
    if (this.onRemove !== undefined) this.onRemove(c);
  }

  /** Remove every connection that expired at `now`; returns how many. */
  sweep(now: number): number {
    let n = 0;
    const conns = this.#conns;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (c.live && c.expires <= now) {
        this.remove(c);
        n++;
      }
    }
    return n;
  }

  /** Live connections, in slot order. */
  *live(): IterableIterator<Conn> {
    for (const c of this.#conns) if (c.live) yield c;
  }
}

/**
 * NAT ports (or ICMP identifiers) of one address and protocol: a bitmap over
 * the configured range, handed out round-robin so a freed port is not reused
 * at once.
 */
export class PortPool {
  readonly first: number;
  readonly last: number;
  #used: Uint8Array;
  #cursor = 0;
  #inUse = 0;

  constructor(first: number, last: number) {
    this.first = first;
    this.last = last;
    this.#used = new Uint8Array(last - first + 1);
  }

  get inUse(): number {
    return this.#inUse;
  }

  /**
   * Take a free port P (round-robin from the cursor) such that the reply key
   * (proto, dom, remote, remotePort, addr, P) is not in the table; for ICMP
   * (remotePort < 0) the identifier is both ports. Returns -1 when none is left.
   */
  allocFor(table: ConnTable, proto: number, dom: number, remote: number, remotePort: number, addr: number): number {
    const used = this.#used;
    const n = used.length;
    let k = this.#cursor;
    for (let seen = 0; seen < n; seen++) {
      if (used[k] === 0) {
        const port = this.first + k;
        if (table.lookup(proto, dom, remote, remotePort < 0 ? port : remotePort, addr, port) < 0) {
          used[k] = 1;
          this.#inUse++;
          this.#cursor = k + 1 === n ? 0 : k + 1;
          return port;
        }
      }
      k = k + 1 === n ? 0 : k + 1;
    }
    return -1;
  }

  free(port: number): void {
    const k = port - this.first;
    if (k >= 0 && k < this.#used.length && this.#used[k] === 1) {
      this.#used[k] = 0;
      this.#inUse--;
    }
  }
}
