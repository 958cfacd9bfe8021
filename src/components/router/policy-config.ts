// The policy part of a router domain's config: permit / deny rules per
// protocol, port forwards, NAT, blocklist, rate limits and the DHCP server.
// Parsed and cross-checked here into plain objects; policy.ts compiles them
// into the typed arrays the hot path scans. Every mistake, including rules
// that contradict each other or can never match, is a ConfigFileError naming the
// exact path.
import {
  formatIpv4, formatMac, inPrefix, parseIpv4, parseIpv4Cidr, parseMac, prefixesOverlap, prefixMask,
} from '../../net/addr.ts';
import { fmtPath, got, isObj, parsePath, parsePortRange, type Reader } from '../../config/reader.ts';
import { formatIpv6Cidr, ipv6Equals, parseIpv6Cidr } from '../../net/addr6.ts';

/** A path inside the config document, as keys (src/config/reader.ts). */
export type Path = (string | number)[];

export type RuleAction = 'accept' | 'drop' | 'reject';
export const RULE_ACTIONS: readonly RuleAction[] = ['accept', 'drop', 'reject'];
/** Rule lists of a domain, in the order they are evaluated for a packet of that protocol (ip last). */
export const RULE_PROTOS = ['tcp', 'udp', 'icmp', 'ip'] as const;
export type RuleProto = typeof RULE_PROTOS[number];

export interface PortRange {
  readonly first: number;
  readonly last: number;
}

/** One rule of a domain's tcp / udp / icmp / ip list (or a legacy `forward` entry, as an ip rule). */
export interface PolicyRule {
  readonly proto: RuleProto;
  readonly action: RuleAction;
  /**
   * IPv4 destination prefix: network address (u32) and length; dstPrefix -1:
   * the rule does not apply to IPv4 (its dst is an IPv6 prefix).
   */
  readonly dst: number;
  readonly dstPrefix: number;
  /**
   * IPv6 destination prefix (16 bytes) and length; dstPrefix6 -1: the rule
   * does not apply to IPv6 (its dst is an IPv4 prefix). A rule without dst
   * applies to both families (0.0.0.0/0 and ::/0).
   */
  readonly dst6: Uint8Array;
  readonly dstPrefix6: number;
  /** Destination ports (tcp / udp); null: any port. */
  readonly ports: readonly PortRange[] | null;
  /** The domain the packet must be routed to, or -1: any (drop / reject rules only). */
  readonly to: number;
  readonly toName: string | null;
  /** Index of the domain whose list holds the rule. */
  readonly domain: number;
  /** Where the rule is in the config file, e.g. "components[2].config.domains.lan.tcp[1]". */
  readonly path: string;
  /** A one-line description for status and logs: "tcp 0.0.0.0/0 port 80,443 -> wan accept" (dst "any": no dst, both families). */
  readonly text: string;
}

/** tcp-forward / udp-forward: connections to the router's own address and `port` go to host:hostPort in `to`. */
export interface PortForward {
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
  readonly to: number;
  readonly toName: string;
  readonly host: number;
  readonly hostPort: number;
  readonly path: string;
}

/** Declared on a target domain: connections from these domains are masqueraded to its address. */
export interface NatSpec {
  readonly from: readonly number[];
  readonly fromNames: readonly string[];
  /** NAT ports (ICMP ids) one source address may hold at once per protocol; 0: no limit. */
  readonly portsPerSource: number;
}

export interface BlockEntry {
  readonly network: number;
  readonly prefix: number;
  /** An IPv6 entry's network (16 bytes; `network` is then 0 and `prefix` its length), in `blocklist6`. */
  readonly network6?: Uint8Array;
  /** Wall-clock expiry (ms since the epoch, as Date.now()); undefined: see forMs, or never. */
  readonly untilMs: number | undefined;
  /** Expiry relative to when the config is applied (ms); undefined: see untilMs, or never. */
  readonly forMs: number | undefined;
  readonly path: string;
  readonly text: string;
}

export interface LimitsSpec {
  /** New connections per second per source address (0: no limit), and the bucket size. */
  readonly newPerSource: number;
  readonly newPerSourceBurst: number;
  /** New connections per second from the whole domain (0: no limit), and the bucket size. */
  readonly newTotal: number;
  readonly newTotalBurst: number;
}

export interface DhcpStaticLease {
  readonly mac: Uint8Array;
  readonly ip: number;
  readonly path: string;
}

export interface DhcpSpec {
  /** Dynamic pool, inclusive (u32). */
  readonly first: number;
  readonly last: number;
  readonly leaseMs: number;
  /** How long an offer is held for the client's request. */
  readonly offerMs: number;
  readonly dns: readonly number[];
  readonly static: readonly DhcpStaticLease[];
}

export interface DomainPolicy {
  /** What happens to a new connection no rule matches. */
  readonly defaultAction: RuleAction;
  /** All rules of the domain in config order (tcp, udp, icmp, ip lists, then legacy forward entries). */
  readonly rules: readonly PolicyRule[];
  readonly forwards: readonly PortForward[];
  readonly nat: NatSpec | null;
  readonly blocklist: readonly BlockEntry[];
  /** The blocklist's IPv6 entries. */
  readonly blocklist6: readonly BlockEntry[];
  readonly limits: LimitsSpec;
  readonly dhcp: DhcpSpec | null;
}

/** What the policy parser needs to know of every domain (parsed by config.ts first). */
export interface DomainInfo {
  readonly name: string;
  readonly index: number;
  readonly address: number;
  readonly prefix: number;
  readonly network: number;
  readonly mask: number;
  readonly broadcast: number;
  readonly gateway: number;
  /** Legacy `forward: [{to, nat}]` entries. */
  readonly forward: readonly { to: number; toName: string; nat: boolean }[];
  /** The domain's raw config mapping. */
  readonly raw: Record<string, unknown>;
  /** Path of the domain's mapping. */
  readonly path: Path;
}

/** Keys of a domain mapping that belong to the policy. */
export const POLICY_KEYS = [
  'default', 'tcp', 'udp', 'icmp', 'ip', 'tcp-forward', 'udp-forward', 'nat', 'blocklist', 'limits', 'dhcp-server',
] as const;

export const POLICY_DEFAULTS = {
  defaultAction: 'drop' as RuleAction,
  /** NAT ports per source address: a quarter of nat-ports, at most 4096. */
  portsPerSource: (rangeSize: number): number => Math.max(1, Math.min(4096, Math.floor(rangeSize / 4))),
  dhcp: { leaseS: 3600, offerS: 10 },
};

export const DHCP_SERVER_PORT = 67;

function cidrText(net: number, prefix: number): string {
  return `${formatIpv4(net)}/${prefix}`;
}

export function portsText(ports: readonly PortRange[] | null): string {
  if (ports === null) return 'any';
  return ports.map((r) => (r.first === r.last ? String(r.first) : `${r.first}-${r.last}`)).join(',');
}

function ruleText(proto: RuleProto, dst: number, prefix: number, ports: readonly PortRange[] | null, toName: string | null, action: RuleAction,
  dst6: Uint8Array = ANY6, prefix6 = 0): string {
  const p = proto === 'tcp' || proto === 'udp' ? ` port ${portsText(ports)}` : '';
  const d = prefix < 0 ? formatIpv6Cidr({ addr: dst6, prefix: prefix6 }) : prefix6 < 0 ? cidrText(dst, prefix) : 'any';
  return `${proto} ${d}${p} -> ${toName ?? 'any'} ${action}`;
}

const ANY6 = new Uint8Array(16);

/** "2001:db8::/32" or an address (= /128): a network address with the host bits zero. */
function parsePrefix6(c: Reader, v: string, path: Path): { net6: Uint8Array; prefix6: number } {
  const cidr = parseIpv6Cidr(v);
  if (cidr === undefined) c.fail(path, `expected an IPv6 prefix like 2001:db8::/32 or an address like 2001:db8::7${got(v)}`);
  const raw = parseIpv6Cidr(v.includes('/') ? `${v.slice(0, v.indexOf('/'))}/128` : v);
  if (raw !== undefined && !ipv6Equals(raw.addr, 0, cidr.addr, 0)) {
    c.fail(path, `expected a network address with the host bits zero: did you mean ${formatIpv6Cidr(cidr)}?${got(v)}`);
  }
  return { net6: cidr.addr, prefix6: cidr.prefix };
}

/** "198.18.0.0/24" or "198.18.0.7" (= /32): a network address with host bits zero. */
function parsePrefix(c: Reader, v: unknown, path: Path): { net: number; prefix: number } {
  if (typeof v !== 'string') c.fail(path, `expected an IPv4 prefix like 198.18.0.0/24 or an address like 198.18.0.7${got(v)}`);
  const cidr = v.includes('/') ? parseIpv4Cidr(v) : (() => {
    const a = parseIpv4(v);
    return a === undefined ? undefined : { address: a, prefix: 32 };
  })();
  if (cidr === undefined) c.fail(path, `expected an IPv4 prefix like 198.18.0.0/24 or an address like 198.18.0.7${got(v)}`);
  const net = (cidr.address & prefixMask(cidr.prefix)) >>> 0;
  if (net !== cidr.address) c.fail(path, `expected a network address with the host bits zero: did you mean ${cidrText(net, cidr.prefix)}?${got(v)}`);
  return { net, prefix: cidr.prefix };
}

function parsePorts(c: Reader, v: unknown, path: Path): PortRange[] | null {
  const what = 'ports: any, a port (80), a range ("8000-8099") or a list of them ([80, 443, "8000-8099"])';
  if (v === 'any') return null;
  if (v === undefined) c.fail(path, `expected ${what}${got(v)}`);
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) c.fail(path, `expected ${what}${got(v)}`);
  const out: PortRange[] = [];
  items.forEach((item: unknown, i: number) => {
    const p = Array.isArray(v) ? [...path, i] : path;
    const r = parsePortRange(item);
    if (r === undefined) c.fail(p, `expected a port 1 to 65535 or a range "A-B" with A <= B${got(item)}`);
    for (const o of out) {
      if (r.first <= o.last && o.first <= r.last) c.fail(p, `expected port ranges that do not overlap (${portsText([r])} overlaps ${portsText([o])})`);
    }
    out.push(r);
  });
  return out.sort((a, b) => a.first - b.first);
}

function domainIndex(c: Reader, v: unknown, path: Path, all: readonly DomainInfo[], self: DomainInfo, what: string): number {
  const i = typeof v === 'string' ? all.findIndex((d) => d.name === v) : -1;
  if (i < 0 || i === self.index) {
    c.fail(path, `expected ${what}: the name of another domain (one of: ${all.filter((d) => d !== self).map((d) => d.name).join(', ') || 'none'})${got(v)}`);
  }
  return i;
}

/** Can a packet to an address in dst/prefix be routed to domain `to`? */
function reachable(dst: number, prefix: number, to: DomainInfo, all: readonly DomainInfo[]): boolean {
  if (prefixesOverlap(dst, prefix, to.network, to.prefix)) return true;
  if (to.gateway < 0) return false;
  // The default route: everything outside every domain's prefix.
  return !all.some((d) => d.prefix <= prefix && inPrefix(dst, d.network, d.mask));
}

function routedText(to: DomainInfo): string {
  return to.gateway >= 0 ? `addresses outside the other domains' prefixes and ${cidrText(to.network, to.prefix)}` : cidrText(to.network, to.prefix);
}

function parseRules(c: Reader, self: DomainInfo, all: readonly DomainInfo[], proto: RuleProto, raw: unknown, out: PolicyRule[]): void {
  const lp = [...self.path, proto];
  const example = proto === 'tcp' || proto === 'udp' ? `[{ dst: 0.0.0.0/0, ports: [80, 443], to: wan }]` : `[{ dst: 0.0.0.0/0, to: wan }]`;
  c.list(raw, lp, example).forEach((r: unknown, i: number) => {
    const rp = [...lp, i];
    const known = proto === 'tcp' || proto === 'udp' ? ['dst', 'ports', 'to', 'action'] : ['dst', 'to', 'action'];
    const rule = c.obj(r, rp, known, `a rule like ${example.slice(1, -1)}`);
    const action = rule.action === undefined ? 'accept' : rule.action;
    if (typeof action !== 'string' || !(RULE_ACTIONS as readonly string[]).includes(action)) {
      c.fail([...rp, 'action'], `expected one of ${RULE_ACTIONS.join(', ')}${got(rule.action)}`);
    }
    // No dst: both families; an IPv6 dst: IPv6 only; an IPv4 dst: IPv4 only.
    const v6 = typeof rule.dst === 'string' && rule.dst.includes(':');
    const { net, prefix } = rule.dst === undefined ? { net: 0, prefix: 0 } : v6 ? { net: 0, prefix: -1 } : parsePrefix(c, rule.dst, [...rp, 'dst']);
    const { net6, prefix6 } = rule.dst === undefined ? { net6: ANY6, prefix6: 0 } : v6 ? parsePrefix6(c, rule.dst as string, [...rp, 'dst']) : { net6: ANY6, prefix6: -1 };
    const ports = proto === 'tcp' || proto === 'udp' ? parsePorts(c, rule.ports, [...rp, 'ports']) : null;
    let to = -1;
    let toName: string | null = null;
    if (rule.to !== undefined || action === 'accept') {
      to = domainIndex(c, rule.to, [...rp, 'to'], all, self, action === 'accept' ? 'the domain an accepted connection goes to' : 'the domain the rule is limited to');
      toName = all[to].name;
      if (prefix >= 0 && !reachable(net, prefix, all[to], all)) {
        c.fail([...rp, 'dst'], `expected a destination that can be routed to domain "${toName}" (it gets ${routedText(all[to])}); ${cidrText(net, prefix)} never is, so the rule could never match`);
      }
    } else if (prefix >= 0 && prefix >= self.prefix && inPrefix(net, self.network, self.mask)) {
      c.fail([...rp, 'dst'], `expected a destination outside the domain's own prefix ${cidrText(self.network, self.prefix)}: traffic inside a domain never crosses the router, so the rule could never match`);
    }
    out.push({
      proto, action: action as RuleAction, dst: net, dstPrefix: prefix, dst6: net6, dstPrefix6: prefix6, ports, to, toName, domain: self.index,
      path: fmtPath(rp), text: ruleText(proto, net, prefix, ports, toName, action as RuleAction, net6, prefix6),
    });
  });
}

/**
 * Rules of one protocol list that match the same packets with different
 * outcomes, and exact duplicates, are errors: the evaluation order (longest
 * prefix, then narrowest port range) could not tell them apart, or one is dead.
 */
function checkConflicts(c: Reader, rules: readonly PolicyRule[]): void {
  const ranges = (r: PolicyRule): readonly PortRange[] => r.ports ?? [{ first: 0, last: 65535 }];
  for (let j = 0; j < rules.length; j++) {
    const b = rules[j];
    for (let i = 0; i < j; i++) {
      const a = rules[i];
      // The same destination in a family both rules apply to.
      const same4 = a.dstPrefix >= 0 && a.dst === b.dst && a.dstPrefix === b.dstPrefix;
      const same6 = a.dstPrefix6 >= 0 && a.dstPrefix6 === b.dstPrefix6 && ipv6Equals(a.dst6, 0, b.dst6, 0);
      if (a.proto !== b.proto || !(same4 || same6)) continue;
      if (a.to >= 0 && b.to >= 0 && a.to !== b.to) continue; // disjoint: a packet is routed to one domain
      const same = a.action === b.action && a.to === b.to;
      for (const ra of ranges(a)) {
        for (const rb of ranges(b)) {
          if (ra.last < rb.first || rb.last < ra.first) continue;
          const equal = ra.first === rb.first && ra.last === rb.last;
          const nested = !equal && ((ra.first <= rb.first && rb.last <= ra.last) || (rb.first <= ra.first && ra.last <= rb.last));
          if (nested) continue; // the narrower range wins
          if (same && !equal) continue; // partial overlap, same outcome: harmless
          const where = `${b.proto} to ${same4 ? cidrText(b.dst, b.dstPrefix) : formatIpv6Cidr({ addr: b.dst6, prefix: b.dstPrefix6 })}${b.ports === null && a.ports === null ? '' : ` port ${portsText([{ first: Math.max(ra.first, rb.first), last: Math.min(ra.last, rb.last) }])}`}`;
          if (same) c.fail(parsePath(b.path), `expected each rule once; this one duplicates ${a.path} (${where})`);
          c.fail(parsePath(b.path), `expected rules that do not contradict each other: this one and ${a.path} both match ${where} with the same prefix length and ${equal ? 'the same' : 'partly overlapping'} ports, but ${b.action}${b.toName ? ` to ${b.toName}` : ''} vs ${a.action}${a.toName ? ` to ${a.toName}` : ''}; make one prefix or port range narrower, or remove one`);
        }
      }
    }
  }
}

function parseForwards(c: Reader, self: DomainInfo, all: readonly DomainInfo[], proto: 'tcp' | 'udp', raw: unknown,
  natPorts: PortRange, out: PortForward[]): void {
  const lp = [...self.path, `${proto}-forward`];
  const example = '[{ port: 80, to: dmz, host: 198.18.128.2, host-port: 8080 }]';
  c.list(raw, lp, example).forEach((r: unknown, i: number) => {
    const rp = [...lp, i];
    const f = c.obj(r, rp, ['port', 'to', 'host', 'host-port'], `a port forward like ${example.slice(1, -1)}`);
    if (f.port === undefined) c.fail([...rp, 'port'], `expected the port on the router's address ${formatIpv4(self.address)}${got(f.port)}`);
    const port = c.int(f.port, [...rp, 'port'], 1, 65535, 0);
    if (port >= natPorts.first && port <= natPorts.last) {
      c.fail([...rp, 'port'], `expected a port outside nat-ports (${natPorts.first}-${natPorts.last}), which masquerading hands out on the router's addresses${got(port)}`);
    }
    if (proto === 'udp' && port === DHCP_SERVER_PORT && self.raw['dhcp-server'] !== undefined) {
      c.fail([...rp, 'port'], `expected a port other than 67: this domain runs the DHCP server there`);
    }
    const dup = out.find((o) => o.proto === proto && o.port === port);
    if (dup !== undefined) c.fail([...rp, 'port'], `expected each ${proto} port once; ${port} is forwarded by ${dup.path} already`);
    const to = domainIndex(c, f.to, [...rp, 'to'], all, self, 'the domain of the host');
    const td = all[to];
    const host = typeof f.host === 'string' ? parseIpv4(f.host) : undefined;
    if (host === undefined || !inPrefix(host, td.network, td.mask) || host === td.network || host === td.broadcast || host === td.address) {
      c.fail([...rp, 'host'], `expected a host address in domain "${td.name}" (${cidrText(td.network, td.prefix)}, not the router's ${formatIpv4(td.address)})${got(f.host)}`);
    }
    const hostPort = c.int(f['host-port'], [...rp, 'host-port'], 1, 65535, port);
    out.push({ proto, port, to, toName: td.name, host, hostPort, path: fmtPath(rp) });
  });
}

function parseBlocklist(c: Reader, self: DomainInfo, raw: unknown): BlockEntry[] {
  const lp = [...self.path, 'blocklist'];
  const out: BlockEntry[] = [];
  c.list(raw, lp, '[203.0.113.7, 198.51.100.0/24, 2001:db8:bad::/48, { prefix: 192.0.2.0/24, for-s: 600 }]').forEach((e: unknown, i: number) => {
    const ep = [...lp, i];
    let prefixRaw: unknown = e;
    let untilMs: number | undefined;
    let forMs: number | undefined;
    let pp = ep;
    if (isObj(e)) {
      const r = c.obj(e, ep, ['prefix', 'for-s', 'until'], 'an address, a prefix or { prefix, for-s | until }');
      prefixRaw = r.prefix;
      pp = [...ep, 'prefix'];
      if (r['for-s'] !== undefined && r.until !== undefined) c.fail([...ep, 'until'], 'expected either for-s or until, not both');
      if (r['for-s'] !== undefined) forMs = c.int(r['for-s'], [...ep, 'for-s'], 1, 86400 * 365, 0) * 1000;
      if (r.until !== undefined) {
        const t = typeof r.until === 'string' ? Date.parse(r.until) : r.until instanceof Date ? r.until.getTime() : NaN;
        if (!Number.isFinite(t)) c.fail([...ep, 'until'], `expected a date and time like "2030-01-31T12:00:00Z"${got(r.until)}`);
        untilMs = t;
      }
    }
    if (typeof prefixRaw === 'string' && prefixRaw.includes(':')) {
      const { net6, prefix6 } = parsePrefix6(c, prefixRaw, pp);
      const text = formatIpv6Cidr({ addr: net6, prefix: prefix6 });
      const dup6 = out.find((o) => o.network6 !== undefined && o.prefix === prefix6 && ipv6Equals(o.network6, 0, net6, 0));
      if (dup6 !== undefined) c.fail(pp, `expected each prefix once; ${text} is listed at ${dup6.path} already`);
      out.push({ network: 0, prefix: prefix6, network6: net6, untilMs, forMs, path: fmtPath(ep), text });
      return;
    }
    const { net, prefix } = parsePrefix(c, prefixRaw, pp);
    const dup = out.find((o) => o.network6 === undefined && o.network === net && o.prefix === prefix);
    if (dup !== undefined) c.fail(pp, `expected each prefix once; ${cidrText(net, prefix)} is listed at ${dup.path} already`);
    out.push({ network: net, prefix, untilMs, forMs, path: fmtPath(ep), text: cidrText(net, prefix) });
  });
  return out;
}

function parseLimits(c: Reader, self: DomainInfo, raw: unknown): LimitsSpec {
  const lp = [...self.path, 'limits'];
  const l = c.obj(raw, lp, ['new-per-source', 'new-per-source-burst', 'new-total', 'new-total-burst'], 'a mapping like { new-per-source: 50 }');
  const perSource = c.int(l['new-per-source'], [...lp, 'new-per-source'], 0, 1_000_000, 0);
  const total = c.int(l['new-total'], [...lp, 'new-total'], 0, 10_000_000, 0);
  const perSourceBurst = c.int(l['new-per-source-burst'], [...lp, 'new-per-source-burst'], 1, 2_000_000, Math.max(1, perSource * 2));
  const totalBurst = c.int(l['new-total-burst'], [...lp, 'new-total-burst'], 1, 20_000_000, Math.max(1, total * 2));
  if (l['new-per-source-burst'] !== undefined && perSource === 0) c.fail([...lp, 'new-per-source-burst'], 'expected new-per-source too (a burst without a rate limits nothing)');
  if (l['new-total-burst'] !== undefined && total === 0) c.fail([...lp, 'new-total-burst'], 'expected new-total too (a burst without a rate limits nothing)');
  return { newPerSource: perSource, newPerSourceBurst: perSourceBurst, newTotal: total, newTotalBurst: totalBurst };
}

function parseDhcp(c: Reader, self: DomainInfo, raw: unknown): DhcpSpec {
  const dp = [...self.path, 'dhcp-server'];
  const d = c.obj(raw, dp, ['range', 'lease-s', 'offer-s', 'dns', 'static'], 'a mapping like { range: 198.18.0.100-198.18.0.199 }');
  const inside = (ip: number): boolean => inPrefix(ip, self.network, self.mask) && ip !== self.network && ip !== self.broadcast && ip !== self.address;
  const m = typeof d.range === 'string' ? /^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(d.range) : null;
  const first = m === null ? undefined : parseIpv4(m[1]);
  const last = m === null ? undefined : parseIpv4(m[2]);
  if (first === undefined || last === undefined || first > last || !inside(first) || !inside(last) ||
    (self.address >= first && self.address <= last)) {
    c.fail([...dp, 'range'], `expected "FIRST-LAST" host addresses of ${cidrText(self.network, self.prefix)}, FIRST <= LAST, not including the router's ${formatIpv4(self.address)}${got(d.range)}`);
  }
  if (last - first >= 65536) c.fail([...dp, 'range'], `expected at most 65536 addresses${got(d.range)}`);
  const leaseMs = c.int(d['lease-s'], [...dp, 'lease-s'], 60, 86400 * 365, POLICY_DEFAULTS.dhcp.leaseS) * 1000;
  const offerMs = c.int(d['offer-s'], [...dp, 'offer-s'], 1, 600, POLICY_DEFAULTS.dhcp.offerS) * 1000;
  const dns: number[] = [];
  if (d.dns !== undefined) {
    c.list(d.dns, [...dp, 'dns'], '[198.18.0.1]').forEach((v: unknown, i: number) => {
      const a = typeof v === 'string' ? parseIpv4(v) : undefined;
      if (a === undefined) c.fail([...dp, 'dns', i], `expected an IPv4 address${got(v)}`);
      dns.push(a);
    });
    if (dns.length > 8) c.fail([...dp, 'dns'], 'expected at most 8 DNS servers');
  }
  const statics: DhcpStaticLease[] = [];
  if (d.static !== undefined) {
    c.list(d.static, [...dp, 'static'], '[{ mac: "02:00:00:00:00:0a", ip: 198.18.0.50 }]').forEach((v: unknown, i: number) => {
      const sp = [...dp, 'static', i];
      const s = c.obj(v, sp, ['mac', 'ip'], 'a static lease like { mac: "02:00:00:00:00:0a", ip: 198.18.0.50 }');
      const mac = typeof s.mac === 'string' ? parseMac(s.mac) : undefined;
      if (mac === undefined || (mac[0] & 1) !== 0) c.fail([...sp, 'mac'], `expected a unicast MAC address like "02:00:00:00:00:0a"${got(s.mac)}`);
      const ip = typeof s.ip === 'string' ? parseIpv4(s.ip) : undefined;
      if (ip === undefined || !inside(ip)) c.fail([...sp, 'ip'], `expected a host address of ${cidrText(self.network, self.prefix)} other than the router's${got(s.ip)}`);
      const dupMac = statics.find((o) => formatMac(o.mac) === formatMac(mac));
      if (dupMac !== undefined) c.fail([...sp, 'mac'], `expected each MAC once; ${formatMac(mac)} has a lease at ${dupMac.path} already`);
      const dupIp = statics.find((o) => o.ip === ip);
      if (dupIp !== undefined) c.fail([...sp, 'ip'], `expected each address once; ${formatIpv4(ip)} is leased at ${dupIp.path} already`);
      statics.push({ mac, ip, path: fmtPath(sp) });
    });
  }
  return { first, last, leaseMs, offerMs, dns, static: statics };
}

/**
 * The policies of all domains, in domain order. `natPorts` is the router's
 * masquerading range (forwarded ports must lie outside it).
 */
export function parsePolicies(c: Reader, domains: readonly DomainInfo[], natPorts: PortRange): DomainPolicy[] {
  const rulesOf: PolicyRule[][] = [];
  const natFrom: { from: Set<number>; explicit: Set<number>; portsPerSource: number }[] = [];
  const out: { defaultAction: RuleAction; forwards: PortForward[]; blocklist: BlockEntry[]; blocklist6: BlockEntry[]; limits: LimitsSpec; dhcp: DhcpSpec | null }[] = [];
  const rangeSize = natPorts.last - natPorts.first + 1;

  for (const d of domains) {
    const raw = d.raw;
    let defaultAction: RuleAction = POLICY_DEFAULTS.defaultAction;
    if (raw.default !== undefined) {
      if (typeof raw.default !== 'string' || !(RULE_ACTIONS as readonly string[]).includes(raw.default)) {
        c.fail([...d.path, 'default'], `expected one of ${RULE_ACTIONS.join(', ')}${got(raw.default)}`);
      }
      defaultAction = raw.default as RuleAction;
    }
    const rules: PolicyRule[] = [];
    for (const proto of RULE_PROTOS) if (raw[proto] !== undefined) parseRules(c, d, domains, proto, raw[proto], rules);
    // Legacy `forward` entries are ip rules to their target.
    d.forward.forEach((f, i) => {
      rules.push({
        proto: 'ip', action: 'accept', dst: 0, dstPrefix: 0, dst6: ANY6, dstPrefix6: 0, ports: null, to: f.to, toName: f.toName, domain: d.index,
        path: fmtPath([...d.path, 'forward', i]), text: ruleText('ip', 0, 0, null, f.toName, 'accept'),
      });
    });
    checkConflicts(c, rules);
    rulesOf.push(rules);

    const forwards: PortForward[] = [];
    if (raw['tcp-forward'] !== undefined) parseForwards(c, d, domains, 'tcp', raw['tcp-forward'], natPorts, forwards);
    if (raw['udp-forward'] !== undefined) parseForwards(c, d, domains, 'udp', raw['udp-forward'], natPorts, forwards);

    const nat = { from: new Set<number>(), explicit: new Set<number>(), portsPerSource: POLICY_DEFAULTS.portsPerSource(rangeSize) };
    if (raw.nat !== undefined) {
      const np = [...d.path, 'nat'];
      const n = c.obj(raw.nat, np, ['from', 'ports-per-source'], 'a mapping like { from: [lan], ports-per-source: 1024 }');
      c.list(n.from, [...np, 'from'], '[lan, dmz]').forEach((v: unknown, i: number) => {
        const idx = domainIndex(c, v, [...np, 'from', i], domains, d, 'a domain whose connections into this one are masqueraded');
        if (nat.from.has(idx)) c.fail([...np, 'from', i], `expected each domain once; "${domains[idx].name}" is listed twice`);
        nat.from.add(idx);
        nat.explicit.add(idx);
      });
      nat.portsPerSource = c.int(n['ports-per-source'], [...np, 'ports-per-source'], 0, 65535, nat.portsPerSource);
    }
    natFrom.push(nat);

    const blocks = raw.blocklist === undefined ? [] : parseBlocklist(c, d, raw.blocklist);
    out.push({
      defaultAction,
      forwards,
      blocklist: blocks.filter((e) => e.network6 === undefined),
      blocklist6: blocks.filter((e) => e.network6 !== undefined),
      limits: raw.limits === undefined ? { newPerSource: 0, newPerSourceBurst: 1, newTotal: 0, newTotalBurst: 1 } : parseLimits(c, d, raw.limits),
      dhcp: raw['dhcp-server'] === undefined ? null : parseDhcp(c, d, raw['dhcp-server']),
    });
  }

  // Legacy forward entries with nat: true masquerade into their target; nat: false
  // to a target that declares NAT for this domain is a contradiction.
  for (const d of domains) {
    d.forward.forEach((f, i) => {
      const t = natFrom[f.to];
      if (f.nat) t.from.add(d.index);
      else if (t.explicit.has(d.index)) {
        c.fail([...d.path, 'forward', i, 'nat'], `expected true: domain "${f.toName}" masquerades connections from "${d.name}" (its nat.from lists it)`);
      }
    });
  }

  return domains.map((d, i) => ({
    ...out[i],
    rules: rulesOf[i],
    nat: natFrom[i].from.size === 0 ? null : {
      from: [...natFrom[i].from].sort((a, b) => a - b),
      fromNames: [...natFrom[i].from].sort((a, b) => a - b).map((x) => domains[x].name),
      portsPerSource: natFrom[i].portsPerSource,
    },
  }));
}
