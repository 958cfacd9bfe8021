import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARP_ERR_TRUNCATED, checkArp, parseArp, serializeArp } from '../../src/net/arp.ts';
import { fold, sum } from '../../src/net/checksum.ts';
import { ETHERTYPE_ARP, parseEthernet, serializeEthernet } from '../../src/net/ethernet.ts';
import { decodeFrame, encodeFrame } from '../../src/net/frame.ts';
import { parseIcmp, serializeIcmp } from '../../src/net/icmp.ts';
import {
  checkIpv4, IP_ERR_CHECKSUM, IP_ERR_IHL, IP_ERR_LENGTH, IP_ERR_TRUNCATED, IP_ERR_VERSION, ipv4DecrementTtl,
  ipv4RewriteAddress, IP_SRC, parseIpv4Packet, serializeIpv4Packet,
} from '../../src/net/ipv4.ts';
import { parseTcp, serializeTcp, TCP_ACK_FLAG, TCP_SYN } from '../../src/net/tcp.ts';
import { parseUdp, serializeUdp } from '../../src/net/udp.ts';
import { parseVnet, serializeVnet, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, vnetCsumOffset, vnetCsumStart, vnetGsoType } from '../../src/net/vnet.ts';

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}
function refChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) + (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
function pseudo(src: number[], dst: number[], proto: number, len: number): Uint8Array {
  return new Uint8Array([...src, ...dst, 0, proto, len >>> 8, len & 0xff]);
}
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// A broadcast ARP request as captured on a cable network (a common Wireshark sample).
const ARP_FRAME = hex('ffffffffffff 00070daff454 0806 0001 0800 06 04 0001 00070daff454 18a6ac01 000000000000 18a6ad9f');
// The IPv4 header from the classic checksum example (checksum b1e6), a TCP SYN follows.
const IP_HDR = hex('4500 003c 1c46 4000 4006 b1e6 ac10 0a63 ac10 0a0c');

test('virtio_net_hdr: little-endian fields', () => {
  const b = hex('01 01 3600 a805 2200 1000 0000');
  const v = parseVnet(b);
  assert.ok(v.ok);
  assert.deepEqual(v.value, { flags: 1, gsoType: 1, hdrLen: 0x36, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 0 });
  assert.deepEqual(serializeVnet(v.value), b);
  assert.equal(vnetGsoType(b, 0), VNET_GSO_TCPV4);
  assert.equal(vnetCsumStart(b, 0), 34);
  assert.equal(vnetCsumOffset(b, 0), 16);
  assert.deepEqual(parseVnet(b.subarray(0, 11)), { ok: false, error: 'vnet-truncated' });
});

test('Ethernet + ARP: a captured request parses and re-serializes byte for byte', () => {
  const e = parseEthernet(ARP_FRAME);
  assert.ok(e.ok);
  assert.equal(e.value.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(e.value.src, '00:07:0d:af:f4:54');
  assert.equal(e.value.type, ETHERTYPE_ARP);
  const a = parseArp(e.value.payload);
  assert.ok(a.ok);
  assert.deepEqual(a.value, {
    op: 'request', senderMac: '00:07:0d:af:f4:54', senderIp: '24.166.172.1', targetMac: '00:00:00:00:00:00', targetIp: '24.166.173.159',
  });
  assert.deepEqual(serializeEthernet({ ...e.value, payload: serializeArp(a.value) }), ARP_FRAME);
  assert.deepEqual(parseEthernet(ARP_FRAME.subarray(0, 13)), { ok: false, error: 'eth-truncated' });
  assert.equal(checkArp(ARP_FRAME, 14, 27), ARP_ERR_TRUNCATED);
  const bad = ARP_FRAME.slice(14);
  bad[1] = 0x06; // ptype 0x0606
  assert.deepEqual(parseArp(bad), { ok: false, error: 'arp-unsupported' });
  const badOp = ARP_FRAME.slice(14);
  badOp[7] = 9;
  assert.deepEqual(parseArp(badOp), { ok: false, error: 'arp-bad-op' });
});

test('IPv4: the classic header validates; every malformation has its error', () => {
  const syn = serializeTcp({ srcPort: 0xa08e, dstPort: 80, seq: 0x12345678, ack: 0, flags: TCP_SYN, window: 64240,
    options: hex('020405b4 0402080a 00000000 00000000 01030307'), payload: new Uint8Array(0) }, '172.16.10.99', '172.16.10.12');
  assert.equal(syn.length, 40);
  const pkt = concat(IP_HDR, syn);
  assert.equal(checkIpv4(pkt, 0, pkt.length), 20);
  const p = parseIpv4Packet(pkt);
  assert.ok(p.ok);
  assert.equal(p.value.src, '172.16.10.99');
  assert.equal(p.value.dst, '172.16.10.12');
  assert.equal(p.value.ttl, 64);
  assert.equal(p.value.flags, 2); // DF
  assert.equal(p.value.checksum, 0xb1e6);
  // Re-serializing computes the same checksum.
  const again = serializeIpv4Packet({ ...p.value, checksum: undefined });
  assert.deepEqual(again, pkt);
  // Errors
  assert.equal(checkIpv4(pkt, 0, 19), IP_ERR_TRUNCATED);
  const v6 = pkt.slice(); v6[0] = 0x65;
  assert.equal(checkIpv4(v6, 0, v6.length), IP_ERR_VERSION);
  const ihl4 = pkt.slice(); ihl4[0] = 0x44;
  assert.equal(checkIpv4(ihl4, 0, ihl4.length), IP_ERR_IHL);
  const long = pkt.slice(); long[3] = 0x3d;
  assert.equal(checkIpv4(long, 0, long.length), IP_ERR_TRUNCATED);
  const short = pkt.slice(); short[2] = 0; short[3] = 19;
  assert.equal(checkIpv4(short, 0, short.length), IP_ERR_LENGTH);
  const csum = pkt.slice(); csum[11] ^= 1;
  assert.equal(checkIpv4(csum, 0, csum.length), IP_ERR_CHECKSUM);
  assert.deepEqual(parseIpv4Packet(csum), { ok: false, error: 'ip-bad-checksum' });
  const ihlBig = pkt.slice(); ihlBig[0] = 0x4f; // 60-byte header > 40-byte packet after total-length fix
  ihlBig[2] = 0; ihlBig[3] = 0x3c;
  assert.equal(checkIpv4(ihlBig.subarray(0, 40), 0, 40), IP_ERR_TRUNCATED);
});

test('IPv4: TTL decrement and address rewrite keep the header checksum right', () => {
  const pkt = IP_HDR.slice();
  ipv4DecrementTtl(pkt, 0);
  assert.equal(pkt[8], 63);
  assert.equal(fold(sum(pkt, 0, 20)), 0xffff);
  const z = pkt.slice(); z[10] = 0; z[11] = 0;
  assert.equal((pkt[10] << 8) | pkt[11], refChecksum(z));
  const old = ipv4RewriteAddress(pkt, 0, IP_SRC, 0xc6130001);
  assert.equal(old, 0xac100a63);
  assert.equal(fold(sum(pkt, 0, 20)), 0xffff);
});

test('TCP: checksum over pseudo header, parse, errors', () => {
  const seg = serializeTcp({ srcPort: 40000, dstPort: 443, seq: 1, ack: 2, flags: TCP_ACK_FLAG, window: 512,
    payload: new TextEncoder().encode('hello') }, '198.18.0.2', '203.0.113.9');
  const c = (seg[16] << 8) | seg[17];
  const z = seg.slice(); z[16] = 0; z[17] = 0;
  assert.equal(c, refChecksum(concat(pseudo([198, 18, 0, 2], [203, 0, 113, 9], 6, seg.length), z)));
  const t = parseTcp(seg, '198.18.0.2', '203.0.113.9');
  assert.ok(t.ok);
  assert.equal(t.value.srcPort, 40000);
  assert.equal(new TextDecoder().decode(t.value.payload), 'hello');
  assert.deepEqual(parseTcp(seg, '198.18.0.3', '203.0.113.9'), { ok: false, error: 'tcp-bad-checksum' });
  assert.deepEqual(parseTcp(seg.subarray(0, 19)), { ok: false, error: 'tcp-truncated' });
  const off4 = seg.slice(); off4[12] = 0x40;
  assert.deepEqual(parseTcp(off4), { ok: false, error: 'tcp-bad-offset' });
  const offBig = seg.slice(); offBig[12] = 0xf0;
  assert.deepEqual(parseTcp(offBig), { ok: false, error: 'tcp-truncated' });
});

test('UDP: checksum, zero checksum, length errors', () => {
  const d = serializeUdp({ srcPort: 5353, dstPort: 53, payload: hex('abcdef') }, '198.18.0.2', '198.19.0.254');
  assert.equal(d.length, 11);
  const z = d.slice(); z[6] = 0; z[7] = 0;
  assert.equal((d[6] << 8) | d[7], refChecksum(concat(pseudo([198, 18, 0, 2], [198, 19, 0, 254], 17, 11), z)));
  assert.ok(parseUdp(d, '198.18.0.2', '198.19.0.254').ok);
  assert.deepEqual(parseUdp(d, '198.18.0.9', '198.19.0.254'), { ok: false, error: 'udp-bad-checksum' });
  assert.ok(parseUdp(z, '198.18.0.9', '198.19.0.254').ok, 'checksum 0 means none');
  assert.deepEqual(parseUdp(d.subarray(0, 7)), { ok: false, error: 'udp-truncated' });
  const l = d.slice(); l[5] = 12;
  assert.deepEqual(parseUdp(l), { ok: false, error: 'udp-bad-length' });
  const l7 = d.slice(); l7[5] = 7;
  assert.deepEqual(parseUdp(l7), { ok: false, error: 'udp-bad-length' });
});

test('ICMP: echo and errors round-trip with checksums', () => {
  // An echo request like ping's: id 0x1c46, seq 1, 8 bytes of data.
  const echo = hex('0800 0000 1c46 0001 6162636465666768');
  const z = echo.slice();
  const ck = refChecksum(z);
  echo[2] = ck >>> 8; echo[3] = ck & 0xff;
  const m = parseIcmp(echo);
  assert.ok(m.ok);
  assert.deepEqual(m.value, { kind: 'echo-request', id: 0x1c46, seq: 1, data: hex('6162636465666768') });
  assert.deepEqual(serializeIcmp(m.value), echo);
  const bad = echo.slice(); bad[9] ^= 0xff;
  assert.deepEqual(parseIcmp(bad), { ok: false, error: 'icmp-bad-checksum' });
  assert.deepEqual(parseIcmp(echo.subarray(0, 7)), { ok: false, error: 'icmp-truncated' });
  const te = serializeIcmp({ kind: 'time-exceeded', code: 0, original: IP_HDR });
  assert.equal(refChecksum(te), 0);
  const p = parseIcmp(te);
  assert.ok(p.ok && p.value.kind === 'time-exceeded');
});

test('frames: encode / decode through every layer, NEEDS_CSUM gets the partial sum', () => {
  const f = encodeFrame({
    kind: 'ipv4',
    vnet: { flags: VNET_F_NEEDS_CSUM },
    eth: { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' },
    ip: { src: '198.18.0.2', dst: '203.0.113.9', ttl: 64 },
    l4: { proto: 'tcp', tcp: { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_SYN, window: 100, payload: new Uint8Array(4) } },
  });
  assert.equal(f.length, 12 + 14 + 20 + 24);
  assert.equal(vnetCsumStart(f, 0), 34);
  assert.equal(vnetCsumOffset(f, 0), 16);
  // partial = folded pseudo-header sum, not complemented
  const ps = 0xc612 + 0x0002 + 0xcb00 + 0x7109 + 6 + 24;
  const folded = (ps & 0xffff) + (ps >>> 16);
  assert.equal((f[12 + 34 + 16] << 8) | f[12 + 34 + 17], folded);
  const d = decodeFrame(f);
  assert.ok(d.ok && d.value.kind === 'ipv4' && d.value.l4.proto === 'tcp');
  assert.equal(d.value.ip.ttl, 64);
  // Without NEEDS_CSUM the full checksum verifies
  const g = encodeFrame({
    kind: 'ipv4', eth: { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' },
    ip: { src: '198.18.0.2', dst: '203.0.113.9' },
    l4: { proto: 'udp', udp: { srcPort: 1, dstPort: 2, payload: new Uint8Array(3) } },
  });
  assert.ok(decodeFrame(g).ok);
  g[g.length - 1] ^= 1;
  assert.deepEqual(decodeFrame(g), { ok: false, error: 'udp-bad-checksum' });
  const arp = encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: '00:07:0d:af:f4:54' }, arp: {
    op: 'request', senderMac: '00:07:0d:af:f4:54', senderIp: '24.166.172.1', targetMac: '00:00:00:00:00:00', targetIp: '24.166.173.159',
  } }, { vnet: false });
  assert.deepEqual(arp, ARP_FRAME);
  // Garbage never throws
  for (let n = 0; n < 200; n++) {
    const junk = new Uint8Array(n);
    for (let i = 0; i < n; i++) junk[i] = (i * 73 + n * 31) & 0xff;
    assert.doesNotThrow(() => decodeFrame(junk));
  }
});
