// GET /metrics on a real lab (issue 16): a gateway with the monitor and a
// remote site; ping and iperf3 through it, an attack the monitor alerts on, a
// component killed by its PID. Every scrape is read by the reference
// Prometheus parser (python3-prometheus-client, test/fixtures/prom-parse.py):
// the per-domain counters move with the traffic, connections and NAT ports
// show, the tunnel peer's handshake age appears, the alert is counted by its
// sid, and the killed component's restarts counter rises. One lab for the file.
import { test, before, after } from 'node:test';
import { execFile } from 'node:child_process';
import assert from 'node:assert/strict';
import { labControl, labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import { RHOST } from '../../src/lab/remote-site.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { canRunLabs, iperf3Pair, nsExec, ping } from './harness.ts';
import { parsePrometheus, samples, value, type PromFamily } from '../fixtures/prom-parse.ts';

const NAME = `x${Math.random().toString(36).slice(2, 8)}`;
const skip = !canRunLabs();
let lab: LabInfo;
let control: ControlClient;
let up = false;

async function scrape(): Promise<PromFamily[]> {
  const r = await control.request('GET', '/metrics', undefined, { timeoutMs: 10_000 });
  assert.equal(r.status, 200, r.body.toString('utf8'));
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.body.toString('utf8'));
}

const v = (f: PromFamily[], name: string, labels: Record<string, string>): number => value(f, name, labels) ?? 0;

before(async () => {
  if (skip) return;
  up = true;
  lab = await labUp({ name: NAME, gateway: 'microgate', microgate: { monitor: {} }, remoteSite: {} });
  const st = await readLabState(NAME);
  assert.ok(st !== null);
  control = labControl(st);
});

after(async () => {
  if (up) await labDown(NAME);
});

test('counters move with ping and iperf3; connections, NAT ports and the tunnel peer show', { skip }, async () => {
  const f0 = await scrape();
  for (const c of ['drv-lan', 'drv-wan', 'drv-dmz', 'router', 'monitor', 'tunnel', 'keystore']) {
    assert.equal(value(f0, 'microgate_component_up', { component: c }), 1, c);
    assert.equal(value(f0, 'microgate_component_report_ok', { component: c }), 1, c);
  }
  assert.equal(v(f0, 'microgate_tunnel_peers', { component: 'tunnel' }), 1);
  const p = await ping(lab.hosts.lan.netns, lab.hosts.wan.ip, { count: 3 });
  assert.ok(p.ok, p.stdout + p.stderr);
  const ip = await iperf3Pair({ serverNetns: lab.hosts.wan.netns, serverIp: lab.hosts.wan.ip, clientNetns: lab.hosts.lan.netns, seconds: 1 });
  // What the server received crossed the gateway (what the client wrote may partly still be buffered when the test ends).
  const sent = Number(ip.client.end.sum_received.bytes);
  assert.ok(sent > 1_000_000, `iperf3 server received ${sent} bytes`);
  const rp = await ping(lab.hosts.lan.netns, RHOST, { count: 2, timeoutS: 3 });
  assert.ok(rp.ok, `ping through the tunnel: ${rp.stdout}${rp.stderr}`);
  const f1 = await scrape();
  const d = (name: string, labels: Record<string, string>): number => v(f1, name, labels) - v(f0, name, labels);
  // The lan -> wan TCP stream: every payload byte came in from the lan and left into the wan (with headers).
  assert.ok(d('microgate_domain_bytes_total', { component: 'router', domain: 'lan', direction: 'rx' }) >= sent, `lan rx bytes ${d('microgate_domain_bytes_total', { component: 'router', domain: 'lan', direction: 'rx' })} < ${sent} received by iperf3`);
  assert.ok(d('microgate_domain_bytes_total', { component: 'router', domain: 'wan', direction: 'tx' }) >= sent, `wan tx bytes ${d('microgate_domain_bytes_total', { component: 'router', domain: 'wan', direction: 'tx' })} < ${sent} received by iperf3`);
  assert.ok(d('microgate_domain_packets_total', { component: 'router', domain: 'lan', direction: 'rx' }) >= 3 + 10, 'lan rx packets');
  assert.ok(d('microgate_domain_packets_total', { component: 'router', domain: 'wan', direction: 'tx' }) >= 3 + 10, 'wan tx packets');
  assert.ok(d('microgate_nic_bytes_total', { component: 'drv-lan', direction: 'rx' }) >= sent, `drv-lan rx bytes ${d('microgate_nic_bytes_total', { component: 'drv-lan', direction: 'rx' })} < ${sent}`);
  assert.ok(d('microgate_domain_packets_total', { component: 'router', domain: 'tun', direction: 'tx' }) >= 2, 'into the tunnel');
  assert.ok(d('microgate_monitor_packets_total', { component: 'monitor' }) > 0, 'the monitor saw the mirror');
  // Connections tracked within their timeouts (icmp 10 s, closed tcp 10 s), masqueraded into the wan.
  const conns = samples(f1, 'microgate_connections').filter((s) => s.labels.family === 'ipv4').reduce((a, s) => a + s.value, 0);
  assert.ok(conns >= 1, `connections: ${conns}`);
  assert.ok(v(f1, 'microgate_nat_ports_in_use', { component: 'router', domain: 'wan', proto: 'icmp' }) >= 1, 'NAT identifier for the ping');
  assert.ok(v(f1, 'microgate_nat_ports', { component: 'router' }) > 0);
  // The tunnel's handshake happened just now.
  const peer = samples(f1, 'microgate_tunnel_peer_handshake_age_seconds');
  assert.equal(peer.length, 1);
  assert.ok(peer[0].value >= 0 && peer[0].value < 60, `handshake age ${peer[0].value}`);
  assert.ok(samples(f1, 'microgate_tunnel_peer_bytes_total').some((s) => s.value > 0));
  // Ring occupancy is reported for every session end, and within its ring.
  const busy = samples(f1, 'microgate_session_slots_busy');
  assert.ok(busy.length >= 10, `${busy.length} session ends`);
  for (const s of busy) assert.ok(s.value <= 256, JSON.stringify(s));
  assert.equal(v(f1, 'microgate_metrics_rejected_total', { component: 'router' }), 0);
});

test('an attack the monitor alerts on is counted by its sid', { skip }, async () => {
  // A land attack (source = destination = the gateway), sid 8000001 of the monitor's built-in rules.
  const script = `
from scapy.all import IP, TCP, send, conf
conf.verb = 0
send(IP(src='198.19.0.1', dst='198.19.0.1')/TCP(sport=139, dport=139, flags='S'))
`;
  const r = await nsExec(lab.hosts.wan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  let n = 0;
  const deadline = Date.now() + 10_000;
  while (n === 0 && Date.now() < deadline) {
    await control.get('/alerts?since=0&fresh=1', 5000);
    n = v(await scrape(), 'microgate_alerts_total', { component: 'monitor', sid: '8000001' });
    if (n === 0) await new Promise((res) => setTimeout(res, 300));
  }
  assert.ok(n >= 1, 'microgate_alerts_total{sid="8000001"}');
});

test('a component killed by its PID: its restarts counter rises and it is up again', { skip }, async () => {
  const f0 = await scrape();
  const r0 = v(f0, 'microgate_component_restarts_total', { component: 'drv-dmz' });
  const st = await control.get<{ components: { name: string; pid: number }[] }>('/status');
  const pid = st.components.find((c) => c.name === 'drv-dmz')?.pid ?? 0;
  assert.ok(pid > 0);
  process.kill(pid, 'SIGKILL');
  let f = f0;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    f = await scrape();
    if (v(f, 'microgate_component_restarts_total', { component: 'drv-dmz' }) > r0 && v(f, 'microgate_component_up', { component: 'drv-dmz' }) === 1) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(v(f, 'microgate_component_restarts_total', { component: 'drv-dmz' }), r0 + 1);
  assert.equal(v(f, 'microgate_component_up', { component: 'drv-dmz' }), 1);
  assert.equal(v(f, 'microgate_component_state', { component: 'drv-dmz', state: 'running' }), 1);
  const others = ['drv-lan', 'drv-wan', 'router', 'monitor', 'tunnel', 'keystore'];
  for (const c of others) assert.equal(v(f, 'microgate_component_restarts_total', { component: c }), 0, `${c} untouched`);
});

test('microgate metrics --lab prints the same exposition', { skip }, async () => {
  const out = await new Promise<string>((resolveP, reject) => {
    execFile(process.execPath, ['src/cli/main.ts', 'metrics', '--lab', NAME], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (e, stdout, stderr) => (e === null ? resolveP(stdout) : reject(new Error(`${e.message}: ${stderr}`))));
  });
  const f = parsePrometheus(out);
  assert.equal(value(f, 'microgate_component_up', { component: 'router' }), 1);
  assert.ok(v(f, 'microgate_domain_bytes_total', { component: 'router', domain: 'lan', direction: 'rx' }) > 0);
});
