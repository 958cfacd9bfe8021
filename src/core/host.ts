// The component host: the program init starts in a sandbox. It takes away
// process creation (seccomp) before anything else, says hello, receives its
// grants in one bootstrap message, opens its session ends from inherited fds,
// loads the component and runs its entrypoint. It answers init's status and
// session-reset requests between entrypoint turns.
import { denyProcessCreation } from './seccomp.ts';
import { Counters } from './counters.ts';
import { Entrypoint } from './entrypoint.ts';
import type { Component, ComponentEnv, ComponentFactory, Logger } from './component.ts';
import { CONTROL_FD } from './messages.ts';
import type { ComponentGrant, ComponentReport, HostToInit, InitToHost } from './messages.ts';
import { openSessionEnd } from '../session/open.ts';
import type { SessionEnd } from '../session/types.ts';

interface Hosted {
  grant: ComponentGrant;
  component: Component;
  counters: Counters;
  sessions: Map<string, SessionEnd>;
}

function send(m: HostToInit): void {
  if (process.send !== undefined && process.connected) process.send(m);
}

function makeLogger(name: string): Logger {
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

const hosted: Hosted[] = [];
const ep = new Entrypoint({ controlFd: CONTROL_FD });

async function bootstrap(grants: ComponentGrant[]): Promise<void> {
  for (const grant of grants) {
    const counters = new Counters();
    const sessions = new Map<string, SessionEnd>();
    for (const sg of grant.sessions) sessions.set(sg.name, openSessionEnd(sg));
    const mod = (await import(new URL(`../components/${grant.module.replace(/^\.\//, '')}`, import.meta.url).href)) as {
      default: ComponentFactory;
    };
    const env: ComponentEnv = {
      name: grant.name,
      config: grant.config,
      configSource: grant.configSource,
      sessions,
      fds: grant.fds,
      ep,
      counters,
      log: makeLogger(grant.name),
    };
    const component = mod.default(env);
    hosted.push({ grant, component, counters, sessions });
  }
  for (const h of hosted) h.component.start();
  ep.start();
}

function report(h: Hosted): ComponentReport {
  const sessions: Record<string, Record<string, number>> = {};
  for (const [name, s] of h.sessions) sessions[name] = s.stats();
  return {
    name: h.grant.name,
    status: h.component.status(),
    counters: h.counters.snapshot(),
    sessions,
    loop: {
      turns: ep.stats.turns,
      sleeps: ep.stats.sleeps,
      idleNs: ep.stats.idleNs.toString(),
      busyNs: ep.stats.busyNs.toString(),
      yields: ep.stats.yields,
    },
    rssBytes: process.memoryUsage.rss(),
  };
}

function onMessage(m: InitToHost): void {
  switch (m.type) {
    case 'bootstrap':
      bootstrap(m.components).then(
        () => send({ type: 'ready' }),
        (e: unknown) => {
          send({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
          process.exitCode = 1;
          setImmediate(() => process.exit(1));
        },
      );
      break;
    case 'status':
      send({ type: 'status', id: m.id, components: hosted.map(report) });
      break;
    case 'session-reset': {
      const h = hosted.find((x) => x.grant.name === m.component);
      const s = h?.sessions.get(m.session);
      if (h === undefined || s === undefined) {
        send({ type: 'session-reset-done', id: m.id, error: `no session ${m.component}.${m.session}` });
        break;
      }
      s.reset();
      h.component.sessionReset?.(m.session);
      send({ type: 'session-reset-done', id: m.id });
      break;
    }
    case 'stop':
      for (const h of hosted) h.component.stop?.();
      ep.stop();
      process.exit(0);
  }
}

function main(): void {
  if (process.send === undefined) {
    process.stderr.write('microgate host: must be started by init (no control channel)\n');
    process.exit(2);
  }
  if (process.env.MG_NO_SECCOMP !== '1') denyProcessCreation();
  process.on('message', (m) => onMessage(m as InitToHost));
  process.on('disconnect', () => process.exit(0)); // init is gone: so are we
  send({ type: 'hello', pid: process.pid });
}

main();
