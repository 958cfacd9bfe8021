// The router's logic driven with crafted frames through fake egress ports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { DROP_REASONS, Router } from '../../src/components/router/router.ts';
import { formatMac, parseIpv4 } from '../../src/net/addr.ts';
import { fold, partialChecksum4, sum } from '../../src/net/checksum.ts';
import { decodeFrame, encodeFrame, type Frame, type L4 } from '../../src/net/frame.ts';
import { TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/net/tcp.ts';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 } from '../../src/net/vnet.ts';
import { FakePort, type IndexRig, indexRig } from './fixtures/router-rig.ts';

// ---- harness -------------------------------------------------------------------

const LAN_HOST = '02:00:00:00:00:0a';
const LAN_HOST2 = '02:00:00:00:00:0b';
const WAN_GW = '02:00:00:00:00:fe';
// Host addresses are chosen so no address change is checksum-neutral (198.18.0.2 -> 198.19.0.1 would be:
// c612+0002 = c613+0001), or tests could not tell a missing checksum update.
const REMOTE = '203.0.113.9';

const BASE_CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' },
  },
};

/** The shared rig (fixtures/router-rig.ts) with the two domains by name: 0 lan, 1 wan. */
interface Rig extends IndexRig {
  lan: FakePort;
  wan: FakePort;
  lanMac: string;
  wanMac: string;
}

function rig(config: Record<string, unknown> = BASE_CONFIG, portOpts: { slots?: number; slotSize?: number } = {}): Rig {
  const r = indexRig(config, portOpts);
  return {
    ...r, lan: r.ports[0], wan: r.ports[1],
    lanMac: formatMac(r.cfg.domains[0].mac),
    wanMac: formatMac(r.cfg.domains[1].mac),
  };
}

function arpFrame(op: 'request' | 'reply', srcMac: string, dstMac: string, senderIp: string, targetIp: string, targetMac = '00:00:00:00:00:00'): Uint8Array {
  return encodeFrame({ kind: 'arp', eth: { dst: dstMac, src: srcMac }, arp: { op, senderMac: srcMac, senderIp, targetMac, targetIp } });
}

function ipFrame(srcMac: string, dstMac: string, src: string, dst: string, l4: L4, ip: Partial<Extract<Frame, { kind: 'ipv4' }>['ip']> = {}, vnet?: Frame['vnet']): Uint8Array {
  return encodeFrame({ kind: 'ipv4', vnet, eth: { dst: dstMac, src: srcMac }, ip: { src, dst, ...ip }, l4 });
}

const udp = (srcPort: number, dstPort: number, text = 'ping'): L4 => ({ proto: 'udp', udp: { srcPort, dstPort, payload: new TextEncoder().encode(text) } });
const tcp = (srcPort: number, dstPort: number, flags: number, payload = new Uint8Array(0)): L4 => ({ proto: 'tcp', tcp: { srcPort, dstPort, seq: 1000, ack: 0, flags, window: 65535, payload } });
const echo = (id: number, seq = 1): L4 => ({ proto: 'icmp', icmp: { kind: 'echo-request', id, seq, data: new TextEncoder().encode('abcdefgh') } });

function decode(pkt: Uint8Array): Extract<Frame, { kind: 'ipv4' }> {
  const d = decodeFrame(pkt);
  assert.ok(d.ok, `decodes with valid checksums: ${d.ok ? '' : d.error}`);
  assert.equal(d.value.kind, 'ipv4');
  return d.value as Extract<Frame, { kind: 'ipv4' }>;
}

/** Reference: full L4 checksum over pseudo header + segment must sum to 0xffff. */
function l4ChecksumOk(pkt: Uint8Array): boolean {
  const ip = 26;
  const ihl = (pkt[ip] & 15) * 4;
  const total = (pkt[ip + 2] << 8) | pkt[ip + 3];
  const proto = pkt[ip + 9];
  let s = 0;
  for (let i = 12; i < 20; i += 2) s += (pkt[ip + i] << 8) | pkt[ip + i + 1];
  s += proto + (total - ihl);
  for (let i = 0; i < total - ihl; i += 2) s += (pkt[ip + ihl + i] << 8) | (i + 1 < total - ihl ? pkt[ip + ihl + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}
function ipHeaderOk(pkt: Uint8Array, ip = 26): boolean {
  let s = 0;
  const ihl = (pkt[ip] & 15) * 4;
  for (let i = 0; i < ihl; i += 2) s += (pkt[ip + i] << 8) | pkt[ip + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

/** Teach the router the lan host's MAC (it asks for the router) and the wan gateway's (the router asks). */
function learnNeighbours(r: Rig): void {
  r.send(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  r.lan.take();
  r.send(1, arpFrame('reply', WAN_GW, r.wanMac, '198.19.0.254', '198.19.0.1', r.wanMac));
  r.wan.take();
}

// ---- ARP ---------------------------------------------------------------------------

test('ARP: answers a request for its own address, learns the asker, ignores others', () => {
  const r = rig();
  r.send(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  const out = r.lan.take();
  assert.equal(out.length, 1);
  const d = decodeFrame(out[0]);
  assert.ok(d.ok && d.value.kind === 'arp');
  assert.deepEqual(d.value.eth, { dst: LAN_HOST, src: r.lanMac });
  assert.deepEqual(d.value.arp, { op: 'reply', senderMac: r.lanMac, senderIp: '198.18.0.1', targetMac: LAN_HOST, targetIp: '198.18.0.23' });
  assert.deepEqual([...out[0].subarray(0, 12)], new Array(12).fill(0), 'own frames carry a zero vnet header');
  assert.equal(out[0].length, 12 + 60, 'padded to the Ethernet minimum');
  assert.equal(r.lan.flushes, 1);
  const arp = (r.router.status().arp as { ip: string; mac: string }[]);
  assert.deepEqual(arp.map((e) => [e.ip, e.mac]), [['198.18.0.23', LAN_HOST]]);
  // For another address: no answer, counted.
  r.send(0, arpFrame('request', LAN_HOST2, 'ff:ff:ff:ff:ff:ff', '198.18.0.3', '198.18.0.7'));
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.drops()['arp-not-for-us'], 1);
  // The wan address is not answered on the lan.
  r.send(0, arpFrame('request', LAN_HOST2, 'ff:ff:ff:ff:ff:ff', '198.18.0.3', '198.19.0.1'));
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.drops()['arp-not-for-us'], 2);
  // A sender outside the domain is not learned.
  r.send(0, arpFrame('request', LAN_HOST2, 'ff:ff:ff:ff:ff:ff', '10.0.0.3', '198.18.0.1'));
  assert.equal(r.drops()['arp-bad-sender'], 1);
  // Someone claiming the router's address.
  r.send(0, arpFrame('request', LAN_HOST2, 'ff:ff:ff:ff:ff:ff', '198.18.0.1', '198.18.0.1'));
  assert.equal(r.drops()['arp-address-conflict'], 1);
});

test('ARP: resolves the next hop, queues while resolving, releases on reply; bounded queue', () => {
  const r = rig({ ...BASE_CONFIG, arp: { 'max-pending': 2 } });
  r.send(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  r.lan.take();
  for (let i = 0; i < 3; i++) r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5000 + i, 53)));
  // One ARP request for the gateway, not one per packet.
  const reqs = r.wan.take();
  assert.equal(reqs.length, 1);
  const q = decodeFrame(reqs[0]);
  assert.ok(q.ok && q.value.kind === 'arp');
  assert.deepEqual(q.value.eth, { dst: 'ff:ff:ff:ff:ff:ff', src: r.wanMac });
  assert.equal(q.value.arp.op, 'request');
  assert.equal(q.value.arp.targetIp, '198.19.0.254');
  assert.equal(q.value.arp.senderIp, '198.19.0.1');
  assert.equal(r.drops()['arp-pending-full'], 1);
  // The reply releases the two queued packets, translated.
  r.send(1, arpFrame('reply', WAN_GW, r.wanMac, '198.19.0.254', '198.19.0.1', r.wanMac));
  const out = r.wan.take();
  assert.equal(out.length, 2);
  for (const [i, pkt] of out.entries()) {
    const f = decode(pkt);
    assert.deepEqual(f.eth, { dst: WAN_GW, src: r.wanMac });
    assert.equal(f.ip.src, '198.19.0.1');
    assert.equal(f.ip.dst, REMOTE);
    assert.equal(f.ip.ttl, 63);
    assert.ok(f.l4.proto === 'udp');
    assert.equal(f.l4.udp.dstPort, 53);
    assert.ok(f.l4.udp.srcPort >= 49152, 'NAT port from the range');
    assert.equal(new TextDecoder().decode(f.l4.udp.payload), 'ping', `packet ${i}`);
  }
  assert.equal(r.counters.get('arp.released'), 2);
  // Later packets go straight out.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5000, 53)));
  assert.equal(r.wan.take().length, 1);
});

test('ARP: retries, then drops the waiting packets as unresolved; cache entries expire', () => {
  const r = rig({ ...BASE_CONFIG, arp: { 'retry-ms': 1000, 'max-tries': 3, 'timeout-s': 300 } });
  r.send(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  r.lan.take();
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5000, 53)));
  assert.equal(r.wan.take().length, 1);
  for (let i = 0; i < 2; i++) {
    r.clock.t += 1000;
    r.router.tick();
    r.router.flush();
    assert.equal(r.wan.take().length, 1, `retry ${i + 1}`);
  }
  r.clock.t += 1000;
  r.router.tick();
  assert.equal(r.wan.take().length, 0);
  assert.equal(r.drops()['arp-unresolved'], 1);
  assert.equal((r.router.status().arp as unknown[]).length, 1, 'only the lan host is left');
  // A learned entry: after the timeout the next packet still goes out (old MAC) while a refresh is sent.
  learnNeighbours(r);
  r.clock.t += 301_000;
  r.router.tick();
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5001, 53)));
  const out = r.wan.take();
  assert.equal(out.length, 2, 'refresh request + the packet');
  const kinds = out.map((p) => { const d = decodeFrame(p); return d.ok ? d.value.kind : 'bad'; }).sort();
  assert.deepEqual(kinds, ['arp', 'ipv4']);
  // No answer to the refresh: the entry goes away after max-tries.
  for (let i = 0; i < 3; i++) {
    r.clock.t += 1000;
    r.router.tick();
  }
  const left = (r.router.status().arp as { ip: string }[]).map((e) => e.ip);
  assert.ok(!left.includes('198.19.0.254'));
});

// ---- local delivery ------------------------------------------------------------------

test('ICMP echo to the router address is answered; other traffic to it is dropped', () => {
  const r = rig();
  learnNeighbours(r);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', '198.18.0.1', echo(0x4242, 7), { ttl: 5 }));
  const out = r.lan.take();
  assert.equal(out.length, 1);
  const f = decode(out[0]);
  assert.deepEqual(f.eth, { dst: LAN_HOST, src: r.lanMac });
  assert.equal(f.ip.src, '198.18.0.1');
  assert.equal(f.ip.dst, '198.18.0.23');
  assert.equal(f.ip.ttl, 64);
  assert.ok(f.l4.proto === 'icmp' && f.l4.icmp.kind === 'echo-reply');
  assert.equal(f.l4.icmp.id, 0x4242);
  assert.equal(f.l4.icmp.seq, 7);
  assert.equal(new TextDecoder().decode(f.l4.icmp.data), 'abcdefgh');
  assert.deepEqual([...out[0].subarray(0, 12)], new Array(12).fill(0));
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', '198.18.0.1', udp(1234, 53)));
  assert.equal(r.drops()['to-router'], 1);
  // lan may open connections into wan, so the wan address answers lan's pings, from that address.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', '198.19.0.1', echo(1)));
  const other = r.lan.take();
  assert.equal(other.length, 1);
  assert.equal(decode(other[0]).ip.src, '198.19.0.1');
  // wan may not open connections into lan: the lan address is not reachable from wan.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.18.0.1', echo(2)));
  assert.equal(r.wan.take().length, 0);
  assert.equal(r.drops()['to-router-other-domain'], 1);
  // From the wan side the wan address answers too.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', echo(9)));
  const w = r.wan.take();
  assert.equal(w.length, 1);
  assert.equal(decode(w[0]).ip.dst, REMOTE);
  assert.equal(decode(w[0]).eth.dst, WAN_GW);
});

// ---- TTL ---------------------------------------------------------------------------------

test('TTL expiry: ICMP time exceeded from the ingress address, quoting header + 8 bytes', () => {
  const r = rig();
  learnNeighbours(r);
  const pkt = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5555, 33434, 'traceroute-payload'), { ttl: 1, id: 0x1234 });
  r.send(0, pkt);
  assert.equal(r.wan.take().length, 0, 'not forwarded');
  const out = r.lan.take();
  assert.equal(out.length, 1);
  const f = decode(out[0]);
  assert.deepEqual(f.eth, { dst: LAN_HOST, src: r.lanMac });
  assert.equal(f.ip.src, '198.18.0.1');
  assert.equal(f.ip.dst, '198.18.0.23');
  assert.ok(f.l4.proto === 'icmp' && f.l4.icmp.kind === 'time-exceeded');
  assert.equal(f.l4.icmp.code, 0);
  assert.deepEqual(f.l4.icmp.original, pkt.subarray(26, 26 + 28), 'original IP header + 8 bytes, as received');
  assert.equal(r.drops()['ttl-exceeded'], 1);
  assert.equal(r.router.status().connections instanceof Array ? (r.router.status().connections as unknown[]).length : -1, 0, 'no connection for an expired packet');
  // Never an error about an ICMP error.
  const err = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'icmp', icmp: { kind: 'time-exceeded', code: 0, original: pkt.subarray(26, 54) } }, { ttl: 1 });
  r.send(0, err);
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.drops()['icmp-error-untracked'], 1);
});

test('no route: ICMP net unreachable, counted', () => {
  const r = rig({ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'dmz' }] }, dmz: { address: '198.20.0.1/24' } } });
  r.send(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  r.lan.take();
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(1, 2)));
  const out = r.lan.take();
  assert.equal(out.length, 1);
  const f = decode(out[0]);
  assert.ok(f.l4.proto === 'icmp' && f.l4.icmp.kind === 'dest-unreachable');
  assert.equal(f.l4.icmp.code, 0);
  assert.equal(r.drops()['no-route'], 1);
});

// ---- NAT and connection tracking ------------------------------------------------------

test('NAT: TCP out and back, every checksum verified by full recomputation; state machine', () => {
  const r = rig();
  learnNeighbours(r);
  const payload = new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n');
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_SYN), { ttl: 64 }));
  const [syn] = r.wan.take();
  assert.ok(syn);
  const s = decode(syn);
  assert.ok(ipHeaderOk(syn) && l4ChecksumOk(syn));
  assert.deepEqual(s.eth, { dst: WAN_GW, src: r.wanMac });
  assert.equal(s.ip.src, '198.19.0.1');
  assert.equal(s.ip.dst, REMOTE);
  assert.equal(s.ip.ttl, 63);
  assert.ok(s.l4.proto === 'tcp');
  const natPort = s.l4.tcp.srcPort;
  assert.ok(natPort >= 49152 && natPort <= 65535);
  assert.equal(s.l4.tcp.dstPort, 80);
  const conns = () => r.router.status().connections as { proto: string; state: string; src: string; nat: string }[];
  assert.deepEqual(conns().map((c) => [c.proto, c.state, c.src, c.nat]), [['tcp', 'syn-sent', '198.18.0.23:40000', `198.19.0.1:${natPort}`]]);
  // SYN-ACK from the remote comes back to the lan host.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_SYN | TCP_ACK_FLAG), { ttl: 50 }));
  const [synack] = r.lan.take();
  assert.ok(synack);
  const a = decode(synack);
  assert.ok(ipHeaderOk(synack) && l4ChecksumOk(synack));
  assert.deepEqual(a.eth, { dst: LAN_HOST, src: r.lanMac });
  assert.equal(a.ip.src, REMOTE);
  assert.equal(a.ip.dst, '198.18.0.23');
  assert.equal(a.ip.ttl, 49);
  assert.ok(a.l4.proto === 'tcp');
  assert.equal(a.l4.tcp.srcPort, 80);
  assert.equal(a.l4.tcp.dstPort, 40000);
  assert.equal(conns()[0].state, 'established');
  // Data with payload, odd length.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_ACK_FLAG, payload)));
  const [data] = r.wan.take();
  assert.ok(ipHeaderOk(data) && l4ChecksumOk(data));
  const dd = decode(data);
  assert.ok(dd.l4.proto === 'tcp');
  assert.deepEqual(dd.l4.tcp.payload, payload);
  // FIN both ways, then closed.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_FIN | TCP_ACK_FLAG)));
  assert.equal(conns()[0].state, 'closing');
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_FIN | TCP_ACK_FLAG)));
  assert.equal(conns()[0].state, 'closed');
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_ACK_FLAG)));
  assert.equal(r.wan.take().length, 2, 'the FIN and the last ACK still pass');
  // A new SYN reuses the closed connection (same NAT port).
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_SYN)));
  const [syn2] = r.wan.take();
  const s2 = decode(syn2);
  assert.ok(s2.l4.proto === 'tcp');
  assert.equal(s2.l4.tcp.srcPort, natPort);
  assert.equal(conns()[0].state, 'syn-sent');
  // RST closes.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_RST)));
  assert.equal(conns()[0].state, 'closed');
  assert.equal(r.lan.take().length, 2);
  // Mid-stream packets without a connection are not accepted as new.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40001, 80, TCP_ACK_FLAG)));
  assert.equal(r.drops()['tcp-new-not-syn'], 1);
});

test('NAT: UDP and ICMP echo (identifier translation) out and back', () => {
  const r = rig();
  learnNeighbours(r);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5353, 53, 'query?')));
  const [q] = r.wan.take();
  assert.ok(ipHeaderOk(q) && l4ChecksumOk(q));
  const qf = decode(q);
  assert.ok(qf.l4.proto === 'udp');
  const nat = qf.l4.udp.srcPort;
  assert.equal(qf.ip.src, '198.19.0.1');
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', udp(53, nat, 'answer!')));
  const [a] = r.lan.take();
  assert.ok(ipHeaderOk(a) && l4ChecksumOk(a));
  const af = decode(a);
  assert.ok(af.l4.proto === 'udp');
  assert.equal(af.ip.dst, '198.18.0.23');
  assert.equal(af.l4.udp.dstPort, 5353);
  // UDP without checksum stays without.
  const noCsum = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'udp', udp: { srcPort: 7000, dstPort: 7, payload: new Uint8Array(5), checksum: 0 } });
  r.send(0, noCsum);
  const [nc] = r.wan.take();
  assert.equal((nc[26 + 20 + 6] << 8) | nc[26 + 20 + 7], 0);
  assert.ok(ipHeaderOk(nc));
  // ICMP echo: the identifier is translated.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, echo(0x0101, 3)));
  const [e] = r.wan.take();
  const ef = decode(e);
  assert.ok(ef.l4.proto === 'icmp' && ef.l4.icmp.kind === 'echo-request');
  const natId = ef.l4.icmp.id;
  assert.ok(natId >= 49152);
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', { proto: 'icmp', icmp: { kind: 'echo-reply', id: natId, seq: 3, data: new TextEncoder().encode('abcdefgh') } }));
  const [er] = r.lan.take();
  const erf = decode(er);
  assert.ok(erf.l4.proto === 'icmp' && erf.l4.icmp.kind === 'echo-reply');
  assert.equal(erf.l4.icmp.id, 0x0101);
  assert.equal(erf.ip.dst, '198.18.0.23');
  // An echo *request* from the remote with that id is for the router, not the tracked ping.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', echo(natId)));
  assert.equal(r.lan.take().length, 0);
  const w = r.wan.take();
  assert.equal(w.length, 1);
  assert.equal(decode(w[0]).ip.dst, REMOTE);
  const summary = (r.router.status().conntrack as { byProto: Record<string, Record<string, number>> }).byProto;
  assert.deepEqual(summary, { udp: { replied: 1, new: 1 }, icmp: { replied: 1 } });
});

test('policy: new connections from wan are dropped (no-rule); replies of tracked ones pass', () => {
  const r = rig();
  learnNeighbours(r);
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.18.0.23', tcp(1234, 22, TCP_SYN)));
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.drops()['no-rule'], 1);
  // To the NAT address on a port nobody opened: for the router, dropped.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', tcp(1234, 50000, TCP_SYN)));
  assert.equal(r.drops()['to-router'], 1);
  // An untracked ICMP error
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', { proto: 'icmp', icmp: { kind: 'dest-unreachable', code: 3, mtu: 0,
    original: ipFrame(WAN_GW, r.wanMac, '198.19.0.1', REMOTE, udp(1, 2)).subarray(26, 54) } }));
  assert.equal(r.drops()['icmp-error-untracked'], 1);
  assert.equal(r.lan.take().length, 0);
});

test('conntrack: connections time out, their NAT port is freed, late replies are dropped', () => {
  const r = rig({ ...BASE_CONFIG, conntrack: { 'udp-s': 60 } });
  learnNeighbours(r);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5353, 53)));
  const qf = decode(r.wan.take()[0]);
  assert.ok(qf.l4.proto === 'udp');
  const nat = qf.l4.udp.srcPort;
  r.clock.t += 59_000;
  r.router.tick();
  assert.equal((r.router.status().conntrack as { count: number }).count, 1);
  r.clock.t += 2_000;
  r.router.tick();
  assert.equal((r.router.status().conntrack as { count: number }).count, 0);
  assert.equal(r.counters.get('conntrack.expired'), 1);
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', udp(53, nat)));
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.drops()['to-router'], 1);
  // Expiry noticed at lookup too (no tick in between).
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(5354, 53)));
  const nat2 = decode(r.wan.take()[0]);
  assert.ok(nat2.l4.proto === 'udp');
  r.clock.t += 61_000;
  r.router.flush(); // the clock advances per batch
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', udp(53, nat2.l4.udp.srcPort)));
  assert.equal(r.lan.take().length, 0);
  assert.equal(r.counters.get('conntrack.expired'), 2);
});

test('NAT ports: allocation per address from the range, exhaustion counted', () => {
  const r = rig({ ...BASE_CONFIG, 'nat-ports': '60000-60001' });
  learnNeighbours(r);
  const ports = new Set<number>();
  // Three sources: the default per-source quota (a quarter of the range, here 1) is not what this tests.
  for (let i = 0; i < 3; i++) {
    r.send(0, ipFrame(LAN_HOST, r.lanMac, `198.18.0.${23 + i}`, REMOTE, udp(1000 + i, 53)));
    for (const p of r.wan.take()) {
      const f = decode(p);
      assert.ok(f.l4.proto === 'udp');
      ports.add(f.l4.udp.srcPort);
    }
  }
  assert.deepEqual([...ports].sort(), [60000, 60001]);
  assert.equal(r.drops()['nat-ports-exhausted'], 1);
});

// ---- offloads --------------------------------------------------------------------------

test('NEEDS_CSUM: the partial checksum gets the new address only; GSO header preserved', () => {
  const r = rig({ ...BASE_CONFIG }, { slotSize: 65536 + 64, slots: 8 });
  learnNeighbours(r);
  const payload = new Uint8Array(3000);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  const vnet = { flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, gsoSize: 1448, hdrLen: 14 + 20 + 20 };
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 443, TCP_SYN), {}, { flags: VNET_F_NEEDS_CSUM }));
  const [syn] = r.wan.take();
  const natPort = (syn[26 + 20] << 8) | syn[26 + 21];
  const l4Len = 20;
  assert.equal((syn[26 + 20 + 16] << 8) | syn[26 + 20 + 17], partialChecksum4(parseIpv4('198.19.0.1') as number, parseIpv4(REMOTE) as number, 6, l4Len),
    'partial field = pseudo-header sum of the new addresses (ports not folded in)');
  assert.ok(ipHeaderOk(syn));
  const big = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 443, TCP_ACK_FLAG, payload), {}, vnet);
  r.send(0, big);
  const [out] = r.wan.take();
  assert.equal(out.length, big.length);
  assert.deepEqual(out.subarray(0, 12), big.subarray(0, 12), 'vnet header forwarded unchanged');
  assert.equal((out[26 + 20 + 16] << 8) | out[26 + 20 + 17], partialChecksum4(parseIpv4('198.19.0.1') as number, parseIpv4(REMOTE) as number, 6, 20 + 3000));
  assert.equal((out[26 + 20] << 8) | out[26 + 21], natPort);
  assert.ok(ipHeaderOk(out));
  assert.deepEqual(out.subarray(26 + 40), payload);
  // Completing the checksum the way the kernel does gives a valid segment.
  const done = out.slice();
  let s = 0;
  for (let i = 26 + 20; i < done.length; i += 2) s += (done[i] << 8) | (i + 1 < done.length ? done[i + 1] : 0);
  const c = ~fold(s) & 0xffff;
  done[26 + 36] = c >>> 8; done[26 + 37] = c & 0xff;
  assert.ok(l4ChecksumOk(done));
  // Reply direction with NEEDS_CSUM as well.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', tcp(443, natPort, TCP_SYN | TCP_ACK_FLAG), {}, { flags: VNET_F_NEEDS_CSUM }));
  const [back] = r.lan.take();
  assert.equal((back[26 + 36] << 8) | back[26 + 37], partialChecksum4(parseIpv4(REMOTE) as number, parseIpv4('198.18.0.23') as number, 6, 20));
  assert.equal((back[26 + 22] << 8) | back[26 + 23], 40000);
  // Inconsistent offload metadata is refused.
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(40000, 443, TCP_ACK_FLAG), {}, { flags: VNET_F_NEEDS_CSUM, csumStart: 30, csumOffset: 16 }));
  assert.equal(r.drops()['vnet-bad-csum'], 1);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(1, 2), {}, { gsoType: VNET_GSO_TCPV4, flags: VNET_F_NEEDS_CSUM }));
  assert.equal(r.drops()['vnet-bad-gso'], 1);
  // A bad checksum is not checked when the kernel will fill it in
  assert.equal(r.drops()['tcp-bad-checksum'] ?? 0, 0);
});

// ---- ICMP errors for tracked connections -------------------------------------------------

test('ICMP errors about a tracked connection are translated back (outer, quoted header, quoted ports)', () => {
  const r = rig();
  learnNeighbours(r);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(33434, 33435, 'probe'), { ttl: 2 }));
  const [probe] = r.wan.take();
  const pf = decode(probe);
  assert.ok(pf.l4.proto === 'udp');
  const nat = pf.l4.udp.srcPort;
  // A router beyond the gateway reports time exceeded, quoting the translated probe.
  const quoted = probe.subarray(26, 26 + 28);
  r.send(1, ipFrame(WAN_GW, r.wanMac, '192.0.2.77', '198.19.0.1', { proto: 'icmp', icmp: { kind: 'time-exceeded', code: 0, original: quoted } }));
  const [te] = r.lan.take();
  assert.ok(te, 'forwarded to the lan host');
  const tf = decode(te);
  assert.ok(ipHeaderOk(te));
  assert.equal(tf.ip.src, '192.0.2.77');
  assert.equal(tf.ip.dst, '198.18.0.23');
  assert.ok(tf.l4.proto === 'icmp' && tf.l4.icmp.kind === 'time-exceeded');
  const inner = tf.l4.icmp.original;
  assert.ok(ipHeaderOk(inner, 0), 'quoted IP header checksum fixed');
  assert.deepEqual([...inner.subarray(12, 16)], [198, 18, 0, 23], 'quoted source = the lan host');
  assert.deepEqual([...inner.subarray(16, 20)], [203, 0, 113, 9]);
  assert.equal((inner[20] << 8) | inner[21], 33434, 'quoted source port restored');
  assert.equal((inner[22] << 8) | inner[23], 33435);
  // The quoted UDP checksum matches what the host sent.
  const sentUdp = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(33434, 33435, 'probe'), { ttl: 2 });
  assert.deepEqual([...inner.subarray(26, 28)], [...sentUdp.subarray(26 + 26, 26 + 28)]);
  assert.ok(nat >= 49152);
  assert.equal(r.counters.get('icmp.error-translated'), 1);
  // Port unreachable from the lan host about a reply packet goes out masqueraded.
  r.send(1, ipFrame(WAN_GW, r.wanMac, REMOTE, '198.19.0.1', udp(33435, nat, 'resp')));
  const [resp] = r.lan.take();
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'icmp', icmp: { kind: 'dest-unreachable', code: 3, mtu: 0, original: resp.subarray(26, 54) } }));
  const [pu] = r.wan.take();
  const puf = decode(pu);
  assert.equal(puf.ip.src, '198.19.0.1');
  assert.equal(puf.ip.dst, REMOTE);
  assert.ok(puf.l4.proto === 'icmp' && puf.l4.icmp.kind === 'dest-unreachable');
  const pin = puf.l4.icmp.original;
  assert.ok(ipHeaderOk(pin, 0));
  assert.deepEqual([...pin.subarray(16, 20)], [198, 19, 0, 1], 'quoted destination = the NAT address');
  assert.equal((pin[22] << 8) | pin[23], nat);
});

test('a translated ICMP error waits for ARP like any packet, then leaves intact', () => {
  const r = rig();
  learnNeighbours(r);
  r.send(0, ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(40001, 33435, 'probe'), { ttl: 2 }));
  const [probe] = r.wan.take();
  r.router.resetDomain(0); // the lan host's MAC is forgotten
  r.send(1, ipFrame(WAN_GW, r.wanMac, '192.0.2.77', '198.19.0.1', { proto: 'icmp', icmp: { kind: 'dest-unreachable', code: 3, mtu: 0, original: probe.subarray(26, 54) } }));
  const [who] = r.lan.take();
  const w = decodeFrame(who);
  assert.ok(w.ok && w.value.kind === 'arp' && w.value.arp.targetIp === '198.18.0.23');
  r.send(0, arpFrame('reply', LAN_HOST, r.lanMac, '198.18.0.23', '198.18.0.1', r.lanMac));
  const [err] = r.lan.take();
  assert.ok(err, 'released');
  const f = decode(err);
  assert.deepEqual(f.eth, { dst: LAN_HOST, src: r.lanMac });
  assert.equal(f.ip.dst, '198.18.0.23');
  assert.ok(f.l4.proto === 'icmp' && f.l4.icmp.kind === 'dest-unreachable');
  assert.equal((f.l4.icmp.original[20] << 8) | f.l4.icmp.original[21], 40001);
  assert.ok(ipHeaderOk(f.l4.icmp.original, 0));
});

// ---- egress pressure ------------------------------------------------------------------

test('egress full: counted drop', () => {
  const cfg = parseRouterConfig(BASE_CONFIG, 'router', { file: 'test.yaml', path: 'c' });
  const lan = new FakePort();
  const wan = new FakePort(0); // every slot in flight
  const counters = new Counters();
  const rr = new Router(cfg, [lan, wan], counters, { clock: () => 0 });
  const lanMac = formatMac(cfg.domains[0].mac);
  const wanMac = formatMac(cfg.domains[1].mac);
  const feed = (dom: number, p: Uint8Array): void => rr.receive(dom, p, 0, p.length);
  feed(0, arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  feed(1, arpFrame('reply', WAN_GW, wanMac, '198.19.0.254', '198.19.0.1', wanMac));
  feed(0, ipFrame(LAN_HOST, lanMac, '198.18.0.23', REMOTE, udp(1, 2)));
  assert.equal(counters.get('drop.egress-full'), 1);
  assert.equal(wan.sent.length, 0);
  // Too big for the egress slot
  const small = new FakePort(4, 128);
  const r2 = new Router(cfg, [lan, small], new Counters(), { clock: () => 0 });
  r2.receive(1, arpFrame('reply', WAN_GW, wanMac, '198.19.0.254', '198.19.0.1', wanMac), 0, 72);
  const big = ipFrame(LAN_HOST, lanMac, '198.18.0.23', REMOTE, udp(1, 2, 'x'.repeat(200)));
  r2.receive(0, big, 0, big.length);
  assert.equal(small.sent.length, 0);
});

// ---- malformed input ---------------------------------------------------------------------

test('malformed frames: each a counted drop with its reason, nothing sent, nothing thrown', () => {
  const r = rig();
  learnNeighbours(r);
  const good = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, udp(1000, 53, 'x'));
  const goodTcp = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, tcp(1000, 80, TCP_SYN));
  const goodIcmp = ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, echo(5));
  const mod = (p: Uint8Array, f: (b: Uint8Array) => void): Uint8Array => { const b = p.slice(); f(b); return b; };
  const fixIp = (b: Uint8Array): void => {
    b[36] = 0; b[37] = 0;
    let s = 0;
    const ihl = (b[26] & 15) * 4;
    for (let i = 0; i < ihl; i += 2) s += (b[26 + i] << 8) | b[27 + i];
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    s = ~s & 0xffff;
    b[36] = s >>> 8; b[37] = s & 0xff;
  };
  const cases: [string, Uint8Array][] = [
    ['eth-truncated', new Uint8Array(0)],
    ['eth-truncated', good.subarray(0, 25)],
    ['eth-bad-source', mod(good, (b) => { b[18] = 0x01; })],
    ['eth-not-for-us', mod(good, (b) => { b[12 + 5] ^= 0x40; })],
    ['eth-unsupported-type', mod(good, (b) => { b[24] = 0x86; b[25] = 0xdd; })],
    ['vnet-bad-gso', mod(good, (b) => { b[1] = 0x22; })],
    ['arp-truncated', arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1').subarray(0, 26 + 20)],
    ['arp-unsupported', mod(arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'), (b) => { b[26 + 1] = 6; })],
    ['arp-bad-op', mod(arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'), (b) => { b[26 + 7] = 3; })],
    ['arp-bad-sender', mod(arpFrame('request', LAN_HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'), (b) => { b[26 + 8] = 0xff; })],
    ['ip-truncated', good.subarray(0, 26 + 19)],
    ['ip-bad-version', mod(good, (b) => { b[26] = 0x65; })],
    ['ip-bad-ihl', mod(good, (b) => { b[26] = 0x44; })],
    ['ip-truncated', mod(good, (b) => { b[26] = 0x4f; })],
    ['ip-truncated', mod(good, (b) => { b[29] += 1; fixIp(b); })],
    ['ip-bad-length', mod(good, (b) => { b[28] = 0; b[29] = 10; fixIp(b); })],
    ['ip-bad-checksum', mod(good, (b) => { b[36] ^= 0x10; })],
    ['ip-bad-source', mod(good, (b) => { b[38] = 127; fixIp(b); })],
    ['ip-bad-source', mod(good, (b) => { b[38] = 224; fixIp(b); })],
    ['ip-spoofed-source', mod(good, (b) => { b[38] = 10; fixIp(b); })],
    ['ip-broadcast', mod(good, (b) => { b[42] = 255; b[43] = 255; b[44] = 255; b[45] = 255; fixIp(b); })],
    ['ip-broadcast', mod(good, (b) => { b[42] = 198; b[43] = 18; b[44] = 0; b[45] = 255; fixIp(b); })],
    ['ip-broadcast', mod(good, (b) => { b[12] = 0xff; b[13] = 0xff; b[14] = 0xff; b[15] = 0xff; b[16] = 0xff; b[17] = 0xff; })],
    // A first fragment (MF) whose payload is no multiple of 8; a fragment reaching past 65535 bytes.
    ['frag-bad-length', mod(good, (b) => { b[32] = 0x20; fixIp(b); })],
    ['frag-too-big', mod(good, (b) => { b[32] = 0x1f; b[33] = 0xff; fixIp(b); })],
    ['ip-unsupported-protocol', mod(good, (b) => { b[35] = 47; fixIp(b); })],
    ['udp-truncated', mod(good, (b) => { b[28] = 0; b[29] = 27; fixIp(b); })],
    ['udp-bad-length', mod(good, (b) => { b[26 + 25] = 200; })],
    ['udp-bad-checksum', mod(good, (b) => { b[b.length - 1] ^= 0x01; })],
    ['tcp-truncated', mod(goodTcp, (b) => { b[28] = 0; b[29] = 39; fixIp(b); })],
    ['tcp-bad-offset', mod(goodTcp, (b) => { b[26 + 32] = 0x40; })],
    ['tcp-truncated', mod(goodTcp, (b) => { b[26 + 32] = 0xf0; })],
    ['tcp-bad-checksum', mod(goodTcp, (b) => { b[26 + 20 + 4] ^= 0x01; })],
    ['icmp-truncated', mod(goodIcmp, (b) => { b[28] = 0; b[29] = 27; fixIp(b); })],
    ['icmp-bad-checksum', mod(goodIcmp, (b) => { b[b.length - 1] ^= 0x01; })],
    ['icmp-unsupported-type', ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'icmp', icmp: { kind: 'other', type: 5, code: 1, rest: 0, data: new Uint8Array(28) } })],
    ['icmp-error-malformed', ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'icmp', icmp: { kind: 'time-exceeded', code: 0, original: new Uint8Array(10) } })],
    ['hairpin', ipFrame(WAN_GW, r.wanMac, REMOTE, '192.0.2.1', udp(1, 2))],
    ['icmp-new-not-echo', ipFrame(LAN_HOST, r.lanMac, '198.18.0.23', REMOTE, { proto: 'icmp', icmp: { kind: 'echo-reply', id: 1, seq: 1, data: new Uint8Array(0) } })],
  ];
  for (const [reason, pkt] of cases) {
    const before = r.drops()[reason] ?? 0;
    const dom = reason === 'hairpin' ? 1 : 0;
    assert.doesNotThrow(() => r.send(dom, pkt), reason);
    assert.equal((r.drops()[reason] ?? 0) - before, 1, `${reason}: counted once (${JSON.stringify(r.drops())})`);
    assert.equal(r.wan.take().length, 0, `${reason}: nothing forwarded`);
    assert.equal(r.lan.take().length, 0, `${reason}: nothing answered`);
  }
  // Garbage of every length never throws and is always counted somewhere.
  for (let n = 0; n < 300; n++) {
    const junk = new Uint8Array(n);
    for (let i = 0; i < n; i++) junk[i] = (i * 131 + n * 17) & 0xff;
    // Make half of them look addressed to the router so they get past the MAC check.
    if (n >= 26 && n % 2 === 0) { junk.set(r.cfg.domains[0].mac, 12); junk[18] = 0x02; junk[24] = 0x08; junk[25] = n % 4 === 0 ? 0x00 : 0x06; }
    const dropsBefore = r.counters.drops();
    assert.doesNotThrow(() => r.send(0, junk));
    const sent = r.lan.take().length + r.wan.take().length;
    assert.ok(r.counters.drops() - dropsBefore === 1 || sent > 0, `junk ${n} accounted for`);
  }
  for (const reason of DROP_REASONS) assert.ok(r.counters.get(`drop.${reason}`) >= 0);
});
