// Lab topologies: two hosts in their own network namespaces joined by a gateway,
// either microgate or the Linux reference (kernel forwarding + nftables).
//
//   lan host 198.18.0.2 ── gateway 198.18.0.1 | 198.19.0.1 ── wan host 198.19.0.2
//
// Everything a lab creates carries its name: namespaces mg-<name>-{wan,lan,gw},
// links mg<name>{w,l,W,L}, state in /run/microgate/labs/<name>/. labDown finds
// what to remove by those names, not only by the state file, so it also cleans
// up a lab whose creation was interrupted.
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createNetns, deleteLinks, deleteNetns, findLinks, ip, listNetns, netnsPids, nsExec,
  procCmdline, procIdentity, procMatches, setCommandObserver, stopProcesses, sysctl,
  type ProcIdentity,
} from './netns.ts';
import {
  LAB_NAME_RE, LABS_DIR, labStateDir, linkPattern, makePlan, netnsPrefix, validateGatewayKind, validateLabName,
  type GatewayKind, type HostPlan, type LabPlan, type RouterSection,
} from './lab-plan.ts';
import type { MicrogateLabOptions } from './microgate-gateway.ts';
import { stopMicrogate } from './init-process.ts';
import { allocateLabUids, releaseLabUids } from './uid-alloc.ts';
import { remoteSitePlan, removeWireguardSockets, startRemoteSite, writeRemoteSiteKeys, type RemoteSiteOptions } from './remote-site.ts';
import { ControlClient, ControlError } from '../sys/control-client.ts';
// What only `lab up` needs (the gateways, the file gateway's lab, the policy) is imported in labUp,
// so that `lab down` and `lab status` start quickly (each module is parsed at every command's start).

/** A host of the lab: its namespace and address (ip6: its global IPv6 address, the lan host's from SLAAC). */
export interface LabHost { netns: string; ip: string; ip6?: string }

/** What `lab up --json` prints: every host, service, port forward and the control endpoint. */
export interface LabInfo {
  name: string;
  gateway: GatewayKind;
  /**
   * wan, lan, dmz always; with --remote-site the remote site's gateway (rsite, wireguard-go) and its host
   * (rhost); with --file-gateway the NAS (a WebDAV server on the lan host: same namespace and address).
   */
  hosts: { wan: LabHost; lan: LabHost; dmz: LabHost; rsite?: LabHost; rhost?: LabHost; nas?: LabHost & { url: string } };
  gatewayAddresses: { wan: string; lan: string; dmz: string };
  /** The router's IPv6 addresses (microgate labs). */
  gatewayAddresses6?: { wan: string; lan: string; dmz: string };
  /** The gateway's port forwards from the wan (the lab policy's, and the file gateway's :443 and :80). */
  forwards: { proto: 'tcp' | 'udp'; from: string; to: string }[];
  /** Servers the lab runs in its hosts: the file gateway and the NAS, the remote site's wireguard-go. */
  services: { name: string; netns: string; listen: string[]; url?: string }[];
  /** The gateway's control API (microgate: its socket, for --lab / --control); null for the Linux gateway. */
  control: { socket: string } | null;
  /** microgate's processes (init first); empty for the Linux gateway. */
  components: { name: string; pid: number }[];
  /** With --file-gateway: where the wan reaches it, and the NAS's share inside. */
  fileGateway?: { url: string; nas: string; config: string };
}

export interface RecordedProcess extends ProcIdentity {
  name: string;
}

/** /run/microgate/labs/<name>/state.json */
export interface LabState {
  version: 1;
  name: string;
  gateway: GatewayKind;
  /** creating: labUp is (or was, if `creator` is gone) building it; up: ready. */
  status: 'creating' | 'up';
  createdAt: string;
  updatedAt: string;
  stateDir: string;
  logFile: string;
  /** The gateway's control socket (microgate only). */
  controlSocket?: string;
  namespaces: string[];
  interfaces: string[];
  /** The process running labUp, while the lab is being created. */
  creator: ProcIdentity | null;
  /** microgate's init, when started. */
  initPid: number | null;
  /** Every process the lab started (init and components), with what identifies it. */
  processes: RecordedProcess[];
  plan: LabPlan;
  info: LabInfo | null;
}

export interface LabUpOptions {
  name: string;
  gateway?: GatewayKind;
  /** How long the lan host may take to reach its gateway (default 10 s). */
  readyTimeoutMs?: number;
  /** Variants of the microgate gateway (ignored for linux). */
  microgate?: MicrogateLabOptions;
  /** The router config section both gateways enforce (default: labRouterConfig(plan), the lab policy). */
  router?: RouterSection;
  /** Add a remote site behind an encrypted tunnel (wireguard-go there, microgate's tunnel here; microgate only). */
  remoteSite?: RemoteSiteOptions;
  /** Add the file publication: a WebDAV NAS in the lan and the file gateway in the dmz (file-gateway-lab.ts). */
  fileGateway?: boolean;
  /** Two gateways between the same hosts, active/standby: the sync link, keepalived per gateway (ha-lab.ts; microgate only). */
  ha?: boolean;
  /**
   * Aborting it (`lab up` does on SIGINT / SIGTERM) stops the build at its next
   * step or wait (within ~0.1 s, or once the command running then ends), removes
   * everything built so far and rejects with a LabInterrupted.
   */
  signal?: AbortSignal;
}

/** labUp was aborted (its `signal`): everything it had built is removed. */
export class LabInterrupted extends Error {
  readonly reason: string;
  constructor(name: string, reason: string) {
    super(`lab up ${name} interrupted (${reason}): everything it had built is removed`);
    this.name = 'LabInterrupted';
    this.reason = reason;
  }
}

// ---- logging: every command run for a lab goes to its lab.log --------------------

const currentLog = new AsyncLocalStorage<string>();
setCommandObserver((cmd, args, error) => {
  const file = currentLog.getStore();
  if (!file) return;
  const line = `${new Date().toISOString()} $ ${[cmd, ...args].join(' ')}${error ? `\n  -> ${error.message}` : ''}\n`;
  try { appendFileSync(file, line, { mode: 0o600 }); } catch { /* the state dir may be gone during labDown */ }
});

function note(msg: string): void {
  const file = currentLog.getStore();
  if (!file) return;
  try { appendFileSync(file, `${new Date().toISOString()} ${msg}\n`, { mode: 0o600 }); } catch { /* ignore */ }
}

// ---- state -----------------------------------------------------------------------

/** Where labUp copies the state folder (logs) of a failed attempt: LABS_DIR/.failed/NAME. */
export function failedLogDir(name: string): string {
  return join(LABS_DIR, '.failed', name);
}

export function statePath(name: string): string {
  return join(labStateDir(name), 'state.json');
}

/** The control API client of a microgate lab (its init's socket). */
export function labControl(st: LabState, timeoutMs?: number): ControlClient {
  if (st.controlSocket === undefined) throw new ControlError(0, 'MG_NO_LAB', `lab "${st.name}" runs the ${st.gateway} gateway, which has no control API`);
  return new ControlClient({ socket: st.controlSocket }, timeoutMs);
}

export async function readLabState(name: string): Promise<LabState | null> {
  try {
    return JSON.parse(await readFile(statePath(name), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

async function writeLabState(state: LabState): Promise<void> {
  state.updatedAt = new Date().toISOString();
  const p = statePath(state.name);
  const tmp = `${p}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, p);
}

function labNamespaces(plan: LabPlan): string[] {
  const ns = [plan.hosts.wan.netns, plan.hosts.lan.netns, plan.hosts.dmz.netns];
  if (plan.linux) ns.push(plan.linux.gwNetns);
  if (plan.remote) ns.push(plan.remote.rsiteNetns, plan.remote.rhostNetns);
  if (plan.ha) ns.push(plan.ha.syncNetns, ...plan.ha.gateways.map((g) => g.kaNetns));
  return ns;
}

function labInterfaces(plan: LabPlan): string[] {
  const ifs = [plan.hosts.wan.ifname, plan.hosts.lan.ifname, plan.hosts.dmz.ifname];
  if (plan.linux) ifs.push(plan.linux.wanIfname, plan.linux.lanIfname, plan.linux.dmzIfname);
  return ifs;
}

/** The wan domain's port forwards of a router section, as "proto gateway:port -> host:port". */
function wanForwards(router: RouterSection, wanIp: string): LabInfo['forwards'] {
  const wan = ((router.domains ?? {}) as Record<string, Record<string, unknown> | undefined>).wan ?? {};
  const out: LabInfo['forwards'] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    for (const f of (wan[`${proto}-forward`] as { port: number; host: string; 'host-port'?: number }[] | undefined) ?? []) {
      out.push({ proto, from: `${wanIp}:${f.port}`, to: `${f.host}:${f['host-port'] ?? f.port}` });
    }
  }
  return out;
}

/** The lab's description (`lab up --json`); `router`: the section its gateway enforces (default: the lab policy). */
export function labInfo(plan: LabPlan, components: { name: string; pid: number }[], lanIp6: string | undefined, router: RouterSection): LabInfo {
  const ip6 = (h: HostPlan, learned?: string): { ip6?: string } => {
    const a = h.ip6 === 'slaac' ? learned : h.ip6?.split('/')[0];
    return a === undefined ? {} : { ip6: a };
  };
  const hosts: LabInfo['hosts'] = {
    wan: { netns: plan.hosts.wan.netns, ip: plan.hosts.wan.ip, ...ip6(plan.hosts.wan) },
    lan: { netns: plan.hosts.lan.netns, ip: plan.hosts.lan.ip, ...ip6(plan.hosts.lan, lanIp6) },
    dmz: { netns: plan.hosts.dmz.netns, ip: plan.hosts.dmz.ip, ...ip6(plan.hosts.dmz) },
  };
  const services: LabInfo['services'] = [];
  const r = plan.remote;
  if (r !== undefined) {
    hosts.rsite = { netns: r.rsiteNetns, ip: r.endpoint };
    hosts.rhost = { netns: r.rhostNetns, ip: r.rhostIp };
    services.push({ name: 'wireguard-go', netns: r.rsiteNetns, listen: [`${r.endpoint}:${r.endpointPort}/udp`] });
  }
  const f = plan.fileGateway;
  if (f !== undefined) {
    hosts.nas = { netns: f.nas.netns, ip: f.nas.ip, url: f.nas.url };
    services.push(
      { name: 'file-gateway', netns: f.service.netns, listen: [`${f.service.ip}:${f.service.httpsPort}/tcp`, `${f.service.ip}:${f.service.httpPort}/tcp`], url: f.publicUrl },
      { name: 'nas', netns: f.nas.netns, listen: [`${f.nas.ip}:${f.nas.port}/tcp`], url: f.nas.url },
    );
  }
  return {
    name: plan.name,
    gateway: plan.kind,
    hosts,
    gatewayAddresses: { ...plan.gatewayAddresses },
    ...(plan.gatewayAddresses6 ? { gatewayAddresses6: { ...plan.gatewayAddresses6 } } : {}),
    forwards: wanForwards(router, plan.gatewayAddresses.wan),
    services,
    control: plan.kind === 'microgate' ? { socket: plan.controlSocket } : null,
    components,
    ...(f ? { fileGateway: { url: f.publicUrl, nas: f.nas.url, config: f.configFile } } : {}),
  };
}

const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));

/** `p`, or a rejection after `ms` with `message`; the timer is cleared either way (no 10 s wait at exit). */
async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Throws when labUp's signal has been aborted (checked between steps and in every wait). */
function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new Error(`aborted: ${String(signal.reason ?? 'abort')}`);
}

// ---- up --------------------------------------------------------------------------

/** Give a host its address, link up, and (lan) the default route. The NIC exists in its namespace. */
async function configureHost(h: HostPlan): Promise<void> {
  const present = await findLinks(n => n === h.ifname, h.netns);
  if (present.length === 0) {
    throw new Error(`interface ${h.ifname} is missing from namespace ${h.netns}`);
  }
  await ip(['addr', 'add', `${h.ip}/${h.prefixLen}`, 'dev', h.ifname], h.netns);
  if (h.ip6 !== undefined) {
    // IPv6 on (a namespace may start with it off), no forwarding: a host; SLAAC accepts router advertisements.
    await sysctl(h.netns, `net.ipv6.conf.${h.ifname}.disable_ipv6`, 0);
    await sysctl(h.netns, `net.ipv6.conf.${h.ifname}.accept_ra`, h.ip6 === 'slaac' ? 1 : 0);
    await sysctl(h.netns, `net.ipv6.conf.${h.ifname}.autoconf`, h.ip6 === 'slaac' ? 1 : 0);
    if (h.ip6 !== 'slaac') await ip(['-6', 'addr', 'add', h.ip6, 'dev', h.ifname, 'nodad'], h.netns);
  }
  await ip(['link', 'set', h.ifname, 'up'], h.netns);
  if (h.gateway) await ip(['route', 'add', 'default', 'via', h.gateway, 'dev', h.ifname], h.netns);
  for (const [prefix, via] of h.routes6 ?? []) await ip(['-6', 'route', 'add', prefix, 'via', via, 'dev', h.ifname], h.netns);
}

/**
 * A caller's own router section decides which hosts have IPv6: the host of a
 * domain without `address6` (microgate's lan host: without `ra`, its SLAAC source)
 * stays IPv4-only, and the lab does not wait for an address it cannot get.
 */
function ipv6OfRouter(plan: LabPlan, router: RouterSection): void {
  const domains = (router.domains ?? {}) as Record<string, Record<string, unknown> | undefined>;
  for (const h of ['wan', 'lan', 'dmz'] as const) {
    const d = domains[h];
    if (d?.address6 === undefined || (plan.hosts[h].ip6 === 'slaac' && d.ra === undefined)) {
      plan.hosts[h].ip6 = undefined;
      plan.hosts[h].routes6 = undefined;
    }
  }
  if (Object.values(plan.hosts).every((h) => h.ip6 === undefined)) {
    plan.gatewayAddresses6 = undefined;
    plan.subnets6 = undefined;
  }
}

/** The global IPv6 address a host configured from router advertisements (SLAAC), once it has one (DAD done). */
async function waitForSlaac(h: HostPlan, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    checkAborted(signal);
    const { stdout } = await nsExec(h.netns, 'ip', ['-6', '-o', 'addr', 'show', 'dev', h.ifname, 'scope', 'global'], { timeoutMs: 3000 });
    const m = /inet6 ([0-9a-f:]+)\/64 .*dynamic/.exec(stdout);
    if (m !== null && !/tentative/.test(stdout)) return m[1];
    if (Date.now() >= deadline) throw new Error(`not ready: ${h.netns} has no SLAAC address on ${h.ifname} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Ping `target` from `netns` until it answers or `timeoutMs` passes. */
async function waitForPing(netns: string, target: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    checkAborted(signal);
    try {
      await nsExec(netns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', target], { timeoutMs: 3000 });
      return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() >= deadline) {
      throw new Error(`not ready: ${netns} cannot ping ${target} after ${timeoutMs} ms (${last})`);
    }
    await sleep(200);
  }
}

/**
 * Build lab `name`. Refuses if anything of that lab exists. On any failure,
 * removes everything created so far and rethrows. Resolves once the lan host
 * can ping its gateway.
 */
export async function labUp(opts: LabUpOptions): Promise<LabInfo> {
  const name = opts.name;
  const kind = opts.gateway ?? 'microgate';
  validateLabName(name);
  validateGatewayKind(kind);
  const { startLinuxGateway } = await import('./linux-gateway.ts');
  const { startMicrogate } = await import('./microgate-gateway.ts');
  const { fileGatewayPlan, prepareFileGatewayLab, startFileGatewayLab, waitForInitService } = await import('./file-gateway-lab.ts');
  const { labRouterConfig } = await import('./lab-policy.ts');
  const ha = opts.ha === true ? await import('./ha-lab.ts') : undefined;
  if (ha !== undefined && (kind !== 'microgate' || opts.remoteSite !== undefined || opts.fileGateway)) {
    throw new Error('--ha builds two microgate gateways: not with --gateway linux, --remote-site or --file-gateway');
  }

  await mkdir(LABS_DIR, { recursive: true });
  const leftovers = [...await listNetns(netnsPrefix(name)), ...await findLinks(linkPattern(name))];
  if (leftovers.length) {
    throw new Error(`lab ${name} exists (${leftovers.join(', ')}): run "microgate lab down --name ${name}" first`);
  }
  const stateDir = labStateDir(name);
  try {
    await mkdir(stateDir, { mode: 0o700 }); // not recursive: the lock against a second labUp of the same name
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`lab ${name} exists (${stateDir}): run "microgate lab down --name ${name}" first`);
    }
    throw e;
  }
  let plan: LabPlan;
  try {
    // A uid range of its own, allocated (uid-alloc.ts): no other lab, user or process has any of it.
    plan = await makePlan(name, kind, allocateLabUids(name));
    if (opts.router !== undefined) ipv6OfRouter(plan, opts.router);
    if (opts.remoteSite !== undefined) plan.remote = remoteSitePlan(plan, opts.remoteSite);
    if (opts.fileGateway) plan.fileGateway = fileGatewayPlan(plan);
    // The second gateway needs a uid range of its own (each init checks that nothing else uses its range).
    if (ha !== undefined) plan.ha = ha.haLabPlan(plan, allocateLabUids(name));
  } catch (e) {
    releaseLabUids(name);
    await rm(stateDir, { recursive: true, force: true });
    throw e;
  }

  const logFile = join(plan.stateDir, 'lab.log');
  const now = new Date().toISOString();
  const state: LabState = {
    version: 1,
    name,
    gateway: kind,
    status: 'creating',
    createdAt: now,
    updatedAt: now,
    stateDir: plan.stateDir,
    logFile,
    controlSocket: kind === 'microgate' ? plan.controlSocket : undefined,
    namespaces: labNamespaces(plan),
    interfaces: labInterfaces(plan),
    creator: await procIdentity(process.pid),
    initPid: null,
    processes: [],
    plan,
    info: null,
  };

  const signal = opts.signal;
  const step = (): void => checkAborted(signal);
  return currentLog.run(logFile, async () => {
    note(`lab up ${name} --gateway ${kind}`);
    try {
      await writeLabState(state);
      for (const h of [plan.hosts.wan, plan.hosts.lan, plan.hosts.dmz]) {
        step();
        await createNetns(h.netns);
        await sysctl(h.netns, 'net.ipv4.ip_forward', 0);
      }
      step();
      if (plan.fileGateway) {
        prepareFileGatewayLab(plan);
        // Under microgate, init starts the file gateway (gateway config `services`) before
        // the lab gives the dmz host its address: let it bind that address already.
        if (kind === 'microgate') await sysctl(plan.hosts.dmz.netns, 'net.ipv4.ip_nonlocal_bind', 1);
      }

      let components: { name: string; pid: number }[] = [];
      if (plan.remote) writeRemoteSiteKeys(plan.remote);
      step();
      if (ha !== undefined) {
        await ha.prepareHaLab(plan);
        for (const g of plan.ha!.gateways) {
          step();
          const gp = ha.haGatewayPlan(plan, g, opts.microgate);
          const onSpawn = async (pid: number): Promise<void> => {
            if (g.n === 1) state.initPid = pid;
            const id = await procIdentity(pid);
            if (id) state.processes.push({ name: `init-${g.n}`, ...id });
            await writeLabState(state);
          };
          const started = await startMicrogate(gp.plan, gp.opts, opts.router, { onSpawn, signal });
          for (const c of started.components.filter((x) => x.pid !== started.initPid)) {
            const id = await procIdentity(c.pid);
            if (id) state.processes.push({ name: `${c.name}-${g.n}`, ...id });
            components.push({ name: `${c.name}-${g.n}`, pid: c.pid });
          }
          components.unshift({ name: `init-${g.n}`, pid: started.initPid });
          await writeLabState(state);
        }
      } else if (kind === 'linux') {
        await startLinuxGateway(plan, opts.router);
      } else {
        // init is recorded the moment it exists: an interrupted or failed start stops it (labDown) whatever happens next.
        const onSpawn = async (pid: number): Promise<void> => {
          state.initPid = pid;
          const id = await procIdentity(pid);
          if (id) state.processes.push({ name: 'init', ...id });
          await writeLabState(state);
        };
        const started = await startMicrogate(plan, opts.microgate, opts.router, { onSpawn, signal });
        const procs = [{ name: 'init', pid: started.initPid }, ...started.components.filter(c => c.pid !== started.initPid)];
        state.processes = state.processes.filter((p) => p.pid !== started.initPid);
        for (const p of procs) {
          const id = await procIdentity(p.pid);
          if (id) state.processes.push({ name: p.name, ...id });
          else note(`process ${p.name} (pid ${p.pid}) is not running`);
        }
        await writeLabState(state);
        components = procs;
      }

      for (const h of [plan.hosts.wan, plan.hosts.lan, plan.hosts.dmz]) {
        step();
        await configureHost(h);
      }
      if (plan.remote) {
        step();
        state.processes.push(...await startRemoteSite(plan));
        await writeLabState(state);
      }
      if (ha !== undefined) {
        for (const g of plan.ha!.gateways) {
          step();
          // Each recorded once `ip netns exec` has become it (the identity includes the command line).
          const execed = async (pid: number, cmd: string): Promise<ProcIdentity | null> => {
            for (let i = 0; i < 40 && !((await procCmdline(pid)) ?? cmd).startsWith(cmd); i++) await sleep(50);
            return procIdentity(pid);
          };
          const watcher = await execed(ha.startLinkWatch(plan, g), '/bin/sh');
          if (watcher) state.processes.push({ name: `link-watch-${g.n}`, ...watcher });
          const id = await execed(ha.startKeepalived(plan, g), 'keepalived');
          if (id) state.processes.push({ name: `keepalived-${g.n}`, ...id });
          await writeLabState(state);
        }
        await ha.waitForMaster(plan, opts.readyTimeoutMs ?? 15_000, signal);
      }
      await waitForPing(plan.hosts.lan.netns, plan.gatewayAddresses.lan, opts.readyTimeoutMs ?? 10_000, signal);
      const lanIp6 = plan.hosts.lan.ip6 === 'slaac' ? await waitForSlaac(plan.hosts.lan, opts.readyTimeoutMs ?? 20_000, signal) : undefined;
      if (plan.fileGateway) {
        step();
        const started = await startFileGatewayLab(plan, { startService: kind === 'linux' });
        // Under microgate init runs the service: wait until it reports it healthy (its PID as of now; /status has the current one).
        if (kind === 'microgate') started.push({ name: 'file-gateway', pid: await waitForInitService(new ControlClient({ socket: plan.controlSocket }), 30_000, signal) });
        for (const p of started) {
          const id = await procIdentity(p.pid);
          if (id) state.processes.push({ name: p.name, ...id });
        }
        await writeLabState(state);
      }

      step();
      const info = labInfo(plan, components, lanIp6, opts.router ?? labRouterConfig(plan));
      state.status = 'up';
      state.info = info;
      state.creator = null;
      await writeLabState(state);
      note('lab up: ready');
      return info;
    } catch (e) {
      // Ctrl-C in a terminal signals the whole process group: a command running then (ip, ping) may die of it and
      // its failure arrive before the signal's handler has run. Let the handler run first.
      if (signal !== undefined && !signal.aborted) await sleep(100);
      if (signal?.aborted) {
        // Interrupted (Ctrl-C, SIGTERM): whatever failed on the way is a consequence; remove everything, keep nothing.
        const reason = String(signal.reason ?? 'aborted');
        note(`lab up interrupted (${reason}) during: ${(e as Error).message}; removing everything`);
        try {
          await labDown(name);
        } catch (e2) {
          throw new Error(`lab up ${name} interrupted (${reason}), and removing what it had built failed: ${(e2 as Error).message}`);
        }
        throw new LabInterrupted(name, reason);
      }
      note(`lab up failed: ${(e as Error).message}; cleaning up`);
      // Keep the logs of the failed attempt (the state folder itself goes with the lab).
      const kept = failedLogDir(name);
      try {
        await rm(kept, { recursive: true, force: true });
        // Root-only like the state folder (its sockets are not copied: they would be dead).
        await mkdir(kept, { recursive: true, mode: 0o700 });
        await chmod(kept, 0o700);
        await cp(plan.stateDir, kept, { recursive: true, filter: (src) => !src.endsWith('.sock') });
        (e as Error).message += `\n(logs of the failed attempt kept in ${kept})`;
      } catch { /* nothing to keep */ }
      try {
        await labDown(name);
      } catch (e2) {
        (e as Error).message += ` (and cleaning up failed: ${(e2 as Error).message})`;
      }
      throw e;
    }
  });
}

/**
 * Start gateway `n` of HA lab `name` again (its init died: a test's or a
 * bench's SIGKILL) and record its new processes in the lab's state, so that
 * `lab down` stops them. Resolves once it runs (as backup).
 */
export async function labRestartHaGateway(name: string, n: number): Promise<{ initPid: number }> {
  const state = await readLabState(name);
  if (state === null || state.plan.ha === undefined) throw new Error(`lab ${name} is not an HA lab (lab up --ha)`);
  const { restartHaGateway } = await import('./ha-lab.ts');
  return currentLog.run(state.logFile, async () => {
    note(`restart HA gateway ${n}`);
    const mine = (p: RecordedProcess): boolean => p.name === `init-${n}` || p.name.endsWith(`-${n}`) && !p.name.startsWith('keepalived-') && !p.name.startsWith('link-watch-');
    // The old init's components die with it (pdeathsig), not at once on a loaded machine: the new init
    // would find their uids in use and refuse to start.
    const deadline = Date.now() + 10_000;
    for (const p of state.processes.filter(mine)) {
      while (await procMatches(p)) {
        if (Date.now() > deadline) throw new Error(`gateway ${n}'s old process ${p.name} (pid ${p.pid}) is still running`);
        await sleep(50);
      }
    }
    const started = await restartHaGateway(state.plan, n);
    state.processes = state.processes.filter((p) => !mine(p));
    for (const c of [{ name: 'init', pid: started.initPid }, ...started.components.filter((x) => x.pid !== started.initPid)]) {
      const id = await procIdentity(c.pid);
      if (id) state.processes.push({ name: `${c.name}-${n}`, ...id });
    }
    if (n === 1) state.initPid = started.initPid;
    await writeLabState(state);
    return { initPid: started.initPid };
  });
}

// ---- down ------------------------------------------------------------------------

export interface LabDownResult {
  name: string;
  /** PIDs signalled: recorded processes, and processes found in the lab's namespaces. */
  stoppedPids: number[];
  namespaces: string[];
  links: string[];
  stateRemoved: boolean;
}

/**
 * Tear down lab `name`: stop microgate (by recorded PID, after checking the PID
 * still is the process we started), stop whatever still runs in the lab's
 * namespaces, delete the namespaces and links with the lab's names, remove the
 * state folder. Idempotent; works on half-built labs and on labs without state.
 */
export async function labDown(name: string): Promise<LabDownResult> {
  validateLabName(name);
  const state = await readLabState(name);
  const stateDir = labStateDir(name);
  const result: LabDownResult = { name, stoppedPids: [], namespaces: [], links: [], stateRemoved: false };
  const problems: string[] = [];

  const body = async () => {
    note(`lab down ${name}`);
    // 1. microgate: ask it to stop, then make sure every recorded process is gone.
    if (state?.gateway === 'microgate' && state.initPid) {
      const init = state.processes.find(p => p.pid === state.initPid);
      if (init && await procMatches(init)) {
        try {
          await withTimeout(stopMicrogate(state.plan, state.initPid), 10_000, 'timed out after 10 s');
        } catch (e) {
          note(`stopMicrogate: ${(e as Error).message}; signalling the processes`);
        }
      }
    }
    if (state?.processes?.length) result.stoppedPids.push(...await stopProcesses(state.processes));

    // 2. Processes still inside the lab's namespaces (tools run in the hosts), then the namespaces.
    //    Each namespace on its own, all at once: every `ip` is a process start, slow on a loaded machine.
    const namespaces = await listNetns(netnsPrefix(name));
    await Promise.all(namespaces.map(async (ns) => {
      const ids: ProcIdentity[] = [];
      for (const pid of await netnsPids(ns)) {
        if (pid === process.pid) continue;
        const id = await procIdentity(pid);
        if (id) ids.push(id);
      }
      if (ids.length) {
        note(`stopping processes in ${ns}: ${ids.map(i => `${i.pid} (${i.cmdline})`).join(', ')}`);
        result.stoppedPids.push(...await stopProcesses(ids, 1000));
      }
    }));
    await Promise.all(namespaces.map(async (ns) => {
      try {
        await deleteNetns(ns);
        result.namespaces.push(ns);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }));
    result.namespaces.sort();

    // wireguard-go's UAPI sockets of a remote site (left behind if it was killed).
    removeWireguardSockets(name);

    // 3. Links left in the root namespace (e.g. a TAP not yet moved into its host).
    try {
      result.links = await deleteLinks(linkPattern(name));
    } catch (e) {
      problems.push((e as Error).message);
    }
  };
  await currentLog.run(join(stateDir, 'lab.log'), body);

  // 4. Verify, then remove the state (kept, with its log, if something could not be removed).
  const ns = await listNetns(netnsPrefix(name));
  const links = await findLinks(linkPattern(name));
  if (ns.length || links.length) {
    problems.push(`still present: ${[...ns, ...links].join(', ')}`);
  }
  if (problems.length) {
    throw new Error(`lab ${name}: tear-down incomplete: ${problems.join('; ')} (state kept in ${stateDir})`);
  }
  releaseLabUids(name);
  await rm(stateDir, { recursive: true, force: true });
  result.stateRemoved = true;
  return result;
}

// ---- status ----------------------------------------------------------------------

export interface LabStatus {
  name: string;
  gateway: GatewayKind | 'unknown';
  /**
   * up: complete and alive; creating: labUp is running; incomplete: creation was
   * interrupted; degraded: a namespace or process is gone; orphaned: namespaces
   * with the lab's names but no state (run `lab down`).
   */
  status: 'up' | 'creating' | 'incomplete' | 'degraded' | 'orphaned';
  createdAt: string | null;
  stateDir: string | null;
  controlSocket: string | null;
  namespaces: { name: string; present: boolean }[];
  processes: { name: string; pid: number; alive: boolean }[];
  info: LabInfo | null;
}

const NETNS_RE = /^mg-([a-z][a-z0-9]{0,7})-(wan|lan|dmz|gw|rsite|rhost|sync|ka1|ka2)$/;

/** Every lab: those with a state folder, and orphaned namespaces of labs without one. */
export async function labStatus(): Promise<LabStatus[]> {
  const present = new Set(await listNetns('mg-'));
  let dirs: string[] = [];
  try {
    dirs = (await readdir(LABS_DIR, { withFileTypes: true })).filter(d => d.isDirectory() && LAB_NAME_RE.test(d.name)).map(d => d.name);
  } catch { /* no labs yet */ }

  const out: LabStatus[] = [];
  const known = new Set<string>();
  for (const name of dirs.sort()) {
    known.add(name);
    const st = await readLabState(name);
    if (!st) {
      const nss = [...present].filter(n => n.startsWith(netnsPrefix(name)));
      out.push({
        name, gateway: 'unknown', status: 'incomplete', createdAt: null, stateDir: labStateDir(name),
        controlSocket: null, namespaces: nss.map(n => ({ name: n, present: true })), processes: [], info: null,
      });
      continue;
    }
    const namespaces = st.namespaces.map(n => ({ name: n, present: present.has(n) }));
    const processes = [];
    for (const p of st.processes) processes.push({ name: p.name, pid: p.pid, alive: await procMatches(p) });
    let status: LabStatus['status'];
    if (st.status === 'creating') {
      status = st.creator && await procMatches(st.creator) ? 'creating' : 'incomplete';
    } else {
      status = namespaces.every(n => n.present) && processes.every(p => p.alive) ? 'up' : 'degraded';
    }
    out.push({
      name, gateway: st.gateway, status, createdAt: st.createdAt, stateDir: st.stateDir,
      controlSocket: st.controlSocket ?? null, namespaces, processes, info: st.info,
    });
  }

  const orphans = new Map<string, string[]>();
  for (const n of present) {
    const m = NETNS_RE.exec(n);
    if (!m || known.has(m[1])) continue;
    orphans.set(m[1], [...(orphans.get(m[1]) ?? []), n]);
  }
  for (const [name, nss] of [...orphans].sort()) {
    out.push({
      name, gateway: nss.some(n => n.endsWith('-gw')) ? 'linux' : 'unknown', status: 'orphaned',
      createdAt: null, stateDir: null, controlSocket: null,
      namespaces: nss.map(n => ({ name: n, present: true })), processes: [], info: null,
    });
  }
  return out;
}
