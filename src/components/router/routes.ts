// Static routes of a domain: prefixes that are not on the domain's link but
// reachable through a next hop on it, e.g. a remote site's prefix behind the
// tunnel component, which is a host in the domain:
//
//   domains:
//     tun: { address: 198.18.255.1/30, routes: [{ prefix: 198.18.64.0/24, via: 198.18.255.2 }] }
//
// Forwarding treats a routed prefix like the domain's own (the policy still
// decides what may enter it), and a domain without a gateway accepts sources
// from its routed prefixes too (anti-spoofing). Prefixes must not overlap any
// domain's prefix or another route, so a lookup has exactly one answer.
import { got, type Reader } from '../../config/reader.ts';
import { formatIpv4, inPrefix, networkOf, parseIpv4, parseIpv4Cidr, prefixesOverlap, prefixMask } from '../../net/addr.ts';

export interface StaticRoute {
  readonly network: number;
  readonly prefix: number;
  readonly mask: number;
  /** The next hop, inside the domain's prefix. */
  readonly via: number;
}

interface DomainLike {
  readonly name: string;
  readonly address: number;
  readonly prefix: number;
}

/**
 * Parse one domain's `routes` (path: where it sits), reading with r. `all`
 * are every domain (for overlap checks), `taken` the routes of domains parsed before.
 */
export function parseRoutes(
  raw: unknown, path: (string | number)[], domain: DomainLike, all: readonly DomainLike[], taken: readonly (StaticRoute & { domain: string })[],
  r: Reader,
): StaticRoute[] {
  if (raw === undefined) return [];
  const fail = (p: (string | number)[], expected: string): never => r.fail(p, expected);
  const list = r.list(raw, path, '[{ prefix: 198.18.64.0/24, via: 198.18.255.2 }]');
  const out: StaticRoute[] = [];
  const dNet = networkOf(domain.address, domain.prefix);
  const dMask = prefixMask(domain.prefix);
  list.forEach((v, i) => {
    const p = [...path, i];
    const o = r.obj(v, p, ['prefix', 'via'], 'a route like { prefix: 198.18.64.0/24, via: 198.18.255.2 }');
    const c = typeof o.prefix === 'string' ? parseIpv4Cidr(o.prefix) : undefined;
    if (c === undefined || c.prefix < 1) fail([...p, 'prefix'], `expected an IPv4 prefix like 198.18.64.0/24 (length 1 to 32)${got(o.prefix)}`);
    const cc = c as { address: number; prefix: number };
    const network = networkOf(cc.address, cc.prefix);
    if (network !== cc.address) fail([...p, 'prefix'], `expected a network address (${formatIpv4(network)}/${cc.prefix})${got(o.prefix)}`);
    for (const d of all) {
      if (prefixesOverlap(network, cc.prefix, d.address, d.prefix)) {
        fail([...p, 'prefix'], `expected a prefix that does not overlap domain "${d.name}" (${formatIpv4(networkOf(d.address, d.prefix))}/${d.prefix})`);
      }
    }
    for (const t of [...taken, ...out.map((x) => ({ ...x, domain: domain.name }))]) {
      if (prefixesOverlap(network, cc.prefix, t.network, t.prefix)) {
        fail([...p, 'prefix'], `expected a prefix that does not overlap the route ${formatIpv4(t.network)}/${t.prefix} of domain "${t.domain}"`);
      }
    }
    const via = typeof o.via === 'string' ? parseIpv4(o.via) : undefined;
    if (via === undefined || !inPrefix(via, dNet, dMask) || via === domain.address || via === dNet) {
      fail([...p, 'via'], `expected a next hop inside ${formatIpv4(dNet)}/${domain.prefix} other than the router's own address${got(o.via)}`);
    }
    out.push({ network, prefix: cc.prefix, mask: prefixMask(cc.prefix), via: via as number });
  });
  return out;
}
