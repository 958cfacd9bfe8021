// The domains' addresses and the routing decision, as int32 typed arrays
// scanned without allocation: which domain a destination leaves through
// (its prefix, then the static routes, then the default route) and the next
// hop there. Domains and routes cannot change at run time (reconfigure
// refuses it), so this is built once; only a domain with `address: dhcp` gets
// its address, prefix and gateway changed in place (setLease) when its lease
// starts, changes or ends. Until then its address is 0 (no address: nothing is
// sent into it, see router.ts) and it is the default route.
import type { RouterConfig } from './config.ts';

export class Routing {
  readonly n: number;
  // Addresses as int32 (see getI32): small integers, never boxed.
  readonly addr: Int32Array;
  readonly net: Int32Array;
  readonly mask: Int32Array;
  readonly bcast: Int32Array;
  /** Gateway, or -1 (255.255.255.255 is never a valid gateway). */
  readonly gw: Int32Array;
  /** The domain with a gateway (default route), or -1. */
  readonly defaultDomain: number;
  /** Static routes of all domains (routes.ts): network, mask, next hop, domain. */
  readonly #rNet: Int32Array;
  readonly #rMask: Int32Array;
  readonly #rVia: Int32Array;
  readonly #rDom: Int32Array;

  constructor(cfg: RouterConfig) {
    const n = this.n = cfg.domains.length;
    this.addr = new Int32Array(n);
    this.net = new Int32Array(n);
    this.mask = new Int32Array(n);
    this.bcast = new Int32Array(n);
    this.gw = new Int32Array(n);
    let def = -1;
    for (const d of cfg.domains) {
      const i = d.index;
      this.addr[i] = d.address;
      this.net[i] = d.network;
      this.mask[i] = d.mask;
      this.bcast[i] = d.broadcast;
      this.gw[i] = d.gateway < 0 ? -1 : d.gateway;
      if (d.gateway >= 0 || d.dhcpClient) def = i;
    }
    this.defaultDomain = def;
    const routes = cfg.domains.flatMap((d) => (d.routes ?? []).map((r) => ({ ...r, dom: d.index })));
    this.#rNet = Int32Array.from(routes, (r) => r.network | 0);
    this.#rMask = Int32Array.from(routes, (r) => r.mask | 0);
    this.#rVia = Int32Array.from(routes, (r) => r.via | 0);
    this.#rDom = Int32Array.from(routes, (r) => r.dom);
  }

  /** A DHCP domain's lease (address, prefix 1..30, gateway or -1), or none (lease undefined: address 0). */
  setLease(dom: number, lease: { address: number; prefix: number; gateway: number } | undefined): void {
    if (lease === undefined) {
      this.addr[dom] = 0;
      this.net[dom] = 0;
      this.mask[dom] = -1;
      this.bcast[dom] = 0;
      this.gw[dom] = -1;
      return;
    }
    const mask = lease.prefix === 0 ? 0 : (-1 << (32 - lease.prefix));
    this.addr[dom] = lease.address | 0;
    this.mask[dom] = mask;
    this.net[dom] = lease.address & mask;
    this.bcast[dom] = (lease.address & mask) | ~mask;
    this.gw[dom] = lease.gateway < 0 ? -1 : lease.gateway | 0;
  }

  /** The egress domain for dst: the domain whose prefix holds it, else a static route's, else the default route, else -1. */
  route(dst: number): number {
    for (let i = 0; i < this.n; i++) {
      if ((dst & this.mask[i]) === this.net[i]) return i;
    }
    for (let r = 0; r < this.#rNet.length; r++) {
      if ((dst & this.#rMask[r]) === this.#rNet[r]) return this.#rDom[r];
    }
    return this.defaultDomain;
  }

  /** The static route of domain `dom` holding `addr`, or -1. */
  routeIn(dom: number, addr: number): number {
    for (let r = 0; r < this.#rNet.length; r++) {
      if (this.#rDom[r] === dom && (addr & this.#rMask[r]) === this.#rNet[r]) return r;
    }
    return -1;
  }

  /** The next hop in domain `dom` for an address: itself on-link, else a static route's, else the gateway, else -1. */
  hopFor(dom: number, addr: number): number {
    if ((addr & this.mask[dom]) === this.net[dom]) return addr;
    const r = this.routeIn(dom, addr);
    if (r >= 0) return this.#rVia[r];
    return this.gw[dom];
  }
}
