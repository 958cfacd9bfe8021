// The Linux reference gateway (`lab up --gateway linux`): a namespace
// mg-<name>-gw with kernel IPv4 forwarding on, one veth pair to each host, and
// an nftables ruleset doing what microgate's default policy does:
//   - lan -> wan: new connections allowed, masqueraded to the gateway's wan address
//   - wan -> lan: only replies (ct established,related); the rest dropped and counted
//   - to the gateway itself: ICMP echo to its own addresses, replies, anything from
//     the lan; the rest from the wan dropped and counted
// Offloads (GRO/TSO/checksum) stay at the kernel's defaults for veth.
import type { LabPlan, LinuxGatewayPlan } from './plan.ts';
import { createNetns, deleteNetns, ip, nft, nftLoad, sysctl } from './netns.ts';

function linuxPlan(plan: LabPlan): LinuxGatewayPlan {
  if (!plan.linux) throw new Error(`lab ${plan.name} is not a linux-gateway lab`);
  return plan.linux;
}

/** Comments on the counted rules, the keys of linuxGatewayCounters(). */
export const COUNTER_NAMES = [
  'input-invalid-drop',
  'input-wan-drop',
  'forward-invalid-drop',
  'forward-wan-drop',
  'forward-other-drop',
  'masquerade',
] as const;
export type CounterName = typeof COUNTER_NAMES[number];

/** The ruleset loaded with `nft -f -` into the gateway namespace. */
export function linuxGatewayRuleset(plan: LabPlan): string {
  const g = linuxPlan(plan);
  const W = JSON.stringify(g.wanIfname);
  const L = JSON.stringify(g.lanIfname);
  const { wan: gwWan, lan: gwLan } = plan.gatewayAddresses;
  const lanNet = plan.subnets.lan;
  const t = g.nftTable;
  return `# microgate lab ${plan.name}: Linux reference gateway, same policy as microgate's default
table inet ${t}
delete table inet ${t}
table inet ${t} {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		ct state invalid counter drop comment "input-invalid-drop"
		iifname "lo" accept
		iifname ${L} ip daddr { ${gwLan}, ${gwWan} } icmp type echo-request accept
		iifname ${W} ip daddr ${gwWan} icmp type echo-request accept
		iifname ${W} counter drop comment "input-wan-drop"
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid counter drop comment "forward-invalid-drop"
		iifname ${L} oifname ${W} ip saddr ${lanNet} ct state new accept
		iifname ${W} counter drop comment "forward-wan-drop"
		counter drop comment "forward-other-drop"
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname ${W} ip saddr ${lanNet} counter masquerade comment "masquerade"
	}
}
`;
}

/**
 * Build the gateway: namespace, forwarding, veth pairs into the (existing) host
 * namespaces, addresses, links up, nftables. The hosts' ends (plan.hosts.*.ifname)
 * are left for the lab to configure, as with microgate's TAPs.
 */
export async function startLinuxGateway(plan: LabPlan): Promise<void> {
  const g = linuxPlan(plan);
  const ns = g.gwNetns;
  await createNetns(ns);
  await sysctl(ns, 'net.ipv4.ip_forward', 1);
  const sides = [
    { gwIf: g.wanIfname, host: plan.hosts.wan, addr: plan.gatewayAddresses.wan },
    { gwIf: g.lanIfname, host: plan.hosts.lan, addr: plan.gatewayAddresses.lan },
  ];
  for (const s of sides) {
    // Created inside the gateway namespace with the peer placed straight into the
    // host's namespace: nothing of the lab ever sits in the root namespace.
    await ip(['link', 'add', s.gwIf, 'type', 'veth', 'peer', 'name', s.host.ifname, 'netns', s.host.netns], ns);
    await ip(['addr', 'add', `${s.addr}/${s.host.prefixLen}`, 'dev', s.gwIf], ns);
    await ip(['link', 'set', s.gwIf, 'up'], ns);
  }
  await nftLoad(ns, linuxGatewayRuleset(plan));
}

/** Remove the gateway namespace (its veth ends, and so their peers, go with it). Idempotent. */
export async function stopLinuxGateway(plan: LabPlan): Promise<void> {
  await deleteNetns(linuxPlan(plan).gwNetns);
}

export interface Counter { packets: number; bytes: number }

/** The packet/byte counters of the counted rules, by their comment. */
export async function linuxGatewayCounters(plan: LabPlan): Promise<Record<CounterName, Counter>> {
  const g = linuxPlan(plan);
  const out = JSON.parse(await nft(g.gwNetns, ['-j', 'list', 'table', 'inet', g.nftTable])) as {
    nftables: Array<{ rule?: { comment?: string; expr?: Array<Record<string, unknown>> } }>;
  };
  const res = Object.fromEntries(COUNTER_NAMES.map(n => [n, { packets: 0, bytes: 0 }])) as Record<CounterName, Counter>;
  for (const item of out.nftables) {
    const r = item.rule;
    if (!r?.comment || !(COUNTER_NAMES as readonly string[]).includes(r.comment)) continue;
    for (const e of r.expr ?? []) {
      const c = e.counter as { packets?: number; bytes?: number } | undefined;
      if (c) res[r.comment as CounterName] = { packets: c.packets ?? 0, bytes: c.bytes ?? 0 };
    }
  }
  return res;
}
