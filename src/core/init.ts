// init: the supervisor, like Genode's core + init. It holds every capability
// (TAP fds, session memory and wake-up fds), starts each component sandboxed
// and hands it only its own ends at spawn, restarts what dies (resetting the
// survivors' ends of its sessions first), and stops everything on request.
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, closeSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { resolve } from 'node:path';
import type { ComponentSpec, GatewayConfig, SessionSpec } from './config.ts';
import { componentTypes } from '../components/registry.ts';
import { CODE_DIR, ROOT, checkCodeReadable, sandboxCommand } from './sandbox.ts';
import { FIRST_CAP_FD } from './messages.ts';
import type { ComponentGrant, ComponentReport, HostToInit, InitToHost } from './messages.ts';
import type { SessionGrant } from '../session/types.ts';
import { createSessionResources } from '../session/create.ts';
import { openTap } from '../sys/tap.ts';
import { setCloexec } from '../sys/libc.ts';

const run = promisify(execFile);
const HOST_SCRIPT = resolve(ROOT, 'src/core/host.ts');
/** The unit that hosts every `thread` and `inline` component. */
const SHARED_HOST = 'host';

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
  pending: Map<number, (m: HostToInit) => void>;
  restartTimer: NodeJS.Timeout | undefined;
  lastExit: string;
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
  #sessions: SessionRes[] = [];
  #children = new Map<string, Child>();
  #stopping = false;
  #nextId = 1;
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
    mkdirSync(CODE_DIR, { recursive: true, mode: 0o755 });
    try {
      await this.#createDevices();
      this.#createSessions();
      const shared = this.config.components.filter((c) => c.isolation !== 'process');
      for (const spec of this.config.components) {
        if (spec.isolation === 'process') this.#children.set(spec.name, this.#prepareChild(spec.name, [spec], this.config.sandbox.uidBase + spec.index));
      }
      if (shared.length > 0) {
        this.#children.set(SHARED_HOST, this.#prepareChild(SHARED_HOST, shared, this.config.sandbox.uidBase + this.config.components.length));
      }
      const ready = [...this.#children.values()].map((c) => this.#waitState(c, 'running', timeoutMs));
      for (const c of this.#children.values()) this.#spawn(c);
      await Promise.all(ready);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async #createDevices(): Promise<void> {
    for (const dev of this.config.devices.values()) {
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
      this.#log(`init: device ${dev.name}: TAP ${dev.ifname}${dev.netns ? ` in netns ${dev.netns}` : ''}, offload ${dev.offload ? 'on' : 'off'}`);
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
      for (const [cap, dev] of Object.entries(spec.devices)) fds[cap] = childFd(this.#tapFds.get(dev)!);
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
        module: componentTypes[spec.type].module,
        config: spec.config,
        configSource: { file: this.config.file, path: `${spec.path}.config` },
        sessions,
        fds,
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
      restartTimer: undefined,
      lastExit: '',
    };
  }

  #spawn(c: Child): void {
    const { file, args } = sandboxCommand({ uid: c.uid, maxOldSpaceMb: this.config.sandbox.maxOldSpaceMb, script: HOST_SCRIPT, allowWorker: c.specs.some((x) => x.isolation === 'thread') });
    const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', MG_COMPONENT: c.name };
    if (this.#noSeccomp) env.MG_NO_SECCOMP = '1';
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc', ...c.capFds], env });
    c.proc = proc;
    c.pid = proc.pid ?? 0;
    c.state = c.restarts === 0 ? 'starting' : 'restarting';
    c.startedAt = Date.now();
    for (const stream of [proc.stdout, proc.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (l) => this.#log(`[${c.name}] ${l}`));
    }
    proc.on('message', (m) => this.#onMessage(c, proc, m as HostToInit));
    proc.on('error', (e) => this.#log(`init: ${c.name}: spawn failed: ${e.message}`));
    proc.on('exit', (code, signal) => this.#onExit(c, proc, code, signal));
  }

  #onMessage(c: Child, proc: ChildProcess, m: HostToInit): void {
    if (c.proc !== proc) return;
    switch (m.type) {
      case 'hello':
        c.pid = m.pid;
        void this.#bootstrap(c, proc);
        break;
      case 'ready':
        c.state = 'running';
        this.#log(`init: ${c.name} running (pid ${c.pid}, uid ${c.uid}${c.restarts ? `, restart ${c.restarts}` : ''})`);
        this.#notify();
        break;
      case 'fatal':
        c.lastExit = m.message;
        this.#log(`init: ${c.name} failed to start: ${m.message}`);
        break;
      case 'status':
      case 'session-reset-done': {
        const cb = c.pending.get(m.id);
        if (cb !== undefined) {
          c.pending.delete(m.id);
          cb(m);
        }
        break;
      }
    }
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
            this.#log(`init: ${peer.component}.${peer.port}: session reset failed${r === undefined ? ' (no answer)' : `: ${(r as { error?: string }).error}`}`);
          }
        }
      }
    }
    if (c.proc !== proc) return;
    this.#send(c, { type: 'bootstrap', components: c.grants });
  }

  #unitOf(component: string): Child | undefined {
    for (const c of this.#children.values()) if (c.specs.some((x) => x.name === component)) return c;
    return undefined;
  }

  #onExit(c: Child, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (c.proc !== proc) return;
    c.proc = undefined;
    for (const cb of c.pending.values()) cb({ type: 'fatal', message: 'component exited' });
    c.pending.clear();
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    c.lastExit = `${how} at ${new Date().toISOString()}`;
    if (this.#stopping) {
      c.state = 'stopped';
      this.#notify();
      return;
    }
    // Crash loops back off: immediately after a long run, up to 5 s when it keeps dying.
    const ranMs = Date.now() - c.startedAt;
    const delay = ranMs > 10000 ? 50 : Math.min(5000, 100 * 2 ** Math.min(c.restarts, 6));
    c.state = 'restarting';
    c.restarts++;
    this.#log(`init: ${c.name} (pid ${c.pid}) died with ${how}; restarting in ${delay} ms`);
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      if (!this.#stopping) this.#spawn(c);
    }, delay);
    this.#notify();
  }

  #send(c: Child, m: InitToHost): void {
    const p = c.proc;
    if (p !== undefined && p.connected) p.send(m);
  }

  #request(c: Child, m: InitToHost & { id: number }, timeoutMs: number): Promise<HostToInit | undefined> {
    const id = this.#nextId++;
    return new Promise((resolveP) => {
      const t = setTimeout(() => {
        c.pending.delete(id);
        resolveP(undefined);
      }, timeoutMs);
      c.pending.set(id, (r) => {
        clearTimeout(t);
        resolveP(r);
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

  #waitState(c: Child, state: ChildState, timeoutMs: number): Promise<void> {
    return new Promise((resolveP, reject) => {
      const deadline = Date.now() + timeoutMs;
      const check = (): void => {
        if (c.state === state) return resolveP();
        if (this.#stopping) return reject(new Error('init is stopping'));
        if (Date.now() > deadline) {
          return reject(new Error(`${c.name} did not become ${state} within ${timeoutMs} ms${c.lastExit ? ` (last exit: ${c.lastExit})` : ''}`));
        }
        this.#waiters.push(check);
        setTimeout(() => this.#notify(), 200).unref();
      };
      check();
    });
  }

  /** One line per component: what a user (or the lab) needs to see. */
  components(): { name: string; type: string; isolation: string; unit: string; pid: number; uid: number; state: ChildState; restarts: number; lastExit: string }[] {
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
          lastExit: c.lastExit,
        });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
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
        if (r !== undefined && r.type === 'status') out.push(...r.components);
      }),
    );
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Stop every component (stop message, then SIGKILL by PID after 2 s), release devices. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#notify();
    const exits: Promise<void>[] = [];
    for (const c of this.#children.values()) {
      if (c.restartTimer !== undefined) clearTimeout(c.restartTimer);
      const p = c.proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) {
        c.state = 'stopped';
        continue;
      }
      exits.push(
        new Promise<void>((resolveP) => {
          const kill = setTimeout(() => p.kill('SIGKILL'), 2000);
          p.once('exit', () => {
            clearTimeout(kill);
            resolveP();
          });
        }),
      );
      this.#send(c, { type: 'stop' });
    }
    await Promise.all(exits);
    for (const s of this.#sessions) for (const fd of s.fds) closeSync(fd);
    this.#sessions = [];
    for (const fd of this.#tapFds.values()) closeSync(fd);
    this.#tapFds.clear();
  }
}
