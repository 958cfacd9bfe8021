// init: the supervisor, like Genode's core + init. It holds every capability
// (TAP fds, session memory and wake-up fds), starts each component sandboxed
// and hands it only its own ends at spawn, restarts what dies (resetting the
// survivors' ends of its sessions first), and stops everything on request.
import { measureWakeCost } from './wake-cost.ts';
import { EveCollector, type EveSource } from './eve-collector.ts';
import { BlockFeedback } from './block-feedback.ts';
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, closeSync, readdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { resolve } from 'node:path';
import type { ComponentSpec, GatewayConfig, SessionSpec } from './config.ts';
import { loadConfig } from './config.ts';
import { changedComponents, topologyChange, type ReloadResult } from './reload.ts';
import { CODE_DIR, ROOT, checkCodeReadable, sandboxCommand } from './sandbox.ts';
import { rssBytes } from './procfs.ts';
import { FIRST_CAP_FD } from '../runtime/messages.ts';
import { FrameDecoder, MAX_HOST_FRAME, encodeFrame } from '../runtime/channel.ts';
import { REPLY_TO, escapeText, isViolation, parseHostMessage, type Violation } from './host-messages.ts';
import { logLines } from './log-lines.ts';
import type { ComponentGrant, ComponentReport, HostToInit, InitToHost } from '../runtime/messages.ts';
import type { SessionGrant } from '../session/types.ts';
import { createSessionResources } from '../session/create.ts';
import { openTap } from '../sys/tap.ts';
import { confinePacketLink, type PacketLink } from './packet-link.ts';
import { LinkWatch, type LinkHealth } from './link-watch.ts';
import { openFileDevice } from './file-device.ts';
import { HaControl } from './ha.ts';
import { setCloexec } from '../sys/libc.ts';
import { emptyReply, mergeReplies } from '../trace/protocol.ts';
import type { TraceReply, TraceRequest } from '../trace/protocol.ts';
import { MemoryCgroups } from './cgroup.ts';
import { auditUnit } from './audit.ts';
import { ServiceSupervisor, checkServiceNamespaces, type ServiceEventCounts, type ServiceStatus } from './service-supervisor.ts';
import type { ServiceAuditReport } from './service-audit.ts';
import type { AuditReport } from './audit.ts';
import type { CgroupUnit } from './cgroup.ts';
import { checkFault, isFaultKind, isHostileAttack, type FaultOutcome } from './fault.ts';
import { checkUidRange } from './uid-check.ts';

const run = promisify(execFile);
const HOST_SCRIPT = resolve(ROOT, 'src/runtime/host.ts');
/** The unit that hosts every `thread` and `inline` component. */
const SHARED_HOST = 'host';
/** Timed-out request ids remembered per process (late replies to them are dropped quietly). */
const EXPIRED_KEPT = 256;
/** How often init looks at each packet link's state (link-watch.ts). */
const LINK_WATCH_MS = 250;
/** At a stop, how long the units without a link device get to end before the drivers are stopped too. */
const STOP_FIRST_MS = 1000;

export type ChildState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

interface SessionRes {
  spec: SessionSpec;
  /** fds held by init; both sides inherit all of them. */
  fds: number[];
  grants: [Omit<SessionGrant, 'name' | 'fds'> & { fds: number[] }, Omit<SessionGrant, 'name' | 'fds'> & { fds: number[] }];
}

/** One sandboxed process: a `process` component alone, or the shared host of all `thread`/`inline` ones. */
interface Child {
  /** The unit's name: the component's name, or "host" for the shared host. */
  name: string;
  specs: ComponentSpec[];
  uid: number;
  proc: ChildProcess | undefined;
  pid: number;
  state: ChildState;
  restarts: number;
  startedAt: number;
  /** init-side fds, in the order they appear at FIRST_CAP_FD... in the child. */
  capFds: number[];
  grants: ComponentGrant[];
  /** Open requests of the running process: the reply type each expects, and who waits. */
  pending: Map<number, { expect: HostToInit['type']; cb: (m: HostToInit) => void }>;
  /** The running process's control channel (its fd 3), and what init reads from it. */
  channel: Socket | undefined;
  decoder: FrameDecoder | undefined;
  /** Where the conversation with the running process is: hello expected, bootstrap sent (ready or fatal expected), running. */
  phase: 'hello' | 'bootstrap' | 'running';
  /** Heartbeat requests not answered yet (a pong beyond them answers nothing). */
  pingsOut: number;
  /** Ids of requests that timed out (the last EXPIRED_KEPT): a late reply to one is dropped, not a violation. */
  expired: number[];
  lateReplies: number;
  /** Processes killed for breaking the control channel's protocol, and the last reason. */
  violations: number;
  lastViolation: string;
  /** Set when init kills the running process for a violation (its exit is reported so). */
  killedFor: string | undefined;
  /** The bootstrap went out to the running process ("ready" is expected only after it). */
  bootstrapSent: boolean;
  restartTimer: NodeJS.Timeout | undefined;
  lastExit: string;
  /** Memory cgroup of the unit, when any of its components has a limit. */
  cgroup: CgroupUnit | undefined;
  /** Heartbeat: interval (0 off), time of the last answer, timer. */
  heartbeatMs: number;
  lastPong: number;
  heartbeatTimer: NodeJS.Timeout | undefined;
  hangs: number;
  /** What the process reported when it could not start ("fatal"), until it runs. */
  startError: string | undefined;
  /** Deaths by the kernel's OOM killer at the cgroup limit; the group's oom_kill count when the process started. */
  oomKills: number;
  oomKillsAtSpawn: number;
  /** Link fds replaced by a reattach (link-watch.ts): closed once the process holding them has ended. */
  retiredFds: number[];
  /** Set when init stops the unit to hand it a new link socket: restarted at once, whatever its restart policy. */
  handover: boolean;
}

export interface InitOptions {
  log?: (line: string) => void;
  /** Skip the seccomp filter in components (debugging only). */
  noSeccomp?: boolean;
}

export class Init {
  readonly config: GatewayConfig;
  #log: (line: string) => void;
  #noSeccomp: boolean;
  #tapFds = new Map<string, number>();
  /** `kind: packet` devices, each in a network namespace of its own (packet-link.ts); their fds are in #tapFds too. */
  #packetLinks = new Map<string, PacketLink>();
  /** Watches the packet links: up, down, gone; reattaches a recreated interface (link-watch.ts). */
  #linkWatch = new LinkWatch({ log: (l) => this.#log(l), reattach: (d) => this.#reattach(d) });
  /** Link devices whose frames carry a virtio-net header other than 12 bytes. */
  #vnetHdrLen = new Map<string, number>();
  /** Polling budget of every component loop, ns (config scheduling.spin-us; `auto`: measured at start). */
  #spinNs = 0;
  #sessions: SessionRes[] = [];
  #children = new Map<string, Child>();
  #stopping = false;
  /** While start() waits for the components: one that dies before it runs fails the start (no restarts). */
  #starting = false;
  #nextId = 1;
  #cgroups: MemoryCgroups | undefined;
  /** The services of config `services` (service-supervisor.ts), once the components run. */
  #services: ServiceSupervisor | undefined;
  readonly startedAt = Date.now();

  constructor(config: GatewayConfig, opts: InitOptions = {}) {
    this.config = config;
    this.#log = opts.log ?? ((l) => process.stdout.write(`${l}\n`));
    this.#noSeccomp = opts.noSeccomp ?? false;
  }

  /** Create devices and sessions, start every component; resolves when all are ready. */
  async start(timeoutMs = 20000): Promise<void> {
    if (process.getuid?.() !== 0) throw new Error('init must run as root: it creates TAP devices and sandboxes components');
    // Whatever init inherited from its own parent (beyond stdio) must not leak
    // into components: only the fds init hands out are their capabilities.
    for (const name of readdirSync('/proc/self/fd')) {
      const fd = Number(name);
      if (fd > 2) setCloexec(fd);
    }
    const unreadable = checkCodeReadable();
    if (unreadable !== undefined) throw new Error(unreadable);
    // Components, the shared host and services run as uids of the reserved range: nothing else may use it.
    const { uidBase, uidCount } = this.config.sandbox;
    const taken = checkUidRange(uidBase, uidBase + uidCount - 1, `${this.config.file}: sandbox.uid-base, uid-count: the reserved uid range`);
    if (taken !== undefined) throw new Error(`${taken}; refusing to start: choose another sandbox.uid-base, or free these uids`);
    checkServiceNamespaces(this.config);
    mkdirSync(CODE_DIR, { recursive: true, mode: 0o755 });
    const spin = this.config.scheduling?.spinUs ?? 0;
    if (spin === 'auto') {
      const w = await measureWakeCost();
      this.#spinNs = w.budgetNs;
      this.#log(`init: scheduling.spin-us auto: a wake-up round trip takes ${(w.roundTripNs / 1000).toFixed(1)} us here; component loops poll ${(w.budgetNs / 1000).toFixed(1)} us before they sleep`);
    } else {
      this.#spinNs = spin * 1000;
    }
    try {
      await this.#createDevices();
      this.#createSessions();
      if ([...this.config.components, ...(this.config.services ?? [])].some((c) => c.memoryMb !== undefined)) {
        this.#cgroups = new MemoryCgroups();
        if (this.#cgroups.problem !== undefined) {
          throw new Error(`memory limits are configured but cannot be enforced: ${this.#cgroups.problem}`);
        }
      }
      const shared = this.config.components.filter((c) => c.isolation !== 'process');
      for (const spec of this.config.components) {
        if (spec.isolation === 'process') this.#children.set(spec.name, this.#prepareChild(spec.name, [spec], this.config.sandbox.uidBase + spec.index));
      }
      if (shared.length > 0) {
        this.#children.set(SHARED_HOST, this.#prepareChild(SHARED_HOST, shared, this.config.sandbox.uidBase + this.config.components.length));
      }
      const ready = [...this.#children.values()].map((c) => this.#waitState(c, 'running', timeoutMs));
      this.#starting = true;
      for (const c of this.#children.values()) this.#spawn(c);
      try {
        await Promise.all(ready);
      } finally {
        this.#starting = false;
      }
      this.#linkWatch.start(LINK_WATCH_MS);
      this.#startEveCollector();
      this.#startHa();
      // Services start once the components run; init.ready does not wait for them (their state is in /status).
      if ((this.config.services ?? []).length > 0) {
        this.#services = new ServiceSupervisor(this.config.services ?? [], { log: this.#log, kinds: this.config.catalog.serviceKinds, cgroups: this.#cgroups, noSeccomp: this.#noSeccomp });
        this.#services.start();
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async #createDevices(): Promise<void> {
    for (const dev of this.config.devices.values()) {
      if (dev.kind === 'packet') {
        if (dev.netns !== undefined && !existsSync(`/run/netns/${dev.netns}`)) {
          throw new Error(`${this.config.file}: ${dev.path}.netns: network namespace "${dev.netns}" does not exist`);
        }
        try {
          // The interface goes into a network namespace of its own, where its socket is made: the driver can reach no other.
          const link = confinePacketLink(dev.ifname, dev.netns, dev.vnetHdr, {
            hostAddresses: dev.hostAddresses,
            warn: (l) => this.#log(`init: device ${dev.name}: ${l}`),
          });
          this.#packetLinks.set(dev.name, link);
          this.#linkWatch.add(dev.name, link);
          this.#tapFds.set(dev.name, link.fd);
          this.#vnetHdrLen.set(dev.name, link.vnetHdrLen);
        } catch (e) {
          throw new Error(`${this.config.file}: ${dev.path}: cannot attach to interface "${dev.ifname}": ${(e as Error).message}`);
        }
        this.#log(`init: device ${dev.name}: packet socket on ${dev.ifname} (moved from ${dev.netns ? `netns ${dev.netns}` : "init's netns"} into a network namespace of its own), ${this.#vnetHdrLen.get(dev.name)}-byte virtio-net headers`);
        continue;
      }
      if (existsSync(`/sys/class/net/${dev.ifname}`)) {
        throw new Error(`${this.config.file}: ${dev.path}.ifname: interface "${dev.ifname}" already exists; init creates its own TAP devices`);
      }
      if (dev.netns !== undefined && !existsSync(`/run/netns/${dev.netns}`)) {
        throw new Error(`${this.config.file}: ${dev.path}.netns: network namespace "${dev.netns}" does not exist`);
      }
      const fd = openTap(dev.ifname, dev.offload);
      this.#tapFds.set(dev.name, fd);
      if (dev.netns !== undefined) {
        await run('ip', ['link', 'set', 'dev', dev.ifname, 'netns', dev.netns]);
      }
      if (dev.bridge !== undefined) {
        // A port of a bridge (an HA pair's shared segment): enslaved and up; the bridge must exist.
        const ns = dev.netns === undefined ? [] : ['-n', dev.netns];
        try {
          await run('ip', [...ns, 'link', 'set', 'dev', dev.ifname, 'master', dev.bridge]);
          await run('ip', [...ns, 'link', 'set', 'dev', dev.ifname, 'up']);
        } catch (e) {
          throw new Error(`${this.config.file}: ${dev.path}.bridge: cannot make ${dev.ifname} a port of bridge "${dev.bridge}"${dev.netns ? ` in netns ${dev.netns}` : ''}: ${(e as Error).message}`);
        }
      }
      this.#log(`init: device ${dev.name}: TAP ${dev.ifname}${dev.netns ? ` in netns ${dev.netns}` : ''}${dev.bridge ? ` on bridge ${dev.bridge}` : ''}, offload ${dev.offload ? 'on' : 'off'}`);
    }
    // File devices (e.g. a key): opened, never read; the fd is granted like a TAP's.
    for (const dev of this.config.files?.values() ?? []) {
      this.#tapFds.set(dev.name, openFileDevice(dev, this.config.file));
      this.#log(`init: device ${dev.name}: file ${dev.filePath} (opened read-only, not read)`);
    }
  }

  #createSessions(): void {
    const iso = new Map(this.config.components.map((c) => [c.name, c.isolation]));
    this.config.sessions.forEach((spec, i) => {
      if (iso.get(spec.a.component) === 'inline' && iso.get(spec.b.component) === 'inline') {
        // Both ends on one thread of the shared host: plain memory, no fds.
        const g = { transport: 'local' as const, slots: spec.slots, slotSize: spec.slotSize, fds: [] as number[], key: `s${i}` };
        this.#sessions.push({ spec, fds: [], grants: [{ ...g, side: 0 }, { ...g, side: 1 }] });
        return;
      }
      const res = createSessionResources(spec.transport, { slots: spec.slots, slotSize: spec.slotSize });
      this.#sessions.push({ spec, fds: res.fds, grants: res.grants });
    });
  }

  #prepareChild(name: string, specs: ComponentSpec[], uid: number): Child {
    const capFds: number[] = [];
    const childFd = (initFd: number): number => {
      let i = capFds.indexOf(initFd);
      if (i < 0) {
        capFds.push(initFd);
        i = capFds.length - 1;
      }
      return FIRST_CAP_FD + i;
    };
    const grants = specs.map((spec): ComponentGrant => {
      const fds: Record<string, number> = {};
      const vnetHdrLen: Record<string, number> = {};
      const packetLinks: string[] = [];
      for (const [cap, dev] of Object.entries(spec.devices)) {
        fds[cap] = childFd(this.#tapFds.get(dev)!);
        const h = this.#vnetHdrLen.get(dev);
        if (h !== undefined) vnetHdrLen[cap] = h;
        if (this.#packetLinks.has(dev)) packetLinks.push(cap);
      }
      const sessions: SessionGrant[] = [];
      for (const s of this.#sessions) {
        for (const side of [0, 1] as const) {
          const ep = side === 0 ? s.spec.a : s.spec.b;
          if (ep.component !== spec.name) continue;
          const g = s.grants[side];
          sessions.push({ ...g, name: ep.port, fds: g.fds.map(childFd) });
        }
      }
      return {
        name: spec.name,
        type: spec.type,
        isolation: spec.isolation,
        module: this.config.catalog.componentTypes[spec.type].module,
        config: this.config.catalog.componentTypes[spec.type].prepare?.(spec.config) ?? spec.config,
        configSource: { file: this.config.file, path: `${spec.path}.config` },
        sessions,
        fds,
        vnetHdrLen,
        packetLinks,
        trace: this.config.trace,
        spinNs: spec.spinUs === undefined ? this.#spinNs : spec.spinUs * 1000,
      };
    });
    return {
      name,
      specs,
      uid,
      proc: undefined,
      pid: 0,
      state: 'starting',
      restarts: 0,
      startedAt: 0,
      capFds,
      grants,
      pending: new Map(),
      channel: undefined,
      decoder: undefined,
      phase: 'hello',
      pingsOut: 0,
      expired: [],
      lateReplies: 0,
      violations: 0,
      lastViolation: '',
      killedFor: undefined,
      bootstrapSent: false,
      restartTimer: undefined,
      lastExit: '',
      cgroup: this.#unitCgroup(name, specs),
      heartbeatMs: Math.min(...specs.map((x) => (x.heartbeatMs === 0 ? Infinity : x.heartbeatMs))),
      lastPong: 0,
      heartbeatTimer: undefined,
      hangs: 0,
      startError: undefined,
      oomKills: 0,
      oomKillsAtSpawn: 0,
      retiredFds: [],
      handover: false,
    };
  }

  #unitCgroup(name: string, specs: ComponentSpec[]): CgroupUnit | undefined {
    const limited = specs.filter((x) => x.memoryMb !== undefined);
    if (limited.length === 0 || this.#cgroups === undefined) return undefined;
    // A shared host gets the sum of its components' limits (and their V8 heaps' default for the rest).
    const mb = limited.reduce((a, x) => a + (x.memoryMb ?? 0), 0) + (specs.length - limited.length) * this.config.sandbox.maxOldSpaceMb;
    return this.#cgroups.unit(name, mb);
  }

  #spawn(c: Child): void {
    const { file, args } = sandboxCommand({ uid: c.uid, maxOldSpaceMb: this.config.sandbox.maxOldSpaceMb, script: HOST_SCRIPT, allowWorker: c.specs.some((x) => x.isolation === 'thread'), cgroupProcs: c.cgroup?.procsFile });
    const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', MG_COMPONENT: c.name };
    if (this.#noSeccomp) env.MG_NO_SECCOMP = '1';
    // fd 3: the control channel, a socket pair (framed messages, src/runtime/channel.ts); no Node IPC.
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe', ...c.capFds], env });
    c.proc = proc;
    // The pid init spawned (the sandbox's programs exec one another: it is the host's); never one a host names.
    c.pid = proc.pid ?? 0;
    c.state = c.restarts === 0 ? 'starting' : 'restarting';
    c.startedAt = Date.now();
    c.oomKillsAtSpawn = c.cgroup?.oomKills() ?? NaN;
    c.phase = 'hello';
    c.pingsOut = 0;
    c.expired = [];
    c.killedFor = undefined;
    c.bootstrapSent = false;
    for (const stream of [proc.stdout, proc.stderr]) {
      if (stream === null) continue;
      logLines(stream, (l) => this.#log(`[${c.name}] ${l}`));
    }
    const channel = proc.stdio[3] as Socket | null;
    if (channel !== null) {
      c.channel = channel;
      const decoder = new FrameDecoder(MAX_HOST_FRAME, (payload) => {
        const m = parseHostMessage(payload);
        if (isViolation(m)) this.#offend(c, proc, m);
        else this.#onMessage(c, proc, m);
      });
      c.decoder = decoder;
      channel.on('data', (chunk: Buffer) => {
        const bad = decoder.push(chunk);
        if (bad !== undefined && bad.code !== 'stopped') this.#offend(c, proc, { code: bad.code, message: bad.message });
      });
      // A dead host's channel ends or fails; its exit (below) is what init acts on.
      channel.on('error', () => undefined);
    }
    proc.on('error', (e) => this.#log(`init: ${c.name}: spawn failed: ${e.message}`));
    proc.on('exit', (code, signal) => this.#onExit(c, proc, code, signal));
  }

  /**
   * The running process of `c` broke the control channel's protocol (a bad
   * frame or message, or one that fits no open request): read nothing more
   * from it, count it, kill it by the pid init spawned. Its exit restarts it
   * per its restart policy, like any other death.
   */
  #offend(c: Child, proc: ChildProcess, v: Violation): void {
    if (c.proc !== proc || c.killedFor !== undefined) return;
    c.decoder?.stop();
    c.violations++;
    const why = `${v.code}: ${escapeText(v.message, 200)}`;
    c.lastViolation = `${why} at ${new Date().toISOString()}`;
    c.killedFor = `killed by init: control channel violation (${why})`;
    this.#log(`init: ${c.name} (pid ${c.pid}) broke the control channel protocol: ${why}; killing it`);
    proc.kill('SIGKILL');
  }

  #onMessage(c: Child, proc: ChildProcess, m: HostToInit): void {
    if (c.proc !== proc || c.killedFor !== undefined) return;
    const unexpected = (what: string): void => this.#offend(c, proc, { code: 'unexpected', message: what });
    switch (m.type) {
      case 'hello':
        // Its pid is not taken: init knows the pid it spawned.
        if (c.phase !== 'hello') return unexpected(`"hello" ${c.phase === 'running' ? 'while running' : 'twice'}`);
        c.phase = 'bootstrap';
        void this.#bootstrap(c, proc);
        break;
      case 'ready':
        if (c.phase !== 'bootstrap' || !c.bootstrapSent) return unexpected(`"ready" ${c.phase === 'running' ? 'twice' : 'before its bootstrap'}`);
        c.phase = 'running';
        c.state = 'running';
        c.startError = undefined;
        this.#startHeartbeat(c, proc);
        this.#log(`init: ${c.name} running (pid ${c.pid}, uid ${c.uid}${c.restarts ? `, restart ${c.restarts}` : ''})`);
        // A restarted router or conn-sync of an HA pair starts as backup: give it the role init holds.
        if (c.restarts > 0 && this.ha !== undefined) for (const spec of c.specs) void this.ha.reapply(spec.name);
        this.#notify();
        break;
      case 'fatal':
        if (c.phase === 'running') return unexpected('"fatal" while running (a host reports start failures only; a running one just exits)');
        c.lastExit = escapeText(m.message);
        c.startError = c.lastExit;
        this.#log(`init: ${c.name} failed to start: ${c.lastExit}`);
        break;
      case 'pong':
        if (c.pingsOut === 0) return this.#offend(c, proc, { code: 'reply-to-nothing', message: '"pong" without a heartbeat request open' });
        c.pingsOut--;
        c.lastPong = Date.now();
        break;
      case 'status':
      case 'session-reset-done':
      case 'reconfigure-done':
      case 'trace':
      case 'query-result':
      case 'command-result':
      case 'fault-done': {
        const open = c.pending.get(m.id);
        if (open === undefined) {
          if (c.expired.includes(m.id)) {
            c.lateReplies++;
            return;
          }
          return this.#offend(c, proc, { code: 'reply-to-nothing', message: `"${m.type}" for request ${m.id}, which init never sent it` });
        }
        if (open.expect !== m.type) return this.#offend(c, proc, { code: 'wrong-reply', message: `"${m.type}" answering a request that expects "${open.expect}"` });
        if (m.type === 'status') {
          const mine = new Set(c.specs.map((x) => x.name));
          const foreign = m.components.find((r) => !mine.has(r.name));
          if (foreign !== undefined) return this.#offend(c, proc, { code: 'wrong-reply', message: `a report for ${JSON.stringify(foreign.name.slice(0, 40))}, not a component of ${c.name}` });
        }
        if (m.type === 'trace') {
          // Names must be the unit's own (its components, or the unit: a shared host's entrypoint traces as "host");
          // pids are the one init spawned, whatever the component says.
          const mine = new Set([c.name, ...c.specs.map((x) => x.name)]);
          const r = m.reply as unknown as { tracers: { component: string; pid: number }[]; captures: { component: string }[]; status: { tracers: { component: string; pid: number }[]; captures: { component: string }[] } };
          const all = [...r.tracers, ...r.captures, ...r.status.tracers, ...r.status.captures];
          const foreign = all.find((x) => !mine.has(x.component));
          if (foreign !== undefined) return this.#offend(c, proc, { code: 'wrong-reply', message: `trace data for ${JSON.stringify(String(foreign.component).slice(0, 40))}, not a component of ${c.name}` });
          for (const t of [...r.tracers, ...r.status.tracers]) t.pid = c.pid;
        }
        c.pending.delete(m.id);
        open.cb(m);
        break;
      }
    }
  }

  /**
   * A reply passed the channel's checks but its content is wrong for what was
   * asked (e.g. an EVE answer without lines, eve-collector.ts): the same
   * verdict as a bad message. True when a running unit was killed.
   */
  offend(component: string, message: string): boolean {
    const c = this.#unitOf(component);
    const proc = c?.proc;
    if (c === undefined || proc === undefined || c.killedFor !== undefined) return false;
    this.#offend(c, proc, { code: 'bad-result', message: `${component}: ${message}` });
    return true;
  }

  /** Before a restarted component attaches, the survivors reset their ends of its sessions. */
  async #bootstrap(c: Child, proc: ChildProcess): Promise<void> {
    if (c.restarts > 0) {
      const mine = new Set(c.specs.map((x) => x.name));
      for (const s of this.#sessions) {
        for (const [me, peer] of [[s.spec.a, s.spec.b], [s.spec.b, s.spec.a]] as const) {
          if (!mine.has(me.component) || mine.has(peer.component)) continue;
          const pc = this.#unitOf(peer.component);
          if (pc === undefined || pc.state !== 'running') continue;
          const r = await this.#request(pc, { type: 'session-reset', id: 0, component: peer.component, session: peer.port }, 2000);
          if (r === undefined || (r.type === 'session-reset-done' && r.error)) {
            this.#log(`init: ${peer.component}.${peer.port}: session reset failed${r === undefined ? ' (no answer)' : `: ${escapeText((r as { error?: string }).error ?? '')}`}`);
          }
        }
      }
    }
    if (c.proc !== proc || c.killedFor !== undefined) return;
    c.bootstrapSent = true;
    this.#send(c, { type: 'bootstrap', components: c.grants });
  }

  #unitOf(component: string): Child | undefined {
    for (const c of this.#children.values()) if (c.specs.some((x) => x.name === component)) return c;
    return undefined;
  }

  /** Ask the unit for a pong every heartbeatMs; five silent intervals in a row mean it hangs: kill it (the exit handler restarts it). */
  #startHeartbeat(c: Child, proc: ChildProcess): void {
    if (!Number.isFinite(c.heartbeatMs)) return;
    c.lastPong = Date.now();
    if (c.heartbeatTimer !== undefined) clearInterval(c.heartbeatTimer);
    c.heartbeatTimer = setInterval(() => {
      if (c.proc !== proc || this.#stopping) return;
      if (Date.now() - c.lastPong > 5 * c.heartbeatMs) {
        c.hangs++;
        this.#log(`init: ${c.name} (pid ${c.pid}) missed 5 heartbeats (${5 * c.heartbeatMs} ms): killing it`);
        c.lastPong = Date.now();
        proc.kill('SIGKILL');
        return;
      }
      c.pingsOut++;
      this.#send(c, { type: 'ping' });
    }, c.heartbeatMs);
    c.heartbeatTimer.unref();
  }

  #onExit(c: Child, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (c.proc !== proc) return;
    c.proc = undefined;
    c.decoder?.stop();
    c.decoder = undefined;
    c.channel?.destroy();
    c.channel = undefined;
    if (c.heartbeatTimer !== undefined) clearInterval(c.heartbeatTimer);
    c.heartbeatTimer = undefined;
    for (const p of c.pending.values()) p.cb({ type: 'fatal', message: 'component exited' });
    c.pending.clear();
    // The kernel's verdict: a SIGKILL while the group's oom_kill count rose is the memory limit.
    const oom = signal === 'SIGKILL' && c.cgroup !== undefined && c.cgroup.oomKills() > c.oomKillsAtSpawn;
    if (oom) c.oomKills++;
    const how = c.killedFor !== undefined && signal === 'SIGKILL'
      ? c.killedFor
      : oom
      ? 'killed: memory limit (the kernel\'s OOM killer, SIGKILL)'
      : signal === 'SIGSYS'
        ? 'signal SIGSYS (killed by its seccomp filter: a forbidden system call)'
        : signal !== null ? `signal ${signal}` : `exit code ${code}`;
    c.lastExit = `${how} at ${new Date().toISOString()}`;
    for (const fd of c.retiredFds.splice(0)) closeSync(fd);
    if (c.handover && !this.#stopping) {
      // Stopped by init to take a new link socket (#reattach): back at once, counted as a restart (its peers reset their sessions).
      c.handover = false;
      c.state = 'restarting';
      c.restarts++;
      c.lastExit = `stopped by init to take a new link socket at ${new Date().toISOString()}`;
      this.#log(`init: ${c.name} (pid ${c.pid}) stopped; restarting it with the new link socket`);
      c.restartTimer = setTimeout(() => {
        c.restartTimer = undefined;
        if (!this.#stopping) this.#spawn(c);
      }, 50);
      this.#notify();
      return;
    }
    if (this.#stopping) {
      c.state = 'stopped';
      this.#notify();
      return;
    }
    if (this.#starting && c.state !== 'running') {
      // It never ran: restarting would fail the same way until the start timeout. init gives up now.
      c.state = 'failed';
      c.lastExit = c.startError !== undefined ? `${c.startError} (${how})` : how;
      this.#log(`init: ${c.name} (pid ${c.pid}) failed to start: ${c.lastExit}; init gives up starting`);
      this.#notify();
      return;
    }
    // Restart policy: the strictest of the unit's components wins (never > on-failure > always).
    const policies = c.specs.map((x) => x.restart);
    const policy = policies.includes('never') ? 'never' : policies.includes('on-failure') ? 'on-failure' : 'always';
    if (policy === 'never' || (policy === 'on-failure' && code === 0 && signal === null)) {
      c.state = 'failed';
      this.#log(`init: ${c.name} (pid ${c.pid}) ended with ${how}; restart policy "${policy}": not restarted (its sessions stay down: the gateway drops what would cross it)`);
      this.#notify();
      return;
    }
    // Crash loops back off: immediately after a long run, up to 5 s when it keeps dying.
    const ranMs = Date.now() - c.startedAt;
    const delay = ranMs > 10000 ? 50 : Math.min(5000, 100 * 2 ** Math.min(c.restarts, 6));
    c.state = 'restarting';
    c.restarts++;
    this.#log(`init: ${c.name} (pid ${c.pid}) ${oom ? 'was' : 'died with'} ${how}; restarting in ${delay} ms`);
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      if (!this.#stopping) this.#spawn(c);
    }, delay);
    this.#notify();
  }

  /**
   * The gone link `device` is back home (link-watch.ts): confine it again and
   * open a new socket (packet-link.ts), put it where the old one was among the
   * holding unit's fds (same fd number in the child, same grant), and restart
   * that unit: a component gets its fds only at spawn. Throws when the
   * interface is refused (nothing changed then).
   */
  #reattach(device: string): void {
    const link = this.#packetLinks.get(device);
    if (link === undefined || this.#stopping) throw new Error('not a packet link of this gateway');
    const old = link.reattach((l) => this.#log(`init: device ${device}: ${l}`));
    this.#tapFds.set(device, link.fd);
    let held = false;
    for (const c of this.#children.values()) {
      const i = c.capFds.indexOf(old);
      if (i < 0) continue;
      c.capFds[i] = link.fd;
      const proc = c.proc;
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) continue; // its next spawn takes the new fd
      held = true;
      c.retiredFds.push(old);
      c.handover = true;
      this.#log(`init: device ${device}: new socket on ${link.ifname}; restarting ${c.name} (pid ${c.pid}) to hand it over`);
      const kill = setTimeout(() => proc.kill('SIGKILL'), 2000);
      proc.once('exit', () => clearTimeout(kill));
      this.#send(c, { type: 'stop' });
    }
    if (!held) closeSync(old);
  }

  #send(c: Child, m: InitToHost): void {
    const ch = c.channel;
    if (c.proc !== undefined && ch !== undefined && ch.writable && !ch.destroyed) ch.write(encodeFrame(m));
  }

  #request(c: Child, m: InitToHost & { id: number }, timeoutMs: number): Promise<HostToInit | undefined> {
    const id = this.#nextId++;
    return new Promise((resolveP) => {
      const t = setTimeout(() => {
        if (c.pending.delete(id)) {
          c.expired.push(id);
          if (c.expired.length > EXPIRED_KEPT) c.expired.shift();
        }
        resolveP(undefined);
      }, timeoutMs);
      c.pending.set(id, {
        expect: REPLY_TO[m.type as keyof typeof REPLY_TO],
        cb: (r) => {
          clearTimeout(t);
          resolveP(r);
        },
      });
      this.#send(c, { ...m, id } as InitToHost);
    });
  }

  #waiters: (() => void)[] = [];
  #notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** init's counts of a component's packet links (link.down, link.up, link.reattached, link.reattach-failed), summed over its links. */
  #linkCounters(component: string): Record<string, number> {
    const spec = this.config.components.find((x) => x.name === component);
    const links = spec === undefined ? [] : Object.values(spec.devices).flatMap((d) => this.#linkWatch.health(d) ?? []);
    if (links.length === 0) return {};
    const sum = (f: (l: LinkHealth) => number): number => links.reduce((a, l) => a + f(l), 0);
    return {
      'link.down': sum((l) => l.counts.down),
      'link.up': sum((l) => l.counts.up),
      'link.reattached': sum((l) => l.counts.reattached),
      'link.reattach-failed': sum((l) => l.counts.reattachFailed),
    };
  }

  /**
   * Resolves when `c` reaches `state`: checked on every #notify and every
   * 200 ms. Each waiter keeps at most one timer and one place in #waiters
   * (a timer per check, each waking every waiter, multiplied the timers by the
   * number of waiters every 200 ms: with 5 components starting slowly, init's
   * event loop drowned in them and no component became running in time).
   */
  #waitState(c: Child, state: ChildState, timeoutMs: number): Promise<void> {
    return new Promise((resolveP, reject) => {
      const deadline = Date.now() + timeoutMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let done = false;
      const finish = (e?: Error): void => {
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        if (e === undefined) resolveP();
        else reject(e);
      };
      const check = (): void => {
        if (done) return;
        if (c.state === state) return finish();
        if (this.#stopping) return finish(new Error('init is stopping'));
        if (c.state === 'failed' && this.#starting) return finish(new Error(`${c.name} failed to start: ${c.lastExit}`));
        if (Date.now() > deadline) {
          return finish(new Error(`${c.name} did not become ${state} within ${timeoutMs} ms${c.lastExit ? ` (last exit: ${c.lastExit})` : ''}`));
        }
        if (!this.#waiters.includes(check)) this.#waiters.push(check);
        if (timer === undefined) {
          timer = setTimeout(() => {
            timer = undefined;
            check();
          }, 200);
          timer.unref();
        }
      };
      check();
    });
  }

  /** One line per component: what a user (or the lab) needs to see. */
  components(): {
    name: string; type: string; isolation: string; unit: string; pid: number; uid: number; state: ChildState;
    restarts: number; hangs: number; oomKills: number; memoryBytes: number | undefined; memoryLimitHits: number | undefined; lastExit: string;
    channel: { violations: number; lastViolation: string; lateReplies: number };
    health: 'ok' | 'degraded'; degraded: string; links: LinkHealth[];
  }[] {
    const out = [];
    for (const c of this.#children.values()) {
      for (const spec of c.specs) {
        out.push({
          name: spec.name,
          type: spec.type,
          isolation: spec.isolation,
          unit: c.name,
          pid: c.pid,
          uid: c.uid,
          state: c.state,
          restarts: c.restarts,
          hangs: c.hangs,
          oomKills: c.oomKills,
          memoryBytes: c.cgroup?.usage(),
          memoryLimitHits: c.cgroup?.limitHits(),
          lastExit: c.lastExit,
          channel: { violations: c.violations, lastViolation: c.lastViolation, lateReplies: c.lateReplies },
          ...this.#linkHealth(spec),
        });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A component's packet links: degraded while one is not up, with the reasons. */
  #linkHealth(spec: ComponentSpec): { health: 'ok' | 'degraded'; degraded: string; links: LinkHealth[] } {
    const links = Object.values(spec.devices).flatMap((d) => this.#linkWatch.health(d) ?? []);
    const bad = links.filter((l) => l.state !== 'up');
    return { health: bad.length > 0 ? 'degraded' : 'ok', degraded: bad.map((l) => `${l.ifname} ${l.state}: ${l.reason}`).join('; '), links };
  }

  /** What every running unit holds, from /proc, against what the config grants it. */
  audit(): AuditReport[] {
    const out: AuditReport[] = [];
    for (const c of this.#children.values()) {
      if (c.state !== 'running' || c.pid === 0) continue;
      const mine = new Set(c.specs.map((x) => x.name));
      let shm = 0;
      let sockets = 0;
      for (const s of this.#sessions) {
        const ends = [s.spec.a.component, s.spec.b.component].filter((n) => mine.has(n)).length;
        if (ends === 0) continue;
        if (s.grants[0].transport === 'shm') shm++;
        else if (s.grants[0].transport === 'socket') sockets += ends;
      }
      const channel = { violations: c.violations, lastViolation: c.lastViolation };
      try {
        out.push({ ...auditUnit({
          unit: c.name,
          components: c.specs.map((x) => x.name),
          pid: c.pid,
          uid: c.uid,
          taps: c.specs.reduce((a, x) => a + Object.values(x.devices).filter((d) => this.config.devices.get(d)?.kind === 'tap').length, 0),
          packets: c.specs.reduce((a, x) => a + Object.values(x.devices).filter((d) => this.config.devices.get(d)?.kind === 'packet').length, 0),
          links: c.specs.flatMap((x) => Object.values(x.devices)).flatMap((d) => {
            const l = this.#packetLinks.get(d);
            return l === undefined ? [] : [{ device: d, ifname: l.ifname, netnsInterfaces: l.interfaces() }];
          }),
          shmSessions: shm,
          socketSessions: sockets,
          allowWorker: c.specs.some((x) => x.isolation === 'thread'),
        }), channel });
      } catch (e) {
        out.push({
          unit: c.name, components: c.specs.map((x) => x.name), pid: c.pid, uid: c.uid, gid: -1, groups: [], capEff: '?', capBnd: '?',
          noNewPrivs: false, dumpable: -1, seccomp: -1, netns: { own: false, interfaces: [] }, mntns: { own: false }, root: [], seccompFilters: 0, permission: [], fds: [],
          sessions: { shm: 0, socket: 0, tap: 0 }, links: [], violations: [`cannot inspect pid ${c.pid}: ${(e as Error).message}`], channel,
        });
      }
    }
    return out;
  }

  /** One line per service (config `services`): pid, state, restarts, memory, health. */
  services(): ServiceStatus[] {
    return this.#services?.status() ?? [];
  }

  /** Each service's event log counted by event and result (GET /metrics). */
  serviceEvents(): ServiceEventCounts[] {
    return this.#services?.eventCounts() ?? [];
  }

  /** What every running service holds, from /proc, against what its config grants. */
  auditServices(): ServiceAuditReport[] {
    return this.#services?.audit() ?? [];
  }

  get ready(): boolean {
    return !this.#stopping && [...this.#children.values()].every((c) => c.state === 'running');
  }

  /** Ask every running component for its report (counters, sessions, status). */
  async reports(timeoutMs = 1000): Promise<ComponentReport[]> {
    const out: ComponentReport[] = [];
    await Promise.all(
      [...this.#children.values()].map(async (c) => {
        if (c.state !== 'running') return;
        const r = await this.#request(c, { type: 'status', id: 0 }, timeoutMs);
        if (r !== undefined && r.type === 'status') {
          const rss = rssBytes(c.pid);
          out.push(...r.components.map((x) => ({ ...x, counters: { ...x.counters, ...this.#linkCounters(x.name) }, rssBytes: rss })));
        }
      }),
    );
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Send a trace request to every running unit (each relays it to its worker
   * threads) and merge the answers; a unit that does not answer is named in errors.
   */
  async trace(req: TraceRequest, timeoutMs = 8000): Promise<TraceReply> {
    const replies: TraceReply[] = [];
    await Promise.all(
      [...this.#children.values()].map(async (c) => {
        if (c.state !== 'running') {
          replies.push({ ...emptyReply(), errors: [`${c.name} is ${c.state}`] });
          return;
        }
        const r = await this.#request(c, { type: 'trace', id: 0, req }, timeoutMs);
        if (r !== undefined && r.type === 'trace') replies.push(r.reply);
        else replies.push({ ...emptyReply(), errors: [`${c.name} did not answer the trace request within ${timeoutMs} ms`] });
      }),
    );
    const out = mergeReplies(replies);
    out.tracers.sort((a, b) => a.component.localeCompare(b.component));
    return out;
  }

  #reloading = false;

  /**
   * Re-read and validate the whole config file, then apply the changed
   * `config` sections: first every changed component checks its new section
   * (dry run), and only if all agree is any applied. An invalid file, a change
   * outside components' config sections, a component type that cannot be
   * reconfigured or a component that is not running changes nothing.
   */
  async reload(): Promise<ReloadResult> {
    if (this.#reloading) return { ok: false, changed: [], message: 'a reload is already in progress' };
    if (this.#stopping) return { ok: false, changed: [], message: 'init is stopping' };
    this.#reloading = true;
    try {
      let next: GatewayConfig;
      try {
        next = loadConfig(this.config.file, this.config.catalog);
      } catch (e) {
        return { ok: false, changed: [], message: `invalid config, nothing changed: ${e instanceof Error ? e.message : String(e)}` };
      }
      const why = topologyChange(this.config, next);
      if (why !== undefined) return { ok: false, changed: [], message: `${this.config.file}: ${why}; nothing changed` };
      // Each section as the component would receive it (files it names read again now).
      const prepared: unknown[] = [];
      for (const c of next.components) {
        try {
          prepared.push(this.config.catalog.componentTypes[c.type].prepare?.(c.config) ?? c.config);
        } catch (e) {
          return { ok: false, changed: [], message: `${c.path}.config: ${escapeText(e instanceof Error ? e.message : String(e))}; nothing changed` };
        }
      }
      const inForce = (i: number): unknown => {
        const name = this.config.components[i].name;
        return this.#unitOf(name)?.grants.find((g) => g.name === name)?.config;
      };
      const changed = changedComponents(this.config, next, { inForce, next: prepared });
      if (changed.length === 0) return { ok: true, changed: [], message: 'no component config changed (nor any file a config names)' };
      const plan: { spec: ComponentSpec; unit: Child; config: unknown; prepared: unknown }[] = [];
      for (const i of changed) {
        const spec = this.config.components[i];
        const unit = this.#unitOf(spec.name);
        if (unit === undefined || unit.state !== 'running') {
          return { ok: false, changed: [], message: `${spec.name} is ${unit?.state ?? 'not running'}: cannot reconfigure it now; nothing changed` };
        }
        plan.push({ spec, unit, config: next.components[i].config, prepared: prepared[i] });
      }
      const ask = async (p: typeof plan[number], dryRun: boolean): Promise<string | undefined> => {
        const r = await this.#request(p.unit, { type: 'reconfigure', id: 0, component: p.spec.name, config: p.prepared, dryRun }, 5000);
        if (r === undefined) return `${p.spec.name} did not answer`;
        if (r.type !== 'reconfigure-done') return `${p.spec.name}: ${r.type === 'fatal' ? r.message : 'unexpected answer'}`;
        // The component's own words: one line, bounded (they reach init's log through the reload result).
        return r.error === undefined ? undefined : escapeText(r.error);
      };
      for (const p of plan) {
        const err = await ask(p, true);
        if (err !== undefined) return { ok: false, changed: [], message: `${p.spec.path}.config: ${err}; nothing changed` };
      }
      const done: string[] = [];
      for (const p of plan) {
        const err = await ask(p, false);
        if (err !== undefined) {
          return { ok: false, changed: done, message: `${p.spec.path}.config: ${err} (applied before it: ${done.join(', ') || 'none'})` };
        }
        // A later restart of the component starts from the new section.
        p.spec.config = p.config;
        for (const g of p.unit.grants) if (g.name === p.spec.name) g.config = p.prepared;
        done.push(p.spec.name);
      }
      this.#log(`init: reloaded ${this.config.file}: new config in force for ${done.join(', ')}`);
      return { ok: true, changed: done, message: `new config in force for ${done.join(', ')}` };
    } finally {
      this.#reloading = false;
    }
  }

  /** The HA pair's role (ha.ts), when the config has one. */
  ha: HaControl | undefined;

  #startHa(): void {
    this.ha = HaControl.find(this.config, {
      command: (c, what, args, t) => this.command(c, what, args, t),
      statuses: async () => new Map((await this.reports()).map((r) => [r.name, r.status])),
      log: this.#log,
    });
    if (this.ha === undefined) return;
    this.#log(`init: HA pair: router ${this.ha.router}, sync ${this.ha.connSync}; role backup until the control API says otherwise`);
    void this.ha.reapply(); // conn-sync learns the router's config hash for its heartbeats
  }

  /** Stop every component (stop message, then SIGKILL by PID after 2 s), release devices. */
  /** Components that produce EVE records (the monitor): init fetches them into its log files and memory. */
  eve: EveCollector | undefined;

  #startEveCollector(): void {
    const sources = this.config.components
      .filter((s) => this.config.catalog.componentTypes[s.type].eveLog !== undefined)
      .map((s): EveSource => {
        const src: EveSource = { component: s.name, file: this.config.catalog.componentTypes[s.type].eveLog?.(s.config) };
        // Block feedback: the router at the other end of the component's mirror session.
        const matcher = this.config.catalog.componentTypes[s.type].eveBlock?.(s.config);
        if (matcher !== undefined) {
          const sess = this.config.sessions.find((x) => (x.a.component === s.name && x.a.port === 'mirror') || (x.b.component === s.name && x.b.port === 'mirror'));
          const router = sess === undefined ? undefined : sess.a.component === s.name ? sess.b.component : sess.a.component;
          if (router === undefined) this.#log(`init: ${s.name}: block entries ignored: no mirror session names the router to block at`);
          else src.feedback = new BlockFeedback(router, matcher, (c, what, args) => this.command(c, what, args), { log: this.#log });
        }
        return src;
      });
    if (sources.length > 0) {
      this.eve = new EveCollector((c, what, args) => this.query(c, what, args), sources, { log: this.#log, offend: (c, why) => this.offend(c, why) });
    }
  }

  /** Ask a component a read-only question (Component.query). */
  async query(component: string, what: string, args: unknown, timeoutMs = 2000): Promise<{ result?: unknown; error?: string }> {
    const c = this.#unitOf(component);
    if (c === undefined) return { error: `no component ${component}` };
    if (c.state !== 'running') return { error: `${component} is ${c.state}` };
    const r = await this.#request(c, { type: 'query', id: 0, component, what, args }, timeoutMs);
    if (r === undefined) return { error: `${component} did not answer within ${timeoutMs} ms` };
    if (r.type !== 'query-result') return { error: `${component}: ${r.type === 'fatal' ? r.message : 'unexpected answer'}` };
    return { result: r.result, error: r.error };
  }

  /** Have a component carry out a command that changes its run-time state (Component.command). */
  async command(component: string, what: string, args: unknown, timeoutMs = 2000): Promise<{ result?: unknown; error?: string }> {
    const c = this.#unitOf(component);
    if (c === undefined) return { error: `no component ${component}` };
    if (c.state !== 'running') return { error: `${component} is ${c.state}` };
    const r = await this.#request(c, { type: 'command', id: 0, component, what, args }, timeoutMs);
    if (r === undefined) return { error: `${component} did not answer within ${timeoutMs} ms` };
    if (r.type !== 'command-result') return { error: `${component}: ${r.type === 'fatal' ? r.message : 'unexpected answer'}` };
    return { result: r.result, error: r.error };
  }

  /**
   * Fault injection (config debug.fault-injection): have the component's host
   * carry out `kind` on the component's thread (src/init/fault.ts). Resolves
   * once the host accepted; the fault follows ~50 ms later.
   */
  async fault(component: string, kind: unknown, attack?: unknown): Promise<FaultOutcome> {
    const c = this.#unitOf(component);
    const refused = checkFault(this.config.debug?.faultInjection === true, component, kind, {
      known: this.config.components.some((x) => x.name === component),
      state: c?.state,
      memoryLimited: c?.cgroup !== undefined,
      heartbeat: c !== undefined && Number.isFinite(c.heartbeatMs),
      packetLink: Object.values(this.config.components.find((x) => x.name === component)?.devices ?? {}).some((d) => this.config.devices.get(d)?.kind === 'packet'),
    }, attack);
    if (refused !== undefined) return refused;
    if (c === undefined || !isFaultKind(kind) || (attack !== undefined && !isHostileAttack(attack))) return { status: 500, code: 'MG_INTERNAL', message: 'fault check inconsistent' };
    const pid = c.pid;
    const r = await this.#request(c, { type: 'fault', id: 0, component, kind, ...(attack !== undefined ? { attack } : {}) }, 2000);
    if (r === undefined) return { status: 504, code: 'MG_NO_ANSWER', message: `${component} did not answer within 2000 ms` };
    if (r.type !== 'fault-done') return { status: 502, code: 'MG_COMPONENT', message: `${component}: ${r.type === 'fatal' ? r.message : 'unexpected answer'}` };
    if (r.error !== undefined) return { status: 502, code: 'MG_COMPONENT', message: `${component}: ${r.error}` };
    this.#log(`init: fault injection: ${kind}${attack !== undefined ? ` ${attack}` : ''} in ${component} (unit ${c.name}, pid ${pid})`);
    return { status: 202, code: 'MG_FAULT_INJECTED', message: `${kind} injected into ${component} (unit ${c.name}, pid ${pid})`, unit: c.name, pid };
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    if (this.eve !== undefined) await this.eve.stop().catch(() => undefined);
    this.#stopping = true;
    this.#linkWatch.stop();
    this.#notify();
    const stopUnit = (c: Child): Promise<void> | undefined => {
      if (c.restartTimer !== undefined) clearTimeout(c.restartTimer);
      if (c.heartbeatTimer !== undefined) clearInterval(c.heartbeatTimer);
      const p = c.proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) {
        c.state = 'stopped';
        return undefined;
      }
      const exited = new Promise<void>((resolveP) => {
        const kill = setTimeout(() => p.kill('SIGKILL'), 2000);
        p.once('exit', () => {
          clearTimeout(kill);
          resolveP();
        });
      });
      this.#send(c, { type: 'stop' });
      return exited;
    };
    // Units without a link device first (the router's last words, e.g. a DHCP RELEASE, still reach the wire through
    // the drivers), at most STOP_FIRST_MS; then the drivers.
    const holdsLink = (c: Child): boolean => c.specs.some((x) => Object.values(x.devices).some((d) => this.config.devices.has(d)));
    const first = [...this.#children.values()].filter((c) => !holdsLink(c)).flatMap((c) => stopUnit(c) ?? []);
    if (first.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(first), new Promise<void>((r) => { timer = setTimeout(r, STOP_FIRST_MS); })]);
      clearTimeout(timer);
    }
    const exits: Promise<void>[] = [...first];
    for (const c of this.#children.values()) {
      if (!holdsLink(c)) continue;
      const e = stopUnit(c);
      if (e !== undefined) exits.push(e);
    }
    if (this.#services !== undefined) exits.push(this.#services.stop());
    await Promise.all(exits);
    for (const c of this.#children.values()) for (const fd of c.retiredFds.splice(0)) closeSync(fd);
    for (const s of this.#sessions) for (const fd of s.fds) closeSync(fd);
    this.#sessions = [];
    for (const [name, fd] of this.#tapFds) {
      const link = this.#packetLinks.get(name);
      if (link === undefined) {
        closeSync(fd);
        continue;
      }
      // Back where it came from, up or down as it was.
      const problem = link.release();
      if (problem !== undefined) this.#log(`init: device ${name}: ${problem}`);
      else this.#log(`init: device ${name}: interface ${link.ifname} moved back to ${link.home !== undefined ? `netns ${link.home}` : "init's netns"}`);
    }
    this.#tapFds.clear();
    this.#packetLinks.clear();
    this.#cgroups?.cleanup();
  }
}
