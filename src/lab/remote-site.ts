// `lab up --remote-site`: a second site across the wan, joined to the lab's
// lan by an encrypted tunnel. The remote site runs the reference
// implementation (wireguard-go, configured with `wg`); microgate's end is the
// `tunnel` component, whose static key only the `keystore` component holds.
//
//   mg-NAME-lan                microgate                                  mg-NAME-wan                 mg-NAME-rsite            mg-NAME-rhost
//   198.18.0.2 ─TAP─ drv-lan ═ router ═ drv-wan ─TAP─┐ bridge mgNAMEb       ┌─ mgNAMEr 198.19.0.3      mgNAMEh
//                               ║  ║                  ├─ 198.19.0.2 (host)  │  wireguard-go mgNAMEg ── 198.18.64.2
//                     tun domain║  ║wg domain         └─ mgNAMEv ─── veth ──┘  mgNAMEs 198.18.64.1
//               198.18.255.1/30 ║  ║ 198.19.1.1/30
//                             tunnel ══ keystore (the key file, as an fd)
//               plain 198.18.255.2  uplink 198.19.1.2:51820
//
// IPv6 inside the tunnel (labs with IPv6): rsite 2001:db8:64::1/64, rhost
// 2001:db8:64::2/64; the tun domain 2001:db8:0:fe01::/64 (router ::1, the
// tunnel ::2); wireguard-go's allowed-ips hold the lan's /64 too. The outer
// transport stays IPv4.
//
// The router routes the remote prefix 198.18.64.0/24 (and 2001:db8:64::/64)
// into the `tun` domain (static routes via the tunnel's plain addresses); the tunnel's UDP endpoint
// is a host on the `wg` domain, which the router links to the wan without
// NAT; the wan may reach it on UDP 51820 only. So no path from the lan to the
// remote site avoids the tunnel, and the wan segment carries only WireGuard.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../components/keystore/keys.ts';
import { createNetns, ip, nsExec, procIdentity, sysctl, type ProcIdentity } from './netns.ts';
import type { LabPlan, RemoteSitePlan, RouterSection } from './lab-plan.ts';

export interface RemoteSiteOptions {
  /** The tunnel's REKEY_AFTER_TIME in seconds (default the protocol's 120): lower it to see rekeying in tests. */
  rekeyAfterTimeS?: number;
  /** Use a preshared key on both ends (default true). */
  presharedKey?: boolean;
  /** The tunnel's persistent keepalive towards the remote site, seconds (default 0: off). */
  persistentKeepalive?: number;
}


export const REMOTE_SITE_PREFIX = '198.18.64.0/24';
export const REMOTE_SITE_PREFIX6 = '2001:db8:64::/64';
export const RSITE_LAN6 = '2001:db8:64::1';
export const RHOST6 = '2001:db8:64::2';
export const TUN6_ROUTER = '2001:db8:0:fe01::1';
export const TUN6_TUNNEL = '2001:db8:0:fe01::2';
export const RSITE_LAN = '198.18.64.1';
export const RHOST = '198.18.64.2';
export const RSITE_ENDPOINT = '198.19.0.3';
export const TUN_ROUTER = '198.18.255.1';
export const TUN_TUNNEL = '198.18.255.2';
export const WG_ROUTER = '198.19.1.1';
export const WG_TUNNEL = '198.19.1.2';
export const WG_PORT = 51820;
/** The remote site's interface names: mg<name> plus one of these letters. */
export const REMOTE_LINK_ROLES = 'bvrgsh';

function link(lab: string, role: string): string {
  const n = `mg${lab}${role}`;
  if (n.length > 15) throw new Error(`interface name ${n} longer than 15 characters`);
  return n;
}

/** Every name and address of the remote site of `plan` (touches nothing). */
export function remoteSitePlan(plan: LabPlan, opts: RemoteSiteOptions = {}): RemoteSitePlan {
  if (plan.kind !== 'microgate') throw new Error('--remote-site needs --gateway microgate (the tunnel is a microgate component)');
  const n = plan.name;
  return {
    rsiteNetns: `mg-${n}-rsite`,
    rhostNetns: `mg-${n}-rhost`,
    bridge: link(n, 'b'),
    wanVeth: link(n, 'v'),
    rsiteWan: link(n, 'r'),
    wgIfname: link(n, 'g'),
    rsiteLan: link(n, 's'),
    rhostIf: link(n, 'h'),
    endpoint: RSITE_ENDPOINT,
    endpointPort: WG_PORT,
    sitePrefix: REMOTE_SITE_PREFIX,
    rsiteLanIp: RSITE_LAN,
    rhostIp: RHOST,
    tunDomain: { router: TUN_ROUTER, tunnel: TUN_TUNNEL, prefixLen: 30 },
    wgDomain: { router: WG_ROUTER, tunnel: WG_TUNNEL, prefixLen: 30 },
    tunnelPort: WG_PORT,
    gatewayKeyFile: join(plan.stateDir, 'gateway.key'),
    rsiteKeyFile: join(plan.stateDir, 'rsite.key'),
    pskFile: opts.presharedKey === false ? undefined : join(plan.stateDir, 'tunnel.psk'),
    gatewayPublicKey: '',
    rsitePublicKey: '',
    rekeyAfterTimeS: opts.rekeyAfterTimeS,
    persistentKeepalive: opts.persistentKeepalive ?? 0,
    ipv6: plan.subnets6 === undefined ? undefined : {
      sitePrefix: REMOTE_SITE_PREFIX6, rsiteLanIp: RSITE_LAN6, rhostIp: RHOST6, lanPrefix: plan.subnets6.lan,
      tunDomain: { router: TUN6_ROUTER, tunnel: TUN6_TUNNEL, prefixLen: 64 },
    },
  };
}

function writeSecret(file: string, key: Uint8Array): void {
  writeFileSync(file, `${encodeKey(key)}\n`, { mode: 0o400, flag: 'wx' });
  key.fill(0);
}

/** Generate both sites' keys (and the preshared key) into the lab's folder, mode 0400. Fills in the public keys. */
export function writeRemoteSiteKeys(r: RemoteSitePlan): void {
  const gw = generatePrivateKey();
  const rs = generatePrivateKey();
  r.gatewayPublicKey = encodeKey(publicKeyOf(gw));
  r.rsitePublicKey = encodeKey(publicKeyOf(rs));
  writeSecret(r.gatewayKeyFile, gw);
  writeSecret(r.rsiteKeyFile, rs);
  if (r.pskFile !== undefined) writeSecret(r.pskFile, generatePresharedKey());
}

/** The router's domains and rules for the tunnel, added to the lab's router section. */
export function withRemoteSiteRouter(router: RouterSection, plan: LabPlan): RouterSection {
  const r = plan.remote;
  if (r === undefined) return router;
  const domains = { ...(router.domains as Record<string, Record<string, unknown>>) };
  const lan = domains.lan ?? {};
  const wan = domains.wan ?? {};
  domains.lan = { ...lan, ip: [...((lan.ip as unknown[] | undefined) ?? []), { to: 'tun' }] };
  domains.wan = {
    ...wan,
    udp: [...((wan.udp as unknown[] | undefined) ?? []), { dst: `${r.wgDomain.tunnel}/32`, ports: [r.tunnelPort], to: 'wg' }],
  };
  // The tunnel's two domains hold no ingress when the tunnel falls behind
  // (router egress-hold.ts): its encryption is slow by nature, and lan -> wan
  // traffic should not wait for it; frames to it are dropped as egress-full.
  domains.tun = {
    address: `${r.tunDomain.router}/${r.tunDomain.prefixLen}`,
    backpressure: false,
    routes: [{ prefix: r.sitePrefix, via: r.tunDomain.tunnel }],
    ...(r.ipv6 === undefined ? {} : {
      address6: `${r.ipv6.tunDomain.router}/${r.ipv6.tunDomain.prefixLen}`,
      routes6: [{ prefix: r.ipv6.sitePrefix, via: r.ipv6.tunDomain.tunnel }],
    }),
    ip: [{ to: 'lan' }],
  };
  domains.wg = {
    address: `${r.wgDomain.router}/${r.wgDomain.prefixLen}`,
    backpressure: false,
    udp: [{ ports: 'any', to: 'wan' }],
  };
  return { ...router, domains };
}

/** The keystore and tunnel of the lab: devices, components and sessions (YAML lines). */
export function remoteSiteGatewayYaml(plan: LabPlan, isolation: string, transport: string): { devices: string; components: string; sessions: string } {
  const r = plan.remote!;
  // The preshared key goes into the tunnel's config (the lab writes gateway.yaml with mode 0600).
  const psk = r.pskFile === undefined ? '' : `\n          preshared-key: ${readFileSync(r.pskFile, 'utf8').trim()}`;
  const timers = r.rekeyAfterTimeS === undefined ? '' : `\n      timers: { rekey-after-time-s: ${r.rekeyAfterTimeS} }`;
  const v6 = r.ipv6;
  const plain6 = v6 === undefined ? '' : `, address6: ${v6.tunDomain.tunnel}/${v6.tunDomain.prefixLen}, gateway6: ${v6.tunDomain.router}`;
  return {
    devices: `  wg-key: { kind: file, path: ${r.gatewayKeyFile} }\n`,
    components: `  - { name: keystore, type: keystore, isolation: process, devices: { private-key: wg-key } }
  - name: tunnel
    type: tunnel
    isolation: ${isolation}
    config:
      listen-port: ${r.tunnelPort}
      plain: { address: ${r.tunDomain.tunnel}/${r.tunDomain.prefixLen}, gateway: ${r.tunDomain.router}${plain6} }
      uplink: { address: ${r.wgDomain.tunnel}/${r.wgDomain.prefixLen}, gateway: ${r.wgDomain.router} }${timers}
      peers:
        - public-key: ${r.rsitePublicKey}
          endpoint: ${r.endpoint}:${r.endpointPort}
          allowed-ips: [${r.sitePrefix}${r.ipv6 === undefined ? '' : `, ${r.ipv6.sitePrefix}`}]
          persistent-keepalive: ${r.persistentKeepalive}${psk}
`,
    sessions: `  - { between: [tunnel.plain, router.tun], transport: ${transport} }
  - { between: [tunnel.uplink, router.wg], transport: ${transport} }
  - { between: [tunnel.keys, keystore.tunnel], transport: socket, slots: 16, slot-size: 2048 }
`,
  };
}

/**
 * Build the remote site after the lab's hosts are configured: the wan
 * becomes a bridge (the wan host's address moves onto it), rsite joins it,
 * rhost sits behind rsite, and wireguard-go runs in rsite. Returns the
 * processes started (wireguard-go), for the lab's state.
 */
export async function startRemoteSite(plan: LabPlan): Promise<(ProcIdentity & { name: string })[]> {
  const r = plan.remote!;
  const wan = plan.hosts.wan;
  const gwPlain = plan.gatewayAddresses.wan;
  await createNetns(r.rsiteNetns);
  await createNetns(r.rhostNetns);
  await sysctl(r.rsiteNetns, 'net.ipv4.ip_forward', 1);
  await sysctl(r.rhostNetns, 'net.ipv4.ip_forward', 0);
  // The wan segment: a bridge in the wan host's namespace holding its TAP and a veth to rsite.
  await ip(['link', 'add', r.bridge, 'type', 'bridge'], wan.netns);
  await ip(['link', 'set', wan.ifname, 'master', r.bridge], wan.netns);
  await ip(['addr', 'del', `${wan.ip}/${wan.prefixLen}`, 'dev', wan.ifname], wan.netns);
  await ip(['addr', 'add', `${wan.ip}/${wan.prefixLen}`, 'dev', r.bridge], wan.netns);
  await ip(['link', 'set', r.bridge, 'up'], wan.netns);
  await ip(['link', 'add', r.wanVeth, 'type', 'veth', 'peer', 'name', r.rsiteWan, 'netns', r.rsiteNetns], wan.netns);
  await ip(['link', 'set', r.wanVeth, 'master', r.bridge, 'up'], wan.netns);
  await ip(['addr', 'add', `${r.endpoint}/${wan.prefixLen}`, 'dev', r.rsiteWan], r.rsiteNetns);
  await ip(['link', 'set', r.rsiteWan, 'up'], r.rsiteNetns);
  // rsite reaches the tunnel's endpoint through the gateway's wan address.
  await ip(['route', 'add', `${r.wgDomain.router.replace(/\.\d+$/, '.0')}/${r.wgDomain.prefixLen}`, 'via', gwPlain, 'dev', r.rsiteWan], r.rsiteNetns);
  // The remote site's lan: rsite <-> rhost.
  await ip(['link', 'add', r.rsiteLan, 'type', 'veth', 'peer', 'name', r.rhostIf, 'netns', r.rhostNetns], r.rsiteNetns);
  await ip(['addr', 'add', `${r.rsiteLanIp}/24`, 'dev', r.rsiteLan], r.rsiteNetns);
  await ip(['link', 'set', r.rsiteLan, 'up'], r.rsiteNetns);
  await ip(['addr', 'add', `${r.rhostIp}/24`, 'dev', r.rhostIf], r.rhostNetns);
  await ip(['link', 'set', r.rhostIf, 'up'], r.rhostNetns);
  await ip(['route', 'add', 'default', 'via', r.rsiteLanIp], r.rhostNetns);
  const v6 = r.ipv6;
  if (v6 !== undefined) {
    await sysctl(r.rsiteNetns, 'net.ipv6.conf.all.forwarding', 1);
    await ip(['-6', 'addr', 'add', `${v6.rsiteLanIp}/64`, 'dev', r.rsiteLan, 'nodad'], r.rsiteNetns);
    await ip(['-6', 'addr', 'add', `${v6.rhostIp}/64`, 'dev', r.rhostIf, 'nodad'], r.rhostNetns);
    await ip(['-6', 'route', 'add', 'default', 'via', v6.rsiteLanIp, 'dev', r.rhostIf], r.rhostNetns);
  }
  // wireguard-go, in the foreground (so its PID is ours to stop), its log in the lab's folder.
  const wg = await startWireguardGo(r.rsiteNetns, r.wgIfname, join(plan.stateDir, 'wireguard-go.log'));
  await nsExec(r.rsiteNetns, 'wg', [
    'set', r.wgIfname, 'listen-port', String(r.endpointPort), 'private-key', r.rsiteKeyFile,
    'peer', r.gatewayPublicKey, 'endpoint', `${r.wgDomain.tunnel}:${r.tunnelPort}`,
    'allowed-ips', v6 === undefined ? plan.subnets.lan : `${plan.subnets.lan},${v6.lanPrefix}`,
    ...(r.pskFile === undefined ? [] : ['preshared-key', r.pskFile]),
  ]);
  await ip(['link', 'set', r.wgIfname, 'up'], r.rsiteNetns);
  await ip(['route', 'add', plan.subnets.lan, 'dev', r.wgIfname], r.rsiteNetns);
  if (v6 !== undefined) await ip(['-6', 'route', 'add', v6.lanPrefix, 'dev', r.wgIfname], r.rsiteNetns);
  return [{ name: 'wireguard-go', ...wg }];
}

/**
 * Start `wireguard-go -f IFNAME` in `netns`; resolves once `wg` can talk to it
 * (its UAPI socket exists). One retry if it exits at once (its socket folder
 * can vanish under it while another instance shuts down).
 */
export async function startWireguardGo(netns: string, ifname: string, logFile: string): Promise<ProcIdentity> {
  try {
    return await startWireguardGoOnce(netns, ifname, logFile);
  } catch (e) {
    if (!(e as { early?: boolean }).early) throw e;
    return startWireguardGoOnce(netns, ifname, logFile);
  }
}

async function startWireguardGoOnce(netns: string, ifname: string, logFile: string): Promise<ProcIdentity> {
  mkdirSync('/var/run/wireguard', { recursive: true, mode: 0o755 });
  const log = openSync(logFile, 'a', 0o600);
  const child = spawn('ip', ['netns', 'exec', netns, 'wireguard-go', '-f', ifname], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, LOG_LEVEL: 'error' },
  });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start wireguard-go: run scripts/setup.sh');
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      await nsExec(netns, 'wg', ['show', ifname], { timeoutMs: 5000 });
      break;
    } catch (e) {
      if (exited) throw Object.assign(new Error(`wireguard-go ${ifname} in ${netns} exited at once (see ${logFile})`), { early: true });
      if (Date.now() > deadline) throw new Error(`wireguard-go ${ifname} in ${netns} did not start: ${(e as Error).message}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  const id = await procIdentity(pid);
  if (id === null) throw new Error(`wireguard-go ${ifname} exited at once (see ${logFile})`);
  return id;
}

/** What a remote site may leave outside its namespaces: wireguard-go's UAPI sockets. */
export function removeWireguardSockets(lab: string): void {
  for (const role of ['g', 'x', 'y']) {
    rmSync(`/var/run/wireguard/mg${lab}${role}.sock`, { force: true });
  }
}

