// The foundation's evidence, on a real lab: real hosts in network namespaces,
// microgate between them, real peers (ping, iperf3, raw frames from python).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { labControl, labUp, labDown, readLabState } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import type { LabInfo } from '../../src/lab/lab.ts';
import { ping, iperf3 } from '../../src/lab/traffic.ts';
import { nsExec, run, sysctlGet } from '../../src/lab/netns.ts';

const NAME = `g${Math.random().toString(36).slice(2, 8)}`;
let info: LabInfo;
let control: ControlClient;

interface Status {
  ready: boolean;
  components: { name: string; pid: number; uid: number; state: string; restarts: number }[];
}

async function status(): Promise<Status> {
  return control.get<Status>('/status', 3000);
}

async function counters(): Promise<Record<string, Record<string, number>>> {
  return control.get<Record<string, Record<string, number>>>('/counters', 3000);
}

async function pidOf(name: string): Promise<number> {
  const c = (await status()).components.find((x) => x.name === name);
  assert.ok(c, `component ${name} listed`);
  return c.pid;
}

before(async () => {
  info = await labUp({ name: NAME, gateway: 'microgate' });
  const st = await readLabState(NAME);
  assert.ok(st);
  control = labControl(st);
});

after(async () => {
  await labDown(NAME);
});

test('kernel forwarding is off in every lab namespace', async () => {
  for (const h of [info.hosts.lan, info.hosts.wan]) {
    assert.equal(await sysctlGet(h.netns, 'net.ipv4.ip_forward'), '0', `${h.netns} forwards`);
  }
});

test('ping reaches both gateway addresses and the wan host; ARP resolved the gateway', async () => {
  const lan = info.hosts.lan.netns;
  assert.equal((await ping(lan, info.gatewayAddresses.lan)).received, 3);
  assert.equal((await ping(lan, info.gatewayAddresses.wan)).received, 3);
  assert.equal((await ping(lan, info.hosts.wan.ip)).received, 3);
  assert.equal((await ping(info.hosts.wan.netns, info.gatewayAddresses.wan)).received, 3);
  const neigh = (await nsExec(lan, 'ip', ['neigh', 'show', info.gatewayAddresses.lan])).stdout;
  assert.match(neigh, /lladdr ([0-9a-f]{2}:){5}[0-9a-f]{2}/, `ARP entry for the gateway: ${neigh}`);
});

test('TTL expiry gives ICMP time exceeded from the gateway', async () => {
  const r = await ping(info.hosts.lan.netns, info.hosts.wan.ip, { count: 1, ttl: 1 });
  assert.match(r.output, new RegExp(`From ${info.gatewayAddresses.lan.replace(/\./g, '\\.')} .*[Tt]ime to live exceeded`));
});

test('the wan host sees the gateway wan address, never the lan address; iperf3 both ways', async () => {
  const base = { serverNetns: info.hosts.wan.netns, serverIp: info.hosts.wan.ip, clientNetns: info.hosts.lan.netns, seconds: 2 };
  const up = await iperf3(base);
  const j = up.json as { start: { accepted_connection?: { host: string } } };
  assert.ok(up.bitsPerSecond > 0);
  const down = await iperf3({ ...base, reverse: true });
  assert.ok(down.bitsPerSecond > 0);
  // The server side's view of the peer: iperf3 -c reports the local end; check on the server with ss during a transfer instead.
  const srv = run('ip', ['netns', 'exec', info.hosts.wan.netns, 'iperf3', '-s', '-1', '-B', info.hosts.wan.ip, '-p', '5301', '--json'], { timeoutMs: 20000 });
  await new Promise((r) => setTimeout(r, 300));
  await nsExec(info.hosts.lan.netns, 'iperf3', ['-c', info.hosts.wan.ip, '-p', '5301', '-t', '1'], { timeoutMs: 20000 });
  const sj = JSON.parse((await srv).stdout) as { start: { accepted_connection: { host: string } } };
  assert.equal(sj.start.accepted_connection.host, info.gatewayAddresses.wan);
  void j;
});

test('a new TCP connection from wan to lan fails', async () => {
  // An attacker on the wan segment may route the lan prefix at the gateway; the policy must stop it, not the lack of a route.
  await nsExec(info.hosts.wan.netns, 'ip', ['route', 'replace', '198.18.0.0/24', 'via', info.gatewayAddresses.wan]);
  const srv = run('ip', ['netns', 'exec', info.hosts.lan.netns, 'iperf3', '-s', '-1', '-B', info.hosts.lan.ip, '-p', '5302'], { timeoutMs: 8000 }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  await assert.rejects(
    nsExec(info.hosts.wan.netns, 'iperf3', ['-c', info.hosts.lan.ip, '-p', '5302', '-t', '1', '--connect-timeout', '1500'], { timeoutMs: 6000 }),
  );
  const c = await counters();
  const routerDrops = Object.entries(c.router ?? {}).filter(([k]) => k.startsWith('drop.'));
  assert.ok(routerDrops.length > 0, `the router counted the drop: ${JSON.stringify(c.router)}`);
  await srv;
});

test('components run deprivileged: own uid, empty network namespace, no_new_privs, seccomp', async () => {
  const st = await status();
  assert.equal(st.components.length, 4, 'drivers for wan, lan and dmz, and the router');
  const initNet = readlinkSync('/proc/self/ns/net');
  for (const c of st.components) {
    assert.equal(c.state, 'running');
    const s = readFileSync(`/proc/${c.pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(s)?.[1]);
    assert.notEqual(uid, 0, `${c.name} runs as root`);
    assert.equal(uid, c.uid);
    assert.match(s, /^NoNewPrivs:\s+1$/m, `${c.name} NoNewPrivs`);
    assert.match(s, /^Seccomp:\s+2$/m, `${c.name} seccomp filter`);
    assert.match(s, /^CapEff:\s+0+$/m, `${c.name} has no capabilities`);
    const net = readlinkSync(`/proc/${c.pid}/ns/net`);
    assert.notEqual(net, initNet, `${c.name} shares init's network namespace`);
    const links = (await run('nsenter', ['-t', String(c.pid), '-n', 'ip', '-o', 'link'])).stdout.trim().split('\n');
    assert.equal(links.length, 1, `${c.name} sees only lo: ${links.join(' | ')}`);
    assert.match(links[0], /: lo:/);
  }
  const uids = new Set(st.components.map((c) => c.uid));
  assert.equal(uids.size, st.components.length, 'each component has its own uid');
});

test('traffic really crosses microgate: SIGSTOP on the router stops ping, SIGCONT resumes it', async () => {
  const pid = await pidOf('router');
  process.kill(pid, 'SIGSTOP');
  try {
    const r = await ping(info.hosts.lan.netns, info.hosts.wan.ip, { count: 2, timeoutS: 1 });
    assert.equal(r.received, 0, 'ping got through with the router stopped');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.equal((await ping(info.hosts.lan.netns, info.hosts.wan.ip)).received, 3);
});

const MALFORMED = String.raw`
import socket, struct, sys
iface, gwmac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', ''))
src = bytes.fromhex('020000000099')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
eth = gwmac + src + b'\x08\x00'
def ip(ihl=5, tot=None, csum=None, proto=6, payload=b'', src='198.18.0.2', dst='198.19.0.2'):
    hdr_len = ihl * 4
    tot = tot if tot is not None else 20 + len(payload)
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, tot, 1, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    if csum is None:
        s_ = sum(struct.unpack('!10H', h))
        while s_ >> 16: s_ = (s_ & 0xffff) + (s_ >> 16)
        csum = ~s_ & 0xffff
    h = h[:10] + struct.pack('!H', csum) + h[12:]
    return h + payload
frames = [
    eth + b'\x45\x00',                               # truncated IP header
    eth + ip(ihl=3),                                 # bad IHL
    eth + ip(tot=1400, payload=b'x' * 20),           # total length beyond the frame
    eth + ip(csum=0x1234, payload=b'x' * 20),        # bad header checksum
    eth + ip(proto=6, payload=b'\x00' * 8),          # truncated TCP header
    eth + ip(proto=17, payload=b'\x00' * 4),         # truncated UDP header
    eth,                                             # Ethernet header, empty IPv4 payload
    eth + bytes(range(256)) * 5,                     # garbage
    gwmac + src + b'\x08\x06' + b'\x00' * 10,        # truncated ARP
]
for f in frames * 10:
    s.send(f)
print(len(frames) * 10)
`;

test('malformed frames are dropped and counted with a reason; nothing crashes', async () => {
  const lan = info.hosts.lan.netns;
  const neigh = (await nsExec(lan, 'ip', ['neigh', 'show', info.gatewayAddresses.lan])).stdout;
  const mac = /lladdr ((?:[0-9a-f]{2}:){5}[0-9a-f]{2})/.exec(neigh)?.[1];
  assert.ok(mac, 'gateway MAC known');
  const before = await counters();
  const sumDrops = (c: Record<string, number> | undefined): number =>
    Object.entries(c ?? {}).filter(([k]) => k.startsWith('drop.')).reduce((a, [, v]) => a + v, 0);
  const out = await nsExec(lan, 'python3', ['-c', MALFORMED, `mg${NAME}l`, mac]);
  const sent = Number(out.stdout.trim());
  await new Promise((r) => setTimeout(r, 500));
  const afterC = await counters();
  const dropped = sumDrops(afterC.router) - sumDrops(before.router) + sumDrops(afterC['drv-lan']) - sumDrops(before['drv-lan']);
  assert.ok(dropped >= sent - 10, `dropped ${dropped} of ${sent} malformed frames: ${JSON.stringify(afterC)}`);
  const st = await status();
  for (const c of st.components) assert.equal(c.restarts, 0, `${c.name} restarted`);
  assert.equal((await ping(lan, info.hosts.wan.ip)).received, 3, 'still forwarding');
});

test('SIGKILL on any component: init restarts it and ping resumes within 2 s', async () => {
  for (const name of ['router', 'drv-lan', 'drv-wan']) {
    const pid = await pidOf(name);
    process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    let ok = false;
    while (Date.now() - t0 < 2000) {
      const r = await ping(info.hosts.lan.netns, info.hosts.wan.ip, { count: 1, timeoutS: 0.3 });
      if (r.received === 1) {
        ok = true;
        break;
      }
    }
    assert.ok(ok, `ping did not resume within 2 s after killing ${name}`);
    const np = await pidOf(name);
    assert.notEqual(np, pid, `${name} has a new pid`);
  }
});
