// GET /metrics: the Prometheus text exposition (version 0.0.4) of the
// gateway, from one prom-client registry in init whose metrics have collect
// callbacks. A scrape takes one snapshot (src/init/metrics-read.ts: init's own
// supervision rows, and every running component's status report, the ones
// GET /components serves), then the registry renders it: every metric's
// collect callback resets it and sets the snapshot's samples. Scrapes are
// serialised, so two concurrent ones never mix their snapshots. Nothing is
// counted on the packet path. Names, labels, meanings: docs/METRICS.md.
import { Counter, Gauge, Registry } from 'prom-client';
import { readMetrics } from './metrics-read.ts';
import type { MetricsInput, Samples } from './metrics-read.ts';

interface Def {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  labels: string[];
}

const C = 'component';

/** Every metric /metrics can show. A metric with no sample in a scrape prints its HELP and TYPE only. */
export const METRIC_DEFS: readonly Def[] = [
  { name: 'microgate_component_up', type: 'gauge', help: 'Whether the component runs (1) or not (0: starting, restarting, stopped, failed), as init supervises it.', labels: [C] },
  { name: 'microgate_component_state', type: 'gauge', help: 'The component\'s supervision state: 1 for the state it is in, 0 for the others.', labels: [C, 'state'] },
  { name: 'microgate_component_restarts_total', type: 'counter', help: 'Times init restarted the component (its unit) since init started.', labels: [C] },
  { name: 'microgate_component_hangs_total', type: 'counter', help: 'Times init killed the component\'s unit for missing five heartbeats.', labels: [C] },
  { name: 'microgate_component_oom_kills_total', type: 'counter', help: 'Deaths of the component\'s unit by the OOM killer at its memory limit.', labels: [C] },
  { name: 'microgate_component_channel_violations_total', type: 'counter', help: 'Times init killed the component\'s unit for breaking the control channel protocol.', labels: [C] },
  { name: 'microgate_component_degraded', type: 'gauge', help: 'Whether one of the component\'s packet links is not up (1: degraded; /status health).', labels: [C] },
  { name: 'microgate_link_up', type: 'gauge', help: 'Whether a packet link (kind: packet device) is up (1) or down or gone (0), as init\'s link watch sees it.', labels: [C, 'device', 'ifname'] },
  { name: 'microgate_link_changes_total', type: 'counter', help: 'Times a packet link went down (to="down") or came back (to="up").', labels: [C, 'device', 'ifname', 'to'] },
  { name: 'microgate_link_reattaches_total', type: 'counter', help: 'Reattachments of a recreated packet link (result="ok"), and failed tries (result="failed").', labels: [C, 'device', 'ifname', 'result'] },
  { name: 'microgate_component_resident_memory_bytes', type: 'gauge', help: 'Resident memory of the component\'s process, read by init from /proc.', labels: [C] },
  { name: 'microgate_component_report_ok', type: 'gauge', help: 'Whether the component answered this scrape\'s status request (1) or not (0: not running, or no answer within 1 s).', labels: [C] },
  { name: 'microgate_service_up', type: 'gauge', help: 'Whether the service runs (1) or not (0).', labels: ['service', 'kind'] },
  { name: 'microgate_service_state', type: 'gauge', help: 'The service\'s supervision state: 1 for the state it is in, 0 for the others.', labels: ['service', 'kind', 'state'] },
  { name: 'microgate_service_restarts_total', type: 'counter', help: 'Times init restarted the service.', labels: ['service', 'kind'] },
  { name: 'microgate_service_hangs_total', type: 'counter', help: 'Times init killed the service after five failed health checks.', labels: ['service', 'kind'] },
  { name: 'microgate_service_oom_kills_total', type: 'counter', help: 'Deaths of the service by the OOM killer at its memory limit.', labels: ['service', 'kind'] },
  { name: 'microgate_service_events_total', type: 'counter', help: 'Records of a service\'s event log since init started it, by event and result (the file gateway\'s requests: login, list, download, public-download, logout, rate-limited, csrf).', labels: ['service', 'kind', 'event', 'result'] },
  { name: 'microgate_service_events_rejected_total', type: 'counter', help: 'Lines of a service\'s event log that were not a record, and looks at a log that was not a regular file of the service\'s uid.', labels: ['service', 'kind'] },
  { name: 'microgate_domain_packets_total', type: 'counter', help: 'Packets a router received from (rx) or sent into (tx) a domain.', labels: [C, 'domain', 'direction'] },
  { name: 'microgate_domain_bytes_total', type: 'counter', help: 'Bytes (frames with their virtio-net header) a router received from (rx) or sent into (tx) a domain\'s session.', labels: [C, 'domain', 'direction'] },
  { name: 'microgate_drops_total', type: 'counter', help: 'Packets a component dropped, by reason (counter drop.<reason>).', labels: [C, 'reason'] },
  { name: 'microgate_domain_drops_total', type: 'counter', help: 'A router\'s drops by ingress domain and reason (a breakdown of microgate_drops_total).', labels: [C, 'domain', 'reason'] },
  { name: 'microgate_egress_holds_total', type: 'counter', help: 'Times a router\'s egress into a domain had no free slot and held the ingresses sending to it (backpressure: their excess is dropped at their links, counted there).', labels: [C, 'domain'] },
  { name: 'microgate_egress_stalls_total', type: 'counter', help: 'Times a router\'s egress into a domain freed no slot for 20 ms while holding: backpressure from it was then off for 10 s (its frames dropped as egress-full).', labels: [C, 'domain'] },
  { name: 'microgate_nic_frames_total', type: 'counter', help: 'Frames a NIC driver read from (rx) or wrote to (tx) its device.', labels: [C, 'direction'] },
  { name: 'microgate_nic_bytes_total', type: 'counter', help: 'Bytes a NIC driver read from (rx) or wrote to (tx) its device.', labels: [C, 'direction'] },
  { name: 'microgate_connections', type: 'gauge', help: 'Tracked connections of a router by address family, protocol and state.', labels: [C, 'family', 'proto', 'state'] },
  { name: 'microgate_connections_max', type: 'gauge', help: 'Size of a router\'s connection table per address family.', labels: [C, 'family'] },
  { name: 'microgate_nat_ports_in_use', type: 'gauge', help: 'NAT ports (ICMP: identifiers) in use per masquerading domain and protocol.', labels: [C, 'domain', 'proto'] },
  { name: 'microgate_nat_ports', type: 'gauge', help: 'Ports in a router\'s NAT range (each domain and protocol has its own pool of this size).', labels: [C] },
  { name: 'microgate_session_packets_total', type: 'counter', help: 'Packets through a component\'s session end: received (rx) or sent (tx).', labels: [C, 'session', 'direction'] },
  { name: 'microgate_session_bytes_total', type: 'counter', help: 'Bytes through a component\'s session end: received (rx) or sent (tx).', labels: [C, 'session', 'direction'] },
  { name: 'microgate_session_slots_busy', type: 'gauge', help: 'Packet slots of a session end\'s send ring in flight (sent, not yet acknowledged by the peer).', labels: [C, 'session'] },
  { name: 'microgate_session_slots_free', type: 'gauge', help: 'Packet slots of a session end\'s send ring free to allocate.', labels: [C, 'session'] },
  { name: 'microgate_session_rx_queued', type: 'gauge', help: 'Packets waiting in a session end\'s receive ring.', labels: [C, 'session'] },
  { name: 'microgate_session_resets_total', type: 'counter', help: 'Times a session end was reset (its peer restarted).', labels: [C, 'session'] },
  { name: 'microgate_session_drops_total', type: 'counter', help: 'Descriptors or acknowledgements a session end refused, by reason (a peer breaking the ring protocol).', labels: [C, 'session', 'reason'] },
  { name: 'microgate_monitor_packets_total', type: 'counter', help: 'Mirrored packets the monitor inspected.', labels: [C] },
  { name: 'microgate_monitor_anomalies_total', type: 'counter', help: 'Decoder and stream anomalies the monitor reported.', labels: [C] },
  { name: 'microgate_alerts_total', type: 'counter', help: 'EVE alerts init collected from a monitor since init started, by signature id (sid "other" past 1000 distinct ones).', labels: [C, 'sid', 'signature'] },
  { name: 'microgate_tunnel_peers', type: 'gauge', help: 'Peers configured on a tunnel.', labels: [C] },
  { name: 'microgate_tunnel_peer_handshake_age_seconds', type: 'gauge', help: 'Seconds since the peer\'s last completed handshake (absent before the first).', labels: [C, 'peer'] },
  { name: 'microgate_tunnel_peer_handshakes_total', type: 'counter', help: 'Completed handshakes with the peer.', labels: [C, 'peer'] },
  { name: 'microgate_tunnel_peer_bytes_total', type: 'counter', help: 'Bytes received from (rx) or sent to (tx) the peer, as wg show counts transfer.', labels: [C, 'peer', 'direction'] },
  { name: 'microgate_ha_master', type: 'gauge', help: 'An HA pair\'s router (config ha): 1 while it is master (forwards), 0 while backup.', labels: [C] },
  { name: 'microgate_ha_sync_link_up', type: 'gauge', help: 'An HA pair\'s conn-sync: 1 while authentic messages come from the peer, 0 when the pair is degraded (none for dead-ms) or never heard.', labels: [C] },
  { name: 'microgate_ha_sync_queue', type: 'gauge', help: 'Records waiting in conn-sync\'s send queue to the peer.', labels: [C] },
  { name: 'microgate_ha_sync_lag_seconds', type: 'gauge', help: 'Age of the oldest record in conn-sync\'s send queue (0 when empty).', labels: [C] },
  { name: 'microgate_ha_sync_queue_drops_total', type: 'counter', help: 'Records conn-sync dropped because its send queue was full (each starts a full resync).', labels: [C] },
  { name: 'microgate_ha_sync_peer_entries', type: 'gauge', help: 'Records in the peer\'s warm table, as its last status block said.', labels: [C] },
  { name: 'microgate_control_denied_total', type: 'counter', help: 'Control API requests refused, by reason (peer, token, host, origin, content-type).', labels: ['reason'] },
  { name: 'microgate_metrics_rejected_total', type: 'counter', help: 'Values in a component\'s status report that /metrics refused (not a finite number in [0, 2^53], a bad label, over 2000 samples).', labels: [C] },
];

export interface Metrics {
  /** The exposition text of one scrape. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

/** One registry, its metrics fed by `gather` (called once per scrape). */
export function createMetrics(gather: () => Promise<MetricsInput>): Metrics {
  const registry = new Registry();
  let current: Samples = new Map();
  const rejected = new Map<string, number>();
  for (const d of METRIC_DEFS) {
    if (d.type === 'counter') {
      new Counter({
        name: d.name, help: d.help, labelNames: d.labels, registers: [registry],
        collect() {
          this.reset();
          for (const s of current.get(d.name) ?? []) this.inc(s.labels, s.value);
        },
      });
    } else {
      new Gauge({
        name: d.name, help: d.help, labelNames: d.labels, registers: [registry],
        collect() {
          this.reset();
          for (const s of current.get(d.name) ?? []) this.set(s.labels, s.value);
        },
      });
    }
  }
  let queue: Promise<unknown> = Promise.resolve();
  return {
    contentType: registry.contentType,
    scrape() {
      const run = async (): Promise<string> => {
        current = readMetrics(await gather(), rejected);
        return registry.metrics();
      };
      const p = queue.then(run, run);
      queue = p.catch(() => undefined);
      return p;
    },
  };
}
