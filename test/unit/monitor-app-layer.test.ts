// The monitor's application layer on real and hostile bytes: DNS messages
// from the suricata-verify captures (queries, compressed answers) and
// crafted attacks on the parser (compression loops, forward pointers, long
// names, counts past the data, truncation: each a counted null, never a
// throw), DNS over TCP split byte by byte, TLS handshakes from a real
// capture (SNI, ALPN, JA3/JA3S equal to tshark's, the certificate chain)
// fed whole and one byte at a time, hostile TLS records, the transforms,
// tls/dns rules through the engine (one alert per rule per session), and
// the ET Open load ratio with every rejected rule's reason. Fuzzing with
// fast-check: no parser throws on random or mutated input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { DnsTcpSide, parseDns, MAX_TCP_BUFFER } from '../../src/components/monitor/dns.ts';
import { dnsEve } from '../../src/components/monitor/dns-app.ts';
import { TlsState, tlsEve, MAX_HANDSHAKE } from '../../src/components/monitor/tls.ts';
import { AppMemory } from '../../src/components/monitor/app-memory.ts';
import { applyTransform, applyTransforms } from '../../src/components/monitor/detect/transforms.ts';
import { Engine } from '../../src/components/monitor/engine.ts';
import { readCapture } from '../../src/components/monitor/pcap.ts';
import { LINKTYPE_ETHERNET } from '../../src/components/monitor/packet.ts';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../../src/components/monitor/rules/vars.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const IDS = join(REPO, 'test', 'fixtures', 'ids');
const SV = join(IDS, 'suricata-verify');
const VARS = { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS };
const SEED = Number(process.env.FUZZ_SEED ?? 0x6d67) | 0;
const runs = (n: number): fc.Parameters<unknown> => ({ numRuns: Math.round(n * Number(process.env.FUZZ_SCALE ?? 1)), seed: SEED });

/** The L4 payloads of a capture's packets (Ethernet with VLANs, or raw IPv4), with their ports. */
function payloads(file: string): { sp: number; dp: number; proto: number; data: Uint8Array }[] {
  const out: { sp: number; dp: number; proto: number; data: Uint8Array }[] = [];
  for (const c of readCapture(readFileSync(file))) {
    const d = c.data;
    let o = 0;
    if (c.linktype === 1) {
      o = 12;
      while (((d[o] << 8) | d[o + 1]) === 0x8100) o += 4;
      if (((d[o] << 8) | d[o + 1]) !== 0x0800) continue;
      o += 2;
    }
    const proto = d[o + 9];
    const total = (d[o + 2] << 8) | d[o + 3];
    const l4 = o + (d[o] & 15) * 4;
    const sp = (d[l4] << 8) | d[l4 + 1];
    const dp = (d[l4 + 2] << 8) | d[l4 + 3];
    const start = proto === 17 ? l4 + 8 : l4 + (d[l4 + 12] >> 4) * 4;
    out.push({ sp, dp, proto, data: d.slice(start, o + total) });
  }
  return out;
}

const u8 = (...xs: (number | number[])[]): Uint8Array => Uint8Array.from(xs.flat());
const label = (s: string): number[] => [s.length, ...Buffer.from(s, 'latin1')];
const header = (qd: number, an = 0, flags = 0x0100, id = 0x1234): number[] => [id >> 8, id & 255, flags >> 8, flags & 255, 0, qd, 0, an, 0, 0, 0, 0];

// ---- DNS ----------------------------------------------------------------------

test('dns: a real query and its compressed answer (cond-log-dns-dig)', () => {
  const ps = payloads(join(SV, 'cond-log-dns-dig', 'input.pcap'));
  const q = parseDns(ps[0].data, 0, ps[0].data.length);
  const a = parseDns(ps[1].data, 0, ps[1].data.length);
  assert.ok(q !== null && a !== null);
  assert.equal(q.qr, false);
  assert.deepEqual(q.questions, [{ name: 'www.suricata-ids.org', type: 1 }]);
  assert.equal(a.qr, true);
  assert.equal(a.id, q.id);
  assert.deepEqual(a.answers.map((x) => [x.name, x.type, x.data]), [
    ['www.suricata-ids.org', 5, 'suricata-ids.org'], ['suricata-ids.org', 1, '192.0.78.24'], ['suricata-ids.org', 1, '192.0.78.25'],
  ]);
  const eve = dnsEve(a, 0)[0];
  assert.equal(eve.type, 'answer');
  assert.equal(eve.rcode, 'NOERROR');
  assert.deepEqual(eve.grouped, { CNAME: ['suricata-ids.org'], A: ['192.0.78.24', '192.0.78.25'] });
  assert.deepEqual(dnsEve(q, 3), [{ type: 'query', id: q.id, rrname: 'www.suricata-ids.org', rrtype: 'A', tx_id: 3, opcode: 0 }]);
});

test('dns: the root name is "" (detect-bytetest-03) and dotprefix gives "."', () => {
  const ps = payloads(join(SV, 'detect-bytetest-03', 'input.pcap'));
  const m = parseDns(ps[0].data, 0, ps[0].data.length);
  assert.ok(m !== null);
  assert.deepEqual(m.questions, [{ name: '', type: 1 }]);
  assert.deepEqual([...applyTransform('dotprefix', new Uint8Array(0))], [0x2e]);
});

test('dns: hostile messages are null, never a throw or a hang', () => {
  const q = [0, 1, 0, 1];
  const cases: [string, Uint8Array][] = [
    ['pointer to itself', u8(header(1), 0xc0, 12, q)],
    ['label then a pointer back to its own name', u8(header(1), label('a'), 0xc0, 12, q)],
    ['forward pointer', u8(header(1), 0xc0, 14, label('a'), 0, q)],
    ['two names pointing at each other', u8(header(1, 1, 0x8180), label('a'), 0xc0, 19, q, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0)],
    ['pointer past the message', u8(header(1), 0xc0, 200, q)],
    ['reserved label type 0x40', u8(header(1), 0x40, 0, q)],
    ['name longer than 255 bytes', u8(header(1), ...Array.from({ length: 5 }, () => label('x'.repeat(63))), 0, q)],
    ['128 labels', u8(header(1), ...Array.from({ length: 128 }, () => label('x')), 0, q)],
    ['question count past the data', u8(header(60000), 0, q)],
    ['answer count past the data', u8([...header(1, 200, 0x8180)], 0, q)],
    ['truncated header', u8(header(1).slice(0, 11))],
    ['truncated question', u8(header(1), label('abc'), 0, 0, 1)],
    ['label past the end', u8(header(1), 20, 0x61, 0x62)],
    ['rdata length past the end', u8(header(1, 1, 0x8180), 0, q, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0xff, 0xff, 1, 2, 3, 4)],
    ['TXT string past its record', u8(header(1, 1, 0x8180), 0, q, 0, 0, 16, 0, 1, 0, 0, 0, 60, 0, 2, 9, 0x41)],
  ];
  for (const [what, b] of cases) assert.equal(parseDns(b, 0, b.length), null, what);
  // A chain of backward pointers (question k's name points at question k-1's) is cut at 16 jumps.
  const chain = (n: number): Uint8Array => {
    const b: number[] = [...header(n), 0, ...q];
    for (let k = 1; k < n; k++) b.push(0xc0, 12 + (k === 1 ? 0 : 5 + 6 * (k - 2)), ...q);
    return Uint8Array.from(b);
  };
  assert.equal(parseDns(chain(17), 0, chain(17).length)?.questions.length, 17, '16 jumps are fine');
  assert.equal(parseDns(chain(18), 0, chain(18).length), null, '17 jumps are not');
  // And a legal compressed name still reads.
  const ok = u8(header(1, 1, 0x8180), label('www'), label('example'), label('com'), 0, q, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1);
  assert.deepEqual(parseDns(ok, 0, ok.length)?.answers, [{ name: 'www.example.com', type: 1, ttl: 60, data: '10.0.0.1' }]);
});

test('dns over tcp: the 2-byte length prefix across segments, one byte at a time; an oversized side gives up', () => {
  const msg = u8(header(1), label('tcp'), label('example'), 0, 0, 1, 0, 1);
  const wire = u8([msg.length >> 8, msg.length & 255], [...msg], [msg.length >> 8, msg.length & 255], [...msg]);
  const side = new DnsTcpSide();
  const names: string[] = [];
  for (let i = 0; i < wire.length; i++) side.feed(wire, i, 1, (b, o, n) => names.push(parseDns(b, o, n)?.questions[0].name ?? 'bad'));
  assert.deepEqual(names, ['tcp.example', 'tcp.example']);
  const big = new DnsTcpSide();
  const junk = new Uint8Array(40000).fill(0xff);
  big.feed(junk, 0, junk.length, () => assert.fail('no message'));
  big.feed(junk, 0, junk.length, () => assert.fail('no message'));
  assert.equal(big.failed, true, `more than ${MAX_TCP_BUFFER} bytes without a message`);
});

// ---- TLS ----------------------------------------------------------------------

const TLS_PCAP = join(SV, 'tls-alpn-log-detect-02', 'input.pcap');

function tlsStreams(): [Uint8Array, Uint8Array] {
  const c: number[] = [];
  const s: number[] = [];
  for (const p of payloads(TLS_PCAP)) (p.dp === 443 ? c : s).push(...p.data);
  return [Uint8Array.from(c), Uint8Array.from(s)];
}

test('tls: a real handshake, whole and one byte at a time: SNI, ALPN, JA3/JA3S (as tshark computes them), the certificate', () => {
  const [client, server] = tlsStreams();
  for (const step of [1 << 20, 1, 7]) {
    const mem = new AppMemory();
    const t = new TlsState(mem);
    for (let i = 0; i < client.length; i += step) t.feed(0, client, i, Math.min(step, client.length - i));
    for (let i = 0; i < server.length; i += step) t.feed(1, server, i, Math.min(step, server.length - i));
    assert.equal(t.sni, 'p130-contacts.icloud.com');
    assert.deepEqual(t.clientAlpns, ['h2', 'http/1.1']);
    assert.deepEqual(t.serverAlpns, ['http/1.1']);
    // tshark -e tls.handshake.ja3 / ja3s on this capture.
    assert.equal(t.ja3Hash, '773906b0efdefa24a7f2b8eb6985bf37');
    assert.equal(t.ja3sHash, '9b340edddb1203ae20167d3089fa10af');
    assert.equal(t.ja3s, '771,49196,65281-0-11-5-16-23');
    assert.ok(t.certs.length >= 2, 'the chain');
    assert.equal(t.cert?.subject, 'C=US, ST=California, O=Apple Inc., CN=p127-contacts.icloud.com');
    assert.equal(t.cert?.issuer, 'CN=Apple IST CA 2 - G1, OU=Certification Authority, O=Apple Inc., C=US');
    const sha1 = createHash('sha1').update(t.certs[0]).digest('hex').match(/../g)?.join(':');
    assert.equal(t.cert?.fingerprint, sha1);
    assert.match(t.cert?.serial ?? '', /^([0-9A-F]{2}:)+[0-9A-F]{2}$/);
    assert.ok(t.cert?.sans.includes('p142-contacts.icloud.com'));
    assert.equal(t.serverDone, true);
    assert.equal(t.malformed, 0);
    // Both sides went encrypted: their buffers are back, only the certificates are held; more bytes cost nothing.
    assert.equal(mem.used, t.certs.reduce((n, c) => n + c.length, 0));
    assert.equal(t.feed(1, server, 0, server.length), false);
    assert.equal(t.feed(0, client, 0, client.length), false);
    t.release();
    assert.equal(mem.used, 0);
    const eve = tlsEve(t);
    assert.equal(eve.version, 'TLS 1.2');
    assert.equal(eve.notbefore, '2023-10-23T11:42:34');
  }
});

test('tls: hostile records give up the side (counted), never throw', () => {
  const cases: [string, number[]][] = [
    ['record longer than 18432', [22, 3, 3, 0xff, 0xff]],
    ['unknown record type', [99, 3, 3, 0, 1, 0]],
    ['not version 3', [22, 2, 0, 0, 1, 0]],
    ['handshake message of 16 MiB', [22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff]],
    ['truncated ClientHello body', [22, 3, 3, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0]],
    ['extension longer than its list', [22, 3, 3, 0, 47, 1, 0, 0, 43, 3, 3, ...new Array(32).fill(0), 0, 0, 2, 0, 0x2f, 1, 0, 0, 4, 0, 0, 0, 9]],
  ];
  for (const [what, bytes] of cases) {
    const t = new TlsState();
    const b = Uint8Array.from(bytes);
    t.feed(0, b, 0, b.length);
    assert.equal(t.malformed, 1, what);
    assert.equal(t.feed(0, b, 0, b.length), false, `${what}: the side stays given up`);
  }
  // A never-ending handshake message is cut at MAX_HANDSHAKE.
  const t = new TlsState();
  const rec = new Uint8Array(5 + 16384);
  rec.set([22, 3, 3, 0x40, 0]);
  rec.set([11, 0x0f, 0xff, 0xff], 5);
  for (let i = 0; i < 2 + MAX_HANDSHAKE / 16384; i++) t.feed(1, rec, 0, rec.length);
  assert.equal(t.malformed, 1);
  // A certificate that is not DER: no description, no throw.
  const u = new TlsState();
  const cert = [11, 0, 0, 9, 0, 0, 6, 0, 0, 3, 1, 2, 3];
  const r2 = Uint8Array.from([22, 3, 3, 0, cert.length, ...cert]);
  u.feed(1, r2, 0, r2.length);
  assert.equal(u.certs.length, 1);
  assert.equal(u.cert, null);
});

test('one budget for all flows: partial handshakes past it give their side up (counted), an ended session gives its bytes back', () => {
  const mem = new AppMemory(64 * 1024);
  const rec = new Uint8Array(5 + 16384);
  rec.set([22, 3, 3, 0x40, 0]);
  rec.set([11, 0x01, 0xff, 0xff], 5); // a 128 KiB Certificate message that never completes
  const sessions: TlsState[] = [];
  for (let i = 0; i < 8; i++) {
    const t = new TlsState(mem);
    t.feed(1, rec, 0, rec.length);
    sessions.push(t);
    assert.ok(mem.used <= mem.cap, `used ${mem.used}`);
  }
  assert.ok(sessions.some((t) => t.memcap > 0), 'some sessions were refused memory');
  assert.ok(mem.denied > 0);
  assert.equal(sessions.reduce((n, t) => n + t.malformed, 0), 0, 'not counted as malformed');
  for (const t of sessions) t.release();
  assert.equal(mem.used, 0);
  const sides: DnsTcpSide[] = [];
  const junk = new Uint8Array(30000).fill(0xff);
  for (let i = 0; i < 4; i++) {
    const side = new DnsTcpSide(mem);
    side.feed(junk, 0, junk.length, () => assert.fail('no message'));
    sides.push(side);
  }
  assert.ok(sides.some((x) => x.failed));
  for (const x of sides) x.release();
  assert.equal(mem.used, 0);
});

// ---- transforms ---------------------------------------------------------------------

test('transforms', () => {
  const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
  const s = (x: Uint8Array): string => Buffer.from(x).toString('latin1');
  assert.equal(s(applyTransform('dotprefix', b('example.com'))), '.example.com');
  assert.equal(s(applyTransform('to_lowercase', b('ExAmPlE'))), 'example');
  assert.equal(s(applyTransform('strip_whitespace', b(' a \t b\r\n'))), 'ab');
  assert.equal(s(applyTransform('compress_whitespace', b('a  \t b  c'))), 'a b c');
  assert.equal(s(applyTransform('url_decode', b('%41b+c%zz%4'))), 'Ab c%zz%4');
  assert.equal(Buffer.from(applyTransform('to_md5', b('abc'))).toString('hex'), '900150983cd24fb0d6963f7d28e17f72');
  assert.equal(Buffer.from(applyTransform('to_sha256', b(''))).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(Buffer.from(applyTransforms(['to_lowercase', 'to_sha1'], b('ABC'))).toString('hex'), 'a9993e364706816aba3e25717850c26c9cd0d89d');
});

// ---- through the engine --------------------------------------------------------------

function run(pcap: string, rules: string): Record<string, unknown>[] {
  const r = loadRules([{ name: 't.rules', text: rules }], { vars: VARS, classifications: builtinClassifications() });
  assert.deepEqual(r.errors.map((x) => x.reason), [], 'test rules load');
  const events: Record<string, unknown>[] = [];
  const e = new Engine({
    rules: r, classifications: builtinClassifications(), midstream: true, eveTypes: ['alert', 'dns', 'tls'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: [], packetBytes: 0 },
    emit: (l) => events.push(JSON.parse(l) as Record<string, unknown>),
  });
  let n = 0;
  for (const c of readCapture(readFileSync(pcap))) e.process(c.data, 0, c.data.length, c.linktype, c.tsSec, c.tsUsec, ++n);
  e.finish();
  assert.equal(e.appMemory.used, 0, 'every ended session gave its bytes back');
  return events;
}

const sids = (ev: Record<string, unknown>[]): number[] =>
  ev.filter((x) => x.event_type === 'alert').map((x) => (x.alert as { signature_id: number }).signature_id).sort((a, b) => a - b);

test('engine: tls rules on a real session, each alerting once; rules that must not match do not', () => {
  const fp = (() => {
    const [, server] = tlsStreams();
    const t = new TlsState();
    t.feed(1, server, 0, server.length);
    return t.cert?.fingerprint ?? '';
  })();
  const ev = run(TLS_PCAP, [
    'alert tls any any -> any any (tls.certs; content:"p127-contacts.icloud.com"; sid:1;)',
    'alert tls any any -> any any (ja3.hash; content:"773906b0efdefa24a7f2b8eb6985bf37"; sid:2;)',
    'alert tls any any -> any any (ja3s.hash; content:"9b340edddb1203ae20167d3089fa10af"; sid:3;)',
    `alert tls any any -> any any (tls.cert_fingerprint; content:"${fp}"; sid:4;)`,
    'alert tls any any -> any any (tls_sni; content:"contacts.icloud.com"; endswith; sid:5;)',
    'alert tls any any -> any any (tls.sni; to_uppercase; content:"P130-CONTACTS"; startswith; sid:6;)',
    'alert tls any any -> any any (tls.cert_subject; content:"CN=p127-contacts.icloud.com"; sid:7;)',
    'alert tls any any -> any any (tls.sni; content:"example.org"; sid:8;)',
    'alert tls any any -> any any (tls.certs; content:"no such bytes in any certificate"; sid:9;)',
    'alert tls any any -> any any (tls.alpn; content:"spdy"; sid:10;)',
    'alert tls any any -> any any (tls.version:1.2; sid:11;)',
    'alert tls any any -> any any (tls.version:!1.2; sid:12;)',
    'alert tls any any -> any any (tls.version:0x0304; sid:13;)',
  ].join('\n'));
  assert.deepEqual(sids(ev), [1, 2, 3, 4, 5, 6, 7, 11]);
  assert.equal(ev.filter((x) => x.event_type === 'tls').length, 1);
});

test('engine: dns rules with transforms and bsize on real queries', () => {
  const ev = run(join(SV, 'cond-log-dns-dig', 'input.pcap'), [
    'alert dns any any -> any any (dns.query; dotprefix; content:".suricata-ids.org"; endswith; sid:1;)',
    'alert dns any any -> any any (dns.query; to_sha256; content:"|' + createHash('sha256').update('www.suricata-ids.org').digest('hex') + '|"; sid:2;)',
    'alert dns any any -> any any (dns_query; content:"www"; bsize:10<>30; sid:3;)',
    'alert dns any any -> any any (dns.query; content:"www"; bsize:>30; sid:4;)',
    'alert dns any any -> any any (dns.query; dotprefix; content:".ids.org"; startswith; sid:5;)',
    'alert dns any any -> any any (dns.opcode:0; dns.rcode:0; sid:6;)',
    'alert dns any any -> any any (dns.rcode:!0; sid:7;)',
    'alert dns any any -> any any (dns.opcode:>0; sid:8;)',
    'alert dns any any -> any any (flow:to_client; dns.rcode:0; sid:9;)',
  ].join('\n'));
  // sid 6 on the query and the answer, sid 9 on the answer only.
  assert.deepEqual(sids(ev), [1, 2, 3, 6, 6, 9]);
  assert.deepEqual(ev.filter((x) => x.event_type === 'dns').map((x) => (x.dns as { type: string }).type), ['query', 'answer']);
});

test('rules: transforms must follow a sticky buffer; buffers of another protocol are refused', () => {
  const r = loadRules([{ name: 'bad.rules', text: [
    'alert dns any any -> any any (dotprefix; content:"a"; sid:1;)',
    'alert dns any any -> any any (dns.query; content:"a"; dotprefix; sid:2;)',
    'alert tls any any -> any any (dns.query; content:"a"; sid:3;)',
    'alert udp any any -> any any (tls.sni; content:"a"; sid:4;)',
    'config dns any any -> any any (dns.query; content:"a"; sid:5;)',
    'alert http any any -> any any (urilen:>5,bogus; sid:6;)',
    'alert dns any any -> any any (dns.opcode:16; sid:7;)',
    'alert tls any any -> any any (dns.rcode:1; sid:8;)',
    'alert tls any any -> any any (tls.version:2.0; sid:9;)',
  ].join('\n') }], { vars: VARS, classifications: builtinClassifications() });
  assert.deepEqual(r.errors.map((e) => `${e.sid}: ${e.reason}`), [
    '1: transform dotprefix needs a sticky buffer before it',
    '2: transform dotprefix must follow its sticky buffer dns.query, before its content',
    '3: dns.query is a dns buffer, the rule is for tls',
    '4: tls.sni needs a TCP rule (tls)',
    '5: a config rule needs config: logging disable, type tx, scope tx',
    '6: urilen: expected norm or raw after the length, got "bogus"',
    '7: dns.opcode: 16 is larger than 15',
    '8: dns.opcode / dns.rcode are dns keywords, the rule is for tls',
    '9: tls.version: expected 1.0, 1.1, 1.2, 1.3, SSLv2, SSLv3 or a hex version, got "2.0"',
  ]);
});

test('ET Open: >= 90% of all 996 rules load (tls, dns), every rejected rule with a reason', { skip: !existsSync(join(IDS, 'et-open')) }, () => {
  const sources = ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules'].map((f) => ({
    name: f, text: readFileSync(join(IDS, 'et-open', f), 'utf8'),
  }));
  const r = loadRules(sources, { vars: VARS, classifications: builtinClassifications() });
  assert.ok(r.total >= 990, `rules found: ${r.total}`);
  assert.ok(r.rules.length / r.total >= 0.9, `loaded ${r.rules.length} of ${r.total}`);
  assert.equal(r.rules.length + r.errors.length + r.skipped.length, r.total);
  for (const e of r.errors) assert.match(e.reason, /^protocol "(ftp|ssh|smb|smtp)" is not supported/, JSON.stringify(e));
  assert.ok(r.rules.filter((x) => x.app === 'tls').length >= 420);
  assert.ok(r.rules.filter((x) => x.app === 'dns').length >= 70);
});

// ---- fuzz ------------------------------------------------------------------------

test('fuzz: parseDns, DnsTcpSide and TlsState never throw on random or mutated bytes', () => {
  const real = [...payloads(join(SV, 'cond-log-dns-dig', 'input.pcap')).map((p) => p.data)];
  const [client, server] = tlsStreams();
  const mutated = (base: Uint8Array): fc.Arbitrary<Uint8Array> =>
    fc.array(fc.record({ at: fc.nat(base.length - 1), v: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 })
      .map((edits) => {
        const b = base.slice();
        for (const e of edits) b[e.at] = e.v;
        return b;
      });
  const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 600 }), ...real.map(mutated));
  fc.assert(fc.property(anyBytes, (b) => {
    const m = parseDns(b, 0, b.length);
    if (m !== null) dnsEve(m, 0);
    const side = new DnsTcpSide();
    side.feed(b, 0, b.length, (x, o, n) => { parseDns(x, o, n); });
  }), runs(3000));
  const tlsBytes = fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated(client.subarray(0, 600)), mutated(server.subarray(0, 4000)));
  fc.assert(fc.property(tlsBytes, fc.integer({ min: 1, max: 64 }), (b, step) => {
    const t = new TlsState();
    for (let i = 0; i < b.length; i += step) {
      t.feed(0, b, i, Math.min(step, b.length - i));
      t.feed(1, b, i, Math.min(step, b.length - i));
    }
    tlsEve(t);
  }), runs(1500));
});

test('fuzz: the engine on random DNS (udp/53, tcp/53) and TLS (tcp/443) payloads', () => {
  const r = loadRules([{ name: 't.rules', text: [
    'alert dns any any -> any any (dns.query; dotprefix; content:".a"; sid:1;)',
    'alert tls any any -> any any (tls.certs; content:"a"; sid:2;)',
    'alert tls any any -> any any (tls.sni; to_sha256; bsize:32; sid:3;)',
  ].join('\n') }], { vars: VARS, classifications: builtinClassifications() });
  const e = new Engine({
    rules: r, classifications: builtinClassifications(), midstream: true, eveTypes: ['alert', 'dns', 'tls'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: [], packetBytes: 0 }, emit: () => {},
  });
  let seq = 1;
  const frame = (proto: number, dport: number, data: Uint8Array): Uint8Array => {
    const l4 = proto === 17
      ? [0x9c, 0x40, dport >> 8, dport & 255, (8 + data.length) >> 8, (8 + data.length) & 255, 0, 0]
      : [0x9c, 0x40, dport >> 8, dport & 255, seq >>> 24, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0];
    if (proto === 6) seq = (seq + data.length) >>> 0;
    const total = 20 + l4.length + data.length;
    return Uint8Array.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, total >> 8, total & 255, 0, 1, 0, 0, 64, proto, 0, 0,
      10, 0, 0, 1, 10, 0, 0, 2, ...l4, ...data]);
  };
  fc.assert(fc.property(fc.constantFrom<[number, number]>([17, 53], [6, 53], [6, 443]), fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((d) => Uint8Array.from([22, 3, 3, ...d]))), ([proto, port], data) => {
    const f = frame(proto, port, data);
    e.process(f, 0, f.length, LINKTYPE_ETHERNET, 1_700_000_000, 0);
  }), runs(1500));
  e.finish();
});
