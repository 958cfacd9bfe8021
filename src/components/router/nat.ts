// NAT bookkeeping: the port pools masquerading draws from (one per target
// domain and protocol: ports, or ICMP identifiers, of `nat-ports`) and how
// many ports each source address holds per (target, protocol), for
// `nat.ports-per-source`. Touched when a masqueraded connection is created or
// removed, never for the packets of a tracked connection.
import { IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { type Conn, type ConnTable, PortPool } from './conntrack.ts';

/** alloc(): the source holds its quota of ports already. */
export const NAT_QUOTA_EXCEEDED = -2;
/** alloc(): every port of the range is in use for that address and protocol. */
export const NAT_EXHAUSTED = -1;

function protoIndex(proto: number): number {
  return proto === IPPROTO_TCP ? 0 : proto === IPPROTO_UDP ? 1 : 2;
}

export class NatBook {
  readonly #first: number;
  readonly #last: number;
  readonly #pools: (PortPool | undefined)[];
  /** NAT ports held by (target domain, protocol, source address). */
  readonly #held = new Map<number, number>();

  constructor(domains: number, first: number, last: number) {
    this.#first = first;
    this.#last = last;
    this.#pools = new Array<PortPool | undefined>(domains * 3).fill(undefined);
  }

  /** Key of #held: source address, target domain and protocol in one exact number. */
  #key(dom: number, proto: number, src: number): number {
    return (src >>> 0) * 1024 + dom * 3 + protoIndex(proto);
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
    if (quota > 0 && (this.#held.get(this.#key(outDom, proto, src)) ?? 0) >= quota) return NAT_QUOTA_EXCEEDED;
    const port = this.#pool(outDom, proto).allocFor(ct, proto, outDom, remote, remotePort, addr);
    return port < 0 ? NAT_EXHAUSTED : port;
  }

  /** Give back a port alloc() returned for a connection that was not created. */
  unalloc(outDom: number, proto: number, port: number): void {
    this.#pool(outDom, proto).free(port);
  }

  /** The connection got its port: count it against its source. */
  hold(outDom: number, proto: number, src: number): void {
    const k = this.#key(outDom, proto, src);
    this.#held.set(k, (this.#held.get(k) ?? 0) + 1);
  }

  /** A connection is gone: free its port and its count (no-op when not masqueraded). */
  release(c: Conn): void {
    if (!c.nat) return;
    this.#pool(c.outDom, c.proto).free(c.rDport);
    const k = this.#key(c.outDom, c.proto, c.oSrc);
    const held = (this.#held.get(k) ?? 0) - 1;
    if (held > 0) this.#held.set(k, held);
    else this.#held.delete(k);
  }
}
