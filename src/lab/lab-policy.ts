// The lab's gateway policy, one source for both gateways: microgate's router
// runs it, and the Linux reference gets it translated into nftables
// (nft-policy.ts), so every comparison filters the same way on both sides.
import type { LabPlan, RouterSection } from './lab-plan.ts';
import { withFileGatewayRouter } from './file-gateway-lab.ts';

/**
 * The default lab policy:
 *   - lan (trusted): may open anything to wan (masqueraded) and to dmz; DHCP server
 *   - dmz: servers; may reach the wan (masqueraded) and one lan service, TCP 8443 on the lan host
 *   - wan (untrusted): nothing new, except the port forwards to the dmz host:
 *       TCP 198.19.0.1:80 -> 198.18.128.2:8080, UDP 198.19.0.1:53 -> 198.18.128.2:5353
 */
export function labRouterConfig(plan: LabPlan): RouterSection {
  const { hosts, gatewayAddresses: gw } = plan;
  const lanBase = gw.lan.split('.').slice(0, 3).join('.');
  const router: RouterSection = {
    domains: {
      lan: {
        address: `${gw.lan}/${hosts.lan.prefixLen}`,
        ip: [{ to: 'wan' }, { to: 'dmz' }],
        'dhcp-server': { range: `${lanBase}.100-${lanBase}.199`, 'lease-s': 600 },
      },
      dmz: {
        address: `${gw.dmz}/${hosts.dmz.prefixLen}`,
        ip: [{ to: 'wan' }],
        tcp: [{ dst: `${hosts.lan.ip}/32`, ports: [8443], to: 'lan' }],
      },
      wan: {
        address: `${gw.wan}/${hosts.wan.prefixLen}`,
        nat: { from: ['lan', 'dmz'] },
        'tcp-forward': [{ port: 80, to: 'dmz', host: hosts.dmz.ip, 'host-port': 8080 }],
        'udp-forward': [{ port: 53, to: 'dmz', host: hosts.dmz.ip, 'host-port': 5353 }],
      },
    },
  };
  // IPv6 (both gateways): routed /64s; the rules above have no dst, so they cover IPv6 too. The lan host configures
  // itself from microgate's router advertisements (the Linux reference sends none: its lan host has a static address).
  const g6 = plan.gatewayAddresses6;
  if (g6 !== undefined) {
    const d = router.domains as Record<string, Record<string, unknown>>;
    d.lan.address6 = `${g6.lan}/64`;
    d.lan.ra = { 'interval-s': 30, 'lifetime-s': 1800 };
    d.dmz.address6 = `${g6.dmz}/64`;
    d.wan.address6 = `${g6.wan}/64`;
  }
  // --file-gateway: its forwards (wan 443, 80) and dmz -> the NAS (file-gateway-lab.ts).
  return withFileGatewayRouter(router, plan);
}

/** The gateway-side interface of each lab domain (Linux reference): domain name -> ifname. */
export function linuxDomainIfnames(plan: LabPlan): Record<string, string> {
  if (!plan.linux) throw new Error(`lab ${plan.name} is not a linux-gateway lab`);
  return { lan: plan.linux.lanIfname, wan: plan.linux.wanIfname, dmz: plan.linux.dmzIfname };
}
