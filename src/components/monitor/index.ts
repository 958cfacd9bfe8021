// The monitor component: an IDS fed by the router's mirror session. It never
// sends anything: every mirrored frame is inspected (decode, defrag, flows,
// reassembly, rules) and acknowledged at once, so the router's mirror slots
// come back as fast as the monitor runs; when it falls behind, the router
// drops mirror copies (not traffic). EVE records go into a ring in memory;
// init fetches them (query "eve") and appends them to the log file, since
// the component itself may write nowhere.
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import { ConfigFileError } from '../../config/reader.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import { parseMonitorConfig } from './config.ts';
import { Engine, type EveType } from './engine.ts';
import { LINKTYPE_ETHERNET } from './packet.ts';
import { Detector } from './detect/detect.ts';
import { buildRuleSet, fixedChange, type RuleSet } from './reload.ts';
import type { Rule } from './rules/rule.ts';
import { describeErrors, newErrors, ruleSetDiff } from './rules/swap.ts';
import { EveRing } from './ring.ts';

export const MONITOR_PORT = 'mirror';
const VNET = 12;

export function builtinRulesText(): string {
  return readFileSync(new URL('./rules/builtin.rules', import.meta.url), 'utf8');
}

export default function create(env: ComponentEnv): Component {
  let cfg = parseMonitorConfig(env.config, env.configSource);
  const end = env.sessions.get(MONITOR_PORT);
  if (end === undefined) {
    throw new ConfigFileError(env.configSource.file, env.configSource.path,
      `expected a Nic session named "${MONITOR_PORT}" connected to component "${env.name}" (granted: ${[...env.sessions.keys()].join(', ') || 'none'})`);
  }
  let cfgRaw: unknown = env.config;
  // Read now, while the component may still read its own code: once running
  // it has no path lookups at all, and a reload may turn builtin-rules on.
  const builtinText = builtinRulesText();
  const builtin = (): string => builtinText;
  const initial = buildRuleSet(cfg, builtin);
  let rules = initial.rules;
  const classifications = initial.classifications;
  /** The set a dry run checked, applied as is by the reload that follows it. */
  let checked: { key: string; set: RuleSet; detector: Detector } | undefined;
  const ring = new EveRing(cfg.eve.ring);
  const c = {
    packets: env.counters.define('packets'),
    bytes: env.counters.define('bytes'),
    alerts: env.counters.define('alerts'),
    anomalies: env.counters.define('anomalies'),
    overwritten: env.counters.define('eve.overwritten'),
    short: env.counters.dropReason('mirror-too-short'),
  };
  const engine = new Engine({
    tracer: env.trace,
    rules,
    classifications,
    flow: cfg.flow,
    defrag: cfg.defrag,
    stream: cfg.stream,
    detectors: cfg.detectors,
    midstream: cfg.midstream,
    eveTypes: cfg.eve.types,
    eve: { pktSrc: 'wire/live', pcapFilename: '', domains: cfg.domains, packetBytes: cfg.eve.packetBytes },
    emit: (line: string, type: EveType) => {
      if (type === 'alert') env.counters.add(c.alerts);
      else if (type === 'anomaly') env.counters.add(c.anomalies);
      if (ring.push(line)) env.counters.add(c.overwritten);
    },
  });
  env.log.info('rules loaded', { loaded: rules.rules.length, failed: rules.errors.length, skipped: rules.skipped.length });
  for (const e of rules.errors.slice(0, 20)) env.log.warn('rule not loaded', { file: e.file, line: e.line, sid: e.sid, reason: e.reason });

  const sink = end.in;
  let pollable: Pollable | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastStats = Date.now();
  const onPacket = (off: number, len: number): void => {
    const b = sink.buf;
    env.counters.add(c.packets);
    env.counters.add(c.bytes, len);
    if (len < VNET + 14) {
      env.counters.add(c.short);
      return;
    }
    const tag = b[off + 10] | (b[off + 11] << 8);
    const now = Date.now();
    // The mirror's tag: domain (bits 0..13), second copy of a forwarded frame (14), sent (15).
    engine.process(b, off + VNET, len - VNET, LINKTYPE_ETHERNET, Math.floor(now / 1000), (now % 1000) * 1000, 0,
      tag & 0x3fff, tag >>> 15, ((tag >>> 14) & 1) === 1);
  };

  return {
    start(): void {
      // Lower this thread's priority (no privilege needed): the forwarding path wins the CPU.
      // Only when the thread is the monitor's own (its own process, or a worker thread).
      if (cfg.nice > 0 && (!isMainThread || process.env.MG_COMPONENT === env.name)) {
        try {
          setPriority(0, cfg.nice);
        } catch (e) {
          env.log.warn('could not lower the priority', { error: (e as Error).message });
        }
      }
      pollable = sinkPollable(sink, onPacket);
      env.ep.add(pollable);
      timer = setInterval(() => {
        const now = Date.now();
        engine.tick(now);
        if (cfg.statsIntervalS > 0 && now - lastStats >= cfg.statsIntervalS * 1000) {
          lastStats = now;
          ring.push(JSON.stringify(engine.statsRecord()));
        }
      }, 1000);
      timer.unref();
      env.log.info('monitor started', { rules: rules.rules.length, eveTypes: cfg.eve.types });
    },
    status(): Record<string, unknown> {
      const s = engine.stats;
      return {
        rules: { loaded: rules.rules.length, failed: rules.errors.length, skipped: rules.skipped.length, total: rules.total, reloads: engine.reloads },
        // The 20 rules that matched most (all of them: query "rules"); counts survive a reload for unchanged rules.
        topRules: rules.rules.filter((r) => r.hits > 0).sort((a, b) => b.hits - a.hits).slice(0, 20)
          .map((r) => ({ gid: r.gid, sid: r.sid, rev: r.rev, msg: r.msg, hits: r.hits })),
        ruleErrors: rules.errors.slice(0, 50).map((e) => ({ file: e.file, line: e.line, sid: e.sid, reason: e.reason })),
        decoder: { packets: s.pkts, bytes: s.bytes, invalid: s.invalid, ipv4: s.ipv4, ipv6: s.ipv6, arp: s.arp, fragments: s.fragments },
        alerts: s.alerts,
        anomalies: s.anomalies,
        secondCopies: s.secondCopies,
        secondCopiesSkipped: s.secondCopiesSkipped,
        events: Object.fromEntries(s.events),
        flows: { active: engine.flows.count, ...engine.flows.counters, max: engine.flows.limits.max },
        defrag: { trackers: engine.defrag.trackers, bytes: engine.defrag.bytes, ...engine.defrag.counters },
        stream: { bytes: engine.stream.bytes, ...engine.stream.counters },
        detectors: { ...engine.detectors.counters, floods: engine.detectors.floods.counters, arp: engine.detectors.arp.counters },
        detect: { ...engine.detector.counters, prefilterTableBytes: engine.detector.prefilterBytes },
        eve: { seq: ring.seq, capacity: ring.capacity, overwritten: ring.overwritten },
        pcre: pcreStatus(rules.rules, false),
      };
    },
    /**
     * A rule reload (`microgate reload`): the new rule set is loaded and
     * checked first; a rule error the running set does not have, or a change
     * outside the rules, refuses it and the running rules stay. Applied, it
     * is used from the next packet on; flows, streams and the rest stay.
     */
    reconfigure(config: unknown, dryRun?: boolean): string | undefined {
      let next;
      try {
        next = parseMonitorConfig(config, env.configSource);
      } catch (e) {
        return (e as Error).message;
      }
      const key = fixedChange(cfg, next, cfgRaw, config);
      if (key !== undefined) {
        return `${key} changed: a reload changes only the monitor's rules (rule-files and their content, rules, builtin-rules, vars, classification-file); restart the gateway for the rest`;
      }
      const stamp = JSON.stringify(config);
      let ready = checked !== undefined && checked.key === stamp ? checked : undefined;
      if (ready === undefined) {
        const set = buildRuleSet(next, builtin, rules.flowbitNames);
        const bad = newErrors(rules, set.rules);
        if (bad.length > 0) return `${bad.length} rule${bad.length === 1 ? '' : 's'} failed, the running rules stay: ${describeErrors(bad)}`;
        ready = { key: stamp, set, detector: new Detector(set.rules.rules) };
      }
      if (dryRun === true) {
        checked = ready;
        return undefined;
      }
      checked = undefined;
      const set = ready.set;
      const diff = ruleSetDiff(rules, set.rules);
      const t0 = performance.now();
      engine.replaceRules(set.rules, set.classifications, ready.detector);
      const swapMs = Math.round((performance.now() - t0) * 10) / 10;
      rules = set.rules;
      cfg = next;
      cfgRaw = config;
      env.log.info('rules reloaded', { ...diff, loaded: rules.rules.length, failed: rules.errors.length, skipped: rules.skipped.length, swapMs });
      return undefined;
    },
    query(what: string, args: unknown): unknown {
      if (what === 'eve') {
        const since = typeof (args as { since?: unknown })?.since === 'number' ? (args as { since: number }).since : 0;
        return ring.since(since);
      }
      if (what === 'pcre') return pcreStatus(rules.rules, true);
      if (what === 'rules') {
        // Every rule with its hit counter (kept across reloads for unchanged rules).
        return rules.rules.map((r) => ({ gid: r.gid, sid: r.sid, rev: r.rev, msg: r.msg, file: r.file, line: r.line, hits: r.hits }));
      }
      if (what === 'rule-errors') return rules.errors.map((e) => ({ file: e.file, line: e.line, sid: e.sid, reason: e.reason }));
      throw new Error(`unknown query "${what}" (the monitor answers eve, pcre, rules, rule-errors)`);
    },
    stop(): void {
      if (timer !== undefined) clearInterval(timer);
      if (pollable !== undefined) env.ep.remove(pollable);
    },
  };
}

/**
 * The pcre engines' counters: totals per engine, and per rule (rules on the
 * linear engine only, or every rule with a pcre when `all`).
 */
export function pcreStatus(rules: readonly Rule[], all: boolean): Record<string, unknown> {
  const total = { v8: { patterns: 0, evaluations: 0, bytes: 0, work: 0 }, linear: { patterns: 0, evaluations: 0, bytes: 0, work: 0 } };
  const perRule: Record<string, unknown>[] = [];
  for (const r of rules) {
    for (const items of r.buffers.values()) {
      for (const it of items) {
        if (it.k !== 'pcre') continue;
        const t = total[it.spec.engine];
        t.patterns++;
        t.evaluations += it.spec.stats.evaluations;
        t.bytes += it.spec.stats.bytes;
        t.work += it.spec.stats.work;
        if (all || it.spec.engine === 'linear') {
          perRule.push({ sid: r.sid, pcre: it.spec.source, engine: it.spec.engine, why: it.spec.why, workPerByte: it.spec.workPerByte, ...it.spec.stats });
        }
      }
    }
  }
  return { ...total, rules: perRule };
}
