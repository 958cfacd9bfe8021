// The tunnel component: a WireGuard endpoint between two router domains, its
// static key behind the keystore. Sessions (port names):
//   plain   Nic session to the router domain that routes the remote sites' prefixes here
//   uplink  Nic session to the router domain its encrypted UDP leaves by
//   keys    message session to the keystore (X25519 with the static key, the public key)
// One sink pollable per session; each batch is flushed once; a timer runs
// the protocol's timers and ARP. init's reload may change the peers.
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import { parseTunnelConfig, type TunnelConfig } from './config.ts';
import { KeystoreClient } from './keystore-client.ts';
import { Tunnel } from './tunnel.ts';

export const PORTS = ['plain', 'uplink', 'keys'] as const;
/** Timer resolution: ARP, handshake retransmission, keepalives. */
const TICK_MS = 50;

export default function create(env: ComponentEnv): Component {
  let cfg = parseTunnelConfig(env.config, env.name, env.configSource);
  const plain = env.sessions.get('plain');
  const uplink = env.sessions.get('uplink');
  const keys = env.sessions.get('keys');
  if (plain === undefined || uplink === undefined || keys === undefined) {
    throw new Error(`tunnel needs the sessions plain, uplink and keys (granted: ${[...env.sessions.keys()].join(', ') || 'none'})`);
  }
  // The keystore's answers are shared secrets: the keys session refuses packet capture.
  Object.defineProperty(keys, 'capture', { value: undefined });
  const ks = new KeystoreClient(keys, env.counters);
  const tunnel = new Tunnel(cfg, plain.out, uplink.out, ks, env.counters, { log: (m, f) => env.log.warn(m, f), tracer: env.trace });
  // Each frame's handling, timed by its session end (src/trace/README.md); the
  // stages inside it (copy, seal, open) are the data path's own tracepoints.
  plain.in.traceHandler('tunnel.plain_packet');
  uplink.in.traceHandler('tunnel.uplink_packet');
  const pollables: Pollable[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let initTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const flush = (): void => tunnel.flush();

  const init = (): void => {
    initTimer = undefined;
    void tunnel.init().then((ok) => {
      if (stopped) return;
      if (ok) {
        env.log.info('tunnel ready', { peers: cfg.peers.length, listenPort: cfg.listenPort, status: tunnel.status().publicKey });
      } else {
        initTimer = setTimeout(init, 500);
      }
    });
  };

  return {
    start(): void {
      const p = plain.in;
      const u = uplink.in;
      pollables.push(
        sinkPollable(p, (off, len) => tunnel.plainIn(p.buf, off, len), flush),
        sinkPollable(u, (off, len) => tunnel.uplinkIn(u.buf, u.address, off, len), flush),
        ks.pollable,
      );
      for (const x of pollables) env.ep.add(x);
      timer = setInterval(() => {
        ks.expire();
        tunnel.tick();
        tunnel.flush();
      }, TICK_MS);
      timer.unref();
      init();
    },
    status(): Record<string, unknown> {
      return tunnel.status();
    },
    // init's reload: the peers may change (like `wg syncconf`), nothing else.
    reconfigure(config: unknown, dryRun = false): string | undefined {
      let next: TunnelConfig;
      try {
        next = parseTunnelConfig(config, env.name, env.configSource);
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      if (dryRun) return tunnel.checkReload(next);
      const r = tunnel.reload(next);
      if ('error' in r) return r.error;
      cfg = next;
      const d = r.diff;
      env.log.info('peers reloaded', { added: d.added, removed: d.removed, changed: d.changed, unchanged: d.unchanged });
      return undefined;
    },
    sessionReset(name: string): void {
      if (name === 'keys') ks.reset();
      tunnel.sessionReset(name);
    },
    stop(): void {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      if (initTimer !== undefined) clearTimeout(initTimer);
      for (const x of pollables) env.ep.remove(x);
      pollables.length = 0;
    },
  };
}
