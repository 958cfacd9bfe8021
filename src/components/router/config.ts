// The router's config section: validated once, with defaults stated here and
// in README.md, into a plain immutable object the router runs on. Every
// mistake is a ConfigFileError naming the exact path and what was expected.
import { parseMirrorConfig, type MirrorConfig } from './mirror.ts';
import { parseRoutes, type StaticRoute } from './routes.ts';
import {
  broadcastOf, formatIpv4, inPrefix, isLocalUnicastMacByte, networkOf, parseIpv4, parseIpv4Cidr,
  parseMacPrefix, prefixesOverlap, prefixMask,
} from '../../net/addr.ts';
import { fmtPath, got, isObj, parsePortRange } from '../../config/reader.ts';
import { SectionReader } from '../../runtime/component.ts';
import { type DomainInfo, type DomainPolicy, parsePolicies, POLICY_KEYS } from './policy-config.ts';
import { finishIpv6Domain, type Ipv6DomainConfig, type Ipv6Draft, IPV6_KEYS, parseIpv6Domain } from './config6.ts';

export const DEFAULTS = {
  macPrefix: '02',
  arp: { timeoutS: 300, retryMs: 1000, maxTries: 3, maxPending: 32, pendingPool: 64 },
  conntrack: { max: 16384, perSource: 4096, maxProbe: 64, tcpEstablishedS: 7200, tcpTransitoryS: 30, tcpClosedS: 10, udpS: 60, icmpS: 10 },
  natPorts: { first: 49152, last: 65535 },
  verifyChecksums: true,
  logDropsPerS: 0,
  mtu: 1500,
  fragments: { maxDatagrams: 64, perSource: 16, maxFragments: 64, timeoutS: 30 },
} as const;

/** A policy entry: new connections from the owning domain may go to `to`. */
export interface ForwardRule {
  /** Target domain index. */
  readonly to: number;
  readonly toName: string;
  /** Masquerade the source to the target domain's address. */
  readonly nat: boolean;
}

export interface DomainConfig {
  readonly name: string;
  readonly index: number;
  /** The router's own address in this domain (u32). */
  readonly address: number;
  readonly prefix: number;
  readonly mask: number;
  readonly network: number;
  readonly broadcast: number;
  /** Default-route next hop (u32), or -1 when this domain is not the default route. */
  readonly gateway: number;
  /**
   * `address: dhcp`: the address, prefix and gateway come from a DHCP lease
   * (dhcp-client.ts) and change at run time; until the first lease the domain
   * has none (address 0.0.0.0/32 here) and is the default route.
   */
  readonly dhcpClient: boolean;
  /** The router's MAC in this domain (locally administered, derived from names). */
  readonly mac: Uint8Array;
  readonly forward: readonly ForwardRule[];
  /** Prefixes reached through a next hop in this domain (routes.ts); absent: none. */
  readonly routes?: readonly StaticRoute[];
  /** Rules, forwards, NAT, blocklist, limits, DHCP server (policy-config.ts). */
  readonly policy: DomainPolicy;
  /** The link MTU: the largest IP packet sent on this domain (bigger ones are fragmented, or refused with DF). */
  readonly mtu: number;
  /** Clamp the MSS option of TCP SYNs entering or leaving this domain to what its MTU carries. */
  readonly mssClamp: boolean;
  /** When this domain's egress has no free slot, hold the ingresses sending to it instead of dropping their frames (egress-hold.ts). */
  readonly backpressure: boolean;
  /** IPv6 (address6, gateway6, ra: config6.ts); absent: IPv6 is off in this domain. */
  readonly ipv6?: Ipv6DomainConfig;
}

export interface RouterConfig {
  readonly domains: readonly DomainConfig[];
  readonly arp: {
    readonly timeoutMs: number;
    readonly retryMs: number;
    readonly maxTries: number;
    readonly maxPending: number;
    readonly pendingPool: number;
  };
  readonly conntrack: {
    readonly max: number;
    /** Connections one source address may hold per ingress domain (0: no limit). */
    readonly perSource: number;
    /** Slots a key may lie from its home slot in the index (conntrack.ts). */
    readonly maxProbe: number;
    readonly tcpEstablishedMs: number;
    readonly tcpTransitoryMs: number;
    readonly tcpClosedMs: number;
    readonly udpMs: number;
    readonly icmpMs: number;
  };
  readonly natPorts: { readonly first: number; readonly last: number };
  /** IPv4 reassembly bounds (reassembly.ts). */
  readonly fragments: {
    readonly maxDatagrams: number;
    readonly maxPerSource: number;
    readonly maxFragments: number;
    readonly timeoutMs: number;
  };
  readonly verifyChecksums: boolean;
  /** Drop log: at most this many log lines per second (0: none). */
  readonly logDropsPerS: number;
  /** Traffic mirrored to the monitor over the `mirror` session (mirror.ts), if configured. */
  readonly mirror?: MirrorConfig;
  /**
   * One of an HA pair (issue 19, ha.ts): the router starts as backup (forwards
   * nothing, sends nothing, imports its conn-sync's records) until init makes
   * it master through its control API.
   */
  readonly ha: boolean;
}

export interface ConfigSource {
  readonly file: string;
  readonly path: string;
}

/** Domain names are session port names: lower-case letters, digits and "-". */
const DOMAIN_RE = /^[a-z][a-z0-9-]{0,31}$/;

/** 32-bit FNV-1a with a chosen basis. */
function fnv1a(text: string, basis: number): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The domain's MAC: the prefix bytes, then bytes of a hash of
 * "<component>/<domain>[/<attempt>]". Deterministic across restarts, so hosts
 * keep their ARP entries when the router restarts.
 */
export function deriveMac(prefix: Uint8Array, component: string, domain: string, attempt = 0): Uint8Array {
  const seed = attempt === 0 ? `${component}/${domain}` : `${component}/${domain}/${attempt}`;
  const h1 = fnv1a(seed, 0x811c9dc5);
  const h2 = fnv1a(seed, 0x050c5d1f);
  const hash = [h1 >>> 24, (h1 >>> 16) & 0xff, (h1 >>> 8) & 0xff, h1 & 0xff, h2 >>> 24, (h2 >>> 16) & 0xff];
  const mac = new Uint8Array(6);
  mac.set(prefix);
  for (let i = prefix.length; i < 6; i++) mac[i] = hash[i - prefix.length];
  return mac;
}

/**
 * Validate the router's config section. `source.path` is where the section
 * sits in the gateway config (e.g. "components[2].config"); error paths extend it.
 */
export function parseRouterConfig(raw: unknown, componentName: string, source: ConfigSource): RouterConfig {
  const c: SectionReader = new SectionReader(source);
  const at = (...keys: (string | number)[]): (string | number)[] => [...c.base, ...keys];
  const root = c.obj(raw, c.base, ['domains', 'mac-prefix', 'arp', 'conntrack', 'nat-ports', 'fragments', 'verify-checksums', 'log', 'mirror', 'ha'],
    'a mapping with at least "domains"');

  // mac-prefix
  let macPrefix = parseMacPrefix(DEFAULTS.macPrefix) as Uint8Array;
  if (root['mac-prefix'] !== undefined) {
    const p = typeof root['mac-prefix'] === 'string' ? parseMacPrefix(root['mac-prefix']) : undefined;
    if (p === undefined || !isLocalUnicastMacByte(p[0])) {
      c.fail(at('mac-prefix'), `expected 1 to 5 hex bytes like "02:6d", the first locally administered unicast (second-lowest bit set, lowest clear)${got(root['mac-prefix'])}`);
    }
    macPrefix = p;
  }

  // domains, first pass: addresses
  const rawDomains = root.domains;
  if (!isObj(rawDomains) || Object.keys(rawDomains).length === 0) {
    c.fail(at('domains'), `expected a mapping of domain name to domain settings, at least one domain${got(rawDomains)}`);
  }
  const names = Object.keys(rawDomains);
  interface Draft { name: string; address: number; prefix: number; gateway: number; dhcp: boolean; rawForward: unknown; raw: Record<string, unknown>; v6?: Ipv6Draft }
  const drafts: Draft[] = [];
  let defaultDomain = '';
  let defaultDomain6 = '';
  for (const name of names) {
    const p = at('domains', name);
    if (!DOMAIN_RE.test(name)) c.fail(p, 'expected a domain name (it is the session port name) of lower-case letters, digits and "-", starting with a letter, at most 32');
    const d = c.obj(rawDomains[name], p, ['address', 'gateway', 'forward', 'routes', 'mtu', 'mss-clamp', 'backpressure', ...IPV6_KEYS, ...POLICY_KEYS], 'a mapping with "address"');
    if (d.address === 'dhcp') {
      // The address comes from a lease: nothing configured may depend on it.
      for (const key of ['gateway', 'routes', 'dhcp-server', 'tcp-forward', 'udp-forward']) {
        if (d[key] !== undefined) c.fail(at('domains', name, key), `no ${key} on a domain with address: dhcp (its address, prefix and gateway come from the lease)`);
      }
      if (defaultDomain !== '') {
        c.fail(at('domains', name, 'address'), `expected at most one domain with the default route: "${defaultDomain}" has a gateway (a domain with address: dhcp takes its default route from the lease)`);
      }
      defaultDomain = name;
      const v6 = parseIpv6Domain(c, d, p, drafts, defaultDomain6);
      if (v6?.gateway) defaultDomain6 = name;
      drafts.push({ name, address: 0, prefix: 32, gateway: -1, dhcp: true, rawForward: d.forward, raw: d, v6 });
      continue;
    }
    const cidr = typeof d.address === 'string' ? parseIpv4Cidr(d.address) : undefined;
    if (cidr === undefined || cidr.prefix < 1 || cidr.prefix > 30) {
      c.fail(at('domains', name, 'address'), `expected an IPv4 address with prefix like 198.18.0.1/24 (prefix 1 to 30), or dhcp${got(d.address)}`);
    }
    const net = networkOf(cidr.address, cidr.prefix);
    const bc = broadcastOf(cidr.address, cidr.prefix);
    if (cidr.address === net || cidr.address === bc) {
      c.fail(at('domains', name, 'address'), `expected a host address, not the network or broadcast address of ${formatIpv4(net)}/${cidr.prefix}${got(d.address)}`);
    }
    let gateway = -1;
    if (d.gateway !== undefined) {
      const g = typeof d.gateway === 'string' ? parseIpv4(d.gateway) : undefined;
      if (g === undefined) c.fail(at('domains', name, 'gateway'), `expected an IPv4 address like 198.19.0.254${got(d.gateway)}`);
      if (!inPrefix(g, net, prefixMask(cidr.prefix)) || g === net || g === bc || g === cidr.address) {
        c.fail(at('domains', name, 'gateway'), `expected a host address inside ${formatIpv4(net)}/${cidr.prefix} other than the router's own${got(d.gateway)}`);
      }
      if (defaultDomain !== '') {
        c.fail(at('domains', name, 'gateway'), `expected at most one domain with a gateway (the default route); "${defaultDomain}" has ${drafts.find((x) => x.name === defaultDomain)?.dhcp === true ? 'it from its DHCP lease' : 'one already'}`);
      }
      defaultDomain = name;
      gateway = g;
    }
    for (const o of drafts) {
      if (!o.dhcp && prefixesOverlap(cidr.address, cidr.prefix, o.address, o.prefix)) {
        c.fail(at('domains', name, 'address'), `expected a prefix that does not overlap domain "${o.name}" (${formatIpv4(o.address)}/${o.prefix})`);
      }
    }
    const v6 = parseIpv6Domain(c, d, p, drafts, defaultDomain6);
    if (v6?.gateway) defaultDomain6 = name;
    drafts.push({ name, address: cidr.address, prefix: cidr.prefix, gateway, dhcp: false, rawForward: d.forward, raw: d, v6 });
  }

  // domains, second pass: MACs and forward rules
  const domains: Omit<DomainConfig, 'policy'>[] = [];
  const macs = new Set<string>();
  const takenRoutes: (StaticRoute & { domain: string })[] = [];
  drafts.forEach((d, index) => {
    const routes = parseRoutes(d.raw.routes, at('domains', d.name, 'routes'), d, drafts, takenRoutes, c);
    for (const r of routes) takenRoutes.push({ ...r, domain: d.name });
    let mac = deriveMac(macPrefix, componentName, d.name);
    for (let attempt = 1; macs.has(mac.join(',')) && attempt < 100; attempt++) mac = deriveMac(macPrefix, componentName, d.name, attempt);
    macs.add(mac.join(','));
    const forward: ForwardRule[] = [];
    if (d.rawForward !== undefined) {
      const fp = at('domains', d.name, 'forward');
      if (!Array.isArray(d.rawForward)) c.fail(fp, `expected a list of rules like [{ to: wan, nat: true }]${got(d.rawForward)}`);
      d.rawForward.forEach((r: unknown, i: number) => {
        const rp = [...fp, i];
        const rule = c.obj(r, rp, ['to', 'nat'], 'a rule like { to: wan, nat: true }');
        const to = rule.to;
        const toIndex = typeof to === 'string' ? names.indexOf(to) : -1;
        if (typeof to !== 'string' || toIndex < 0 || to === d.name) {
          c.fail([...rp, 'to'], `expected the name of another domain (one of: ${names.filter((n) => n !== d.name).join(', ') || 'none'})${got(to)}`);
        }
        if (forward.some((f) => f.to === toIndex)) c.fail([...rp, 'to'], `expected each target once; "${to}" is listed twice`);
        forward.push({ to: toIndex, toName: to, nat: c.bool(rule.nat, [...rp, 'nat'], false) });
      });
    }
    domains.push({
      name: d.name,
      index,
      address: d.address,
      prefix: d.prefix,
      mask: prefixMask(d.prefix),
      network: networkOf(d.address, d.prefix),
      broadcast: broadcastOf(d.address, d.prefix),
      gateway: d.gateway,
      dhcpClient: d.dhcp,
      mac,
      forward,
      routes,
      // 68: the smallest MTU every IPv4 host must accept (RFC 791); 65535: the largest IPv4 packet.
      // An IPv6 link carries at least 1280 bytes (RFC 8200 5).
      mtu: c.int(d.raw.mtu, at('domains', d.name, 'mtu'), d.v6 === undefined ? 68 : 1280, 65535, DEFAULTS.mtu),
      mssClamp: c.bool(d.raw['mss-clamp'], at('domains', d.name, 'mss-clamp'), false),
      backpressure: c.bool(d.raw.backpressure, at('domains', d.name, 'backpressure'), true),
      ...(d.v6 === undefined ? {} : { ipv6: finishIpv6Domain(d.v6, mac) }),
    });
  });

  // arp
  const A = DEFAULTS.arp;
  const arpRaw = root.arp === undefined ? {} : c.obj(root.arp, at('arp'),
    ['timeout-s', 'retry-ms', 'max-tries', 'max-pending', 'pending-pool'], 'a mapping');
  const arp = {
    timeoutMs: c.int(arpRaw['timeout-s'], at('arp', 'timeout-s'), 1, 86400, A.timeoutS) * 1000,
    retryMs: c.int(arpRaw['retry-ms'], at('arp', 'retry-ms'), 10, 60000, A.retryMs),
    maxTries: c.int(arpRaw['max-tries'], at('arp', 'max-tries'), 1, 100, A.maxTries),
    maxPending: c.int(arpRaw['max-pending'], at('arp', 'max-pending'), 0, 4096, A.maxPending),
    pendingPool: c.int(arpRaw['pending-pool'], at('arp', 'pending-pool'), 0, 65536, A.pendingPool),
  };

  // conntrack
  const T = DEFAULTS.conntrack;
  const ctRaw = root.conntrack === undefined ? {} : c.obj(root.conntrack, at('conntrack'),
    ['max', 'per-source', 'max-probe', 'tcp-established-s', 'tcp-transitory-s', 'tcp-closed-s', 'udp-s', 'icmp-s'], 'a mapping');
  const day = 86400 * 7;
  const conntrack = {
    max: c.int(ctRaw.max, at('conntrack', 'max'), 1, 1 << 20, T.max),
    perSource: c.int(ctRaw['per-source'], at('conntrack', 'per-source'), 0, 1 << 20, T.perSource),
    maxProbe: c.int(ctRaw['max-probe'], at('conntrack', 'max-probe'), 8, 1024, T.maxProbe),
    tcpEstablishedMs: c.int(ctRaw['tcp-established-s'], at('conntrack', 'tcp-established-s'), 1, day, T.tcpEstablishedS) * 1000,
    tcpTransitoryMs: c.int(ctRaw['tcp-transitory-s'], at('conntrack', 'tcp-transitory-s'), 1, day, T.tcpTransitoryS) * 1000,
    tcpClosedMs: c.int(ctRaw['tcp-closed-s'], at('conntrack', 'tcp-closed-s'), 1, day, T.tcpClosedS) * 1000,
    udpMs: c.int(ctRaw['udp-s'], at('conntrack', 'udp-s'), 1, day, T.udpS) * 1000,
    icmpMs: c.int(ctRaw['icmp-s'], at('conntrack', 'icmp-s'), 1, day, T.icmpS) * 1000,
  };

  // nat-ports
  let natPorts: { first: number; last: number } = { ...DEFAULTS.natPorts };
  if (root['nat-ports'] !== undefined) {
    const r = typeof root['nat-ports'] === 'string' ? parsePortRange(root['nat-ports']) : undefined;
    if (r === undefined) c.fail(at('nat-ports'), `expected a port range like "49152-65535" (1 to 65535, first <= last)${got(root['nat-ports'])}`);
    natPorts = r;
  }

  // fragments (IPv4 reassembly bounds)
  const F = DEFAULTS.fragments;
  const fRaw = root.fragments === undefined ? {} : c.obj(root.fragments, at('fragments'),
    ['max-datagrams', 'per-source', 'max-fragments', 'timeout-s'], 'a mapping like { max-datagrams: 64, per-source: 16 }');
  const fragments = {
    maxDatagrams: c.int(fRaw['max-datagrams'], at('fragments', 'max-datagrams'), 1, 4096, F.maxDatagrams),
    maxPerSource: c.int(fRaw['per-source'], at('fragments', 'per-source'), 1, 4096, F.perSource),
    maxFragments: c.int(fRaw['max-fragments'], at('fragments', 'max-fragments'), 2, 8192, F.maxFragments),
    timeoutMs: c.int(fRaw['timeout-s'], at('fragments', 'timeout-s'), 1, 120, F.timeoutS) * 1000,
  };

  // policies (rules, forwards, NAT, blocklists, limits, DHCP), cross-checked against every domain
  const infos: DomainInfo[] = domains.map((d, i) => ({
    name: d.name, index: d.index, address: d.address, prefix: d.prefix, network: d.network, mask: d.mask,
    broadcast: d.broadcast, gateway: d.gateway, forward: d.forward, raw: drafts[i].raw, path: at('domains', d.name),
  }));
  const policies = parsePolicies(c, infos, natPorts);

  // log
  const logRaw = root.log === undefined ? {} : c.obj(root.log, at('log'), ['drops-per-s'], 'a mapping like { drops-per-s: 10 }');
  const logDropsPerS = c.int(logRaw['drops-per-s'], at('log', 'drops-per-s'), 0, 10000, DEFAULTS.logDropsPerS);

  return {
    domains: domains.map((d, i) => ({ ...d, policy: policies[i] })),
    logDropsPerS,
    arp,
    conntrack,
    natPorts,
    fragments,
    verifyChecksums: c.bool(root['verify-checksums'], at('verify-checksums'), DEFAULTS.verifyChecksums),
    mirror: parseMirrorConfig(root.mirror, domains.map((d) => d.name), source.file, fmtPath(at('mirror'))),
    ha: root.ha === undefined ? false : c.bool(root.ha, at('ha')),
  };
}

/** Why `next` cannot replace `cur` at run time (live state depends on it), or undefined. */
export function structuralChange(cur: RouterConfig, next: RouterConfig): string | undefined {
  if (cur.domains.length !== next.domains.length || cur.domains.some((d, i) => d.name !== next.domains[i].name)) {
    return `the domains (${cur.domains.map((d) => d.name).join(', ')}) cannot change at run time: they are the router's sessions; restart the gateway`;
  }
  for (let i = 0; i < cur.domains.length; i++) {
    const a = cur.domains[i];
    const b = next.domains[i];
    if (a.address !== b.address || a.prefix !== b.prefix) return `domains.${a.name}.address cannot change at run time (connections and ARP entries depend on it); restart the gateway`;
    if (a.dhcpClient !== b.dhcpClient) return `domains.${a.name}.address cannot change between dhcp and a static address at run time; restart the gateway`;
    if (a.gateway !== b.gateway) return `domains.${a.name}.gateway cannot change at run time; restart the gateway`;
    const a6 = a.ipv6;
    const b6 = b.ipv6;
    if ((a6 === undefined) !== (b6 === undefined) || (a6 !== undefined && b6 !== undefined &&
      (a6.prefix !== b6.prefix || a6.address.join(',') !== b6.address.join(',') || String(a6.gateway) !== String(b6.gateway)))) {
      return `domains.${a.name}.address6 / gateway6 cannot change at run time (neighbors and connections depend on them); restart the gateway`;
    }
    if (a.mac.join(',') !== b.mac.join(',')) return 'mac-prefix cannot change at run time (hosts cache the MACs); restart the gateway';
    const rt = (d: typeof a): string => JSON.stringify([(d.routes ?? []).map((r) => [r.network, r.prefix, r.via]),
      (d.ipv6?.routes ?? []).map((r) => [[...r.network], r.prefix, [...r.via]])]);
    if (rt(a) !== rt(b)) return `domains.${a.name}.routes / routes6 cannot change at run time (the routing tables are built once); restart the gateway`;
  }
  if (cur.ha !== next.ha) return 'ha cannot change at run time (it decides the role the router starts in); restart the gateway';
  if (cur.conntrack.max !== next.conntrack.max) return 'conntrack.max cannot change at run time (the table is allocated once); restart the gateway';
  if (cur.conntrack.perSource !== next.conntrack.perSource || cur.conntrack.maxProbe !== next.conntrack.maxProbe) {
    return 'conntrack.per-source and conntrack.max-probe cannot change at run time (live connections were placed under them); restart the gateway';
  }
  if (cur.arp.pendingPool !== next.arp.pendingPool) return 'arp.pending-pool cannot change at run time; restart the gateway';
  const f = cur.fragments;
  const g = next.fragments;
  if (f.maxDatagrams !== g.maxDatagrams || f.maxPerSource !== g.maxPerSource || f.maxFragments !== g.maxFragments || f.timeoutMs !== g.timeoutMs) {
    return 'fragments cannot change at run time (datagrams in reassembly hold buffers sized by it); restart the gateway';
  }
  if (cur.natPorts.first !== next.natPorts.first || cur.natPorts.last !== next.natPorts.last) {
    return 'nat-ports cannot change at run time (live connections hold ports of it); restart the gateway';
  }
  return undefined;
}
