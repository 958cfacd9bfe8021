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
import { formatIpv6, parseIpv6 } from '../../src/net/addr6.ts';
import { fold, pseudoSum6At, sum } from '../../src/net/checksum.ts';
import { VNET_GSO_TCPV6 } from '../../src/net/vnet.ts';
import { PLAINTEXT_OFFSET } from '../../src/components/tunnel/state.ts';
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
  /** Runs at every alloc (a test's hook: e.g. a router rewriting its slot meanwhile). */
  onAlloc: (() => void) | undefined;
  alloc(): number {
    this.onAlloc?.();
    return this.#free.pop() ?? -1;
  }
  available(): number {
    return this.#free.length;
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
  /** The raw config section it was made from (for reloads). */
  raw: Record<string, any>;
  name: string;
}

async function pair(opts: { underLoadB?: number; pskA?: string; pskB?: string; resolveA?: boolean; v6?: boolean } = {}) {
  const kA = generatePrivateKey();
  const kB = generatePrivateKey();
  const clock = { t: 10_000 };
  const mk = (me: Uint8Array, peer: Uint8Array, mine: string, theirs: string, allowed: string, psk?: string, underLoad?: number): Side => {
    const raw = {
      plain: { address: '10.9.0.2/30', gateway: '10.9.0.1', ...(opts.v6 ? { address6: PLAIN6, gateway6: GW6 } : {}) },
      uplink: { address: `${mine}/24`, gateway: '10.0.0.254' },
      cookies: underLoad === undefined ? undefined : { 'under-load-handshakes-per-s': underLoad },
      peers: [{ 'public-key': encodeKey(publicKeyOf(peer)), endpoint: `${theirs}:51820`, 'allowed-ips': [allowed, ...(opts.v6 ? [V6_OF[allowed]] : [])], ...(psk ? { 'preshared-key': psk } : {}) }],
    };
    const cfg = parseTunnelConfig(raw, `t-${mine}`, { file: 't.yaml', path: 'c' });
    const plain = new Port();
    const uplink = new Port();
    const counters = new Counters();
    const t = new Tunnel(cfg, plain, uplink, identity(me), counters, { clock: () => clock.t });
    return { t, plain, uplink, counters, uplinkIp: mine, raw: JSON.parse(JSON.stringify(raw)) as Record<string, any>, name: `t-${mine}` };
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
          if (isNs(f)) {
            moved++;
            deliver(s, 'plain', naFrom(GW6, plainMac(s), f.subarray(26 + 8, 26 + 24)));
          } else if (d.ok && d.value.kind === 'arp') {
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
  /** Where deliver() puts a frame: byte 64 of this buffer (the router's slot, as the tunnel sees it). */
  const slot = ib;
  return { A, B, clock, pump, deliver, out, restartA, slot };
}

const PLAIN6 = '2001:db8:ff:1::2/64';
const GW6 = '2001:db8:ff:1::1';
/** The IPv6 prefix beside each side's IPv4 allowed-ips prefix. */
const V6_OF: Record<string, string> = { '198.18.64.0/24': '2001:db8:64::/64', '198.18.0.0/24': '2001:db8:0:1::/64' };

const ip6 = (t: string): Uint8Array => {
  const a = parseIpv6(t);
  assert.ok(a, t);
  return a;
};
const macBytes = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));

/** An IPv6 frame from the router (hop limit 64 unless given) with the ICMPv6/TCP/UDP checksum filled in. */
function ip6Frame(dstMac: string, src: string, dst: string, nh: number, l4: Uint8Array | number[], hop = 64, vnet?: number[]): Uint8Array {
  const b = new Uint8Array(12 + 14 + 40 + l4.length);
  if (vnet) b.set(vnet, 0);
  b.set(macBytes(dstMac), 12);
  b.set(macBytes(ROUTER_MAC), 18);
  b[24] = 0x86;
  b[25] = 0xdd;
  const ip = 26;
  b[ip] = 0x60;
  b[ip + 4] = l4.length >> 8;
  b[ip + 5] = l4.length & 255;
  b[ip + 6] = nh;
  b[ip + 7] = hop;
  b.set(ip6(src), ip + 8);
  b.set(ip6(dst), ip + 24);
  b.set(l4, ip + 40);
  const field = nh === 6 ? 16 : nh === 17 ? 6 : 2;
  if (vnet === undefined || (vnet[0] & VNET_F_NEEDS_CSUM) === 0) {
    const c = ~fold(sum(b, ip + 40, l4.length, pseudoSum6At(b, ip, nh, l4.length))) & 0xffff;
    b[ip + 40 + field] = c >> 8;
    b[ip + 40 + field + 1] = c & 255;
  }
  return b;
}

function isNs(f: Uint8Array): boolean {
  return f.length >= 26 + 40 + 24 && f[24] === 0x86 && f[25] === 0xdd && f[26 + 6] === 58 && f[26 + 40] === 135;
}

/** The router's NA for `from` (its MAC ROUTER_MAC) to the tunnel asking. */
function naFrom(from: string, tunnelMac: string, to: Uint8Array): Uint8Array {
  return ip6Frame(tunnelMac, from, formatIpv6(to), 58, [136, 0, 0, 0, 0x60, 0, 0, 0, ...ip6(from), 2, 1, ...macBytes(ROUTER_MAC)], 255);
}

function l4Ok6(f: Uint8Array): boolean {
  const ip = 26;
  const plen = (f[ip + 4] << 8) | f[ip + 5];
  return fold(sum(f, ip + 40, plen, pseudoSum6At(f, ip, f[ip + 6], plen))) === 0xffff;
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

// ---- IPv6 inner packets ------------------------------------------------------

const udp6 = (text: string, sport = 1111, dport = 2222): number[] => {
  const p = [...new TextEncoder().encode(text)];
  const len = 8 + p.length;
  return [sport >> 8, sport & 255, dport >> 8, dport & 255, len >> 8, len & 255, 0, 0, ...p];
};

test('IPv6 both ways: the gateway resolved by ND, packets sealed and opened, sent to the gateway\'s MAC; no peer, link scope dropped', async () => {
  const { A, B, pump, deliver, out } = await pair({ v6: true });
  assert.equal(A.t.plain.resolved6, true, 'the router answered the tunnel\'s NS');
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('hello6')));
  await pump();
  assert.equal(A.counters.get('handshake.completed'), 1);
  assert.equal(out.B.length, 1, 'the staged IPv6 packet arrived after the handshake');
  const f = out.B[0];
  assert.equal((f[24] << 8) | f[25], 0x86dd);
  assert.deepEqual([...f.subarray(12, 18)], macBytes(ROUTER_MAC));
  assert.equal(formatIpv6(f, 26 + 8), '2001:db8:0:1::a');
  assert.equal(formatIpv6(f, 26 + 24), '2001:db8:64::2');
  assert.equal(new TextDecoder().decode(f.subarray(26 + 48)), 'hello6');
  assert.ok(l4Ok6(f));
  deliver(B, 'plain', ip6Frame(plainMac(B), '2001:db8:64::2', '2001:db8:0:1::a', 17, udp6('world6')));
  await pump();
  assert.equal(out.A.length, 1);
  assert.equal(new TextDecoder().decode(out.A[0].subarray(26 + 48)), 'world6');
  assert.equal(A.counters.get('rx.packets'), 1);
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:99::1', 17, udp6('x')));
  assert.equal(A.counters.get('drop.no-peer'), 1);
  deliver(A, 'plain', ip6Frame(plainMac(A), 'fe80::1', 'ff02::1', 58, [134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(A.counters.get('drop.ip6-link-scope'), 1);
  // A truncated header / a payload length past the frame.
  const bad = ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('y'));
  bad[26 + 5] += 40;
  deliver(A, 'plain', bad);
  assert.equal(A.counters.get('drop.ip6-bad'), 1);
  assert.equal(A.counters.get('tx.packets'), 1, 'only the one data packet was sealed: nothing dropped went out');
});

test('IPv6 ND: an NS for the tunnel\'s address gets an NA with its MAC; a bad one is counted; no address6: IPv6 dropped', async () => {
  const { A } = await pair({ v6: true });
  A.plain.sent.length = 0;
  const target = ip6('2001:db8:ff:1::2');
  const ns = ip6Frame('33:33:ff:00:00:02', GW6, 'ff02::1:ff00:2', 58, [135, 0, 0, 0, 0, 0, 0, 0, ...target, 1, 1, ...macBytes(ROUTER_MAC)], 255);
  const ingress = mapAnonymous(4096);
  const b = new Uint8Array(ingress.buffer);
  b.set(ns, 0);
  A.t.plainIn(b, 0, ns.length);
  A.t.flush();
  const [na] = A.plain.sent.splice(0);
  assert.ok(na, 'an NA');
  assert.equal(na[26 + 40], 136);
  assert.equal(na[26 + 7], 255);
  assert.equal(formatIpv6(na, 26 + 24), GW6);
  assert.equal(formatIpv6(na, 26 + 48), '2001:db8:ff:1::2');
  assert.deepEqual([...na.subarray(26 + 40 + 26, 26 + 40 + 32)], [...A.t.cfg.plain.mac]);
  assert.deepEqual([...na.subarray(12, 18)], macBytes(ROUTER_MAC));
  assert.ok(l4Ok6(na));
  // Hop limit not 255: not ND (RFC 4861 7.1.1), counted.
  const off = ip6Frame('33:33:ff:00:00:02', GW6, 'ff02::1:ff00:2', 58, [135, 0, 0, 0, 0, 0, 0, 0, ...target, 1, 1, ...macBytes(ROUTER_MAC)], 64);
  b.set(off, 0);
  A.t.plainIn(b, 0, off.length);
  assert.equal(A.counters.get('drop.nd-bad'), 1);
  // A tunnel without address6 drops IPv6 frames.
  const { A: A4 } = await pair();
  b.set(ns, 0);
  A4.t.plainIn(b, 0, ns.length);
  assert.equal(A4.counters.get('drop.eth-unsupported-type'), 1);
});

test('IPv6 larger than the MTU: ICMPv6 packet too big (MTU 1420) to the source; GSO TCPv6 cut into checksummed segments', async () => {
  const { A, B, pump, deliver, out } = await pair({ v6: true });
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('first')));
  await pump();
  assert.equal(out.B.length, 1);
  out.A.length = 0;
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('z'.repeat(1450))));
  A.t.flush();
  assert.equal(A.counters.get('drop.too-big'), 1);
  const [ptb] = A.plain.sent.splice(0);
  assert.ok(ptb, 'packet too big');
  assert.equal(ptb[26 + 40], 2);
  assert.equal((ptb[26 + 44] << 24 | ptb[26 + 45] << 16 | ptb[26 + 46] << 8 | ptb[26 + 47]) >>> 0, 1420);
  assert.equal(formatIpv6(ptb, 26 + 8), '2001:db8:ff:1::2');
  assert.equal(formatIpv6(ptb, 26 + 24), '2001:db8:0:1::a');
  assert.ok(ptb.length - 26 <= 1280, 'fits the IPv6 minimum MTU');
  assert.ok(l4Ok6(ptb));
  // A TCPv6 super-frame: 3000 bytes of payload, gso_size 1400, partial checksum.
  const payload = new Uint8Array(3000).map((_, i) => i & 255);
  const tcp = [0x04, 0x57, 0x1f, 0x90, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...payload];
  const vnet = [VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 60, 0, 1400 & 255, 1400 >> 8, 54, 0, 16, 0, 0, 0];
  const sf = ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 6, tcp, 64, vnet);
  // The partial checksum: the pseudo-header sum (no complement), as the kernel leaves it.
  const ps = fold(pseudoSum6At(sf, 26, 6, tcp.length));
  sf[26 + 40 + 16] = ps >> 8;
  sf[26 + 40 + 17] = ps & 255;
  deliver(A, 'plain', sf);
  await pump();
  const segs = out.B.slice(1);
  assert.equal(segs.length, 3, '3000 bytes at min(1400, 1420 - 60) per segment');
  let seq = 0x1000;
  let bytes = 0;
  for (const g of segs) {
    assert.ok(l4Ok6(g), 'each segment carries a full, correct TCP checksum');
    const plen = (g[26 + 4] << 8) | g[26 + 5];
    assert.ok(40 + plen <= 1420);
    assert.equal((g[26 + 44] << 24 | g[26 + 45] << 16 | g[26 + 46] << 8 | g[26 + 47]) >>> 0, seq);
    seq += plen - 20;
    bytes += plen - 20;
  }
  assert.equal(bytes, 3000);
  assert.equal(A.counters.get('gso.segments'), 3);
  void B;
});

test('a hostile peer: decrypted IPv6 from a source outside its allowed-ips, or with a payload length past the decrypted bytes, is dropped and counted', async () => {
  const { A, B, pump, deliver, out } = await pair({ v6: true });
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('hi')));
  await pump();
  deliver(B, 'plain', ip6Frame(plainMac(B), '2001:db8:64::2', '2001:db8:0:1::a', 17, udp6('t'.repeat(100))));
  const template = B.uplink.sent.find((f) => f[12 + 14 + 20 + 8] === 4)!.slice();
  B.uplink.sent.length = 0;
  out.A.length = 0;
  const kp = B.t.peers[0].current!;
  const ctLen = template.length - PLAINTEXT_OFFSET - 16;
  const mem = mapAnonymous(4096);
  const m = new Uint8Array(mem.buffer);
  /** B's keys seal `inner` (zero-padded to the template's length) as the next transport message to A. */
  const forge = (inner: Uint8Array): Uint8Array => {
    m.set(template, 0);
    m.fill(0, PLAINTEXT_OFFSET, PLAINTEXT_OFFSET + ctLen);
    m.set(inner, PLAINTEXT_OFFSET);
    const counter = kp.sendCounter++;
    kp.send.seal(m, mem.address, PLAINTEXT_OFFSET, ctLen, counter);
    const w = PLAINTEXT_OFFSET - 16;
    m[w + 8] = counter & 255;
    m[w + 9] = (counter >> 8) & 255;
    m[w + 10] = (counter >> 16) & 255;
    m[w + 11] = (counter >>> 24) & 255;
    return retarget(m.slice(0, template.length));
  };
  const inner = (src: string, plenDelta = 0): Uint8Array => {
    const f = ip6Frame(plainMac(B), src, '2001:db8:0:1::a', 17, udp6('evil'));
    const p = f.slice(26);
    p[5] += plenDelta;
    return p;
  };
  deliver(A, 'uplink', forge(inner('2001:db8:64::2')));
  assert.equal(out.A.length + A.plain.sent.length, 1, 'a well-formed forged packet from an allowed source passes (the forging works)');
  deliver(A, 'uplink', forge(inner('2001:db8:0:1::66')));
  assert.equal(A.counters.get('drop.inner-source-not-allowed'), 1, 'a source A routes to itself, not to B');
  deliver(A, 'uplink', forge(inner('2001:db8:65::2')));
  assert.equal(A.counters.get('drop.inner-source-not-allowed'), 2, 'a source in no peer\'s allowed-ips');
  deliver(A, 'uplink', forge(inner('2001:db8:64::2', ctLen)));
  assert.equal(A.counters.get('drop.inner-bad'), 1, 'payload length past the decrypted bytes');
  const v5 = inner('2001:db8:64::2');
  v5[0] = 0x50;
  deliver(A, 'uplink', forge(v5));
  assert.equal(A.counters.get('drop.inner-bad'), 2, 'version neither 4 nor 6');
  A.t.flush();
  assert.equal(out.A.length + A.plain.sent.length, 1, 'none of them reached the plaintext side');
});

// ---- live reload of the peers (peer-sync.ts) ------------------------------------

test('reload: an allowed-ips prefix added to a peer is routed at once, its session kept (no new handshake); structural changes refused', async () => {
  const { A, B, pump, deliver, out } = await pair();
  const udp = (text: string): L4 => ({ proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode(text) } });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('before')));
  await pump();
  assert.equal(out.B.length, 1);
  const peer = A.t.peers[0];
  const kp = peer.current!;
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.65.2', udp('not yet')));
  assert.equal(A.counters.get('drop.no-peer'), 1);
  const next = structuredClone(A.raw);
  next.peers[0]['allowed-ips'].push('198.18.65.0/24');
  const r = A.t.reload(parseTunnelConfig(next, A.name, { file: 't.yaml', path: 'c' }));
  assert.ok('diff' in r);
  assert.deepEqual(r.diff.changed.map((c) => c.what), [['allowed-ips']]);
  assert.deepEqual([r.diff.added, r.diff.removed, r.diff.unchanged], [[], [], 0]);
  assert.equal(A.t.peers[0], peer, 'the same peer object');
  assert.equal(peer.current, kp, 'the same keypair: no new handshake');
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.65.2', udp('after')));
  await pump();
  assert.equal(out.B.length, 2, 'the new prefix is routed to the peer');
  assert.equal(new TextDecoder().decode((decodeFrame(out.B[1]) as any).value.l4.udp.payload), 'after');
  assert.equal(A.counters.get('handshake.initiation-sent'), 1);
  assert.equal(A.counters.get('handshake.completed'), 1);
  assert.equal(A.t.status().peers && (A.t.status().peers as { allowedIps: string[] }[])[0].allowedIps.join(','), '198.18.64.0/24,198.18.65.0/24');
  // Anything but the peers is refused, and nothing changes.
  const mtu = structuredClone(next);
  mtu.mtu = 1300;
  const refused = A.t.reload(parseTunnelConfig(mtu, A.name, { file: 't.yaml', path: 'c' }));
  assert.deepEqual(refused, { error: "the tunnel's mtu cannot change at run time (only its peers can); restart the gateway" });
  assert.equal(A.t.cfg.mtu, 1420);
  void B;
});

test('reload: a removed peer loses its keys and indices (its packets are refused); a new peer starts without a session', async () => {
  const { A, B, pump, deliver, out } = await pair();
  const udp = (text: string): L4 => ({ proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode(text) } });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('hi')));
  await pump();
  const old = A.t.peers[0];
  assert.ok(old.current, 'A had a session with B before the reload');
  const other = encodeKey(publicKeyOf(generatePrivateKey()));
  const next = structuredClone(A.raw);
  next.peers = [{ 'public-key': other, endpoint: '10.0.0.3:51820', 'allowed-ips': ['198.18.66.0/24'] }];
  const r = A.t.reload(parseTunnelConfig(next, A.name, { file: 't.yaml', path: 'c' }));
  assert.ok('diff' in r);
  assert.deepEqual(r.diff.added, [other]);
  assert.deepEqual(r.diff.removed, [A.raw.peers[0]['public-key']], 'B removed');
  assert.equal(old.removed, true);
  assert.equal(old.current, undefined);
  assert.equal(A.t.peers.length, 1);
  assert.notEqual(A.t.peers[0], old);
  assert.equal(A.t.peers[0].current, undefined, 'the new peer has no session');
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('gone')));
  assert.equal(A.counters.get('drop.no-peer'), 1, 'the removed peer\'s prefix routes nowhere');
  // B still has its session with A: what it sends now is for a receiver index A forgot.
  const unknown0 = A.counters.get('drop.unknown-receiver');
  deliver(B, 'plain', ipFrame(plainMac(B), '198.18.64.2', '198.18.0.2', udp('stale')));
  await pump();
  assert.ok(A.counters.get('drop.unknown-receiver') > unknown0, 'the old session is gone');
  assert.equal(out.A.length, 0);
});

test('copy, then check: a router rewriting its slot after the peer was chosen gets nothing sealed (IPv4, IPv6, GSO)', async () => {
  const { A, B, pump, deliver, out, slot } = await pair({ v6: true });
  const udp = (text: string): L4 => ({ proto: 'udp', udp: { srcPort: 1111, dstPort: 2222, payload: new TextEncoder().encode(text) } });
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('session')));
  await pump();
  assert.equal(out.B.length, 1);
  const sealed0 = A.counters.get('tx.packets');
  // The attack: between the lookup (in the router's slot) and the copy, the router moves the destination out of the peer's prefixes.
  const IP = 64 + 12 + 14;
  A.uplink.onAlloc = () => {
    if (slot[IP] >>> 4 === 4) slot.set([203, 0, 113, 1], IP + 16);
    else slot[IP + 24] = 0x30; // 2001:db8:64::2 -> 3001:...
  };
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('redirected')));
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 17, udp6('redirected6')));
  const payload = new Uint8Array(3000);
  const tcp = [0x04, 0x57, 0x1f, 0x90, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...payload];
  deliver(A, 'plain', ip6Frame(plainMac(A), '2001:db8:0:1::a', '2001:db8:64::2', 6, tcp, 64, [0, VNET_GSO_TCPV6, 60, 0, 1400 & 255, 1400 >> 8, 0, 0, 0, 0, 0, 0]));
  A.uplink.onAlloc = undefined;
  await pump();
  assert.equal(A.counters.get('drop.plain-changed'), 3);
  assert.equal(A.counters.get('tx.packets'), sealed0, 'nothing was sealed');
  assert.equal(out.B.length, 1, 'nothing arrived');
  // Unchanged slots still go through.
  deliver(A, 'plain', ipFrame(plainMac(A), '198.18.0.2', '198.18.64.2', udp('fine')));
  await pump();
  assert.equal(out.B.length, 2);
  void B;
});
