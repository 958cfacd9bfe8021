// The lab's hook into microgate: write the lab's gateway config, start init
// (`microgate run`) detached with its log in the lab's folder, wait until the
// control API says every component is running, and stop it again by PID.
//
// Contract with src/lab/lab.ts:
// - startMicrogate(plan) is called after the host namespaces exist. init creates
//   the TAP devices plan.hosts.{wan,lan}.ifname and moves each into its host's
//   namespace; when this resolves they exist there and the lab configures the
//   host side. If it throws, it has stopped whatever it started.
//   With `link: packet` the lab makes a veth pair per host instead (the host's
//   end plan.hosts.X.ifname in its namespace, the gateway's end mg<name>W/L/D
//   in init's), and init attaches a packet link (AF_PACKET) to each gateway
//   end, moving it into a namespace of its own; the host namespaces' removal
//   deletes the pairs (a clean stop of init moves the ends back first).
// - stopMicrogate(plan, initPid) stops init (SIGTERM, then SIGKILL after 5 s).
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Document, visit } from 'yaml';
import type { LabPlan, RouterSection } from './lab-plan.ts';
import { labRouterConfig } from './lab-policy.ts';
import { parseRouterConfig } from '../components/router/config.ts';
import { formatIpv4, formatMac } from '../net/addr.ts';
import { ifName } from './lab-plan.ts';
import { ip, sysctl } from './netns.ts';

/** The router section as YAML: block mappings down to each domain's keys, each rule on one line. */
function routerYaml(router: RouterSection): string {
  const doc = new Document(router);
  visit(doc, {
    Map(_key, node, path) {
      // path: document, domains pair, domains map, a domain pair, the domain map, a key pair [, list] ...
      if (path.length > 6) node.flow = true;
    },
    Seq(_key, node, path) {
      if (path.length > 7) node.flow = true;
    },
  });
  return doc.toString();
}

function indent(text: string, n: number): string {
  return text.trimEnd().split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');
}
import { ROOT } from '../init/sandbox.ts';
import { remoteSiteGatewayYaml, withRemoteSiteRouter } from './remote-site.ts';
import { fileGatewayServiceYaml } from './file-gateway-lab.ts';
import { LAB_UID_COUNT } from './uid-alloc.ts';
import { ControlClient } from '../sys/control-client.ts';
import { initAlive as alive, stopMicrogate } from './init-process.ts';

export { stopMicrogate };


/** How microgate is built in a lab: the variants the benchmark compares. */
export interface MicrogateLabOptions {
  /** Isolation of every component (default process). */
  isolation?: 'process' | 'thread' | 'inline';
  /** Session transport (default shm). */
  transport?: 'shm' | 'socket';
  /** Slots per session direction (default 256; the paper's buffer test uses x8). */
  slots?: number;
  /** Polling budget of the component loops, microseconds or auto (config scheduling.spin-us; default: the config's default). */
  spinUs?: number | 'auto';
  /** Polling budget of the nic-drivers' loops only, microseconds (their components' spin-us; the router keeps the default). */
  driverSpinUs?: number;
  /** TSO/GSO and checksum offload on the TAP devices (default true). */
  offload?: boolean;
  /**
   * The links to the hosts: TAP devices (default), or veth pairs whose gateway ends are packet links (AF_PACKET, kind
   * packet), received through a PACKET_MMAP ring; packet-recvmmsg: the same links, received by recvmmsg alone (the
   * drivers' `rx-ring: false`).
   */
  link?: 'tap' | 'packet' | 'packet-recvmmsg';
  /** Memory limit per component process, MiB (cgroup; default none). */
  memoryMb?: number;
  /** Restart policy of every component (default always). */
  restart?: 'always' | 'on-failure' | 'never';
  /** Heartbeat interval, ms (default 1000; 0 off). */
  heartbeatMs?: number;
  /** Accept fault injection on the control API (`debug: { fault-injection: true }`; default off; testing only). */
  faultInjection?: boolean;
  /** Add the IDS: the router mirrors every domain to a `monitor` component (EVE log: STATE_DIR/eve.json). */
  monitor?: LabMonitorOptions;
  /** Add conn-sync: the router exports its connections to it over `sync` and gets them back after a restart (issue 19). */
  connSync?: boolean;
  /** Also serve the control API on loopback TCP (config control.listen, control.token-file; default: the socket only). */
  controlTcp?: { listen: string; tokenFile: string };
  /** One gateway of an HA pair (ha-lab.ts): the lab sets it per gateway. */
  ha?: HaGatewayOptions;
}

/** What makes a gateway config one of an HA pair (ha-lab.ts). */
export interface HaGatewayOptions {
  self: number;
  peer: number;
  /** Its TAPs: the hosts' segments (each a port of the bridge named plan.hosts.X.ifname in the host's namespace), sync, liveness. */
  taps: { wan: string; lan: string; dmz: string; sync: string; alive: string };
  syncNetns: string;
  syncBridge: string;
  aliveNetns: string;
  aliveBridge: string;
  keyFile: string;
}

export interface LabMonitorOptions {
  /** Rule files (absolute paths) besides the built-in rules. */
  ruleFiles?: string[];
  /** Inline rules. */
  rules?: string;
  /** Extra monitor config keys (see src/components/monitor/README.md). */
  extra?: Record<string, unknown>;
}

/** The monitor's config section in a lab: HOME_NET is the lab's own subnets (IPv4 and IPv6). */
export function labMonitorConfig(plan: LabPlan, domains: string[], m: LabMonitorOptions,
  arpStatic: Record<string, string> = {}): Record<string, unknown> {
  // The protected side: every subnet but the untrusted wan (EXTERNAL_NET is the rest).
  // Both families: the lan and dmz IPv4 subnets and, when the lab has IPv6, their IPv6 prefixes.
  const nets = [plan.subnets, plan.subnets6].flatMap((sn) => Object.entries((sn ?? {}) as Record<string, string>).filter(([k]) => k !== 'wan').map(([, v]) => v));
  return {
    domains,
    // The router's own bindings are known: any other MAC claiming them is poisoning.
    ...(Object.keys(arpStatic).length > 0 ? { detectors: { 'arp-spoof': { static: arpStatic } } } : {}),
    'eve-log': join(plan.stateDir, 'eve.json'),
    vars: { HOME_NET: `[${nets.join(',')}]` },
    ...(m.ruleFiles !== undefined && m.ruleFiles.length > 0 ? { 'rule-files': m.ruleFiles } : {}),
    ...(m.rules !== undefined ? { rules: m.rules } : {}),
    ...(m.extra ?? {}),
  };
}

/** Slots of the lab's mirror session (router -> monitor) unless --slots sets every session's. */
export const MIRROR_SLOTS = 1024;

/**
 * The gateway config of a lab: three drivers (wan, lan, dmz) and one router
 * running `router` (default: labRouterConfig, the lab policy).
 */
export function labGatewayConfig(plan: LabPlan, opts: MicrogateLabOptions = {}, router: RouterSection = labRouterConfig(plan)): string {
  const t = opts.transport ?? 'shm';
  const iso = opts.isolation ?? 'process';
  // --remote-site: the keystore, the tunnel, and the router's domains towards it.
  if (plan.remote !== undefined) router = withRemoteSiteRouter(router, plan);
  const rs = plan.remote === undefined ? undefined : remoteSiteGatewayYaml(plan, iso, t);
  const off = opts.offload ?? true;
  const slots = opts.slots === undefined ? '' : `, slots: ${opts.slots}`;
  const extra = [
    opts.memoryMb === undefined ? '' : `, memory-mb: ${opts.memoryMb}`,
    opts.restart === undefined ? '' : `, restart: ${opts.restart}`,
    opts.heartbeatMs === undefined ? '' : `, heartbeat-ms: ${opts.heartbeatMs}`,
  ].join('');
  const packet = packetLinks(opts.link);
  const drvExtra = `${extra}${opts.driverSpinUs === undefined ? '' : `, spin-us: ${opts.driverSpinUs}`}${opts.link === 'packet-recvmmsg' ? ', config: { rx-ring: false }' : ''}`;
  const extraBlock = extra.split(', ').filter((x) => x !== '').map((x) => `\n    ${x}`).join('');
  let monitorComponent = '';
  let monitorSession = '';
  if (opts.monitor !== undefined) {
    const domains = Object.keys((router as { domains: Record<string, unknown> }).domains);
    router = { ...router, mirror: { domains } };
    monitorComponent = `  - name: monitor
    type: monitor
    isolation: ${iso}${extraBlock}
    config: ${JSON.stringify(labMonitorConfig(plan, domains, opts.monitor, routerArpBindings(router)))}
`;
    // The mirror's ring holds 1024 frames (~25 ms of both copies of a 5 Gbit/s flow in GSO frames):
    // the monitor on a shared core is scheduled out for milliseconds at a time.
    monitorSession = `  - { between: [router.mirror, monitor.mirror], transport: ${t}, slots: ${opts.slots ?? MIRROR_SLOTS} }
`;
  }
  const ha = opts.ha;
  if (ha !== undefined) router = { ...router, ha: true };
  const sync = opts.connSync === true || ha !== undefined;
  // An HA pair's conn-sync holds the pair key and a session to the sync link's driver.
  const syncComponent = !sync ? '' : ha === undefined ? `  - { name: conn-sync, type: conn-sync, isolation: ${iso}${extra} }
` : `  - { name: drv-sync, type: nic-driver, isolation: ${iso}, devices: { tap: tap-sync }${extra} }
  - { name: conn-sync, type: conn-sync, isolation: ${iso}, devices: { pair-key: pair-key }, config: { pair: { self: ${ha.self}, peer: ${ha.peer} } }${extra} }
`;
  const syncSession = !sync ? '' : `  - { between: [router.sync, conn-sync.router], transport: ${t}${slots} }
${ha === undefined ? '' : `  - { between: [drv-sync.nic, conn-sync.pair], transport: ${t}${slots} }
`}`;
  if (ha !== undefined && packet) throw new Error('an HA pair\'s gateways are ports of bridges by TAP devices: link packet is not supported with ha');
  // HA: each host NIC is a bridge; the gateway's TAPs are its ports (init enslaves them at every start).
  // Packet links: the gateway's end of each host's veth pair (makePacketLinks).
  const ends = packetLinkEnds(plan);
  const tap = (h: 'wan' | 'lan' | 'dmz'): string => ha !== undefined
    ? `{ kind: tap, ifname: ${ha.taps[h]}, netns: ${plan.hosts[h].netns}, offload: ${off}, bridge: ${plan.hosts[h].ifname} }`
    : packet
      ? `{ kind: packet, ifname: ${ends[h]} }`
      : `{ kind: tap, ifname: ${plan.hosts[h].ifname}, netns: ${plan.hosts[h].netns}, offload: ${off} }`;
  const haDevices = ha === undefined ? '' : `  tap-sync: { kind: tap, ifname: ${ha.taps.sync}, netns: ${ha.syncNetns}, offload: false, bridge: ${ha.syncBridge} }
  # no component holds it: it exists while init runs (keepalived tracks it: a dead init fails over at once)
  tap-alive: { kind: tap, ifname: ${ha.taps.alive}, netns: ${ha.aliveNetns}, offload: false, bridge: ${ha.aliveBridge} }
  pair-key: { kind: file, path: ${ha.keyFile} }
`;
  return `# microgate lab "${plan.name}": generated by \`microgate lab up\`.
control:
  socket: ${plan.controlSocket}
${opts.controlTcp === undefined ? '' : `  listen: ${opts.controlTcp.listen}\n  token-file: ${opts.controlTcp.tokenFile}\n`}sandbox:
  uid-base: ${plan.uidBase}
  uid-count: ${LAB_UID_COUNT}
${opts.spinUs === undefined ? '' : `scheduling:\n  spin-us: ${opts.spinUs}\n`}${opts.faultInjection === true ? 'debug:\n  fault-injection: true\n' : ''}devices:
  tap-wan: ${tap('wan')}
  tap-lan: ${tap('lan')}
  tap-dmz: ${tap('dmz')}
${haDevices}${rs?.devices ?? ''}components:
  - { name: drv-wan, type: nic-driver, isolation: ${iso}, devices: { tap: tap-wan }${drvExtra} }
  - { name: drv-lan, type: nic-driver, isolation: ${iso}, devices: { tap: tap-lan }${drvExtra} }
  - { name: drv-dmz, type: nic-driver, isolation: ${iso}, devices: { tap: tap-dmz }${drvExtra} }
  - name: router
    type: router
    isolation: ${iso}${extraBlock}
    config:
${indent(routerYaml(router), 6)}
${rs?.components ?? ''}${monitorComponent}${syncComponent}sessions:
  - { between: [drv-wan.nic, router.wan], transport: ${t}${slots} }
  - { between: [drv-lan.nic, router.lan], transport: ${t}${slots} }
  - { between: [drv-dmz.nic, router.dmz], transport: ${t}${slots} }
${rs?.sessions ?? ''}${monitorSession}${syncSession}${plan.fileGateway === undefined ? '' : fileGatewayServiceYaml(plan.fileGateway)}`;
}

/** The gateway's end of each host's veth pair on a packet-link lab (role letter as the Linux reference's). */
export function packetLinkEnds(plan: LabPlan): Record<'wan' | 'lan' | 'dmz', string> {
  return { wan: ifName(plan.name, 'W'), lan: ifName(plan.name, 'L'), dmz: ifName(plan.name, 'D') };
}

/** Packet-link lab: a veth pair per host, the host's end in its namespace (down, configured by the lab), the gateway's end in init's (no address). */
/** Whether the lab's links are veth pairs with packet-link ends (with or without the drivers' receive ring). */
function packetLinks(link: MicrogateLabOptions['link']): boolean {
  return link === 'packet' || link === 'packet-recvmmsg';
}

async function makePacketLinks(plan: LabPlan): Promise<void> {
  const ends = packetLinkEnds(plan);
  for (const h of ['wan', 'lan', 'dmz'] as const) {
    await ip(['link', 'add', plan.hosts[h].ifname, 'netns', plan.hosts[h].netns, 'type', 'veth', 'peer', 'name', ends[h]]);
    // A port prepared as docs/DEPLOY.md says: no IPv6 of the host's on it, up.
    await sysctl(undefined, `net.ipv6.conf.${ends[h]}.disable_ipv6`, 1);
    await ip(['link', 'set', ends[h], 'up']);
  }
}

interface StatusBody {
  ready: boolean;
  components: { name: string; pid: number; state: string; lastExit: string }[];
}

async function getStatus(control: ControlClient): Promise<StatusBody | undefined> {
  try {
    return await control.get<StatusBody>('/status', 1000);
  } catch {
    return undefined;
  }
}

/** What the lab needs to hear while init starts: its PID at once (to record it), and when to give up (Ctrl-C). */
export interface StartHooks {
  /** Called (and awaited) as soon as init is spawned, before it is ready. */
  onSpawn?: (pid: number) => Promise<void> | void;
  /** Aborted: stop waiting for init (the caller stops it: it has the PID from onSpawn). */
  signal?: AbortSignal;
}

export async function startMicrogate(plan: LabPlan, opts: MicrogateLabOptions = {}, router?: RouterSection, hooks: StartHooks = {}): Promise<{ initPid: number; components: { name: string; pid: number }[] }> {
  mkdirSync(plan.stateDir, { recursive: true });
  const configFile = join(plan.stateDir, 'gateway.yaml');
  if (packetLinks(opts.link)) await makePacketLinks(plan);
  // 0600: with a remote site the tunnel's section holds a preshared key.
  writeFileSync(configFile, labGatewayConfig(plan, opts, router), { mode: 0o600 });
  // init writes its log itself, rotated (16 MiB, 4 old files: src/sys/rotating-file.ts);
  // stdout/stderr keep only what bypasses it (Node's own warnings, a crash trace).
  const logFile = join(plan.stateDir, 'gateway.log');
  const outFile = join(plan.stateDir, 'gateway.out');
  const out = openSync(outFile, 'a', 0o600);
  const child = spawn(process.execPath, [resolve(ROOT, 'src/cli/main.ts'), 'run', configFile, '--log', logFile], {
    detached: true,
    stdio: ['ignore', out, out],
    cwd: ROOT,
  });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start microgate init');
  await hooks.onSpawn?.(pid);
  // init's own start timeout (MG_START_TIMEOUT_S, default 20 s; `microgate run`) and 10 s more.
  const waitS = 10 + (Number(process.env.MG_START_TIMEOUT_S) || 20);
  const control = new ControlClient({ socket: plan.controlSocket });
  const deadline = Date.now() + 1000 * waitS;
  for (;;) {
    if (hooks.signal?.aborted) throw new Error(`aborted while init (pid ${pid}) was starting: ${String(hooks.signal.reason ?? 'abort')}`);
    const s = await getStatus(control);
    if (s?.ready) return { initPid: pid, components: s.components.map((c) => ({ name: c.name, pid: c.pid })) };
    if (!alive(pid) || Date.now() > deadline) {
      if (alive(pid)) await stopMicrogate(plan, pid);
      let tail = '';
      for (const f of [logFile, outFile]) {
        try {
          tail += readFileSync(f, 'utf8').trim().split('\n').slice(-8).join('\n') + '\n';
        } catch {
          // no such file
        }
      }
      throw new Error(`microgate init ${alive(pid) ? `did not get ready within ${waitS} s` : 'exited'}; last lines of ${logFile} and ${outFile}:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The router's IPv4 address -> MAC in each domain (as the router derives them), for the monitor's static ARP bindings. */
export function routerArpBindings(router: RouterSection): Record<string, string> {
  const cfg = parseRouterConfig(router, 'router', { file: '(lab router section)', path: '' });
  const out: Record<string, string> = {};
  for (const d of cfg.domains) out[formatIpv4(d.address)] = formatMac(d.mac);
  return out;
}
