// Hash flooding (issue 13, finding 6): the keyed hash against its reference
// vectors, the old hash's colliding key set spread by the keyed one, the probe
// bound and the per-source limit of the connection table, the keyed counters
// behind per-source limits, and a one-source SYN flood through the router.
// Deterministic: counts and probe lengths, never time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { khash1, khash2, khash3, khash4, khashBytes, PROCESS_K0, PROCESS_K1, randomKey } from '../../src/net/keyed-hash.ts';
import { KeyedCounts } from '../../src/net/keyed-counts.ts';
import {
  ConnTable, CT_LINKED, CT_REFUSED_PROBE, CT_REFUSED_SOURCE, ctHash, ctHashLegacy, type Conn,
} from '../../src/components/router/conntrack.ts';
import { legacyCollidingKeys, legacySourceFor } from '../../src/bench/hash-attack.ts';
import { IPPROTO_TCP } from '../../src/net/ipv4.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Router, type EgressPort } from '../../src/components/router/router.ts';
import { Counters } from '../../src/runtime/counters.ts';
import { formatMac } from '../../src/net/addr.ts';
import { encodeFrame } from '../../src/net/frame.ts';
import { TCP_SYN } from '../../src/net/tcp.ts';

// ---- the keyed hash ----------------------------------------------------------------

// HalfSipHash-1-3 reference outputs (Linux lib/tests/siphash_kunit.c, the
// 32-bit hsiphash vectors): key bytes 00..07, message bytes 00..n-1.
const K0 = 0x03020100;
const K1 = 0x07060504;
const w = (i: number): number => (4 * i) | ((4 * i + 1) << 8) | ((4 * i + 2) << 16) | ((4 * i + 3) << 24);

test('khash1..4 are HalfSipHash-1-3: the reference vectors for 4, 8, 12 and 16 bytes', () => {
  assert.equal(khash1(w(0), K0, K1) >>> 0, 0x7e059ea6);
  assert.equal(khash2(w(0), w(1), K0, K1) >>> 0, 0x577999b1);
  assert.equal(khash3(w(0), w(1), w(2), K0, K1) >>> 0, 0x6b28096c);
  assert.equal(khash4(w(0), w(1), w(2), w(3), K0, K1) >>> 0, 0x8b31d501);
  // u32 and int32 forms of a word hash alike.
  assert.equal(khash2(0xc6120001, 7, K0, K1), khash2(0xc6120001 | 0, 7, K0, K1));
});

test('the process secret is random and used by default; another key gives other hashes', () => {
  assert.notDeepEqual([PROCESS_K0, PROCESS_K1], [0, 0]);
  assert.equal(khash4(1, 2, 3, 4), khash4(1, 2, 3, 4, PROCESS_K0, PROCESS_K1));
  const [a, b] = randomKey();
  let same = 0;
  for (let i = 0; i < 64; i++) if (khash2(i, 9) === khash2(i, 9, a, b)) same++;
  assert.ok(same <= 1, `${same} of 64 equal under two keys`);
  // khashBytes: every byte matters.
  const buf = new Uint8Array(16).map((_, i) => i);
  const h = khashBytes(buf, 0, 16, 5);
  buf[15] ^= 1;
  assert.notEqual(khashBytes(buf, 0, 16, 5), h);
});

// ---- the attack on the old hash -----------------------------------------------------------

const WAN = 0;
const DMZ = 1;
const FWD_ADDR = 0xc6130001 | 0;
const HOST = 0xc6128002 | 0;

function fillForward(t: ConnTable, keys: readonly { src: number; sport: number }[]): { linked: Conn[]; refused: number[] } {
  const linked: Conn[] = [];
  const refused: number[] = [];
  for (const k of keys) {
    const c = t.acquire();
    assert.ok(c !== undefined);
    c.proto = IPPROTO_TCP;
    c.inDom = WAN;
    c.oSrc = k.src | 0;
    c.oSport = k.sport;
    c.oDst = FWD_ADDR;
    c.oDport = 80;
    c.outDom = DMZ;
    c.rSrc = HOST;
    c.rSport = 8080;
    c.rDst = k.src | 0;
    c.rDport = k.sport;
    c.expires = Infinity;
    const r = t.link(c);
    if (r === CT_LINKED) linked.push(c);
    else {
      t.abandon(c);
      refused.push(r);
    }
  }
  return { linked, refused };
}

test('the chosen keys share one home slot under the old hash and pile up there', () => {
  const keys = legacyCollidingKeys(2048, IPPROTO_TCP, WAN, FWD_ADDR, 80);
  const homes = new Set(keys.map((k) => ctHashLegacy(IPPROTO_TCP, WAN, k.src | 0, k.sport, FWD_ADDR, 80) & 0xffff));
  assert.equal(homes.size, 1);
  assert.equal(legacySourceFor(0x12345678, 6, 0, 1, 2, 3) >>> 0, legacySourceFor(0x12345678, 6, 0, 1, 2, 3) >>> 0);
  const old = new ConnTable(2048, { legacyHash: true });
  const { refused } = fillForward(old, keys);
  assert.equal(refused.length, 0);
  // The old table's worst miss walks past every one of them.
  assert.ok(old.longestProbe() >= 2048, `longest probe ${old.longestProbe()}`);
});

test('the same keys spread under the keyed hash: all placed, probes stay short', () => {
  const keys = legacyCollidingKeys(16384, IPPROTO_TCP, WAN, FWD_ADDR, 80);
  const homes = new Set(keys.map((k) => ctHash(IPPROTO_TCP, WAN, k.src | 0, k.sport, FWD_ADDR, 80) & 0xffff));
  assert.ok(homes.size > 12000, `${homes.size} distinct home slots of 16384 keys`);
  const t = new ConnTable(16384);
  const { linked, refused } = fillForward(t, keys);
  assert.equal(refused.length, 0);
  assert.equal(t.count, 16384);
  assert.ok(t.longestProbe() <= t.maxProbe, `longest probe ${t.longestProbe()} > ${t.maxProbe}`);
  for (const c of linked.slice(0, 500)) {
    assert.equal(t.lookup(IPPROTO_TCP, WAN, c.oSrc, c.oSport, FWD_ADDR, 80), c.slot * 2);
    assert.equal(t.lookup(IPPROTO_TCP, DMZ, HOST, 8080, c.rDst, c.rDport), c.slot * 2 + 1);
  }
});

test('probing is bounded: a key with no free slot within maxProbe is refused, never placed further', () => {
  // Keys that collide under this process's keyed hash, found by trying (a small index: 64 slots).
  const t = new ConnTable(16, { maxProbe: 8 });
  const mask = 63;
  const want = ctHash(IPPROTO_TCP, WAN, 1, 1000, FWD_ADDR, 80) & mask;
  const keys: { src: number; sport: number }[] = [];
  for (let sport = 1000; keys.length < 12; sport++) {
    if ((ctHash(IPPROTO_TCP, WAN, 1, sport, FWD_ADDR, 80) & mask) === want) keys.push({ src: 1, sport });
  }
  const { linked, refused } = fillForward(t, keys);
  assert.ok(refused.length >= 4, `refused ${refused.length}`);
  assert.ok(refused.every((r) => r === CT_REFUSED_PROBE));
  assert.ok(linked.length <= 8);
  assert.ok(t.longestProbe() <= 8);
  assert.equal(t.count, linked.length);
  for (const c of linked) assert.equal(t.lookup(IPPROTO_TCP, WAN, 1, c.oSport, FWD_ADDR, 80), c.slot * 2);
  const linkedPorts = new Set(linked.map((c) => c.oSport));
  for (const k of keys) if (!linkedPorts.has(k.sport)) assert.equal(t.lookup(IPPROTO_TCP, WAN, 1, k.sport, FWD_ADDR, 80), -1);
  // Removal keeps the rest findable and within the bound; once the run is gone a refused key fits.
  t.remove(linked[0]);
  for (const c of linked.slice(1)) assert.equal(t.lookup(IPPROTO_TCP, WAN, 1, c.oSport, FWD_ADDR, 80), c.slot * 2);
  assert.ok(t.longestProbe() <= 8);
  for (const c of linked.slice(1)) t.remove(c);
  assert.equal(t.count, 0);
  const again = fillForward(t, [keys.find((k) => !linkedPorts.has(k.sport))!]);
  assert.equal(again.linked.length, 1);
});

test('per-source limit: one source stops at its limit, counted; others still get entries', () => {
  const t = new ConnTable(1000, { perSource: 10 });
  const flood = Array.from({ length: 50 }, (_, i) => ({ src: 0xcb007109, sport: 2000 + i }));
  const a = fillForward(t, flood);
  assert.equal(a.linked.length, 10);
  assert.equal(a.refused.length, 40);
  assert.ok(a.refused.every((r) => r === CT_REFUSED_SOURCE));
  assert.ok(t.sourceFull(WAN, 0xcb007109));
  assert.equal(t.sourceCount(WAN, 0xcb007109), 10);
  // The same address arriving on another domain is another source.
  assert.ok(!t.sourceFull(DMZ, 0xcb007109));
  const b = fillForward(t, Array.from({ length: 5 }, (_, i) => ({ src: 0xcb00710a + i, sport: 3000 })));
  assert.equal(b.linked.length, 5);
  t.remove(a.linked[0]);
  assert.equal(t.sourceCount(WAN, 0xcb007109), 9);
  assert.equal(fillForward(t, [{ src: 0xcb007109, sport: 9999 }]).linked.length, 1);
});

// ---- keyed counters --------------------------------------------------------------------

test('KeyedCounts agrees with a Map model through random increments and decrements', () => {
  const k = new KeyedCounts(300, 16);
  const model = new Map<string, number>();
  let s = 12345;
  const rnd = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return (s >>> 8) % n;
  };
  for (let i = 0; i < 20000; i++) {
    const a = rnd(400) - 200;
    const b = rnd(3);
    const key = `${a}/${b}`;
    if (rnd(2) === 0) {
      const was = model.get(key) ?? 0;
      const id = k.inc(a, b);
      if (id >= 0) {
        model.set(key, was + 1);
        assert.equal(k.idOf(a, b), id);
        assert.ok(id < 300);
        assert.equal(k.countOf(id), was + 1);
      }
      else assert.equal(was, 0, 'only a new key may be refused');
    } else {
      k.dec(a, b);
      const was = model.get(key) ?? 0;
      if (was > 1) model.set(key, was - 1);
      else model.delete(key);
    }
    if (i % 997 === 0) {
      assert.equal(k.size, model.size);
      for (const [key2, n] of model) {
        const [x, y] = key2.split('/').map(Number);
        assert.equal(k.get(x, y), n, key2);
      }
    }
  }
  assert.ok(k.size <= 300);
  k.clear();
  assert.equal(k.size, 0);
  assert.equal(k.get(1, 1), 0);
});

// ---- through the router ------------------------------------------------------------------

class Port implements EgressPort {
  readonly slotSize = 2048;
  readonly buf = new Uint8Array(64 * 2048);
  sent = 0;
  alloc(): number {
    return 0;
  }
  submit(): void {
    this.sent++;
  }
  flush(): void {}
}

test('router: a SYN flood from one source to a port forward hits conntrack.per-source, counted; others still connect', () => {
  const cfg = parseRouterConfig({
    domains: {
      lan: { address: '198.18.0.1/24' },
      wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', 'tcp-forward': [{ port: 80, to: 'lan', host: '198.18.0.2', 'host-port': 8080 }] },
    },
    conntrack: { 'per-source': 5 },
  }, 'router', { file: 'test.yaml', path: 'components[0].config' });
  const counters = new Counters();
  const router = new Router(cfg, [new Port(), new Port()], counters, { clock: () => 1_000_000 });
  const wanMac = formatMac(cfg.domains[1].mac);
  const ingress = new Uint8Array(4096);
  const syn = (src: string, sport: number): void => {
    const pkt = encodeFrame({ kind: 'ipv4', eth: { dst: wanMac, src: '02:00:00:00:00:fe' }, ip: { src, dst: '198.19.0.1' },
      l4: { proto: 'tcp', tcp: { srcPort: sport, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 65535, payload: new Uint8Array(0) } } });
    ingress.set(pkt, 0);
    router.receive(1, ingress, 0, pkt.length);
    router.flush();
  };
  for (let i = 0; i < 40; i++) syn('203.0.113.9', 10000 + i);
  const ct = (): { count: number; perSource: number; longestProbe: number } => router.status().conntrack as { count: number; perSource: number; longestProbe: number };
  assert.equal(ct().count, 5);
  assert.equal(ct().perSource, 5);
  assert.equal(counters.get('drop.conntrack-source-limit'), 35);
  assert.equal(counters.get('domain.wan.drop.conntrack-source-limit'), 35);
  syn('203.0.113.10', 10000);
  syn('203.0.113.11', 10000);
  assert.equal(ct().count, 7);
  assert.equal(counters.get('drop.conntrack-source-limit'), 35);
  assert.ok(ct().longestProbe >= 1 && ct().longestProbe <= 64);
});

test('config: conntrack.per-source and max-probe are checked, with their defaults', () => {
  const base = { domains: { lan: { address: '198.18.0.1/24' } } };
  const src = { file: 'g.yaml', path: 'components[0].config' };
  const d = parseRouterConfig(base, 'router', src);
  assert.equal(d.conntrack.perSource, 4096);
  assert.equal(d.conntrack.maxProbe, 64);
  assert.throws(() => parseRouterConfig({ ...base, conntrack: { 'per-source': -1 } }, 'router', src), /conntrack\.per-source/);
  assert.throws(() => parseRouterConfig({ ...base, conntrack: { 'max-probe': 2 } }, 'router', src), /conntrack\.max-probe: .*8/);
});

// ---- ARP cache ----------------------------------------------------------------------------

test('ARP cache: a keyed index (no Map), full at ARP_MAX_ENTRIES, deletion while iterating', async () => {
  const { ArpCache, ARP_MAX_ENTRIES } = await import('../../src/components/router/arp-cache.ts');
  const c = new ArpCache();
  const base = 0x0a000000;
  for (let i = 0; i < ARP_MAX_ENTRIES; i++) assert.ok(c.add(base + i * 7) !== undefined);
  assert.equal(c.add(base - 1), undefined);
  assert.equal(c.entries.size, ARP_MAX_ENTRIES);
  assert.equal(c.get((base + 70) | 0)?.ip, base + 70);
  assert.equal(c.get(base + 71), undefined);
  let n = 0;
  for (const e of c.entries.values()) {
    if ((n++ & 1) === 0) c.delete(e);
  }
  assert.equal(n, ARP_MAX_ENTRIES);
  assert.equal(c.entries.size, ARP_MAX_ENTRIES / 2);
  let found = 0;
  for (let i = 0; i < ARP_MAX_ENTRIES; i++) if (c.get(base + i * 7) !== undefined) found++;
  assert.equal(found, ARP_MAX_ENTRIES / 2);
  assert.ok(c.add(base - 1) !== undefined);
  c.entries.clear();
  assert.equal(c.entries.size, 0);
  assert.equal(c.get(base - 1), undefined);
});

// ---- the benchmark's plumbing (its counts, not its times) ----------------------------------

test('hash-bench: all four tables filled, the old one piled up under chosen keys, the keyed one not', async () => {
  const { hashBench, formatHashBench } = await import('../../src/bench/hash-bench.ts');
  const r = hashBench(512, 32, 1);
  assert.equal(r.rows.length, 4);
  for (const row of r.rows) {
    assert.equal(row.connections, 512);
    assert.equal(row.refused, 0);
    assert.ok(Number.isFinite(row.missNs) && Number.isFinite(row.hitNs));
  }
  const row = (hash: string, keys: string) => r.rows.find((x) => x.hash === hash && x.keys === keys)!;
  assert.ok(row('legacy', 'chosen').longestProbe >= 512);
  assert.ok(row('keyed', 'chosen').longestProbe <= 64);
  assert.match(formatHashBench(r, 32, 1), /chosen \/ random, miss: old [\d.]+x, keyed [\d.]+x/);
});

// ---- run-time blocks ------------------------------------------------------------------------

test('run-time blocks: a keyed index (no Map), full at MAX_RUNTIME_BLOCKS, hits counted, expiry swept', async () => {
  const { RuntimeBlocks, MAX_RUNTIME_BLOCKS } = await import('../../src/components/router/runtime-blocks.ts');
  const b = new RuntimeBlocks();
  const base = 0xcb000000;
  for (let i = 0; i < MAX_RUNTIME_BLOCKS; i++) assert.ok(b.add(base + i, i < 100 ? 1000 : 60_000, 'test', 0));
  assert.equal(b.add(0xc0000201, 1000, 'one too many', 0), false);
  assert.ok(b.add(base + 5, 2000, 'again', 0), 'refreshing a held address is no new entry');
  assert.equal(b.size, MAX_RUNTIME_BLOCKS);
  assert.ok(b.has((base + 7) | 0, 10));
  assert.ok(!b.has(base - 1, 10));
  b.hit((base + 7) | 0);
  b.hit(base + 7);
  assert.equal(b.entries().find((e) => e.ip === base + 7)?.drops, 2);
  // Past 1 s: the first 100 expire except the refreshed one; has() says no before the sweep already.
  assert.ok(!b.has(base + 1, 1500));
  assert.ok(b.has(base + 5, 1500));
  assert.equal(b.sweep(1500), 99);
  assert.equal(b.size, MAX_RUNTIME_BLOCKS - 99);
  assert.ok(b.add(0xc0000201, 1000, 'room again', 1500));
  assert.equal(b.entries().find((e) => e.ip === base + 5)?.times, 2);
});
