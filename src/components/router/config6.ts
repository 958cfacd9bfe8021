// The IPv6 keys of a router domain: `address6` (the router's address and the
// domain's prefix; IPv6 is on for a domain that has it), `gateway6` (next hop
// of the IPv6 default route) and `ra` (router advertisements with the
// domain's /64 as the SLAAC prefix), `routes6` (prefixes reached through a
// next hop in the domain, e.g. a remote site behind the tunnel). Checked with the project's config reader:
// every error names the path and what was expected.
import { got, type Reader } from '../../config/reader.ts';
import {
  formatIpv6, formatIpv6Cidr, inPrefix6, ipv6Equals, isLinkLocalIpv6, isMulticastIpv6, isUnspecifiedIpv6, linkLocalFromMac,
  maskIpv6, parseIpv6, parseIpv6Cidr, prefixesOverlap6,
} from '../../net/addr6.ts';

export const IPV6_KEYS = ['address6', 'gateway6', 'ra', 'routes6'] as const;

export const RA_DEFAULTS = { intervalS: 200, lifetimeS: 1800, dnsMax: 8 } as const;

export interface RaConfig {
  /** Seconds between unsolicited advertisements (jittered by up to -25 %), 4..1800 (RFC 4861 MaxRtrAdvInterval). */
  readonly intervalS: number;
  /** Router lifetime in seconds (0: not a default router), 0..9000. */
  readonly lifetimeS: number;
  /** Recursive DNS servers (RDNSS, RFC 8106). */
  readonly dns: readonly Uint8Array[];
}

export interface Ipv6DomainConfig {
  /** The router's global address in this domain (16 bytes). */
  readonly address: Uint8Array;
  readonly prefix: number;
  /** The domain's network (host bits cleared). */
  readonly network: Uint8Array;
  /** The router's link-local address fe80::/64, modified EUI-64 of the domain's MAC. */
  readonly linkLocal: Uint8Array;
  /** Next hop of the IPv6 default route (global in the prefix, or link-local), or null. */
  readonly gateway: Uint8Array | null;
  readonly ra: RaConfig | null;
  /** Static routes: prefixes reached through a next hop in this domain (no overlap with any domain or route). */
  readonly routes: readonly Route6[];
}

export interface Route6 {
  readonly network: Uint8Array;
  readonly prefix: number;
  /** The next hop: a host of the domain's prefix, or link-local. */
  readonly via: Uint8Array;
}

/** What parseIpv6Domain needs before the MAC is known (it is derived later). */
export interface Ipv6Draft {
  readonly address: Uint8Array;
  readonly prefix: number;
  readonly network: Uint8Array;
  readonly gateway: Uint8Array | null;
  readonly ra: RaConfig | null;
  readonly routes: readonly Route6[];
}

type Path = (string | number)[];

/**
 * The IPv6 keys of domain `name` (raw mapping d, at path p): undefined when it
 * has no address6. `others` are the drafts of earlier domains (no overlap);
 * `defaultDomain` the domain holding gateway6 already ('' if none).
 */
export function parseIpv6Domain(c: Reader, d: Record<string, unknown>, p: Path, others: readonly { name: string; v6?: Ipv6Draft }[],
  defaultDomain: string): Ipv6Draft | undefined {
  if (d.address6 === undefined) {
    for (const k of ['gateway6', 'ra', 'routes6'] as const) {
      if (d[k] !== undefined) c.fail([...p, k], `expected no "${k}" without "address6" (IPv6 is on for a domain only with its address6)`);
    }
    return undefined;
  }
  const ap = [...p, 'address6'];
  const text = d.address6;
  const slash = typeof text === 'string' ? text.indexOf('/') : -1;
  const addr = slash > 0 ? parseIpv6((text as string).slice(0, slash)) : undefined;
  const plen = slash > 0 && /^(0|[1-9]\d{0,2})$/.test((text as string).slice(slash + 1)) ? Number((text as string).slice(slash + 1)) : -1;
  if (addr === undefined || plen < 1 || plen > 127) {
    c.fail(ap, `expected an IPv6 address with prefix like 2001:db8:0:1::1/64 (prefix 1 to 127)${got(text)}`);
  }
  const network = maskIpv6(addr, plen);
  if (isMulticastIpv6(addr) || isLinkLocalIpv6(addr) || isUnspecifiedIpv6(addr) || ipv6Equals(addr, 0, network, 0) ||
    (addr[0] === 0 && addr[1] === 0 && addr[2] === 0 && addr[3] === 0)) {
    c.fail(ap, `expected a global or unique-local unicast host address, not the prefix's subnet-router address, link-local, multicast or IPv4-compatible${got(text)}`);
  }
  for (const o of others) {
    if (o.v6 !== undefined && prefixesOverlap6({ addr: network, prefix: plen }, { addr: o.v6.network, prefix: o.v6.prefix })) {
      c.fail(ap, `expected a prefix that does not overlap domain "${o.name}" (${formatIpv6Cidr({ addr: o.v6.network, prefix: o.v6.prefix })})`);
    }
    for (const rt of o.v6?.routes ?? []) {
      if (prefixesOverlap6({ addr: network, prefix: plen }, { addr: rt.network, prefix: rt.prefix })) {
        c.fail(ap, `expected a prefix that does not overlap the routes6 entry ${formatIpv6Cidr({ addr: rt.network, prefix: rt.prefix })} of domain "${o.name}"`);
      }
    }
  }
  let gateway: Uint8Array | null = null;
  if (d.gateway6 !== undefined) {
    const gp = [...p, 'gateway6'];
    const g = typeof d.gateway6 === 'string' ? parseIpv6(d.gateway6) : undefined;
    if (g === undefined) c.fail(gp, `expected an IPv6 address like 2001:db8:ff::fe or fe80::1${got(d.gateway6)}`);
    if (!(isLinkLocalIpv6(g) || inPrefix6(g, 0, network, plen)) || isMulticastIpv6(g) || ipv6Equals(g, 0, addr, 0) || ipv6Equals(g, 0, network, 0)) {
      c.fail(gp, `expected a link-local address or a host address inside ${formatIpv6(network)}/${plen} other than the router's own${got(d.gateway6)}`);
    }
    if (defaultDomain !== '') {
      c.fail(gp, `expected at most one domain with a gateway6 (the IPv6 default route); "${defaultDomain}" has one already`);
    }
    gateway = g;
  }
  let ra: RaConfig | null = null;
  if (d.ra !== undefined) {
    const rp = [...p, 'ra'];
    if (plen !== 64) c.fail(rp, `expected "ra" only on a domain whose address6 is a /64 (SLAAC needs a 64-bit prefix; address6 is /${plen})`);
    const r = d.ra === null || d.ra === true ? {} : c.obj(d.ra, rp, ['interval-s', 'lifetime-s', 'dns'], 'a mapping like { interval-s: 200, lifetime-s: 1800, dns: [2001:db8::53] }');
    const dns: Uint8Array[] = [];
    if (r.dns !== undefined) {
      const list = c.list(r.dns, [...rp, 'dns'], '[2001:db8::53]');
      if (list.length > RA_DEFAULTS.dnsMax) c.fail([...rp, 'dns'], `expected at most ${RA_DEFAULTS.dnsMax} DNS servers${got(r.dns)}`);
      list.forEach((v, i) => {
        const a = typeof v === 'string' ? parseIpv6(v) : undefined;
        if (a === undefined || isMulticastIpv6(a) || isUnspecifiedIpv6(a)) c.fail([...rp, 'dns', i], `expected a unicast IPv6 address like 2001:db8::53${got(v)}`);
        dns.push(a);
      });
    }
    ra = {
      intervalS: c.int(r['interval-s'], [...rp, 'interval-s'], 4, 1800, RA_DEFAULTS.intervalS),
      lifetimeS: c.int(r['lifetime-s'], [...rp, 'lifetime-s'], 0, 9000, RA_DEFAULTS.lifetimeS),
      dns,
    };
    if (ra.lifetimeS !== 0 && ra.lifetimeS < ra.intervalS) {
      c.fail([...rp, 'lifetime-s'], `expected 0 (not a default router) or at least interval-s (${ra.intervalS}), or hosts lose the route between advertisements${got(r['lifetime-s'])}`);
    }
  }
  const routes = parseRoutes6(c, d.routes6, [...p, 'routes6'], addr, network, plen, others);
  return { address: addr, prefix: plen, network, gateway, ra, routes };
}

/**
 * A domain's `routes6`: [{ prefix: 2001:db8:64::/64, via: 2001:db8:ff:1::2 }].
 * A routed prefix overlaps no domain's prefix and no other route, so a
 * lookup has one answer; `via` is a host of the domain's prefix (not the
 * router's address) or link-local.
 */
function parseRoutes6(c: Reader, raw: unknown, path: Path, addr: Uint8Array, network: Uint8Array, plen: number,
  others: readonly { name: string; v6?: Ipv6Draft }[]): Route6[] {
  if (raw === undefined) return [];
  const out: Route6[] = [];
  c.list(raw, path, '[{ prefix: 2001:db8:64::/64, via: 2001:db8:ff:1::2 }]').forEach((v, i) => {
    const p = [...path, i];
    const o = c.obj(v, p, ['prefix', 'via'], 'a route like { prefix: 2001:db8:64::/64, via: 2001:db8:ff:1::2 }');
    const cidr = typeof o.prefix === 'string' && o.prefix.includes('/') ? parseIpv6Cidr(o.prefix) : undefined;
    const given = cidr === undefined ? undefined : parseIpv6((o.prefix as string).slice(0, (o.prefix as string).indexOf('/')));
    if (cidr === undefined || given === undefined || cidr.prefix < 1) c.fail([...p, 'prefix'], `expected an IPv6 prefix like 2001:db8:64::/64 (length 1 to 128)${got(o.prefix)}`);
    const net = maskIpv6(cidr.addr, cidr.prefix);
    if (!ipv6Equals(net, 0, given, 0)) c.fail([...p, 'prefix'], `expected a network address (${formatIpv6Cidr({ addr: net, prefix: cidr.prefix })})${got(o.prefix)}`);
    if (isMulticastIpv6(net) || isLinkLocalIpv6(net)) c.fail([...p, 'prefix'], `expected a global or unique-local prefix, not multicast or link-local${got(o.prefix)}`);
    const me = { addr: net, prefix: cidr.prefix };
    if (prefixesOverlap6(me, { addr: network, prefix: plen })) {
      c.fail([...p, 'prefix'], `expected a prefix that does not overlap this domain's own (${formatIpv6Cidr({ addr: network, prefix: plen })})`);
    }
    for (const d of others) {
      if (d.v6 === undefined) continue;
      if (prefixesOverlap6(me, { addr: d.v6.network, prefix: d.v6.prefix })) {
        c.fail([...p, 'prefix'], `expected a prefix that does not overlap domain "${d.name}" (${formatIpv6Cidr({ addr: d.v6.network, prefix: d.v6.prefix })})`);
      }
      for (const rt of d.v6.routes) {
        if (prefixesOverlap6(me, { addr: rt.network, prefix: rt.prefix })) {
          c.fail([...p, 'prefix'], `expected a prefix that does not overlap the route ${formatIpv6Cidr({ addr: rt.network, prefix: rt.prefix })} of domain "${d.name}"`);
        }
      }
    }
    for (const rt of out) {
      if (prefixesOverlap6(me, { addr: rt.network, prefix: rt.prefix })) {
        c.fail([...p, 'prefix'], `expected a prefix that does not overlap this domain's route ${formatIpv6Cidr({ addr: rt.network, prefix: rt.prefix })}`);
      }
    }
    const via = typeof o.via === 'string' ? parseIpv6(o.via) : undefined;
    if (via === undefined || !(isLinkLocalIpv6(via) || inPrefix6(via, 0, network, plen)) || isMulticastIpv6(via) ||
      ipv6Equals(via, 0, addr, 0) || ipv6Equals(via, 0, network, 0)) {
      c.fail([...p, 'via'], `expected a link-local address or a host address inside ${formatIpv6Cidr({ addr: network, prefix: plen })} other than the router's own${got(o.via)}`);
    }
    out.push({ network: net, prefix: cidr.prefix, via: via as Uint8Array });
  });
  return out;
}

/** The finished IPv6 config of a domain, once its MAC is known. */
export function finishIpv6Domain(draft: Ipv6Draft, mac: Uint8Array): Ipv6DomainConfig {
  return { ...draft, linkLocal: linkLocalFromMac(mac) };
}
