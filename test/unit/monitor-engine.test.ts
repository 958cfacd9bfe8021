// The monitor's parts on crafted packets: rule parser (ET Open load rate,
// header specs, errors with reasons), content matching semantics, the
// Aho-Corasick prefilter against a naive search, defragmentation (teardrop,
// ping of death), TCP reassembly across segments, thresholds and flowbits,
// the behavioural detectors, pcap reading, config errors, and the router's
// mirror (a full mirror drops and counts, it never blocks), and a packet
// crafted for a pathological pcre (linear work, counted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AhoCorasick } from '../../src/components/monitor/detect/ac.ts';
import { Engine } from '../../src/components/monitor/engine.ts';
import { builtinRulesText, pcreStatus } from '../../src/components/monitor/index.ts';
import { LINKTYPE_ETHERNET } from '../../src/components/monitor/packet.ts';
import { readCapture } from '../../src/components/monitor/pcap.ts';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { parsePcre } from '../../src/components/monitor/rules/pcre.ts';
import { addrMatch4, DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS, parseAddr, parsePort, portMatch } from '../../src/components/monitor/rules/vars.ts';
import { parseMonitorConfig } from '../../src/components/monitor/config.ts';
import { Mirror, parseMirrorConfig } from '../../src/components/router/mirror.ts';
import { Counters } from '../../src/runtime/counters.ts';
import { ConfigFileError } from '../../src/config/reader.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const IDS = join(REPO, 'test', 'fixtures', 'ids');
const VARS = { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS };

// ---- frames ------------------------------------------------------------------------

function ip4(s: string): number[] {
  return s.split('.').map(Number);
}

function csum(b: number[]): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

interface IpOpts { src?: string; dst?: string; proto: number; id?: number; mf?: boolean; fragOff?: number; ttl?: number }

function ipv4(o: IpOpts, payload: number[]): number[] {
  const total = 20 + payload.length;
  const fo = ((o.mf ? 1 : 0) << 13) | ((o.fragOff ?? 0) >> 3);
  const h = [0x45, 0, total >> 8, total & 255, (o.id ?? 1) >> 8, (o.id ?? 1) & 255, fo >> 8, fo & 255, o.ttl ?? 64, o.proto, 0, 0,
    ...ip4(o.src ?? '10.0.0.1'), ...ip4(o.dst ?? '192.168.1.10')];
  const c = csum(h);
  h[10] = c >> 8;
  h[11] = c & 255;
  return [...h, ...payload];
}

function tcp(sport: number, dport: number, flags: number, seq: number, data: number[] = [], ack = 0): number[] {
  return [sport >> 8, sport & 255, dport >> 8, dport & 255, seq >>> 24, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255,
    ack >>> 24, (ack >>> 16) & 255, (ack >>> 8) & 255, ack & 255, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0, ...data];
}

function eth(payload: number[], type = 0x0800, src = [2, 0, 0, 0, 0, 1]): Uint8Array {
  return Uint8Array.from([2, 0, 0, 0, 0, 2, ...src, type >> 8, type & 255, ...payload]);
}

function arp(op: number, smac: number[], sip: string, tip: string): Uint8Array {
  return eth([0, 1, 8, 0, 6, 4, 0, op, ...smac, ...ip4(sip), 0, 0, 0, 0, 0, 0, ...ip4(tip)], 0x0806, smac);
}

const text = (s: string): number[] => [...Buffer.from(s, 'latin1')];

function engine(rules: string, opts: { midstream?: boolean; builtin?: boolean } = {}): { e: Engine; alerts: () => number[]; events: Record<string, unknown>[] } {
  const sources = [{ name: 't.rules', text: rules }];
  if (opts.builtin) sources.unshift({ name: 'builtin.rules', text: builtinRulesText() });
  const r = loadRules(sources, { vars: VARS, classifications: builtinClassifications() });
  assert.deepEqual(r.errors.map((x) => x.reason), [], 'test rules load');
  const events: Record<string, unknown>[] = [];
  const e = new Engine({
    rules: r, classifications: builtinClassifications(), midstream: opts.midstream ?? false,
    eveTypes: ['alert', 'anomaly'], eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: ['lan', 'wan'], packetBytes: 0 },
    emit: (l) => events.push(JSON.parse(l) as Record<string, unknown>),
  });
  const alerts = (): number[] => events.filter((x) => x.event_type === 'alert').map((x) => (x.alert as { signature_id: number }).signature_id);
  return { e, alerts, events };
}

let clock = 1_700_000_000;
function feed(e: Engine, f: Uint8Array, domain = -1): void {
  e.process(f, 0, f.length, LINKTYPE_ETHERNET, clock, 0, 0, domain);
}

// ---- rules -------------------------------------------------------------------------

test('ET Open packet-level rules load at >= 95%, every rejected rule with a reason', { skip: !existsSync(join(IDS, 'et-open')) }, () => {
  const pkt = /^alert (tcp|udp|icmp|ip|tcp-pkt|tcp-stream|pkthdr) /;
  const sources = ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules'].map((f) => ({
    name: f, text: readFileSync(join(IDS, 'et-open', f), 'utf8').split('\n').filter((l) => pkt.test(l)).join('\n'),
  }));
  const r = loadRules(sources, { vars: VARS, classifications: builtinClassifications() });
  assert.ok(r.total > 150, `packet-level rules found: ${r.total}`);
  assert.ok(r.rules.length / r.total >= 0.95, `loaded ${r.rules.length} of ${r.total}`);
  for (const e of r.errors) assert.ok(e.reason.length > 5 && e.line > 0, JSON.stringify(e));
});

test('rule errors name the rule and the reason; nothing throws', () => {
  const r = loadRules([{ name: 'bad.rules', text: [
    'alert tcp any any -> any any (msg:"no sid";)',
    'alert tcp any any -> any any (msg:"x"; content:"abc"; depth:2; sid:2;)',
    'alert tcp $NOPE any -> any any (msg:"x"; sid:3;)',
    'alert tcp any any -> any any (msg:"x"; frobnicate:1; sid:4;)',
    'alert tcp any any -> any any (msg:"x"; pcre:"/(?|a|b)/"; sid:5;)',
    'alert tcp any any -> any any (msg:"ok"; content:"abc"; sid:6;)',
    'alert tcp any any -> any any (msg:"dup"; content:"abc"; sid:6;)',
  ].join('\n') }], { vars: VARS, classifications: builtinClassifications() });
  assert.equal(r.rules.length, 1);
  const reasons = r.errors.map((e) => `${e.line}:${e.reason}`);
  assert.match(reasons[0], /^1:missing sid/);
  assert.match(reasons[1], /^2:depth 2 is shorter than the content/);
  assert.match(reasons[2], /^3:header: undefined address variable \$NOPE/);
  assert.match(reasons[3], /^4:unsupported keyword "frobnicate"/);
  assert.match(reasons[4], /^5:pcre: branch reset/);
  assert.match(reasons[5], /^7:duplicate sid 6/);
});

test('address and port specs: lists, ranges, variables, negation', () => {
  const home = parseAddr('$HOME_NET', VARS);
  const ext = parseAddr('$EXTERNAL_NET', VARS);
  assert.ok(addrMatch4(home, (192 << 24) | (168 << 16) | 5));
  assert.ok(!addrMatch4(ext, (192 << 24) | (168 << 16) | 5));
  assert.ok(addrMatch4(ext, (8 << 24) | 8));
  const l = parseAddr('[10.0.0.0/8,!10.1.0.0/16]', {});
  assert.ok(addrMatch4(l, (10 << 24) | 5));
  assert.ok(!addrMatch4(l, (10 << 24) | (1 << 16) | 5));
  const p = parsePort('[21,1024:,!8080]', {});
  assert.ok(portMatch(p, 21) && portMatch(p, 5000) && !portMatch(p, 8080) && !portMatch(p, 80));
  assert.ok(portMatch(parsePort('$SHELLCODE_PORTS', VARS), 443) && !portMatch(parsePort('$SHELLCODE_PORTS', VARS), 80));
});

test('pcre translation: named groups, \\g back references, x flag, relative', () => {
  const a = parsePcre('"/^(?P<w>ab)\\g{1}/R"');
  assert.ok(a.relative && a.re.test('abab') && !a.re.test('abba'));
  const b = parsePcre('/a b # comment\n c/x');
  assert.ok(b.re.test('abc'));
  assert.equal(parsePcre('/x/P').buffer, 'http.request_body');
});

test('Aho-Corasick finds exactly what a naive search finds, case-insensitively', () => {
  const pats = ['he', 'she', 'his', 'hers', 'HERS', 'a\x00b', 'xyz'].map((s) => Uint8Array.from(Buffer.from(s, 'latin1')));
  const ac = new AhoCorasick(pats);
  const hay = Uint8Array.from(Buffer.from('ushers HIS a\x00b shE xyzxyz', 'latin1'));
  const got: string[] = [];
  ac.scan(hay, 0, hay.length, (id) => got.push(Buffer.from(pats[id]).toString('latin1')));
  const want: string[] = [];
  const low = Buffer.from(hay).toString('latin1').toLowerCase();
  for (let i = 0; i < low.length; i++) for (const p of pats) if (low.startsWith(Buffer.from(p).toString('latin1').toLowerCase(), i)) want.push(Buffer.from(p).toString('latin1'));
  assert.deepEqual(got.sort(), want.sort());
});

// ---- detection ---------------------------------------------------------------------

test('content modifiers: offset/depth, distance/within, negation, nocase, byte_test, isdataat', () => {
  const { e, alerts } = engine([
    'alert udp any any -> any any (msg:"depth"; content:"GET"; depth:3; sid:1;)',
    'alert udp any any -> any any (msg:"rel"; content:"AB"; content:"CD"; distance:1; within:3; sid:2;)',
    'alert udp any any -> any any (msg:"neg"; content:"AB"; content:!"ZZ"; sid:3;)',
    'alert udp any any -> any any (msg:"nocase"; content:"get"; nocase; offset:0; depth:3; sid:4;)',
    'alert udp any any -> any any (msg:"bt"; content:"|00 02|"; offset:10; depth:2; byte_test:1,>,5,0,relative; sid:5;)',
    'alert udp any any -> any any (msg:"isdataat"; content:"AB"; isdataat:!1,relative; sid:6;)',
  ].join('\n'));
  const udp = (d: number[]): Uint8Array => eth(ipv4({ proto: 17 }, [0, 1, 0, 2, 0, 8 + d.length, 0, 0, ...d]));
  feed(e, udp(text('GET ABxCD and more')));
  assert.deepEqual(alerts().sort(), [1, 2, 3, 4]);
  feed(e, udp(text('xGET ABxxxxCD ZZ'))); // depth fails, within fails, negation fails
  assert.deepEqual(alerts().sort(), [1, 2, 3, 4]);
  feed(e, udp([...text('0123456789'), 0, 2, 9]));
  feed(e, udp(text('xxAB'))); // AB at the end: isdataat:!1,relative; no ZZ: the negation rule too
  assert.deepEqual(alerts().sort((a, b) => a - b), [1, 2, 3, 3, 4, 5, 6]);
});

test('TCP reassembly: a pattern split across two segments matches once', () => {
  const { e, alerts } = engine('alert tcp any any -> any 80 (msg:"split"; flow:established,to_server; content:"EVILPAYLOAD"; sid:10;)');
  const c = { src: '10.0.0.1', dst: '192.168.1.10', proto: 6 };
  const s = { src: '192.168.1.10', dst: '10.0.0.1', proto: 6 };
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x02, 100))));
  feed(e, eth(ipv4(s, tcp(80, 1234, 0x12, 500, [], 101))));
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x10, 101, [], 501))));
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x18, 101, text('xxEVIL'), 501))));
  assert.deepEqual(alerts(), []);
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x18, 107, text('PAYLOADyy'), 501))));
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x18, 107, text('PAYLOADyy'), 501)))); // retransmission
  feed(e, eth(ipv4(c, tcp(1234, 80, 0x18, 116, text('zzzz'), 501))));
  assert.deepEqual(alerts(), [10]);
});

test('flowbits and thresholds', () => {
  const { e, alerts } = engine([
    'alert udp any any -> any any (msg:"set"; content:"LOGIN"; flowbits:set,login; flowbits:noalert; sid:20;)',
    'alert udp any any -> any any (msg:"after login"; content:"CMD"; flowbits:isset,login; sid:21;)',
    'alert udp any any -> any any (msg:"limit"; content:"CMD"; threshold:type limit, track by_src, count 2, seconds 60; sid:22;)',
    'alert udp any any -> any any (msg:"df"; content:"CMD"; detection_filter:track by_src, count 3, seconds 60; sid:23;)',
  ].join('\n'));
  const udp = (d: string): Uint8Array => eth(ipv4({ proto: 17 }, [0, 1, 0, 2, 0, 8 + d.length, 0, 0, ...text(d)]));
  feed(e, udp('CMD'));
  feed(e, udp('LOGIN'));
  for (let i = 0; i < 4; i++) feed(e, udp('CMD'));
  const a = alerts();
  assert.equal(a.filter((x) => x === 20).length, 0);
  assert.equal(a.filter((x) => x === 21).length, 4);
  assert.equal(a.filter((x) => x === 22).length, 2);
  assert.equal(a.filter((x) => x === 23).length, 2);
});

test('defragmentation: teardrop overlap, ping of death, and a clean datagram rebuilt', () => {
  const { e, alerts } = engine('alert udp any any -> any 53 (msg:"rebuilt"; content:"WHOLE"; sid:30;)', { builtin: true });
  const payload = [0, 9, 0, 53, 0, 8 + 24, 0, 0, ...text('xxxxxxxxxxxxxxxxxxxWHOLE')];
  feed(e, eth(ipv4({ proto: 17, id: 7, mf: true }, payload.slice(0, 16))));
  feed(e, eth(ipv4({ proto: 17, id: 7, fragOff: 16 }, payload.slice(16))));
  assert.deepEqual(alerts(), [30]);
  feed(e, eth(ipv4({ proto: 17, id: 8, mf: true }, new Array(24).fill(65))));
  feed(e, eth(ipv4({ proto: 17, id: 8, fragOff: 8 }, new Array(16).fill(66))));
  assert.ok(alerts().includes(8000010), 'teardrop');
  feed(e, eth(ipv4({ proto: 1, id: 9, fragOff: 65512 }, new Array(64).fill(88))));
  assert.ok(alerts().includes(8000011), 'ping of death');
});

test('built-in rules: land attack, NULL / XMAS / SYN+FIN, port scan, SYN flood, ARP spoofing', () => {
  const { e, alerts } = engine('', { builtin: true });
  feed(e, eth(ipv4({ src: '192.168.1.10', dst: '192.168.1.10', proto: 6 }, tcp(139, 139, 0x02, 1))));
  feed(e, eth(ipv4({ proto: 6 }, tcp(1000, 22, 0x00, 1))));
  feed(e, eth(ipv4({ proto: 6 }, tcp(1000, 23, 0x29, 1))));
  feed(e, eth(ipv4({ proto: 6 }, tcp(1000, 24, 0x03, 1))));
  for (let p = 1; p <= 30; p++) feed(e, eth(ipv4({ src: '10.9.9.9', proto: 6 }, tcp(5555, p, 0x02, 1))));
  for (let i = 0; i < 300; i++) feed(e, eth(ipv4({ src: `10.${i & 255}.${i >> 8}.1`, proto: 6 }, tcp(1024 + i, 80, 0x02, i))));
  feed(e, arp(2, [2, 0, 0, 0, 0, 0xaa], '192.168.1.1', '192.168.1.10'), 0);
  feed(e, arp(2, [2, 0, 0, 0, 0, 0xaa], '192.168.1.1', '192.168.1.10'), 0);
  assert.ok(!alerts().includes(8000042), 'a repeated binding is no spoof');
  feed(e, arp(2, [2, 0, 0, 0, 0, 0xbb], '192.168.1.1', '192.168.1.10'), 0);
  const a = new Set(alerts());
  for (const sid of [8000001, 8000002, 8000003, 8000004, 8000040, 8000041, 8000042]) assert.ok(a.has(sid), `sid ${sid}`);
});

test('EVE alert records carry Suricata\'s fields', () => {
  const { e, events } = engine('alert tcp any any -> any any (msg:"syn"; flags:S; classtype:attempted-recon; sid:40; rev:3;)');
  feed(e, eth(ipv4({ proto: 6 }, tcp(1234, 80, 0x02, 1))), 1);
  const a = events.find((x) => x.event_type === 'alert') as Record<string, any>;
  assert.equal(a.src_ip, '10.0.0.1');
  assert.equal(a.dest_port, 80);
  assert.equal(a.proto, 'TCP');
  assert.equal(a.in_iface, 'wan');
  assert.equal(typeof a.flow_id, 'number');
  assert.match(a.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$/);
  assert.deepEqual({ ...a.alert }, { action: 'allowed', gid: 1, signature_id: 40, rev: 3, signature: 'syn', category: 'Attempted Information Leak', severity: 2 });
});

test('pcap reader: a truncated file yields the packets before the damage and an error', () => {
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt32LE(1, 20);
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(60, 8);
  const pkt = Buffer.alloc(60);
  const file = Buffer.concat([hdr, rec, pkt, rec, pkt.subarray(0, 10)]);
  const got: number[] = [];
  assert.throws(() => { for (const p of readCapture(file, 'x.pcap')) got.push(p.data.length); }, /x.pcap: truncated packet/);
  assert.deepEqual(got, [60]);
});

// ---- config and mirror ----------------------------------------------------------------

test('monitor config errors name the path', () => {
  assert.throws(() => parseMonitorConfig({ flow: { max: 1 } }, { file: 'g.yaml', path: 'components[4].config' }),
    (e: unknown) => e instanceof ConfigFileError && e.path === 'components[4].config.flow.max' && /integer from 16/.test(e.expected));
  assert.throws(() => parseMonitorConfig({ eve: { types: ['alerts'] } }, { file: 'g.yaml', path: 'c' }), /expected one of alert, anomaly/);
  assert.throws(() => parseMonitorConfig({ 'rule-files': ['relative.rules'] }, { file: 'g.yaml', path: 'c' }), /absolute path/);
});

test('router mirror: copies and tags frames, drops and counts when the monitor is behind', () => {
  assert.throws(() => parseMirrorConfig({ domains: ['lan', 'nope'] }, ['lan', 'wan'], 'g.yaml', 'r.mirror'), /domains\[1\]: expected the name of a domain/);
  const cfg = parseMirrorConfig({ domains: ['wan'] }, ['lan', 'wan'], 'g.yaml', 'r.mirror');
  assert.ok(cfg !== undefined);
  const submitted: number[] = [];
  let free = 2;
  const buf = new Uint8Array(4 * 256);
  const port = { buf, slotSize: 256, alloc: () => (free > 0 ? 256 * --free : -1), submit: (o: number, l: number) => { submitted.push(o, l); }, flush: () => {} };
  const counters = new Counters();
  const m = new Mirror(cfg, ['lan', 'wan'], port, counters);
  const frame = new Uint8Array(80).fill(7);
  m.rx(0, frame, 0, 80); // lan: not mirrored
  m.rx(1, frame, 0, 80);
  m.tx(1, frame, 0, 80, -1);
  m.rx(1, frame, 0, 80); // no slot left
  assert.equal(submitted.length, 4);
  assert.equal(counters.get('mirror.copied'), 2);
  assert.equal(counters.get('drop.mirror-full'), 1);
  assert.equal(buf[256 + 10] | (buf[256 + 11] << 8), 1); // rx on domain 1
  assert.equal(buf[0 + 10] | (buf[0 + 11] << 8), 1 | 0x8000); // tx on domain 1
});

test('attack: a packet built for a pathological pcre costs the engine linear work (counted), and the rule still matches what it should', () => {
  const rules = 'alert tcp-pkt any any -> any any (msg:"evil pcre"; content:"aaaa"; pcre:"/(?:[a-z0-9]++)+;/"; sid:7;)\n';
  const r = loadRules([{ name: 't.rules', text: rules }], { vars: VARS, classifications: builtinClassifications() });
  const events: Record<string, unknown>[] = [];
  const e = new Engine({
    rules: r, classifications: builtinClassifications(), midstream: false,
    eveTypes: ['alert'], eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: ['lan', 'wan'], packetBytes: 0 },
    emit: (l) => events.push(JSON.parse(l) as Record<string, unknown>),
  });
  const t0 = performance.now();
  // 1400 bytes of [a-z] then "!;": V8's backtracking on the greedy translation would take longer than the universe's age.
  feed(e, eth(ipv4({ proto: 6 }, tcp(40000, 80, 0x18, 1, text(`${'a'.repeat(1400)}!;`)))));
  const ms = performance.now() - t0;
  assert.equal(events.length, 0);
  feed(e, eth(ipv4({ proto: 6 }, tcp(40001, 80, 0x18, 1, text('xx aaaab9; yy')))));
  assert.deepEqual(events.map((x) => (x.alert as { signature_id: number }).signature_id), [7]);
  const st = pcreStatus(r.rules, false) as { linear: { evaluations: number; bytes: number; work: number }; rules: { sid: number; workPerByte: number }[] };
  assert.equal(st.linear.evaluations, 2);
  assert.equal(st.linear.bytes, 1402 + 13);
  assert.equal(st.linear.work, (1402 + 13) * st.rules[0].workPerByte);
  assert.ok(ms < 2000, `backstop: ${ms.toFixed(0)} ms`);
});

test('router mirror: a forwarded frame whose ingress domain is mirrored on receive is tagged as the second copy when sent', () => {
  const cfg = parseMirrorConfig({ domains: ['lan', 'wan'] }, ['lan', 'wan', 'dmz'], 'g.yaml', 'r.mirror');
  assert.ok(cfg !== undefined);
  const tags: number[] = [];
  const buf = new Uint8Array(8 * 256);
  let next = 0;
  const port = { buf, slotSize: 256, alloc: () => 256 * next++, submit: (o: number) => { tags.push(buf[o + 10] | (buf[o + 11] << 8)); }, flush: () => {} };
  const m = new Mirror(cfg, ['lan', 'wan', 'dmz'], port, new Counters());
  const frame = new Uint8Array(80);
  m.tx(1, frame, 0, 80, 0); // forwarded lan -> wan: lan is mirrored on receive
  m.tx(1, frame, 0, 80, 2); // forwarded dmz -> wan: dmz is not mirrored, this is the only copy
  m.tx(1, frame, 0, 80, -1); // the router's own frame
  assert.deepEqual(tags, [1 | 0x8000 | 0x4000, 1 | 0x8000, 1 | 0x8000]);
});

test('one alert per packet per signature with both copies of a NATed connection mirrored; flows and rule state kept in both', () => {
  const { e, alerts, events } = engine([
    'alert tcp any any -> any 80 (msg:"get"; flow:established,to_server; content:"GET /evil"; flowbits:set,evil; sid:50;)',
    'alert tcp any 80 -> any any (msg:"answer to evil"; flow:established,to_client; flowbits:isset,evil; content:"200"; sid:51;)',
  ].join('\n'));
  // One connection lan 10.0.0.5:4000 -> 192.0.2.80:80, NATed to 198.19.0.1:61000 on the wan.
  const lanC = { src: '10.0.0.5', dst: '192.0.2.80' };
  const wanC = { src: '198.19.0.1', dst: '192.0.2.80' };
  const frames: [IpOpts, number[], boolean, number][] = [];
  const both = (c: { src: string; dst: string }, sp: number, flags: number, seq: number, data: number[], ack: number, toServer: boolean, second: boolean, dom: number): void => {
    const o: IpOpts = toServer ? { src: c.src, dst: c.dst, proto: 6 } : { src: c.dst, dst: c.src, proto: 6 };
    frames.push([o, toServer ? tcp(sp, 80, flags, seq, data, ack) : tcp(80, sp, flags, seq, data, ack), second, dom]);
  };
  const req = text('GET /evil HTTP/1.1\r\nHost: x\r\n\r\n');
  const resp = text('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  // Each packet: the copy as received (first), then as sent on the other domain (second copy).
  both(lanC, 4000, 0x02, 100, [], 0, true, false, 0); both(wanC, 61000, 0x02, 100, [], 0, true, true, 1);
  both(wanC, 61000, 0x12, 500, [], 101, false, false, 1); both(lanC, 4000, 0x12, 500, [], 101, false, true, 0);
  both(lanC, 4000, 0x10, 101, [], 501, true, false, 0); both(wanC, 61000, 0x10, 101, [], 501, true, true, 1);
  both(lanC, 4000, 0x18, 101, req, 501, true, false, 0); both(wanC, 61000, 0x18, 101, req, 501, true, true, 1);
  both(wanC, 61000, 0x18, 501, resp, 101 + req.length, false, false, 1); both(lanC, 4000, 0x18, 501, resp, 101 + req.length, false, true, 0);
  for (const [o, l4, second, dom] of frames) {
    const f = eth(ipv4(o, l4));
    e.process(f, 0, f.length, LINKTYPE_ETHERNET, clock, 0, 0, dom, second ? 1 : 0, second);
  }
  assert.deepEqual(alerts(), [50, 51], JSON.stringify(events.map((x) => [x.event_type, x.src_ip])));
  assert.equal(e.stats.secondCopies, 5);
  assert.equal(e.flows.count, 2); // the connection in each address space
});

test('second copies are dropped before decoding when no rule sets a flowbit, inspected when one does; alerts once either way', () => {
  const run = (rules: string): { alerts: number[]; skipped: number; copies: number } => {
    const { e, alerts } = engine(rules);
    const a = eth(ipv4({ src: '10.0.0.5', dst: '192.0.2.80', proto: 17 }, [0x10, 0x00, 0x00, 0x35, 0, 12, 0, 0, ...text('EVIL')]));
    const b = eth(ipv4({ src: '198.19.0.1', dst: '192.0.2.80', proto: 17 }, [0xee, 0x00, 0x00, 0x35, 0, 12, 0, 0, ...text('EVIL')]));
    for (let i = 0; i < 3; i++) {
      e.process(a, 0, a.length, LINKTYPE_ETHERNET, clock + i, 0, 0, 0, 0, false);
      e.process(b, 0, b.length, LINKTYPE_ETHERNET, clock + i, 0, 0, 1, 1, true);
    }
    return { alerts: alerts(), skipped: e.stats.secondCopiesSkipped, copies: e.stats.secondCopies };
  };
  const plain = run('alert udp any any -> any 53 (msg:"evil"; content:"EVIL"; sid:60;)');
  assert.deepEqual(plain, { alerts: [60, 60, 60], skipped: 3, copies: 3 });
  const stateful = run('alert udp any any -> any 53 (msg:"evil"; content:"EVIL"; flowbits:set,seen; sid:61;)');
  assert.deepEqual(stateful, { alerts: [61, 61, 61], skipped: 0, copies: 3 });
});

/** A TCP stream of `segments` segments of 1400 bytes (past the 1 MiB depth after 749), `last` as the last one's payload. */
function pastDepth(rules: string, last: number[], segments = 1000): { alerts: number[]; scanned: number } {
  const { e, alerts } = engine(rules);
  const c = { src: '10.0.0.5', dst: '192.0.2.80', proto: 6 };
  const s = { src: '192.0.2.80', dst: '10.0.0.5', proto: 6 };
  feed(e, eth(ipv4(c, tcp(4000, 80, 0x02, 100))));
  feed(e, eth(ipv4(s, tcp(80, 4000, 0x12, 500, [], 101))));
  feed(e, eth(ipv4(c, tcp(4000, 80, 0x10, 101, [], 501))));
  const chunk = new Array(1400).fill(0x41);
  let seq = 101;
  for (let i = 0; i < segments; i++) {
    const data = i === segments - 1 ? last : chunk;
    feed(e, eth(ipv4(c, tcp(4000, 80, 0x18, seq, data, 501))));
    seq += data.length;
  }
  return { alerts: alerts(), scanned: e.detector.counters.prefilterBytes };
}

test('past the stream depth a TCP packet is not scanned for stream rules; a tcp-pkt rule still sees every packet', () => {
  // 1 MiB (the default depth, ~750 segments) and 2000 segments more, "NEEDLE" in the last one.
  const needle = [...new Array(1394).fill(0x41), ...text('NEEDLE')];
  const stream = pastDepth('alert tcp any any -> any 80 (msg:"needle"; content:"NEEDLE"; sid:70;)', needle, 2760);
  assert.deepEqual(stream.alerts, [], 'past the depth: not inspected (as Suricata)');
  // Up to the depth each window is the segment plus up to 2 KiB of tail (~2.6 MB); the 2.8 MB after it are not scanned.
  assert.ok(stream.scanned < 2_700_000, `bytes scanned ${stream.scanned}: the windows up to the depth, not every packet after it`);
  const pkt = pastDepth('alert tcp-pkt any any -> any 80 (msg:"needle"; content:"NEEDLE"; sid:71;)', needle, 2760);
  assert.deepEqual(pkt.alerts, [71]);
});

test('past the stream depth only the packet rules\' patterns are looked for, each no further than its content can end', () => {
  const run = pastDepth;
  const needleLate = [...new Array(1394).fill(0x41), ...text('NEEDLE')];
  const needleFirst = [...text('NEEDLE'), ...new Array(1394).fill(0x41)];
  const rules = [
    'alert tcp any any -> any 80 (msg:"stream"; content:"NEEDLE"; sid:80;)',
    'alert tcp-pkt any any -> any 80 (msg:"anchored"; content:"NEEDLE"; startswith; sid:81;)',
  ].join('\n');
  const late = run(rules, needleLate);
  assert.deepEqual(late.alerts, [], 'startswith: a NEEDLE at the end of a packet is not it');
  const first = run(rules, needleFirst);
  assert.deepEqual(first.alerts, [81]);
  // Up to the depth (1 MiB: 749 packets) the windows are scanned as with the stream rule alone;
  // after it, 251 packets x 6 bytes: the anchored pattern where it can be, nothing else.
  const streamOnly = run(rules.split('\n')[0], needleLate);
  assert.equal(late.scanned - streamOnly.scanned, 251 * 6);
  assert.equal(first.scanned, late.scanned);
  // Case: a nocase packet rule (the automaton path) and an exact one (the native search) both find theirs.
  const mixed = [
    'alert tcp-pkt any any -> any 80 (msg:"nocase"; content:"needle"; nocase; sid:82;)',
    'alert tcp-pkt any any -> any 80 (msg:"exact"; content:"NEEDLE"; sid:83;)',
    'alert tcp-pkt any any -> any 80 (msg:"exact, wrong case"; content:"Needle"; sid:84;)',
  ].join('\n');
  assert.deepEqual(run(mixed, needleLate).alerts.sort(), [82, 83]);
  assert.deepEqual(run(mixed.split('\n').slice(1).join('\n'), needleLate).alerts, [83]);
});

test('past the stream depth a packet rule still finds its pattern at the latest end the rule allows', () => {
  // The latest end: x at 0, then 2 + 8 bytes: 11; "bash" (4) then within 30: 34.
  const cases: [string, string][] = [
    ['content:"x"; depth:1; content:"abcdef"; distance:2; within:8;', 'x....abcdef'],
    ['pcre:"/^(?:ba)?sh/"; content:"|3a 20|no|20|job"; fast_pattern; within:30;', `bash${'.'.repeat(22)}: no job`],
  ];
  for (const [opts, str] of cases) {
    const rule = `alert tcp-pkt any any -> any 80 (msg:"t"; ${opts} sid:90;)`;
    const payload = [...text(str), ...new Array(1400 - str.length).fill(0x2e)];
    assert.deepEqual(pastDepth(rule, payload).alerts, [90], `${opts}: "${str}"`);
  }
});

test('past the stream depth a packet pattern gated by flowbits:isset is looked for only on flows with the bit', () => {
  const needle = [...new Array(1394).fill(0x41), ...text('NEEDLE')];
  const gated = 'alert tcp-pkt any any -> any 80 (msg:"gated"; flowbits:isset,seen; content:"NEEDLE"; sid:91;)';
  const base = pastDepth('alert tcp any any -> any 80 (msg:"stream"; content:"NEVER"; sid:92;)', needle);
  // No rule sets "seen": nothing is looked for after the depth.
  const off = pastDepth(`${gated}\nalert tcp any any -> any 80 (msg:"stream"; content:"NEVER"; sid:92;)`, needle);
  assert.deepEqual(off.alerts, []);
  assert.equal(off.scanned, base.scanned);
  // A stream rule sets it early in the flow (its pattern in the first segments, all "A"s): then it is looked for.
  const setter = 'alert tcp any any -> any 80 (msg:"setter"; content:"AAAA"; flowbits:set,seen; flowbits:noalert; sid:93;)';
  const on = pastDepth(`${gated}\n${setter}`, needle);
  assert.deepEqual(on.alerts, [91]);
  // A setter that can run on the same packet (no payload fast pattern) turns the gate off: found in one packet.
  // (dsize 1300: the last packet only; every other one is 1400 bytes.)
  const same = 'alert tcp-pkt any any -> any 80 (msg:"same packet"; dsize:1300; flowbits:set,seen; flowbits:noalert; sid:94;)';
  assert.deepEqual(pastDepth(`${gated}\n${same}`, needle.slice(100)).alerts, [91]);
});
