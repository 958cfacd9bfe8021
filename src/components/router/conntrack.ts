// Connection tracking: a fixed-capacity table of connections, each findable by
// two keys (the original direction as it arrives on the ingress domain, the
// reply direction as it arrives on the egress domain), in one open-addressing
// hash index over an Int32Array (linear probing, backward-shift deletion: the
// slots, free list and index are conn-index.ts, shared with the IPv6 table).
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
import { Conn, ConnIndex } from './conn-index.ts';

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

export { Conn } from './conn-index.ts';

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

export class ConnTable extends ConnIndex<Conn> {
  readonly perSource: number;
  readonly #legacy: boolean;
  /** Live connections by (original source, ingress domain); undefined without a per-source limit. */
  readonly #bySource: KeyedCounts | undefined;
  /** Called when a connection leaves the table (to free its NAT port). */
  onRemove: ((c: Conn) => void) | undefined;

  constructor(max: number, opts: ConnTableOptions = {}) {
    const legacy = opts.legacyHash === true;
    super(max, legacy ? Infinity : opts.maxProbe ?? CT_DEFAULT_MAX_PROBE, () => new Conn());
    this.#legacy = legacy;
    this.perSource = opts.perSource ?? 0;
    // Every live connection has one source: max distinct sources at most.
    this.#bySource = this.perSource > 0 ? new KeyedCounts(max, this.maxProbe === Infinity ? 64 : this.maxProbe) : undefined;
  }

  #hash(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
    return this.#legacy ? ctHashLegacy(proto, dom, src, sport, dst, dport) : ctHash(proto, dom, src, sport, dst, dport);
  }

  /** Find a key: returns slot * 2 + direction (0 original, 1 reply), or -1. */
  lookup(proto: number, dom: number, src: number, sport: number, dst: number, dport: number): number {
    const idx = this.index;
    const mask = this.mask;
    const maxProbe = this.maxProbe;
    let i = this.#hash(proto, dom, src, sport, dst, dport) & mask;
    for (let p = 0; p < maxProbe; p++) {
      const v = idx[i];
      if (v === 0) return -1;
      const ref = v - 1;
      const c = this.conns[ref >>> 1];
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
    if (!this.placeBoth(c)) return CT_REFUSED_PROBE;
    if (bySource !== undefined && bySource.inc(c.oSrc, c.inDom) < 0) {
      this.unplaceBoth(c);
      return CT_REFUSED_PROBE;
    }
    this.linked(c);
    return CT_LINKED;
  }

  protected override removed(c: Conn): void {
    this.#bySource?.dec(c.oSrc, c.inDom);
    if (this.onRemove !== undefined) this.onRemove(c);
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

  /** Take exactly `port` (an imported connection's, conn-import.ts): false when it is outside the range or in use. */
  take(port: number): boolean {
    const k = port - this.first;
    if (k < 0 || k >= this.#used.length || this.#used[k] === 1) return false;
    this.#used[k] = 1;
    this.#inUse++;
    return true;
  }

  free(port: number): void {
    const k = port - this.first;
    if (k >= 0 && k < this.#used.length && this.#used[k] === 1) {
      this.#used[k] = 0;
      this.#inUse--;
    }
  }
}
