// Property-based fuzzing (fast-check) of the tunnel's WireGuard receive path:
// UDP datagrams to the listen port with arbitrary payloads, well-sized
// messages of each type with random bodies, handshake messages whose mac1 is
// valid (so the Noise code and its async keystore calls are reached), and
// hostile plaintext frames (IPv4, IPv6, Neighbor Discovery). Nothing throws or rejects, and every frame is
// counted (a drop reason, or a handshake/cookie/data counter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Counters } from '../../src/runtime/counters.ts';
import { parseTunnelConfig } from '../../src/components/tunnel/config.ts';
import { Tunnel, type TunnelStatic } from '../../src/components/tunnel/tunnel.ts';
import { mac1Key } from '../../src/components/tunnel/cookie.ts';
import { mac } from '../../src/components/tunnel/crypto.ts';
import { COOKIE_REPLY_SIZE, INIT_MAC1, INITIATION_SIZE, RESP_MAC1, RESPONSE_SIZE } from '../../src/components/tunnel/messages.ts';
import { encodeKey, generatePrivateKey, privateKeyObject, publicKeyOf, x25519 } from '../../src/components/keystore/keys.ts';
import { encodeFrame } from '../../src/net/frame.ts';
import type { PacketSource } from '../../src/session/types.ts';
import { mapAnonymous } from '../../src/sys/libc.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x6d67) | 0;
const runs = (n: number): fc.Parameters<unknown> => ({ numRuns: Math.round(n * Number(process.env.FUZZ_SCALE ?? 1)), seed: SEED });

class Port implements PacketSource {
  readonly slotSize = 66048;
  readonly buf: Uint8Array;
  readonly address: number;
  readonly spacePollable = { fd: -1, run: () => 0 };
  sent = 0;
  #free: number[];
  constructor(slots = 16) {
    const m = mapAnonymous(slots * this.slotSize);
    this.buf = new Uint8Array(m.buffer);
    this.address = m.address;
    this.#free = Array.from({ length: slots }, (_, i) => i * this.slotSize);
  }
  alloc(): number {
    return this.#free.pop() ?? -1;
  }
  available(): number {
    return this.#free.length;
  }
  release(off: number): void {
    this.#free.push(off);
  }
  submit(off: number): void {
    this.sent++;
    this.#free.push(off);
  }
  flush(): void {}
  traceFill(): void {}
}

async function responder() {
  const me = generatePrivateKey();
  const peer = generatePrivateKey();
  const k = privateKeyObject(me);
  const ks: TunnelStatic = { publicKey: publicKeyOf(me), dh: async (p) => x25519(k, p), fetchPublicKey: async () => publicKeyOf(me) };
  const cfg = parseTunnelConfig({
    plain: { address: '10.9.0.2/30', gateway: '10.9.0.1', address6: '2001:db8:ff:1::2/64', gateway6: '2001:db8:ff:1::1' },
    uplink: { address: '10.0.0.2/24', gateway: '10.0.0.254' },
    peers: [{ 'public-key': encodeKey(publicKeyOf(peer)), endpoint: '10.0.0.1:51820', 'allowed-ips': ['198.18.0.0/24', '2001:db8:64::/64'] }],
  }, 'tunnel', { file: 't.yaml', path: 'c' });
  const counters = new Counters();
  const clock = { t: 10_000 };
  const plain = new Port();
  const uplink = new Port();
  const t = new Tunnel(cfg, plain, uplink, ks, counters, { clock: () => clock.t });
  await t.init();
  const ingress = mapAnonymous(1 << 17);
  const ib = new Uint8Array(ingress.buffer);
  const total = (): number => Object.values(counters.snapshot()).reduce((a, b) => a + b, 0);
  return { t, cfg, counters, clock, ib, ingress, total, myPublic: publicKeyOf(me) };
}

const ADDR6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
const GW6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

function udpFrame(payload: Uint8Array, sport = 51820, dport = 51820): Uint8Array {
  return encodeFrame({ kind: 'ipv4', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:fe' }, ip: { src: '10.0.0.1', dst: '10.0.0.2' },
    l4: { proto: 'udp', udp: { srcPort: sport, dstPort: dport, payload } } });
}

test('fuzz: WireGuard messages from the uplink never throw or reject, and each is counted', async () => {
  const r = await responder();
  const key1 = mac1Key(r.myPublic);
  /** A message of `type` with a random body, the reserved bytes zero; handshakes get a valid mac1 when asked. */
  const typed = fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.uint8Array({ minLength: 200, maxLength: 200 }), fc.boolean(), fc.nat(40)).map(([type, body, withMac, extra]) => {
    const size = type === 1 ? INITIATION_SIZE : type === 2 ? RESPONSE_SIZE : type === 3 ? COOKIE_REPLY_SIZE : 32 + extra;
    const m = body.slice(0, size);
    m[0] = type;
    m[1] = m[2] = m[3] = 0;
    if (withMac && (type === 1 || type === 2)) {
      const at = type === 1 ? INIT_MAC1 : RESP_MAC1;
      m.set(mac(key1, m.subarray(0, at)), at);
      m.fill(0, at + 16, at + 32); // no mac2
    }
    return m;
  });
  const payloads = fc.oneof({ weight: 2, arbitrary: fc.uint8Array({ maxLength: 180 }) }, { weight: 5, arbitrary: typed });
  const frames = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(payloads, fc.constantFrom(51820, 51820, 1234)).map(([p, sp]) => udpFrame(p, sp)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }) },
    { weight: 1, arbitrary: fc.tuple(payloads, fc.nat(80), fc.nat(255)).map(([p, at, v]) => {
      const f = udpFrame(p);
      f[12 + (at % (f.length - 12))] = v; // break a header byte
      return f;
    }) },
  );
  const rejections: unknown[] = [];
  const onRejection = (e: unknown): void => { rejections.push(e); };
  process.on('unhandledRejection', onRejection);
  try {
    await fc.assert(fc.asyncProperty(frames, async (f) => {
      const before = r.total();
      r.ib.set(f, 64);
      r.t.uplinkIn(r.ib, r.ingress.address, 64, f.length);
      r.t.flush();
      await new Promise((res) => setImmediate(res)); // let handshake work (keystore calls) finish
      r.clock.t += 50;
      r.t.tick();
      assert.ok(r.total() > before, `frame not counted: ${Buffer.from(f).toString('hex')}`);
    }), runs(400));
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  assert.deepEqual(rejections, []);
  const c = r.counters.snapshot();
  assert.ok((c['handshake.initiation-received'] ?? 0) > 0, `initiations with a valid mac1 reached the Noise code: ${JSON.stringify(c)}`);
});

test('fuzz: hostile plaintext frames never throw and are counted', async () => {
  const r = await responder();
  const frames = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.uint8Array({ maxLength: 100 }), fc.nat(65535), fc.nat(255), fc.nat(60)).map(([p, port, v, at]) => {
      const f = encodeFrame({ kind: 'ipv4', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:fe' }, ip: { src: '198.18.0.2', dst: '198.18.64.2' },
        l4: { proto: 'tcp', tcp: { srcPort: port, dstPort: 80, seq: 1, ack: 0, flags: 2, window: 100, payload: p } } });
      f[at % f.length] = v;
      return f;
    }),
    // IPv6: a UDP packet to the peer's prefix, or an NS / NA for the tunnel's address, with one byte changed.
    fc.tuple(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(17, 58, 6, 0), fc.constantFrom(0, 135, 136, 134, 128), fc.nat(255), fc.nat(200)).map(([p, nh, type, v, at]) => {
      const l4 = nh === 58 ? [type, 0, 0, 0, 0, 0, 0, 0, ...ADDR6, 1, 1, 2, 0, 0, 0, 0, 0xfe, ...p] : [...p];
      const f = new Uint8Array(12 + 14 + 40 + l4.length);
      f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xfe, 0x86, 0xdd], 12);
      f.set([0x60, 0, 0, 0, l4.length >> 8, l4.length & 255, nh, nh === 58 ? 255 : 64], 26);
      f.set(GW6, 26 + 8);
      f.set(nh === 58 ? ADDR6 : DST6, 26 + 24);
      f.set(l4, 66);
      if (at < f.length) f[at] = v;
      return f;
    }),
  );
  await fc.assert(fc.asyncProperty(frames, async (f) => {
    const before = r.total();
    r.ib.set(f, 64);
    r.t.plainIn(r.ib, 64, f.length);
    r.t.flush();
    await new Promise((res) => setImmediate(res));
    assert.ok(r.total() > before, `frame not counted: ${Buffer.from(f).toString('hex')}`);
  }), runs(400));
});
