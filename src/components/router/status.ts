// The router's status() (microgate conntrack|leases|drops|policy): domains,
// ARP entries, the pending pool, connections (the first 200) with counts by
// protocol and state, the policy in force with its hit counts and run-time
// blocks, DHCP leases. Built on request only, never on the packet path.
import { formatIpv4, formatMac } from '../../net/addr.ts';
import { IPPROTO_ICMP } from '../../net/ipv4.ts';
import type { ArpCache, PendingPool } from './arp-cache.ts';
import type { RouterConfig } from './config.ts';
import { CT_STATE_NAMES, type ConnTable, protoName } from './conntrack.ts';
import type { DhcpServer } from './dhcp-server.ts';
import type { Policy } from './policy.ts';
import type { RuntimeBlocks } from './runtime-blocks.ts';

/** What status() reads of the router. */
export interface StatusSource {
  readonly cfg: RouterConfig;
  readonly now: number;
  readonly arp: readonly ArpCache[];
  readonly pending: PendingPool;
  readonly ct: ConnTable;
  readonly policy: Policy;
  readonly rtBlocks: RuntimeBlocks;
  readonly dhcp: readonly (DhcpServer | undefined)[];
}

/** Connections listed in full at most. */
const MAX_LISTED = 200;

export function routerStatus(s: StatusSource): Record<string, unknown> {
  const { cfg, now } = s;
  const domains = cfg.domains.map((d) => ({
    name: d.name,
    address: `${formatIpv4(d.address)}/${d.prefix}`,
    mac: formatMac(d.mac),
    gateway: d.gateway >= 0 ? formatIpv4(d.gateway) : null,
    routes: (d.routes ?? []).map((r) => `${formatIpv4(r.network)}/${r.prefix} via ${formatIpv4(r.via)}`),
    forward: d.forward.map((f) => ({ to: f.toName, nat: f.nat })),
  }));
  const arp: Record<string, unknown>[] = [];
  cfg.domains.forEach((d, i) => {
    for (const e of s.arp[i].entries.values()) {
      arp.push({
        domain: d.name,
        ip: formatIpv4(e.ip),
        mac: e.resolved ? formatMac(e.mac) : null,
        state: e.resolved ? (e.probing ? 'refreshing' : now >= e.expires ? 'stale' : 'reachable') : 'resolving',
        expiresInS: e.resolved ? Math.round((e.expires - now) / 1000) : null,
        queued: e.queue.length,
      });
    }
  });
  const summary: Record<string, Record<string, number>> = {};
  const connections: Record<string, unknown>[] = [];
  for (const c of s.ct.live()) {
    const p = protoName(c.proto);
    const st = CT_STATE_NAMES[c.state];
    summary[p] ??= {};
    summary[p][st] = (summary[p][st] ?? 0) + 1;
    if (connections.length < MAX_LISTED) {
      connections.push({
        proto: p,
        state: st,
        from: cfg.domains[c.inDom].name,
        to: cfg.domains[c.outDom].name,
        src: `${formatIpv4(c.oSrc)}:${c.oSport}`,
        dst: `${formatIpv4(c.oDst)}:${c.oDport}`,
        nat: c.nat ? `${formatIpv4(c.rDst)}:${c.rDport}` : null,
        dnat: c.rSrc !== c.oDst || (c.proto !== IPPROTO_ICMP && c.rSport !== c.oDport) ? `${formatIpv4(c.rSrc)}:${c.rSport}` : null,
        packets: [c.pktsOrig, c.pktsReply],
        ageS: Math.round((now - c.created) / 1000),
        expiresInS: Math.round((c.expires - now) / 1000),
      });
    }
  }
  return {
    domains,
    arp,
    arpPending: { pool: s.pending.slots, inUse: s.pending.inUse },
    conntrack: {
      count: s.ct.count, max: s.ct.max, byProto: summary,
      perSource: s.ct.perSource, maxProbe: s.ct.maxProbe, longestProbe: s.ct.longestProbe(),
      timeoutsS: Object.fromEntries(Object.entries(cfg.conntrack).filter(([k]) => k.endsWith('Ms')).map(([k, v]) => [k.slice(0, -2), v / 1000])),
    },
    connections,
    policy: {
      ...policyStatus(cfg, s.policy, now),
      runtimeBlocks: s.rtBlocks.entries().map((e) => ({
        ip: formatIpv4(e.ip),
        reason: e.reason,
        expiresInS: Math.max(0, Math.round((e.expires - now) / 1000)),
        active: e.expires > now,
        drops: e.drops,
        times: e.times,
      })),
    },
    dhcp: cfg.domains.filter((d) => s.dhcp[d.index] !== undefined).map((d) => ({
      domain: d.name,
      range: `${formatIpv4(d.policy.dhcp!.first)}-${formatIpv4(d.policy.dhcp!.last)}`,
      leaseS: d.policy.dhcp!.leaseMs / 1000,
      leases: s.dhcp[d.index]!.leases(now),
    })),
  };
}

/** The policy in force: rules with their hits, defaults, forwards, NAT, blocklists, limits. */
function policyStatus(cfg: RouterConfig, p: Policy, now: number): Record<string, unknown> {
  const names = cfg.domains.map((d) => d.name);
  let k = 0;
  return {
    domains: cfg.domains.map((d) => {
      const rules = d.policy.rules.map((r) => ({ rule: r.text, path: r.path, hits: p.ruleHits[k++] }));
      const bl = p.blocklists[d.index];
      return {
        domain: d.name,
        default: { action: d.policy.defaultAction, hits: p.defaultHits[d.index] },
        rules,
        forwards: d.policy.forwards.map((f) => ({ proto: f.proto, port: f.port, to: f.toName, host: `${formatIpv4(f.host)}:${f.hostPort}` })),
        nat: d.policy.nat === null ? null : { from: d.policy.nat.fromNames, portsPerSource: d.policy.nat.portsPerSource },
        blocklist: bl === undefined ? [] : bl.entries().map((e) => ({
          prefix: `${formatIpv4(e.network)}/${e.prefix}`,
          expiresInS: e.expires === Infinity ? null : Math.max(0, Math.round((e.expires - now) / 1000)),
          active: e.expires > now,
        })),
        limits: d.policy.limits,
      };
    }),
    domainNames: names,
  };
}
