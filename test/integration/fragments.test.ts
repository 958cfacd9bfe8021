// IPv4 fragments and path MTU on a real lab: an 8000-byte UDP datagram
// (fragmented by the sending host's kernel) crosses microgate both ways, with
// NAT (lan <-> wan) and without (lan <-> dmz, whose link MTU is 1280, so the
// router cuts the datagrams again); a DF packet too big for the dmz link gets
// "fragmentation needed" with the MTU, and TCP across that link works (path
// MTU discovery); overlapping fragments and a fragment flood (scapy) leave
// forwarding alive, counted. IPv6: an 8000-byte UDP datagram fragmented by the
// sender crosses lan <-> wan (routed; the router rebuilds it to decide and
// forwards the original fragments), and the suricata-verify capture
// ipv6-evasion_ipv6-malformed-fragments-1 (re-addressed to the lab's hosts)
// replayed from the wan leaves forwarding alive with every frame accounted for.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp, type LabInfo } from '../../src/lab/lab.ts';
import { canRunLabs, iperf3Pair, killChild, nsExec, ping, spawnInNetns, uniqueLabName } from './harness.ts';
import { components, replayAccount, restarts, settled } from './replay-accounting.ts';
import { routerCounters } from './router-counters.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const REPLAY = join(REPO, 'test', 'integration', 'fixtures', 'replay.py');
const EVASION = join(REPO, 'test', 'fixtures', 'ids', 'suricata-verify', 'ipv6-evasion_ipv6-malformed-fragments-1', 'frag-1.pcap');

const skip = canRunLabs() ? false : 'needs root';
const NAME = uniqueLabName();
const ns = (h: 'lan' | 'dmz' | 'wan'): string => `mg-${NAME}-${h}`;
const LAN = '198.18.0.2';
const DMZ = '198.18.128.2';
const WAN = '198.19.0.2';
const WAN6 = '2001:db8:ff::2';
const children: ChildProcess[] = [];
let lab: LabInfo | undefined;

const ROUTER = {
  domains: {
    lan: {
      address: '198.18.0.1/24', ip: [{ to: 'wan' }, { to: 'dmz' }],
      address6: '2001:db8:0:1::1/64', ra: { 'interval-s': 30, 'lifetime-s': 1800 },
    },
    dmz: { address: '198.18.128.1/24', mtu: 1280, ip: [{ to: 'wan' }] },
    wan: {
      address: '198.19.0.1/24',
      address6: '2001:db8:ff::1/64',
      icmp: [{ to: 'lan' }], // echo requests wan -> lan: the replayed capture's datagram has somewhere to go
      nat: { from: ['lan', 'dmz'] },
      'udp-forward': [{ port: 53, to: 'dmz', host: DMZ, 'host-port': 5353 }],
    },
  },
  fragments: { 'max-datagrams': 32, 'per-source': 8 },
};

/** A UDP echo server for datagrams up to 64 KiB. */
const ECHO = "import socket,sys\ns=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\ns.bind((sys.argv[1],int(sys.argv[2])))\nprint('ready',flush=True)\nwhile True:\n  d,a=s.recvfrom(65535)\n  s.sendto(d,a)\n";
/** Send one datagram of N bytes and wait for its echo: prints the length received and whether it matched. */
const CLIENT = "import socket,sys,os\nn=int(sys.argv[3])\nd=os.urandom(n)\ns=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\nfor i in range(3):\n  s.sendto(d,(sys.argv[1],int(sys.argv[2])))\n  try:\n    r,_=s.recvfrom(65535)\n    print(len(r), r==d)\n    break\n  except socket.timeout:\n    pass\nelse:\n  print(0, False)\n";

async function echoServer(h: 'dmz' | 'wan', ip: string, port: number): Promise<void> {
  const c = spawnInNetns(ns(h), '/usr/bin/python3', ['-c', ECHO, ip, String(port)]);
  children.push(c);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`echo server in ${h} did not start`)), 5000);
    c.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

async function roundTrip(from: 'lan' | 'wan', ip: string, port: number, size: number): Promise<string> {
  const r = await nsExec(ns(from), '/usr/bin/python3', ['-c', CLIENT, ip, String(port), String(size)], { timeoutMs: 15000 });
  return r.stdout.trim();
}

before(async () => {
  if (skip) return;
  lab = await labUp({ name: NAME, gateway: 'microgate', router: ROUTER });
  await echoServer('wan', WAN, 7000);
  await echoServer('wan', WAN6, 7001);
  await echoServer('dmz', DMZ, 7000);
  await echoServer('dmz', DMZ, 5353);
});

after(async () => {
  for (const c of children) await killChild(c);
  if (!skip) await labDown(NAME);
});

test('8000-byte UDP datagrams cross both ways: lan <-> wan with NAT, lan <-> dmz (MTU 1280) without', { skip }, async () => {
  assert.equal(await roundTrip('lan', WAN, 7000, 8000), '8000 True', 'lan -> wan (masqueraded) and the echo back');
  assert.equal(await roundTrip('lan', DMZ, 7000, 8000), '8000 True', 'lan -> dmz, cut again for the 1280-byte link, and back');
  assert.equal(await roundTrip('wan', '198.19.0.1', 53, 8000), '8000 True', 'wan -> the udp forward into the dmz and back');
  const c = await routerCounters(NAME);
  assert.ok((c['frag.reassembled'] ?? 0) >= 6, `datagrams rebuilt (${c['frag.reassembled']})`);
  assert.ok((c['frag.sent'] ?? 0) > 0, 'fragments sent');
});

test('IPv6: 8000-byte UDP datagrams fragmented by the sender cross lan <-> wan; the original fragments are forwarded', { skip }, async () => {
  const before = await routerCounters(NAME);
  assert.equal(await roundTrip('lan', WAN6, 7001, 8000), '8000 True', 'lan -> wan and the echo back, over IPv6');
  const c = await routerCounters(NAME);
  const grew = (k: string): number => (c[k] ?? 0) - (before[k] ?? 0);
  assert.ok(grew('frag6.reassembled') >= 2, `both datagrams rebuilt for the decision (${grew('frag6.reassembled')})`);
  assert.ok(grew('frag6.sent') >= 12, `their fragments forwarded as they came (${grew('frag6.sent')})`);
  assert.equal(grew('drop.ip6-fragment'), 0);
});

test('IPv6 evasion capture (malformed fragments) replayed from the wan: every frame accounted for, forwarding alive', { skip }, async (t) => {
  const lanIp6 = lab!.hosts.lan.ip6;
  assert.ok(lanIp6, 'the lan host has its SLAAC address');
  const beforeC = await settled(NAME);
  const restartsBefore = await restarts(NAME);
  const wanMac = (beforeC.get('router')!.status.domains as { name: string; mac: string }[]).find((d) => d.name === 'wan')!.mac;
  // The capture's hosts 2001:db8:1::2 (sender) and ::1 become the wan host and the lan host.
  const r = await nsExec(ns('wan'), '/usr/bin/python3', [REPLAY, `mg${NAME}w`, wanMac, '198.19.0.1', '--captures-only',
    '--ip6-map', `2001:db8:1::2=${WAN6},2001:db8:1::1=${lanIp6}`, EVASION], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const sent = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { sent: number }).sent;
  const afterC = await settled(NAME);
  assert.deepEqual(await restarts(NAME), restartsBefore, 'no component crashed or restarted');
  const acc = replayAccount(beforeC, afterC);
  t.diagnostic(`replayed ${sent} frames: driver read ${acc.driverRead}, router rx ${acc.routerRx}, outcomes ${acc.outcomes}: ${acc.reasons.join(' ')}`);
  assert.ok(acc.driverRead + acc.driverDropped >= sent, `the driver read every replayed frame (${acc.driverRead} + ${acc.driverDropped} of ${sent})`);
  assert.equal(acc.routerRxDomain, acc.driverRead, 'every frame the driver passed on reached the router');
  assert.ok(acc.outcomes >= acc.routerRx, `every frame has a fate: ${acc.routerRx} received, ${acc.outcomes} outcomes`);
  // The fragment with hop limit 1 and other data is not held; the one that can leave completes the datagram.
  assert.ok(acc.grew('drop.ttl-exceeded') >= 1, 'the hop-limit-1 fragment dropped');
  assert.ok(acc.grew('frag6.reassembled') >= 1, 'the datagram rebuilt');
  assert.ok(acc.grew('frag6.sent') >= 3, `and its fragments forwarded to the lan host (${acc.grew('frag6.sent')})`);
  assert.ok((await ping(ns('lan'), WAN6, { count: 3 })).ok, 'ping -6 lan -> wan still forwards');
  assert.ok((await components(NAME)).has('router'));
});

test('DF and too big for the dmz link: fragmentation needed (mtu 1280); TCP across it works (path MTU discovery)', { skip }, async () => {
  const big = await nsExec(ns('lan'), 'ping', ['-n', '-c', '1', '-W', '2', '-M', 'do', '-s', '1400', DMZ], { timeoutMs: 10000 });
  assert.match(big.stdout + big.stderr, /mtu ?= ?1280/i, `ping reports the MTU: ${big.stdout}${big.stderr}`);
  assert.ok((await ping(ns('lan'), DMZ, { count: 2 })).ok, 'small pings still pass');
  const r = await iperf3Pair({ serverNetns: ns('dmz'), serverIp: DMZ, clientNetns: ns('lan'), seconds: 2 });
  assert.ok(r.bitsPerSecond > 1e6, `TCP lan -> dmz across the smaller link: ${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s`);
  const c = await routerCounters(NAME);
  assert.ok((c['drop.frag-needed'] ?? 0) >= 1);
});

test('overlapping fragments and a fragment flood: dropped and counted, forwarding alive', { skip }, async () => {
  const script = String.raw`
import logging; logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, UDP, Raw, send, conf
conf.verb = 0
d = "198.19.0.1"
# Overlap (teardrop): a first fragment of 1000 bytes, then one starting inside it.
send(IP(dst=d, id=7, flags="MF", frag=0)/UDP(sport=9, dport=53, len=2008)/Raw(b"a"*992))
send(IP(dst=d, id=7, flags=0, frag=64, proto=17)/Raw(b"b"*1008))
# A flood of first fragments that never complete, from one source.
for i in range(300):
    send(IP(dst=d, id=1000+i, flags="MF", frag=0)/UDP(sport=9, dport=53, len=3000)/Raw(b"c"*1000))
print("sent")
`;
  const r = await nsExec(ns('wan'), '/usr/bin/python3', ['-c', script], { timeoutMs: 60000 });
  assert.match(r.stdout, /sent/, r.stderr);
  const c = await routerCounters(NAME);
  assert.ok((c['drop.frag-overlap'] ?? 0) >= 1, `overlap counted (${c['drop.frag-overlap']})`);
  assert.ok((c['drop.frag-source-limit'] ?? 0) >= 250, `flood limited per source (${c['drop.frag-source-limit']})`);
  assert.ok((await ping(ns('lan'), WAN, { count: 3 })).ok, 'lan -> wan still forwards');
  // The flooding wan host holds its share (8 datagrams) until they time out; other sources do not wait.
  assert.equal(await roundTrip('lan', DMZ, 7000, 8000), '8000 True', 'other sources still get datagrams rebuilt');
});
