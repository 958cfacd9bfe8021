// The router component: one Nic session per domain (the session's port name is
// the domain's name), the Router logic in between. Per domain one sink
// pollable delivers batches, none while an egress the domain's last batch
// went to has no free slot (backpressure, egress-hold.ts; a second pollable
// per domain waits for its egress's slots then); the router copies each packet out of the ingress
// sink's buffer into private memory (it decides only on that copy) and the
// result into a slot of the egress source; after the batch every egress that
// got packets is flushed once. A timer drives ARP retries and expiry.
import { type Component, type ComponentEnv } from '../../runtime/component.ts';
import { ConfigFileError } from '../../config/reader.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import { egressSpace, heldIngress } from './hold-pollables.ts';
import type { SessionEnd } from '../../session/types.ts';
import { parseRouterConfig, structuralChange } from './config.ts';
import { Router } from './router.ts';
import { NO_TRACE } from '../../trace/tracer.ts';
import { Mirror, MIRROR_PORT } from './mirror.ts';
import { parseBlockCommand } from './block-command.ts';
import { SYNC_PORT } from './sync.ts';
import { configHash } from './config-hash.ts';
import { parseRoleCommand } from '../conn-sync/role-command.ts';

/** Packets taken from the `sync` session per turn of the loop. */
const SYNC_BUDGET = 8;

export default function create(env: ComponentEnv): Component {
  const cfg = parseRouterConfig(env.config, env.name, env.configSource);
  const ends: SessionEnd[] = cfg.domains.map((d) => {
    const end = env.sessions.get(d.name);
    if (end === undefined) {
      const base = env.configSource.path;
      throw new ConfigFileError(env.configSource.file, `${base === '' ? '' : `${base}.`}domains.${d.name}`,
        `expected a Nic session named "${d.name}" connected to component "${env.name}" (granted: ${[...env.sessions.keys()].join(', ') || 'none'})`);
    }
    return end;
  });
  for (const name of env.sessions.keys()) {
    if (name === MIRROR_PORT && cfg.mirror !== undefined) continue;
    if (name === SYNC_PORT) continue;
    if (!cfg.domains.some((d) => d.name === name)) env.log.warn('session without a domain is ignored', { session: name });
  }
  const tr = env.trace ?? NO_TRACE;
  const mirrorEnd = cfg.mirror === undefined ? undefined : env.sessions.get(MIRROR_PORT);
  if (cfg.mirror !== undefined && mirrorEnd === undefined) {
    const base = env.configSource.path;
    throw new ConfigFileError(env.configSource.file, `${base === '' ? '' : `${base}.`}mirror`,
      `expected a Nic session named "${MIRROR_PORT}" connected to component "${env.name}" (granted: ${[...env.sessions.keys()].join(', ') || 'none'})`);
  }
  const mirror = cfg.mirror === undefined || mirrorEnd === undefined ? undefined
    : new Mirror(cfg.mirror, cfg.domains.map((d) => d.name), mirrorEnd.out, env.counters);
  // Both directions of a session have one slot size, so the router's private
  // packet buffer (the largest egress slot) holds any frame an ingress slot can.
  // Connection-state sync (sync.ts): on when init grants a session `sync` (to conn-sync); a domain named "sync" takes the name first.
  const syncEnd = cfg.domains.some((d) => d.name === SYNC_PORT) ? undefined : env.sessions.get(SYNC_PORT);
  const router = new Router(cfg, ends.map((e) => e.out), env.counters, {
    tracer: tr, log: (line) => env.log.info(line), mirror,
    sync: syncEnd === undefined ? undefined : { out: syncEnd.out, inSlotSize: syncEnd.out.slotSize },
  });
  // router.packet: one packet's whole handling (parse to submit, or to its drop).
  const pPacket = tr.proc('router.packet');
  const pollables: Pollable[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  const flush = (): void => router.flush();
  // The config section's hash (config-hash.ts), in status: do two gateways run the same policy?
  let hash = configHash(env.config);
  const tickMs = Math.max(10, Math.min(100, Math.floor(cfg.arp.retryMs / 4)));

  return {
    start(): void {
      if (syncEnd !== undefined) { // first: restored connections are in before the domains' packets are looked at
        const sink = syncEnd.in;
        // A small budget (8 packets of up to slotSize / 40 records each per turn): a peer flooding `sync` cannot starve the domains.
        const p = sinkPollable(sink, (off, len) => router.importSync(sink.buf, off, len), flush, SYNC_BUDGET);
        pollables.push(p);
        env.ep.add(p);
      }
      ends.forEach((end, i) => {
        const sink = end.in;
        const p = heldIngress(sink, router.hold, i, (off, len) => {
          // The packet's handling starts where the session's get_packet tracepoint ended.
          const t0 = tr.latest();
          router.receive(i, sink.buf, off, len);
          // Ends at router.forward's reading when the packet was forwarded (it chained), else reads the clock.
          tr.end(pPacket, t0, len);
          // The next packet's get_packet starts here.
          tr.chainNext();
        }, flush);
        pollables.push(p);
        env.ep.add(p);
      });
      ends.forEach((end, i) => {
        const p = egressSpace(end.out, router.hold, i);
        pollables.push(p);
        env.ep.add(p);
      });
      timer = setInterval(() => {
        router.tick();
        router.flush();
      }, tickMs);
      timer.unref();
      env.log.info('router started', {
        domains: cfg.domains.map((d) => d.name),
        sync: syncEnd !== undefined,
        ...(cfg.ha ? { ha: router.role } : {}),
      });
    },
    status(): Record<string, unknown> {
      return { ...router.status(), configHash: hash };
    },
    reconfigure(config: unknown, dryRun = false): string | undefined {
      let next;
      try {
        next = parseRouterConfig(config, env.name, env.configSource);
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      if (dryRun) return structuralChange(router.cfg, next);
      const why = router.reconfigure(next);
      if (why === undefined) hash = configHash(config);
      if (why === undefined) env.log.info('policy reloaded', { rules: next.domains.reduce((a, d) => a + d.policy.rules.length, 0) });
      return why;
    },
    // init's commands: "block" {ip, seconds, reason} (the monitor's block feedback);
    // "role" {role: master | backup} (an HA pair, config `ha`; from init's control API only).
    command(what: string, args: unknown): unknown {
      if (what === 'role') {
        if (!cfg.ha) throw new Error('role: this router is not one of an HA pair (config `ha: true`)');
        const r = parseRoleCommand(args);
        const was = router.role;
        if (router.setRole(r.role)) env.log.info('role changed', { from: was, to: r.role });
        return { role: router.role, configHash: hash };
      }
      if (what !== 'block') throw new Error(`unknown command "${what}" (the router knows: block, role)`);
      const b = parseBlockCommand(args);
      return router.block(b.ip, b.seconds, b.reason);
    },
    sessionReset(name: string): void {
      if (syncEnd !== undefined && name === SYNC_PORT) return router.resyncPeer();
      const i = router.domainIndex(name);
      if (i >= 0) router.resetDomain(i);
    },
    stop(): void {
      // RELEASE of a DHCP lease (address: dhcp): init stops the drivers only after the router, so it still leaves.
      router.releaseLeases();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      for (const p of pollables) env.ep.remove(p);
      pollables.length = 0;
    },
  };
}
