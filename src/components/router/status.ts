// The router's status() (microgate conntrack|leases|drops|policy): domains,
// ARP entries, the pending pool, connections (the first 200) with counts by
// protocol and state, NAT ports in use, the fragment reassemblers' use, the policy in force with its hit counts and run-time
// blocks, DHCP leases. Built on request only, never on the packet path.
import { formatIpv4, formatMac } from '../../net/addr.ts';
import { IPPROTO_ICMP } from '../../net/ipv4.ts';
import type { ArpCache, PendingPool } from './arp-cache.ts';
import type { RouterConfig } from './config.ts';
import { CT_STATE_NAMES, type ConnTable, protoName } from './conntrack.ts';
import type { DhcpServer } from './dhcp-server.ts';
import type { Policy } from './policy.ts';
import type { RuntimeBlocks } from './runtime-blocks.ts';
import { formatIpv6 } from '../../net/addr6.ts';
import type { ConnTable6 } from './conntrack6.ts';
import type { NatBook } from './nat.ts';
import { NB_STATE_NAMES, type NeighborCache } from './neighbors6.ts';

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
  readonly ct6: ConnTable6;
  readonly neighbors: readonly NeighborCache[];
  readonly nat: NatBook;
  /** The reassemblers: datagrams in progress and the bytes their buffers hold (bounded by `fragments`). */
  readonly reassembly: { readonly ipv4: Reassembly; readonly ipv6: Reassembly };
}

interface Reassembly {
  readonly size: number;
  readonly memoryBytes: number;
}

/** Four int32 words -> RFC 5952 text. */
function words6(w: Int32Array): string {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setInt32(0, w[0]);
  new DataView(b.buffer).setInt32(4, w[1]);
  new DataView(b.buffer).setInt32(8, w[2]);
  new DataView(b.buffer).setInt32(12, w[3]);
  return formatIpv6(b);
}

/** IPv6: addresses per domain, neighbors, connections (the first 200) and their counts. */
function ipv6Status(s: StatusSource): Record<string, unknown> {
  const { cfg, now } = s;
  const neighbors: Record<string, unknown>[] = [];
  cfg.domains.forEach((d, i) => {
    const nb = s.neighbors[i];
    for (let k = 0; k < nb.size; k++) {
      const st = nb.state[k];
      if (st === 0) continue;
      neighbors.push({
        domain: d.name,
        ip: words6(nb.keys.subarray(k * 4, k * 4 + 4)),
        mac: st === 2 || st === 3 ? formatMac(nb.mac, k * 6) : null,
        state: NB_STATE_NAMES[st],
        expiresInS: st === 2 || st === 3 ? Math.round((nb.expires[k] - now) / 1000) : null,
        queued: nb.queued(k),
      });
    }
  });
  const summary: Record<string, Record<string, number>> = {};
  const connections6: Record<string, unknown>[] = [];
  for (const c of s.ct6.live()) {
    const p = c.proto === 58 ? 'icmp6' : protoName(c.proto);
    const st = CT_STATE_NAMES[c.state];
    summary[p] ??= {};
    summary[p][st] = (summary[p][st] ?? 0) + 1;
    if (connections6.length < MAX_LISTED) {
      connections6.push({
        proto: p, state: st, from: cfg.domains[c.inDom].name, to: cfg.domains[c.outDom].name,
        src: `[${words6(c.src6)}]:${c.oSport}`, dst: `[${words6(c.dst6)}]:${c.oDport}`,
        packets: [c.pktsOrig, c.pktsReply], ageS: Math.round((now - c.created) / 1000), expiresInS: Math.round((c.expires - now) / 1000),
      });
    }
  }
  return {
    domains6: cfg.domains.filter((d) => d.ipv6 !== undefined).map((d) => ({
      name: d.name,
      address6: `${formatIpv6(d.ipv6!.address)}/${d.ipv6!.prefix}`,
      linkLocal: formatIpv6(d.ipv6!.linkLocal),
      gateway6: d.ipv6!.gateway === null ? null : formatIpv6(d.ipv6!.gateway),
      routes6: d.ipv6!.routes.map((r) => `${formatIpv6(r.network)}/${r.prefix} via ${formatIpv6(r.via)}`),
      ra: d.ipv6!.ra === null ? null : { intervalS: d.ipv6!.ra.intervalS, lifetimeS: d.ipv6!.ra.lifetimeS, dns: d.ipv6!.ra.dns.map((a) => formatIpv6(a)) },
    })),
    neighbors,
    conntrack6: { count: s.ct6.count, max: s.ct6.max, byProto: summary },
    connections6,
  };
}

/** Connections listed in full at most. */
const MAX_LISTED = 200;

export function routerStatus(s: StatusSource): Record<string, unknown> {
  const { cfg, now } = s;
  const domains = cfg.domains.map((d) => ({
    name: d.name,
    address: d.dhcpClient ? 'dhcp' : `${formatIpv4(d.address)}/${d.prefix}`,
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
    fragments: {
      maxDatagrams: cfg.fragments.maxDatagrams,
      ipv4: { inProgress: s.reassembly.ipv4.size, memoryBytes: s.reassembly.ipv4.memoryBytes },
      ipv6: { inProgress: s.reassembly.ipv6.size, memoryBytes: s.reassembly.ipv6.memoryBytes },
    },
    // NAT ports in use per masquerading domain and protocol (ICMP: identifiers), of `size` each.
    nat: { size: s.nat.size, inUse: s.nat.inUse().map((u) => ({ domain: cfg.domains[u.dom].name, proto: u.proto, ports: u.ports })) },
    ...ipv6Status(s),
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
        blocklist: [...(bl === undefined ? [] : bl.entries()).map((e) => ({
          prefix: `${formatIpv4(e.network)}/${e.prefix}`,
          expiresInS: e.expires === Infinity ? null : Math.max(0, Math.round((e.expires - now) / 1000)),
          active: e.expires > now,
        })), ...(p.blocklists6[d.index]?.entries ?? []).map((e) => ({
          prefix: `${formatIpv6(e.network)}/${e.prefix}`,
          expiresInS: e.expires === Infinity ? null : Math.max(0, Math.round((e.expires - now) / 1000)),
          active: e.expires > now,
        }))],
        limits: d.policy.limits,
      };
    }),
    domainNames: names,
  };
}
