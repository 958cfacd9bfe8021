// The runtime of one thread that hosts components: it opens their session
// ends, builds each component with its env, and answers status and reset
// requests. The main thread of a component host uses one (for `process` and
// `inline` components), and so does every worker thread (`thread`).
import { Counters } from './counters.ts';
import type { Entrypoint } from './entrypoint.ts';
import type { Component, ComponentEnv, ComponentFactory, Logger } from './component.ts';
import type { ComponentGrant, ComponentReport } from './messages.ts';
import type { SessionEnd } from '../session/types.ts';

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

  constructor(ep: Entrypoint) {
    this.ep = ep;
  }

  get names(): string[] {
    return this.#hosted.map((h) => h.grant.name);
  }

  /** Build one component from its grant and already opened session ends (not started yet). */
  async add(grant: ComponentGrant, sessions: Map<string, SessionEnd>): Promise<void> {
    const url = new URL(`../components/${grant.module.replace(/^\.\//, '')}`, import.meta.url).href;
    const mod = (await import(url)) as { default: ComponentFactory };
    const counters = new Counters();
    const env: ComponentEnv = {
      name: grant.name,
      config: grant.config,
      configSource: grant.configSource,
      sessions,
      fds: grant.fds,
      ep: this.ep,
      counters,
      log: makeLogger(grant.name),
    };
    this.#hosted.push({ grant, component: mod.default(env), counters, sessions });
  }

  start(): void {
    for (const h of this.#hosted) h.component.start();
    this.ep.start();
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
        rssBytes: process.memoryUsage.rss(),
      };
    });
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
