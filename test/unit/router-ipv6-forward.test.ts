// IPv6 forwarding through the router (forward6.ts, conntrack6.ts,
// neighbors6.ts, Policy.decide6) driven with crafted frames through fake
// egress ports: neighbor resolution, forwarding with hop-limit decrement,
// connection tracking both ways, the policy for IPv6 (rules without dst for
// both families, IPv6 dst rules, defaults, reject), ICMPv6 errors and their
// rate limit, errors about tracked connections passed on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { formatIpv6, solicitedNode } from '../../src/net/addr6.ts';
import { icmp6ChecksumOk } from '../../src/net/icmpv6.ts';
import { indexRig } from './fixtures/router-rig.ts';
import {
  CONFIG6, echo, frame, GW_MAC6, HOST6, HOST_MAC6, ip6, l4Ok, neighbors6, REMOTE6, tcpSeg, udpDgram,
} from './fixtures/ipv6-frames.ts';

const CONFIG = CONFIG6;
const PATH = { file: 'gw.yaml', path: 'components[1].config' };
const HOST_MAC = HOST_MAC6;
const GW_MAC = GW_MAC6;
const HOST = HOST6;
const REMOTE = REMOTE6;

function rig(config: Record<string, unknown> = CONFIG) {
  const r = indexRig(config, { path: PATH });
  return { ...r, neighbors: (): void => neighbors6(r) };
}

test('ping -6 lan -> wan: NS for the gateway, then forwarded with hop limit - 1; the reply comes back; wan cannot start one', () => {
  const r = rig();
  r.neighbors();
  const req = frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 58, echo(7, 1));
  r.send(0, req);
  const [out] = r.ports[1].take();
  assert.ok(out, 'forwarded to wan');
  assert.deepEqual([...out.subarray(12, 18)], GW_MAC);
  assert.deepEqual([...out.subarray(18, 24)], r.macOf(1));
  assert.equal(out[26 + 7], 63, 'hop limit decremented');
  assert.deepEqual([...out.subarray(26 + 8)], [...req.subarray(26 + 8)], 'addresses and payload untouched (no NAT66)');
  assert.ok(l4Ok(out));
  // The reply.
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 58, echo(7, 1, 129), 50));
  const [back] = r.ports[0].take();
  assert.ok(back, 'reply forwarded to lan');
  assert.deepEqual([...back.subarray(12, 18)], HOST_MAC);
  assert.equal(back[26 + 7], 49);
  // A request from wan with the same id is not part of the connection (direction), and no rule lets wan in.
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 58, echo(7, 2), 50));
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.drops()['no-rule'], 1);
  // Two: the echo with id 1 of neighbors() and this one.
  assert.equal(r.counters.get('conntrack6.new'), 2);
  const st = r.router.status() as { conntrack6?: { count: number; byProto: Record<string, Record<string, number>> } };
  assert.deepEqual(st.conntrack6, { count: 2, max: 16384, byProto: { icmp6: { new: 1, replied: 1 } } });
});

test('TCP: a rule without dst covers IPv6; the handshake tracks; non-SYN new is dropped; IPv4-only rules do not apply', () => {
  const r = rig();
  r.neighbors();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x02)));
  assert.equal(r.ports[1].take().length, 1);
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 6, tcpSeg(443, 40000, 0x12)));
  assert.equal(r.ports[0].take().length, 1);
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x10)));
  assert.equal(r.ports[1].take().length, 1);
  const conns = (r.router.status() as { connections6: { proto: string; state: string; src: string; dst: string }[] }).connections6;
  assert.deepEqual(conns.filter((c) => c.proto === 'tcp').map((c) => [c.state, c.src, c.dst]), [['established', `[${HOST}]:40000`, `[${REMOTE}]:443`]]);
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40001, 80, 0x10)));
  // Port 22 is allowed only to an IPv4 destination; port 8080 no rule at all.
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40002, 22, 0x02)));
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40003, 8080, 0x02)));
  assert.equal(r.ports[1].take().length, 0);
  assert.deepEqual(r.drops(), { 'tcp-new-not-syn': 1, 'no-rule': 2 });
});

test('reject: TCP gets an IPv6 RST, UDP an ICMPv6 port unreachable (as in IPv4), both from the tried/router address', () => {
  const r = rig();
  r.neighbors();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, '2001:db8:66::5', 6, tcpSeg(40000, 25, 0x02, 0x01020304)));
  const [rst] = r.ports[0].take();
  assert.ok(rst);
  assert.deepEqual([...rst.subarray(12, 18)], HOST_MAC);
  assert.equal(formatIpv6(rst, 26 + 8), '2001:db8:66::5');
  assert.equal(formatIpv6(rst, 26 + 24), HOST);
  const t = 26 + 40;
  assert.equal(rst[t + 13], 0x14, 'RST+ACK');
  assert.equal((rst[t] << 8) | rst[t + 1], 25);
  assert.equal(((rst[t + 8] << 24) | (rst[t + 9] << 16) | (rst[t + 10] << 8) | rst[t + 11]) >>> 0, 0x01020305);
  assert.ok(l4Ok(rst));
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, '2001:db8:66::5', 17, udpDgram(5000, 9999)));
  const [err] = r.ports[0].take();
  assert.deepEqual([err[t], err[t + 1]], [1, 4], 'destination unreachable, port unreachable');
  assert.equal(formatIpv6(err, 26 + 8), '2001:db8:0:1::1');
  assert.ok(icmp6ChecksumOk(err, 26, t, (err[30] << 8) | err[31]));
  assert.equal(formatIpv6(err, t + 8 + 24), '2001:db8:66::5', 'quotes the packet');
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.drops().rejected, 2);
});

test('hop limit 1: ICMPv6 time exceeded, rate-limited by one bucket; never about an ICMPv6 error', () => {
  const r = rig();
  r.neighbors();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 17, udpDgram(5000, 53), 1));
  const [te] = r.ports[0].take();
  assert.deepEqual([te[66], te[67]], [3, 0]);
  assert.equal(formatIpv6(te, 26 + 8), '2001:db8:0:1::1');
  for (let i = 0; i < 400; i++) r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 17, udpDgram(5001 + i, 53), 1));
  const sent = r.ports[0].take().length;
  assert.ok(sent >= 190 && sent <= 200, `burst of the error bucket (${sent})`);
  assert.ok(r.counters.get('icmp6.error-rate-limited') >= 200);
  assert.equal(r.drops()['ttl-exceeded'], 401);
});

test('no route: ICMPv6 no route; an error about a tracked connection (packet too big) passes; about none it is dropped', () => {
  const noGw = structuredClone(CONFIG) as { domains: Record<string, Record<string, unknown>> };
  delete noGw.domains.wan.gateway6;
  const r0 = rig(noGw);
  r0.send(0, frame(HOST_MAC, r0.macOf(0), HOST, REMOTE, 58, echo(1, 1)));
  const [nr] = r0.ports[0].take();
  assert.deepEqual([nr[66], nr[67]], [1, 0]);
  assert.equal(r0.drops()['no-route'], 1);

  const r = rig();
  r.neighbors();
  const syn = frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x02));
  r.send(0, syn);
  r.ports[1].take();
  const quoted = [...syn.subarray(26)];
  const ptb = [2, 0, 0, 0, 0, 0, 0x05, 0x00, ...quoted];
  r.send(1, frame(GW_MAC, r.macOf(1), '2001:db8:77::1', HOST, 58, ptb));
  const [fw] = r.ports[0].take();
  assert.ok(fw, 'packet too big forwarded to the host');
  assert.equal(fw[66], 2);
  assert.equal(r.counters.get('icmp6.error-forwarded'), 1);
  const other = [...quoted];
  other[40 + 1] = 99; // another source port: no such connection
  r.send(1, frame(GW_MAC, r.macOf(1), '2001:db8:77::1', HOST, 58, [2, 0, 0, 0, 0, 0, 5, 0, ...other]));
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.drops()['icmp-error-untracked'], 1);
});

test('config: IPv6 dst in rules, host bits, and the families a rule applies to', () => {
  const cfg = parseRouterConfig(CONFIG, 'router', PATH);
  const rules = cfg.domains[0].policy.rules;
  assert.deepEqual(rules.map((x) => [x.dstPrefix, x.dstPrefix6]), [[0, 0], [-1, 48], [24, -1], [-1, 48], [-1, 48], [0, 0]]);
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', tcp: [{ dst: '2001:db8::1/32', ports: 80, action: 'drop' }] } } }, 'router', PATH),
    /components\[1\]\.config\.domains\.lan\.tcp\[0\]\.dst: expected a network address with the host bits zero: did you mean 2001:db8::\/32/);
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', tcp: [{ dst: '2001:zz::/32', ports: 80, action: 'drop' }] } } }, 'router', PATH),
    /tcp\[0\]\.dst: expected an IPv6 prefix like 2001:db8::\/32/);
  // A rule without dst and one with ::/0 contradict in IPv6.
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', tcp: [{ ports: 80, action: 'drop' }, { dst: '::/0', ports: 80, action: 'reject' }] } } }, 'router', PATH),
    /tcp\[1\]: expected rules that do not contradict each other/);
});

test('reload: IPv6 connections the new policy no longer permits are removed, the others kept', () => {
  const r = rig();
  r.neighbors();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x02)));
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 17, udpDgram(5000, 53)));
  const live = (): string[] => (r.router.status() as { connections6: { proto: string; dst: string }[] }).connections6.map((c) => `${c.proto} ${c.dst}`).sort();
  assert.deepEqual(live(), [`icmp6 [${REMOTE}]:1`, `tcp [${REMOTE}]:443`, `udp [${REMOTE}]:53`]);
  const next = structuredClone(CONFIG);
  next.domains.lan.tcp = [{ ports: [80], to: 'wan' }];
  assert.equal(r.router.reconfigure(parseRouterConfig(next, 'router', PATH)), undefined);
  assert.deepEqual(live(), [`icmp6 [${REMOTE}]:1`, `udp [${REMOTE}]:53`]);
  assert.equal(r.counters.get('conntrack.reload-removed'), 1);
});

test('GSO TCPv6 frames with matching vnet metadata are forwarded whole; mismatched metadata is dropped', () => {
  const r = rig();
  r.neighbors();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x02)));
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 6, tcpSeg(443, 40000, 0x12)));
  r.ports[0].take();
  r.ports[1].take();
  const big = frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, [...tcpSeg(40000, 443, 0x10), ...new Array<number>(1800).fill(7)]);
  big[0] = 1; // NEEDS_CSUM
  big[1] = 4; // GSO TCPV6
  big[4] = 1400 & 255; big[5] = 1400 >> 8; // gso_size (le)
  big[6] = 54; big[7] = 0; // csum_start: Ethernet + IPv6 header
  big[8] = 16; big[9] = 0; // csum_offset: TCP checksum
  r.send(0, big);
  const [out] = r.ports[1].take();
  assert.ok(out, 'forwarded');
  assert.deepEqual([...out.subarray(0, 12)], [...big.subarray(0, 12)], 'vnet header unchanged');
  assert.equal(out.length, big.length);
  const bad = big.slice();
  bad[8] = 6; // csum_offset of UDP on a TCP segment
  r.send(0, bad);
  const udpGso = big.slice();
  udpGso[1] = 3;
  r.send(0, udpGso);
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.drops()['vnet-bad-csum'], 1);
  assert.equal(r.drops()['vnet-bad-gso'], 1);
});

test('limits count an IPv6 source per /64: a host cannot escape its limit by changing its interface identifier', () => {
  const cfg = structuredClone(CONFIG) as { domains: Record<string, Record<string, unknown>> };
  cfg.domains.lan.limits = { 'new-per-source': 1, 'new-per-source-burst': 3 };
  const r = rig(cfg);
  r.neighbors(); // one new connection (the echo) spent
  for (let i = 0; i < 6; i++) r.send(0, frame(HOST_MAC, r.macOf(0), `2001:db8:0:1::${(100 + i).toString(16)}`, REMOTE, 17, udpDgram(5000 + i, 53)));
  assert.equal(r.ports[1].take().length, 2);
  assert.equal(r.drops()['rate-limited'], 4);
});

test('neighbor resolution: retries at retry-ms, failed after max-tries (waiting packets dropped), resolved again on the next packet; the queue is bounded', () => {
  const r = rig();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 58, echo(1, 1)));
  assert.equal(r.ports[1].take().length, 1, 'first NS');
  for (let i = 0; i < 4; i++) {
    r.clock.t += 1000;
    r.router.tick();
    r.router.flush();
  }
  assert.equal(r.ports[1].take().length, 2, 'two more NSs (max-tries 3), then none');
  const nb = (): unknown => (r.router.status() as { neighbors: { domain: string; ip: string; state: string }[] }).neighbors.find((n) => n.ip === 'fe80::fe');
  assert.deepEqual(nb(), { domain: 'wan', ip: 'fe80::fe', mac: null, state: 'failed', expiresInS: null, queued: 0 });
  assert.equal(r.drops()['nd-unresolved'], 1, 'the packet that waited is dropped when resolution fails');
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 58, echo(1, 2)));
  assert.equal(r.ports[1].take().length, 1, 'resolving again');
  assert.deepEqual(nb(), { domain: 'wan', ip: 'fe80::fe', mac: null, state: 'resolving', expiresInS: null, queued: 1 });
  assert.equal(r.counters.get('nd6.ns-sent'), 4);
  // arp.max-pending (32) packets wait per neighbor; more are dropped.
  for (let i = 0; i < 40; i++) r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 58, echo(1, 3 + i)));
  assert.equal(r.drops()['arp-pending-full'], 9);
  assert.deepEqual(nb(), { domain: 'wan', ip: 'fe80::fe', mac: null, state: 'resolving', expiresInS: null, queued: 32 });
  // A session reset drops them (and frees the pool).
  r.router.resetDomain(1);
  assert.equal(r.drops()['nd-unresolved'], 1 + 32);
});

test('packet too big: larger than the egress mtu gets ICMPv6 packet too big with the MTU, never fragmented; GSO by segment size', () => {
  const cfg = structuredClone(CONFIG) as { domains: Record<string, Record<string, unknown>> };
  cfg.domains.wan.mtu = 1280;
  const r = rig(cfg);
  r.neighbors();
  const big = frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 17, [...udpDgram(5000, 53).slice(0, 4), 0x05, 0x34, 0, 0, ...new Array<number>(1332 - 8 - 4).fill(1), 1, 2, 3, 4]);
  assert.equal(big.length - 26, 40 + 1332);
  r.send(0, big);
  const [ptb] = r.ports[0].take();
  assert.ok(ptb, 'packet too big');
  const t = 26 + 40;
  assert.deepEqual([ptb[t], ptb[t + 1]], [2, 0]);
  assert.equal(((ptb[t + 4] << 24) | (ptb[t + 5] << 16) | (ptb[t + 6] << 8) | ptb[t + 7]) >>> 0, 1280);
  assert.ok(ptb.length - 26 <= 1280, 'the error fits the minimum MTU');
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.drops()['ip6-too-big'], 1);
  // 1280 exactly passes.
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 17, [...udpDgram(5001, 53).slice(0, 4), 0x04, 0xd8, 0, 0, ...new Array<number>(1240 - 8).fill(1)]));
  assert.equal(r.ports[1].take().length, 1);
  // GSO: a 64 KB super-frame of 1220-byte segments passes, of 1400-byte segments does not.
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, tcpSeg(40000, 443, 0x02)));
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 6, tcpSeg(443, 40000, 0x12)));
  r.ports[0].take();
  r.ports[1].take();
  const gso = (segment: number): Uint8Array => {
    const f = frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 6, [...tcpSeg(40000, 443, 0x10), ...new Array<number>(1900).fill(7)]);
    f[0] = 1; f[1] = 4; f[4] = segment & 255; f[5] = segment >> 8; f[6] = 54; f[8] = 16;
    return f;
  };
  r.send(0, gso(1220));
  assert.equal(r.ports[1].take().length, 1);
  r.send(0, gso(1400));
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.ports[0].take().length, 1);
  assert.equal(r.drops()['ip6-too-big'], 2);
  // A domain with IPv6 carries at least 1280 bytes.
  cfg.domains.wan.mtu = 1000;
  assert.throws(() => parseRouterConfig(cfg, 'router', PATH), /components\[1\]\.config\.domains\.wan\.mtu: .*1280/);
});

test('blocklist: IPv6 entries drop their sources on arrival (new, tracked, to the router), expire, and show in status', () => {
  const cfg = structuredClone(CONFIG) as { domains: Record<string, Record<string, unknown>> };
  cfg.domains.wan.blocklist = ['2001:db8:77::/48', { prefix: '2001:db8:66::5', 'for-s': 10 }, '203.0.113.7'];
  cfg.domains.wan.icmp = [{ to: 'lan' }];
  const r = rig(cfg);
  r.neighbors();
  // A lan connection to a blocked prefix: the replies from it are dropped as blocklisted.
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, REMOTE, 58, echo(9, 1)));
  assert.equal(r.ports[1].take().length, 1);
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, HOST, 58, echo(9, 1, 129)));
  r.send(1, frame(GW_MAC, r.macOf(1), REMOTE, '2001:db8:ff::1', 58, echo(9, 1)));
  r.send(1, frame(GW_MAC, r.macOf(1), '2001:db8:66::5', HOST, 58, echo(9, 2)));
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.drops().blocklisted, 3);
  // The for-s entry expires.
  r.clock.t += 11_000;
  r.router.flush();
  r.send(1, frame(GW_MAC, r.macOf(1), '2001:db8:66::5', HOST, 58, echo(9, 3)));
  assert.equal(r.drops().blocklisted, 3);
  const pol = (r.router.status() as { policy: { domains: { domain: string; blocklist: { prefix: string; active: boolean }[] }[] } }).policy;
  assert.deepEqual(pol.domains.find((d) => d.domain === 'wan')!.blocklist.map((b) => [b.prefix, b.active]),
    [['203.0.113.7/32', true], ['2001:db8:77::/48', true], ['2001:db8:66::5/128', false]]);
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', blocklist: ['2001:db8::1/32'] } } }, 'router', PATH),
    /domains\.lan\.blocklist\[0\]: expected a network address with the host bits zero/);
});

test('conntrack.per-source counts an IPv6 source per /64: other interface identifiers do not get more connections', () => {
  const cfg = structuredClone(CONFIG) as Record<string, unknown>;
  cfg.conntrack = { 'per-source': 3 };
  const r = rig(cfg);
  r.neighbors(); // one connection (the echo) from 2001:db8:0:1::a
  for (let i = 0; i < 4; i++) r.send(0, frame(HOST_MAC, r.macOf(0), `2001:db8:0:1::${(0x100 + i).toString(16)}`, REMOTE, 17, udpDgram(6000 + i, 53)));
  assert.equal(r.ports[1].take().length, 2);
  assert.equal(r.drops()['conntrack-source-limit'], 2);
  assert.equal((r.router.status() as { conntrack6: { count: number } }).conntrack6.count, 3);
});

test('the router\'s address6 in another domain: echo answered only from a domain that may open connections there (as for IPv4); nothing else to it is forwarded', () => {
  const r = rig();
  r.neighbors();
  const WAN_ADDR = '2001:db8:ff::1';
  // lan may send echo into the wan (icmp rule): answered from the wan address.
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, WAN_ADDR, 58, echo(7, 1)));
  const [reply] = r.ports[0].take();
  assert.ok(reply, 'an echo reply');
  assert.equal(reply[26 + 40], 129);
  assert.equal(formatIpv6(reply, 26 + 8), WAN_ADDR);
  assert.equal(formatIpv6(reply, 26 + 24), HOST);
  assert.ok(icmp6ChecksumOk(reply, 26, 26 + 40, (reply[30] << 8) | reply[31]));
  // TCP to it (port 80 is accepted into the wan): not forwarded, no connection, no neighbor lookup.
  const newConns = r.counters.get('conntrack6.new');
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, WAN_ADDR, 6, tcpSeg(40001, 80, 0x02)));
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.counters.get('conntrack6.new'), newConns);
  assert.equal(r.drops()['to-router-other-domain'], 1);
  // From the wan (no rule into the lan) an echo to the lan address is not answered.
  r.send(1, frame(GW_MAC, r.macOf(1), '2001:db8:ff::7', '2001:db8:0:1::1', 58, echo(8, 1)));
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.drops()['to-router-other-domain'], 2);
});

test('routes6: a routed prefix goes to its next hop in its domain (NS for via), replies from it pass anti-spoofing, other sources do not', () => {
  const r = rig({
    domains: {
      lan: { address: '198.18.0.1/24', address6: '2001:db8:0:1::1/64', icmp: [{ to: 'tun' }] },
      tun: {
        address: '198.18.255.1/30', address6: '2001:db8:ff:1::1/64',
        routes6: [{ prefix: '2001:db8:64::/64', via: '2001:db8:ff:1::2' }], forward: [{ to: 'lan' }],
      },
    },
  });
  const own = ip6('2001:db8:0:1::1');
  r.send(0, frame(HOST_MAC, [0x33, 0x33, 0xff, 0, 0, 1], HOST, formatIpv6(solicitedNode(own)), 58,
    [135, 0, 0, 0, 0, 0, 0, 0, ...own, 1, 1, ...HOST_MAC], 255));
  r.ports[0].take();
  r.send(0, frame(HOST_MAC, r.macOf(0), HOST, '2001:db8:64::9', 58, echo(7, 1)));
  const [ns] = r.ports[1].take();
  assert.ok(ns, 'an NS for the route\'s next hop');
  assert.equal(formatIpv6(ns, 26 + 40 + 8), '2001:db8:ff:1::2');
  const TUN_MAC = [2, 0, 0, 0, 0, 0x77];
  r.send(1, frame(TUN_MAC, r.macOf(1), '2001:db8:ff:1::2', '2001:db8:ff:1::1', 58,
    [136, 0, 0, 0, 0x60, 0, 0, 0, ...ip6('2001:db8:ff:1::2'), 2, 1, ...TUN_MAC], 255));
  const [out] = r.ports[1].take();
  assert.ok(out, 'the echo leaves to the next hop');
  assert.deepEqual([...out.subarray(12, 18)], TUN_MAC);
  assert.equal(formatIpv6(out, 26 + 24), '2001:db8:64::9');
  // The reply from the routed prefix is accepted and reaches the host.
  r.send(1, frame(TUN_MAC, r.macOf(1), '2001:db8:64::9', HOST, 58, echo(7, 1, 129)));
  const [back] = r.ports[0].take();
  assert.ok(back, 'the reply comes back');
  assert.equal(formatIpv6(back, 26 + 8), '2001:db8:64::9');
  // A source neither in the domain's prefix nor in its routes is spoofed.
  r.send(1, frame(TUN_MAC, r.macOf(1), '2001:db8:65::9', HOST, 58, echo(7, 2, 129)));
  assert.equal(r.ports[0].take().length, 0);
  assert.equal(r.drops()['ip6-spoofed-source'], 1);
  assert.deepEqual((r.router.status().domains6 as { routes6: string[] }[])[1].routes6, ['2001:db8:64::/64 via 2001:db8:ff:1::2']);
  const bad = (routes6: unknown, re: RegExp) => assert.throws(() => parseRouterConfig({
    domains: { lan: { address: '198.18.0.1/24', address6: '2001:db8:0:1::1/64' }, tun: { address: '198.18.255.1/30', address6: '2001:db8:ff:1::1/64', routes6 } },
  }, 'r', PATH), re);
  bad([{ prefix: '2001:db8:64::1/64', via: '2001:db8:ff:1::2' }], /domains\.tun\.routes6\[0\]\.prefix: expected a network address \(2001:db8:64::\/64\)/);
  bad([{ prefix: '2001:db8::/48', via: '2001:db8:ff:1::2' }], /routes6\[0\]\.prefix: expected a prefix that does not overlap domain "lan"/);
  bad([{ prefix: '2001:db8:64::/64', via: '2001:db8:0:1::5' }], /routes6\[0\]\.via: expected a link-local address or a host address inside 2001:db8:ff:1::\/64/);
  bad([{ prefix: '2001:db8:64::/48', via: '2001:db8:ff:1::2' }, { prefix: '2001:db8:64::/64', via: 'fe80::2' }], /routes6\[1\]\.prefix: expected a prefix that does not overlap this domain's route 2001:db8:64::\/48/);
  bad([{ prefix: 'nope', via: '2001:db8:ff:1::2' }], /routes6\[0\]\.prefix: expected an IPv6 prefix/);
  assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', routes6: [] } } }, 'r', PATH), /domains\.lan\.routes6: expected no "routes6" without "address6"/);
});

test('reload: routes and routes6 cannot change at run time (the routing tables are built once)', () => {
  const base = (routes6: unknown[], routes: unknown[] = []) => ({
    domains: {
      lan: { address: '198.18.0.1/24', address6: '2001:db8:0:1::1/64' },
      tun: { address: '198.18.255.1/30', address6: '2001:db8:ff:1::1/64', routes, routes6 },
    },
  });
  const r = rig(base([{ prefix: '2001:db8:64::/64', via: '2001:db8:ff:1::2' }]));
  const why = r.router.reconfigure(parseRouterConfig(base([{ prefix: '2001:db8:65::/64', via: '2001:db8:ff:1::2' }]), 'router', PATH));
  assert.match(why ?? '', /domains\.tun\.routes \/ routes6 cannot change at run time/);
  const why4 = r.router.reconfigure(parseRouterConfig(base([{ prefix: '2001:db8:64::/64', via: '2001:db8:ff:1::2' }], [{ prefix: '198.18.64.0/24', via: '198.18.255.2' }]), 'router', PATH));
  assert.match(why4 ?? '', /routes \/ routes6 cannot change/);
  assert.equal(r.router.reconfigure(parseRouterConfig(base([{ prefix: '2001:db8:64::/64', via: '2001:db8:ff:1::2' }]), 'router', PATH)), undefined);
});
