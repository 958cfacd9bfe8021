// IPv4 fragments and path MTU on a real lab: an 8000-byte UDP datagram
// (fragmented by the sending host's kernel) crosses microgate both ways, with
// NAT (lan <-> wan) and without (lan <-> dmz, whose link MTU is 1280, so the
// router cuts the datagrams again); a DF packet too big for the dmz link gets
// "fragmentation needed" with the MTU, and TCP across that link works (path
// MTU discovery); overlapping fragments and a fragment flood (scapy) leave
// forwarding alive, counted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { labDown, labUp } from '../../src/lab/lab.ts';
import { canRunLabs, iperf3Pair, killChild, nsExec, ping, spawnInNetns, uniqueLabName } from './harness.ts';
import { routerCounters } from './router-counters.ts';

const skip = canRunLabs() ? false : 'needs root';
const NAME = uniqueLabName();
const ns = (h: 'lan' | 'dmz' | 'wan'): string => `mg-${NAME}-${h}`;
const LAN = '198.18.0.2';
const DMZ = '198.18.128.2';
const WAN = '198.19.0.2';
const children: ChildProcess[] = [];

const ROUTER = {
  domains: {
    lan: { address: '198.18.0.1/24', ip: [{ to: 'wan' }, { to: 'dmz' }] },
    dmz: { address: '198.18.128.1/24', mtu: 1280, ip: [{ to: 'wan' }] },
    wan: {
      address: '198.19.0.1/24',
      nat: { from: ['lan', 'dmz'] },
      'udp-forward': [{ port: 53, to: 'dmz', host: DMZ, 'host-port': 5353 }],
    },
  },
  fragments: { 'max-datagrams': 32, 'per-source': 8 },
};

/** A UDP echo server for datagrams up to 64 KiB. */
const ECHO = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind((sys.argv[1],int(sys.argv[2])))\nprint('ready',flush=True)\nwhile True:\n  d,a=s.recvfrom(65535)\n  s.sendto(d,a)\n";
/** Send one datagram of N bytes and wait for its echo: prints the length received and whether it matched. */
const CLIENT = "import socket,sys,os\nn=int(sys.argv[3])\nd=os.urandom(n)\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\nfor i in range(3):\n  s.sendto(d,(sys.argv[1],int(sys.argv[2])))\n  try:\n    r,_=s.recvfrom(65535)\n    print(len(r), r==d)\n    break\n  except socket.timeout:\n    pass\nelse:\n  print(0, False)\n";

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
  await labUp({ name: NAME, gateway: 'microgate', router: ROUTER });
  await echoServer('wan', WAN, 7000);
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
