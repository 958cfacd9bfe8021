// Which new connections may pass, and whether they are masqueraded. This is
// the extension point for firewall rules: today a domain's `forward` list
// allows everything from that domain to a target domain (optionally with
// NAT); a rule set matching protocol / addresses / ports can replace decide()
// without touching the router, as long as it stays allocation-free.
import type { RouterConfig } from './config.ts';

export const POLICY_DROP = 0;
export const POLICY_ACCEPT = 1;
export const POLICY_ACCEPT_NAT = 2;

export class Policy {
  readonly #n: number;
  /** Verdict by ingress * n + egress domain. */
  readonly #matrix: Uint8Array;

  constructor(cfg: RouterConfig) {
    const n = cfg.domains.length;
    this.#n = n;
    this.#matrix = new Uint8Array(n * n);
    for (const d of cfg.domains) {
      for (const r of d.forward) this.#matrix[d.index * n + r.to] = r.nat ? POLICY_ACCEPT_NAT : POLICY_ACCEPT;
    }
  }

  /**
   * Verdict for a new connection (protocol, addresses and ports are passed for
   * finer rules later). Replies and later packets of tracked connections never
   * come here.
   */
  decide(inDom: number, outDom: number, _proto: number, _src: number, _sport: number, _dst: number, _dport: number): number {
    return this.#matrix[inDom * this.#n + outDom];
  }
}
