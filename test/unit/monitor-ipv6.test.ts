// The monitor's IPv6 decoding (issue 15), on crafted packets: Suricata's
// ipv6.* decoder events for malformed packets (truncated, bad payload length,
// extension header problems, options), IPv6 fragments counted, reassembled
// and inspected whole, and IPv6 addresses in EVE as Suricata prints them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/components/monitor/engine.ts';
import { LINKTYPE_ETHERNET } from '../../src/components/monitor/packet.ts';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../../src/components/monitor/rules/vars.ts';

const SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const DST = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function ip6(nh: number, payload: number[], plen = payload.length): number[] {
  return [0x60, 0, 0, 0, plen >> 8, plen & 255, nh, 64, ...SRC, ...DST, ...payload];
}

function eth(ip: number[]): Uint8Array {
  return Uint8Array.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, ...ip]);
}

const ECHO = [128, 0, 0, 0, 0, 1, 0, 1, ...Buffer.from('hello')];

/** An extension header: next header, then `body` padded to a multiple of 8 with the length byte set. */
function ext(next: number, body: number[]): number[] {
  const len = body.length + 2;
  const total = Math.ceil(len / 8) * 8;
  return [next, total / 8 - 1, ...body, ...new Array<number>(total - len).fill(0)];
}

function run(frames: Uint8Array[], rules = '', step = 1): { events: Record<string, unknown>[]; engine: Engine } {
  const r = loadRules([{ name: 't.rules', text: rules }], { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS }, classifications: builtinClassifications() });
  assert.deepEqual(r.errors.map((e) => e.reason), []);
  const events: Record<string, unknown>[] = [];
  const engine = new Engine({
    rules: r, classifications: builtinClassifications(), eveTypes: ['alert', 'anomaly', 'flow'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: [], packetBytes: 0 },
    emit: (l) => events.push(JSON.parse(l) as Record<string, unknown>),
  });
  let t = 1_700_000_000;
  for (const f of frames) {
    engine.process(f, 0, f.length, LINKTYPE_ETHERNET, t, 0);
    t += step;
  }
  return { events, engine };
}

function anomalies(frame: Uint8Array): string[] {
  return run([frame]).events.filter((e) => e.event_type === 'anomaly')
    .map((e) => String((e.anomaly as { event: string }).event).replace(/^decoder\./, '')).sort();
}

test('malformed IPv6 raises Suricata\'s ipv6.* decoder events', () => {
  const cases: [string, Uint8Array, string[]][] = [
    ['shorter than the fixed header', eth(ip6(58, ECHO).slice(0, 30)), ['ipv6.pkt_too_small']],
    ['payload length past the packet', eth(ip6(58, ECHO, ECHO.length + 100)), ['ipv6.trunc_pkt']],
    ['a well-formed echo request', eth(ip6(58, ECHO)), []],
    ['hop-by-hop padding only', eth(ip6(0, [...ext(58, [1, 4, 0, 0, 0, 0]), ...ECHO])), ['ipv6.hopopts_only_padding']],
    ['router alert + zero-length PadN (an MLD report)', eth(ip6(0, [...ext(58, [5, 2, 0, 0, 1, 0]), ...ECHO])), ['ipv6.zero_len_padn']],
    ['unknown hop-by-hop option', eth(ip6(0, [...ext(58, [0x3e, 4, 1, 2, 3, 4]), ...ECHO])), ['ipv6.hopopts_unknown_opt']],
    ['unknown destination option', eth(ip6(60, [...ext(58, [0x3e, 4, 1, 2, 3, 4]), ...ECHO])), ['ipv6.dstopts_unknown_opt']],
    ['router alert of the wrong length', eth(ip6(0, [...ext(58, [5, 3, 0, 0, 0]), ...ECHO])), ['ipv6.exthdr_invalid_optlen']],
    ['an option past its header', eth(ip6(60, [...ext(58, [0x3e, 9, 1, 2, 3, 4]), ...ECHO])), ['ipv6.exthdr_invalid_optlen']],
    ['two hop-by-hop headers', eth(ip6(0, [...ext(0, [1, 4, 0, 0, 0, 0]), ...ext(58, [5, 2, 0, 0, 1, 2, 0, 0]), ...ECHO])),
      ['ipv6.exthdr_dupl_hh', 'ipv6.hopopts_only_padding']],
    ['two destination options headers (allowed)', eth(ip6(60, [...ext(60, [5, 2, 0, 0, 1, 2, 0, 0]), ...ext(58, [5, 2, 0, 0, 1, 2, 0, 0]), ...ECHO])), []],
    ['three destination options headers', eth(ip6(60, [...ext(60, [5, 2, 0, 0, 1, 2, 0, 0]), ...ext(60, [5, 2, 0, 0, 1, 2, 0, 0]), ...ext(58, [5, 2, 0, 0, 1, 2, 0, 0]), ...ECHO])),
      ['ipv6.exthdr_dupl_dh']],
    ['routing header type 0', eth(ip6(43, [...ext(58, [0, 0, 0, 0, 0, 0]), ...ECHO])), ['ipv6.rh_type_0']],
    ['extension header past the payload', eth(ip6(0, [58, 4, 1, 4, 0, 0, 0, 0])), ['ipv6.trunc_exthdr']],
    ['an unknown next header (OSPF)', eth(ip6(89, [1, 2, 3, 4])), ['ipv6.unknown_next_header']],
    ['ESP: nothing after it is read', eth(ip6(50, [0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9])), []],
    ['ICMPv4 inside IPv6', eth(ip6(1, [8, 0, 0, 0, 0, 1, 0, 1])), ['ipv6.icmpv4']],
    ['an atomic fragment header', eth(ip6(44, [58, 0, 0, 0, 0, 0, 0, 7, ...ECHO])), ['ipv6.exthdr_useless_fh']],
    ['fragment header reserved bits', eth(ip6(44, [58, 0, 0, 8 | 1 | 2, 0, 0, 0, 7, ...new Array<number>(8).fill(0)])), ['ipv6.fh_non_zero_reserved_field']],
    ['no next header with data after it', eth(ip6(59, [1, 2, 3])), ['ipv6.data_after_none_header']],
  ];
  for (const [what, frame, want] of cases) assert.deepEqual(anomalies(frame), want, what);
});

test('IPv6 fragments: counted, reassembled and inspected whole; overlaps raise ipv6.frag_overlap', () => {
  // An echo request whose payload "...SECRET|PAYLOAD..." is cut in the middle of the pattern.
  const icmp = [128, 0, 0, 0, 0, 7, 0, 1, ...Buffer.from('xxxxxxxxSECRETPAYLOADyyyy')];
  const cut = 16;
  const frag = (off: number, mf: boolean, data: number[], id = 0x1234): Uint8Array =>
    eth(ip6(44, [58, 0, (off >> 8) & 0xff, (off & 0xf8) | (mf ? 1 : 0), 0, 0, id >> 8, id & 255, ...data]));
  const rule = 'alert icmpv6 2001:db8::/32 any -> [2001:db8::ff00-2001:db8::ffff] any (msg:"split"; content:"SECRETPAYLOAD"; sid:1; rev:1;)';
  const { events, engine } = run([frag(0, true, icmp.slice(0, cut)), frag(cut, false, icmp.slice(cut))], rule);
  const alerts = events.filter((e) => e.event_type === 'alert');
  assert.equal(alerts.length, 1, JSON.stringify(events));
  assert.equal(alerts[0].src_ip, '2001:0db8:0000:0000:0000:0000:0000:0010');
  assert.equal(alerts[0].dest_ip, '2001:0db8:0000:0000:0000:0000:0000:ffff');
  assert.equal(alerts[0].proto, 'IPv6-ICMP');
  assert.deepEqual(engine.fragStats[1], { fragments: 2, reassembled: 1 });
  assert.deepEqual(engine.fragStats[0], { fragments: 0, reassembled: 0 });
  const stats = engine.statsRecord() as { stats: { defrag: { ipv6: unknown } } };
  assert.deepEqual(stats.stats.defrag.ipv6, { fragments: 2, reassembled: 1 });
  // Overlapping fragments (the second rewrites bytes the first holds).
  const o = run([frag(0, true, icmp.slice(0, 16), 9), frag(8, false, icmp.slice(8), 9)]);
  assert.ok(o.events.some((e) => e.event_type === 'anomaly' && (e.anomaly as { event: string }).event === 'decoder.ipv6.frag_overlap'), JSON.stringify(o.events));
});

test('IPv6 flow records: addresses as Suricata prints them, both directions counted', () => {
  const req = eth(ip6(58, ECHO));
  const rep = Uint8Array.from(req);
  rep.set(DST, 14 + 8);
  rep.set(SRC, 14 + 24);
  rep[14 + 40] = 129;
  const { events, engine } = run([req, rep]);
  engine.tick(1_700_000_000 * 1000 + 3_600_000);
  const flows = events.filter((e) => e.event_type === 'flow');
  assert.equal(flows.length, 1, JSON.stringify(events));
  assert.equal(flows[0].src_ip, '2001:0db8:0000:0000:0000:0000:0000:0010');
  assert.equal(flows[0].dest_ip, '2001:0db8:0000:0000:0000:0000:0000:ffff');
  const f = flows[0].flow as { pkts_toserver: number; pkts_toclient: number };
  assert.deepEqual([f.pkts_toserver, f.pkts_toclient], [1, 1]);
});

test('an IPv6 port scan and an IPv6 SYN flood raise mg.port_scan and mg.syn_flood', () => {
  const syn = (sport: number, dport: number, src = SRC): Uint8Array => {
    const tcp = [sport >> 8, sport & 255, dport >> 8, dport & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    const f = eth(ip6(6, tcp));
    f.set(src, 14 + 8);
    return f;
  };
  const scan = run(Array.from({ length: 25 }, (_, i) => syn(40000, 1 + i)), '', 0);
  const ev = (r: { events: Record<string, unknown>[] }, name: string): number =>
    r.events.filter((e) => e.event_type === 'anomaly' && (e.anomaly as { event: string }).event === name).length;
  assert.equal(ev(scan, 'mg.port_scan'), 1, JSON.stringify(scan.events.slice(0, 3)));
  // Nineteen ports (the threshold is 20): no scan.
  assert.equal(ev(run(Array.from({ length: 19 }, (_, i) => syn(40000, 1 + i)), '', 0), 'mg.port_scan'), 0);
  // 300 SYNs to one port within a second, each from another source (200/s is the default threshold).
  const flood = Array.from({ length: 300 }, (_, i) => { const s = [...SRC]; s[14] = i >> 8; s[15] = i & 255; return syn(1024 + i, 80, s); });
  assert.equal(ev(run(flood, '', 0), 'mg.syn_flood'), 1);
  assert.equal(ev(run(flood.slice(0, 150), '', 0), 'mg.syn_flood'), 0);
});
