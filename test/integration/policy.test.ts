// The gateway policy on real labs: the same policy on microgate and on the
// Linux reference (translated to nftables), scanned with nmap from every
// segment; port forwards into the dmz; blocklist expiry; a SYN flood with
// random sources while a lan -> wan ping keeps answering; DHCP leases from a
// lan client; a reload during an iperf3 transfer. One microgate lab and one
// Linux lab, shared by every test of the file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { labControl, labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { labReload } from '../../src/lab/lab-reload.ts';
import { linuxGatewayCounters, routerYamlPath } from '../../src/lab/linux-gateway.ts';
import { canRunLabs, killChild, nsExec, ping, spawnInNetns, txQueue, waitForListen } from './harness.ts';

const skip = canRunLabs() ? false : 'needs root';
const suffix = Math.random().toString(36).slice(2, 7);
const MG = `pm${suffix}`;
const LX = `pl${suffix}`;
const labs: Record<string, LabInfo> = {};
const children: ChildProcess[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'mg-policy-'));

const LAN = '198.18.0.2';
const DMZ = '198.18.128.2';
const WAN = '198.19.0.2';
const WAN_GW = '198.19.0.1';
const DMZ6 = '2001:db8:0:80::2';
const WAN6 = '2001:db8:ff::2';
const WAN6_GW = '2001:db8:ff::1';

/** TCP ports that accept (and close), UDP ports that echo: one small server per host. */
const LISTEN = String.raw`
import selectors, socket, sys
ip, tcp, udp = sys.argv[1], sys.argv[2], sys.argv[3]
fam = socket.AF_INET6 if ':' in ip else socket.AF_INET
sel = selectors.DefaultSelector()
for p in [int(x) for x in tcp.split(',') if x]:
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((ip, p)); s.listen(128); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, 'tcp')
for p in [int(x) for x in udp.split(',') if x]:
    u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((ip, p)); u.setblocking(False)
    sel.register(u, selectors.EVENT_READ, 'udp')
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        try:
            if key.data == 'tcp':
                c, _ = key.fileobj.accept(); c.close()
            else:
                d, a = key.fileobj.recvfrom(2048); key.fileobj.sendto(d or b'x', a)
        except OSError:
            pass
`;

function ns(lab: string, host: 'lan' | 'dmz' | 'wan'): string {
  return `mg-${lab}-${host}`;
}

function start(netns: string, cmd: string, args: string[]): ChildProcess {
  const c = spawnInNetns(netns, cmd, args);
  children.push(c);
  return c;
}

/** Resolves when a LISTEN server has bound every port (it prints "ready"); rejects with its error output if it exits first. */
function ready(c: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const done = (e?: Error): void => {
      clearTimeout(timer);
      c.stdout?.off('data', onOut);
      c.off('exit', onExit);
      if (e) reject(e); else resolve();
    };
    const onOut = (d: Buffer): void => { out += String(d); if (out.includes('ready')) done(); };
    const onExit = (): void => done(new Error(`server ${c.spawnargs.slice(-3).join(' ')} exited: ${err}`));
    const timer = setTimeout(() => done(new Error(`server ${c.spawnargs.slice(-3).join(' ')} not ready after ${timeoutMs} ms: ${err}`)), timeoutMs);
    c.stderr?.on('data', (d: Buffer) => { err += String(d); });
    c.stdout?.on('data', onOut);
    c.on('exit', onExit);
  });
}

async function controlOf(lab: string): Promise<ControlClient> {
  const st = await readLabState(lab);
  assert.ok(st);
  return labControl(st, 5000);
}

async function routerReport(lab: string): Promise<{ status: Record<string, unknown>; counters: Record<string, number> }> {
  const body = await (await controlOf(lab)).get<{ components: { name: string; status: Record<string, unknown>; counters: Record<string, number> }[] }>('/components');
  const router = body.components.find((c) => c.name === 'router');
  assert.ok(router);
  return router;
}

/** The router config section of a lab, from the file its gateway reloads. */
async function readPolicy(lab: string): Promise<Record<string, unknown>> {
  const st = await readLabState(lab);
  assert.ok(st);
  if (st.gateway === 'linux') return parseDocument(await readFile(routerYamlPath(st.plan), 'utf8')).toJS() as Record<string, unknown>;
  const doc = parseDocument(await readFile(join(st.stateDir, 'gateway.yaml'), 'utf8'));
  const comps = doc.toJS().components as { name: string; config: Record<string, unknown> }[];
  return comps.find((c) => c.name === 'router')!.config;
}

/** Write a new router config section into the lab's file (not applied until reload). */
async function writePolicy(lab: string, router: Record<string, unknown>): Promise<void> {
  const st = await readLabState(lab);
  assert.ok(st);
  if (st.gateway === 'linux') {
    const doc = parseDocument('{}');
    doc.contents = doc.createNode(router) as typeof doc.contents;
    await writeFile(routerYamlPath(st.plan), doc.toString());
    return;
  }
  const file = join(st.stateDir, 'gateway.yaml');
  const doc = parseDocument(await readFile(file, 'utf8'));
  const comps = doc.toJS().components as { name: string }[];
  doc.setIn(['components', comps.findIndex((c) => c.name === 'router'), 'config'], doc.createNode(router));
  await writeFile(file, doc.toString());
}

type Domains = Record<string, Record<string, unknown>>;

/** Apply `edit` to a copy of the lab's policy, reload, and return the original (to restore). */
async function reloadWith(lab: string, edit: (d: Domains) => void): Promise<Record<string, unknown>> {
  const orig = await readPolicy(lab);
  const next = structuredClone(orig);
  edit(next.domains as Domains);
  await writePolicy(lab, next);
  const r = await labReload(lab);
  assert.ok(r.ok, `reload of ${lab}: ${r.message}`);
  return orig;
}

async function restore(lab: string, orig: Record<string, unknown>): Promise<void> {
  await writePolicy(lab, orig);
  const r = await labReload(lab);
  assert.ok(r.ok, r.message);
}

before(async () => {
  if (skip) return;
  labs.mg = await labUp({ name: MG, gateway: 'microgate' });
  labs.lx = await labUp({ name: LX, gateway: 'linux' });
  for (const lab of [MG, LX]) {
    // An attacker on the wan segment routes the internal prefixes at the gateway:
    // then only the policy stands between it and the hosts.
    await nsExec(ns(lab, 'wan'), 'ip', ['route', 'replace', '198.18.0.0/16', 'via', WAN_GW]);
    const servers = [
      start(ns(lab, 'lan'), 'python3', ['-c', LISTEN, LAN, '22,8443', '514']),
      start(ns(lab, 'dmz'), 'python3', ['-c', LISTEN, DMZ, '22', '5353']),
      start(ns(lab, 'wan'), 'python3', ['-c', LISTEN, WAN, '22,80', '53']),
      start(ns(lab, 'dmz'), 'python3', ['-m', 'http.server', '8080', '--bind', DMZ, '--directory', tmp]),
    ];
    // The same servers on the hosts' IPv6 addresses (the dmz's web port too: IPv6 has no forwards, only rules).
    const l6 = lab === MG ? labs.mg : labs.lx;
    servers.push(
      start(ns(lab, 'lan'), 'python3', ['-c', LISTEN, l6.hosts.lan.ip6 as string, '22,8443', '514']),
      start(ns(lab, 'dmz'), 'python3', ['-c', LISTEN, DMZ6, '22,8080', '5353']),
      start(ns(lab, 'wan'), 'python3', ['-c', LISTEN, WAN6, '22,80', '53']),
    );
    // Seven Python servers per lab: on a loaded machine they take a while to start.
    await Promise.all(servers.filter((c) => c.spawnargs.includes(LISTEN)).map((c) => ready(c, 30_000)));
    await waitForListen(ns(lab, 'lan'), 8443, 30_000);
    await waitForListen(ns(lab, 'dmz'), 8080, 30_000);
    await waitForListen(ns(lab, 'wan'), 80, 30_000);
  }
  writeFileSync(join(tmp, 'hello.txt'), 'hello from the dmz\n');
});

after(async () => {
  for (const c of children) await killChild(c, 500);
  for (const lab of [MG, LX]) await labDown(lab).catch((e: unknown) => { process.stderr.write(`labDown ${lab}: ${String(e)}\n`); });
  rmSync(tmp, { recursive: true, force: true });
});

// ---- conformance ---------------------------------------------------------------

const TCP_PORTS = '22,80,443,8080,8443';
const UDP_PORTS = '53,514,5353';
const SCANS: { from: 'lan' | 'dmz' | 'wan'; targets: string[] }[] = [
  { from: 'lan', targets: [WAN, DMZ] },
  { from: 'dmz', targets: [LAN, WAN] },
  { from: 'wan', targets: [LAN, DMZ, WAN_GW] },
];

/** "from->target proto/port" -> open / closed / filtered / open|filtered, for every scan. */
async function scanMatrix(lab: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const s of SCANS) {
    for (const [flag, ports] of [['-sS', TCP_PORTS], ['-sU', UDP_PORTS]] as const) {
      const r = await nsExec(ns(lab, s.from), 'nmap', ['-n', '-Pn', flag, '-T5', '--max-retries', '1', '-p', ports, '-oG', '-', ...s.targets], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      for (const line of r.stdout.split('\n')) {
        const m = /^Host: (\S+) .*Ports: (.*)$/.exec(line);
        if (m === null) continue;
        for (const p of m[2].split(', ')) {
          const [port, state, proto] = p.split('/');
          out[`${s.from}->${m[1]} ${proto}/${port}`] = state;
        }
      }
    }
  }
  return out;
}

test('conformance: nmap TCP and UDP scans from wan, lan and dmz see the same open/closed/filtered matrix on microgate and Linux', { skip }, async () => {
  const mg = await scanMatrix(MG);
  const lx = await scanMatrix(LX);
  const expectedCount = SCANS.reduce((a, s) => a + s.targets.length, 0) * (TCP_PORTS.split(',').length + UDP_PORTS.split(',').length);
  assert.equal(Object.keys(mg).length, expectedCount, JSON.stringify(mg));
  assert.deepEqual(mg, lx);
  // And the matrix is the policy's, not an accident both sides share.
  const expect: Record<string, string> = {
    [`lan->${WAN} tcp/22`]: 'open', [`lan->${WAN} tcp/443`]: 'closed', [`lan->${DMZ} tcp/8080`]: 'open',
    [`lan->${WAN} udp/53`]: 'open', [`lan->${WAN} udp/514`]: 'closed',
    [`dmz->${LAN} tcp/8443`]: 'open', [`dmz->${LAN} tcp/22`]: 'filtered', [`dmz->${LAN} udp/514`]: 'open|filtered',
    [`dmz->${WAN} tcp/80`]: 'open',
    [`wan->${LAN} tcp/8443`]: 'filtered', [`wan->${DMZ} tcp/8080`]: 'filtered', [`wan->${LAN} udp/514`]: 'open|filtered',
    [`wan->${WAN_GW} tcp/80`]: 'open', [`wan->${WAN_GW} tcp/22`]: 'filtered', [`wan->${WAN_GW} udp/53`]: 'open', [`lan->${DMZ} udp/514`]: 'closed',
  };
  for (const [k, v] of Object.entries(expect)) assert.equal(mg[k], v, k);
});

test('conformance with reject, drop and per-protocol rules (reloaded into both gateways): the same matrix', { skip }, async () => {
  const edit = (d: Domains): void => {
    d.lan.tcp = [
      { ports: [22], action: 'reject' },
      { dst: '198.19.0.0/24', ports: 'any', to: 'wan' },
      { ports: [443], action: 'drop' },
    ];
    d.lan.udp = [{ ports: [53], to: 'wan' }, { ports: '500-600', action: 'reject' }];
    d.lan.icmp = [{ to: 'wan' }];
    d.lan.ip = [];
    d.lan.default = 'reject';
  };
  const origs: Record<string, Record<string, unknown>> = {};
  try {
    for (const lab of [MG, LX]) origs[lab] = await reloadWith(lab, edit);
    const scan = async (lab: string): Promise<Record<string, string>> => {
      const out: Record<string, string> = {};
      for (const [flag, ports] of [['-sS', TCP_PORTS], ['-sU', UDP_PORTS]] as const) {
        const r = await nsExec(ns(lab, 'lan'), 'nmap', ['-n', '-Pn', flag, '-T5', '--max-retries', '1', '-p', ports, '-oG', '-', WAN, DMZ], { timeoutMs: 60_000 });
        for (const m of r.stdout.matchAll(/^Host: (\S+) .*Ports: (.*)$/gm)) {
          for (const p of m[2].split(', ')) {
            const [port, state, proto] = p.split('/');
            out[`${m[1]} ${proto}/${port}`] = state;
          }
        }
      }
      return out;
    };
    const mg = await scan(MG);
    const lx = await scan(LX);
    assert.deepEqual(mg, lx);
    const expect: Record<string, string> = {
      [`${DMZ} tcp/22`]: 'closed', // the reject rule: a reset from the gateway
      [`${WAN} tcp/22`]: 'open', [`${WAN} tcp/443`]: 'closed', // the /24 accept beats the /0 reject and drop: the host answers
      [`${DMZ} tcp/443`]: 'filtered', [`${DMZ} tcp/8080`]: 'closed', // the drop rule; the default reject
      [`${WAN} udp/53`]: 'open',
      // UDP rejects: ICMP port unreachable from the gateway, which nmap calls filtered (only the target's own is "closed")
      [`${WAN} udp/514`]: 'filtered', [`${DMZ} udp/5353`]: 'filtered', [`${DMZ} udp/53`]: 'filtered',
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(mg[k], v, k);
    assert.ok(((await routerReport(MG)).counters['domain.lan.drop.rejected'] ?? 0) > 0);
  } finally {
    for (const [lab, orig] of Object.entries(origs)) await restore(lab, orig);
  }
});

// ---- conformance, IPv6 ----------------------------------------------------------

/** The IPv6 targets of a lab by role (the lan host's address differs: SLAAC on microgate, static on Linux). */
function targets6(info: LabInfo): Record<string, string> {
  return { lan: info.hosts.lan.ip6 as string, dmz: DMZ6, wan: WAN6, 'wan-gw': WAN6_GW };
}

const SCANS6: { from: 'lan' | 'dmz' | 'wan'; targets: string[] }[] = [
  { from: 'lan', targets: ['wan', 'dmz'] },
  { from: 'dmz', targets: ['lan', 'wan'] },
  { from: 'wan', targets: ['lan', 'dmz', 'wan-gw'] },
];

/** "from->role proto/port" -> state, for every IPv6 scan (nmap -6 -sS and -sU). */
async function scanMatrix6(lab: string, info: LabInfo): Promise<Record<string, string>> {
  const t = targets6(info);
  const role = Object.fromEntries(Object.entries(t).map(([k, v]) => [v, k]));
  const out: Record<string, string> = {};
  for (const s of SCANS6) {
    for (const [flag, ports] of [['-sS', TCP_PORTS], ['-sU', UDP_PORTS]] as const) {
      const r = await nsExec(ns(lab, s.from), 'nmap', ['-6', '-n', '-Pn', flag, '-T5', '--max-retries', '1', '-p', ports, '-oG', '-', ...s.targets.map((x) => t[x])], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      for (const m of r.stdout.matchAll(/^Host: (\S+) .*Ports: (.*)$/gm)) {
        for (const p of m[2].split(', ')) {
          const [port, state, proto] = p.split('/');
          out[`${s.from}->${role[m[1]] ?? m[1]} ${proto}/${port}`] = state;
        }
      }
    }
  }
  return out;
}

const MATRIX6_SIZE = SCANS6.reduce((a, s) => a + s.targets.length, 0) * (TCP_PORTS.split(',').length + UDP_PORTS.split(',').length);

test('conformance, IPv6: nmap -6 TCP and UDP scans from wan, lan and dmz see the same matrix on microgate and Linux', { skip }, async (t) => {
  const mg = await scanMatrix6(MG, labs.mg);
  const lx = await scanMatrix6(LX, labs.lx);
  assert.equal(Object.keys(mg).length, MATRIX6_SIZE, JSON.stringify(mg));
  assert.deepEqual(mg, lx);
  t.diagnostic(`IPv6 matrix: ${Object.keys(mg).length} (source, target, port) cells agree`);
  // The policy's matrix: the rules without dst cover IPv6; the dmz's lan service rule names an IPv4 host, and the
  // forwards are IPv4 (routed IPv6 has no NAT to forward through), so neither opens anything over IPv6.
  const expect: Record<string, string> = {
    'lan->wan tcp/22': 'open', 'lan->wan tcp/443': 'closed', 'lan->dmz tcp/8080': 'open', 'lan->dmz tcp/8443': 'closed',
    'lan->wan udp/53': 'open', 'lan->wan udp/514': 'closed', 'lan->dmz udp/5353': 'open',
    'dmz->wan tcp/80': 'open', 'dmz->lan tcp/8443': 'filtered', 'dmz->lan tcp/22': 'filtered', 'dmz->lan udp/514': 'open|filtered',
    'wan->lan tcp/22': 'filtered', 'wan->dmz tcp/8080': 'filtered', 'wan->dmz udp/5353': 'open|filtered',
    'wan->wan-gw tcp/80': 'filtered', 'wan->wan-gw udp/53': 'open|filtered',
  };
  for (const [k, v] of Object.entries(expect)) assert.equal(mg[k], v, k);
  // ping -6 to the router's addresses in other domains: answered only where the policy lets ICMP in (as for IPv4).
  const pings: Record<string, Record<string, boolean>> = {};
  for (const [key, lab] of [['mg', MG], ['lx', LX]] as const) {
    pings[key] = {};
    for (const [from, to] of [['lan', WAN6_GW], ['lan', '2001:db8:0:80::1'], ['dmz', WAN6_GW], ['dmz', '2001:db8:0:1::1'], ['wan', '2001:db8:0:1::1']] as const) {
      pings[key][`${from}->${to}`] = (await ping(ns(lab, from), to, { count: 1, timeoutS: 1 })).received === 1;
    }
  }
  assert.deepEqual(pings.mg, pings.lx);
  assert.deepEqual(pings.mg, {
    [`lan->${WAN6_GW}`]: true, 'lan->2001:db8:0:80::1': true, [`dmz->${WAN6_GW}`]: true, 'dmz->2001:db8:0:1::1': false, 'wan->2001:db8:0:1::1': false,
  });
});

test('conformance, IPv6, with IPv6 rules, reject, drop and both-family rules (reloaded into both gateways): the same matrix', { skip }, async (t) => {
  const edit = (d: Domains): void => {
    d.lan.tcp = [
      { ports: [22], action: 'reject' },
      { dst: '2001:db8:ff::/64', ports: 'any', to: 'wan' },
      { dst: '198.19.0.0/24', ports: 'any', to: 'wan' },
      { dst: '::/0', ports: [443], action: 'drop' },
    ];
    d.lan.udp = [{ ports: [53], to: 'wan' }, { dst: '2001:db8:0:80::/64', ports: '500-600', action: 'reject' }];
    d.lan.icmp = [{ to: 'wan' }];
    d.lan.ip = [{ dst: '2001:db8:0:80::/64', to: 'dmz' }];
    d.lan.default = 'reject';
    d.dmz.tcp = [...(d.dmz.tcp as unknown[]), { dst: '2001:db8:0:1::/64', ports: [8443], to: 'lan' }];
    d.wan.tcp = [{ dst: `${DMZ6}/128`, ports: [22], to: 'dmz' }];
  };
  const origs: Record<string, Record<string, unknown>> = {};
  try {
    for (const lab of [MG, LX]) origs[lab] = await reloadWith(lab, edit);
    const mg = await scanMatrix6(MG, labs.mg);
    const lx = await scanMatrix6(LX, labs.lx);
    assert.equal(Object.keys(mg).length, MATRIX6_SIZE, JSON.stringify(mg));
    assert.deepEqual(mg, lx);
    t.diagnostic(`IPv6 matrix after reload: ${Object.keys(mg).length} cells agree`);
    const expect: Record<string, string> = {
      'lan->wan tcp/22': 'open', 'lan->wan tcp/443': 'closed', // the IPv6 /64 accept beats the no-dst reject and the ::/0 drop
      'lan->dmz tcp/22': 'closed', // the reject rule (both families): a reset from the gateway
      'lan->dmz tcp/443': 'filtered', 'lan->dmz tcp/8080': 'open', 'lan->dmz tcp/8443': 'closed', // ::/0 drop; the ip rule
      'lan->wan udp/53': 'open', 'lan->wan udp/514': 'filtered', // the default reject: port unreachable from the gateway
      'lan->dmz udp/514': 'filtered', 'lan->dmz udp/5353': 'open', 'lan->dmz udp/53': 'closed',
      'dmz->lan tcp/8443': 'open', 'dmz->lan tcp/22': 'filtered',
      'wan->dmz tcp/22': 'open', 'wan->dmz tcp/8080': 'filtered', 'wan->lan tcp/8443': 'filtered',
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(mg[k], v, k);
    const c = (await routerReport(MG)).counters;
    assert.ok((c['domain.lan.drop.rejected'] ?? 0) > 0);
  } finally {
    for (const [lab, orig] of Object.entries(origs)) await restore(lab, orig);
  }
});

/** Connect from each source address to dst:port at once (non-blocking); after `waitS`, how many are connected. */
const CONNECT_ALL = String.raw`
import select, socket, sys, time
dst, port, srcs, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(','), float(sys.argv[4])
ss = []
for a in srcs:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.setblocking(False); s.bind((a, 0))
    try:
        s.connect((dst, port))
    except BlockingIOError:
        pass
    ss.append(s)
time.sleep(wait)
print(sum(1 for s in ss if select.select([], [s], [], 0)[1] and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0))
`;

/** A drop counter of a lab's gateway (microgate: of the domain; Linux: its rules with that comment, since the last load). */
async function dropCount(lab: string, domain: string, reason: string): Promise<number> {
  if (lab === MG) return (await routerReport(MG)).counters[`domain.${domain}.drop.${reason}`] ?? 0;
  const st = await readLabState(lab);
  assert.ok(st);
  return (await linuxGatewayCounters(st.plan))[reason]?.packets ?? 0;
}

test('IPv6 attacks, on both gateways: a spoofed source outside the lan\'s /64; a lan host spreading connections over its /64 is one source for the rate limit; a blocklisted IPv6 host', { skip }, async () => {
  for (const [lab, info] of [[MG, labs.mg], [LX, labs.lx]] as const) {
    const lanIf = `mg${lab}l`;
    // Spoofed: a source in the routed inside (the wan host would answer it) but not the lan's prefix.
    const spoof = '2001:db8:0:2::5';
    assert.ok((await ping(ns(lab, 'lan'), WAN6)).ok, `${lab}: ping -6 from the lan host's own address`);
    await nsExec(ns(lab, 'lan'), 'ip', ['-6', 'addr', 'add', `${spoof}/128`, 'dev', lanIf, 'nodad']);
    try {
      const before = await dropCount(lab, 'lan', 'ip6-spoofed-source');
      const r = await nsExec(ns(lab, 'lan'), 'ping', ['-6', '-n', '-c', '2', '-i', '0.2', '-W', '1', '-I', spoof, WAN6], { timeoutMs: 10_000 });
      assert.match(r.stdout, / 0 received/, `${lab}: the spoofed source gets nothing through`);
      assert.ok(await dropCount(lab, 'lan', 'ip6-spoofed-source') > before, `${lab}: counted as ip6-spoofed-source`);
    } finally {
      await nsExec(ns(lab, 'lan'), 'ip', ['-6', 'addr', 'del', `${spoof}/128`, 'dev', lanIf]);
    }

    // Eight addresses of the lan's /64 open a connection each at once: limited as one source (1/s, burst 2),
    // where a limit per address would let all eight through.
    const prefix = (info.hosts.lan.ip6 as string).split(':').slice(0, 4).join(':');
    const srcs = Array.from({ length: 8 }, (_, i) => `${prefix}::${(0x100 + i).toString(16)}`);
    const orig = await reloadWith(lab, (d) => { d.lan.limits = { 'new-per-source': 1, 'new-per-source-burst': 2 }; });
    try {
      for (const a of srcs) await nsExec(ns(lab, 'lan'), 'ip', ['-6', 'addr', 'add', `${a}/128`, 'dev', lanIf, 'nodad']);
      await new Promise((r) => setTimeout(r, 1500)); // the bucket full again after the reload's own traffic
      const before = await dropCount(lab, 'lan', 'rate-limited');
      const r = await nsExec(ns(lab, 'lan'), 'python3', ['-c', CONNECT_ALL, WAN6, '22', srcs.join(','), '0.8'], { timeoutMs: 20_000 });
      const connected = Number(r.stdout.trim());
      assert.ok(connected >= 1 && connected <= 3, `${lab}: ${r.stdout}${r.stderr} of 8 connected (burst 2, 1/s)`);
      assert.ok(await dropCount(lab, 'lan', 'rate-limited') > before, `${lab}: counted as rate-limited`);
    } finally {
      for (const a of srcs) await nsExec(ns(lab, 'lan'), 'ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', lanIf]);
      await restore(lab, orig);
    }

    // The wan host's IPv6 address blocklisted: its replies to the lan are dropped on arrival.
    const orig2 = await reloadWith(lab, (d) => { d.wan.blocklist = [WAN6]; });
    try {
      const before = await dropCount(lab, 'wan', 'blocklisted');
      assert.equal((await ping(ns(lab, 'lan'), WAN6, { count: 1, timeoutS: 1 })).received, 0, `${lab}: blocked`);
      assert.ok(await dropCount(lab, 'wan', 'blocklisted') > before, `${lab}: counted as blocklisted`);
    } finally {
      await restore(lab, orig2);
    }
    assert.ok((await ping(ns(lab, 'lan'), WAN6)).ok, `${lab}: ping -6 again once unblocked`);
  }
});

// ---- port forwards ---------------------------------------------------------------

test('port forward: curl from the wan reaches the dmz web server through the gateway\'s address, on both gateways; conntrack shows the mapping', { skip }, async () => {
  for (const lab of [MG, LX]) {
    const r = await nsExec(ns(lab, 'wan'), 'curl', ['-s', '-m', '5', `http://${WAN_GW}/hello.txt`]);
    assert.equal(r.code, 0, `${lab}: ${r.stderr}`);
    assert.equal(r.stdout, 'hello from the dmz\n');
    const direct = await nsExec(ns(lab, 'wan'), 'curl', ['-s', '-m', '2', `http://${DMZ}:8080/hello.txt`]);
    assert.notEqual(direct.code, 0, `${lab}: the dmz host itself is not reachable from the wan`);
  }
  const conns = (await routerReport(MG)).status.connections as { from: string; to: string; src: string; dst: string; dnat: string | null }[];
  assert.ok(conns.some((c) => c.from === 'wan' && c.to === 'dmz' && c.dst === `${WAN_GW}:80` && c.dnat === `${DMZ}:8080`), JSON.stringify(conns));
});

// ---- blocklist with expiry ------------------------------------------------------------

test('blocklist with expiry: the wan host is cut off (also replies to lan) for 3 s, on both gateways', { skip }, async () => {
  const origs: Record<string, Record<string, unknown>> = {};
  try {
    for (const lab of [MG, LX]) {
      assert.ok((await ping(ns(lab, 'lan'), WAN)).ok, `${lab}: ping before`);
      origs[lab] = await reloadWith(lab, (d) => { d.wan.blocklist = [{ prefix: WAN, 'for-s': 3 }]; });
    }
    const t0 = Date.now();
    for (const lab of [MG, LX]) {
      const p = await ping(ns(lab, 'lan'), WAN, { count: 1, timeoutS: 1 });
      assert.equal(p.received, 0, `${lab}: blocked`);
    }
    assert.ok(((await routerReport(MG)).counters['domain.wan.drop.blocklisted'] ?? 0) > 0);
    await new Promise((r) => setTimeout(r, Math.max(0, 3300 - (Date.now() - t0))));
    for (const lab of [MG, LX]) {
      const p = await ping(ns(lab, 'lan'), WAN, { count: 1, timeoutS: 1 });
      assert.equal(p.received, 1, `${lab}: expired`);
    }
  } finally {
    for (const [lab, orig] of Object.entries(origs)) await restore(lab, orig);
  }
});

// ---- SYN flood -------------------------------------------------------------------------

/** Frames the wan host's TAP sent to the gateway and those its queue dropped (the gateway did not read them in time). */
function wanQueue(lab: string): Promise<{ sent: number; dropped: number }> {
  return txQueue(ns(lab, 'wan'), `mg${lab}w`);
}

test('SYN flood from the wan with random sources (hping3, 2 s) while a lan -> wan ping keeps answering', { skip }, async () => {
  const before = (await routerReport(MG)).counters;
  const queueBefore = await wanQueue(MG);
  const flood = nsExec(ns(MG, 'wan'), 'timeout', ['2', 'hping3', '--flood', '-S', '--rand-source', '-p', '80', WAN_GW], { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 200));
  const p = await ping(ns(MG, 'lan'), WAN, { count: 8, intervalS: 0.2, timeoutS: 1 });
  await flood;
  const queue = await wanQueue(MG);
  const afterC = (await routerReport(MG)).counters;
  const sent = queue.sent - queueBefore.sent;
  const overflowed = queue.dropped - queueBefore.dropped;
  const said = `ping during the flood: ${p.received} of ${p.transmitted} answered; the wan host sent ${sent} frames, ` +
    `${overflowed} overflowed the TAP's queue before the gateway read them; router drops: ` +
    JSON.stringify(Object.fromEntries(Object.entries(afterC).filter(([k, v]) => k.includes('drop') && v !== (before[k] ?? 0)).map(([k, v]) => [k, v - (before[k] ?? 0)])));
  // hping3 --flood sends as fast as one core lets it (~100 kpps here). On a quiet
  // machine the gateway reads every frame and every ping is answered. On a loaded
  // one it can fall behind: the kernel's TAP queue then overflows and drops flood
  // frames and ping replies alike, before microgate sees them (input overload,
  // the same for any gateway reading a TAP). Losses without that overflow are
  // microgate's own and fail the test; with it, half the pings must still pass.
  if (overflowed === 0) assert.ok(p.received >= 7, said);
  else assert.ok(p.received >= 4, said);
  const rx = (afterC['rx.wan'] ?? 0) - (before['rx.wan'] ?? 0);
  assert.ok(rx > 1000, `the flood reached the router: ${rx} frames`);
  const st = await (await controlOf(MG)).get<{ components: { name: string; restarts: number }[] }>('/status');
  assert.ok(st.components.every((c) => c.restarts === 0), 'nothing restarted');
  // Random sources outside the wan prefix are spoofed for a domain without a default route.
  assert.ok((afterC['drop.ip-spoofed-source'] ?? 0) > (before['drop.ip-spoofed-source'] ?? 0));
});

test('rate limit per source: a SYN flood from one wan host through the forward is capped; the forward works again after', { skip }, async () => {
  const orig = await reloadWith(MG, (d) => { d.wan.limits = { 'new-per-source': 20 }; });
  try {
    const before = (await routerReport(MG)).counters['drop.rate-limited'] ?? 0;
    await nsExec(ns(MG, 'wan'), 'timeout', ['1', 'hping3', '-S', '-i', 'u1000', '-p', '80', WAN_GW], { timeoutMs: 10_000 });
    const limited = ((await routerReport(MG)).counters['drop.rate-limited'] ?? 0) - before;
    assert.ok(limited > 300, `rate-limited drops: ${limited}`);
    await new Promise((r) => setTimeout(r, 1100));
    const r = await nsExec(ns(MG, 'wan'), 'curl', ['-s', '-m', '5', `http://${WAN_GW}/hello.txt`]);
    assert.equal(r.stdout, 'hello from the dmz\n');
  } finally {
    await restore(MG, orig);
  }
});

// ---- DHCP ---------------------------------------------------------------------------------

test('DHCP: a lan client (busybox udhcpc) gets a lease from the pool, then its static lease after a reload', { skip }, async () => {
  const script = join(tmp, 'udhcpc.sh');
  const outFile = join(tmp, 'udhcpc.out');
  writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip router=$router subnet=$subnet lease=$lease" >> ${outFile}\nexit 0\n`);
  chmodSync(script, 0o755);
  const ifname = `mg${MG}l`;
  const udhcpc = async (): Promise<string> => {
    rmSync(outFile, { force: true });
    const r = await nsExec(ns(MG, 'lan'), 'busybox', ['udhcpc', '-i', ifname, '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', script], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return readFileSync(outFile, 'utf8').trim();
  };
  assert.match(await udhcpc(), /^ip=198\.18\.0\.1\d\d router=198\.18\.0\.1 subnet=255\.255\.255\.0 lease=600$/);
  const mac = (await nsExec(ns(MG, 'lan'), 'cat', [`/sys/class/net/${ifname}/address`])).stdout.trim();
  const leases = (await routerReport(MG)).status.dhcp as { domain: string; leases: { mac: string; state: string }[] }[];
  assert.deepEqual(leases[0].leases.map((l) => [l.mac, l.state]), [[mac, 'bound']]);
  const orig = await reloadWith(MG, (d) => {
    (d.lan['dhcp-server'] as Record<string, unknown>).static = [{ mac, ip: '198.18.0.50' }];
  });
  try {
    assert.equal(await udhcpc(), 'ip=198.18.0.50 router=198.18.0.1 subnet=255.255.255.0 lease=600');
  } finally {
    await restore(MG, orig);
  }
});

// ---- reload ---------------------------------------------------------------------------------

test('reload during an iperf3 transfer: the transfer continues; an invalid config changes nothing and says why', { skip }, async () => {
  const port = 5301;
  const server = start(ns(MG, 'wan'), 'iperf3', ['-s', '-1', '-B', WAN, '-p', String(port)]);
  await waitForListen(ns(MG, 'wan'), port);
  const client = nsExec(ns(MG, 'lan'), 'iperf3', ['-c', WAN, '-p', String(port), '-t', '3', '-i', '0.5', '--json'], { timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 1000));
  // A real policy change: the dmz loses its lan service, the wan gets a blocklist.
  const orig = await reloadWith(MG, (d) => {
    d.dmz.tcp = [];
    d.wan.blocklist = ['203.0.113.0/24'];
  });
  try {
    const r = await client;
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { intervals: { sum: { bytes: number } }[] };
    assert.ok(j.intervals.length >= 5);
    for (const [i, iv] of j.intervals.entries()) assert.ok(iv.sum.bytes > 0, `interval ${i} moved no data`);
    const counters = (await routerReport(MG)).counters;
    assert.ok((counters['policy.reloads'] ?? 0) >= 1);
    // Invalid: refused with the path, nothing changed.
    const st = await readLabState(MG);
    assert.ok(st);
    const file = join(st.stateDir, 'gateway.yaml');
    const good = await readFile(file, 'utf8');
    await writeFile(file, good.replace('address: 198.18.128.1/24', 'address: 198.18.128.1/33'));
    const bad = await labReload(MG);
    assert.equal(bad.ok, false);
    assert.match(bad.message, /components\[3\]\.config\.domains\.dmz\.address: expected an IPv4 address with prefix/);
    await writeFile(file, good);
    assert.equal((await routerReport(MG)).counters['policy.reloads'], counters['policy.reloads'], 'nothing applied');
    assert.ok((await ping(ns(MG, 'lan'), WAN)).ok);
  } finally {
    await killChild(server, 500);
    await restore(MG, orig);
  }
});
