// IPv6 codecs: addresses (RFC 4291 / 5952), the header and its extension
// chain (RFC 8200), ICMPv6 and Neighbor Discovery (RFC 4443 / 4861). The
// reference packets were built by scapy (an independent implementation that
// computes its own checksums) and are compared byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatIpv6, inPrefix6, isMartianSourceIpv6, linkLocalFromMac, multicastMac6, parseIpv6, parseIpv6Cidr, formatIpv6Cidr,
  prefixesOverlap6, solicitedNode,
} from '../../src/net/addr6.ts';
import {
  checkIpv6, IP6_ERR_EXT_DUPLICATE, IP6_ERR_EXT_ORDER, IP6_ERR_EXT_TOO_MANY, IP6_ERR_EXT_TRUNCATED, IP6_ERR_FRAG_LENGTH,
  IP6_ERR_FRAG_RESERVED, IP6_ERR_RH0, IP6_ERR_TRUNCATED, IP6_ERR_VERSION, IPV6_HLEN, newIpv6Chain, NH_DSTOPTS, NH_FRAGMENT,
  NH_ICMPV6, NH_UDP, parseIpv6Packet, serializeIpv6Packet, walkIpv6, writeIpv6Header,
} from '../../src/net/ipv6.ts';
import {
  checkNd, icmp6ChecksumOk, icmp6SetChecksum, ND_ERR_HOP_LIMIT, ND_ERR_OPTION, ND_ERR_TARGET, ND_NA_FLAG_OVERRIDE,
  ND_NA_FLAG_ROUTER, ND_NA_FLAG_SOLICITED, ND_OK, ND_OPT_SOURCE_LINKADDR, ndLinkAddr, writeIcmp6Error, writeNeighborAdvert,
  writeNeighborSolicit, writeRouterAdvert, ICMP6_PACKET_TOO_BIG, icmp6Mtu,
} from '../../src/net/icmpv6.ts';
import { parseMac } from '../../src/net/addr.ts';

function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const a6 = (s: string): Uint8Array => {
  const v = parseIpv6(s);
  assert.ok(v, s);
  return v;
};

const NS = hex('6000000000203afffe8000000000000002005efffe100001ff0200000000000000000001ff00000287008e3d0000000020010db8000100000000000000000002010102005e100001');
const NA = hex('6000000000203aff20010db800010000000000000000000120010db80001000000000000000000028800ac5fe000000020010db8000100000000000000000001020102005e100001');
const ECHO = hex('60000000000d3a4020010db800010000000000000000000220010db80002000000000000000000028000ce311234000768656c6c6f');
const CHAIN = hex('600000000030004020010db800010000000000000000000220010db80002000000000000000000023c000104000000002c0001040000000011000001abcdef0103e800350018dc6478787878787878787878787878787878');
const RA = hex('6000000000583afffe800000000000000000000000000001ff02000000000000000000000000000186008499400007080000000000000000010102005e10000105010000000005dc030440c000015180000038400000000020010db8000100000000000000000000190300000000025820010db8000100000000000000000001');
const MAC = parseMac('02:00:5e:10:00:01')!;

test('addresses: RFC 5952 text forms round-trip', () => {
  const cases: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['64:ff9b::198.51.100.7', '64:ff9b::c633:6407'],
  ];
  for (const [input, want] of cases) assert.equal(formatIpv6(a6(input)), want, input);
  for (const bad of ['', ':', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3', '::256.1.1.1', '1:2:3:4:5:6:7::8', '::01.2.3.4']) {
    assert.equal(parseIpv6(bad), undefined, bad);
  }
});

test('prefixes: parse, mask, contain, overlap', () => {
  const c = parseIpv6Cidr('2001:db8:1:2::5/64')!;
  assert.equal(formatIpv6Cidr(c), '2001:db8:1:2::/64');
  assert.ok(inPrefix6(a6('2001:db8:1:2:ffff::1'), 0, c.addr, 64));
  assert.ok(!inPrefix6(a6('2001:db8:1:3::1'), 0, c.addr, 64));
  const odd = parseIpv6Cidr('2001:db8:1:80::/57')!;
  assert.ok(inPrefix6(a6('2001:db8:1:ff::1'), 0, odd.addr, 57));
  assert.ok(!inPrefix6(a6('2001:db8:1:7f::1'), 0, odd.addr, 57));
  assert.ok(inPrefix6(a6('::1'), 0, parseIpv6Cidr('::/0')!.addr, 0));
  assert.ok(prefixesOverlap6(parseIpv6Cidr('2001:db8::/32')!, c));
  assert.ok(!prefixesOverlap6(parseIpv6Cidr('2001:db9::/32')!, c));
  assert.equal(parseIpv6Cidr('2001:db8::/129'), undefined);
  assert.equal(parseIpv6Cidr('2001:db8::/064'), undefined);
});

test('special addresses: solicited-node, multicast MAC, link-local from MAC, martians', () => {
  assert.equal(formatIpv6(solicitedNode(a6('2001:db8:1::2'))), 'ff02::1:ff00:2');
  const mac = new Uint8Array(6);
  multicastMac6(a6('ff02::1:ff00:2'), 0, mac, 0);
  assert.equal(toHex(mac), '3333ff000002');
  assert.equal(formatIpv6(linkLocalFromMac(hex('00005e100001'))), 'fe80::200:5eff:fe10:1');
  for (const m of ['::', '::1', 'ff02::1', '::ffff:10.0.0.1']) assert.ok(isMartianSourceIpv6(a6(m)), m);
  assert.ok(!isMartianSourceIpv6(a6('2001:db8::1')));
});

test('header: check, object form round trip, every error', () => {
  assert.equal(checkIpv6(ECHO, 0, ECHO.length), ECHO.length);
  const p = parseIpv6Packet(ECHO);
  assert.ok(p.ok);
  assert.equal(p.value.src, '2001:db8:1::2');
  assert.equal(p.value.dst, '2001:db8:2::2');
  assert.equal(p.value.hopLimit, 64);
  assert.equal(p.value.nextHeader, NH_ICMPV6);
  assert.equal(toHex(serializeIpv6Packet(p.value)), toHex(ECHO));
  assert.equal(checkIpv6(ECHO, 0, 39), IP6_ERR_TRUNCATED);
  assert.equal(checkIpv6(ECHO, 0, ECHO.length - 1), IP6_ERR_TRUNCATED, 'payload length beyond the frame');
  const v4 = ECHO.slice();
  v4[0] = 0x45;
  assert.equal(checkIpv6(v4, 0, v4.length), IP6_ERR_VERSION);
  // Link padding past the payload is not part of the packet.
  const padded = new Uint8Array(ECHO.length + 6);
  padded.set(ECHO);
  assert.equal(checkIpv6(padded, 0, padded.length), ECHO.length);
});

test('extension chain: hop-by-hop, destination options, fragment, then UDP', () => {
  const c = newIpv6Chain();
  assert.equal(walkIpv6(CHAIN, 0, CHAIN.length, c), 0);
  assert.equal(c.proto, NH_UDP);
  assert.equal(c.l4Off, IPV6_HLEN + 24);
  assert.equal(c.count, 3);
  assert.equal(c.fragOff, IPV6_HLEN + 16);
  assert.equal(c.fragId, 0xabcdef01);
  assert.equal(c.fragMore, true);
  assert.equal(c.fragOffset, 0);
  assert.equal(CHAIN[c.protoFieldOff], NH_UDP, 'protoFieldOff names the byte that says UDP');
  // No extension headers.
  assert.equal(walkIpv6(ECHO, 0, ECHO.length, c), 0);
  assert.equal(c.proto, NH_ICMPV6);
  assert.equal(c.l4Off, IPV6_HLEN);
  assert.equal(c.protoFieldOff, 6);
});

/** A packet with the given extension headers (each 8 bytes, next-header chained) and an 8-byte UDP header. */
function chain(types: number[], mutate?: (b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(IPV6_HLEN + 8 * types.length + 8);
  writeIpv6Header(b, 0, b.length - IPV6_HLEN, types[0] ?? NH_UDP, 64, a6('2001:db8::1'), a6('2001:db8::2'));
  types.forEach((_, i) => {
    b[IPV6_HLEN + 8 * i] = types[i + 1] ?? NH_UDP;
  });
  mutate?.(b);
  return b;
}

test('extension chain: malformed and hostile chains are refused with a reason, never walked without bound', () => {
  const c = newIpv6Chain();
  const walk = (b: Uint8Array): number => walkIpv6(b, 0, b.length, c);
  assert.equal(walk(chain([NH_DSTOPTS, 0])), IP6_ERR_EXT_ORDER, 'hop-by-hop after another header');
  assert.equal(walk(chain([0, 0])), IP6_ERR_EXT_ORDER);
  assert.equal(walk(chain([NH_DSTOPTS, NH_DSTOPTS])), 0, 'two destination options are legal');
  assert.equal(walk(chain([NH_DSTOPTS, NH_DSTOPTS, NH_DSTOPTS])), IP6_ERR_EXT_DUPLICATE);
  assert.equal(walk(chain([NH_FRAGMENT, NH_FRAGMENT])), IP6_ERR_EXT_DUPLICATE);
  assert.equal(walk(chain([43], (b) => { b[IPV6_HLEN + 2] = 0; })), IP6_ERR_RH0);
  assert.equal(walk(chain([43], (b) => { b[IPV6_HLEN + 2] = 4; })), 0, 'segment routing header (type 4) passes');
  assert.equal(walk(chain([NH_FRAGMENT], (b) => { b[IPV6_HLEN + 1] = 1; })), IP6_ERR_FRAG_RESERVED);
  // More fragments with a payload that is not a multiple of 8.
  const odd = chain([NH_FRAGMENT], (b) => { b[IPV6_HLEN + 3] = 1; });
  const oddLonger = new Uint8Array(odd.length + 3);
  oddLonger.set(odd);
  oddLonger[5] = oddLonger.length - IPV6_HLEN;
  assert.equal(walk(oddLonger), IP6_ERR_FRAG_LENGTH);
  // A header whose length runs past the packet.
  assert.equal(walk(chain([NH_DSTOPTS], (b) => { b[IPV6_HLEN + 1] = 200; })), IP6_ERR_EXT_TRUNCATED);
  // Cut inside the chain.
  const full = chain([NH_DSTOPTS, 43]);
  assert.equal(walkIpv6(full, 0, IPV6_HLEN + 12, c), IP6_ERR_EXT_TRUNCATED);
  // A long chain of routing/destination alternations (legal types, too many): refused by the bound.
  const many = chain([NH_DSTOPTS, 43, NH_DSTOPTS, 60, 60, 60, 60, 60, 60, 60], (b) => { b[IPV6_HLEN + 8 + 2] = 4; });
  assert.ok(walk(many) < 0);
  // A 2 KiB hop-by-hop header, then more headers: past the chain's byte bound.
  const huge = new Uint8Array(IPV6_HLEN + 2048 + 8 + 8);
  writeIpv6Header(huge, 0, huge.length - IPV6_HLEN, 0, 64, a6('2001:db8::1'), a6('2001:db8::2'));
  huge[IPV6_HLEN] = NH_DSTOPTS;
  huge[IPV6_HLEN + 1] = 255;
  huge[IPV6_HLEN + 2048] = NH_UDP;
  assert.equal(walk(huge), IP6_ERR_EXT_TOO_MANY);
  // Random bytes never throw and never walk past the buffer.
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(IPV6_HLEN + (i % 200));
    for (let k = 0; k < b.length; k++) b[k] = (Math.random() * 256) | 0;
    b[0] = 0x60;
    const n = checkIpv6(b, 0, b.length);
    if (n > 0) {
      const r = walkIpv6(b, 0, n, c);
      if (r === 0) assert.ok(c.l4Off <= n);
    }
  }
});

test('ICMPv6: checksums of scapy-built packets verify; a flipped bit fails', () => {
  for (const p of [NS, NA, ECHO, RA]) assert.ok(icmp6ChecksumOk(p, 0, IPV6_HLEN, p.length - IPV6_HLEN));
  const bad = ECHO.slice();
  bad[bad.length - 1] ^= 1;
  assert.ok(!icmp6ChecksumOk(bad, 0, IPV6_HLEN, bad.length - IPV6_HLEN));
});

test('Neighbor Discovery: validation and the link-layer address option', () => {
  const l4 = IPV6_HLEN;
  assert.equal(checkNd(NS, 0, l4, NS.length - l4), ND_OK);
  assert.equal(toHex(NS.subarray(l4 + ndLinkAddr(NS, l4, NS.length - l4, ND_OPT_SOURCE_LINKADDR)).subarray(0, 6)), '02005e100001');
  const hop = NS.slice();
  hop[7] = 254;
  assert.equal(checkNd(hop, 0, l4, hop.length - l4), ND_ERR_HOP_LIMIT);
  const zeroOpt = NS.slice();
  zeroOpt[l4 + 25] = 0;
  assert.equal(checkNd(zeroOpt, 0, l4, zeroOpt.length - l4), ND_ERR_OPTION);
  const mcast = NS.slice();
  mcast[l4 + 8] = 0xff;
  assert.equal(checkNd(mcast, 0, l4, mcast.length - l4), ND_ERR_TARGET);
});

test('Neighbor Discovery: what we write equals scapy byte for byte (NS, NA, RA)', () => {
  const ns = new Uint8Array(NS.length);
  const n = writeNeighborSolicit(ns, IPV6_HLEN, a6('2001:db8:1::2'), 0, MAC, 0);
  writeIpv6Header(ns, 0, n, NH_ICMPV6, 255, a6('fe80::200:5eff:fe10:1'), solicitedNode(a6('2001:db8:1::2')));
  icmp6SetChecksum(ns, 0, IPV6_HLEN, n);
  assert.equal(toHex(ns), toHex(NS));

  const na = new Uint8Array(NA.length);
  const m = writeNeighborAdvert(na, IPV6_HLEN, ND_NA_FLAG_ROUTER | ND_NA_FLAG_SOLICITED | ND_NA_FLAG_OVERRIDE, a6('2001:db8:1::1'), 0, MAC, 0);
  writeIpv6Header(na, 0, m, NH_ICMPV6, 255, a6('2001:db8:1::1'), a6('2001:db8:1::2'));
  icmp6SetChecksum(na, 0, IPV6_HLEN, m);
  assert.equal(toHex(na), toHex(NA));

  const ra = new Uint8Array(RA.length);
  const r = writeRouterAdvert(ra, IPV6_HLEN, {
    routerLifetime: 1800, curHopLimit: 64, mtu: 1500,
    prefixes: [{ network: a6('2001:db8:1::'), length: 64, validLifetime: 86400, preferredLifetime: 14400 }],
    dns: [a6('2001:db8:1::1')], dnsLifetime: 600, managed: false, other: false,
  }, MAC, 0);
  writeIpv6Header(ra, 0, r, NH_ICMPV6, 255, a6('fe80::1'), a6('ff02::1'));
  icmp6SetChecksum(ra, 0, IPV6_HLEN, r);
  assert.equal(toHex(ra), toHex(RA));
  assert.equal(checkNd(ra, 0, IPV6_HLEN, r), ND_OK);
});

test('ICMPv6 errors quote at most what fits in 1280 bytes', () => {
  const big = new Uint8Array(3000);
  big.fill(7);
  const out = new Uint8Array(1600);
  const n = writeIcmp6Error(out, IPV6_HLEN, ICMP6_PACKET_TOO_BIG, 0, 1400, big, 0, big.length);
  assert.equal(IPV6_HLEN + n, 1280);
  assert.equal(icmp6Mtu(out, IPV6_HLEN), 1400);
  const small = writeIcmp6Error(out, IPV6_HLEN, ICMP6_PACKET_TOO_BIG, 0, 1280, big, 0, 100);
  assert.equal(small, 108);
});
