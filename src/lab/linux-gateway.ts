// The Linux reference gateway (`lab up --gateway linux`): a namespace
// mg-<name>-gw with kernel IPv4 and IPv6 forwarding on, one veth pair to each
// host (wan, lan, dmz), the router's addresses (`address`, and `address6` on
// the domains that have one, as microgate's router config gives them), strict
// reverse-path filtering, and the lab's router policy translated into nftables
// (nft-policy.ts): the same rules, port forwards, NAT, blocklists and limits as
// microgate's router, from the same config object. IPv6 is routed (no NAT66);
// it sends no router advertisements (the lab gives its lan host a static
// address). Offloads (GRO/TSO/checksum) stay at the kernel's defaults for veth.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import type { LabPlan, LinuxGatewayPlan, RouterSection } from './lab-plan.ts';
import { parseRouterConfig, type RouterConfig } from '../components/router/config.ts';
import { formatIpv6 } from '../net/addr6.ts';
import { labRouterConfig, linuxDomainIfnames } from './lab-policy.ts';
import { nftRuleset } from './nft-policy.ts';
import { createNetns, ip, nft, nftLoad, sysctl } from './netns.ts';

function linuxPlan(plan: LabPlan): LinuxGatewayPlan {
  if (!plan.linux) throw new Error(`lab ${plan.name} is not a linux-gateway lab`);
  return plan.linux;
}

/** Comments of counted rules that every lab ruleset has (linuxGatewayCounters() returns these and any others). */
export const COUNTER_NAMES = [
  'input-invalid-drop',
  'input-wan-drop',
  'forward-invalid-drop',
  'forward-wan-drop',
  'forward-other-drop',
  'masquerade',
] as const;
export type CounterName = typeof COUNTER_NAMES[number];

/** The router config section the lab's Linux gateway enforces (written to router.yaml in the lab's folder). */
export function routerYamlPath(plan: LabPlan): string {
  return join(plan.stateDir, 'router.yaml');
}

/**
 * The ruleset loaded with `nft -f -` into the gateway namespace: the lab's
 * router policy (default labRouterConfig) translated by nft-policy.ts.
 */
export function linuxGatewayRuleset(plan: LabPlan, router: RouterSection = labRouterConfig(plan)): string {
  return rulesetOf(plan, parseRouterConfig(router, 'router', { file: routerYamlPath(plan), path: '' }));
}

function rulesetOf(plan: LabPlan, cfg: RouterConfig): string {
  const g = linuxPlan(plan);
  return nftRuleset(cfg, { table: g.nftTable, ifnames: linuxDomainIfnames(plan), title: `microgate lab ${plan.name}: Linux reference gateway, same policy as microgate's router` });
}

/**
 * Build the gateway: namespace, forwarding, veth pairs into the (existing) host
 * namespaces, addresses, links up, nftables. The hosts' ends (plan.hosts.*.ifname)
 * are left for the lab to configure, as with microgate's TAPs.
 */
export async function startLinuxGateway(plan: LabPlan, router: RouterSection = labRouterConfig(plan)): Promise<void> {
  const g = linuxPlan(plan);
  const ns = g.gwNetns;
  const cfg = parseRouterConfig(router, 'router', { file: routerYamlPath(plan), path: '' }); // validated before anything is built
  const ruleset = rulesetOf(plan, cfg);
  await mkdir(plan.stateDir, { recursive: true });
  await writeFile(routerYamlPath(plan), stringify(router), { mode: 0o600 });
  await createNetns(ns);
  await sysctl(ns, 'net.ipv4.ip_forward', 1);
  // Strict reverse-path filtering: a domain without the default route only speaks for
  // its own prefix, as microgate's router checks (ip-spoofed-source).
  await sysctl(ns, 'net.ipv4.conf.all.rp_filter', 1);
  await sysctl(ns, 'net.ipv4.conf.default.rp_filter', 1);
  // No per-destination rate limit on the ICMP errors it sends (rejects, TTL exceeded):
  // microgate's router has none yet, and a scan would otherwise see some rejects as drops.
  await sysctl(ns, 'net.ipv4.icmp_ratelimit', 0);
  // IPv6: routed between the domains with address6. ICMPv6 errors are not rate-limited per destination either
  // (microgate's are, by one bucket of 100/s, burst 200, which a scan of the lab does not reach).
  await sysctl(ns, 'net.ipv6.conf.all.forwarding', 1);
  await sysctl(ns, 'net.ipv6.conf.default.forwarding', 1);
  await sysctl(ns, 'net.ipv6.icmp.ratelimit', 0);
  const v6Of = (domain: string): string | undefined => {
    const v6 = cfg.domains.find((d) => d.name === domain)?.ipv6;
    return v6 === undefined ? undefined : `${formatIpv6(v6.address)}/${v6.prefix}`;
  };
  const sides = [
    { gwIf: g.wanIfname, host: plan.hosts.wan, addr: plan.gatewayAddresses.wan, addr6: v6Of('wan') },
    { gwIf: g.lanIfname, host: plan.hosts.lan, addr: plan.gatewayAddresses.lan, addr6: v6Of('lan') },
    { gwIf: g.dmzIfname, host: plan.hosts.dmz, addr: plan.gatewayAddresses.dmz, addr6: v6Of('dmz') },
  ];
  for (const s of sides) {
    // Created inside the gateway namespace with the peer placed straight into the
    // host's namespace: nothing of the lab ever sits in the root namespace.
    await ip(['link', 'add', s.gwIf, 'type', 'veth', 'peer', 'name', s.host.ifname, 'netns', s.host.netns], ns);
    await ip(['addr', 'add', `${s.addr}/${s.host.prefixLen}`, 'dev', s.gwIf], ns);
    if (s.addr6 !== undefined) {
      await sysctl(ns, `net.ipv6.conf.${s.gwIf}.disable_ipv6`, 0);
      await ip(['-6', 'addr', 'add', s.addr6, 'dev', s.gwIf, 'nodad'], ns);
    }
    await ip(['link', 'set', s.gwIf, 'up'], ns);
  }
  await nftLoad(ns, ruleset);
}

/**
 * Reload the policy from router.yaml in the lab's folder (validated whole
 * first: an invalid file changes nothing). The table is replaced atomically;
 * connections already tracked keep flowing (nftables accepts established
 * ones), unlike microgate, which drops those the new policy no longer permits.
 */
export async function reloadLinuxGateway(plan: LabPlan): Promise<string> {
  const g = linuxPlan(plan);
  const file = routerYamlPath(plan);
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new Error(`${file}: YAML syntax error: ${doc.errors[0].message.split('\n')[0]}`);
  const ruleset = linuxGatewayRuleset(plan, doc.toJS() as RouterSection);
  await nftLoad(g.gwNetns, ruleset);
  return `${file}: new nftables ruleset loaded into ${g.gwNetns}`;
}

export interface Counter { packets: number; bytes: number }

/** The packet/byte counters of the counted rules, summed by their comment. */
export async function linuxGatewayCounters(plan: LabPlan): Promise<Record<CounterName, Counter> & Record<string, Counter>> {
  const g = linuxPlan(plan);
  const out = JSON.parse(await nft(g.gwNetns, ['-j', 'list', 'table', 'inet', g.nftTable])) as {
    nftables: Array<{ rule?: { comment?: string; expr?: Array<Record<string, unknown>> } }>;
  };
  const res = Object.fromEntries(COUNTER_NAMES.map(n => [n, { packets: 0, bytes: 0 }])) as Record<CounterName, Counter>;
  for (const item of out.nftables) {
    const r = item.rule;
    if (!r?.comment) continue;
    for (const e of r.expr ?? []) {
      const c = e.counter as { packets?: number; bytes?: number } | undefined;
      if (!c) continue;
      const cur = (res as Record<string, Counter>)[r.comment] ?? { packets: 0, bytes: 0 };
      (res as Record<string, Counter>)[r.comment] = { packets: cur.packets + (c.packets ?? 0), bytes: cur.bytes + (c.bytes ?? 0) };
    }
  }
  return res;
}
