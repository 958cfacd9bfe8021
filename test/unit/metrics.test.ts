// GET /metrics (issue 16): the exposition init renders from its own rows and
// the components' status reports, read back by the reference Prometheus
// parser (python3-prometheus-client); what a hostile report can and cannot
// put into it; alert counts by signature in init's EVE collector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chownSync, linkSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, METRIC_DEFS } from '../../src/init/metrics.ts';
import { MAX_SERIES_PER_COMPONENT, readMetrics } from '../../src/init/metrics-read.ts';
import type { MetricsInput } from '../../src/init/metrics-read.ts';
import type { ComponentReport } from '../../src/runtime/messages.ts';
import { EveCollector, MAX_ALERT_SIGNATURES } from '../../src/init/eve-collector.ts';
import { EventLogCounts, MAX_PAIRS } from '../../src/init/event-log-counts.ts';
import { parsePrometheus, samples, value } from '../fixtures/prom-parse.ts';

const LOOP = { turns: 0, sleeps: 0, idleNs: '0', busyNs: '0', yields: 0 };

function row(name: string, state = 'running', restarts = 0) {
  return { name, state, restarts, hangs: 0, oomKills: 0, channel: { violations: 0 } };
}

function shmEnd(inBytes: number, outBytes: number, busy: number): Record<string, number> {
  return { 'in.packets': inBytes / 100, 'in.bytes': inBytes, 'out.packets': outBytes / 100, 'out.bytes': outBytes, 'out.busy-slots': busy, 'out.free-slots': 256 - busy, 'in.queued': 3, resets: 1, 'drop.desc-out-of-range': 2 };
}

function routerReport(): ComponentReport {
  return {
    name: 'router',
    counters: { 'rx.lan': 10, 'tx.lan': 7, 'rx.wan': 5, 'drop.no-route': 4, 'domain.lan.drop.no-route': 3, 'domain.wan.drop.no-route': 1, 'arp.learned': 2,
      'egress-hold.wan': 6, 'egress-stall.wan': 1, 'egress-hold.nope': 9 },
    sessions: { lan: shmEnd(1000, 700, 5), wan: shmEnd(500, 0, 0), mirror: shmEnd(0, 1500, 1) },
    status: {
      domains: [{ name: 'lan' }, { name: 'wan' }],
      conntrack: { count: 3, max: 16384, byProto: { tcp: { established: 2 }, icmp: { new: 1 } } },
      conntrack6: { count: 1, max: 16384, byProto: { udp: { new: 1 } } },
      nat: { size: 28232, inUse: [{ domain: 'wan', proto: 'tcp', ports: 2 }] },
    },
    loop: LOOP,
    rssBytes: 50_000_000,
  };
}

function input(reports: ComponentReport[], extra: Partial<MetricsInput> = {}): MetricsInput {
  return {
    components: [
      { ...row('drv-lan'), health: 'degraded', links: [{ device: 'port-lan', ifname: 'eth1', state: 'gone', counts: { down: 2, up: 1, reattached: 1, reattachFailed: 0 } }] },
      row('router'), row('tunnel', 'restarting', 3), row('monitor'),
    ],
    services: [{ name: 'files', kind: 'file-gateway', state: 'running', restarts: 1, hangs: 0, oomKills: 0 }],
    reports,
    alerts: [{ component: 'monitor', sid: '2100498', signature: 'GPL ATTACK_RESPONSE id check returned root "x"\\y', count: 4 }],
    serviceEvents: [{ service: 'files', kind: 'file-gateway', counts: [{ event: 'download', result: 'ok', count: 6 }, { event: 'login', result: 'failed', count: 2 }], rejected: 1 }],
    denied: { peer: 2, token: 0, host: 0, origin: 0, 'content-type': 0 },
    nowMs: 1_000_000_000,
    ...extra,
  };
}

test('metrics: the exposition parses with the reference parser; names, types and values as docs/METRICS.md says', async () => {
  const nic: ComponentReport = { name: 'drv-lan', counters: { 'rx.frames': 9, 'rx.bytes': 742, 'tx.frames': 5, 'tx.bytes': 488, 'drop.tap-write-rejected': 1 }, sessions: {}, status: {}, loop: LOOP };
  const tunnel: ComponentReport = {
    name: 'tunnel', counters: {}, sessions: {}, loop: LOOP,
    status: { publicKey: 'P191Cvb7/3V7i5UrdOtzLd3F87JygCsaEJ8O2noS2hU=', peers: [
      { publicKey: '4JxEBir0kxre6Wgx90c+fWNoH2slEklL/k9sD1Bs/RE=', latestHandshake: 999_990, transferRx: 100, transferTx: 200, handshakes: 2 },
      { publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', latestHandshake: null, transferRx: 0, transferTx: 0, handshakes: 0 },
    ] },
  };
  const monitor: ComponentReport = { name: 'monitor', counters: { packets: 49, bytes: 4860, anomalies: 2 }, sessions: {}, status: {}, loop: LOOP };
  const m = createMetrics(() => Promise.resolve(input([routerReport(), nic, tunnel, monitor])));
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  const text = await m.scrape();
  const f = parsePrometheus(text);
  // Every defined metric is there, with the declared type; counters end in _total, and nothing else does.
  for (const d of METRIC_DEFS) {
    const fam = f.find((x) => x.name === d.name.replace(/_total$/, ''));
    assert.ok(fam !== undefined, `${d.name} in the exposition`);
    assert.equal(fam.type, d.type, d.name);
    assert.equal(d.name.endsWith('_total'), d.type === 'counter', d.name);
    assert.match(d.name, /^microgate_[a-z0-9_]+$/);
  }
  assert.equal(value(f, 'microgate_domain_packets_total', { component: 'router', domain: 'lan', direction: 'rx' }), 10);
  assert.equal(value(f, 'microgate_domain_packets_total', { domain: 'lan', direction: 'tx' }), 7);
  assert.equal(value(f, 'microgate_domain_bytes_total', { domain: 'lan', direction: 'rx' }), 1000);
  assert.equal(value(f, 'microgate_domain_bytes_total', { domain: 'lan', direction: 'tx' }), 700);
  assert.equal(value(f, 'microgate_domain_bytes_total', { domain: 'mirror' }), undefined, 'the mirror session is not a domain');
  assert.equal(value(f, 'microgate_drops_total', { component: 'router', reason: 'no-route' }), 4);
  assert.equal(value(f, 'microgate_drops_total', { component: 'drv-lan', reason: 'tap-write-rejected' }), 1);
  assert.equal(value(f, 'microgate_domain_drops_total', { domain: 'lan', reason: 'no-route' }), 3);
  assert.equal(value(f, 'microgate_egress_holds_total', { component: 'router', domain: 'wan' }), 6);
  assert.equal(value(f, 'microgate_egress_stalls_total', { component: 'router', domain: 'wan' }), 1);
  assert.equal(value(f, 'microgate_egress_holds_total', { domain: 'nope' }), undefined, 'a counter of no domain is not a series');
  assert.equal(value(f, 'microgate_connections', { family: 'ipv4', proto: 'tcp', state: 'established' }), 2);
  assert.equal(value(f, 'microgate_connections', { family: 'ipv6', proto: 'udp', state: 'new' }), 1);
  assert.equal(value(f, 'microgate_connections_max', { family: 'ipv4' }), 16384);
  assert.equal(value(f, 'microgate_nat_ports_in_use', { domain: 'wan', proto: 'tcp' }), 2);
  assert.equal(value(f, 'microgate_nat_ports', { component: 'router' }), 28232);
  assert.equal(value(f, 'microgate_session_slots_busy', { component: 'router', session: 'lan' }), 5);
  assert.equal(value(f, 'microgate_session_slots_free', { component: 'router', session: 'lan' }), 251);
  assert.equal(value(f, 'microgate_session_rx_queued', { component: 'router', session: 'wan' }), 3);
  assert.equal(value(f, 'microgate_session_drops_total', { component: 'router', session: 'lan', reason: 'desc-out-of-range' }), 2);
  assert.equal(value(f, 'microgate_nic_bytes_total', { component: 'drv-lan', direction: 'rx' }), 742);
  assert.equal(value(f, 'microgate_nic_frames_total', { component: 'drv-lan', direction: 'tx' }), 5);
  assert.equal(value(f, 'microgate_monitor_anomalies_total', { component: 'monitor' }), 2);
  assert.equal(value(f, 'microgate_tunnel_peers', { component: 'tunnel' }), 2);
  assert.equal(value(f, 'microgate_tunnel_peer_handshake_age_seconds', { peer: '4JxEBir0kxre6Wgx90c+fWNoH2slEklL/k9sD1Bs/RE=' }), 10);
  assert.equal(value(f, 'microgate_tunnel_peer_handshake_age_seconds', { peer: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }), undefined, 'no age before the first handshake');
  assert.equal(value(f, 'microgate_tunnel_peer_bytes_total', { peer: '4JxEBir0kxre6Wgx90c+fWNoH2slEklL/k9sD1Bs/RE=', direction: 'tx' }), 200);
  assert.equal(value(f, 'microgate_alerts_total', { sid: '2100498' }), 4);
  assert.equal(samples(f, 'microgate_alerts_total')[0].labels.signature, 'GPL ATTACK_RESPONSE id check returned root "x"\\y', 'quotes and backslashes survive escaping');
  assert.equal(value(f, 'microgate_component_up', { component: 'router' }), 1);
  assert.equal(value(f, 'microgate_component_up', { component: 'tunnel' }), 0);
  assert.equal(value(f, 'microgate_component_state', { component: 'tunnel', state: 'restarting' }), 1);
  assert.equal(value(f, 'microgate_component_state', { component: 'tunnel', state: 'running' }), 0);
  assert.equal(value(f, 'microgate_component_restarts_total', { component: 'tunnel' }), 3);
  assert.equal(value(f, 'microgate_component_resident_memory_bytes', { component: 'router' }), 50_000_000);
  assert.equal(value(f, 'microgate_component_degraded', { component: 'drv-lan' }), 1);
  assert.equal(value(f, 'microgate_component_degraded', { component: 'router' }), 0);
  assert.equal(value(f, 'microgate_link_up', { component: 'drv-lan', device: 'port-lan', ifname: 'eth1' }), 0);
  assert.equal(value(f, 'microgate_link_changes_total', { ifname: 'eth1', to: 'down' }), 2);
  assert.equal(value(f, 'microgate_link_reattaches_total', { ifname: 'eth1', result: 'ok' }), 1);
  assert.equal(value(f, 'microgate_service_restarts_total', { service: 'files', kind: 'file-gateway' }), 1);
  assert.equal(value(f, 'microgate_control_denied_total', { reason: 'peer' }), 2);
  assert.equal(value(f, 'microgate_service_events_total', { service: 'files', event: 'download', result: 'ok' }), 6);
  assert.equal(value(f, 'microgate_service_events_total', { service: 'files', event: 'login', result: 'failed' }), 2);
  assert.equal(value(f, 'microgate_service_events_rejected_total', { service: 'files' }), 1);
  assert.equal(value(f, 'microgate_metrics_rejected_total', { component: 'router' }), 1, 'egress-hold.nope names no domain');
});

test('metrics: a scrape shows the numbers of its own snapshot; gone label sets disappear; a failing gather fails that scrape only', async () => {
  let n = 0;
  const m = createMetrics(() => {
    n++;
    if (n === 2) return Promise.reject(new Error('gather failed'));
    const r = routerReport();
    r.counters['rx.lan'] = n * 100;
    if (n === 3) delete r.counters['drop.no-route'];
    return Promise.resolve(input([r]));
  });
  assert.equal(value(parsePrometheus(await m.scrape()), 'microgate_domain_packets_total', { domain: 'lan', direction: 'rx' }), 100);
  await assert.rejects(m.scrape(), /gather failed/);
  const f = parsePrometheus(await m.scrape());
  assert.equal(value(f, 'microgate_domain_packets_total', { domain: 'lan', direction: 'rx' }), 300);
  assert.equal(value(f, 'microgate_drops_total', { reason: 'no-route' }), undefined);
  // Concurrent scrapes are serialised: each sees its own gather.
  const [a, b] = await Promise.all([m.scrape(), m.scrape()]);
  assert.equal(value(parsePrometheus(a), 'microgate_domain_packets_total', { domain: 'lan', direction: 'rx' }), 400);
  assert.equal(value(parsePrometheus(b), 'microgate_domain_packets_total', { domain: 'lan', direction: 'rx' }), 500);
});

test('metrics: a hostile report cannot break the exposition, forge another component or grow it without bound; refusals are counted', async () => {
  const evil: ComponentReport = {
    name: 'router',
    counters: {
      'rx.lan': Number.NaN, 'tx.lan': -5, 'rx.wan': Number.POSITIVE_INFINITY, 'drop.x': 2 ** 60,
      'drop.a"b\nmicrogate_component_up{component="router"} 1': 1, 'drop.ok': 1,
      'domain.nowhere.drop.x': 1, 'drop.': 1,
      ...Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`drop.r${i}`, i])),
    } as Record<string, number>,
    sessions: { 'x y': { 'in.bytes': 1 }, lan: 'not an object' } as unknown as ComponentReport['sessions'],
    status: {
      domains: [{ name: 'lan' }, { name: 'wan' }, { name: 'a'.repeat(65) }, { name: 7 }, null],
      conntrack: { max: '16384', byProto: { tcp: { 'established\n': 1, established: 'many' } } },
      nat: { size: -1, inUse: 'all' },
      publicKey: 'k', peers: [{ publicKey: 'x\n' }, 5],
    },
    loop: LOOP,
  };
  const rejected = new Map<string, number>();
  const s = readMetrics(input([evil, { ...routerReport(), name: 'intruder' }]), rejected);
  assert.ok(!s.has('microgate_connections'), 'no connection sample from bad keys and values');
  assert.equal(s.get('microgate_drops_total')?.length, MAX_SERIES_PER_COMPONENT, 'at most MAX_SERIES_PER_COMPONENT samples');
  assert.ok((rejected.get('router') ?? 0) >= 3000 + 10);
  assert.ok(!rejected.has('intruder') && ![...s.values()].flat().some((x) => x.labels.component === 'intruder'), 'a report for a component init does not know is ignored');
  const m = createMetrics(() => Promise.resolve(input([evil])));
  const text = await m.scrape();
  assert.ok(text.length < 600_000, `bounded: ${text.length} bytes`);
  const f = parsePrometheus(text);
  assert.equal(value(f, 'microgate_drops_total', { reason: 'ok' }), 1);
  assert.equal(value(f, 'microgate_domain_packets_total', { domain: 'lan', direction: 'rx' }), undefined, 'NaN refused');
  assert.equal(value(f, 'microgate_domain_packets_total', { domain: 'lan', direction: 'tx' }), undefined, 'negative refused');
  assert.equal(value(f, 'microgate_drops_total', { reason: 'x' }), undefined, 'above 2^53 refused');
  assert.equal(samples(f, 'microgate_component_up').length, 4, 'no forged line');
  assert.equal(value(f, 'microgate_component_up', { component: 'router' }), 1);
  assert.ok((value(f, 'microgate_metrics_rejected_total', { component: 'router' }) ?? 0) > 3000);
});

test('EVE collector: alerts counted by (component, sid), signature kept; past MAX_ALERT_SIGNATURES distinct ones they count as sid "other"', async () => {
  let round = 0;
  const query = (): Promise<{ result?: unknown }> => {
    round++;
    const lines = round === 1
      ? [
        JSON.stringify({ event_type: 'alert', alert: { signature_id: 1, signature: 'one' } }),
        JSON.stringify({ event_type: 'alert', alert: { signature_id: 1, signature: 'one' } }),
        JSON.stringify({ event_type: 'anomaly', anomaly: { event: 'x' } }),
        JSON.stringify({ event_type: 'alert', alert: { signature_id: 'evil', signature: 5 } }),
      ]
      : Array.from({ length: MAX_ALERT_SIGNATURES + 5 }, (_, i) => JSON.stringify({ event_type: 'alert', alert: { signature_id: 100 + i, signature: 's'.repeat(500) } }));
    return Promise.resolve({ result: { seq: round * 10000, lines, missed: 0 } });
  };
  const c = new EveCollector(query, [{ component: 'monitor', file: undefined }], { intervalMs: 3_600_000 });
  await c.collect();
  let counts = c.alertCounts();
  assert.deepEqual(counts.find((a) => a.sid === '1'), { component: 'monitor', sid: '1', signature: 'one', count: 2 });
  assert.deepEqual(counts.find((a) => a.sid === 'unknown'), { component: 'monitor', sid: 'unknown', signature: '', count: 1 });
  assert.equal(counts.length, 2, 'anomalies are not alerts');
  await c.collect();
  counts = c.alertCounts();
  assert.equal(counts.length, MAX_ALERT_SIGNATURES + 1);
  assert.equal(counts.find((a) => a.sid === 'other')?.count, 7, '2 + 5 alerts past the cap');
  assert.ok(counts.every((a) => a.signature.length <= 200));
  await c.stop();
});

test('metrics: an HA pair\'s router role and conn-sync\'s pair link', () => {
  const rep = (name: string, status: Record<string, unknown>): ComponentReport => ({ name, counters: {}, sessions: {}, loop: LOOP, status });
  const out = readMetrics({
    ...input([
      rep('router', { ha: { role: 'master', forMs: 5 } }),
      rep('conn-sync', { entries: 7, pair: { link: 'down', queued: 3, lagMs: 1500, queueDrops: 2, peerStatus: { role: 'backup', entries: 6 } } }),
    ]),
    components: [row('router'), row('conn-sync')],
  }, new Map());
  const get = (name: string, component: string): number | undefined => out.get(name)?.find((x) => x.labels.component === component)?.value;
  const keys = [...out.keys()].filter((k) => k.startsWith('microgate_ha_'));
  assert.deepEqual(keys.sort(), ['microgate_ha_master', 'microgate_ha_sync_lag_seconds', 'microgate_ha_sync_link_up', 'microgate_ha_sync_peer_entries', 'microgate_ha_sync_queue', 'microgate_ha_sync_queue_drops_total']);
  assert.equal(get('microgate_ha_master', 'router'), 1);
  assert.equal(get('microgate_ha_sync_link_up', 'conn-sync'), 0);
  assert.equal(get('microgate_ha_sync_lag_seconds', 'conn-sync'), 1.5);
  assert.equal(get('microgate_ha_sync_peer_entries', 'conn-sync'), 6);
});

test('docs/METRICS.md lists every metric with its type and labels', () => {
  const doc = readFileSync(new URL('../../docs/METRICS.md', import.meta.url), 'utf8');
  for (const d of METRIC_DEFS) assert.ok(doc.includes(`| \`${d.name}\` | ${d.type} | ${d.labels.join(', ')} |`), d.name);
});

test('service event log: counted from the start on, by (event, result); partial lines wait; rotation followed; hostile files and lines refused', { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-evlog-'));
  try {
    const file = join(dir, 'audit.jsonl');
    const rec = (event: unknown, result: unknown): string => `${JSON.stringify({ time: 't', event, result, from: '203.0.113.9' })}\n`;
    writeFileSync(file, rec('login', 'ok').repeat(5));
    chownSync(file, 65534, 65534);
    const c = new EventLogCounts(file, 65534);
    c.poll();
    assert.deepEqual(c.counts(), [], 'what was there before is not counted');
    appendFileSync(file, rec('download', 'ok') + rec('download', 'ok') + rec('login', 'failed') + 'not json\n' + rec('a b', 'ok') + rec('x', 7) + '[1]\n' + '{"event":"list","res');
    c.poll();
    assert.deepEqual(c.counts(), [{ event: 'download', result: 'ok', count: 2 }, { event: 'login', result: 'failed', count: 1 }]);
    assert.equal(c.rejected, 4);
    appendFileSync(file, 'ult":"ok"}\n');
    c.poll();
    assert.equal(c.counts().find((x) => x.event === 'list')?.count, 1, 'a line split across two looks counts once');
    // Rotation: the file renamed away, a new one in its place.
    renameSync(file, `${file}.1`);
    writeFileSync(file, rec('logout', 'ok'));
    chownSync(file, 65534, 65534);
    c.poll();
    assert.equal(c.counts().find((x) => x.event === 'logout')?.count, 1);
    // More distinct pairs than MAX_PAIRS: the rest under "other".
    appendFileSync(file, Array.from({ length: MAX_PAIRS + 10 }, (_, i) => rec(`e${i}`, 'ok')).join(''));
    c.poll();
    assert.equal(c.counts().length, MAX_PAIRS + 1);
    assert.ok((c.counts().find((x) => x.event === 'other')?.count ?? 0) >= 10);
    // The service replaces its log with a symlink to a root-only file, or a hard link to one: init does not read it.
    const secret = join(dir, 'secret');
    writeFileSync(secret, rec('stolen', 'yes'), { mode: 0o600 });
    rmSync(file);
    symlinkSync(secret, file);
    const refused = c.refused;
    c.poll();
    assert.equal(c.refused, refused + 1);
    rmSync(file);
    linkSync(secret, file);
    c.poll();
    assert.equal(c.refused, refused + 2);
    assert.ok(!c.counts().some((x) => x.event === 'stolen'));
    assert.match(c.lastProblem, /not a regular file owned by uid 65534/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
