// The monitor's tables keyed by packet fields under flooding (issue 13,
// finding 6): flows (keyed hash, bounded chains, per-source eviction), the
// defragmenter's trackers per source, the behavioural detectors' state per
// sender, and the bounded map behind them. Deterministic: counts, never time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedMap } from '../../src/components/monitor/bounded-map.ts';
import { decode } from '../../src/components/monitor/decode.ts';
import { Defrag, DEFRAG_DEFAULTS } from '../../src/components/monitor/defrag.ts';
import { Detectors, DETECTOR_DEFAULTS } from '../../src/components/monitor/detectors.ts';
import { EV } from '../../src/components/monitor/events.ts';
import { FLOW_DEFAULTS, FlowTable, MAX_CHAIN } from '../../src/components/monitor/flow.ts';
import { LINKTYPE_IPV4, Packet } from '../../src/components/monitor/packet.ts';
import { parseMonitorConfig } from '../../src/components/monitor/config.ts';
import { khash2, khash3 } from '../../src/net/keyed-hash.ts';

function csum(b: number[]): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const quad = (a: number): number[] => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255];

function ipv4(src: number, dst: number, proto: number, payload: number[], o: { id?: number; mf?: boolean; fragOff?: number } = {}): number[] {
  const total = 20 + payload.length;
  const fo = ((o.mf ? 1 : 0) << 13) | ((o.fragOff ?? 0) >> 3);
  const id = o.id ?? 1;
  const h = [0x45, 0, total >> 8, total & 255, id >> 8, id & 255, fo >> 8, fo & 255, 64, proto, 0, 0, ...quad(src), ...quad(dst)];
  const c = csum(h);
  h[10] = c >> 8;
  h[11] = c & 255;
  return [...h, ...payload];
}

function syn(sport: number, dport: number): number[] {
  return [sport >> 8, sport & 255, dport >> 8, dport & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
}

function packet(bytes: number[]): Packet {
  const p = new Packet();
  const b = Uint8Array.from(bytes);
  p.reset(b, 0, b.length);
  decode(p, LINKTYPE_IPV4);
  return p;
}

const A = 0xcb007109; // 203.0.113.9
const B = 0xcb00710a;
const SERVER = 0xc6128002;

/** Flows the table holds whose client is `src`. */
function flowsOf(t: FlowTable, src: number): number {
  let n = 0;
  for (const f of t.all()) if (f.src4 >>> 0 === src) n++;
  return n;
}

test('flows: tuples built to share one bucket under the old unkeyed hash spread under the keyed one', () => {
  // The old hash mixed imul(src ^ sport, K) per end: with src ^ sport fixed,
  // every tuple got the same hash, and so the same bucket chain.
  const oldHash = (src: number, sp: number, dst: number, dp: number, proto: number): number =>
    ((Math.imul((src | 0) ^ sp, 0x9e3779b1) ^ Math.imul((dst | 0) ^ dp, 0x9e3779b1)) + Math.imul(proto, 0x85ebca6b)) | 0;
  const olds = new Set<number>();
  for (let sp = 1; sp <= 3000; sp++) olds.add(oldHash((0x0a000000 ^ sp) >>> 0, sp, SERVER, 80, 6));
  assert.equal(olds.size, 1);
  const t = new FlowTable({ ...FLOW_DEFAULTS, max: 4096, maxPerSource: 4096 });
  for (let sp = 1; sp <= 3000; sp++) {
    const src = (0x0a000000 ^ sp) >>> 0;
    assert.ok(t.lookup(packet(ipv4(src, SERVER, 6, syn(sp, 80))), 1000) !== null);
  }
  assert.equal(t.count, 3000);
  assert.equal(t.counters.chainFull, 0);
  assert.ok(t.longestChain() <= 12, `longest chain ${t.longestChain()}`);
  // Both directions still find their flow.
  const back = packet(ipv4(SERVER, (0x0a000000 ^ 7) >>> 0, 6, syn(80, 7)));
  const f = t.lookup(back, 1001);
  assert.ok(f !== null && !back.toServer && f.sp === 7);
  assert.equal(t.count, 3000);
});

test('flows: one source past max-per-source loses only its own oldest flows, counted; others keep theirs', () => {
  const t = new FlowTable({ ...FLOW_DEFAULTS, max: 1024, maxPerSource: 100 });
  for (let i = 0; i < 10; i++) t.lookup(packet(ipv4(B, SERVER, 6, syn(2000 + i, 443))), 1000);
  for (let i = 0; i < 5000; i++) t.lookup(packet(ipv4(A, SERVER, 6, syn(10000 + i, 80))), 1000 + i);
  assert.equal(flowsOf(t, A), 100);
  assert.equal(flowsOf(t, B), 10);
  assert.equal(t.counters.sourceEvicted, 4900);
  assert.equal(t.counters.evicted, 0);
  // A's newest flows are the ones kept.
  const last = packet(ipv4(A, SERVER, 6, syn(10000 + 4999, 80)));
  const before = t.counters.created;
  t.lookup(last, 9000);
  assert.equal(t.counters.created, before);
  // Expiry and eviction keep the per-source counts right: after a sweep A starts again from zero.
  t.sweep(1e9);
  assert.equal(t.count, 0);
  for (let i = 0; i < 100; i++) t.lookup(packet(ipv4(A, SERVER, 6, syn(30000 + i, 80))), 1e9 + 1);
  assert.equal(t.counters.sourceEvicted, 4900);
});

test('flows: a chain is bounded; a new flow beyond it is not tracked, counted', () => {
  // Nobody outside can pick tuples for one bucket (keyed hash); this test can,
  // knowing the process's secret: it recomputes the table's bucket of a tuple.
  const t = new FlowTable({ ...FLOW_DEFAULTS, max: 4096, maxPerSource: 4096 });
  const bucket = (src: number, sp: number): number => {
    const ha = khash2(src, sp);
    const hb = khash2(SERVER, 53);
    return khash3(ha ^ hb, (ha + hb) | 0, 17) & 4095;
  };
  const want = bucket(A, 1);
  const keys: { src: number; sp: number }[] = [];
  for (let i = 0; keys.length < MAX_CHAIN + 8; i++) {
    const src = A + (i >>> 16);
    const sp = (i & 0xffff) + 1;
    if (sp <= 0xffff && bucket(src, sp) === want) keys.push({ src, sp });
  }
  const udp = (sp: number): number[] => [sp >> 8, sp & 255, 0, 53, 0, 8, 0, 0];
  const got = keys.map((k) => t.lookup(packet(ipv4(k.src, SERVER, 17, udp(k.sp))), 1000));
  assert.equal(got.filter((f) => f !== null).length, MAX_CHAIN);
  assert.equal(t.counters.chainFull, 8);
  assert.equal(t.longestChain(), MAX_CHAIN);
  // The tracked ones are still found; the refused ones still are not tracked.
  assert.ok(t.lookup(packet(ipv4(keys[0].src, SERVER, 17, udp(keys[0].sp))), 1001) === got[0]);
  const k = keys[MAX_CHAIN];
  assert.equal(t.lookup(packet(ipv4(k.src, SERVER, 17, udp(k.sp))), 1001), null);
  assert.equal(t.count, MAX_CHAIN);
});

test('defrag: one source past max-trackers-per-source evicts its own oldest, counted; another still reassembles', () => {
  const d = new Defrag({ ...DEFRAG_DEFAULTS, maxTrackers: 64, maxTrackersPerSource: 8 });
  // B's first fragment, then A's flood of first fragments that never complete.
  const data = Array.from({ length: 16 }, (_, i) => i);
  assert.equal(d.add(packet(ipv4(B, SERVER, 17, data, { id: 7, mf: true })), 1000), null);
  for (let id = 1; id <= 500; id++) d.add(packet(ipv4(A, SERVER, 17, data, { id, mf: true })), 1000);
  assert.equal(d.trackers, 9);
  assert.equal(d.counters.sourceEvicted, 492);
  assert.equal(d.counters.trackersFull, 0);
  // B's datagram completes.
  const out = d.add(packet(ipv4(B, SERVER, 17, data, { id: 7, fragOff: 16 })), 1001);
  assert.ok(out !== null && out.length === 20 + 32);
  assert.equal(d.counters.reassembled, 1);
});

test('detectors: one source touching many destinations cannot flush another scanner state', () => {
  const det = new Detectors({ ...DETECTOR_DEFAULTS, maxTracked: 256, maxTrackedPerSource: 32, portScan: { enabled: true, ports: 20, seconds: 3 },
    synFlood: { enabled: false, rate: 200, seconds: 1 } });
  // B probes 19 ports of one host: one short of the threshold.
  for (let port = 1; port <= 19; port++) det.observe(packet(ipv4(B, SERVER, 6, syn(40000, port))), 100);
  // A touches 5000 hosts once each (no scan of any one host).
  for (let i = 0; i < 5000; i++) det.observe(packet(ipv4(A, 0x0a000000 + i, 6, syn(40000, 80))), 100);
  assert.ok(det.evictions.sourceEvicted >= 5000 - 32);
  assert.equal(det.evictions.evicted, 0);
  // B's 20th port fires: its state survived.
  const p = packet(ipv4(B, SERVER, 6, syn(40000, 20)));
  det.observe(p, 101);
  assert.equal(det.counters.portScans, 1);
  assert.ok(p.events.includes(EV['mg.port_scan']));
});

test('BoundedMap: per-group and total bounds evict the oldest, counted, with onEvict', () => {
  const m = new BoundedMap<number>(10, 3);
  const gone: string[] = [];
  m.onEvict = (k) => gone.push(k);
  for (let i = 0; i < 5; i++) m.set(`a${i}`, 'a', i);
  assert.deepEqual(gone, ['a0', 'a1']);
  assert.equal(m.groupSize('a'), 3);
  for (let g = 0; g < 5; g++) for (let i = 0; i < 2; i++) m.set(`g${g}-${i}`, `g${g}`, i);
  assert.equal(m.size, 10);
  assert.equal(m.counters.groupEvicted, 2);
  assert.equal(m.counters.evicted, 3);
  assert.equal(m.get('a2'), undefined);
  assert.equal(m.get('g4-1'), 1);
  m.set('g4-1', 'g4', 9);
  assert.equal(m.get('g4-1'), 9);
  assert.ok(m.delete('g4-1'));
  assert.equal(m.groupSize('g4'), 1);
});

test('config: flow.max-per-source, defrag.max-trackers-per-source, detectors.max-tracked-per-source: defaults and errors', () => {
  const src = { file: 'g.yaml', path: 'components[3].config' };
  const d = parseMonitorConfig({}, src);
  assert.equal(d.flow.maxPerSource, 16384);
  assert.equal(d.defrag.maxTrackersPerSource, 256);
  assert.equal(d.detectors.maxTrackedPerSource, 1024);
  assert.equal(parseMonitorConfig({ flow: { max: 1000 } }, src).flow.maxPerSource, 250);
  assert.throws(() => parseMonitorConfig({ flow: { max: 1000, 'max-per-source': 2000 } }, src), /components\[3\]\.config\.flow\.max-per-source: expected an integer from 1 to 1000/);
  assert.throws(() => parseMonitorConfig({ defrag: { 'max-trackers-per-source': 0 } }, src), /defrag\.max-trackers-per-source/);
  assert.throws(() => parseMonitorConfig({ detectors: { 'max-tracked-per-source': 'x' } }, src), /detectors\.max-tracked-per-source/);
});

test('flows: IPv6 tuples hash by their full addresses, both directions meet, the per-source limit applies', async () => {
  const { LINKTYPE_IPV6 } = await import('../../src/components/monitor/packet.ts');
  const v6 = (src: number[], dst: number[], sp: number, dp: number): Packet => {
    const b = Uint8Array.from([0x60, 0, 0, 0, 0, 8, 17, 64, ...src, ...dst, sp >> 8, sp & 255, dp >> 8, dp & 255, 0, 8, 0, 0]);
    const p = new Packet();
    p.reset(b, 0, b.length);
    decode(p, LINKTYPE_IPV6);
    return p;
  };
  const addr = (last: number, first = 0x20): number[] => [first, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), last];
  const t = new FlowTable({ ...FLOW_DEFAULTS, max: 256, maxPerSource: 8 });
  const f = t.lookup(v6(addr(1), addr(2), 5000, 53), 1000);
  assert.ok(f !== null && f.ipVer === 6);
  const back = v6(addr(2), addr(1), 53, 5000);
  assert.equal(t.lookup(back, 1001), f);
  assert.equal(back.toServer, false);
  // Addresses differing only in their first byte are different flows.
  assert.notEqual(t.lookup(v6(addr(1, 0x30), addr(2), 5000, 53), 1002), f);
  for (let i = 0; i < 50; i++) t.lookup(v6(addr(9), addr(2), 6000 + i, 53), 1003 + i);
  assert.equal(t.count, 2 + 8);
  assert.equal(t.counters.sourceEvicted, 42);
});

test('rule thresholds: one source reaching many destinations evicts only its own by_dst state, counted', async () => {
  const { Engine } = await import('../../src/components/monitor/engine.ts');
  const { loadRules } = await import('../../src/components/monitor/rules/parse.ts');
  const { builtinClassifications } = await import('../../src/components/monitor/rules/classification.ts');
  const { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } = await import('../../src/components/monitor/rules/vars.ts');
  const { MAX_THRESHOLD_KEYS_PER_SOURCE } = await import('../../src/components/monitor/detect/detect.ts');
  const rules = loadRules([{ name: 't.rules', text: 'alert udp any any -> any any (msg:"lim"; content:"X"; threshold:type limit, track by_dst, count 1, seconds 3600; sid:40;)' }],
    { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS }, classifications: builtinClassifications() });
  assert.equal(rules.errors.length, 0);
  let alerts = 0;
  const e = new Engine({
    rules, classifications: builtinClassifications(), midstream: false, eveTypes: ['alert'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: [], packetBytes: 0 },
    emit: (l) => {
      if (l.includes('"event_type":"alert"')) alerts++;
    },
  });
  const send = (src: number, dst: number): void => {
    const b = Uint8Array.from(ipv4(src, dst, 17, [0, 9, 0, 9, 0, 9, 0, 0, 0x58]));
    e.process(b, 0, b.length, LINKTYPE_IPV4, 1_700_000_000, 0, 0, -1);
  };
  const n = MAX_THRESHOLD_KEYS_PER_SOURCE + 500;
  send(B, SERVER);
  assert.equal(alerts, 1);
  for (let i = 0; i < n; i++) send(A, 0x0a000000 + i);
  assert.equal(alerts, 1 + n);
  assert.equal(e.detector.thresholdsEvicted, 500);
  send(B, SERVER); // B's state survived: still limited
  assert.equal(alerts, 1 + n);
  send(A, 0x0a000000); // A's oldest went: it alerts again
  assert.equal(alerts, 2 + n);
});
