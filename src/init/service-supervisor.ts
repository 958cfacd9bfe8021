// init's supervision of services (config `services`, service-config.ts):
// programs that serve on a host's network rather than on Nic sessions (the
// file gateway in the dmz namespace). Each is started with its kind's
// sandboxed command (src/init/service-kind.ts) in the network namespace it
// serves in, in a memory cgroup when it has a limit; init keeps its PID,
// health-checks it (GET of its health endpoint from inside that namespace,
// health-check.ts), kills it after 5 failed checks in a row (like a component
// missing 5 heartbeats), restarts it per its policy with the components'
// back-off, stops it by PID, and shows it in /status and the audit.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EventLogCounts, type EventCount } from './event-log-counts.ts';
import { logLines } from './log-lines.ts';
import type { ServiceKind } from './service-kind.ts';
import type { ServicePlan } from './service-kind.ts';
import type { CgroupUnit, MemoryCgroups } from './cgroup.ts';
import type { GatewayConfig } from './config.ts';
import { checkHealth } from './health-check.ts';
import { rssBytes } from './procfs.ts';
import { auditService } from './service-audit.ts';
import type { ServiceAuditReport } from './service-audit.ts';
import type { ServiceSpec } from './service-config.ts';

export type ServiceState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

/** Failed health checks in a row (one per heartbeat-ms) after which a running service is killed. */
export const MISSED_CHECKS = 5;
/** A (re)started service must pass its first health check within this (or 5 intervals, if longer). */
export const START_GRACE_MS = 20_000;
/** While (re)starting, a health check this often (then every heartbeat-ms). */
export const START_PROBE_MS = 200;
/** After SIGTERM on shutdown, SIGKILL by PID after this. */
export const STOP_GRACE_MS = 3500;

/** The components' back-off (init.ts #onExit): at once after a long run, up to 5 s while it keeps dying. */
export function restartDelayMs(ranMs: number, restarts: number): number {
  return ranMs > 10000 ? 50 : Math.min(5000, 100 * 2 ** Math.min(restarts, 6));
}

export interface ServiceStatus {
  name: string;
  kind: string;
  netns: string;
  pid: number;
  uid: number;
  state: ServiceState;
  restarts: number;
  /** Kills after MISSED_CHECKS failed health checks. */
  hangs: number;
  /** Deaths by the kernel's OOM killer at its memory limit. */
  oomKills: number;
  /** Its cgroup's use with a limit, else the process's resident set; bytes. */
  memoryBytes: number | undefined;
  memoryLimitMb: number | undefined;
  memoryLimitHits: number | undefined;
  lastExit: string;
  /** "ok", or the last failed check and when. */
  lastHealth: string;
}

/** A service's event log, counted (src/init/event-log-counts.ts). */
export interface ServiceEventCounts {
  service: string;
  kind: string;
  counts: EventCount[];
  /** Lines that were not a record, and looks refused (not a regular file of the service's uid). */
  rejected: number;
  lastProblem: string;
}

interface Unit {
  spec: ServiceSpec;
  /** What the current run was started with (its grants, endpoints). */
  plan: ServicePlan | undefined;
  proc: ChildProcess | undefined;
  pid: number;
  state: ServiceState;
  restarts: number;
  hangs: number;
  oomKills: number;
  oomKillsAtSpawn: number;
  startedAt: number;
  lastOk: number;
  lastHealth: string;
  checking: boolean;
  checkStartedAt: number;
  /** Why init killed it (reported as how it ended). */
  killReason: string | undefined;
  lastExit: string;
  cgroup: CgroupUnit | undefined;
  healthTimer: NodeJS.Timeout | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** The count of its event log (plan.events), from its first start on. */
  events: EventLogCounts | undefined;
}

export interface ServiceSupervisorOptions {
  log: (line: string) => void;
  /** The service kinds (the catalog init was handed). */
  kinds: Readonly<Record<string, ServiceKind>>;
  /** Memory cgroups (present when any component or service has a limit). */
  cgroups: MemoryCgroups | undefined;
  /** Skip the service's seccomp filter (debugging only; `microgate run --no-seccomp`). */
  noSeccomp?: boolean;
}

/** Before anything starts: every service's network namespace must exist. Throws naming the config path. */
export function checkServiceNamespaces(config: GatewayConfig): void {
  for (const s of config.services ?? []) {
    if (!existsSync(`/run/netns/${s.netns}`)) {
      throw new Error(`${config.file}: ${s.path}.netns: network namespace "${s.netns}" does not exist`);
    }
  }
}


export class ServiceSupervisor {
  #units: Unit[];
  #log: (line: string) => void;
  #noSeccomp: boolean;
  #kinds: Readonly<Record<string, ServiceKind>>;
  #stopping = false;

  constructor(specs: readonly ServiceSpec[], opts: ServiceSupervisorOptions) {
    this.#log = opts.log;
    this.#noSeccomp = opts.noSeccomp ?? false;
    this.#kinds = opts.kinds;
    this.#units = specs.map((spec) => ({
      spec,
      plan: undefined,
      proc: undefined,
      pid: 0,
      state: 'starting',
      restarts: 0,
      hangs: 0,
      oomKills: 0,
      oomKillsAtSpawn: NaN,
      startedAt: 0,
      lastOk: 0,
      lastHealth: '',
      checking: false,
      checkStartedAt: 0,
      killReason: undefined,
      lastExit: '',
      // "svc-" keeps the groups apart from the components' (named after their units).
      cgroup: spec.memoryMb === undefined ? undefined : opts.cgroups?.unit(`svc-${spec.name}`, spec.memoryMb),
      healthTimer: undefined,
      restartTimer: undefined,
      events: undefined,
    }));
    for (const u of this.#units) {
      if (u.spec.memoryMb !== undefined && u.cgroup === undefined) {
        throw new Error(`${u.spec.path}.memory-mb: a memory limit is configured but cannot be enforced (no memory cgroups)`);
      }
    }
  }

  /** Start every service; does not wait for them to become healthy (see status()). */
  start(): void {
    for (const u of this.#units) this.#spawn(u);
  }

  #spawn(u: Unit): void {
    const kind = this.#kinds[u.spec.kind];
    u.startedAt = Date.now();
    u.state = u.restarts === 0 ? 'starting' : 'restarting';
    u.checking = false;
    try {
      // Read at every start: a restart picks up a changed config file (validated again).
      const cfg = kind.load(u.spec.configFile);
      const why = kind.problem?.(cfg);
      if (why !== undefined) throw new Error(`${u.spec.configFile}: ${why}`);
      u.plan = kind.plan(cfg, { uid: u.spec.uid, netns: u.spec.netns, cgroupProcs: u.cgroup?.procsFile });
      // Counted from before the process starts (a changed log path starts a new count).
      if (u.plan.events !== undefined && u.events?.file !== u.plan.events) u.events = new EventLogCounts(u.plan.events, u.spec.uid);
    } catch (e) {
      const msg = (e as Error).message;
      this.#log(`init: service ${u.spec.name}: cannot start: ${msg}`);
      u.pid = 0;
      this.#ended(u, `not started: ${msg}`, false);
      return;
    }
    const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    if (this.#noSeccomp) env.MG_NO_SECCOMP = '1';
    const proc = spawn(u.plan.command.file, u.plan.command.args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    u.proc = proc;
    u.pid = proc.pid ?? 0;
    u.oomKillsAtSpawn = u.cgroup?.oomKills() ?? NaN;
    for (const stream of [proc.stdout, proc.stderr]) {
      if (stream === null) continue;
      // Bounded, escaped lines: a service that never writes a newline costs init 4 KiB (log-lines.ts).
      logLines(stream, (l) => this.#log(`[${u.spec.name}] ${l}`));
    }
    proc.on('error', (e) => {
      this.#log(`init: service ${u.spec.name}: ${e.message}`);
      if (proc.pid !== undefined || u.proc !== proc) return;
      // Never started (no 'exit' follows): the restart policy applies as to a failed run.
      u.proc = undefined;
      if (u.healthTimer !== undefined) clearInterval(u.healthTimer);
      u.healthTimer = undefined;
      if (!this.#stopping) this.#ended(u, `not started: ${e.message}`, false);
    });
    proc.on('exit', (code, signal) => this.#onExit(u, proc, code, signal));
    this.#log(`init: service ${u.spec.name} started (pid ${u.pid}, uid ${u.spec.uid}, netns ${u.spec.netns}${u.restarts ? `, restart ${u.restarts}` : ''})`);
    if (u.spec.heartbeatMs === 0 || u.plan.health === undefined) {
      u.state = 'running'; // nothing to check: running while the process lives
      return;
    }
    // Ticks at most 200 ms apart, so a start is seen healthy soon; checks themselves run every heartbeat-ms once it runs.
    u.healthTimer = setInterval(() => this.#tick(u, proc), Math.min(u.spec.heartbeatMs, START_PROBE_MS));
    u.healthTimer.unref();
  }

  /** One heartbeat: kill what stopped answering, else check again (one check at a time). */
  #tick(u: Unit, proc: ChildProcess): void {
    if (u.proc !== proc || this.#stopping || u.plan?.health === undefined) return;
    const now = Date.now();
    const hb = u.spec.heartbeatMs;
    const last = u.checking ? `no answer for ${now - u.checkStartedAt} ms` : u.lastHealth;
    if (u.state === 'running' && now - u.lastOk > MISSED_CHECKS * hb) {
      u.hangs++;
      u.killReason = `killed: ${MISSED_CHECKS} health checks failed in a row (${MISSED_CHECKS * hb} ms; last: ${last})`;
      this.#log(`init: service ${u.spec.name} (pid ${u.pid}) failed ${MISSED_CHECKS} health checks (${MISSED_CHECKS * hb} ms): killing it`);
      proc.kill('SIGKILL');
      return;
    }
    const grace = Math.max(START_GRACE_MS, MISSED_CHECKS * hb);
    if (u.state !== 'running' && now - u.startedAt > grace) {
      u.killReason = `killed: not healthy within ${grace} ms of starting (last: ${last || 'no check finished'})`;
      this.#log(`init: service ${u.spec.name} (pid ${u.pid}) did not pass a health check within ${grace} ms of starting: killing it`);
      proc.kill('SIGKILL');
      return;
    }
    if (u.checking || (u.state === 'running' && now - u.checkStartedAt < hb)) return;
    u.checking = true;
    u.checkStartedAt = now;
    const h = u.plan.health;
    void checkHealth({ netns: u.spec.netns, host: h.host, port: h.port, path: h.path, tls: h.tls }, Math.max(hb, 1000)).then((problem) => {
      if (u.proc !== proc) return;
      u.checking = false;
      if (problem !== undefined) {
        u.lastHealth = `${problem} at ${new Date().toISOString()}`;
        return;
      }
      u.lastOk = Date.now();
      u.lastHealth = 'ok';
      if (u.state !== 'running') {
        u.state = 'running';
        this.#log(`init: service ${u.spec.name} running (pid ${u.pid}, healthy after ${u.lastOk - u.startedAt} ms)`);
      }
    });
  }

  #onExit(u: Unit, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (u.proc !== proc) return;
    u.proc = undefined;
    if (u.healthTimer !== undefined) clearInterval(u.healthTimer);
    u.healthTimer = undefined;
    const oom = signal === 'SIGKILL' && u.cgroup !== undefined && u.cgroup.oomKills() > u.oomKillsAtSpawn;
    if (oom) u.oomKills++;
    const how = oom ? "killed: memory limit (the kernel's OOM killer, SIGKILL)"
      : u.killReason ?? (signal !== null ? `signal ${signal}` : `exit code ${code}`);
    u.killReason = undefined;
    if (this.#stopping) {
      u.lastExit = `${how} at ${new Date().toISOString()}`;
      u.state = 'stopped';
      return;
    }
    this.#ended(u, how, code === 0 && signal === null);
  }

  /** Apply the restart policy to a run that ended (`clean`: exit code 0). */
  #ended(u: Unit, how: string, clean: boolean): void {
    u.lastExit = `${how} at ${new Date().toISOString()}`;
    const policy = u.spec.restart;
    if (policy === 'never' || (policy === 'on-failure' && clean)) {
      u.state = 'failed';
      this.#log(`init: service ${u.spec.name}${u.pid ? ` (pid ${u.pid})` : ''} ended (${how}); restart policy "${policy}": not restarted`);
      return;
    }
    const delay = restartDelayMs(Date.now() - u.startedAt, u.restarts);
    u.state = 'restarting';
    u.restarts++;
    this.#log(`init: service ${u.spec.name}${u.pid ? ` (pid ${u.pid})` : ''} ended (${how}); restarting in ${delay} ms`);
    u.restartTimer = setTimeout(() => {
      u.restartTimer = undefined;
      if (!this.#stopping) this.#spawn(u);
    }, delay);
  }

  status(): ServiceStatus[] {
    return this.#units.map((u) => {
      const alive = u.proc !== undefined && u.pid > 0;
      return {
        name: u.spec.name,
        kind: u.spec.kind,
        netns: u.spec.netns,
        pid: alive ? u.pid : 0,
        uid: u.spec.uid,
        state: u.state,
        restarts: u.restarts,
        hangs: u.hangs,
        oomKills: u.oomKills,
        memoryBytes: u.cgroup !== undefined ? u.cgroup.usage() : alive ? rssBytes(u.pid) : undefined,
        memoryLimitMb: u.spec.memoryMb,
        memoryLimitHits: u.cgroup?.limitHits(),
        lastExit: u.lastExit,
        lastHealth: u.lastHealth,
      };
    });
  }

  /** Each service's event log records by event and result since init started it (read now: what was appended since the last call). */
  eventCounts(): ServiceEventCounts[] {
    const out: ServiceEventCounts[] = [];
    for (const u of this.#units) {
      if (u.events === undefined) continue;
      u.events.poll();
      out.push({ service: u.spec.name, kind: u.spec.kind, counts: u.events.counts(), rejected: u.events.rejected + u.events.refused, lastProblem: u.events.lastProblem });
    }
    return out;
  }

  /** What every running service holds, from /proc, against what its config grants. */
  audit(): ServiceAuditReport[] {
    const out: ServiceAuditReport[] = [];
    for (const u of this.#units) {
      if (u.state !== 'running' || u.proc === undefined || u.pid === 0 || u.plan === undefined) continue;
      try {
        out.push(auditService({
          service: u.spec.name, kind: u.spec.kind, pid: u.pid, uid: u.spec.uid, netns: u.spec.netns,
          grants: u.plan.grants, listen: u.plan.listen, upstream: u.plan.upstream,
        }));
      } catch (e) {
        out.push({
          service: u.spec.name, kind: u.spec.kind, pid: u.pid, uid: u.spec.uid, gid: -1, groups: [], capEff: '?', capBnd: '?',
          noNewPrivs: false, dumpable: -1, seccomp: -1, netns: { name: u.spec.netns, configured: false, interfaces: [] }, mntns: { own: false },
          root: [], seccompFilters: 0, permission: [], fds: [], sockets: { listening: 0, accepted: 0, upstream: 0, stdio: 0 },
          violations: [`cannot inspect pid ${u.pid}: ${(e as Error).message}`],
        });
      }
    }
    return out;
  }

  /** Stop every service: SIGTERM by PID, SIGKILL after STOP_GRACE_MS; resolves when all exited. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const exits: Promise<void>[] = [];
    for (const u of this.#units) {
      if (u.restartTimer !== undefined) clearTimeout(u.restartTimer);
      if (u.healthTimer !== undefined) clearInterval(u.healthTimer);
      u.restartTimer = undefined;
      u.healthTimer = undefined;
      const p = u.proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) {
        u.state = 'stopped';
        continue;
      }
      exits.push(new Promise<void>((resolveP) => {
        const kill = setTimeout(() => p.kill('SIGKILL'), STOP_GRACE_MS);
        p.once('exit', () => {
          clearTimeout(kill);
          resolveP();
        });
      }));
      p.kill('SIGTERM');
    }
    await Promise.all(exits);
  }
}
