// The router's policy: config validation (each rule kind, contradictions,
// rules that can never match), the compiled evaluator's order, and the
// router's behaviour with forwards, reject, blocklists, rate limits, NAT
// quotas, the drop log and reconfiguration, driven with crafted frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigFileError } from '../../src/config/reader.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Blocklist } from '../../src/components/router/blocklist.ts';
import { TokenBuckets } from '../../src/components/router/rate-limit.ts';
import {
  Policy, POLICY_ACCEPT, POLICY_ACCEPT_NAT, POLICY_DROP, POLICY_REJECT,
} from '../../src/components/router/policy.ts';
import { parseIpv4 } from '../../src/net/addr.ts';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../src/net/ipv4.ts';
import { TCP_ACK_FLAG, TCP_RST, TCP_SYN } from '../../src/net/tcp.ts';
import { arpReply, decode, echo, ipFrame, rig, tcp, udp, type Rig } from './fixtures/router-rig.ts';

const SRC = { file: 'gateway.yaml', path: 'components[2].config' };
const ip = (s: string): number => parseIpv4(s)!;

const THREE = {
  domains: {
    lan: { address: '198.18.0.1/24', ip: [{ to: 'wan' }, { to: 'dmz' }] },
    dmz: { address: '198.18.128.1/24', tcp: [{ dst: '198.18.0.2/32', ports: [8443], to: 'lan' }] },
    wan: {
      address: '198.19.0.1/24',
      gateway: '198.19.0.254',
      nat: { from: ['lan', 'dmz'] },
      'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.128.2', 'host-port': 8080 }],
      'udp-forward': [{ port: 53, to: 'dmz', host: '198.18.128.2' }],
    },
  },
};

function withDomain(name: 'lan' | 'dmz' | 'wan', extra: Record<string, unknown>, base: typeof THREE = THREE): Record<string, unknown> {
  return { ...base, domains: { ...base.domains, [name]: { ...base.domains[name], ...extra } } };
}

function errorOf(config: unknown): ConfigFileError {
  try {
    parseRouterConfig(config, 'router', SRC);
  } catch (e) {
    assert.ok(e instanceof ConfigFileError, String(e));
    return e;
  }
  assert.fail('expected a ConfigFileError');
}

// ---- config --------------------------------------------------------------------

test('config: each rule kind parses; NAT declared on the target; legacy forward folds into ip rules + NAT', () => {
  const c = parseRouterConfig(withDomain('lan', {
    tcp: [{ dst: '0.0.0.0/0', ports: [80, '443', '8000-8099'], to: 'wan' }, { dst: '203.0.113.0/24', ports: 25, action: 'drop' }],
    udp: [{ ports: 'any', to: 'wan' }],
    icmp: [{ dst: '198.18.128.0/24', to: 'dmz' }],
    default: 'reject',
    blocklist: ['203.0.113.7', { prefix: '198.51.100.0/24', 'for-s': 60 }, { prefix: '192.0.2.0/24', until: '2999-01-01T00:00:00Z' }],
    limits: { 'new-per-source': 20 },
    'dhcp-server': { range: '198.18.0.100-198.18.0.199', static: [{ mac: '02:00:00:00:00:0a', ip: '198.18.0.50' }] },
  }), 'router', SRC);
  const lan = c.domains[0].policy;
  assert.equal(lan.defaultAction, 'reject');
  assert.deepEqual(lan.rules.map((r) => r.text), [
    'tcp 0.0.0.0/0 port 80,443,8000-8099 -> wan accept',
    'tcp 203.0.113.0/24 port 25 -> any drop',
    'udp any port any -> wan accept',
    'icmp 198.18.128.0/24 -> dmz accept',
    'ip any -> wan accept',
    'ip any -> dmz accept',
  ]);
  assert.equal(lan.rules[0].path, 'components[2].config.domains.lan.tcp[0]');
  assert.deepEqual(lan.blocklist.map((b) => [b.text, b.forMs]), [['203.0.113.7/32', undefined], ['198.51.100.0/24', 60_000], ['192.0.2.0/24', undefined]]);
  assert.deepEqual(lan.limits, { newPerSource: 20, newPerSourceBurst: 40, newTotal: 0, newTotalBurst: 1 });
  assert.equal(lan.dhcp?.static[0].ip, ip('198.18.0.50'));
  const wan = c.domains[2].policy;
  assert.deepEqual(wan.nat, { from: [0, 1], fromNames: ['lan', 'dmz'], portsPerSource: 4096 });
  assert.deepEqual(wan.forwards.map((f) => [f.proto, f.port, f.toName, f.host, f.hostPort]), [
    ['tcp', 80, 'dmz', ip('198.18.128.2'), 8080], ['udp', 53, 'dmz', ip('198.18.128.2'), 53],
  ]);
  const legacy = parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] }, wan: { address: '198.19.0.1/24' } } }, 'router', SRC);
  assert.deepEqual(legacy.domains[0].policy.rules.map((r) => [r.text, r.path]), [['ip any -> wan accept', 'components[2].config.domains.lan.forward[0]']]);
  assert.deepEqual(legacy.domains[1].policy.nat?.fromNames, ['lan']);
});

test('config: contradictions, dead rules and bad values are rejected with the exact path', () => {
  const P = 'components[2].config.domains';
  const cases: [unknown, string, RegExp][] = [
    [withDomain('lan', { tcp: [{ ports: [80], to: 'wan' }, { ports: [80], action: 'drop' }] }), `${P}.lan.tcp[1]`, /contradict.*tcp\[0\].*same ports.*drop vs accept to wan/],
    [withDomain('lan', { tcp: [{ ports: [80], to: 'wan' }, { ports: [80], to: 'wan' }] }), `${P}.lan.tcp[1]`, /duplicates .*lan\.tcp\[0\]/],
    [withDomain('lan', { tcp: [{ ports: '1-100', action: 'drop' }, { ports: '50-200', to: 'wan' }] }), `${P}.lan.tcp[1]`, /partly overlapping/],
    [withDomain('lan', { tcp: [{ ports: [80, '70-90'], to: 'wan' }] }), `${P}.lan.tcp[0].ports[1]`, /do not overlap/],
    [withDomain('lan', { tcp: [{ dst: '198.18.0.0/24', ports: [80], to: 'dmz' }] }), `${P}.lan.tcp[0].dst`, /routed to domain "dmz".*never/],
    [withDomain('lan', { tcp: [{ dst: '198.18.0.0/24', ports: [80], action: 'drop' }] }), `${P}.lan.tcp[0].dst`, /own prefix/],
    [withDomain('lan', { tcp: [{ dst: '198.18.128.5/24', ports: [80], to: 'dmz' }] }), `${P}.lan.tcp[0].dst`, /did you mean 198\.18\.128\.0\/24/],
    [withDomain('lan', { tcp: [{ ports: [80] }] }), `${P}.lan.tcp[0].to`, /the domain an accepted connection goes to/],
    [withDomain('lan', { tcp: [{ to: 'wan' }] }), `${P}.lan.tcp[0].ports`, /ports: any/],
    [withDomain('lan', { icmp: [{ to: 'wan', ports: [1] }] }), `${P}.lan.icmp[0].ports`, /unknown key/],
    [withDomain('lan', { ip: [{ to: 'lan' }] }), `${P}.lan.ip[0].to`, /another domain/],
    [withDomain('lan', { default: 'allow' }), `${P}.lan.default`, /accept, drop, reject/],
    [withDomain('wan', { 'tcp-forward': [{ port: 50000, to: 'dmz', host: '198.18.128.2' }] }), `${P}.wan.tcp-forward[0].port`, /outside nat-ports/],
    [withDomain('wan', { 'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.0.2' }] }), `${P}.wan.tcp-forward[0].host`, /host address in domain "dmz"/],
    [withDomain('wan', { 'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.128.2' }, { port: 80, to: 'dmz', host: '198.18.128.3' }] }), `${P}.wan.tcp-forward[1].port`, /forwarded by .*tcp-forward\[0\]/],
    [withDomain('wan', { nat: { from: ['wan'] } }), `${P}.wan.nat.from[0]`, /another domain/],
    [{ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: false }] }, wan: { address: '198.19.0.1/24', nat: { from: ['lan'] } } } },
      `${P}.lan.forward[0].nat`, /masquerades connections from "lan"/],
    [withDomain('wan', { blocklist: ['203.0.113.7', '203.0.113.7/32'] }), `${P}.wan.blocklist[1]`, /listed at .*blocklist\[0\]/],
    [withDomain('wan', { blocklist: [{ prefix: '203.0.113.7', 'for-s': 5, until: '2030-01-01' }] }), `${P}.wan.blocklist[0].until`, /either for-s or until/],
    [withDomain('wan', { limits: { 'new-per-source-burst': 5 } }), `${P}.wan.limits.new-per-source-burst`, /new-per-source too/],
    [withDomain('lan', { 'dhcp-server': { range: '198.18.0.1-198.18.0.10' } }), `${P}.lan.dhcp-server.range`, /not including the router's/],
    [withDomain('lan', { 'dhcp-server': { range: '198.18.0.10-198.18.0.20', static: [{ mac: '03:00:00:00:00:01', ip: '198.18.0.5' }] } }), `${P}.lan.dhcp-server.static[0].mac`, /unicast MAC/],
  ];
  for (const [config, path, re] of cases) {
    const e = errorOf(config);
    assert.equal(e.path, path, `${e.message}`);
    assert.match(e.expected, re, e.message);
  }
});

// ---- evaluation ----------------------------------------------------------------

test('evaluation: longest prefix, then narrowest ports, protocol rules before ip rules, then the default', () => {
  const cfg = parseRouterConfig(withDomain('lan', {
    tcp: [
      { dst: '0.0.0.0/0', ports: 'any', to: 'wan' },
      { dst: '0.0.0.0/0', ports: [25], action: 'drop' },
      { dst: '203.0.113.0/24', ports: [25], to: 'wan' },
    ],
    udp: [{ ports: '1-1024', action: 'reject' }, { ports: [53], to: 'wan' }],
    ip: [{ to: 'wan' }],
    default: 'reject',
  }), 'router', SRC);
  const p = new Policy(cfg, 0);
  const [LAN, DMZ, WAN] = [0, 1, 2];
  assert.equal(p.decide(LAN, WAN, IPPROTO_TCP, ip('198.51.100.1'), 80), POLICY_ACCEPT_NAT);
  assert.equal(p.lastRule, 0);
  assert.equal(p.decide(LAN, WAN, IPPROTO_TCP, ip('198.51.100.1'), 25), POLICY_DROP, 'a narrower port range wins at the same prefix');
  assert.equal(p.decide(LAN, WAN, IPPROTO_TCP, ip('203.0.113.9'), 25), POLICY_ACCEPT_NAT, 'a longer prefix wins');
  assert.equal(p.decide(LAN, WAN, IPPROTO_UDP, ip('198.51.100.1'), 53), POLICY_ACCEPT_NAT);
  assert.equal(p.decide(LAN, WAN, IPPROTO_UDP, ip('198.51.100.1'), 123), POLICY_REJECT);
  assert.equal(p.decide(LAN, WAN, IPPROTO_UDP, ip('198.51.100.1'), 5000), POLICY_ACCEPT_NAT, 'then the ip rules');
  assert.equal(p.decide(LAN, WAN, IPPROTO_ICMP, ip('198.51.100.1'), 7), POLICY_ACCEPT_NAT);
  assert.equal(p.lastRule, 5);
  assert.equal(p.decide(LAN, DMZ, IPPROTO_TCP, ip('198.18.128.2'), 25), POLICY_DROP, 'a rule without `to` applies whatever the route');
  assert.equal(p.decide(LAN, DMZ, IPPROTO_TCP, ip('198.18.128.2'), 80), POLICY_REJECT, 'the default');
  assert.equal(p.lastRule, -1);
  assert.equal(p.decide(DMZ, LAN, IPPROTO_TCP, ip('198.18.0.2'), 8443), POLICY_ACCEPT, 'no NAT from dmz into lan');
  assert.equal(p.decide(DMZ, LAN, IPPROTO_TCP, ip('198.18.0.3'), 8443), POLICY_DROP);
  assert.equal(p.decide(WAN, LAN, IPPROTO_TCP, ip('198.18.0.2'), 8443), POLICY_DROP);
  assert.deepEqual([p.ruleHits[0], p.ruleHits[1], p.defaultHits[LAN]], [1, 2, 1]);
  assert.equal(p.forward(WAN, IPPROTO_TCP, 80) >= 0, true);
  assert.equal(p.forward(WAN, IPPROTO_UDP, 80), -1);
  assert.equal(p.forward(LAN, IPPROTO_TCP, 80), -1);
  const f = p.forward(WAN, IPPROTO_UDP, 53);
  assert.deepEqual([p.fwdTo[f], p.fwdHost[f] >>> 0, p.fwdPort[f]], [DMZ, ip('198.18.128.2'), 53]);
});

test('blocklist: prefixes of any length, expiry; token buckets refill', () => {
  const b = new Blocklist();
  b.add(ip('203.0.113.0'), 24, 1000);
  b.add(ip('198.51.100.7'), 32, Infinity);
  b.add(0, 0, 10); // everything, briefly
  assert.equal(b.has(ip('203.0.113.200'), 500), true);
  assert.equal(b.has(ip('203.0.113.200'), 1000), false, 'expired');
  assert.equal(b.has(ip('198.51.100.7') | 0, 5000), true, 'int32 form of the address too');
  assert.equal(b.has(ip('198.51.100.8'), 5), true, '0.0.0.0/0 until 10');
  assert.equal(b.has(ip('198.51.100.8'), 20), false);
  for (let i = 0; i < 100; i++) b.add(ip('10.0.0.0') + i * 256, 24, Infinity);
  assert.equal(b.size, 103);
  assert.equal(b.has(ip('10.0.99.1'), 20), true);
  assert.equal(b.has(ip('10.0.100.1'), 20), false);
  const t = new TokenBuckets(10, 2, 1);
  assert.deepEqual([t.admit(1, 0), t.admit(1, 0), t.admit(1, 0)], [true, true, false]);
  assert.equal(t.admit(1, 100), true, '10/s: one token after 100 ms');
  assert.equal(t.admit(1, 100), false);
});

// ---- the router with a policy ------------------------------------------------------

const CLIENT = '198.51.100.7';
const GW_MAC = '02:00:00:00:00:fe';
const DMZ_MAC = '02:00:00:00:00:0d';
const LAN_MAC = '02:00:00:00:00:0a';

function ready(r: Rig): void {
  arpReply(r, 'wan', '198.19.0.254', GW_MAC, '198.19.0.1');
  arpReply(r, 'dmz', '198.18.128.2', DMZ_MAC, '198.18.128.1');
  arpReply(r, 'lan', '198.18.0.2', LAN_MAC, '198.18.0.1');
}

test('port forward: wan -> router:80 reaches dmz host:8080, the reply comes back from router:80; ICMP errors from the router address', () => {
  const r = rig(THREE);
  ready(r);
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40000, 80, TCP_SYN), GW_MAC));
  const [syn] = r.ports.dmz.take().map(decode);
  assert.ok(syn, `forwarded: ${JSON.stringify(r.drops())}`);
  assert.equal(syn.ip.src, CLIENT, 'the client address is kept (dmz does not masquerade wan)');
  assert.equal(syn.ip.dst, '198.18.128.2');
  assert.ok(syn.l4.proto === 'tcp' && syn.l4.tcp.dstPort === 8080 && syn.l4.tcp.srcPort === 40000);
  assert.equal(syn.eth.dst, DMZ_MAC);
  r.send('dmz', ipFrame(r, 'dmz', '198.18.128.2', CLIENT, tcp(8080, 40000, TCP_SYN | TCP_ACK_FLAG, 5000, 1001), DMZ_MAC));
  const [synack] = r.ports.wan.take().map(decode);
  assert.equal(synack.ip.src, '198.19.0.1');
  assert.ok(synack.l4.proto === 'tcp' && synack.l4.tcp.srcPort === 80 && synack.l4.tcp.dstPort === 40000);
  assert.equal(r.counters.get('conntrack.port-forwarded'), 1);
  const st = r.router.status() as { connections: { dnat: string | null; state: string }[] };
  assert.equal(st.connections[0].dnat, '198.18.128.2:8080');
  assert.equal(st.connections[0].state, 'established');
  // Not forwarded: another port on the router, and the dmz host directly.
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40001, 81, TCP_SYN), GW_MAC));
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.18.128.2', tcp(40002, 8080, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 0);
  assert.equal(r.drops()['to-router'], 1);
  assert.equal(r.drops()['no-rule'], 1);
  assert.equal(r.counters.get('domain.wan.drop.no-rule'), 1, 'drops are counted per ingress domain too');
  assert.equal(r.counters.get('domain.lan.drop.no-rule'), 0);
  // UDP forward to a closed port: the dmz host's port unreachable reaches the client from the router's address.
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', udp(41000, 53), GW_MAC));
  const [q] = r.ports.dmz.take();
  assert.ok(q);
  const d = decode(q);
  const quoted = new Uint8Array(q.subarray(12 + 14, 12 + 14 + 28));
  r.send('dmz', ipFrame(r, 'dmz', '198.18.128.2', CLIENT, { proto: 'icmp', icmp: { kind: 'dest-unreachable', code: 3, mtu: 0, original: quoted } }, DMZ_MAC));
  const [err] = r.ports.wan.take().map(decode);
  assert.ok(err, `translated: ${JSON.stringify(r.drops())}`);
  assert.equal(err.ip.src, '198.19.0.1', 'the internal address does not leak');
  assert.equal(err.ip.dst, CLIENT);
  assert.ok(err.l4.proto === 'icmp' && err.l4.icmp.kind === 'dest-unreachable');
  void d;
});

test('reject: TCP gets a reset from the address tried, UDP an ICMP port unreachable; non-SYN is dropped', () => {
  const r = rig(withDomain('lan', { ip: [{ to: 'wan' }], default: 'reject' }));
  ready(r);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.2', tcp(33000, 80, TCP_SYN, 7777), LAN_MAC));
  const [rst] = r.ports.lan.take().map(decode);
  assert.equal(rst.ip.src, '198.18.128.2');
  assert.equal(rst.ip.dst, '198.18.0.2');
  assert.ok(rst.l4.proto === 'tcp');
  assert.equal(rst.l4.tcp.flags, TCP_RST | TCP_ACK_FLAG);
  assert.equal(rst.l4.tcp.ack, 7778);
  assert.deepEqual([rst.l4.tcp.srcPort, rst.l4.tcp.dstPort], [80, 33000]);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.2', udp(33001, 514), LAN_MAC));
  const [un] = r.ports.lan.take().map(decode);
  assert.equal(un.ip.src, '198.18.0.1');
  assert.ok(un.l4.proto === 'icmp' && un.l4.icmp.kind === 'dest-unreachable' && un.l4.icmp.code === 3);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.2', tcp(33002, 80, TCP_ACK_FLAG), LAN_MAC));
  assert.equal(r.ports.lan.take().length, 0);
  assert.deepEqual([r.drops().rejected, r.drops()['tcp-new-not-syn'], r.counters.get('tcp.reset-sent')], [2, 1, 1]);
  assert.equal(r.ports.dmz.take().length, 0);
});

test('blocklist: a blocked source is cut off, even on a tracked connection, until the entry expires', () => {
  const r = rig(withDomain('wan', { blocklist: [{ prefix: '198.51.100.0/24', 'for-s': 5 }] }));
  ready(r);
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40000, 80, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 0);
  assert.equal(r.drops().blocklisted, 1);
  r.clock.t += 5001;
  r.router.flush(); // the router reads its clock once per batch
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40000, 80, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 1, 'expired: it passes');
  const st = r.router.status() as { policy: { domains: { domain: string; blocklist: { active: boolean }[] }[] } };
  assert.equal(st.policy.domains[2].blocklist[0].active, false);
});

test('rate limits: new connections per source are capped; the bucket refills', () => {
  const r = rig(withDomain('wan', { limits: { 'new-per-source': 2, 'new-per-source-burst': 2 } }));
  ready(r);
  for (let i = 0; i < 4; i++) r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40000 + i, 80, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 2);
  assert.equal(r.drops()['rate-limited'], 2);
  // Another source has its own bucket (a different hash bucket here).
  r.send('wan', ipFrame(r, 'wan', '198.51.100.200', '198.19.0.1', tcp(40000, 80, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 1);
  r.clock.t += 500;
  r.router.flush();
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40010, 80, TCP_SYN), GW_MAC));
  assert.equal(r.ports.dmz.take().length, 1, 'one token after 500 ms at 2/s');
});

test('NAT quota per source: one host cannot take more than ports-per-source; freed ports count again', () => {
  const r = rig(withDomain('wan', { nat: { from: ['lan', 'dmz'], 'ports-per-source': 2 } }));
  ready(r);
  for (let i = 0; i < 3; i++) r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '203.0.113.9', udp(1000 + i, 53), LAN_MAC));
  assert.equal(r.ports.wan.take().length, 2);
  assert.equal(r.drops()['nat-quota-exceeded'], 1);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.3', '203.0.113.9', udp(1000, 53), LAN_MAC));
  assert.equal(r.ports.wan.take().length, 1, 'another source is not affected');
  r.clock.t += 61_000; // UDP timeout: the connections expire, their ports are freed
  r.router.tick();
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '203.0.113.9', udp(2000, 53), LAN_MAC));
  assert.equal(r.ports.wan.take().length, 1);
});

test('ICMP echo to another domain\'s router address follows that domain\'s ICMP policy', () => {
  const r = rig(THREE);
  ready(r);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.1', echo(1), LAN_MAC));
  assert.equal(r.ports.lan.take().length, 1, 'lan may reach dmz');
  r.send('dmz', ipFrame(r, 'dmz', '198.18.128.2', '198.18.0.1', echo(2), DMZ_MAC));
  assert.equal(r.ports.dmz.take().length, 0, 'dmz may not ping into lan');
  assert.equal(r.drops()['to-router-other-domain'], 1);
});

test('drop log: lines per second up to log.drops-per-s, then a count of what was left out', () => {
  const r = rig({ ...THREE, log: { 'drops-per-s': 2 } });
  ready(r);
  for (let i = 0; i < 5; i++) r.send('wan', ipFrame(r, 'wan', CLIENT, '198.18.0.2', tcp(40000 + i, 22, TCP_SYN), GW_MAC));
  assert.equal(r.log.length, 2);
  assert.equal(r.log[0], `drop no-rule domain wan tcp ${CLIENT}:40000 -> 198.18.0.2:22 flags 0x02 len 66`);
  r.clock.t += 1000;
  r.router.tick();
  assert.match(r.log[2], /3 more drops not logged/);
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.18.0.2', tcp(40009, 22, TCP_SYN), GW_MAC));
  assert.equal(r.log.length, 4);
});

test('reconfigure: the new policy applies; connections it still permits survive, the others are removed; structural changes are refused', () => {
  const r = rig(THREE);
  ready(r);
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '203.0.113.9', udp(1000, 53), LAN_MAC));
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.2', tcp(33000, 22, TCP_SYN), LAN_MAC));
  r.send('wan', ipFrame(r, 'wan', CLIENT, '198.19.0.1', tcp(40000, 80, TCP_SYN), GW_MAC));
  const [out] = r.ports.wan.take().map(decode);
  assert.equal(r.ports.dmz.take().length, 2);
  assert.equal(r.router.status().conntrack && (r.router.status().conntrack as { count: number }).count, 3);
  // New policy: lan may no longer open connections into dmz; the forward stays.
  const next = parseRouterConfig(withDomain('lan', { ip: [{ to: 'wan' }] }), 'router', SRC);
  assert.equal(r.router.reconfigure(next), undefined);
  assert.equal((r.router.status().conntrack as { count: number }).count, 2);
  assert.equal(r.counters.get('conntrack.reload-removed'), 1);
  // The surviving NAT connection still translates replies.
  assert.ok(out.l4.proto === 'udp');
  r.send('wan', ipFrame(r, 'wan', '203.0.113.9', '198.19.0.1', udp(53, out.l4.udp.srcPort), GW_MAC));
  assert.equal(r.ports.lan.take().length, 1);
  // The removed one: its next packet is new traffic, and the new policy drops it.
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', '198.18.128.2', tcp(33000, 22, TCP_ACK_FLAG), LAN_MAC));
  assert.equal(r.ports.dmz.take().length, 0);
  // A forward moved to another host removes the forwarded connection.
  const moved = parseRouterConfig(withDomain('wan', { 'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.128.3', 'host-port': 8080 }] },
    withDomain('lan', { ip: [{ to: 'wan' }] }) as typeof THREE), 'router', SRC);
  assert.equal(r.router.reconfigure(moved), undefined);
  assert.equal((r.router.status().conntrack as { count: number }).count, 1);
  // Structural changes are refused and change nothing.
  const renumbered = parseRouterConfig(withDomain('wan', { address: '198.19.0.9/24' }), 'router', SRC);
  assert.match(r.router.reconfigure(renumbered) ?? '', /domains\.wan\.address cannot change at run time/);
  const bigger = parseRouterConfig({ ...THREE, conntrack: { max: 10 } }, 'router', SRC);
  assert.match(r.router.reconfigure(bigger) ?? '', /conntrack\.max cannot change/);
  assert.equal(r.router.cfg, moved);
});
