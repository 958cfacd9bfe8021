// The monitor's flood and ARP-poisoning detectors (issue 18): floods spread
// over many destinations (half-open rates sensor-wide and per destination
// network, bursts and sustained), UDP and ICMP floods, ARP poisoning seen
// mid-attack, static bindings, gratuitous storms; benign traffic raises none;
// offline mode and live mode give the same verdicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DETECTOR_DEFAULTS, type DetectorConfig } from '../../src/components/monitor/detectors.ts';
import { FLOOD_DEFAULTS } from '../../src/components/monitor/floods.ts';
import { ARP_DEFAULTS } from '../../src/components/monitor/arp-watch.ts';
import { builtinRulesText } from '../../src/components/monitor/index.ts';
import { runOffline } from '../../src/components/monitor/offline.ts';
import { parseMonitorConfig } from '../../src/components/monitor/config.ts';
import { ConfigFileError } from '../../src/config/reader.ts';
import { arp, eth, icmpEcho, ipv4, monitorEngine, tcp, udp } from './fixtures/monitor-frames.ts';

const SPREAD = 8000043;
const UDP_FLOOD = 8000044;
const ICMP_FLOOD = 8000045;
const ARP_SPOOF = 8000042;
const MULTI_CLAIM = 8000046;
const GARP_STORM = 8000047;
const PER_DEST = 8000041;

/** A deterministic pseudo-random generator (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const randIp = (r: () => number): string => `${1 + Math.floor(r() * 222)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 254)}`;
const count = (a: number[], sid: number): number => a.filter((x) => x === sid).length;

/** The flood seen in the field: ~100 SYNs in 16 ms, random sources, every one to another address and port. */
function spreadSynFlood(t0: number, seed = 1): { f: Uint8Array; t: number }[] {
  const r = rng(seed);
  return Array.from({ length: 100 }, (_, i) => ({
    f: eth(ipv4(randIp(r), randIp(r), 6, tcp(1024 + Math.floor(r() * 60000), 1 + Math.floor(r() * 65000), 0x02, i))),
    t: t0 + (i * 0.016) / 100,
  }));
}

test('a SYN flood spread over many destinations (100 SYNs in 16 ms, random sources) raises one alert; the per-destination count never would', () => {
  const m = monitorEngine();
  for (const { f, t } of spreadSynFlood(1000)) m.feed(f, t);
  assert.equal(count(m.alerts(), SPREAD), 1);
  assert.equal(count(m.alerts(), PER_DEST), 0);
  assert.equal(m.e.detectors.floods.counters.tcpFloods, 1);
});

test('half-open SYNs towards one network fire its network meter (burst), the sensor-wide meter set high', () => {
  const cfg: DetectorConfig = { ...DETECTOR_DEFAULTS, flood: { ...FLOOD_DEFAULTS, tcp: { ...FLOOD_DEFAULTS.tcp, burst: 1e6, rate: 1e6 } } };
  const m = monitorEngine(cfg);
  const r = rng(7);
  for (let i = 0; i < 60; i++) m.feed(eth(ipv4(randIp(r), `198.51.100.${1 + i}`, 6, tcp(2000 + i, 443, 0x02))), 50 + i * 0.0002);
  assert.equal(count(m.alerts(), SPREAD), 1);
});

test('a sustained spread flood below the burst threshold fires by its rate', () => {
  const m = monitorEngine();
  const r = rng(3);
  // 1100 SYNs over 1 s: 22 per 20 ms burst window (threshold 64), 1100/s (threshold 1000).
  for (let i = 0; i < 1100; i++) m.feed(eth(ipv4(randIp(r), randIp(r), 6, tcp(3000, 80 + (i % 7), 0x02))), 200 + i / 1100);
  assert.equal(count(m.alerts(), SPREAD), 1);
});

test('answered SYNs are not half-open: 300 connections in 30 ms, each answered (SYN/ACK or RST), raise no flood', () => {
  const m = monitorEngine();
  const r = rng(5);
  for (let i = 0; i < 300; i++) {
    const c = randIp(r);
    const s = `203.0.113.${1 + (i % 50)}`;
    const t = 300 + i * 0.0001;
    m.feed(eth(ipv4(c, s, 6, tcp(4000 + i, 80, 0x02, 100))), t);
    m.feed(eth(ipv4(s, c, 6, tcp(80, 4000 + i, i % 2 === 0 ? 0x12 : 0x14, 500, 101))), t + 0.00005);
  }
  assert.deepEqual(m.alerts().filter((s) => s === SPREAD || s === PER_DEST), []);
  assert.equal(m.e.detectors.floods.counters.answered, 300);
});

test('UDP: new unanswered flows from random sources flood; one busy flow and answered queries do not', () => {
  const m = monitorEngine();
  const r = rng(11);
  // iperf3-like: one 4-tuple, 5000 datagrams in 0.5 s.
  for (let i = 0; i < 5000; i++) m.feed(eth(ipv4('10.0.0.5', '192.0.2.9', 17, udp(40000, 5201))), 400 + i / 10000);
  // DNS-like: 400 queries from distinct ports, each answered.
  for (let i = 0; i < 400; i++) {
    m.feed(eth(ipv4('10.0.0.5', '192.0.2.53', 17, udp(20000 + i, 53))), 401 + i / 4000);
    m.feed(eth(ipv4('192.0.2.53', '10.0.0.5', 17, udp(53, 20000 + i))), 401 + i / 4000 + 0.00001);
  }
  assert.equal(count(m.alerts(), UDP_FLOOD), 0);
  for (let i = 0; i < 200; i++) m.feed(eth(ipv4(randIp(r), '192.0.2.9', 17, udp(1024 + i, 1 + Math.floor(r() * 65000)))), 402 + i * 0.00005);
  assert.equal(count(m.alerts(), UDP_FLOOD), 1);
});

test('ICMP: echo requests from random sources flood; a ping flood that is answered does not', () => {
  const m = monitorEngine();
  const r = rng(13);
  for (let i = 0; i < 1000; i++) {
    m.feed(eth(ipv4('10.0.0.5', '192.0.2.9', 1, icmpEcho(8, 77, i))), 500 + i / 10000);
    m.feed(eth(ipv4('192.0.2.9', '10.0.0.5', 1, icmpEcho(0, 77, i))), 500 + i / 10000 + 0.00001);
  }
  // 100 hosts each pinged once by another source, all answered.
  for (let i = 0; i < 100; i++) {
    const s = randIp(r);
    m.feed(eth(ipv4(s, `192.0.2.${i + 1}`, 1, icmpEcho(8, i, 1))), 501 + i * 0.0001);
    m.feed(eth(ipv4(`192.0.2.${i + 1}`, s, 1, icmpEcho(0, i, 1))), 501 + i * 0.0001 + 0.00001);
  }
  assert.equal(count(m.alerts(), ICMP_FLOOD), 0);
  for (let i = 0; i < 100; i++) m.feed(eth(ipv4(randIp(r), '192.0.2.200', 1, icmpEcho(8, i, 1))), 502 + i * 0.0001);
  assert.equal(count(m.alerts(), ICMP_FLOOD), 1);
});

const GW_MAC = [2, 0x4d, 0x47, 0, 0, 1];
const HOST_MAC = [2, 0, 0, 0, 0, 0x10];
const EVIL = [2, 0xee, 0, 0, 0, 0x66];

test('ARP poisoning in a capture that starts mid-attack: one MAC claims the gateway address, then a host address', () => {
  const m = monitorEngine();
  m.feed(arp(2, EVIL, '192.168.1.1', '192.168.1.10'), 600);
  m.feed(arp(2, EVIL, '192.168.1.1', '192.168.1.10'), 601);
  assert.deepEqual(m.alerts(), []);
  m.feed(arp(2, EVIL, '192.168.1.10', '192.168.1.1'), 602);
  assert.deepEqual(m.alerts(), [MULTI_CLAIM]);
  // More claims by the same MAC in the window: no repeat.
  m.feed(arp(2, EVIL, '192.168.1.11', '192.168.1.1'), 603);
  assert.deepEqual(m.alerts(), [MULTI_CLAIM]);
});

test('ARP: a static binding (the gateway) claimed by another MAC fires at once; a changed known binding fires', () => {
  const cfg: DetectorConfig = { ...DETECTOR_DEFAULTS, arpSpoof: { ...ARP_DEFAULTS, staticBindings: new Map([[0xc0a80101, '02:4d:47:00:00:01']]) } };
  const m = monitorEngine(cfg);
  m.feed(arp(1, GW_MAC, '192.168.1.1', '192.168.1.10'), 700);
  m.feed(arp(2, HOST_MAC, '192.168.1.10', '192.168.1.1'), 700.1);
  assert.deepEqual(m.alerts(), []);
  m.feed(arp(2, EVIL, '192.168.1.1', '192.168.1.10'), 701);
  assert.deepEqual(m.alerts(), [ARP_SPOOF]);
  assert.equal(m.e.detectors.arp.counters.staticViolations, 1);
  const n = monitorEngine();
  n.feed(arp(2, HOST_MAC, '192.168.1.10', '192.168.1.1'), 700);
  n.feed(arp(2, EVIL, '192.168.1.10', '192.168.1.1'), 710);
  assert.deepEqual(n.alerts(), [ARP_SPOOF]);
});

test('ARP: a gratuitous storm from one MAC fires once per window; a host announcing itself does not; allow-listed MACs may claim many', () => {
  const cfg: DetectorConfig = { ...DETECTOR_DEFAULTS, arpSpoof: { ...ARP_DEFAULTS, multiAddressMacs: new Set(['02:00:00:00:00:10']) } };
  const m = monitorEngine(cfg);
  for (let i = 0; i < 3; i++) m.feed(arp(1, HOST_MAC, '192.168.1.10', '192.168.1.10'), 800 + i);
  for (let i = 1; i <= 5; i++) m.feed(arp(2, HOST_MAC, `192.168.1.${10 + i}`, '192.168.1.1'), 804 + i);
  assert.deepEqual(m.alerts(), []);
  for (let i = 0; i < 30; i++) m.feed(arp(2, EVIL, '192.168.1.77', '192.168.1.77'), 820 + i * 0.01);
  assert.equal(count(m.alerts(), GARP_STORM), 1);
});

test('offline mode and live mode give the same verdicts on the same frames', () => {
  const frames = [...spreadSynFlood(900, 21)];
  frames.push({ f: arp(2, EVIL, '10.1.1.1', '10.1.1.2'), t: 901 }, { f: arp(2, EVIL, '10.1.1.2', '10.1.1.1'), t: 901.5 });
  const live = monitorEngine();
  for (const { f, t } of frames) live.feed(f, t);
  // The same frames as a pcap through `microgate monitor --pcap`'s path.
  const dir = mkdtempSync(join(tmpdir(), 'mg-floods-'));
  try {
    const hdr = Buffer.alloc(24);
    hdr.writeUInt32LE(0xa1b2c3d4, 0);
    hdr.writeUInt16LE(2, 4);
    hdr.writeUInt16LE(4, 6);
    hdr.writeUInt32LE(65535, 16);
    hdr.writeUInt32LE(1, 20);
    const recs = frames.map(({ f, t }) => {
      const h = Buffer.alloc(16);
      h.writeUInt32LE(Math.floor(t), 0);
      h.writeUInt32LE(Math.round((t % 1) * 1e6), 4);
      h.writeUInt32LE(f.length, 8);
      h.writeUInt32LE(f.length, 12);
      return Buffer.concat([h, Buffer.from(f)]);
    });
    writeFileSync(join(dir, 'c.pcap'), Buffer.concat([hdr, ...recs]));
    const sids: number[] = [];
    const r = runOffline({ pcap: join(dir, 'c.pcap'), ruleFiles: [], rules: builtinRulesText(), eveTypes: ['alert'],
      emit: (l) => sids.push((JSON.parse(l) as { alert: { signature_id: number } }).alert.signature_id) });
    assert.equal(r.error, undefined);
    assert.deepEqual(sids, live.alerts());
    assert.deepEqual([...new Set(sids)].sort(), [SPREAD, MULTI_CLAIM]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('detector config: thresholds and bindings validated with the path', () => {
  const src = { file: 'gw.yaml', path: 'components[3].config' };
  const parse = (d: unknown): DetectorConfig => parseMonitorConfig({ detectors: d }, src).detectors;
  const c = parse({ flood: { 'burst-ms': 10, tcp: { burst: 20 } }, 'arp-spoof': { static: { '10.0.0.1': '02:AA:bb:cc:dd:ee' }, 'addresses-per-mac': 3 } });
  assert.equal(c.flood.burstMs, 10);
  assert.equal(c.flood.tcp.burst, 20);
  assert.equal(c.flood.tcp.rate, FLOOD_DEFAULTS.tcp.rate);
  assert.equal(c.arpSpoof.staticBindings.get(0x0a000001), '02:aa:bb:cc:dd:ee');
  assert.equal(c.arpSpoof.addressesPerMac, 3);
  const bad: [unknown, RegExp][] = [
    [{ flood: { tcp: { brust: 1 } } }, /detectors\.flood\.tcp.*brust/],
    [{ flood: { 'burst-ms': 0 } }, /detectors\.flood\.burst-ms/],
    [{ 'arp-spoof': { static: { '10.0.0.300': '02:00:00:00:00:01' } } }, /detectors\.arp-spoof\.static.*IPv4 address/],
    [{ 'arp-spoof': { static: { '10.0.0.1': 'zz' } } }, /detectors\.arp-spoof\.static.*MAC address/],
    [{ 'arp-spoof': { 'multi-address-macs': ['nope'] } }, /detectors\.arp-spoof\.multi-address-macs\[0\].*MAC/],
  ];
  for (const [d, re] of bad) {
    assert.throws(() => parse(d), (e: unknown) => e instanceof ConfigFileError && re.test(e.message) && e.message.includes('gw.yaml'), JSON.stringify(d));
  }
});
