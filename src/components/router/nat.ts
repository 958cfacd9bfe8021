// NAT bookkeeping: the port pools masquerading draws from (one per target
// domain and protocol: ports, or ICMP identifiers, of `nat-ports`) and how
// many ports each source address holds per (target, protocol), for
// `nat.ports-per-source`. Touched when a masqueraded connection is created or
// removed, never for the packets of a tracked connection. The counts live in a
// keyed hash table (src/net/keyed-counts.ts), not a JS Map: V8 hashes number
// keys without a seed, and sources choose their addresses.
import { IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { KeyedCounts } from '../../net/keyed-counts.ts';
import { type Conn, type ConnTable, PortPool } from './conntrack.ts';

/** alloc(): the source holds its quota of ports already. */
export const NAT_QUOTA_EXCEEDED = -2;
/** alloc(): every port of the range is in use for that address and protocol. */
export const NAT_EXHAUSTED = -1;

/** Pool index % 3 -> protocol name (protoIndex's inverse). */
const PROTOS = ['tcp', 'udp', 'icmp'] as const;

function protoIndex(proto: number): number {
  return proto === IPPROTO_TCP ? 0 : proto === IPPROTO_UDP ? 1 : 2;
}

export class NatBook {
  readonly #first: number;
  readonly #last: number;
  readonly #pools: (PortPool | undefined)[];
  /** NAT ports held by (source address; target domain and protocol). */
  readonly #held: KeyedCounts;

  /** `capacity`: distinct (source, target, protocol) keys at most (one per masqueraded connection: conntrack.max). */
  constructor(domains: number, first: number, last: number, capacity = 16384, maxProbe = 64) {
    this.#first = first;
    this.#last = last;
    this.#pools = new Array<PortPool | undefined>(domains * 3).fill(undefined);
    this.#held = new KeyedCounts(capacity, maxProbe);
  }

  /** Second key word of #held (the first is the source address). */
  #key(dom: number, proto: number): number {
    return dom * 3 + protoIndex(proto);
  }

  #pool(dom: number, proto: number): PortPool {
    const k = dom * 3 + protoIndex(proto);
    let p = this.#pools[k];
    if (p === undefined) {
      p = new PortPool(this.#first, this.#last);
      this.#pools[k] = p;
    }
    return p;
  }

  /**
   * A port (ICMP: identifier) on address `addr` of domain outDom for a new
   * connection from src to remote:remotePort (-1: any, for ICMP), not yet
   * counted against src's quota (hold() does that once the connection exists).
   * NAT_QUOTA_EXCEEDED or NAT_EXHAUSTED when there is none.
   */
  alloc(ct: ConnTable, proto: number, outDom: number, src: number, remote: number, remotePort: number, addr: number, quota: number): number {
    if (quota > 0 && this.#held.get(src, this.#key(outDom, proto)) >= quota) return NAT_QUOTA_EXCEEDED;
    const port = this.#pool(outDom, proto).allocFor(ct, proto, outDom, remote, remotePort, addr);
    return port < 0 ? NAT_EXHAUSTED : port;
  }

  /**
   * Claim exactly `port` on outDom for an imported connection from src (conn-import.ts):
   * NAT_QUOTA_EXCEEDED, NAT_EXHAUSTED (outside the range or in use), else the port,
   * not yet counted against src (hold() does that once the connection exists).
   */
  claim(proto: number, outDom: number, src: number, port: number, quota: number): number {
    if (quota > 0 && this.#held.get(src, this.#key(outDom, proto)) >= quota) return NAT_QUOTA_EXCEEDED;
    return this.#pool(outDom, proto).take(port) ? port : NAT_EXHAUSTED;
  }

  /** Is port inside the configured NAT range? */
  inRange(port: number): boolean {
    return port >= this.#first && port <= this.#last;
  }

  /** Give back a port alloc() returned for a connection that was not created. */
  unalloc(outDom: number, proto: number, port: number): void {
    this.#pool(outDom, proto).free(port);
  }

  /** The connection got its port: count it against its source. False when the key finds no slot within the probe bound (remove the connection). */
  hold(outDom: number, proto: number, src: number): boolean {
    return this.#held.inc(src, this.#key(outDom, proto)) >= 0;
  }

  /** Ports in use per (target domain, protocol) with a pool, for status (read on request, never per packet). */
  inUse(): { dom: number; proto: 'tcp' | 'udp' | 'icmp'; ports: number }[] {
    const out: { dom: number; proto: 'tcp' | 'udp' | 'icmp'; ports: number }[] = [];
    for (let k = 0; k < this.#pools.length; k++) {
      const p = this.#pools[k];
      if (p !== undefined) out.push({ dom: Math.floor(k / 3), proto: PROTOS[k % 3], ports: p.inUse });
    }
    return out;
  }

  /** Ports of the range (each pool's size). */
  get size(): number {
    return this.#last - this.#first + 1;
  }

  /** A connection is gone: free its port and its count (no-op when not masqueraded). */
  release(c: Conn): void {
    if (!c.nat) return;
    this.#pool(c.outDom, c.proto).free(c.rDport);
    this.#held.dec(c.oSrc, this.#key(c.outDom, c.proto));
  }
}
