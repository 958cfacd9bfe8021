// The monitor on a real lab: the router mirrors every domain to it; real
// attack tools run from the wan host (nmap, hping3, scapy) and the lan host
// (arping, scapy: ARP poisoning); each raises its alert, while ordinary traffic (ping, iperf3,
// curl) raises none. One lab for the whole file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labControl, labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { canRunLabs, iperf3Pair, killChild, nsExec, ping, spawnInNetns, waitForListen } from './harness.ts';

const NAME = `m${Math.random().toString(36).slice(2, 8)}`;
const ROUTER_WAN = '198.19.0.1';
let lab: LabInfo;
let control: ControlClient;
let stateDir = '';
const skip = !canRunLabs();

interface Eve { event_type: string; alert?: { signature_id: number }; src_ip?: string }

async function eve(): Promise<Eve[]> {
  return (await control.get<{ events: Eve[] }>('/alerts?since=0&fresh=1', 5000)).events;
}

async function sids(): Promise<number[]> {
  return (await eve()).filter((e) => e.event_type === 'alert').map((e) => e.alert?.signature_id ?? 0);
}

/** Wait (bounded) until every sid in `want` has alerted (since the first `skip` alerts). */
async function waitFor(want: number[], ms = 5000, skip = 0): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = (await sids()).slice(skip);
    if (want.every((s) => got.includes(s)) || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  if (skip) return;
  lab = await labUp({ name: NAME, microgate: { monitor: { rules: [
    'alert udp any any -> any 9999 (msg:"once per packet"; content:"MG-ONCE"; sid:9100001; rev:1;)',
    'alert dns any any -> any any (msg:"query for mg-evil.test"; dns.query; dotprefix; content:".mg-evil.test"; endswith; nocase; sid:9100002; rev:1;)',
    'alert tls any any -> any any (msg:"TLS to mg-evil.test"; tls.sni; content:"mg-evil.test"; endswith; sid:9100003; rev:1;)',
  ].join('\n') } } });
  const st = await readLabState(NAME);
  assert.ok(st !== null);
  control = labControl(st);
  stateDir = st.stateDir;
});

after(async () => {
  if (!skip) await labDown(NAME);
});

test('ordinary traffic (ping, iperf3, curl) raises no alert', { skip }, async () => {
  assert.ok((await ping(lab.hosts.lan.netns, lab.hosts.wan.ip, { count: 3 })).ok);
  const r = await iperf3Pair({ serverNetns: lab.hosts.wan.netns, serverIp: lab.hosts.wan.ip, clientNetns: lab.hosts.lan.netns, seconds: 1 });
  assert.ok(r.bitsPerSecond > 0);
  const web = spawnInNetns(lab.hosts.wan.netns, 'python3', ['-m', 'http.server', '8080', '--bind', lab.hosts.wan.ip]);
  try {
    await waitForListen(lab.hosts.wan.netns, 8080);
    const c = await nsExec(lab.hosts.lan.netns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${lab.hosts.wan.ip}:8080/`], { timeoutMs: 10000 });
    assert.equal(c.stdout, '200');
  } finally {
    await killChild(web);
  }
  await new Promise((res) => setTimeout(res, 1200));
  assert.deepEqual(await sids(), []);
});

test('nmap -sS / -sN / -sX / -sF from the wan raise scan alerts', { skip }, async () => {
  for (const mode of ['-sS', '-sN', '-sX', '-sF']) {
    const r = await nsExec(lab.hosts.wan.netns, 'nmap', [mode, '-n', '-Pn', '-T5', '--max-retries', '0', '-p', '1-60', ROUTER_WAN], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
  }
  const got = await waitFor([8000040, 8000002, 8000003, 8000005]);
  for (const sid of [8000040, 8000002, 8000003, 8000005]) assert.ok(got.includes(sid), `sid ${sid} in ${JSON.stringify([...new Set(got)])}`);
});

test('hping3 SYN flood with random sources raises the SYN flood alert', { skip }, async () => {
  await nsExec(lab.hosts.wan.netns, 'timeout', ['2', 'hping3', '-S', '-p', '80', '--flood', '--rand-source', ROUTER_WAN], { timeoutMs: 10000 });
  const got = await waitFor([8000041]);
  assert.ok(got.includes(8000041), JSON.stringify([...new Set(got)]));
});

test('a SYN flood spread over many destinations from random sources (hping3 --rand-dest --rand-source) raises the spread-flood alert', { skip }, async () => {
  // The wan host has no route beyond its link: give it one through the gateway for the flood's destinations.
  const before = (await sids()).length;
  await nsExec(lab.hosts.wan.netns, 'ip', ['route', 'replace', '198.18.0.0/16', 'via', ROUTER_WAN], { timeoutMs: 5000 });
  try {
    await nsExec(lab.hosts.wan.netns, 'timeout', ['1', 'hping3', '-S', '-p', '++1', '--flood', '--rand-source', '--rand-dest',
      '-I', `mg${NAME}w`, '198.18.x.x'], { timeoutMs: 10000 });
  } finally {
    await nsExec(lab.hosts.wan.netns, 'ip', ['route', 'del', '198.18.0.0/16'], { timeoutMs: 5000 });
  }
  const got = await waitFor([8000043], 5000, before);
  assert.ok(got.includes(8000043), JSON.stringify([...new Set(got)]));
});

test('land attack, overlapping fragments and ping of death (scapy) raise their alerts', { skip }, async () => {
  const script = `
from scapy.all import IP, TCP, Raw, send, conf
conf.verb = 0
D = '${ROUTER_WAN}'
send(IP(src=D, dst=D)/TCP(sport=139, dport=139, flags='S'))
send(IP(dst=D, id=4242, proto=17, flags=1, frag=0)/Raw(b'A'*24))
send(IP(dst=D, id=4242, proto=17, frag=1)/Raw(b'B'*16))
send(IP(dst=D, id=4343, proto=1, frag=8189)/Raw(b'X'*64))
`;
  const r = await nsExec(lab.hosts.wan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr);
  const got = await waitFor([8000001, 8000010, 8000011]);
  for (const sid of [8000001, 8000010, 8000011]) assert.ok(got.includes(sid), `sid ${sid} in ${JSON.stringify([...new Set(got)])}`);
});

test('arping claiming the gateway\'s address from the lan raises the ARP spoofing alert', { skip }, async () => {
  const r = await nsExec(lab.hosts.lan.netns, 'arping', ['-q', '-c', '2', '-U', '-S', '198.18.0.1', '-i', `mg${NAME}l`, '198.18.0.1'], { timeoutMs: 10000 });
  assert.ok(r.code === 0 || r.code === 1, r.stderr); // no answers expected to an unsolicited claim
  const got = await waitFor([8000042]);
  assert.ok(got.includes(8000042), JSON.stringify([...new Set(got)]));
});

test('ARP poisoning from the lan: one MAC claims the gateway\'s address and a host\'s (scapy), no earlier binding needed', { skip }, async () => {
  const script = `
from scapy.all import Ether, ARP, sendp, conf
conf.verb = 0
M = '02:ee:00:00:00:66'
for ip, to in (('198.18.0.1', '198.18.0.2'), ('198.18.0.77', '198.18.0.1')):
    sendp(Ether(src=M, dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, hwsrc=M, psrc=ip, pdst=to), iface='mg${NAME}l')
`;
  const before = (await sids()).length;
  const r = await nsExec(lab.hosts.lan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr);
  const got = await waitFor([8000042, 8000046], 5000, before);
  for (const sid of [8000042, 8000046]) assert.ok(got.includes(sid), `sid ${sid} in ${JSON.stringify([...new Set(got)])}`);
});

test('one alert per packet per signature: datagrams NATed lan -> wan, mirrored on both domains, alert once each', { skip }, async () => {
  const before = (await sids()).filter((s) => s === 9100001).length;
  const script = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(b'MG-ONCE %d' % i, ('${lab.hosts.wan.ip}', 9999))
`;
  const r = await nsExec(lab.hosts.lan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 10000 });
  assert.equal(r.code, 0, r.stderr);
  await waitFor([9100001], 5000, 0);
  await new Promise((res) => setTimeout(res, 1000));
  const n = (await sids()).filter((s) => s === 9100001).length - before;
  assert.equal(n, 3, 'three datagrams, each copied twice by the mirror (lan as received, wan after NAT): three alerts');
  const st = await control.get<{ components: { name: string; status?: { secondCopies?: number } }[] }>('/components');
  const mon = st.components.find((x) => x.name === 'monitor');
  assert.ok((mon?.status?.secondCopies ?? 0) >= 3, `the wan copies were tracked as second copies: ${JSON.stringify(mon?.status?.secondCopies)}`);
});

test('application layer: a DNS query (UDP, no server) and a TLS ClientHello the server never answers alert by their names', { skip }, async () => {
  const before = await sids();
  // A listener that accepts and says nothing: the client's ClientHello goes unanswered.
  const silent = spawnInNetns(lab.hosts.wan.netns, '/usr/bin/python3', ['-c', `
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${lab.hosts.wan.ip}', 8443)); s.listen(4)
c, _ = s.accept(); time.sleep(5)
`]);
  try {
    await waitForListen(lab.hosts.wan.netns, 8443);
    const script = `
import socket, ssl, struct
q = struct.pack('>HHHHHH', 0x4d47, 0x0100, 1, 0, 0, 0)
for l in b'C2.Mg-Evil.test'.split(b'.'):
    q += bytes([len(l)]) + l
q += b'\\x00' + struct.pack('>HH', 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(q, ('${lab.hosts.wan.ip}', 53))
ctx = ssl.create_default_context()
t = socket.create_connection(('${lab.hosts.wan.ip}', 8443), timeout=1)
try:
    ctx.wrap_socket(t, server_hostname='www.mg-evil.test')
except Exception:
    pass
t.close()
`;
    const r = await nsExec(lab.hosts.lan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 15000 });
    assert.equal(r.code, 0, r.stderr);
    await waitFor([9100002, 9100003], 8000, before.length);
    await new Promise((res) => setTimeout(res, 1000));
    const got = (await sids()).slice(before.length);
    assert.equal(got.filter((x) => x === 9100002).length, 1, `the DNS query alerts once (mirrored twice): ${JSON.stringify(got)}`);
    assert.equal(got.filter((x) => x === 9100003).length, 1, `the ClientHello alerts once: ${JSON.stringify(got)}`);
  } finally {
    await killChild(silent);
  }
});

test('init appends the EVE records to the lab\'s eve.json; the router counts mirrored frames', { skip }, async () => {
  const file = join(stateDir, 'eve.json');
  assert.ok(existsSync(file));
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Eve);
  assert.ok(lines.some((e) => e.event_type === 'alert' && e.alert?.signature_id === 8000001));
  const c = await control.get<Record<string, Record<string, number>>>('/counters');
  assert.ok((c.router['mirror.copied'] ?? 0) > 0);
  assert.ok((c.monitor.packets ?? 0) > 0);
});
