// IPv6 end to end through microgate (issue 15, the router's part) in a real
// lab: the lan host configures its address from the router's advertisements
// (SLAAC), ping -6 and iperf3 -6 cross the router where the policy allows
// (lan -> wan, lan -> dmz, dmz -> wan; both directions of each flow) and not
// where it does not (wan -> lan), and malformed IPv6 sent with scapy from the
// lan host (truncated, bad payload length, looping and over-long extension
// header chains) is dropped under its reason without a crash or restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { labControl, readLabState } from '../../src/lab/lab.ts';
import { canRunLabs, iperf3Pair, nsExec, ping, withLab } from './harness.ts';

const execFileP = promisify(execFile);
const MICROGATE = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PYTHON = '/usr/bin/python3'; // Debian's python3 with python3-scapy (scripts/setup.sh)
const skip = !canRunLabs() ? 'needs root' : !existsSync(PYTHON) ? 'needs /usr/bin/python3 with scapy' : false;

interface Report { name: string; counters: Record<string, number>; status: Record<string, unknown> }

async function control(name: string) {
  const st = await readLabState(name);
  assert.ok(st);
  return labControl(st, 5000);
}

async function router(name: string): Promise<Report> {
  const body = await (await control(name)).get<{ components: Report[] }>('/components');
  const rt = body.components.find((c) => c.name === 'router');
  assert.ok(rt, 'the router reports');
  return rt;
}

async function restarts(name: string): Promise<number> {
  const s = await (await control(name)).get<{ components: { restarts: number }[] }>('/status');
  return s.components.reduce((a, c) => a + c.restarts, 0);
}

// Malformed IPv6 to the router's lan MAC, each a known drop reason.
const SCAPY = String.raw`
import sys
from scapy.all import Ether, IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, ICMPv6EchoRequest, Raw, sendp
iface, dst_mac, src, dst = sys.argv[1:5]
e = Ether(dst=dst_mac, type=0x86dd)
good = IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=7, seq=1, data=b'x' * 16)
raw = bytes(good)
frames = [
  e / Raw(raw[:30]),                                                         # ip6-truncated (no full header)
  e / Raw(raw[:4] + (len(raw) - 40 + 100).to_bytes(2, 'big') + raw[6:]),     # ip6-truncated (payload length past the frame)
  e / IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop() / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(),   # ip6-ext-order (a loop of hop-by-hop)
  e / IPv6(src=src, dst=dst) / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest(),  # ip6-ext-duplicate
  e / IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop(options=[]) / Raw(b''),    # fine header, then over-long below
]
# over-long: a hop-by-hop of 1024 bytes (Pad1 options), then a destination-options header past the 1024-byte bound
hbh = bytes([60, 127]) + bytes(1022)
frames[4] = e / Raw(bytes(IPv6(src=src, dst=dst, nh=0, plen=len(hbh) + 8 + 8))[:40] + hbh + bytes([58, 0, 1, 4, 0, 0, 0, 0]) + bytes(ICMPv6EchoRequest()))
for f in frames:
  for _ in range(5):
    sendp(f, iface=iface, verbose=False)
print(len(frames) * 5)
`;

test('IPv6 through microgate: SLAAC, ping -6 and iperf3 -6 where the policy allows, malformed IPv6 dropped and counted', { skip, timeout: 240_000 }, async () => {
  await withLab({ gateway: 'microgate', readyTimeoutMs: 20_000 }, async (lab) => {
    const { lan, wan, dmz } = lab.hosts;
    // SLAAC: the lan host took an address of the advertised /64, and it is the one the lab reports.
    assert.match(lan.ip6 ?? '', /^2001:db8:0:1:/);
    const addr = await nsExec(lan.netns, 'ip', ['-6', 'addr', 'show', 'scope', 'global']);
    assert.ok(addr.stdout.includes(`${lan.ip6}/64`), addr.stdout);
    assert.match(addr.stdout, /dynamic/, 'configured from a router advertisement');
    const rt6 = await nsExec(lan.netns, 'ip', ['-6', 'route', 'show', 'default']);
    assert.match(rt6.stdout, /default via fe80::[0-9a-f:]+ dev \S+ proto ra/, rt6.stdout);
    assert.equal(wan.ip6, '2001:db8:ff::2');
    assert.equal(dmz.ip6, '2001:db8:0:80::2');

    // ping -6: the router itself, then across it where the policy allows.
    assert.ok((await ping(lan.netns, lab.gatewayAddresses6!.lan, { count: 3, timeoutS: 2 })).ok, 'lan pings its router');
    const t0 = Date.now();
    const lw = await ping(lan.netns, wan.ip6!, { count: 20, timeoutS: 2, intervalS: 0.05 });
    const pingMs = Date.now() - t0;
    assert.ok(lw.ok, `lan -> wan ping -6: ${lw.stdout}`);
    assert.ok((await ping(lan.netns, dmz.ip6!, { count: 3, timeoutS: 2 })).received >= 2, 'lan -> dmz');
    assert.ok((await ping(dmz.netns, wan.ip6!, { count: 3, timeoutS: 2 })).received >= 2, 'dmz -> wan');
    const wl = await ping(wan.netns, lan.ip6!, { count: 2, timeoutS: 1 });
    assert.equal(wl.received, 0, 'wan -> lan: no rule lets the wan in');
    const rtt = /rtt min\/avg\/max\/mdev = [0-9.]+\/([0-9.]+)\//.exec(lw.stdout);

    // iperf3 -6 both ways (the lan opens the connection; -R: the wan sends).
    const up = await iperf3Pair({ serverNetns: wan.netns, serverIp: wan.ip6!, clientNetns: lan.netns, seconds: 3 });
    const down = await iperf3Pair({ serverNetns: wan.netns, serverIp: wan.ip6!, clientNetns: lan.netns, seconds: 3, reverse: true });
    assert.ok(up.bitsPerSecond > 1e6 && down.bitsPerSecond > 1e6, `iperf3 -6: ${up.bitsPerSecond} / ${down.bitsPerSecond}`);
    assert.equal(up.serverSawPeer, lan.ip6, 'routed, no NAT66: the wan host sees the lan address');
    console.log(`# ipv6 lab: ping -6 lan->wan avg rtt ${rtt?.[1]} ms (20 echoes in ${pingMs} ms), iperf3 -6 lan->wan ${(up.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, wan->lan (-R) ${(down.bitsPerSecond / 1e9).toFixed(2)} Gbit/s`);

    const before = await router(lab.name);
    const st = before.status as { conntrack6: { count: number }; neighbors: { domain: string; state: string }[] };
    assert.ok(st.conntrack6.count >= 1, 'IPv6 connections in status');
    assert.ok(st.neighbors.some((n) => n.domain === 'wan' && n.state === 'reachable'), JSON.stringify(st.neighbors));
    // The CLI shows both families.
    const cli = await execFileP(process.execPath, [MICROGATE, 'conntrack', '--lab', lab.name], { timeout: 30_000 });
    assert.match(cli.stdout, /IPv6 connections/);
    assert.ok(cli.stdout.includes(`[${lan.ip6}]`), cli.stdout);

    // Malformed IPv6 from the lan host to the router's lan MAC.
    const lanMac = ((before.status as { domains: { name: string; mac: string }[] }).domains.find((d) => d.name === 'lan'))!.mac;
    const ifname = (await nsExec(lan.netns, 'ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).find((n) => n?.startsWith('mg'));
    assert.ok(ifname);
    const restartsBefore = await restarts(lab.name);
    const sent = await nsExec(lan.netns, PYTHON, ['-c', SCAPY, ifname, lanMac, lan.ip6!, wan.ip6!], { timeoutMs: 60_000 });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout.trim(), '25');
    await new Promise((r) => setTimeout(r, 500));
    const after = await router(lab.name);
    const d = (k: string): number => (after.counters[`drop.${k}`] ?? 0) - (before.counters[`drop.${k}`] ?? 0);
    assert.deepEqual({ truncated: d('ip6-truncated'), order: d('ip6-ext-order'), dup: d('ip6-ext-duplicate'), long: d('ip6-ext-chain-too-long') },
      { truncated: 10, order: 5, dup: 5, long: 5 }, JSON.stringify(after.counters));
    assert.equal(await restarts(lab.name), restartsBefore, 'no component restarted');
    assert.ok((await ping(lan.netns, wan.ip6!, { count: 3, timeoutS: 2 })).ok, 'still forwarding');
  });
});
