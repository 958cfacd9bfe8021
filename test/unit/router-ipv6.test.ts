// The router's own IPv6 (local6.ts, config6.ts) driven with crafted frames
// through fake egress ports: config errors, Neighbor Discovery, echo, router
// advertisements, and every IPv6 drop reason, plus malformed frames that must
// never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { ConfigFileError } from '../../src/config/reader.ts';
import { formatIpv6, linkLocalFromMac, parseIpv6, solicitedNode } from '../../src/net/addr6.ts';
import { icmp6ChecksumOk, icmp6SetChecksum } from '../../src/net/icmpv6.ts';
import { indexRig } from './fixtures/router-rig.ts';

const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', address6: '2001:db8:0:1::1/64', ra: { 'interval-s': 30, 'lifetime-s': 1800, dns: ['2001:db8:0:1::53'] } },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', address6: '2001:db8:ff::1/64', gateway6: 'fe80::fe' },
    dmz: { address: '198.18.128.1/24' },
  },
};
const PATH = { file: 'gw.yaml', path: 'components[1].config' };
const HOST_MAC = [2, 0, 0, 0, 0, 0x0a];
const HOST = '2001:db8:0:1::a';
const HOST_LL = 'fe80::a';

function rig(config: Record<string, unknown> = CONFIG) {
  return indexRig(config, { path: PATH });
}

const ip6 = (s: string): Uint8Array => {
  const a = parseIpv6(s);
  assert.ok(a, s);
  return a;
};

/** vnet header + Ethernet + IPv6 (+ ext bytes) + payload; the ICMPv6 checksum set when proto 58 and no ext. */
function frame6(o: { dstMac?: number[]; srcMac?: number[]; src: string; dst: string; hop?: number; nh?: number; ext?: number[]; payload: number[];
  plenDelta?: number; version?: number; csum?: boolean }): Uint8Array {
  const ext = o.ext ?? [];
  const body = [...ext, ...o.payload];
  const b = new Uint8Array(12 + 14 + 40 + body.length);
  const dstMac = o.dstMac ?? [0x33, 0x33, 0, 0, 0, 1];
  b.set(dstMac, 12);
  b.set(o.srcMac ?? HOST_MAC, 18);
  b[24] = 0x86;
  b[25] = 0xdd;
  const ip = 26;
  b[ip] = (o.version ?? 6) << 4;
  const plen = body.length + (o.plenDelta ?? 0);
  b[ip + 4] = plen >>> 8;
  b[ip + 5] = plen & 0xff;
  b[ip + 6] = o.nh ?? 58;
  b[ip + 7] = o.hop ?? 255;
  b.set(ip6(o.src), ip + 8);
  b.set(ip6(o.dst), ip + 24);
  b.set(body, ip + 40);
  if ((o.nh ?? 58) === 58 && o.csum !== false && (o.plenDelta ?? 0) === 0) icmp6SetChecksum(b, ip, ip + 40, o.payload.length);
  return b;
}

function ns(target: Uint8Array, slla: number[] | null): number[] {
  return [135, 0, 0, 0, 0, 0, 0, 0, ...target, ...(slla === null ? [] : [1, 1, ...slla])];
}
const echoReq = (id: number, seq: number): number[] => [128, 0, 0, 0, id >> 8, id & 255, seq >> 8, seq & 255, 1, 2, 3, 4, 5, 6, 7, 8];

function parseOut(pkt: Uint8Array) {
  const ip = 26;
  assert.equal((pkt[24] << 8) | pkt[25], 0x86dd);
  const plen = (pkt[ip + 4] << 8) | pkt[ip + 5];
  assert.ok(icmp6ChecksumOk(pkt, ip, ip + 40, plen), 'ICMPv6 checksum');
  return {
    dstMac: [...pkt.subarray(12, 18)], srcMac: [...pkt.subarray(18, 24)], hop: pkt[ip + 7], nh: pkt[ip + 6],
    src: formatIpv6(pkt, ip + 8), dst: formatIpv6(pkt, ip + 24), icmp: pkt.subarray(ip + 40, ip + 40 + plen),
  };
}

// ---- config -------------------------------------------------------------------

test('config: address6, gateway6 and ra parsed; link-local from the MAC', () => {
  const cfg = parseRouterConfig(CONFIG, 'router', PATH);
  const [lan, wan, dmz] = cfg.domains;
  assert.equal(formatIpv6(lan.ipv6!.address), '2001:db8:0:1::1');
  assert.equal(lan.ipv6!.prefix, 64);
  assert.equal(formatIpv6(lan.ipv6!.network), '2001:db8:0:1::');
  assert.deepEqual(lan.ipv6!.linkLocal, linkLocalFromMac(lan.mac));
  assert.deepEqual(lan.ipv6!.ra, { intervalS: 30, lifetimeS: 1800, dns: [ip6('2001:db8:0:1::53')] });
  assert.equal(lan.ipv6!.gateway, null);
  assert.equal(formatIpv6(wan.ipv6!.gateway!), 'fe80::fe');
  assert.equal(wan.ipv6!.ra, null);
  assert.equal(dmz.ipv6, undefined);
});

test('config: every IPv6 mistake names its path', () => {
  const bad = (domains: Record<string, unknown>, path: string, expected: RegExp): void => {
    assert.throws(() => parseRouterConfig({ domains }, 'router', PATH), (e: unknown) => {
      assert.ok(e instanceof ConfigFileError, String(e));
      assert.match(e.message, new RegExp(`^gw\\.yaml: ${path.replace(/[.[\]]/g, '\\$&')}: `));
      assert.match(e.message, expected);
      return true;
    });
  };
  const v4 = { address: '198.18.0.1/24' };
  const p = 'components[1].config.domains.lan';
  bad({ lan: { ...v4, address6: '2001:db8::1' } }, `${p}.address6`, /expected an IPv6 address with prefix/);
  bad({ lan: { ...v4, address6: '2001:db8::/64' } }, `${p}.address6`, /subnet-router/);
  bad({ lan: { ...v4, address6: 'fe80::1/64' } }, `${p}.address6`, /link-local/);
  bad({ lan: { ...v4, address6: '2001:db8::1/128' } }, `${p}.address6`, /prefix 1 to 127/);
  bad({ lan: { ...v4, gateway6: '2001:db8::fe' } }, `${p}.gateway6`, /without "address6"/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', gateway6: '2001:db9::fe' } }, `${p}.gateway6`, /inside 2001:db8::\/64/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', gateway6: '2001:db8::1' } }, `${p}.gateway6`, /other than the router's own/);
  bad({ lan: { ...v4, address6: '2001:db8::1/56', ra: {} } }, `${p}.ra`, /\/64/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', ra: { 'interval-s': 2 } } }, `${p}.ra.interval-s`, /4/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', ra: { dns: ['ff02::1'] } } }, `${p}.ra.dns[0]`, /unicast IPv6/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', ra: { 'interval-s': 600, 'lifetime-s': 300 } } }, `${p}.ra.lifetime-s`, /at least interval-s/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', ra: { prefix: 1 } } }, `${p}.ra.prefix`, /unknown key/);
  bad({ lan: { ...v4, address6: '2001:db8::1/48' }, wan: { address: '198.19.0.1/24', address6: '2001:db8:0:5::1/64' } },
    'components[1].config.domains.wan.address6', /overlap domain "lan"/);
  bad({ lan: { ...v4, address6: '2001:db8::1/64', gateway6: 'fe80::1' }, wan: { address: '198.19.0.1/24', address6: '2001:db9::1/64', gateway6: 'fe80::2' } },
    'components[1].config.domains.wan.gateway6', /at most one domain/);
});

test('reconfigure: address6 cannot change at run time, ra can', () => {
  const r = rig();
  const moved = structuredClone(CONFIG);
  moved.domains.lan.address6 = '2001:db8:0:2::1/64';
  assert.match(r.router.reconfigure(parseRouterConfig(moved, 'router', PATH)) ?? '', /address6/);
  const ra = structuredClone(CONFIG);
  ra.domains.lan.ra.dns = [];
  assert.equal(r.router.reconfigure(parseRouterConfig(ra, 'router', PATH)), undefined);
});

// ---- Neighbor Discovery ---------------------------------------------------------

test('NS for the global address (solicited-node multicast) is answered with a solicited NA to the SLLA', () => {
  const r = rig();
  const target = ip6('2001:db8:0:1::1');
  const sn = formatIpv6(solicitedNode(target));
  r.send(0, frame6({ src: HOST, dst: sn, dstMac: [0x33, 0x33, 0xff, 0, 0, 1], payload: ns(target, HOST_MAC) }));
  const out = r.ports[0].take();
  assert.equal(out.length, 1);
  const na = parseOut(out[0]);
  assert.deepEqual(na.dstMac, HOST_MAC);
  assert.deepEqual(na.srcMac, [...r.cfg.domains[0].mac]);
  assert.equal(na.hop, 255);
  assert.equal(na.src, '2001:db8:0:1::1');
  assert.equal(na.dst, HOST);
  assert.equal(na.icmp[0], 136);
  assert.equal(na.icmp[4], 0x80 | 0x40 | 0x20, 'router, solicited, override');
  assert.equal(formatIpv6(na.icmp, 8), '2001:db8:0:1::1');
  assert.deepEqual([...na.icmp.subarray(24, 26)], [2, 1], 'target link-layer address option');
  assert.deepEqual([...na.icmp.subarray(26, 32)], [...r.cfg.domains[0].mac]);
  assert.equal(r.counters.get('nd6.na-sent'), 1);
});

test('NS for the link-local address is answered; DAD from :: goes to all nodes without S', () => {
  const r = rig();
  const ll = r.cfg.domains[0].ipv6!.linkLocal;
  r.send(0, frame6({ src: HOST_LL, dst: formatIpv6(solicitedNode(ll)), payload: ns(ll, HOST_MAC) }));
  const [na] = r.ports[0].take().map(parseOut);
  assert.equal(na.src, formatIpv6(ll));
  assert.equal(na.dst, HOST_LL);
  r.send(0, frame6({ src: '::', dst: formatIpv6(solicitedNode(ll)), payload: ns(ll, null) }));
  const [dad] = r.ports[0].take().map(parseOut);
  assert.equal(dad.dst, 'ff02::1');
  assert.deepEqual(dad.dstMac, [0x33, 0x33, 0, 0, 0, 1]);
  assert.equal(dad.icmp[4], 0x80 | 0x20, 'not solicited');
  assert.deepEqual(r.drops(), {});
});

test('ND attacks: wrong target, hop limit below 255, zero-length option, DAD with SLLA, multicast SLLA, NA claiming our address', () => {
  const r = rig();
  const own = ip6('2001:db8:0:1::1');
  const sn = formatIpv6(solicitedNode(own));
  r.send(0, frame6({ src: HOST, dst: sn, payload: ns(ip6('2001:db8:0:1::2'), HOST_MAC) }));
  r.send(0, frame6({ src: HOST, dst: sn, hop: 64, payload: ns(own, HOST_MAC) }));
  r.send(0, frame6({ src: HOST, dst: sn, payload: [...ns(own, null), 1, 0, 0, 0, 0, 0, 0, 0] }));
  r.send(0, frame6({ src: '::', dst: sn, payload: ns(own, HOST_MAC) }));
  r.send(0, frame6({ src: HOST, dst: sn, payload: ns(own, [0x33, 0x33, 0, 0, 0, 1]) }));
  r.send(0, frame6({ src: HOST, dst: 'ff02::1', payload: [136, 0, 0, 0, 0x20, 0, 0, 0, ...own, 2, 1, ...HOST_MAC] }));
  assert.equal(r.ports[0].take().length, 0);
  assert.deepEqual(r.drops(), { 'nd-not-for-us': 1, 'nd-invalid': 4, 'nd-address-conflict': 1 });
  assert.equal(r.counters.get('domain.lan.drop.nd-invalid'), 4);
});

// ---- echo -----------------------------------------------------------------------

test('ICMPv6 echo to the global and link-local addresses is answered from that address', () => {
  const r = rig();
  const mac = [...r.cfg.domains[0].mac];
  for (const dst of ['2001:db8:0:1::1', formatIpv6(r.cfg.domains[0].ipv6!.linkLocal)]) {
    r.send(0, frame6({ src: HOST, dst, dstMac: mac, hop: 64, payload: echoReq(0x1234, 7) }));
    const [rep] = r.ports[0].take().map(parseOut);
    assert.equal(rep.src, dst);
    assert.equal(rep.dst, HOST);
    assert.deepEqual(rep.dstMac, HOST_MAC);
    assert.equal(rep.hop, 64);
    assert.deepEqual([...rep.icmp], [129, 0, rep.icmp[2], rep.icmp[3], 0x12, 0x34, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
  }
  assert.equal(r.counters.get('icmp6.echo-reply-sent'), 2);
  // The wan domain (gateway6) answers a remote source too.
  r.send(1, frame6({ src: '2001:db8:77::9', dst: '2001:db8:ff::1', dstMac: [...r.cfg.domains[1].mac], hop: 50, payload: echoReq(1, 1) }));
  assert.equal(r.ports[1].take().length, 1);
  assert.deepEqual(r.drops(), {});
});

// ---- router advertisements --------------------------------------------------------

test('RA: unsolicited on the tick (jittered interval), solicited by RS at most once per 3 s, SLAAC prefix, M/O off, RDNSS', () => {
  const r = rig();
  r.router.tick();
  r.router.flush();
  const first = r.ports[0].take();
  assert.equal(first.length, 1, 'the first RA goes out at once');
  assert.equal(r.ports[1].take().length, 0, 'no RA where ra is not configured');
  const ra = parseOut(first[0]);
  assert.equal(ra.src, formatIpv6(r.cfg.domains[0].ipv6!.linkLocal));
  assert.equal(ra.dst, 'ff02::1');
  assert.equal(ra.hop, 255);
  const m = ra.icmp;
  assert.equal(m[0], 134);
  assert.equal(m[5], 0, 'M and O off');
  assert.equal((m[6] << 8) | m[7], 1800, 'router lifetime');
  // Options: SLLA (8), prefix information (32), RDNSS (24).
  assert.deepEqual([m[16], m[17]], [1, 1]);
  assert.deepEqual([m[24], m[25], m[26], m[27]], [3, 4, 64, 0xc0]);
  assert.equal(formatIpv6(m, 24 + 16), '2001:db8:0:1::');
  assert.deepEqual([m[56], m[57]], [25, 3]);
  assert.equal(formatIpv6(m, 64), '2001:db8:0:1::53');
  assert.equal(m.length, 80);
  // Next unsolicited: the first three at most 16 s apart, jittered: 0.75 + 0.25 * 0.5 of 16 s = 14 s later.
  r.clock.t += 13_900;
  r.router.tick();
  assert.equal(r.ports[0].take().length, 0);
  r.clock.t += 100;
  r.router.tick();
  r.router.flush();
  assert.equal(r.ports[0].take().length, 1);
  // RS right after: delayed to 3 s after the last RA; a second RS shares it.
  const rs = [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, ...HOST_MAC];
  r.send(0, frame6({ src: HOST_LL, dst: 'ff02::2', dstMac: [0x33, 0x33, 0, 0, 0, 2], payload: rs }));
  r.send(0, frame6({ src: '::', dst: 'ff02::2', dstMac: [0x33, 0x33, 0, 0, 0, 2], payload: [133, 0, 0, 0, 0, 0, 0, 0] }));
  assert.equal(r.ports[0].take().length, 0);
  r.clock.t += 3000;
  r.router.tick();
  r.router.flush();
  assert.equal(r.ports[0].take().length, 1);
  r.clock.t += 3001;
  r.router.flush(); // the router reads its clock once per batch
  r.send(0, frame6({ src: HOST_LL, dst: 'ff02::2', payload: rs }));
  assert.equal(r.ports[0].take().length, 1, 'answered at once when the last RA is old enough');
  assert.equal(r.counters.get('nd6.rs-received'), 3);
  assert.equal(r.counters.get('nd6.ra-sent'), 4);
  // RS on a domain without ra, and an RS from :: with SLLA.
  r.send(1, frame6({ src: 'fe80::9', dst: 'ff02::2', payload: rs }));
  r.send(0, frame6({ src: '::', dst: 'ff02::2', payload: rs }));
  assert.deepEqual(r.drops(), { 'nd-no-ra': 1, 'nd-invalid': 1 });
});

// ---- drops ------------------------------------------------------------------------

test('malformed IPv6 is dropped under its reason: truncated, bad payload length, version, extension chains', () => {
  const r = rig();
  const mac = [...r.cfg.domains[0].mac];
  const to = { src: HOST, dst: '2001:db8:0:1::1', dstMac: mac, hop: 64 };
  const e = echoReq(1, 1);
  r.send(0, frame6({ ...to, payload: e }).subarray(0, 12 + 14 + 30));
  r.send(0, frame6({ ...to, payload: e, plenDelta: 1 }));
  r.send(0, frame6({ ...to, payload: e, version: 4 }));
  // hop-by-hop repeated (a loop), three destination options, RH0, truncated, chain over 1024 bytes
  r.send(0, frame6({ ...to, nh: 0, ext: [0, 0, 1, 4, 0, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0], payload: e }));
  r.send(0, frame6({ ...to, nh: 60, ext: [60, 0, 1, 4, 0, 0, 0, 0, 60, 0, 1, 4, 0, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0], payload: e }));
  r.send(0, frame6({ ...to, nh: 43, ext: [58, 0, 0, 0, 0, 0, 0, 0], payload: e }));
  r.send(0, frame6({ ...to, nh: 60, ext: [58, 5, 1, 4, 0, 0, 0, 0], payload: e }));
  const hop1024 = [60, 127, ...new Array<number>(1022).fill(0)]; // 1024 bytes of Pad1: the next header starts past the bound
  r.send(0, frame6({ ...to, nh: 0, ext: [...hop1024, 58, 0, 1, 4, 0, 0, 0, 0], payload: e }));
  assert.equal(r.ports[0].take().length, 0);
  assert.deepEqual(r.drops(), {
    'ip6-truncated': 2, 'ip6-bad-version': 1, 'ip6-ext-order': 1, 'ip6-ext-duplicate': 1, 'ip6-routing-type-0': 1,
    'ip6-ext-truncated': 1, 'ip6-ext-chain-too-long': 1,
  });
});

test('IPv6 not for the router, bad sources, checksums, fragments, other protocols and types are counted drops', () => {
  const r = rig();
  const mac = [...r.cfg.domains[0].mac];
  const to = { dst: '2001:db8:0:1::1', dstMac: mac, hop: 64 };
  const e = echoReq(1, 1);
  r.send(0, frame6({ ...to, src: HOST, dst: '2001:db8:0:2::9', payload: e }));
  r.send(0, frame6({ ...to, src: HOST, dst: 'ff02::fb', dstMac: [0x33, 0x33, 0, 0, 0, 0xfb], payload: e }));
  r.send(0, frame6({ ...to, src: 'ff02::1', payload: e }));
  r.send(0, frame6({ ...to, src: '2001:db8:0:1::1', payload: e }));
  r.send(0, frame6({ ...to, src: '2001:db8:99::1', payload: e }));
  r.send(0, frame6({ ...to, src: HOST, payload: e, csum: false }));
  r.send(0, frame6({ ...to, src: HOST, payload: [128, 0, 0, 0] }));
  r.send(0, frame6({ ...to, src: HOST, nh: 44, ext: [58, 0, 0, 1, 0, 0, 0, 9], payload: e }));
  r.send(0, frame6({ ...to, src: HOST, nh: 6, payload: new Array<number>(20).fill(0) }));
  r.send(0, frame6({ ...to, src: HOST, payload: [137, 0, 0, 0, 0, 0, 0, 0] }));
  r.send(2, frame6({ ...to, dstMac: [0x33, 0x33, 0, 0, 0, 1], src: HOST, payload: e })); // dmz has no address6
  assert.equal(r.ports[0].take().length, 0);
  assert.deepEqual(r.drops(), {
    'no-rule': 1, 'ip6-multicast': 1, 'ip6-bad-source': 2, 'ip6-spoofed-source': 1, 'icmp6-bad-checksum': 1,
    'icmp6-truncated': 1, 'ip6-fragment': 1, 'to-router': 1, 'icmp6-unsupported-type': 1, 'eth-unsupported-type': 1,
  });
});

test('random and mutated IPv6 frames never throw, and every one is answered or counted', () => {
  const r = rig();
  const mac = [...r.cfg.domains[0].mac];
  const base = frame6({ src: HOST, dst: '2001:db8:0:1::1', dstMac: mac, hop: 64, nh: 60, ext: [58, 0, 1, 4, 0, 0, 0, 0], payload: echoReq(9, 9) });
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const N = 3000;
  let replies = 0;
  for (let i = 0; i < N; i++) {
    const f = base.slice(0, 26 + rnd(base.length - 25));
    for (let k = rnd(4); k >= 0; k--) f[26 + rnd(f.length - 26)] = rnd(256);
    r.send(0, f);
    replies += r.ports[0].take().length;
  }
  const dropped = Object.values(r.drops()).reduce((a, b) => a + b, 0);
  assert.equal(dropped + replies + r.counters.get('nd6.na-received'), N);
});
