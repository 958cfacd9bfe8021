// The plan of a lab: every name and address the lab will create, computed
// before anything is touched, so that building, tearing down and the gateway
// (microgate's supervisor or the Linux reference) all agree on one source.
// The plans of the optional parts (remote site, file gateway) are declared here
// too, so every lab module imports this one and none imports another for a type.
import { createServer } from 'node:net';
import { join } from 'node:path';

export type GatewayKind = 'microgate' | 'linux';
export const GATEWAY_KINDS: readonly GatewayKind[] = ['microgate', 'linux'];

/** Where lab state lives: one folder per lab with state.json and the logs. */
export const LABS_DIR = process.env.MICROGATE_LABS_DIR ?? '/run/microgate/labs';

/** Lab names: a lower-case letter, then up to 7 lower-case letters or digits. */
export const LAB_NAME_RE = /^[a-z][a-z0-9]{0,7}$/;

export function validateLabName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !LAB_NAME_RE.test(name)) {
    throw new Error(`invalid lab name ${JSON.stringify(name)}: use 1 to 8 characters, ` +
      'a lower-case letter first, then lower-case letters or digits (e.g. "lab1")');
  }
}

export function validateGatewayKind(kind: unknown): asserts kind is GatewayKind {
  if (typeof kind !== 'string' || !(GATEWAY_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`invalid gateway ${JSON.stringify(kind)}: use one of ${GATEWAY_KINDS.join(', ')}`);
  }
}

/** One host of the lab: a network namespace with one NIC. */
export interface HostPlan {
  netns: string;
  /** The host's NIC: a TAP served by microgate, or one end of a veth pair to the Linux gateway. */
  ifname: string;
  ip: string;
  prefixLen: number;
  /** The default route's next hop, when the host has one (the lan host). */
  gateway?: string;
  /**
   * IPv6: a static address with its prefix (wan, dmz; the lan host on the
   * Linux reference), or 'slaac' (the lan host on microgate: configured from
   * the router's advertisements); absent: no IPv6 beyond link-local.
   */
  ip6?: string;
  /** IPv6 routes: [prefix, via] (the dmz's and the Linux lab's lan host's default route; the wan host's route back to the routed lab prefixes). */
  routes6?: readonly (readonly [string, string])[];
}

/** The Linux reference gateway: a namespace with forwarding on and one veth end per host. */
export interface LinuxGatewayPlan {
  gwNetns: string;
  /** The gateway's interface facing the wan host (peer of hosts.wan.ifname). */
  wanIfname: string;
  /** The gateway's interface facing the lan host (peer of hosts.lan.ifname). */
  lanIfname: string;
  /** The gateway's interface facing the dmz host (peer of hosts.dmz.ifname). */
  dmzIfname: string;
  /** The nftables table the reference policy lives in. */
  nftTable: string;
}

export interface LabPlan {
  name: string;
  kind: GatewayKind;
  /** /run/microgate/labs/<name>: state.json, lab.log, and the gateway's own logs. */
  stateDir: string;
  /**
   * The Unix socket of the gateway's control API (microgate's init):
   * STATE/control/control.sock, in a folder of its own that init creates 0700
   * (with --file-gateway the state folder itself lets www-data pass through).
   */
  controlSocket: string;
  /** The first uid of the lab's allocated range (uid-alloc.ts): components at uidBase + index, the file gateway at + 15. */
  uidBase: number;
  hosts: { wan: HostPlan; lan: HostPlan; dmz: HostPlan };
  /** The gateway's address on each side (the lan and dmz hosts' default routes point at theirs). */
  gatewayAddresses: { wan: string; lan: string; dmz: string };
  /** The subnets, CIDR notation. */
  subnets: { wan: string; lan: string; dmz: string };
  /** IPv6 (both gateways; absent when the lab's router section gives no domain address6): the router's addresses and the /64s. */
  gatewayAddresses6?: { wan: string; lan: string; dmz: string };
  subnets6?: { wan: string; lan: string; dmz: string };
  /** Present when kind is 'linux'. */
  linux?: LinuxGatewayPlan;
  /** Present with `--remote-site`: the second site behind the tunnel (remote-site.ts). */
  remote?: RemoteSitePlan;
  /** Present with `--file-gateway`: the NAS in the lan and the file gateway in the dmz (file-gateway-lab.ts). */
  fileGateway?: FileGatewayLabPlan;
  /** Present with `--ha`: two gateways between the same hosts, the sync link, keepalived per gateway (ha-lab.ts). */
  ha?: HaLabPlan;
}

/** One gateway of an HA lab. */
export interface HaGatewayPlan {
  /** 1 or 2: its id in the pair. */
  n: number;
  /** Its own folder (gateway.yaml, gateway.log, keepalived's files) and control socket. */
  stateDir: string;
  controlSocket: string;
  uidBase: number;
  /** Its TAPs: one port on each host's bridge, one on the sync bridge, and its liveness TAP in its keepalived namespace. */
  taps: { wan: string; lan: string; dmz: string; sync: string; alive: string };
  /** keepalived's namespace: its VRRP interface (a veth whose peer is a port of the lan bridge), its address on the lan. */
  kaNetns: string;
  kaIf: string;
  kaPeer: string;
  kaIp: string;
  /** The bridge in kaNetns whose one port is the liveness TAP. */
  aliveBridge: string;
  priority: number;
}

export interface HaLabPlan {
  /** The sync link: a namespace with a bridge joining the gateways' sync TAPs. */
  syncNetns: string;
  syncBridge: string;
  /** The pair key (base64 of 32 random bytes, 0600), one file both gateways' conn-syncs read. */
  keyFile: string;
  vrid: number;
  gateways: [HaGatewayPlan, HaGatewayPlan];
}

/** RFC 2544 benchmarking ranges (198.18.0.0/15): never routed outside the lab. */
export const LAN_SUBNET = '198.18.0.0/24';
export const WAN_SUBNET = '198.19.0.0/24';
export const LAN_GATEWAY = '198.18.0.1';
export const LAN_HOST = '198.18.0.2';
export const WAN_GATEWAY = '198.19.0.1';
export const WAN_HOST = '198.19.0.2';
/** The dmz: servers reachable from the wan only through port forwards. */
export const DMZ_SUBNET = '198.18.128.0/24';
export const DMZ_GATEWAY = '198.18.128.1';
export const DMZ_HOST = '198.18.128.2';
export const PREFIX_LEN = 24;
/** IPv6 (documentation prefix 2001:db8::/32): one /64 per domain; IPv6 is routed, no NAT66. */
export const LAN6_SUBNET = '2001:db8:0:1::/64';
export const LAN6_GATEWAY = '2001:db8:0:1::1';
/** The lan host's static IPv6 address on the Linux reference (microgate's lab gives it SLAAC instead). */
export const LAN6_HOST = '2001:db8:0:1::2';
export const DMZ6_SUBNET = '2001:db8:0:80::/64';
export const DMZ6_GATEWAY = '2001:db8:0:80::1';
export const DMZ6_HOST = '2001:db8:0:80::2';
export const WAN6_SUBNET = '2001:db8:ff::/64';
export const WAN6_GATEWAY = '2001:db8:ff::1';
export const WAN6_HOST = '2001:db8:ff::2';
/** Everything behind the router seen from the wan host (lan and dmz /64s; not the wan's 2001:db8:ff::/64). */
export const INSIDE6 = '2001:db8::/48';

/** Namespace names of a lab: mg-<name>-wan, mg-<name>-lan, mg-<name>-dmz, mg-<name>-gw. */
export function netnsName(lab: string, role: 'wan' | 'lan' | 'dmz' | 'gw' | 'sync' | 'ka1' | 'ka2'): string {
  return `mg-${lab}-${role}`;
}

/** Every namespace of lab `name` starts with this (the trailing '-' keeps "a" from matching "ab"). */
export function netnsPrefix(lab: string): string {
  return `mg-${lab}-`;
}

/**
 * Interface names of a lab (at most 11 characters, the kernel allows 15):
 * mg<name>w / mg<name>l / mg<name>d are the hosts' NICs, mg<name>W / mg<name>L /
 * mg<name>D the Linux gateway's ends of the veth pairs.
 */
export function ifName(lab: string, role: 'w' | 'l' | 'd' | 'W' | 'L' | 'D'): string {
  const n = `mg${lab}${role}`;
  if (n.length > 15) throw new Error(`interface name ${n} longer than 15 characters`);
  return n;
}

/**
 * Matches exactly the links lab `name` may create: mg<name> plus one role
 * letter. (A plain prefix would let lab "a" delete lab "ab"'s links.)
 */
export function linkPattern(lab: string): RegExp {
  // With --ha also mg<name>s (the sync bridge) and the gateways' ports: mg<name>{w,l,d,s,h,k,K}{1,2}.
  return new RegExp(`^mg${lab}([wldWLDs]|[wldshkK][12])$`);
}

export function labStateDir(name: string): string {
  return join(LABS_DIR, name);
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

/** Compute the plan of lab `name` with the uid range it was allocated (validates the name and kind; touches nothing but a probe socket). */
export async function makePlan(name: string, kind: GatewayKind, uidBase: number): Promise<LabPlan> {
  validateLabName(name);
  validateGatewayKind(kind);
  const plan: LabPlan = {
    name,
    kind,
    stateDir: labStateDir(name),
    controlSocket: join(labStateDir(name), 'control', 'control.sock'),
    uidBase,
    hosts: {
      wan: { netns: netnsName(name, 'wan'), ifname: ifName(name, 'w'), ip: WAN_HOST, prefixLen: PREFIX_LEN },
      lan: { netns: netnsName(name, 'lan'), ifname: ifName(name, 'l'), ip: LAN_HOST, prefixLen: PREFIX_LEN, gateway: LAN_GATEWAY },
      dmz: { netns: netnsName(name, 'dmz'), ifname: ifName(name, 'd'), ip: DMZ_HOST, prefixLen: PREFIX_LEN, gateway: DMZ_GATEWAY },
    },
    gatewayAddresses: { wan: WAN_GATEWAY, lan: LAN_GATEWAY, dmz: DMZ_GATEWAY },
    subnets: { wan: WAN_SUBNET, lan: LAN_SUBNET, dmz: DMZ_SUBNET },
  };
  // IPv6 on both gateways. The lan host: SLAAC from microgate's router advertisements; the Linux
  // reference sends none (no radvd), so there it gets the same /64 statically, default via the gateway.
  if (kind === 'microgate') {
    plan.hosts.lan.ip6 = 'slaac';
  } else {
    plan.hosts.lan.ip6 = `${LAN6_HOST}/64`;
    plan.hosts.lan.routes6 = [['default', LAN6_GATEWAY]];
  }
  plan.hosts.dmz.ip6 = `${DMZ6_HOST}/64`;
  plan.hosts.dmz.routes6 = [['default', DMZ6_GATEWAY]];
  plan.hosts.wan.ip6 = `${WAN6_HOST}/64`;
  plan.hosts.wan.routes6 = [[INSIDE6, WAN6_GATEWAY]];
  plan.gatewayAddresses6 = { wan: WAN6_GATEWAY, lan: LAN6_GATEWAY, dmz: DMZ6_GATEWAY };
  plan.subnets6 = { wan: WAN6_SUBNET, lan: LAN6_SUBNET, dmz: DMZ6_SUBNET };
  if (kind === 'linux') {
    plan.linux = {
      gwNetns: netnsName(name, 'gw'),
      wanIfname: ifName(name, 'W'),
      lanIfname: ifName(name, 'L'),
      dmzIfname: ifName(name, 'D'),
      nftTable: 'microgate',
    };
  }
  return plan;
}

/** The router's config section of a lab (its `config:` under the router component). */
export type RouterSection = Record<string, unknown>;

export interface RemoteSitePlan {
  /** The remote site's gateway (wireguard-go) and its one host. */
  rsiteNetns: string;
  rhostNetns: string;
  /** In the wan host's namespace: the bridge that makes the wan a segment, and its veth end towards rsite. */
  bridge: string;
  wanVeth: string;
  /** rsite's interfaces: on the wan, wireguard-go's TUN, towards its host. */
  rsiteWan: string;
  wgIfname: string;
  rsiteLan: string;
  /** rhost's NIC. */
  rhostIf: string;
  /** rsite's public address on the wan segment and its WireGuard port. */
  endpoint: string;
  endpointPort: number;
  /** The remote site's prefix, rsite's address in it, its host. */
  sitePrefix: string;
  rsiteLanIp: string;
  rhostIp: string;
  /** The router's domains towards the tunnel and the tunnel's addresses in them. */
  tunDomain: { router: string; tunnel: string; prefixLen: number };
  wgDomain: { router: string; tunnel: string; prefixLen: number };
  tunnelPort: number;
  /** Key files (mode 0400, root) in the lab's folder; public keys as `wg` prints them. */
  gatewayKeyFile: string;
  rsiteKeyFile: string;
  pskFile: string | undefined;
  gatewayPublicKey: string;
  rsitePublicKey: string;
  rekeyAfterTimeS: number | undefined;
  persistentKeepalive: number;
  /** IPv6 inside the tunnel (labs with IPv6): the remote /64, rsite's and rhost's addresses, the lan's /64, the tun domain. */
  ipv6?: { sitePrefix: string; rsiteLanIp: string; rhostIp: string; lanPrefix: string; tunDomain: { router: string; tunnel: string; prefixLen: number } };
}

export interface FileGatewayLabPlan {
  dir: string;
  /** Config, certificate, users.json, publications.json (root:uid 0750). */
  etcDir: string;
  /** The service's own state (uid 0700): audit.jsonl, consumed.json. */
  stateDir: string;
  configFile: string;
  /** The service's output with the Linux gateway (under microgate: init's gateway.log, lines [file-gateway]). */
  logFile: string;
  uid: number;
  nas: { netns: string; ip: string; port: number; dir: string; shareDir: string; url: string; readUser: string; writeUser: string; writePasswordFile: string };
  service: { netns: string; ip: string; httpsPort: number; httpPort: number };
  /** What the wan sees: https://<gateway's wan address>. */
  publicUrl: string;
  publicIp: string;
}
