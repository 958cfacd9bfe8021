// Two tunnels in one process, joined by a fake router (answers ARP, carries
// the uplink UDP from one to the other): the handshake through keystore-like
// identities, the data path both ways, GSO super-frames cut into valid
// segments, MSS clamping, cookies under load, replays, and frames that must
// be dropped with a reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseTunnelConfig } from '../../src/components/tunnel/config.ts';
import { Tunnel, type TunnelStatic } from '../../src/components/tunnel/tunnel.ts';
import { encodeKey, generatePrivateKey, privateKeyObject, publicKeyOf, x25519 } from '../../src/components/keystore/keys.ts';
import { decodeFrame, encodeFrame, type Frame, type L4 } from '../../src/net/frame.ts';
import { partialChecksum4 } from '../../src/net/checksum.ts';
import { TCP_ACK_FLAG, TCP_PSH, TCP_SYN } from '../../src/net/tcp.ts';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 } from '../../src/net/vnet.ts';
import type { PacketSource } from '../../src/session/types.ts';
import { mapAnonymous } from '../../src/sys/libc.ts';

const ROUTER_MAC = '02:00:00:00:00:fe';

class Port implements PacketSource {
  readonly slotSize = 66048;
  readonly buf: Uint8Array;
  readonly address: number;
  readonly sent: Uint8Array[] = [];
  readonly spacePollable = { fd: -1, run: () => 0 };
  #free: number[];
  constructor(slots = 64) {
    const m = mapAnonymous(slots * this.slotSize);
    this.buf = new Uint8Array(m.buffer);
    this.address = m.address;
    this.#free = Array.from({ length: slots }, (_, i) => i * this.slotSize);
  }
  alloc(): number {
    return this.#free.pop() ?? -1;
  }
  release(off: number): void {
    this.#free.push(off);
  }
  submit(off: number, len: number): void {
    this.sent.push(this.buf.slice(off, off + len));
    this.buf.fill(0xee, off, off + 64);
    this.#free.push(off);
  }
  flush(): void {}
  traceFill(): void {}
}

function identity(priv: Uint8Array): TunnelStatic {
  const k = privateKeyObject(priv);
  return {
    publicKey: publicKeyOf(priv),
    dh: async (p) => x25519(k, p),
    fetchPublicKey: async () => publicKeyOf(priv),
  };
}

interface Side {
  t: Tunnel;
  plain: Port;
  uplink: Port;
  counters: Counters;
  uplinkIp: string;
}

async function pair(opts: { underLoadB?: number; pskA?: string; pskB?: string; resolveA?: boolean } = {}) {
  const kA = generatePrivateKey();
  const kB = generatePrivateKey();
  const clock = { t: 10_000 };
  const mk = (me: Uint8Array, peer: Uint8Array, mine: string, theirs: string, allowed: string, psk?: string, underLoad?: number): Side => {
    const cfg = parseTunnelConfig({
      plain: { address: '10.9.0.2/30', gateway: '10.9.0.1' },
      uplink: { address: `${mine}/24`, gateway: '10.0.0.254' },
      cookies: underLoad === undefined ? undefined : { 'under-load-handshakes-per-s': underLoad },
      peers: [{ 'public-key': encodeKey(publicKeyOf(peer)), endpoint: `${theirs}:51820`, 'allowed-ips': [allowed], ...(psk ? { 'preshared-key': psk } : {}) }],
    }, `t-${mine}`, { file: 't.yaml', path: 'c' });
    const plain = new Port();
    const uplink = new Port();
    const counters = new Counters();
    const t = new Tunnel(cfg, plain, uplink, identity(me), counters, { clock: () => clock.t });
    return { t, plain, uplink, counters, uplinkIp: mine };
  };
  const psk = encodeKey(generatePrivateKey());
  const A = mk(kA, kB, '10.0.0.1', '10.0.0.2', '198.18.64.0/24', opts.pskA ?? psk);
  /** A restarted: a new Tunnel with A's config and key and none of its state. */
  const restartA = async (): Promise<void> => {
    const n = mk(kA, kB, '10.0.0.1', '10.0.0.2', '198.18.64.0/24', opts.pskA ?? psk);
    await n.t.init();
    A.t = n.t;
    A.plain = n.plain;
    A.uplink = n.uplink;
    A.counters = n.counters;
  };
  const B = mk(kB, kA, '10.0.0.2', '10.0.0.1', '198.18.0.0/24', opts.pskB ?? psk, opts.underLoadB);
  await A.t.init();
  await B.t.init();
  const ingress = mapAnonymous(1 << 17);
  const ib = new Uint8Array(ingress.buffer);
  /** Deliver frames to side s's uplink or plain input (from a buffer with an address, like a session's). */
  const deliver = (s: Side, which: 'uplink' | 'plain', frame: Uint8Array): void => {
    ib.set(frame, 64);
    if (which === 'uplink') s.t.uplinkIn(ib, ingress.address, 64, frame.length);
    else s.t.plainIn(ib, 64, frame.length);
  };
  const arpReply = (s: Side, which: 'uplink' | 'plain', ask: Extract<Frame, { kind: 'arp' }>) => {
    deliver(s, which, encodeFrame({ kind: 'arp', eth: { dst: ask.eth.src, src: ROUTER_MAC }, arp: { op: 'reply', senderMac: ROUTER_MAC, senderIp: ask.arp.targetIp, targetMac: ask.arp.senderMac, targetIp: ask.arp.senderIp } }));
  };
  const delivered: Side[] = [A, B];
  /** Move frames until nothing moves: ARP answered, uplink UDP carried across; plaintext collected. */
  const out = { A: [] as Uint8Array[], B: [] as Uint8Array[] };
  const pump = async (): Promise<void> => {
    for (let round = 0; round < 50; round++) {
      let moved = 0;
      for (const s of delivered) {
        const other = s === A ? B : A;
        for (const f of s.uplink.sent.splice(0)) {
          moved++;
          const d = decodeFrame(f, { verify: false });
          assert.ok(d.ok, 'uplink frames decode');
          if (d.value.kind === 'arp') arpReply(s, 'uplink', d.value);
          else deliver(other, 'uplink', retarget(f));
        }
        for (const f of s.plain.sent.splice(0)) {
          const d = decodeFrame(f, { verify: false });
          if (d.ok && d.value.kind === 'arp') {
            moved++;
            arpReply(s, 'plain', d.value);
          } else (s === A ? out.A : out.B).push(f);
        }
        s.t.flush();
      }
      await new Promise((r) => setImmediate(r));
      if (moved === 0 && round > 3) return;
    }
  };
  // Resolve gateways (A's only when asked: resolveA false leaves it to the test).
  for (const s of delivered) if (s !== A || opts.resolveA !== false) s.t.tick();
  await pump();
  return { A, B, clock, pump, deliver, out, restartA };
}

/** A frame from the fake router: destination MAC of the receiving tunnel is not checked strictly (broadcast-like fake). */
function retarget(f: Uint8Array): Uint8Array {
  const g = f.slice();
  g.fill(0xff, 12, 18); // broadcast destination: the tunnel accepts group MACs, as from any router
  g.set([2, 0, 0, 0, 0, 0xfe], 18);
  return g;
}

function ipFrame(dstMac: string, src: string, dst: string, l4: L4, vnet?: Frame['vnet']): Uint8Array {
  return encodeFrame({ kind: 'ipv4', vnet, eth: { dst: dstMac, src: ROUTER_MAC }, ip: { src, dst, flags: 2 }, l4 }); // flags 2: DF
}

function plainMac(s: Side): string {
  return [...s.t.cfg.plain.mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

test('handshake, then packets both ways; a replayed message is refused', async () => {
  const { A, B, pump, deliver, out } = await pair();
  const udp = (text: string): L4 => ({ proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode(text) } });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('hello')));
  await pump();
  assert.equal(A.counters.get('handshake.completed'), 1);
  assert.equal(out.B.length, 1, 'the staged packet arrived after the handshake');
  const got = decodeFrame(out.B[0]);
  assert.ok(got.ok && got.value.kind === 'ipv4' && got.value.l4.proto === 'udp');
  assert.equal(new TextDecoder().decode(got.value.l4.udp.payload), 'hello');
  assert.equal(got.value.eth.dst, ROUTER_MAC);
  // B answers; B confirmed its keypair with A's first packet, so it sends at once.
  deliver(B, 'plain', ipFrame(plainMac(B), '198.18.64.2', '198.18.0.2', udp('world')));
  // Keep a copy of B's transport message for the replay.
  const msg = B.uplink.sent.find((f) => f[12 + 14 + 20 + 8] === 4)!.slice();
  await pump();
  assert.equal(out.A.length, 1);
  deliver(A, 'uplink', retarget(msg));
  assert.equal(A.counters.get('drop.replay'), 1);
  // A source B may not use: dropped after decryption.
  deliver(B, 'plain', ipFrame(plainMac(B), '198.18.64.2', '198.18.0.2', udp('x')));
  await pump();
  assert.equal(out.A.length, 2);
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '203.0.113.1', udp('nowhere')));
  assert.equal(A.counters.get('drop.no-peer'), 1);
});

test('an initiation built before the uplink gateway is resolved goes out when ARP resolves it, not 5 s later', async () => {
  const { A, B, pump, deliver, out } = await pair({ resolveA: false });
  const udp: L4 = { proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode('first') } };
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp));
  await pump();
  assert.equal(A.counters.get('handshake.initiation-held'), 1, 'held: no gateway MAC yet');
  assert.equal(A.counters.get('handshake.initiation-sent'), 0);
  assert.equal(A.counters.get('drop.uplink-unresolved'), 0, 'not dropped');
  // A's ARP timer runs (the clock does not move: no retransmission is due); the reply resolves the gateway.
  A.t.tick();
  await pump();
  assert.equal(A.counters.get('handshake.initiation-sent'), 1);
  assert.equal(A.counters.get('handshake.completed'), 1);
  assert.equal(B.counters.get('handshake.initiation-received'), 1);
  assert.equal(out.B.length, 1, 'the staged packet arrived');
});

test('a restarted tunnel that gets data for keys it lost handshakes at once, when only the peer sends', async () => {
  const { A, B, clock, pump, deliver, out, restartA } = await pair();
  const udp = (text: string): L4 => ({ proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode(text) } });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('before')));
  await pump();
  assert.equal(out.B.length, 1);
  // Initiation timestamps are whitened to ~16.8 ms (as WireGuard does): B takes a new
  // initiation from A only with a later one, so the restart comes after that much real time.
  await new Promise((r) => setTimeout(r, 40));
  await restartA();
  A.t.tick();
  await pump(); // the new A resolves its gateways
  clock.t += 1000;
  // Only B sends, with the keys the old A had.
  deliver(B, 'plain', ipFrame(plainMac(B), '198.18.64.2', '198.18.0.2', udp('after')));
  const stale = B.uplink.sent.find((f) => f[12 + 14 + 20 + 8] === 4)!.slice();
  await pump();
  assert.equal(A.counters.get('drop.unknown-receiver'), 1);
  assert.equal(A.counters.get('handshake.initiated-on-unknown'), 1);
  assert.equal(A.counters.get('handshake.completed'), 1, 'A handshook with B without B noticing anything');
  // B's next packet uses the new keys and arrives.
  deliver(B, 'plain', ipFrame(plainMac(B), '198.18.64.2', '198.18.0.2', udp('again')));
  await pump();
  assert.equal(out.A.length, 1);
  const got = decodeFrame(out.A[0]);
  assert.ok(got.ok && got.value.kind === 'ipv4' && got.value.l4.proto === 'udp');
  assert.equal(new TextDecoder().decode(got.value.l4.udp.payload), 'again');
  // More data for the lost keys (now that A has keys again) starts no second handshake.
  deliver(A, 'uplink', retarget(stale));
  assert.equal(A.counters.get('drop.unknown-receiver'), 2);
  assert.equal(A.counters.get('handshake.initiated-on-unknown'), 1);
  assert.equal(A.counters.get('handshake.initiation-sent'), 1);
});

test('a TCP GSO super-frame is cut into checksummed segments within the MTU; SYN MSS is clamped', async () => {
  const { A, B, pump, deliver, out } = await pair();
  const payload = new Uint8Array(20000).map((_, i) => i & 0xff);
  const tcp: L4 = { proto: 'tcp', tcp: { srcPort: 5000, dstPort: 5201, seq: 1_000_000, ack: 7, flags: TCP_ACK_FLAG | TCP_PSH, window: 500, payload } };
  // As a TAP hands it over: NEEDS_CSUM with the pseudo-header sum in the field, gso_size 1448.
  const frame = ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', tcp, {
    flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16,
  });
  const l4len = frame.length - 12 - 14 - 20;
  const partial = partialChecksum4(0xc6120002, 0xc6124002, 6, l4len);
  frame[12 + 14 + 20 + 16] = partial >>> 8;
  frame[12 + 14 + 20 + 17] = partial & 0xff;
  deliver(A, 'plain', frame);
  await pump();
  const segs = out.B.map((f) => decodeFrame(f));
  assert.ok(segs.length >= 15, `segments: ${segs.length}`);
  let seq = 1_000_000;
  let bytes = 0;
  for (const d of segs) {
    assert.ok(d.ok, `segment decodes with valid IP and TCP checksums: ${d.ok ? '' : d.error}`);
    assert.ok(d.value.kind === 'ipv4' && d.value.l4.proto === 'tcp');
    const t = d.value.l4.tcp;
    assert.equal(t.seq, seq);
    assert.ok(t.payload.length <= 1420 - 40);
    assert.deepEqual(t.payload, payload.subarray(bytes, bytes + t.payload.length));
    seq += t.payload.length;
    bytes += t.payload.length;
  }
  assert.equal(bytes, payload.length);
  assert.equal(A.counters.get('gso.segments'), segs.length);
  // A SYN with MSS 1460 leaves with MSS 1380 (MTU 1420 - 40) and a valid checksum.
  out.B.length = 0;
  const opts = new Uint8Array([2, 4, 0x05, 0xb4, 1, 1, 4, 2]);
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', { proto: 'tcp', tcp: { srcPort: 5001, dstPort: 5201, seq: 1, ack: 0, flags: TCP_SYN, window: 64240, options: opts, payload: new Uint8Array(0) } }));
  await pump();
  const syn = decodeFrame(out.B[0]);
  assert.ok(syn.ok && syn.value.kind === 'ipv4' && syn.value.l4.proto === 'tcp');
  assert.deepEqual([...syn.value.l4.tcp.options!.subarray(0, 4)], [2, 4, 1380 >> 8, 1380 & 0xff]);
  // Too big for the tunnel with DF: ICMP fragmentation needed back to the sender.
  const big: L4 = { proto: 'udp', udp: { srcPort: 1, dstPort: 2, payload: new Uint8Array(1450) } };
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', big));
  await pump();
  assert.equal(A.counters.get('drop.too-big'), 1);
  const icmp = decodeFrame(out.A.pop()!);
  assert.ok(icmp.ok && icmp.value.kind === 'ipv4' && icmp.value.l4.proto === 'icmp');
  assert.equal(icmp.value.ip.dst, '198.18.0.2');
  void B;
});

test('under load the responder answers with a cookie; the retried initiation carries mac2 and succeeds', async () => {
  const { A, B, clock, pump, deliver, out } = await pair({ underLoadB: 0 });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', { proto: 'udp', udp: { srcPort: 1, dstPort: 2, payload: new Uint8Array([1]) } }));
  await pump();
  assert.equal(B.counters.get('cookie.reply-sent'), 1);
  assert.equal(B.counters.get('drop.cookie-required'), 1);
  assert.equal(A.counters.get('cookie.reply-received'), 1);
  assert.equal(A.counters.get('handshake.completed'), 0);
  // The retransmission timer (REKEY_TIMEOUT + jitter) sends a new initiation, now with mac2.
  clock.t += 6000;
  A.t.tick();
  A.t.flush();
  await pump();
  assert.equal(B.counters.get('handshake.initiation-received'), 1);
  assert.equal(A.counters.get('handshake.completed'), 1);
  assert.equal(out.B.length, 1, 'the staged packet went through');
});

test('mismatched preshared keys: no session, the initiator keeps retrying', async () => {
  const { A, B, pump, deliver } = await pair({ pskA: encodeKey(generatePrivateKey()), pskB: encodeKey(generatePrivateKey()) });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', { proto: 'udp', udp: { srcPort: 1, dstPort: 2, payload: new Uint8Array([1]) } }));
  await pump();
  assert.equal(B.counters.get('handshake.response-sent'), 1, 'the responder cannot tell');
  assert.equal(A.counters.get('drop.response-invalid'), 1);
  assert.equal(A.counters.get('handshake.completed'), 0);
});
