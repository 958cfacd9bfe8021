// The router's policy translated into one nftables ruleset, so the Linux
// reference gateway filters exactly as microgate does. Input is the parsed
// router config (the same object microgate's router compiles), so both sides
// share one source and one validation.
//
// Order, matching microgate's (src/components/router/policy.ts):
//   prerouting (raw):   blocklists, per ingress interface, before conntrack
//   prerouting (dstnat): tcp-forward / udp-forward as DNAT to the router's own address
//   forward:            established/related; invalid; then per ingress domain a chain:
//                       rate limits; new TCP that is no bare SYN; non-echo ICMP and other
//                       protocols; connections per source (conntrack.per-source); NAT
//                       quotas; port-forward accepts; the rules in microgate's
//                       evaluation order (protocol rules by prefix and port range, then ip
//                       rules); the default action
//   input:              echo requests (IPv4 and IPv6) to the router's address in the ingress
//                       domain, and to its other addresses where the policy permits ICMP into
//                       that domain; Neighbor Discovery;
//                       DHCP to the domain's server; the rest dropped
//   postrouting (srcnat): masquerade from each domain in a target's nat.from
// Counted rules carry comments; linuxGatewayCounters() sums them by comment.
import { formatIpv4 } from '../net/addr.ts';
import { formatIpv6, formatIpv6Cidr } from '../net/addr6.ts';
import { IPPROTO_ICMP } from '../net/ipv4.ts';
import { NH_ICMPV6 } from '../net/ipv6.ts';
import type { RouterConfig } from '../components/router/config.ts';
import { portsText, type PolicyRule } from '../components/router/policy-config.ts';
import { Policy, POLICY_ACCEPT, POLICY_ACCEPT_NAT } from '../components/router/policy.ts';

/** Timeout of per-source rate-limit entries (sources idle longer are forgotten). */
const RATE_SET_TIMEOUT_S = 60;
/** An IPv6 source's /64: the key of per-source limits for IPv6, as microgate counts them. */
const MASK64 = 'ffff:ffff:ffff:ffff::';

function q(s: string): string {
  return JSON.stringify(s);
}

function cidr(net: number, prefix: number): string {
  return prefix === 32 ? formatIpv4(net) : `${formatIpv4(net)}/${prefix}`;
}

type Family = 4 | 6;

/** The families a rule applies to (policy-config.ts: a dst of one family, or none: both). */
function families(r: PolicyRule): Family[] {
  return [...(r.dstPrefix >= 0 ? [4 as const] : []), ...(r.dstPrefix6 >= 0 ? [6 as const] : [])];
}

/**
 * The destination match of a rule: its prefix (`ip daddr` / `ip6 daddr`), a
 * family match for a /0 of one family, nothing for a rule without dst (inet: both).
 */
function daddr(r: PolicyRule): string {
  const f = families(r);
  if (f.length === 2) return '';
  if (f[0] === 4) return r.dstPrefix === 0 ? ' meta nfproto ipv4' : ` ip daddr ${cidr(r.dst, r.dstPrefix)}`;
  return r.dstPrefix6 === 0 ? ' meta nfproto ipv6' : ` ip6 daddr ${formatIpv6Cidr({ addr: r.dst6, prefix: r.dstPrefix6 })}`;
}

function dports(proto: 'tcp' | 'udp', r: PolicyRule): string {
  if (r.ports === null) return '';
  const items = portsText(r.ports).split(',');
  return ` ${proto} dport ${items.length === 1 ? items[0] : `{ ${items.join(', ')} }`}`;
}

/** A reject per family, as microgate answers: TCP a reset, UDP port unreachable, an echo request administratively prohibited. */
const REJECT = {
  4: {
    tcp: 'counter reject with tcp reset comment "rejected"',
    udp: 'counter reject with icmp type port-unreachable comment "rejected"',
    icmp: 'counter reject with icmp type admin-prohibited comment "rejected"',
  },
  6: {
    tcp: 'counter reject with tcp reset comment "rejected"',
    udp: 'counter reject with icmpv6 type port-unreachable comment "rejected"',
    icmp: 'counter reject with icmpv6 type admin-prohibited comment "rejected"',
  },
} as const;

/** The echo request match of a family. */
const ECHO = { 4: 'icmp type echo-request', 6: 'icmpv6 type echo-request' } as const;
/** The protocols the router forwards, per family (an `ip` rule's match). */
const FORWARDED = { 4: '{ tcp, udp, icmp }', 6: '{ tcp, udp, ipv6-icmp }', both: '{ tcp, udp, icmp, ipv6-icmp }' } as const;
/** The reject lines of one protocol class for the given families (TCP's reset serves both). */
function rejectLines(p: 'tcp' | 'udp' | 'icmp', f: Family[], match: (fam: Family) => string): string[] {
  if (p === 'tcp') return [`${match(f[0])} ${REJECT[4].tcp}`];
  return f.map((fam) => `${match(fam)} ${REJECT[fam][p]}`);
}

/** Lines of one rule in its ingress domain's chain. */
function ruleLines(r: PolicyRule, ifOf: (i: number) => string): string[] {
  const oif = r.to >= 0 ? ` oifname ${q(ifOf(r.to))}` : '';
  const dst = daddr(r);
  const fams = families(r);
  const tag = q(r.path.replace(/^(.*\.)?domains\./, ''));
  const acc = `accept comment ${tag}`;
  const drop = 'counter drop comment "policy-denied"';
  if (r.proto === 'tcp' || r.proto === 'udp') {
    const m = `meta l4proto ${r.proto}${dst}${dports(r.proto, r)}${oif}`;
    if (r.action === 'reject') return r.proto === 'tcp' ? [`${m} ${REJECT[4].tcp}`] : fams.map((f) => `${m} ${REJECT[f].udp}`);
    return [`${m} ${r.action === 'accept' ? acc : drop}`];
  }
  if (r.proto === 'icmp') {
    // Per family: the echo request type differs (a both-families rule: one line each, the dst adds nothing).
    return fams.map((f) => `${ECHO[f]}${dst}${oif} ${r.action === 'accept' ? acc : r.action === 'drop' ? drop : REJECT[f].icmp}`);
  }
  if (r.action !== 'reject') return [`meta l4proto ${FORWARDED[fams.length === 2 ? 'both' : fams[0]]}${dst}${oif} ${r.action === 'accept' ? acc : drop}`];
  return [
    ...rejectLines('tcp', fams, () => `meta l4proto tcp${dst}${oif}`),
    ...rejectLines('udp', fams, () => `meta l4proto udp${dst}${oif}`),
    ...fams.map((f) => `meta l4proto ${f === 4 ? 'icmp' : 'ipv6-icmp'}${dst}${oif} ${REJECT[f].icmp}`),
  ];
}

/**
 * Rules of one domain in microgate's evaluation order, one entry per port
 * range. Policy sorts each family's list by that family's prefix length; a
 * rule of one family never meets a packet of the other, and a rule without dst
 * is a /0 in both, so one list sorted by the rule's own family's prefix
 * restricted to either family is exactly that family's order.
 */
function orderedRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const plen = (r: PolicyRule): number => (r.dstPrefix >= 0 ? r.dstPrefix : r.dstPrefix6);
  const split: { r: PolicyRule; width: number; order: number }[] = [];
  rules.forEach((r, order) => {
    if (r.proto === 'ip') return;
    for (const p of r.ports ?? [{ first: 0, last: 65535 }]) {
      split.push({ r: r.ports === null ? r : { ...r, ports: [p] }, width: p.last - p.first, order });
    }
  });
  // Each protocol's list in Policy's order (the lists match disjoint packets, so their relative order is free).
  const po = { tcp: 0, udp: 1, icmp: 2, ip: 3 };
  split.sort((a, b) => (po[a.r.proto] - po[b.r.proto]) || (plen(b.r) - plen(a.r)) || (a.width - b.width) || (a.order - b.order));
  const ip = rules.map((r, order) => ({ r, order })).filter((x) => x.r.proto === 'ip')
    .sort((a, b) => (plen(b.r) - plen(a.r)) || (a.order - b.order));
  return [...split.map((x) => x.r), ...ip.map((x) => x.r)];
}

export interface NftPolicyOptions {
  /** nftables table (family inet). */
  table: string;
  /** Gateway interface of each domain, by domain name. */
  ifnames: Record<string, string>;
  /** First line comment. */
  title?: string;
  /** Wall clock for blocklist `until` entries (default Date.now()). */
  now?: number;
}

/** The ruleset for `nft -f -`: replaces the table atomically (existing conntrack entries stay). */
export function nftRuleset(cfg: RouterConfig, opts: NftPolicyOptions): string {
  const doms = cfg.domains;
  for (const d of doms) {
    if (opts.ifnames[d.name] === undefined) throw new Error(`domain "${d.name}" has no interface on the Linux gateway (have: ${Object.keys(opts.ifnames).join(', ')})`);
  }
  const ifOf = (i: number): string => opts.ifnames[doms[i].name];
  const policy = new Policy(cfg, 0, opts.now ?? Date.now());
  const now = opts.now ?? Date.now();
  const t = opts.table;
  const L: string[] = [];
  const sets: string[] = [];
  const pre: string[] = [];
  const dnat: string[] = [];
  const input: string[] = [];
  const chains: string[] = [];
  const jumps: string[] = [];
  const post: string[] = [];

  for (const d of doms) {
    const IF = q(opts.ifnames[d.name]);
    const p = d.policy;
    // Blocklist.
    if (p.blocklist.length > 0) {
      const els = p.blocklist.flatMap((e) => {
        const ms = e.forMs !== undefined ? e.forMs : e.untilMs !== undefined ? e.untilMs - now : undefined;
        if (ms !== undefined && ms <= 0) return [];
        return [`${cidr(e.network, e.prefix)}${ms === undefined ? '' : ` timeout ${Math.max(1, Math.ceil(ms / 1000))}s`}`];
      });
      sets.push(`\tset block_${d.name} {\n\t\ttype ipv4_addr\n\t\tflags interval, timeout\n${els.length > 0 ? `\t\telements = { ${els.join(', ')} }\n` : ''}\t}`);
      pre.push(`\t\tiifname ${IF} ip saddr @block_${d.name} counter drop comment "blocklisted"`);
    }
    if (p.blocklist6.length > 0) {
      const els = p.blocklist6.flatMap((e) => {
        const ms = e.forMs !== undefined ? e.forMs : e.untilMs !== undefined ? e.untilMs - now : undefined;
        if (ms !== undefined && ms <= 0) return [];
        return [`${formatIpv6Cidr({ addr: e.network6 as Uint8Array, prefix: e.prefix })}${ms === undefined ? '' : ` timeout ${Math.max(1, Math.ceil(ms / 1000))}s`}`];
      });
      sets.push(`\tset block6_${d.name} {\n\t\ttype ipv6_addr\n\t\tflags interval, timeout\n${els.length > 0 ? `\t\telements = { ${els.join(', ')} }\n` : ''}\t}`);
      pre.push(`\t\tiifname ${IF} ip6 saddr @block6_${d.name} counter drop comment "blocklisted"`);
    }
    const v6 = d.ipv6;
    if (v6 === undefined) {
      // microgate takes IPv6 only on a domain with address6.
      pre.push(`\t\tiifname ${IF} meta nfproto ipv6 counter drop comment "ip6-off"`);
    } else if (v6.gateway === null) {
      // A domain without the IPv6 default route only speaks for its prefix and its link (microgate's ip6-spoofed-source;
      // the kernel's rp_filter is IPv4 only). The unspecified source is DAD's.
      pre.push(`\t\tiifname ${IF} ip6 saddr != { ::, fe80::/10, ${formatIpv6Cidr({ addr: v6.network, prefix: v6.prefix })} } counter drop comment "ip6-spoofed-source"`);
    }
    // Port forwards.
    for (const f of p.forwards) {
      dnat.push(`\t\tiifname ${IF} ip daddr ${formatIpv4(d.address)} ${f.proto} dport ${f.port} dnat ip to ${formatIpv4(f.host)}:${f.hostPort}`);
    }
    // Input: echo to own address; to other router addresses where ICMP into that domain is permitted; DHCP.
    const echoTo = [d.address];
    for (const o of doms) {
      if (o === d) continue;
      const v = policy.peek(d.index, o.index, IPPROTO_ICMP, o.address, 0);
      if (v === POLICY_ACCEPT || v === POLICY_ACCEPT_NAT) echoTo.push(o.address);
    }
    input.push(`\t\ticmp type echo-request iifname ${IF} ip daddr ${echoTo.length === 1 ? formatIpv4(echoTo[0]) : `{ ${echoTo.map(formatIpv4).join(', ')} }`} accept`);
    // IPv6: echo to the router's address6 and link-local address in the domain, and to its address6 in another
    // domain where the policy permits ICMPv6 echo into that domain (as for IPv4).
    if (v6 !== undefined) {
      const echo6 = [formatIpv6(v6.address), 'fe80::/64'];
      for (const o of doms) {
        if (o !== d && o.ipv6 !== undefined && policy.peek6(d.index, o.index, NH_ICMPV6, o.ipv6.address, 0, 0) === POLICY_ACCEPT) echo6.push(formatIpv6(o.ipv6.address));
      }
      input.push(`\t\ticmpv6 type echo-request iifname ${IF} ip6 daddr { ${echo6.join(', ')} } accept`);
    }
    if (p.dhcp !== null) input.push(`\t\tiifname ${IF} meta nfproto ipv4 udp dport 67 accept`);
    input.push(`\t\tiifname ${IF} counter drop comment ${q(`input-${d.name}-drop`)}`);

    // Forward chain of the domain.
    const c: string[] = [];
    const l = p.limits;
    if (l.newPerSource > 0) {
      sets.push(`\tset rate_${d.name} {\n\t\ttype ipv4_addr\n\t\tsize 65536\n\t\tflags dynamic, timeout\n\t\ttimeout ${RATE_SET_TIMEOUT_S}s\n\t}`);
      c.push(`ct state new add @rate_${d.name} { ip saddr limit rate over ${l.newPerSource}/second burst ${l.newPerSourceBurst} packets } counter drop comment "rate-limited"`);
      if (v6 !== undefined) {
        // microgate counts an IPv6 source per /64 (one host has a whole /64 to pick addresses from).
        sets.push(`\tset rate6_${d.name} {\n\t\ttype ipv6_addr\n\t\tsize 65536\n\t\tflags dynamic, timeout\n\t\ttimeout ${RATE_SET_TIMEOUT_S}s\n\t}`);
        c.push(`ct state new add @rate6_${d.name} { ip6 saddr & ${MASK64} limit rate over ${l.newPerSource}/second burst ${l.newPerSourceBurst} packets } counter drop comment "rate-limited"`);
      }
    }
    if (l.newTotal > 0) c.push(`ct state new limit rate over ${l.newTotal}/second burst ${l.newTotalBurst} packets counter drop comment "rate-limited"`);
    c.push('tcp flags & (fin | syn | rst | ack) != syn counter drop comment "tcp-new-not-syn"');
    c.push('meta l4proto icmp icmp type != echo-request counter drop comment "icmp-new-not-echo"');
    c.push('meta l4proto ipv6-icmp icmpv6 type != echo-request counter drop comment "icmp-new-not-echo"');
    c.push(`meta nfproto ipv4 meta l4proto != ${FORWARDED[4]} counter drop comment "ip-unsupported-protocol"`);
    c.push(`meta nfproto ipv6 meta l4proto != ${FORWARDED[6]} counter drop comment "ip-unsupported-protocol"`);
    // Connections per source on this ingress domain (conntrack.per-source).
    if (cfg.conntrack.perSource > 0) {
      sets.push(`\tset ctsrc_${d.name} {\n\t\ttype ipv4_addr\n\t\tsize 65536\n\t\tflags dynamic\n\t}`);
      c.push(`add @ctsrc_${d.name} { ip saddr ct count over ${cfg.conntrack.perSource} } counter drop comment "conntrack-source-limit"`);
      if (v6 !== undefined) {
        sets.push(`\tset ctsrc6_${d.name} {\n\t\ttype ipv6_addr\n\t\tsize 65536\n\t\tflags dynamic\n\t}`);
        c.push(`add @ctsrc6_${d.name} { ip6 saddr & ${MASK64} ct count over ${cfg.conntrack.perSource} } counter drop comment "conntrack-source-limit"`);
      }
    }
    // NAT quotas: per target domain and protocol, for the domains it masquerades.
    for (const o of doms) {
      const nat = o.policy.nat;
      if (nat === null || !nat.from.includes(d.index) || nat.portsPerSource === 0) continue;
      for (const proto of ['tcp', 'udp', 'icmp'] as const) {
        c.push(`oifname ${q(ifOf(o.index))} meta l4proto ${proto} add @natq_${o.name}_${proto} { ip saddr ct count over ${nat.portsPerSource} } counter drop comment "nat-quota-exceeded"`);
      }
    }
    for (const f of p.forwards) {
      c.push(`ct status dnat ip daddr ${formatIpv4(f.host)} ${f.proto} dport ${f.hostPort} oifname ${q(ifOf(f.to))} accept comment ${q(f.path.replace(/^(.*\.)?domains\./, ''))}`);
    }
    for (const r of orderedRules(p.rules)) c.push(...ruleLines(r, ifOf));
    const def = p.defaultAction;
    if (def === 'accept') c.push('accept comment "default"');
    else if (def === 'drop') c.push(`counter drop comment ${q(`forward-${d.name}-drop`)}`);
    else {
      c.push(`meta l4proto tcp ${REJECT[4].tcp}`, `meta l4proto udp ${REJECT[4].udp}`, `meta l4proto icmp ${REJECT[4].icmp}`);
      if (v6 !== undefined) c.push(`meta l4proto udp ${REJECT[6].udp}`, `meta l4proto ipv6-icmp ${REJECT[6].icmp}`);
    }
    chains.push(`\tchain from_${d.name} {\n${c.map((x) => `\t\t${x}`).join('\n')}\n\t}`);
    jumps.push(`\t\tiifname ${IF} jump from_${d.name}`);

    // Masquerading into this domain.
    for (const f of p.nat?.from ?? []) {
      // IPv4 only: IPv6 is routed (no NAT66); in an inet table a bare masquerade would take both.
      post.push(`\t\tiifname ${q(ifOf(f))} oifname ${IF} meta nfproto ipv4 counter masquerade comment "masquerade"`);
    }
  }
  for (const o of doms) {
    const nat = o.policy.nat;
    if (nat === null || nat.portsPerSource === 0) continue;
    for (const proto of ['tcp', 'udp', 'icmp']) {
      sets.push(`\tset natq_${o.name}_${proto} {\n\t\ttype ipv4_addr\n\t\tsize 65536\n\t\tflags dynamic\n\t}`);
    }
  }

  L.push(`# ${opts.title ?? 'microgate router policy'} (generated from the router config by src/lab/nft-policy.ts)`);
  L.push(`table inet ${t}`, `delete table inet ${t}`, `table inet ${t} {`);
  L.push(...sets);
  L.push('\tchain prerouting_filter {', '\t\ttype filter hook prerouting priority raw; policy accept;', ...pre, '\t}');
  L.push('\tchain prerouting_nat {', '\t\ttype nat hook prerouting priority dstnat; policy accept;', ...dnat, '\t}');
  L.push('\tchain input {', '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tct state established,related accept',
    // Neighbor Discovery (on-link only: hop limit 255), before the conntrack verdict, which does not track it.
    '\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept',
    '\t\tct state invalid counter drop comment "input-invalid-drop"',
    '\t\tiifname "lo" accept', ...input, '\t\tcounter drop comment "input-other-drop"', '\t}');
  L.push(...chains);
  L.push('\tchain forward {', '\t\ttype filter hook forward priority filter; policy drop;',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop comment "forward-invalid-drop"',
    ...jumps, '\t\tcounter drop comment "forward-other-drop"', '\t}');
  L.push('\tchain postrouting {', '\t\ttype nat hook postrouting priority srcnat; policy accept;', ...post, '\t}');
  L.push('}');
  return `${L.join('\n')}\n`;
}
