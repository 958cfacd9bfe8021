// Property-based fuzzing (fast-check) of the frame codecs in src/net and of the
// router's receive path: arbitrary bytes and mutated valid frames never throw,
// every frame the router takes in is accounted for (forwarded, queued for ARP,
// answered locally, or dropped with a reason), and whatever it sends out is a
// well-formed frame with valid checksums. Bounded runs: the file takes a few s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeFrame, encodeFrame, type Frame, type L4 } from '../../src/net/frame.ts';
import { checkArp, parseArp } from '../../src/net/arp.ts';
import { checkIpv4, parseIpv4Packet } from '../../src/net/ipv4.ts';
import { checkTcp, parseTcp } from '../../src/net/tcp.ts';
import { checkUdp, parseUdp } from '../../src/net/udp.ts';
import { parseIcmp } from '../../src/net/icmp.ts';
import { parseVnet } from '../../src/net/vnet.ts';
import { parseEthernet } from '../../src/net/ethernet.ts';
import { formatIpv4, parseIpv4, parseIpv4Cidr, parseMac, parseMacPrefix } from '../../src/net/addr.ts';
import { rig, arpReply, type Rig } from './fixtures/router-rig.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x6d67) | 0;
const runs = (n: number): fc.Parameters<unknown> => ({ numRuns: Math.round(n * Number(process.env.FUZZ_SCALE ?? 1)), seed: SEED });

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const ip = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('198.18.0.10', '198.18.0.20', '198.18.0.1', '198.18.128.1', '198.18.128.2', '203.0.113.5', '198.19.0.1', '198.19.0.2') },
  fc.constantFrom('198.18.0.255', '198.18.0.0', '0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1', '169.254.1.1'),
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.')),
);
const mac = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('02:00:00:00:00:0a', '02:00:00:00:00:fe', '02:00:00:00:00:0d') },
  fc.constantFrom('ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '02:00:00:00:00:0a', '01:00:5e:00:00:01'),
  fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':')),
);
const port = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(0, 53, 67, 68, 80, 443, 5201, 8443, 51820) }, fc.nat(65535));
const payload = bytes(64);
const l4: fc.Arbitrary<L4> = fc.oneof(
  fc.record({ srcPort: port, dstPort: port, payload }).map((udp) => ({ proto: 'udp' as const, udp })),
  fc.record({ srcPort: port, dstPort: port, seq: fc.nat(), ack: fc.nat(), flags: fc.nat(0x1ff), window: fc.nat(65535), payload })
    .map((tcp) => ({ proto: 'tcp' as const, tcp })),
  fc.record({ id: fc.nat(65535), seq: fc.nat(65535), data: payload })
    .map(({ id, seq, data }) => ({ proto: 'icmp' as const, icmp: { kind: 'echo-request' as const, id, seq, data } })),
  fc.record({ id: fc.nat(65535), seq: fc.nat(65535), data: payload })
    .map(({ id, seq, data }) => ({ proto: 'icmp' as const, icmp: { kind: 'echo-reply' as const, id, seq, data } })),
);

interface Bias {
  /** MACs to send to (the router's, broadcast). */
  dstMacs: string[];
  /** Source MAC and IPv4 addresses that fit the ingress domain. */
  srcMac?: string;
  srcIps?: string[];
  dstIps?: string[];
}

/** A valid frame, mostly plausible for its domain (so the filters past the first checks are reached), sometimes not. */
function frameArb(b: Bias): fc.Arbitrary<Uint8Array> {
  const pick = <T>(good: T[] | undefined, any: fc.Arbitrary<T>): fc.Arbitrary<T> =>
    good === undefined || good.length === 0 ? any : fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: any });
  const dst = pick(b.dstMacs, mac);
  const src = pick(b.srcMac === undefined ? undefined : [b.srcMac], mac);
  const sip = pick(b.srcIps, ip);
  const ipv4 = fc.record({ dst, src, ipSrc: sip, ipDst: pick(b.dstIps, ip), ttl: fc.constantFrom(0, 1, 2, 64, 64, 64, 255), flags: fc.constantFrom(0, 0, 1, 2), fragOffset: fc.constantFrom(0, 0, 0, 0, 0, 1, 185), l4 })
    .map((f): Frame => ({ kind: 'ipv4', eth: { dst: f.dst, src: f.src }, ip: { src: f.ipSrc, dst: f.ipDst, ttl: f.ttl, flags: f.flags, fragmentOffset: f.fragOffset }, l4: f.l4 }));
  const arp = fc.record({ dst, src, op: fc.constantFrom('request' as const, 'reply' as const), sha: src, spa: sip, tha: mac, tpa: ip })
    .map((f): Frame => ({ kind: 'arp', eth: { dst: f.dst, src: f.src }, arp: { op: f.op, senderMac: f.sha, senderIp: f.spa, targetMac: f.tha, targetIp: f.tpa } }));
  const other = fc.record({ dst, src, type: fc.constantFrom(0x86dd, 0x8100, 0x88cc, 0x88b5, 0), payload: bytes(80) })
    .map((f): Frame => ({ kind: 'other', eth: { dst: f.dst, src: f.src }, type: f.type, payload: f.payload }));
  return fc.oneof({ weight: 6, arbitrary: ipv4 }, { weight: 2, arbitrary: arp }, { weight: 1, arbitrary: other }).map((f) => {
    try {
      return encodeFrame(f);
    } catch {
      return new Uint8Array(0); // a field the encoder refuses: the empty frame is a fine input too
    }
  });
}

/** Flip, overwrite, truncate or extend a valid frame. */
function mutate(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({ at: fc.nat(200), v: fc.nat(255), kind: fc.constantFrom('set', 'xor', 'cut', 'grow') });
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 6 })).map(([b, edits]) => {
    let out = b.slice();
    for (const e of edits) {
      const i = out.length === 0 ? 0 : e.at % out.length;
      if (e.kind === 'set' && out.length > 0) out[i] = e.v;
      else if (e.kind === 'xor' && out.length > 0) out[i] ^= 1 << (e.v & 7);
      else if (e.kind === 'cut') out = out.slice(0, i);
      else if (e.kind === 'grow') {
        const g = new Uint8Array(out.length + (e.v & 63));
        g.set(out);
        g.fill(e.v, out.length);
        out = g;
      }
    }
    return out;
  });
}

// ---- codecs ---------------------------------------------------------------

test('fuzz: every object-form parser returns ok/error on arbitrary bytes, never throws', () => {
  fc.assert(fc.property(bytes(200), fc.boolean(), fc.boolean(), (b, vnet, verify) => {
    for (const r of [decodeFrame(b, { vnet, verify }), parseVnet(b), parseEthernet(b), parseArp(b), parseIpv4Packet(b), parseTcp(b), parseUdp(b), parseIcmp(b),
      parseTcp(b, '198.18.0.1', '198.19.0.2'), parseUdp(b, '198.18.0.1', '198.19.0.2'), parseIcmp(b, 0, b.length, false)]) {
      assert.equal(typeof r.ok, 'boolean');
      if (!r.ok) assert.equal(typeof r.error, 'string');
    }
  }), runs(1000));
});

test('fuzz: the hot-path checks stay in bounds and return a code for any offset and length', () => {
  fc.assert(fc.property(bytes(120), fc.nat(130), fc.nat(130), fc.boolean(), (b, o, n, verify) => {
    const off = Math.min(o, b.length);
    const avail = Math.min(n, b.length - off);
    for (const r of [checkArp(b, off, avail), checkIpv4(b, off, avail)]) assert.ok(Number.isInteger(r));
    const ihl = checkIpv4(b, off, avail);
    if (ihl > 0) {
      // A valid IPv4 header: its total length lies within avail, so the L4 checks see only the datagram.
      const total = (b[off + 2] << 8) | b[off + 3];
      assert.ok(total <= avail && total >= ihl, `checkIpv4 accepted total ${total} with ${avail} bytes available`);
      for (const r of [checkTcp(b, off, off + ihl, total - ihl, verify), checkUdp(b, off, off + ihl, total - ihl, verify)]) assert.ok(Number.isInteger(r));
    }
  }), runs(1000));
});

test('fuzz: valid frames survive decode(encode(f)), mutated ones decode or fail cleanly', () => {
  const valid = frameArb({ dstMacs: ['02:00:5e:10:00:01'] });
  fc.assert(fc.property(valid, (b) => {
    if (b.length === 0) return;
    const d = decodeFrame(b);
    assert.ok(d.ok, `an encoded frame decodes: ${d.ok ? '' : d.error}`);
    assert.deepEqual(encodeFrame(d.value), b, 're-encoding gives the same bytes');
  }), runs(500));
  fc.assert(fc.property(mutate(valid), (b) => {
    const d = decodeFrame(b);
    if (d.ok) assert.ok(['arp', 'ipv4', 'other'].includes(d.value.kind));
  }), runs(500));
});

test('fuzz: address parsers take any string and return a value or undefined', () => {
  const s = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('1.2.3.4', '1.2.3.4/33', '01.2.3.4', '1.2.3', '1..2.3', '255.255.255.256', '0x1.2.3.4', ' 1.2.3.4', '1.2.3.4/', '02:00:00:00:00:01', '02:00', 'zz:00:00:00:00:00'));
  fc.assert(fc.property(s, (t) => {
    const a = parseIpv4(t);
    if (a !== undefined) {
      assert.ok(Number.isInteger(a) && a >= 0 && a <= 0xffffffff);
      assert.equal(parseIpv4(formatIpv4(a)), a);
    }
    const c = parseIpv4Cidr(t);
    if (c !== undefined) assert.ok(c.prefix >= 0 && c.prefix <= 32);
    const m = parseMac(t);
    if (m !== undefined) assert.equal(m.length, 6);
    parseMacPrefix(t);
  }), runs(1000));
});

// ---- the router's receive path ---------------------------------------------

const ROUTER_CONFIG = {
  domains: {
    lan: {
      address: '198.18.0.1/24', ip: [{ to: 'wan' }, { to: 'dmz' }],
      'dhcp-server': { range: '198.18.0.100-198.18.0.110', 'lease-s': 600, dns: ['198.18.0.1'] },
    },
    dmz: { address: '198.18.128.1/24', tcp: [{ dst: '198.18.0.10/32', ports: [8443], to: 'lan' }] },
    wan: {
      address: '198.19.0.1/24', gateway: '198.19.0.2', nat: { from: ['lan', 'dmz'] },
      'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.128.2', 'host-port': 8080 }],
      'udp-forward': [{ port: 53, to: 'dmz', host: '198.18.128.2' }],
    },
  },
};
const DOMAINS = ['lan', 'dmz', 'wan'] as const;

/** Everything the router counts for a frame that it took in. */
const OUTCOMES = /^(drop\.[a-z0-9-]+|forwarded|frag\.held|arp\.queued|arp\.learned|arp\.refreshed|arp\.reply-sent|icmp\.echo-reply-sent|dhcp\.[a-z]+)$/;

function outcomes(r: Rig): number {
  let n = 0;
  for (const [k, v] of Object.entries(r.counters.snapshot())) if (OUTCOMES.test(k)) n += v;
  return n;
}

function makeRig(): Rig {
  const r = rig(ROUTER_CONFIG);
  // Resolve the wan gateway and one host per inside domain so forwarding paths are reached, not only ARP queueing.
  arpReply(r, 'wan', '198.19.0.2', '02:00:00:00:00:fe', '198.19.0.1');
  arpReply(r, 'lan', '198.18.0.10', '02:00:00:00:00:0a', '198.18.0.1');
  arpReply(r, 'dmz', '198.18.128.2', '02:00:00:00:00:0d', '198.18.128.1');
  return r;
}

function withVnet(frame: Uint8Array, vnet: Uint8Array | undefined): Uint8Array {
  if (vnet === undefined || frame.length < 12) return frame;
  const out = frame.slice();
  out.set(vnet);
  return out;
}

test('fuzz: the router never throws, accounts for every frame, and sends only well-formed frames', () => {
  const r = makeRig();
  const bias: Record<string, Bias> = {
    lan: { dstMacs: [r.macs.lan, 'ff:ff:ff:ff:ff:ff'], srcMac: '02:00:00:00:00:0a', srcIps: ['198.18.0.10', '198.18.0.20', '0.0.0.0'], dstIps: ['203.0.113.5', '198.18.128.2'] },
    dmz: { dstMacs: [r.macs.dmz], srcMac: '02:00:00:00:00:0d', srcIps: ['198.18.128.2'], dstIps: ['203.0.113.5', '198.18.0.10'] },
    wan: { dstMacs: [r.macs.wan], srcMac: '02:00:00:00:00:fe', srcIps: ['203.0.113.5', '198.51.100.7'], dstIps: ['198.19.0.1'] },
  };
  const input = fc.constantFrom(...DOMAINS).chain((dom) => {
    const valid = frameArb(bias[dom]);
    return fc.tuple(
      fc.constant(dom),
      fc.oneof({ weight: 3, arbitrary: valid }, { weight: 3, arbitrary: mutate(valid) }, { weight: 1, arbitrary: bytes(300) }),
      fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 12, maxLength: 12 }) }),
    );
  });
  let frames = 0;
  let sent = 0;
  fc.assert(fc.property(input, ([dom, frame0, vnet]) => {
    const frame = withVnet(frame0, vnet);
    const before = outcomes(r);
    r.send(dom, frame);
    frames++;
    r.clock.t += 7;
    const after = outcomes(r);
    assert.ok(after > before, `frame on ${dom} not accounted for (${Buffer.from(frame).toString('hex')})`);
    for (const d of DOMAINS) {
      for (const out of r.ports[d].take()) {
        sent++;
        const dec = decodeFrame(out);
        assert.ok(dec.ok, `the router sent a malformed frame on ${d}: ${dec.ok ? '' : dec.error} (input ${Buffer.from(frame).toString('hex')})`);
      }
    }
  }), runs(2000));
  const c = r.counters.snapshot();
  assert.equal(c['rx.lan'] + c['rx.dmz'] + c['rx.wan'] >= frames, true);
  if (process.env.FUZZ_DEBUG) console.log(frames, c);
  assert.ok(sent > 0 && (c.forwarded ?? 0) > 0, `some fuzzed frames were forwarded (forwarded ${c.forwarded}, sent ${sent})`);
});

test('fuzz: after the fuzzing, the router still forwards (no state was corrupted)', () => {
  const r = makeRig();
  const inputs = fc.sample(fc.tuple(fc.constantFrom(...DOMAINS), mutate(frameArb({ dstMacs: [r.macs.lan, r.macs.dmz, r.macs.wan], srcIps: ['198.18.0.10', '198.18.128.2', '203.0.113.5'] }))), { numRuns: 500, seed: SEED });
  for (const [dom, f] of inputs) r.send(dom, f);
  for (const d of DOMAINS) r.ports[d].take();
  r.clock.t += 1000;
  const before = r.counters.get('forwarded');
  r.send('lan', encodeFrame({ kind: 'ipv4', eth: { dst: r.macs.lan, src: '02:00:00:00:00:0a' }, ip: { src: '198.18.0.10', dst: '203.0.113.5' },
    l4: { proto: 'udp', udp: { srcPort: 40000, dstPort: 53, payload: new Uint8Array(8) } } }));
  assert.equal(r.counters.get('forwarded'), before + 1);
  const [out] = r.ports.wan.take();
  const d = decodeFrame(out);
  assert.ok(d.ok && d.value.kind === 'ipv4' && d.value.ip.src === '198.19.0.1');
});

test('found by fuzzing: an ARP reply that renews a resolved entry is counted (arp.refreshed), not silently taken', () => {
  const r = makeRig();
  const before = r.counters.get('arp.refreshed');
  arpReply(r, 'lan', '198.18.0.10', '02:00:00:00:00:0a', '198.18.0.1');
  assert.equal(r.counters.get('arp.refreshed'), before + 1);
});
