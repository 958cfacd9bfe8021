// Property-based fuzzing (fast-check) of the text parsers: the gateway config
// loader (only ConfigFileError, never anything else), the monitor's rule
// language (errors are reported per rule, never thrown), the monitor's packet
// engine and capture reader on hostile bytes, and the file gateway's HTTP
// header parsers (Range, If-None-Match, If-Range, cookies, share paths).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigFileError, parseConfig } from '../../src/init/config.ts';
import { Engine } from '../../src/components/monitor/engine.ts';
import { builtinRulesText } from '../../src/components/monitor/index.ts';
import { LINKTYPE_ETHERNET } from '../../src/components/monitor/packet.ts';
import { PcapError, readCapture } from '../../src/components/monitor/pcap.ts';
import { builtinClassifications, parseClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { PcreError, parsePcre } from '../../src/components/monitor/rules/pcre.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../../src/components/monitor/rules/vars.ts';
import { ifRangeAllows, noneMatch, parseRange } from '../../src/services/file-gateway/range.ts';
import { parseCookies } from '../../src/services/file-gateway/sessions.ts';
import { normalizeSharePath } from '../../src/services/file-gateway/paths.ts';
import { encodeFrame } from '../../src/net/frame.ts';
import { catalog } from '../../src/cli/catalog.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x6d67) | 0;
const runs = (n: number): fc.Parameters<unknown> => ({ numRuns: Math.round(n * Number(process.env.FUZZ_SCALE ?? 1)), seed: SEED });

/** Mutate a text: splice in tokens, delete or duplicate spans. */
function mutateText(base: string, tokens: string[]): fc.Arbitrary<string> {
  const edit = fc.record({ at: fc.nat(base.length), len: fc.nat(12), tok: fc.constantFrom(...tokens), kind: fc.constantFrom('insert', 'delete', 'dup', 'replace') });
  return fc.array(edit, { minLength: 1, maxLength: 5 }).map((edits) => {
    let s = base;
    for (const e of edits) {
      const i = e.at % (s.length + 1);
      if (e.kind === 'insert') s = s.slice(0, i) + e.tok + s.slice(i);
      else if (e.kind === 'delete') s = s.slice(0, i) + s.slice(i + e.len);
      else if (e.kind === 'dup') s = s.slice(0, i + e.len) + s.slice(i);
      else s = s.slice(0, i) + e.tok + s.slice(i + e.len);
    }
    return s;
  });
}

// ---- gateway config ---------------------------------------------------------

const GOOD = `devices:
  tap-lan: { ifname: mgxl }
  tap-wan: { ifname: mgxw, offload: false }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - { name: drv-wan, type: nic-driver, devices: { tap: tap-wan }, isolation: thread, restart: on-failure, memory-mb: 64 }
  - name: router
    type: router
    heartbeat-ms: 500
    config:
      domains:
        lan: { address: 198.18.0.1/24, forward: [{ to: wan, nat: true }] }
        wan: { address: 198.19.0.1/24 }
sessions:
  - { between: [drv-lan.nic, router.lan] }
  - { between: [drv-wan.nic, router.wan], transport: socket, slots: 64 }
`;
const YAML_TOKENS = [':', '- ', '{', '}', '[', ']', ',', '\n', '  ', '"', "'", '&a', '*a', '!!binary', '<<: *a', '~', 'null', '-1', '1e999', '0x10',
  'NaN', '.inf', 'true', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'slots', 'isolation: x', 'name: router', 'type: router',
  'between: [a.b]', 'transport: udp', 'restart: maybe', 'memory-mb: -5', 'components', 'sessions', 'devices', '%YAML 1.2\n---\n', '\t', '#', '\u0000', '\ufeff'];

function onlyConfigFileError(text: string): void {
  try {
    parseConfig(text, 'gw.yaml', catalog);
  } catch (e) {
    assert.ok(e instanceof ConfigFileError, `parseConfig threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n--- input ---\n${text}`);
    assert.ok(e.message.startsWith('gw.yaml'), `the error names the file: ${e.message}`);
  }
}

test('fuzz: parseConfig on mutated configs throws nothing but ConfigFileError', () => {
  fc.assert(fc.property(mutateText(GOOD, YAML_TOKENS), onlyConfigFileError), runs(600));
});

test('found by fuzzing: a YAML alias without its anchor, or an alias bomb, is a ConfigFileError', () => {
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcde'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcde'[i]}`).join(', ')}]`), `f: [${Array(9).fill('*e').join(', ')}]`].join('\n');
  for (const [text, msg] of [['*!', /Unresolved alias/], ['components: *nope', /Unresolved alias/], [bomb, /Excessive alias count/]] as const) {
    assert.throws(() => parseConfig(text, 'gw.yaml', catalog), (e: unknown) => e instanceof ConfigFileError && /^gw\.yaml: .*YAML error: /.test(e.message) && msg.test(e.message));
  }
});

test('fuzz: parseConfig on arbitrary text and JSON values throws nothing but ConfigFileError', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), onlyConfigFileError), runs(300));
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => onlyConfigFileError(JSON.stringify(v))), runs(300));
  const shaped = fc.record({
    devices: fc.dictionary(fc.constantFrom('tap-lan', 'x', '__proto__'), fc.jsonValue({ maxDepth: 2 })),
    components: fc.array(fc.dictionary(fc.constantFrom('name', 'type', 'devices', 'isolation', 'restart', 'memory-mb', 'heartbeat-ms', 'config', 'files'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 4 }),
    sessions: fc.array(fc.dictionary(fc.constantFrom('between', 'transport', 'slots', 'slot-size'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 3 }),
  }, { requiredKeys: [] });
  fc.assert(fc.property(shaped, (v) => onlyConfigFileError(JSON.stringify(v))), runs(300));
});

test('fuzz: hostile config sections of the monitor, tunnel and keystore give only ConfigFileError, with the section\'s path and a line', () => {
  const keys = {
    monitor: ['flow', 'defrag', 'stream', 'detectors', 'eve', 'block', 'block-exempt', 'vars', 'rule-files', 'rules', 'domains', 'nice', 'eve-log', 'rule-texts', '__proto__'],
    tunnel: ['plain', 'uplink', 'peers', 'timers', 'cookies', 'mtu', 'listen-port', 'mss-clamp', 'mac-prefix', 'staged-packets', 'constructor'],
    keystore: ['x', 'private-key', '__proto__'],
  } as const;
  const section = (type: keyof typeof keys): fc.Arbitrary<unknown> => fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.dictionary(fc.constantFrom(...keys[type]), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.array(fc.dictionary(fc.constantFrom('sid', 'seconds', 'event', 'classtype', 'anomaly', 'public-key', 'allowed-ips', 'endpoint', 'address', 'gateway'), fc.jsonValue({ maxDepth: 1 })), { maxLength: 2 }))),
  );
  const text = (type: keyof typeof keys, cfg: unknown): string => `devices:\n  tap-lan: { ifname: mgxl }\n  key: { kind: file, path: /etc/hostname }\ncomponents:\n  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }\n  - name: c\n    type: ${type}\n${type === 'keystore' ? '    devices: { private-key: key }\n' : ''}    config: ${JSON.stringify(cfg)}\n`;
  for (const type of ['monitor', 'tunnel', 'keystore'] as const) {
    fc.assert(fc.property(section(type), (cfg) => {
      try {
        parseConfig(text(type, cfg), 'gw.yaml', catalog);
      } catch (e) {
        assert.ok(e instanceof ConfigFileError, `${type}: parseConfig threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n--- config ---\n${JSON.stringify(cfg)}`);
        if (e.path.startsWith('components[1].config')) assert.ok(e.line !== undefined, `${type}: a section error without its line: ${e.message}`);
      }
    }), runs(200));
  }
});

// ---- monitor: rules, packets, captures ------------------------------------------

const VARS = { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS };
const RULE = 'alert tcp $HOME_NET any -> $EXTERNAL_NET [80,8080:8090] (msg:"x \\"y\\""; flow:to_server,established; content:"GET"; nocase; http.uri; content:"/a|2f 41|"; distance:0; within:20; pcre:"/a+b/i"; byte_test:2,>,10,0,relative; byte_jump:2,0,relative; byte_extract:1,0,v; isdataat:1,relative; bsize:>3; flowbits:set,x; flags:S+; threshold:type limit, track by_src, count 1, seconds 60; classtype:attempted-dos; sid:1000001; rev:2;)';
const RULE_TOKENS = [';', ':', '"', '\\', '(', ')', '|', '!', ',', '$', '[', ']', 'any', '->', '<>', 'content:', 'pcre:"/', 'sid:', 'sid:0;', 'depth:-1;',
  'offset:99999999999;', 'byte_test:', 'byte_jump:4,0,from_beginning,multiplier 0;', 'within:0;', 'distance:-5;', 'flowbits:isset,', 'threshold:',
  'ip_proto:', 'dsize:<>', 'icode:', 'itype:>256;', '!any', '[1:0]', '65536', '0/33', '::1', 'nocase;', 'fast_pattern;', 'http.header;', '\n', ' '];

test('fuzz: the rule loader reports bad rules as errors and never throws', () => {
  const opts = { vars: VARS, classifications: builtinClassifications() };
  fc.assert(fc.property(fc.oneof(mutateText(RULE, RULE_TOKENS), fc.string({ maxLength: 200 })), (text) => {
    const r = loadRules([{ name: 'f.rules', text }], opts);
    assert.ok(r.rules.length + r.errors.length + r.skipped.length <= r.total);
    for (const e of r.errors) assert.equal(typeof e.reason, 'string');
  }), runs(800));
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (p) => {
    try {
      parsePcre(p);
    } catch (e) {
      assert.ok(e instanceof PcreError, `parsePcre threw ${(e as Error).constructor.name}: ${(e as Error).message}`);
    }
    parseClassifications(`config classification: ${p}`);
  }), runs(500));
});

test('fuzz: the monitor engine takes hostile frames with the built-in rules and never throws', () => {
  const rules = loadRules([{ name: 'builtin.rules', text: builtinRulesText() }, { name: 't.rules', text: 'alert tcp any any -> any 80 (msg:"t"; flow:to_server; content:"GET"; http.method; sid:1; rev:1;)\nalert udp any any -> any 53 (msg:"u"; content:"|00 01|"; sid:2; rev:1;)' }],
    { vars: VARS, classifications: builtinClassifications() });
  assert.deepEqual(rules.errors, []);
  let emitted = 0;
  const e = new Engine({
    rules, classifications: builtinClassifications(), midstream: true, eveTypes: ['alert', 'anomaly'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: ['lan', 'wan'], packetBytes: 0 }, emit: () => emitted++,
  });
  const seedFrames = [
    encodeFrame({ kind: 'ipv4', eth: { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' }, ip: { src: '198.18.0.2', dst: '198.19.0.2' },
      l4: { proto: 'tcp', tcp: { srcPort: 40000, dstPort: 80, seq: 1, ack: 1, flags: 0x18, window: 500, payload: new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n') } } }, { vnet: false }),
    encodeFrame({ kind: 'ipv4', eth: { dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02' }, ip: { src: '198.18.0.2', dst: '198.19.0.2', flags: 1 },
      l4: { proto: 'udp', udp: { srcPort: 5353, dstPort: 53, payload: new Uint8Array(40) } } }, { vnet: false }),
  ];
  let t = 1_700_000_000;
  const frames = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.constantFrom(...seedFrames), fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.nat(100)).map(([f, edits, cut]) => {
      const g = f.slice(0, Math.max(0, f.length - cut));
      for (const [at, v] of edits) if (g.length > 0) g[at % g.length] = v;
      return g;
    }),
  );
  fc.assert(fc.property(frames, fc.constantFrom(-1, 0, 1), (f, dom) => {
    e.process(f, 0, f.length, LINKTYPE_ETHERNET, t++, 0, 0, dom);
  }), runs(1500));
});

test('fuzz: the capture reader fails with PcapError on a broken file, never anything else', () => {
  // A minimal valid pcap (one 60-byte packet), then mutated.
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0); hdr.writeUInt16LE(2, 4); hdr.writeUInt16LE(4, 6); hdr.writeUInt32LE(65535, 16); hdr.writeUInt32LE(1, 20);
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(1, 0); rec.writeUInt32LE(60, 8); rec.writeUInt32LE(60, 12);
  const valid = new Uint8Array(Buffer.concat([hdr, rec, Buffer.alloc(60, 0x45)]));
  const files = fc.oneof(fc.uint8Array({ maxLength: 120 }), fc.array(fc.tuple(fc.nat(valid.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }).map((edits) => {
    const g = valid.slice();
    for (const [at, v] of edits) g[at] = v;
    return g;
  }));
  fc.assert(fc.property(files, (f) => {
    try {
      let n = 0;
      for (const p of readCapture(f, 'f.pcap')) if (++n > 1000) break;
    } catch (e) {
      assert.ok(e instanceof PcapError, `readCapture threw ${(e as Error).constructor.name}: ${(e as Error).message}`);
    }
  }), runs(600));
});

// ---- file gateway: what a client's request headers reach -------------------------

test('fuzz: the file gateway header parsers never throw and stay within the file', () => {
  const header = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('bytes=0-', 'bytes=-0', 'bytes=5-1', 'bytes=999999999999999-', 'bytes=-999999999999999', 'bytes=0-0,1-2', ' bytes=1-2 ', 'bytes=-'),
    fc.tuple(fc.option(fc.nat(), { nil: undefined }), fc.option(fc.nat(), { nil: undefined })).map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`));
  fc.assert(fc.property(fc.option(header, { nil: undefined }), fc.nat(1 << 20), (h, size) => {
    const r = parseRange(h, size);
    if (r.kind === 'range') {
      assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), `range ${JSON.stringify(r)} for ${h}`);
      assert.ok(r.start >= 0 && r.start <= r.end && r.end < size, `range ${JSON.stringify(r)} outside a ${size}-byte file for ${h}`);
    }
    assert.equal(typeof noneMatch(h, '"abc"'), 'boolean');
    assert.equal(typeof ifRangeAllows(h, '"abc"', 'Sat, 01 Jan 2000 00:00:00 GMT'), 'boolean');
    const c = parseCookies(h);
    for (const v of c.values()) assert.match(v, /^[A-Za-z0-9_-]{1,128}$/);
  }), runs(1000));
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 40 }), mutateText('docs/report.pdf', ['/', '..', '.', '\\', '\u0000', '%2e', '//'])), (p) => {
    let out: string;
    try {
      out = normalizeSharePath(p);
    } catch (e) {
      assert.ok(e instanceof Error && e.message.length > 0);
      return;
    }
    assert.ok(!out.startsWith('/') && !out.split('/').some((s) => s === '' || s === '.' || s === '..') && !out.includes('\\'), `normalised to ${out}`);
  }), runs(800));
});
