// What GET /metrics shows, read into plain samples (metric name -> labelled
// values) from what init knows itself (component and service supervision,
// control refusals, the alerts it collected) and from the components' status
// reports, the same ones GET /components serves. Nothing is counted on the
// packet path for it: a scrape asks each running unit for its report once.
//
// A report comes from a process that may run an attacker's code, so it is
// read by shape, never trusted: a value must be a finite number in
// [0, 2^53], a label value a short name (LABEL_RE), a component at most
// MAX_SERIES_PER_COMPONENT samples; anything else is left out and counted
// (microgate_metrics_rejected_total{component}). A component can lie about
// its own numbers only; init's own rows (states, restarts) never come from it.
// The metric names, labels and meanings: docs/METRICS.md.
import type { ComponentReport } from '../runtime/messages.ts';
import type { AlertCount } from './eve-collector.ts';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Metric name -> its samples. */
export type Samples = Map<string, Sample[]>;

/** A component's row of GET /status, as init keeps it (trusted). */
export interface ComponentRow {
  name: string;
  state: string;
  restarts: number;
  hangs: number;
  oomKills: number;
  channel: { violations: number };
  /** 'degraded' while one of its packet links is not up (init's link watch). */
  health?: string;
  links?: { device: string; ifname: string; state: string; counts: { down: number; up: number; reattached: number; reattachFailed: number } }[];
}

/** A service's row of GET /status (trusted). */
export interface ServiceRow {
  name: string;
  kind: string;
  state: string;
  restarts: number;
  hangs: number;
  oomKills: number;
}

export interface MetricsInput {
  components: ComponentRow[];
  services: ServiceRow[];
  /** The running components' reports (untrusted, but `name` was checked by init against the unit's components). */
  reports: ComponentReport[];
  alerts: AlertCount[];
  /** Services' event logs counted by init (src/init/event-log-counts.ts). */
  serviceEvents: { service: string; kind: string; counts: { event: string; result: string; count: number }[]; rejected: number }[];
  denied: Record<string, number>;
  /** Wall clock, ms (handshake ages). */
  nowMs: number;
}

/** The states a component or service row may be in; each (and any other state init reports) gets a 0/1 sample of *_state. */
export const STATES = ['starting', 'running', 'restarting', 'stopped', 'failed'] as const;

function statesWith(state: string): string[] {
  return (STATES as readonly string[]).includes(state) ? [...STATES] : [...STATES, state];
}

/** A label value read from a report: a name, address, key or reason. */
export const LABEL_RE = /^[A-Za-z0-9_.:+/=@-]{1,64}$/;
/** Samples one component's report may contribute at most. */
export const MAX_SERIES_PER_COMPONENT = 2000;
const MAX_VALUE = 2 ** 53;

/** One component's report as it is read: every sample passes `put`, which refuses and counts. */
class ReportReader {
  readonly name: string;
  #out: Samples;
  #n = 0;
  rejected = 0;

  constructor(name: string, out: Samples) {
    this.name = name;
    this.#out = out;
  }

  /** Add a sample with label `component` = this one; refused (counted) if a value or label is not acceptable. */
  put(metric: string, labels: Record<string, string>, value: unknown): void {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_VALUE) {
      this.rejected++;
      return;
    }
    for (const v of Object.values(labels)) {
      if (!LABEL_RE.test(v)) {
        this.rejected++;
        return;
      }
    }
    if (this.#n >= MAX_SERIES_PER_COMPONENT) {
      this.rejected++;
      return;
    }
    this.#n++;
    add(this.#out, metric, { component: this.name, ...labels }, value);
  }

  /** A label value from the report, or undefined (counted) when it is not one. */
  label(v: unknown): string | undefined {
    if (typeof v === 'string' && LABEL_RE.test(v)) return v;
    this.rejected++;
    return undefined;
  }
}

function add(out: Samples, metric: string, labels: Record<string, string>, value: number): void {
  let list = out.get(metric);
  if (list === undefined) {
    list = [];
    out.set(metric, list);
  }
  list.push({ labels, value });
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** The router's domain names (status.domains[].name), each checked. */
function domainNames(r: ReportReader, status: Record<string, unknown>): Set<string> {
  const names = new Set<string>();
  const list = status.domains;
  if (!Array.isArray(list)) return names;
  for (const d of list.slice(0, 64)) {
    const n = r.label(obj(d)?.name);
    if (n !== undefined) names.add(n);
  }
  return names;
}

function readCounters(r: ReportReader, rep: ComponentReport, domains: Set<string>): void {
  const counters = obj(rep.counters) ?? {};
  for (const [k, v] of Object.entries(counters)) {
    if (k.startsWith('drop.')) {
      r.put('microgate_drops_total', { reason: k.slice(5) }, v);
      continue;
    }
    const dd = /^domain\.([^.]+)\.drop\.(.+)$/.exec(k);
    if (dd !== null) {
      if (domains.has(dd[1])) r.put('microgate_domain_drops_total', { domain: dd[1], reason: dd[2] }, v);
      else r.rejected++;
      continue;
    }
    // Backpressure (router egress-hold.ts): how often an egress held its ingresses, and stalled.
    const eh = /^egress-(hold|stall)\.(.+)$/.exec(k);
    if (eh !== null) {
      if (domains.has(eh[2])) r.put(eh[1] === 'hold' ? 'microgate_egress_holds_total' : 'microgate_egress_stalls_total', { domain: eh[2] }, v);
      else r.rejected++;
      continue;
    }
    const pk = /^(rx|tx)\.(.+)$/.exec(k);
    if (pk !== null && domains.has(pk[2])) {
      r.put('microgate_domain_packets_total', { domain: pk[2], direction: pk[1] }, v);
      continue;
    }
    // A NIC driver's frames and bytes (rx.frames, rx.bytes, tx.frames, tx.bytes).
    const nic = /^(rx|tx)\.(frames|bytes)$/.exec(k);
    if (nic !== null) {
      r.put(nic[2] === 'frames' ? 'microgate_nic_frames_total' : 'microgate_nic_bytes_total', { direction: nic[1] }, v);
      continue;
    }
    if (k === 'anomalies') r.put('microgate_monitor_anomalies_total', {}, v);
    else if (k === 'packets') r.put('microgate_monitor_packets_total', {}, v);
  }
  // Counters report only what is not zero: every domain gets both directions, so a series exists before its first packet.
  for (const d of domains) for (const dir of ['rx', 'tx']) if (counters[`${dir}.${d}`] === undefined) r.put('microgate_domain_packets_total', { domain: d, direction: dir }, 0);
}

function readSessions(r: ReportReader, rep: ComponentReport, domains: Set<string>): void {
  const sessions = obj(rep.sessions) ?? {};
  for (const [name, raw] of Object.entries(sessions)) {
    const s = obj(raw);
    const session = r.label(name);
    if (s === undefined || session === undefined) continue;
    const l = { session };
    for (const dir of ['in', 'out'] as const) {
      const d = dir === 'in' ? 'rx' : 'tx';
      if (s[`${dir}.packets`] !== undefined) r.put('microgate_session_packets_total', { ...l, direction: d }, s[`${dir}.packets`]);
      if (s[`${dir}.bytes`] !== undefined) r.put('microgate_session_bytes_total', { ...l, direction: d }, s[`${dir}.bytes`]);
    }
    if (s['out.busy-slots'] !== undefined) r.put('microgate_session_slots_busy', l, s['out.busy-slots']);
    if (s['out.free-slots'] !== undefined) r.put('microgate_session_slots_free', l, s['out.free-slots']);
    if (s['in.queued'] !== undefined) r.put('microgate_session_rx_queued', l, s['in.queued']);
    if (s.resets !== undefined) r.put('microgate_session_resets_total', l, s.resets);
    for (const [k, v] of Object.entries(s)) if (k.startsWith('drop.')) r.put('microgate_session_drops_total', { ...l, reason: k.slice(5) }, v);
    // A router's session named after a domain carries that domain's bytes.
    if (domains.has(name)) {
      r.put('microgate_domain_bytes_total', { domain: name, direction: 'rx' }, s['in.bytes']);
      r.put('microgate_domain_bytes_total', { domain: name, direction: 'tx' }, s['out.bytes']);
    }
  }
}

function readConntrack(r: ReportReader, status: Record<string, unknown>): void {
  for (const [key, family] of [['conntrack', 'ipv4'], ['conntrack6', 'ipv6']] as const) {
    const ct = obj(status[key]);
    if (ct === undefined) continue;
    if (ct.max !== undefined) r.put('microgate_connections_max', { family }, ct.max);
    for (const [p, byState] of Object.entries(obj(ct.byProto) ?? {})) {
      const proto = r.label(p);
      if (proto === undefined) continue;
      for (const [st, n] of Object.entries(obj(byState) ?? {})) {
        const state = r.label(st);
        if (state !== undefined) r.put('microgate_connections', { family, proto, state }, n);
      }
    }
  }
  const nat = obj(status.nat);
  if (nat === undefined) return;
  if (nat.size !== undefined) r.put('microgate_nat_ports', {}, nat.size);
  if (!Array.isArray(nat.inUse)) return;
  for (const u of nat.inUse.slice(0, 256)) {
    const o = obj(u) ?? {};
    const domain = r.label(o.domain);
    const proto = r.label(o.proto);
    if (domain !== undefined && proto !== undefined) r.put('microgate_nat_ports_in_use', { domain, proto }, o.ports);
  }
}

function readTunnel(r: ReportReader, status: Record<string, unknown>, nowMs: number): void {
  if (!Array.isArray(status.peers) || typeof status.publicKey !== 'string') return;
  r.put('microgate_tunnel_peers', {}, status.peers.length);
  for (const raw of status.peers.slice(0, 256)) {
    const p = obj(raw) ?? {};
    const peer = r.label(p.publicKey);
    if (peer === undefined) continue;
    r.put('microgate_tunnel_peer_bytes_total', { peer, direction: 'rx' }, p.transferRx);
    r.put('microgate_tunnel_peer_bytes_total', { peer, direction: 'tx' }, p.transferTx);
    if (p.handshakes !== undefined) r.put('microgate_tunnel_peer_handshakes_total', { peer }, p.handshakes);
    // latestHandshake: wall-clock seconds of the last completed handshake, null before the first.
    if (typeof p.latestHandshake === 'number') r.put('microgate_tunnel_peer_handshake_age_seconds', { peer }, Math.max(0, nowMs / 1000 - p.latestHandshake));
  }
}

/** An HA pair: the router's role (status ha), conn-sync's pair link (status pair). */
function readHa(r: ReportReader, status: Record<string, unknown>): void {
  const ha = obj(status.ha);
  if (ha !== undefined && (ha.role === 'master' || ha.role === 'backup')) r.put('microgate_ha_master', {}, ha.role === 'master' ? 1 : 0);
  const pair = obj(status.pair);
  if (pair === undefined) return;
  r.put('microgate_ha_sync_link_up', {}, pair.link === 'up' ? 1 : 0);
  r.put('microgate_ha_sync_queue', {}, pair.queued);
  if (typeof pair.lagMs === 'number') r.put('microgate_ha_sync_lag_seconds', {}, pair.lagMs / 1000);
  r.put('microgate_ha_sync_queue_drops_total', {}, pair.queueDrops);
  const peer = obj(pair.peerStatus);
  if (peer !== undefined) r.put('microgate_ha_sync_peer_entries', {}, peer.entries);
}

/** Read everything /metrics shows; `rejected` adds each component's refused values to its running total. */
export function readMetrics(input: MetricsInput, rejected: Map<string, number>): Samples {
  const out: Samples = new Map();
  const known = new Set(input.components.map((c) => c.name));
  for (const c of input.components) {
    const l = { component: c.name };
    add(out, 'microgate_component_up', l, c.state === 'running' ? 1 : 0);
    for (const s of statesWith(c.state)) add(out, 'microgate_component_state', { ...l, state: s }, c.state === s ? 1 : 0);
    add(out, 'microgate_component_restarts_total', l, c.restarts);
    add(out, 'microgate_component_hangs_total', l, c.hangs);
    add(out, 'microgate_component_oom_kills_total', l, c.oomKills);
    add(out, 'microgate_component_channel_violations_total', l, c.channel.violations);
    add(out, 'microgate_component_degraded', l, c.health === 'degraded' ? 1 : 0);
    for (const k of c.links ?? []) {
      const ll = { ...l, device: k.device, ifname: k.ifname };
      add(out, 'microgate_link_up', ll, k.state === 'up' ? 1 : 0);
      add(out, 'microgate_link_changes_total', { ...ll, to: 'down' }, k.counts.down);
      add(out, 'microgate_link_changes_total', { ...ll, to: 'up' }, k.counts.up);
      add(out, 'microgate_link_reattaches_total', { ...ll, result: 'ok' }, k.counts.reattached);
      add(out, 'microgate_link_reattaches_total', { ...ll, result: 'failed' }, k.counts.reattachFailed);
    }
  }
  for (const s of input.services) {
    const l = { service: s.name, kind: s.kind };
    add(out, 'microgate_service_up', l, s.state === 'running' ? 1 : 0);
    for (const st of statesWith(s.state)) add(out, 'microgate_service_state', { ...l, state: st }, s.state === st ? 1 : 0);
    add(out, 'microgate_service_restarts_total', l, s.restarts);
    add(out, 'microgate_service_hangs_total', l, s.hangs);
    add(out, 'microgate_service_oom_kills_total', l, s.oomKills);
  }
  const answered = new Set<string>();
  for (const rep of input.reports) {
    // init matched the report's name to the unit's components (a foreign name gets the unit killed): still, only known names.
    if (!known.has(rep.name) || answered.has(rep.name)) continue;
    answered.add(rep.name);
    const r = new ReportReader(rep.name, out);
    const status = obj(rep.status) ?? {};
    const domains = domainNames(r, status);
    readCounters(r, rep, domains);
    readSessions(r, rep, domains);
    readConntrack(r, status);
    readTunnel(r, status, input.nowMs);
    readHa(r, status);
    // Resident memory: measured by init from /proc, not reported by the component.
    if (typeof rep.rssBytes === 'number') add(out, 'microgate_component_resident_memory_bytes', { component: rep.name }, rep.rssBytes);
    rejected.set(rep.name, (rejected.get(rep.name) ?? 0) + r.rejected);
  }
  for (const c of input.components) add(out, 'microgate_component_report_ok', { component: c.name }, answered.has(c.name) ? 1 : 0);
  for (const [component, n] of rejected) add(out, 'microgate_metrics_rejected_total', { component }, n);
  for (const s of input.serviceEvents) {
    for (const c of s.counts) add(out, 'microgate_service_events_total', { service: s.service, kind: s.kind, event: c.event, result: c.result }, c.count);
    add(out, 'microgate_service_events_rejected_total', { service: s.service, kind: s.kind }, s.rejected);
  }
  for (const a of input.alerts) add(out, 'microgate_alerts_total', { component: a.component, sid: a.sid, signature: a.signature }, a.count);
  for (const [reason, n] of Object.entries(input.denied)) add(out, 'microgate_control_denied_total', { reason }, n);
  return out;
}
