// The runtime of one thread that hosts components: it opens their session
// ends, builds each component with its env, and answers status and reset
// requests. The main thread of a component host uses one (for `process` and
// `inline` components), and so does every worker thread (`thread`).
import { Counters } from './counters.ts';
import type { Entrypoint } from './entrypoint.ts';
import type { Component, ComponentEnv, ComponentFactory, Logger } from './component.ts';
import type { ComponentGrant, ComponentReport } from './messages.ts';
import { CONTROL_FD } from './messages.ts';
import type { SessionEnd } from '../session/types.ts';
import { ThreadTrace } from './trace-thread.ts';
import { DEFAULT_TRACE_SETTINGS, emptyReply } from '../trace/protocol.ts';
import type { TraceReply, TraceRequest } from '../trace/protocol.ts';
import type { FaultKind } from './fault-inject.ts';
import { injectFault } from './fault-inject.ts';
import { forgedAnswers, type HostileAttack } from './hostile.ts';

interface Hosted {
  grant: ComponentGrant;
  component: Component;
  counters: Counters;
  sessions: Map<string, SessionEnd>;
}

export function makeLogger(name: string): Logger {
  const line = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    const extra = fields === undefined ? '' : ` ${JSON.stringify(fields)}`;
    process.stdout.write(`${level} ${name}: ${msg}${extra}\n`);
  };
  return {
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
  };
}

export class Runtime {
  readonly ep: Entrypoint;
  #hosted: Hosted[] = [];
  #unit: string;
  #thread: string;
  #trace: ThreadTrace | undefined;

  /** `unit` names an entrypoint shared by several components in trace reports; `thread` is "main" or "worker". */
  constructor(ep: Entrypoint, opts: { unit?: string; thread?: string } = {}) {
    this.ep = ep;
    this.#unit = opts.unit ?? 'host';
    this.#thread = opts.thread ?? 'main';
  }

  get names(): string[] {
    return this.#hosted.map((h) => h.grant.name);
  }

  /** Build one component from its grant and already opened session ends (not started yet). */
  async add(grant: ComponentGrant, sessions: Map<string, SessionEnd>): Promise<void> {
    const url = new URL(`../components/${grant.module.replace(/^\.\//, '')}`, import.meta.url).href;
    const mod = (await import(url)) as { default: ComponentFactory };
    const counters = new Counters();
    this.#trace ??= new ThreadTrace(this.#unit, this.#thread, grant.trace ?? DEFAULT_TRACE_SETTINGS);
    const tracer = this.#trace.componentTracer(grant.name);
    for (const [port, end] of sessions) this.#trace.addEnd(grant.name, port, end, tracer);
    const env: ComponentEnv = {
      name: grant.name,
      config: grant.config,
      configSource: grant.configSource,
      sessions,
      fds: grant.fds,
      vnetHdrLen: grant.vnetHdrLen,
      packetLinks: grant.packetLinks,
      ep: this.ep,
      counters,
      log: makeLogger(grant.name),
      trace: tracer,
    };
    this.#hosted.push({ grant, component: mod.default(env), counters, sessions });
  }

  start(): void {
    for (const h of this.#hosted) h.component.start();
    this.#trace?.bindEntrypoint(this.ep);
    this.ep.start();
  }

  /** Answer one of init's trace requests for the components of this thread. */
  trace(req: TraceRequest): TraceReply {
    return this.#trace?.handle(req) ?? emptyReply();
  }

  reports(): ComponentReport[] {
    const st = this.ep.stats;
    return this.#hosted.map((h) => {
      const sessions: Record<string, Record<string, number>> = {};
      for (const [name, s] of h.sessions) sessions[name] = s.stats();
      return {
        name: h.grant.name,
        status: h.component.status(),
        counters: h.counters.snapshot(),
        sessions,
        loop: { turns: st.turns, sleeps: st.sleeps, idleNs: st.idleNs.toString(), busyNs: st.busyNs.toString(), yields: st.yields },
      };
    });
  }

  /** Give a component a changed config section (dryRun: only check it); returns why not, or undefined. */
  reconfigure(component: string, config: unknown, dryRun: boolean): string | undefined {
    const h = this.#hosted.find((x) => x.grant.name === component);
    if (h === undefined) return `no component ${component} here`;
    if (h.component.reconfigure === undefined) return `component ${component} (${h.grant.type}) cannot be reconfigured at run time; restart the gateway`;
    let error: string | undefined;
    try {
      error = h.component.reconfigure(config, dryRun);
    } catch (e) {
      error = `${component}: reconfigure failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (error === undefined && !dryRun) {
      h.grant.config = config;
      this.ep.kick();
    }
    return error;
  }

  /** A component's answer to a read-only query (Component.query). */
  query(component: string, what: string, args: unknown): { result?: unknown; error?: string } {
    const h = this.#hosted.find((x) => x.grant.name === component);
    if (h === undefined) return { error: `no component ${component} here` };
    if (h.component.query === undefined) return { error: `component ${component} (${h.grant.type}) answers no queries` };
    // Fault injection `hostile` (eve-no-lines): a forged answer in place of the component's own.
    if (forgedAnswers.has(what)) {
      const result = forgedAnswers.get(what);
      forgedAnswers.delete(what);
      return { result };
    }
    try {
      return { result: h.component.query(what, args) };
    } catch (e) {
      return { error: `${component}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  /** Carry out one of init's commands on a component (Component.command). */
  command(component: string, what: string, args: unknown): { result?: unknown; error?: string } {
    const h = this.#hosted.find((x) => x.grant.name === component);
    if (h === undefined) return { error: `no component ${component} here` };
    if (h.component.command === undefined) return { error: `component ${component} (${h.grant.type}) takes no commands` };
    try {
      const result = h.component.command(what, args);
      this.ep.kick();
      return { result };
    } catch (e) {
      return { error: `${component}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  /** Fault injection (init checked the config): schedule `kind` on this thread; returns an error text or undefined. */
  fault(component: string, kind: FaultKind, attack?: HostileAttack): string | undefined {
    const h = this.#hosted.find((x) => x.grant.name === component);
    if (h === undefined) return `no component ${component} here`;
    if (kind === 'hostile' && attack === undefined) return 'a hostile fault needs its attack';
    const tap = h.grant.fds.tap;
    injectFault(kind, component, makeLogger(component), tap === undefined ? undefined : { fd: tap, vnetHdrLen: h.grant.vnetHdrLen?.tap ?? 12 }, attack === undefined ? undefined : {
      attack,
      target: { controlFd: CONTROL_FD, deviceFds: Object.values(h.grant.fds), sessionFds: h.grant.sessions.map((s) => s.fds), sessions: h.sessions },
    });
    return undefined;
  }

  /** Reset this thread's end of a session after its peer restarted; returns an error text or undefined. */
  reset(component: string, session: string): string | undefined {
    const h = this.#hosted.find((x) => x.grant.name === component);
    const s = h?.sessions.get(session);
    if (h === undefined || s === undefined) return `no session ${component}.${session} here`;
    s.reset();
    h.component.sessionReset?.(session);
    this.ep.kick();
    return undefined;
  }

  stop(): void {
    for (const h of this.#hosted) h.component.stop?.();
    this.ep.stop();
  }
}
