// The router with IPv4 fragments and per-domain MTUs: fragments are rebuilt
// before policy and NAT, forwarded whole or cut again for the egress MTU; DF
// packets too big for the egress link get "fragmentation needed" with the MTU;
// TCP super-frames whose segments do not fit likewise; the MSS clamp.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Router, type EgressPort } from '../../src/components/router/router.ts';
import { formatMac } from '../../src/net/addr.ts';
import { fold, sum } from '../../src/net/checksum.ts';
import { decodeFrame, encodeFrame, type L4 } from '../../src/net/frame.ts';
import { fragmentCount, writeIpv4Fragment } from '../../src/net/ipv4-frag.ts';
import { parseIpv4Packet } from '../../src/net/ipv4.ts';
import { TCP_SYN } from '../../src/net/tcp.ts';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 } from '../../src/net/vnet.ts';

class Port implements EgressPort {
  readonly slotSize = 70000;
  readonly buf = new Uint8Array(64 * 70000);
  readonly sent: Uint8Array[] = [];
  #free: number[] = [];
  constructor() {
    for (let i = 63; i >= 0; i--) this.#free.push(i * this.slotSize);
  }
  alloc(): number {
    return this.#free.pop() ?? -1;
  }
  submit(o: number, n: number): void {
    this.sent.push(this.buf.slice(o, o + n));
    this.#free.push(o);
  }
  flush(): void {}
  take(): Uint8Array[] {
    return this.sent.splice(0);
  }
}

const HOST = '02:00:00:00:00:0a';
const GW = '02:00:00:00:00:fe';
const REMOTE = '203.0.113.9';

function rig(extra: { lan?: Record<string, unknown>; wan?: Record<string, unknown>; fragments?: Record<string, unknown> } = {}) {
  const cfg = parseRouterConfig({
    domains: {
      lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }], ...extra.lan },
      wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', ...extra.wan },
    },
    ...(extra.fragments ? { fragments: extra.fragments } : {}),
  }, 'router', { file: 't.yaml', path: 'c' });
  const counters = new Counters();
  const lan = new Port();
  const wan = new Port();
  const clock = { t: 1_000_000 };
  const router = new Router(cfg, [lan, wan], counters, { clock: () => clock.t });
  const lanMac = formatMac(cfg.domains[0].mac);
  const wanMac = formatMac(cfg.domains[1].mac);
  const ingress = new Uint8Array(140000);
  const send = (dom: number, pkt: Uint8Array): void => {
    ingress.set(pkt, 100);
    router.receive(dom, ingress, 100, pkt.length);
    router.flush();
  };
  const arp = (op: 'request' | 'reply', src: string, dst: string, sip: string, tip: string, tmac = '00:00:00:00:00:00'): Uint8Array =>
    encodeFrame({ kind: 'arp', eth: { dst, src }, arp: { op, senderMac: src, senderIp: sip, targetMac: tmac, targetIp: tip } });
  send(0, arp('request', HOST, 'ff:ff:ff:ff:ff:ff', '198.18.0.23', '198.18.0.1'));
  send(1, arp('reply', GW, wanMac, '198.19.0.254', '198.19.0.1', wanMac));
  lan.take();
  wan.take();
  const count = (name: string): number => counters.snapshot()[name] ?? 0;
  return { router, counters, lan, wan, lanMac, wanMac, send, clock, count };
}

const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
const udp = (sport: number, dport: number, payload: Uint8Array): L4 => ({ proto: 'udp', udp: { srcPort: sport, dstPort: dport, payload } });

/** A whole frame's IPv4 datagram cut into frames of fragments for mtu (as a sending host does). */
function fragmentFrames(frame: Uint8Array, mtu: number): Uint8Array[] {
  const ip = 26;
  const ihl = (frame[ip] & 15) * 4;
  const total = (frame[ip + 2] << 8) | frame[ip + 3];
  const out: Uint8Array[] = [];
  for (let k = 0; k < fragmentCount(ihl, total, mtu); k++) {
    const f = new Uint8Array(ip + mtu);
    f.set(frame.subarray(0, ip));
    const n = writeIpv4Fragment(frame, ip, ihl, total, mtu, k, f, ip);
    out.push(f.subarray(0, ip + n));
  }
  return out;
}

/** Reassemble frames of fragments the way the receiving host would (by offset), return the datagram. */
function rebuild(frames: Uint8Array[]): Uint8Array {
  const parts = frames.map((f) => {
    const p = parseIpv4Packet(f, 26);
    assert.ok(p.ok, 'each fragment is a valid IPv4 packet');
    return p.value;
  });
  const end = Math.max(...parts.map((p) => p.fragmentOffset * 8 + p.payload.length));
  const data = new Uint8Array(end);
  for (const p of parts) data.set(p.payload, p.fragmentOffset * 8);
  return data;
}

test('an 8000-byte UDP datagram in fragments crosses lan -> wan with NAT and back, cut for each MTU', () => {
  const r = rig({ wan: { mtu: 1400 } });
  const payload = bytes(8000);
  const whole = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, id: 0x1234 }, l4: udp(5000, 7000, payload) });
  const frags = fragmentFrames(whole, 1500);
  assert.equal(frags.length, 6);
  for (const f of [...frags].reverse()) r.send(0, f); // out of order
  assert.equal(r.count('frag.held'), 5);
  assert.equal(r.count('frag.reassembled'), 1);
  const out = r.wan.take();
  assert.equal(out.length, Math.ceil(8008 / 1376), 'cut again for the wan MTU (1400)');
  for (const f of out) assert.ok(f.length - 26 <= 1400);
  const data = rebuild(out);
  // The rebuilt UDP datagram: NATed source port, checksum valid over the pseudo header with the wan address.
  const nat = (data[0] << 8) | data[1];
  assert.notEqual(nat, 5000);
  assert.deepEqual(data.subarray(8), payload);
  const pseudo = [198, 19, 0, 1, 203, 0, 113, 9].reduce((s, _, i, a) => (i % 2 ? s + ((a[i - 1] << 8) | a[i]) : s), 0) + 17 + data.length;
  assert.equal(fold(sum(data, 0, data.length, pseudo)), 0xffff, 'UDP checksum of the NATed datagram');
  // The answer, 8000 bytes in fragments from the wan, goes back to the lan host (MTU 1500).
  const answer = encodeFrame({ kind: 'ipv4', eth: { dst: r.wanMac, src: GW }, ip: { src: REMOTE, dst: '198.19.0.1', id: 77 }, l4: udp(7000, nat, payload) });
  for (const f of fragmentFrames(answer, 1400)) r.send(1, f);
  const back = r.lan.take();
  assert.equal(back.length, 6);
  const bd = rebuild(back);
  assert.equal((bd[2] << 8) | bd[3], 5000, 'port translated back');
  assert.deepEqual(bd.subarray(8), payload);
});

test('without NAT: fragments that fit the egress MTU leave as one rebuilt datagram cut the same way', () => {
  const r = rig({ lan: { forward: [{ to: 'wan', nat: false }] } });
  const whole = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, id: 9 }, l4: udp(1, 2, bytes(3000)) });
  for (const f of fragmentFrames(whole, 1500)) r.send(0, f);
  const out = r.wan.take();
  assert.equal(out.length, 3);
  const d = rebuild(out);
  assert.equal((d[0] << 8) | d[1], 1, 'source port unchanged');
});

test('overlapping fragments: the datagram is dropped and counted, forwarding goes on', () => {
  const r = rig();
  const whole = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, id: 5 }, l4: udp(1, 2, bytes(3000)) });
  const frags = fragmentFrames(whole, 1500);
  const smaller = fragmentFrames(whole, 1000);
  r.send(0, frags[0]);
  r.send(0, smaller[1]); // starts inside frags[0]'s range
  assert.equal(r.counters.snapshot()['drop.frag-overlap'], 1);
  r.send(0, frags[1]);
  r.send(0, frags[2]);
  assert.equal(r.wan.take().length, 0, 'no half datagram leaves');
  r.send(0, encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE }, l4: udp(3, 4, bytes(10)) }));
  assert.equal(r.wan.take().length, 1);
});

test('a fragment flood from one source fills only its share; timeouts free the table', () => {
  const r = rig({ fragments: { 'max-datagrams': 8, 'per-source': 2, 'timeout-s': 2 } });
  for (let id = 0; id < 50; id++) {
    const whole = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, id }, l4: udp(1, 2, bytes(2000)) });
    r.send(0, fragmentFrames(whole, 1500)[0]);
  }
  assert.equal(r.counters.snapshot()['drop.frag-source-limit'], 48);
  const other = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.24', dst: REMOTE, id: 1 }, l4: udp(1, 2, bytes(2000)) });
  for (const f of fragmentFrames(other, 1500)) r.send(0, f);
  assert.equal(r.wan.take().length, 2, 'another source still gets through');
  r.clock.t += 5000;
  r.router.tick();
  assert.equal(r.count('frag.timeout'), 2);
});

test('DF and too big for the egress MTU: ICMP fragmentation needed with the MTU, nothing forwarded', () => {
  const r = rig({ wan: { mtu: 1280 } });
  const big = encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, flags: 2 }, l4: udp(1, 2, bytes(1400)) });
  r.send(0, big);
  assert.equal(r.wan.take().length, 0);
  const [icmp] = r.lan.take();
  const d = decodeFrame(icmp);
  assert.ok(d.ok && d.value.kind === 'ipv4' && d.value.l4.proto === 'icmp');
  const m = d.value.l4.icmp;
  assert.equal(m.kind, 'dest-unreachable');
  assert.ok(m.kind === 'dest-unreachable' && m.code === 4 && m.mtu === 1280, JSON.stringify(m));
  assert.equal(d.value.ip.src, '198.18.0.1');
  assert.equal(r.counters.snapshot()['drop.frag-needed'], 1);
  // The same without DF is cut into fragments.
  r.send(0, encodeFrame({ kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE }, l4: udp(1, 2, bytes(1400)) }));
  assert.equal(r.wan.take().length, 2);
});

test('TCP super-frames: segments that fit pass whole; larger segments get fragmentation needed', () => {
  const r = rig({ wan: { mtu: 1280 } });
  const seg = (mss: number) => {
    const f = encodeFrame({
      kind: 'ipv4', vnet: { flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 66, gsoSize: mss, csumStart: 34, csumOffset: 16 },
      eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, flags: 2 },
      l4: { proto: 'tcp', tcp: { srcPort: 4000, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1000, payload: new Uint8Array(0) } },
    });
    return f;
  };
  r.send(0, seg(1000)); // a SYN opens the connection (no payload: fits)
  r.wan.take();
  const data = (mss: number) => encodeFrame({
    kind: 'ipv4', vnet: { flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 54, gsoSize: mss, csumStart: 34, csumOffset: 16 },
    eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE, flags: 2 },
    l4: { proto: 'tcp', tcp: { srcPort: 4000, dstPort: 80, seq: 2, ack: 1, flags: 0x10, window: 1000, payload: bytes(6000) } },
  });
  r.send(0, data(1200));
  assert.equal(r.wan.take().length, 1, '20 + 20 + 1200 <= 1280: the super-frame passes');
  r.send(0, data(1448));
  assert.equal(r.wan.take().length, 0);
  const [icmp] = r.lan.take();
  const d = decodeFrame(icmp);
  assert.ok(d.ok && d.value.kind === 'ipv4' && d.value.l4.proto === 'icmp' && d.value.l4.icmp.kind === 'dest-unreachable' && d.value.l4.icmp.mtu === 1280);
});

test('MSS clamp: a SYN leaving through a clamping domain carries at most MTU - 40; the checksum stays right', () => {
  const r = rig({ wan: { mtu: 1400, 'mss-clamp': true } });
  for (const lead of [[], [1]]) { // MSS at an even and at an odd offset (after a NOP)
    const opts = Uint8Array.from([...lead, 2, 4, 0x05, 0xb4, ...(lead.length ? [1, 1, 1] : [])]); // MSS 1460
    const syn = encodeFrame({
      kind: 'ipv4', eth: { dst: r.lanMac, src: HOST }, ip: { src: '198.18.0.23', dst: REMOTE },
      l4: { proto: 'tcp', tcp: { srcPort: 4100 + lead.length, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1000, options: opts, payload: new Uint8Array(0) } },
    });
    r.send(0, syn);
    const [out] = r.wan.take();
    const d = decodeFrame(out);
    assert.ok(d.ok, `valid checksums after the clamp (${d.ok ? '' : d.error})`);
    const o = 26 + 20 + 20 + lead.length;
    assert.equal((out[o + 2] << 8) | out[o + 3], 1360);
  }
  assert.equal(r.count('tcp.mss-clamped'), 2);
});

test('config: mtu, mss-clamp and fragments are checked with their paths', () => {
  const bad = (domains: Record<string, unknown>, extra: Record<string, unknown> = {}): string => {
    try {
      parseRouterConfig({ domains, ...extra }, 'router', { file: 't.yaml', path: 'c' });
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.match(bad({ lan: { address: '198.18.0.1/24', mtu: 40 } }), /c\.domains\.lan\.mtu: expected an integer from 68 to 65535/);
  assert.match(bad({ lan: { address: '198.18.0.1/24', 'mss-clamp': 'yes' } }), /c\.domains\.lan\.mss-clamp: expected true or false/);
  assert.match(bad({ lan: { address: '198.18.0.1/24' } }, { fragments: { 'per-source': 0 } }), /c\.fragments\.per-source: expected an integer from 1/);
  assert.match(bad({ lan: { address: '198.18.0.1/24' } }, { fragments: { memory: 1 } }), /c\.fragments\.memory: unknown key/);
});

test('found by fuzzing: an all-zero echo request (id 0, seq 0, no data) gets a reply with a valid checksum', () => {
  const r = rig();
  r.send(1, encodeFrame({ kind: 'ipv4', eth: { dst: r.wanMac, src: GW }, ip: { src: REMOTE, dst: '198.19.0.1' }, l4: { proto: 'icmp', icmp: { kind: 'echo-request', id: 0, seq: 0, data: new Uint8Array(0) } } }));
  const [reply] = r.wan.take();
  const d = decodeFrame(reply);
  assert.ok(d.ok, `the reply decodes with valid checksums (${d.ok ? '' : d.error})`);
});
