// IPv6 fragments through the router (reassembly6.ts, forward6.ts): datagrams
// rebuilt for the decision (policy and conntrack see the transport header),
// forwarded as the original fragments; overlaps (RFC 5722), atomic fragments
// (RFC 6946), a first fragment without the upper-layer header (RFC 7112),
// packet too big for a fragment over the egress MTU, the bounds under a
// flood, and "fragment reassembly time exceeded" (ICMPv6 3/1 and ICMP 11/1)
// when a datagram whose first fragment arrived times out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6 } from '../../src/net/addr6.ts';
import { icmp6ChecksumOk } from '../../src/net/icmpv6.ts';
import { encodeFrame } from '../../src/net/frame.ts';
import { icmpChecksumOk } from '../../src/net/icmp.ts';
import { Ipv6Reassembler, RAW_CAP } from '../../src/components/router/reassembly6.ts';
import {
  REASM_DONE, REASM_ERR_BAD_LENGTH, REASM_ERR_FULL, REASM_ERR_OVERLAP, REASM_ERR_SOURCE_LIMIT, REASM_ERR_TOO_BIG, REASM_ERR_TOO_MANY_FRAGMENTS,
  REASM_HELD,
} from '../../src/components/router/reassembly.ts';
import { indexRig } from './fixtures/router-rig.ts';
import {
  CONFIG6, frame, fragment6, GW_MAC6, HOST6, HOST_MAC6, ip6, neighbors6, REMOTE6, tcpSeg, udpDgram,
} from './fixtures/ipv6-frames.ts';

function rig(config: Record<string, unknown> = CONFIG6) {
  const r = indexRig(config);
  neighbors6(r);
  return r;
}

/** 8000 bytes of UDP (lan host -> remote port 53, or back) as the sender's whole datagram. */
function bigUdp(back = false, sport = 5000, size = 8000): Uint8Array {
  const data = Array.from({ length: size - 8 }, (_, i) => (i * 7) & 255);
  return back
    ? frame(GW_MAC6, [0, 0, 0, 0, 0, 0], REMOTE6, HOST6, 17, udpDgram(53, sport, data))
    : frame(HOST_MAC6, [0, 0, 0, 0, 0, 0], HOST6, REMOTE6, 17, udpDgram(sport, 53, data));
}

/** Address the frames to the router's MAC in dom. */
function to(r: ReturnType<typeof rig>, dom: number, frames: Uint8Array[]): Uint8Array[] {
  for (const f of frames) f.set(r.macOf(dom), 12);
  return frames;
}

/** Each fragment left as it arrived: MACs rewritten, hop limit one less, the rest byte for byte. */
function sameFragments(out: Uint8Array[], sent: Uint8Array[], dstMac: number[]): void {
  assert.equal(out.length, sent.length);
  const byOffset = (f: Uint8Array): number => (f[26 + 42] << 8) | (f[26 + 43] & 0xf8);
  const want = [...sent].sort((a, b) => byOffset(a) - byOffset(b));
  for (let k = 0; k < out.length; k++) {
    assert.deepEqual([...out[k].subarray(12, 18)], dstMac);
    assert.equal(out[k][26 + 7], want[k][26 + 7] - 1, 'hop limit - 1');
    assert.deepEqual(out[k].subarray(26 + 8), want[k].subarray(26 + 8), `fragment ${k} unchanged`);
    assert.deepEqual(out[k].subarray(24, 26 + 7), want[k].subarray(24, 26 + 7));
  }
}

test('8000 bytes of UDP in fragments: lan -> wan in order, the answer wan -> lan out of order; the original fragments leave', () => {
  const r = rig();
  const frags = to(r, 0, fragment6(bigUdp(), 1500, 0x1234));
  assert.equal(frags.length, 6);
  for (const f of frags) r.send(0, f);
  assert.equal(r.counters.get('frag6.held'), 5);
  assert.equal(r.counters.get('frag6.reassembled'), 1);
  sameFragments(r.ports[1].take(), frags, GW_MAC6);
  const conns = (r.router.status() as { connections6: { proto: string; src: string; dst: string }[] }).connections6;
  assert.ok(conns.some((c) => c.proto === 'udp' && c.src === `[${HOST6}]:5000` && c.dst === `[${REMOTE6}]:53`), 'tracked by its ports');
  // The answer: cut for 1280 by the remote, arriving last fragment first.
  const back = to(r, 1, fragment6(bigUdp(true), 1280, 0x99));
  for (const f of [...back].reverse()) r.send(1, f);
  sameFragments(r.ports[0].take(), back, HOST_MAC6);
  assert.equal(r.counters.get('frag6.sent'), 6 + back.length);
  assert.deepEqual(r.drops(), {});
});

test('the policy decides on the rebuilt datagram: fragments to a port no rule allows are all dropped', () => {
  const r = rig();
  const toPort54 = frame(HOST_MAC6, [0, 0, 0, 0, 0, 0], HOST6, REMOTE6, 17, udpDgram(5000, 54, new Array<number>(3000).fill(9)));
  for (const f of to(r, 0, fragment6(toPort54, 1500, 7))) r.send(0, f);
  assert.equal(r.ports[1].take().length, 0);
  assert.deepEqual(r.drops(), { 'no-rule': 1 });
  // A corrupted payload byte in a later fragment: the UDP checksum over the whole datagram fails.
  const bad = to(r, 0, fragment6(bigUdp(false, 5001), 1500, 8));
  bad[3][26 + 48 + 100] ^= 0xff;
  for (const f of bad) r.send(0, f);
  assert.equal(r.ports[1].take().length, 0);
  assert.equal(r.drops()['udp-bad-checksum'], 1);
});

test('overlapping fragments drop the whole datagram (RFC 5722); an exact repeat is ignored; forwarding goes on', () => {
  const r = rig();
  const whole = bigUdp();
  const frags = to(r, 0, fragment6(whole, 1500, 21));
  const other = to(r, 0, fragment6(whole, 1000, 21)); // cut elsewhere: its second fragment starts inside frags[0]
  r.send(0, frags[0]);
  r.send(0, frags[0]); // exact repeat
  r.send(0, other[1]);
  assert.equal(r.drops()['ip6-frag-overlap'], 1);
  for (const f of frags.slice(1)) r.send(0, f); // the rest start a datagram that never gets its first fragment
  assert.equal(r.ports[1].take().length, 0);
  // A datagram of another identification passes.
  for (const f of to(r, 0, fragment6(whole, 1500, 22))) r.send(0, f);
  assert.equal(r.ports[1].take().length, 6);
  assert.equal(r.counters.get('frag6.reassembled'), 1);
});

test('a fragment with hop limit 1 is not held (time exceeded): the same range from another fragment completes the datagram', () => {
  const r = rig();
  const frags = to(r, 0, fragment6(bigUdp(), 1500, 61));
  const evasion = frags[1].slice();
  evasion[26 + 7] = 1;
  evasion.fill(0x5a, 26 + 48); // other data in its place (an IDS evasion)
  r.send(0, frags[0]);
  r.send(0, evasion);
  const [te] = r.ports[0].take();
  assert.ok(te, 'time exceeded');
  assert.deepEqual([te[26 + 40], te[26 + 41]], [3, 0]);
  for (const f of frags.slice(1)) r.send(0, f);
  sameFragments(r.ports[1].take(), frags, GW_MAC6);
  assert.deepEqual(r.drops(), { 'ttl-exceeded': 1 });
});

test('atomic fragment (offset 0, no more fragments: RFC 6946) is forwarded as one packet, fragment header and all', () => {
  const r = rig();
  const [atomic] = to(r, 0, fragment6(frame(HOST_MAC6, [0, 0, 0, 0, 0, 0], HOST6, REMOTE6, 17, udpDgram(5000, 53)), 1500, 5));
  assert.equal(atomic[26 + 43] & 1, 0);
  r.send(0, atomic);
  const [out] = r.ports[1].take();
  assert.ok(out, 'forwarded');
  assert.deepEqual(out.subarray(26 + 8), atomic.subarray(26 + 8));
  assert.equal(r.counters.get('frag6.atomic'), 1);
  assert.equal(r.counters.get('frag6.held'), 0);
});

test('a first fragment without the whole upper-layer header (RFC 7112) is dropped and counted', () => {
  const r = rig();
  // TCP: only 8 of its 20 header bytes in the first fragment.
  const syn = frame(HOST_MAC6, r.macOf(0), HOST6, REMOTE6, 6, [...tcpSeg(40000, 443, 0x02), ...new Array<number>(20).fill(1)]);
  const tiny = to(r, 0, fragment6(syn, 56, 9));
  assert.equal(tiny[0].length - 26, 56);
  r.send(0, tiny[0]);
  // A first fragment whose destination-options header reaches past its end.
  const cut = frame(HOST_MAC6, r.macOf(0), HOST6, REMOTE6, 60, [17, 2, 1, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const [first] = to(r, 0, fragment6(cut, 56, 10));
  r.send(0, first);
  assert.deepEqual(r.drops(), { 'ip6-frag-incomplete-chain': 2 });
  assert.equal(r.counters.get('frag6.held'), 0, 'nothing held for them');
});

test('a fragment larger than the egress MTU: packet too big with the MTU, quoting the first fragment; smaller ones pass', () => {
  const cfg = structuredClone(CONFIG6) as { domains: Record<string, Record<string, unknown>> };
  cfg.domains.wan.mtu = 1280;
  const r = rig(cfg);
  for (const f of to(r, 0, fragment6(bigUdp(), 1500, 31))) r.send(0, f);
  assert.equal(r.ports[1].take().length, 0);
  const [ptb] = r.ports[0].take();
  assert.ok(ptb, 'packet too big');
  const t = 26 + 40;
  assert.deepEqual([ptb[t], ptb[t + 1]], [2, 0]);
  assert.equal(((ptb[t + 4] << 24) | (ptb[t + 5] << 16) | (ptb[t + 6] << 8) | ptb[t + 7]) >>> 0, 1280);
  assert.equal(ptb[t + 8 + 6], 44, 'quotes the fragment (next header: fragment)');
  assert.equal(r.drops()['ip6-too-big'], 1);
  const fits = to(r, 0, fragment6(bigUdp(), 1280, 32));
  for (const f of fits) r.send(0, f);
  assert.equal(r.ports[1].take().length, fits.length);
});

test('timeout: ICMPv6 time exceeded code 1 to the source when the first fragment arrived, none otherwise; rate-limited', () => {
  const r = rig();
  const frags = to(r, 0, fragment6(bigUdp(), 1500, 41));
  r.send(0, frags[0]);
  r.send(0, frags[2]);
  const late = to(r, 0, fragment6(bigUdp(false, 5002), 1500, 42));
  r.send(0, late[1]); // no first fragment: no error when it times out
  r.clock.t += 29_000;
  r.router.tick();
  assert.equal(r.ports[0].take().length, 0, 'not yet');
  r.clock.t += 2_000;
  r.router.tick();
  r.router.flush();
  const errs = r.ports[0].take();
  assert.equal(errs.length, 1);
  const e = errs[0];
  const t = 26 + 40;
  assert.deepEqual([e[t], e[t + 1]], [3, 1]);
  assert.deepEqual([...e.subarray(12, 18)], HOST_MAC6);
  assert.equal(formatIpv6(e, 26 + 8), '2001:db8:0:1::1');
  assert.equal(formatIpv6(e, 26 + 24), HOST6);
  assert.ok(icmp6ChecksumOk(e, 26, t, (e[30] << 8) | e[31]));
  assert.deepEqual(e.subarray(t + 8, t + 8 + 48), frags[0].subarray(26, 26 + 48), 'quotes the first fragment');
  assert.equal(r.counters.get('frag6.timeout'), 2);
  assert.equal(r.counters.get('frag6.timeout-icmp-sent'), 1);
  // A burst of timeouts: at most the error bucket's burst (200) are answered.
  const cfg = structuredClone(CONFIG6) as Record<string, unknown>;
  cfg.fragments = { 'max-datagrams': 300, 'per-source': 300 };
  const r2 = rig(cfg);
  for (let i = 0; i < 300; i++) r2.send(0, to(r2, 0, fragment6(bigUdp(false, 6000 + i), 1500, 1000 + i))[0]);
  r2.clock.t += 31_000;
  r2.router.tick();
  assert.equal(r2.counters.get('frag6.timeout'), 300);
  assert.equal(r2.ports[0].take().length, 200);
  assert.equal(r2.counters.get('icmp6.error-rate-limited'), 100);
});

test('IPv4: a datagram whose first fragment arrived gets ICMP time exceeded code 1 when it times out', () => {
  const r = indexRig({ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] }, wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' } } });
  const lanMac = r.macOf(0).map((x) => x.toString(16).padStart(2, '0')).join(':');
  const first = encodeFrame({
    kind: 'ipv4', eth: { dst: lanMac, src: '02:00:00:00:00:0a' },
    ip: { src: '198.18.0.23', dst: '203.0.113.9', id: 77, flags: 1, fragmentOffset: 0 },
    l4: { proto: 'udp', udp: { srcPort: 5000, dstPort: 53, payload: new Uint8Array(1472) } },
  });
  r.send(0, first);
  assert.equal(r.counters.get('frag.held'), 1);
  r.clock.t += 31_000;
  r.router.tick();
  r.router.flush();
  const [e] = r.ports[0].take();
  assert.ok(e, 'an ICMP error to the lan host');
  const ip = 26;
  const icmp = ip + 20;
  assert.deepEqual([e[icmp], e[icmp + 1]], [11, 1]);
  assert.deepEqual([...e.subarray(12, 18)], [2, 0, 0, 0, 0, 0x0a]);
  assert.deepEqual([...e.subarray(ip + 16, ip + 20)], [198, 18, 0, 23]);
  assert.ok(icmpChecksumOk(e, icmp, e.length - icmp));
  assert.deepEqual(e.subarray(icmp + 8, icmp + 8 + 28), first.subarray(ip, ip + 28), 'quotes header + 8 bytes');
  assert.equal(e.length - icmp, 8 + 28);
  assert.equal(r.counters.get('frag.timeout-icmp-sent'), 1);
});

test('a flood of IPv6 fragments keeps memory bounded, never throws, and leaves room for other sources', () => {
  const rs = new Ipv6Reassembler({ maxDatagrams: 64, maxPerSource: 16, maxFragments: 64, timeoutMs: 30_000 });
  const r = rig();
  const f = new Uint8Array(14 + 48 + 1448);
  f[12] = 0x86;
  f[13] = 0xdd;
  let seed = 12345;
  const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  for (let i = 0; i < 20000; i++) {
    const len = 8 * (1 + (rnd() % 181));
    f[14] = 0x60;
    f[14 + 4] = (8 + len) >> 8;
    f[14 + 5] = (8 + len) & 255;
    f[14 + 6] = 44;
    f.set(ip6(`2001:db8:${(rnd() % 4096).toString(16)}::${(rnd() % 65536).toString(16)}`), 14 + 8);
    f.set(ip6(REMOTE6), 14 + 24);
    const off = (rnd() % 8000) & ~7;
    f.set([17, 0, off >> 8, (off & 0xf8) | (rnd() % 3 === 0 ? 0 : 1), 0, 0, rnd() & 255, rnd() & 255], 14 + 40);
    const res = rs.offer(f, 0, 48 + len, 40, off, (f[14 + 43] & 1) === 1, 0, i);
    assert.ok(res === REASM_HELD || res === REASM_DONE || res < 0);
    assert.ok(rs.size <= 64);
    // The same through the router, from one /64: it holds at most per-source datagrams.
    const g = frame(HOST_MAC6, r.macOf(0), `2001:db8:0:1::${(i % 500).toString(16)}`, REMOTE6, 17, []);
    const frag = new Uint8Array(g.length + 8 + len);
    frag.set(g);
    frag[26 + 4] = (8 + len) >> 8;
    frag[26 + 5] = (8 + len) & 255;
    frag[26 + 6] = 44;
    frag.set([17, 0, off >> 8, (off & 0xf8) | 1, 0, 0, i >> 8, i & 255], 26 + 40);
    r.send(0, frag);
  }
  const bound = 64 * (RAW_CAP + 20 * 64) + 14 + 40 + 1024 + 65535;
  assert.ok(rs.memoryBytes <= bound, `${rs.memoryBytes} <= ${bound}`);
  console.log(`# IPv6 reassembly under a 20000-fragment flood: ${rs.size} datagrams in progress, ${(rs.memoryBytes / 1048576).toFixed(2)} MiB allocated (bound ${(bound / 1048576).toFixed(2)} MiB)`);
  assert.ok(r.drops()['ip6-frag-source-limit'] > 19000, 'one /64 holds at most 16 datagrams');
  const st = (r.router.status() as { fragments: { ipv6: { inProgress: number; memoryBytes: number } } }).fragments.ipv6;
  assert.equal(st.inProgress, 16, 'status shows the datagrams held');
  assert.ok(st.memoryBytes <= bound);
  // Another source still gets its datagram through, and forwarding goes on.
  r.ports[1].take();
  const other = to(r, 0, fragment6(frame(HOST_MAC6, r.macOf(0), '2001:db8:0:1::a', REMOTE6, 17, udpDgram(7000, 53, new Array<number>(3000).fill(1))), 1500, 3));
  // 2001:db8:0:1::a is in the flooding /64: wait for the flood's datagrams to time out first.
  r.clock.t += 31_000;
  r.router.tick();
  for (const x of other) r.send(0, x);
  assert.equal(r.ports[1].take().length, other.length);
  // Bounds of the table itself.
  const small = new Ipv6Reassembler({ maxDatagrams: 2, maxPerSource: 1 });
  const a = fragment6(bigUdp(), 1500, 1)[0];
  const b = fragment6(bigUdp(), 1500, 2)[0];
  const c = fragment6(frame(HOST_MAC6, [0, 0, 0, 0, 0, 0], '2001:db8:5::1', REMOTE6, 17, udpDgram(1, 53, new Array<number>(3000).fill(1))), 1500, 3)[0];
  const d = fragment6(frame(HOST_MAC6, [0, 0, 0, 0, 0, 0], '2001:db8:6::1', REMOTE6, 17, udpDgram(1, 53, new Array<number>(3000).fill(1))), 1500, 3)[0];
  const offer = (x: Uint8Array): number => small.offer(x, 12, x.length - 26, 40, 0, true, 0, 0);
  assert.equal(offer(a), REASM_HELD);
  assert.equal(offer(b), REASM_ERR_SOURCE_LIMIT);
  assert.equal(offer(c), REASM_HELD);
  assert.equal(offer(d), REASM_ERR_FULL);
});

test('the reassembler alone: two different ends, data past the end, too many fragments, bad lengths, frames past RAW_CAP', () => {
  const whole = bigUdp(false, 5000, 3000);
  const frags = fragment6(whole, 1280, 9); // 3 fragments: [0,1232) [1232,2464) [2464,3000)
  const offer = (rs: Ipv6Reassembler, x: Uint8Array, start = (x[26 + 42] << 8) | (x[26 + 43] & 0xf8), more = (x[26 + 43] & 1) === 1): number =>
    rs.offer(x, 12, x.length - 26, 40, start, more, 0, 0);
  let rs = new Ipv6Reassembler();
  assert.equal(offer(rs, frags[2]), REASM_HELD);
  assert.equal(offer(rs, frags[2], 2464 + 8, false), REASM_ERR_OVERLAP, 'a second, different end');
  rs = new Ipv6Reassembler();
  assert.equal(offer(rs, frags[2]), REASM_HELD);
  assert.equal(offer(rs, frags[1], 2464 + 536, true), REASM_ERR_OVERLAP, 'data past the end');
  rs = new Ipv6Reassembler({ maxFragments: 2 });
  assert.equal(offer(rs, frags[0]), REASM_HELD);
  assert.equal(offer(rs, frags[1]), REASM_HELD);
  assert.equal(offer(rs, frags[2]), REASM_ERR_TOO_MANY_FRAGMENTS);
  rs = new Ipv6Reassembler();
  assert.equal(offer(rs, frags[0], 0, true), REASM_HELD);
  const odd = frags[1].subarray(0, frags[1].length - 4);
  assert.equal(rs.offer(odd, 12, odd.length - 26, 40, 1232, true, 0, 0), REASM_ERR_BAD_LENGTH, 'not a multiple of 8');
  assert.equal(offer(rs, frags[1], 65528, false), REASM_ERR_TOO_BIG, 'past 65535');
  // In order and complete: the rebuilt frame is the whole datagram, the fragments come back in offset order.
  rs = new Ipv6Reassembler();
  assert.equal(offer(rs, frags[1]), REASM_HELD);
  assert.equal(offer(rs, frags[2]), REASM_HELD);
  assert.equal(offer(rs, frags[0]), REASM_DONE);
  assert.deepEqual(rs.out.subarray(0, rs.outLength), whole.subarray(12));
  assert.equal(rs.fragments, 3);
  for (let k = 0; k < 3; k++) {
    const len = rs.fragment(k);
    assert.deepEqual(rs.fragmentBuf.subarray(rs.fragmentAt, rs.fragmentAt + len), frags[k].subarray(12));
  }
  // Tiny fragments whose frames outgrow RAW_CAP before their payload reaches 64 KiB.
  rs = new Ipv6Reassembler({ maxFragments: 8192 });
  const tiny = new Uint8Array(26 + 48 + 8);
  tiny.set(frags[0].subarray(0, 26 + 48));
  tiny[26 + 5] = 16;
  let r = REASM_HELD;
  for (let k = 0; k < 8000 && r === REASM_HELD; k++) r = offer(rs, tiny, 8 * k, true);
  assert.equal(r, REASM_ERR_TOO_BIG);
  assert.ok(rs.memoryBytes <= RAW_CAP + 20 * 8192 + 14 + 40 + 1024 + 65535);
});
