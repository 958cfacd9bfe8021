// The monitor's rule address grammar with IPv6 (issue 15): addresses,
// prefixes, ranges, negations, lists and variables holding IPv6 or mixed
// lists. Property tests against independent oracles (node:net's isIPv4 /
// isIPv6 for what is an address, BigInt arithmetic for what a spec matches),
// a fuzz of mutated addresses, and malformed addresses in a rule file
// reported with file, line, sid and reason. Seeded: a failure reproduces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { builtinClassifications } from '../../src/components/monitor/rules/classification.ts';
import { loadRules } from '../../src/components/monitor/rules/parse.ts';
import { addrMatch4, addrMatch6, parseAddr, parseV4, parseV6, SpecError } from '../../src/components/monitor/rules/vars.ts';

/** xorshift32: a reproducible stream of numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

function rand128(r: () => number): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 16n) | BigInt(Math.floor(r() * 0x10000));
  // Runs of zero groups, so "::" compression gets exercised.
  if (r() < 0.5) {
    const from = Math.floor(r() * 8);
    const len = 1 + Math.floor(r() * (8 - from));
    for (let g = from; g < from + len; g++) v &= ~(0xffffn << BigInt(16 * (7 - g)));
  }
  return v;
}

function groups(v: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(16 * (7 - i))) & 0xffffn));
}

/** One of the text forms RFC 4291 allows for v, chosen at random. */
function format6(v: bigint, r: () => number): string {
  const g = groups(v).map((x) => {
    let h = x.toString(16);
    if (r() < 0.3) h = h.padStart(4, '0');
    return r() < 0.3 ? h.toUpperCase() : h;
  });
  // Longest run of zero groups, maybe compressed.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups(v)[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
  }
  if (r() < 0.2 && v >> 32n === 0xffffn) {
    const lo = Number(v & 0xffffffffn);
    return `::ffff:${lo >>> 24}.${(lo >>> 16) & 255}.${(lo >>> 8) & 255}.${lo & 255}`;
  }
  if (best >= 0 && r() < 0.8) return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
  return g.join(':');
}

function bytes6(v: bigint): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = Number((v >> BigInt(8 * (15 - i))) & 0xffn);
  return b;
}

test('IPv6 text forms parse to the address they write, whatever the form', () => {
  const r = rng(0x15);
  for (let i = 0; i < 3000; i++) {
    const v = rand128(r);
    const s = format6(v, r);
    assert.equal(parseV6(s), v, s);
  }
  assert.equal(parseV6('::'), 0n);
  assert.equal(parseV6('::1'), 1n);
  assert.equal(parseV6('1::'), 1n << 112n);
});

test('fuzz: a mutated address is accepted exactly when node:net says it is an address', () => {
  const r = rng(0xbad);
  const alphabet = '0123456789abcdefABCDEFg:.:/-';
  const seeds = ['2001:db8::1', '::ffff:192.0.2.1', 'fe80::1:2:3:4', '1:2:3:4:5:6:7:8', '10.0.0.1', '255.255.255.255', '::'];
  let accepted = 0;
  for (let i = 0; i < 20000; i++) {
    let s = seeds[Math.floor(r() * seeds.length)];
    const edits = 1 + Math.floor(r() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * (s.length + 1));
      const c = alphabet[Math.floor(r() * alphabet.length)];
      const op = r();
      s = op < 0.4 ? s.slice(0, at) + c + s.slice(at) : op < 0.7 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + c + s.slice(at + 1);
    }
    const want = isIPv6(s) || isIPv4(s);
    const got = parseV6(s) !== undefined || parseV4(s) !== undefined;
    assert.equal(got, want, `"${s}": parser ${got ? 'accepts' : 'rejects'}, node:net ${want ? 'accepts' : 'rejects'}`);
    if (got) accepted++;
    // As a rule address: either a spec or a SpecError with a reason, never anything else.
    try {
      parseAddr(s, {});
    } catch (e) {
      assert.ok(e instanceof SpecError && e.message.length > 0, `"${s}": ${String(e)}`);
    }
  }
  assert.ok(accepted > 500, `the fuzz should also produce valid addresses (got ${accepted})`);
});

test('prefixes, ranges, negated lists and mixed variables match as BigInt arithmetic says', () => {
  const r = rng(0x6);
  for (let i = 0; i < 400; i++) {
    const a = rand128(r);
    const bits = Math.floor(r() * 129);
    const host = BigInt(128 - bits);
    const plo = (a >> host) << host;
    const phi = plo + (1n << host) - 1n;
    const b = rand128(r);
    const [rlo, rhi] = a <= b ? [a, b] : [b, a];
    const c = rand128(r);
    const vars = { NETS: `[${format6(a, r)}/${bits},192.0.2.0/24]`, RANGE: `${format6(rlo, r)}-${format6(rhi, r)}` };
    const spec = parseAddr(`[$NETS,$RANGE,!${format6(c, r)}]`, vars);
    const neg = parseAddr('!$NETS', vars);
    for (let k = 0; k < 20; k++) {
      // Addresses near the edges and at random.
      const pick = [plo, phi, plo - 1n, phi + 1n, rlo, rhi, rlo - 1n, rhi + 1n, c, rand128(r)][k % 10];
      const x = pick < 0n ? 0n : pick > (1n << 128n) - 1n ? (1n << 128n) - 1n : pick;
      const inP = x >= plo && x <= phi;
      const want = (inP || (x >= rlo && x <= rhi)) && x !== c;
      assert.equal(addrMatch6(spec, bytes6(x), 0), want, `${x.toString(16)} in [${plo.toString(16)}/${bits}, ${rlo.toString(16)}-${rhi.toString(16)}, !${c.toString(16)}]`);
      assert.equal(addrMatch6(neg, bytes6(x), 0), !inP);
    }
  }
  // The IPv4 member of the mixed list still matches IPv4, and only it.
  const mixed = parseAddr('[2001:db8::/32,192.0.2.0/24,10.0.0.1-10.0.0.9]', {});
  assert.ok(addrMatch4(mixed, (192 << 24) | (2 << 8) | 7));
  assert.ok(addrMatch4(mixed, (10 << 24) | 9) && !addrMatch4(mixed, (10 << 24) | 10));
  assert.ok(!addrMatch6(mixed, bytes6(0x20010db9n << 96n), 0));
  // An IPv4-only negation matches every IPv6 address (as Suricata: any minus IPv4 ranges).
  assert.ok(addrMatch6(parseAddr('!10.0.0.0/8', {}), bytes6(1n), 0));
});

test('a malformed address in a rule file is rejected with file, line, sid and reason', () => {
  const bad: [string, RegExp][] = [
    ['2001:db8::1::2', /bad IPv6 address "2001:db8::1::2"/],
    ['2001:db8::g', /bad IPv6 address/],
    ['1:2:3:4:5:6:7:8:9', /bad IPv6 address/],
    ['1:2:3:4:5:6:7:8::', /bad IPv6 address/],
    ['2001:db8::/129', /bad IPv6 prefix length .*0 to 128/],
    ['2001:db8::/-1', /bad address range/],
    ['2001:db8::ff-2001:db8::1', /first address is above its last/],
    ['10.0.0.1-2001:db8::1', /bad IPv4 range/],
    ['2001:db8::1-', /bad address range/],
    ['10.0.0.9-10.0.0.1', /first address is above its last/],
    ['10.0.0.0/33', /bad IPv4 netmask/],
    ['10.0.0.0/255.0.255.0', /not contiguous/],
    ['010.0.0.1', /not an address/],
    ['[2001:db8::1,]', /empty item in list/],
    ['[2001:db8::1', /unbalanced|got 3 fields/],
    ['!any', /matches nothing/],
    ['$NOPE', /undefined address variable \$NOPE/],
  ];
  const text = bad.map(([a], i) => `alert ip ${a} any -> any any (msg:"bad ${i}"; sid:${100 + i}; rev:1;)`).join('\n') + '\n'
    + 'alert ip [2001:db8::1-2001:db8::ff,10.0.0.1] any -> $HOME6 any (msg:"good"; sid:999; rev:1;)\n';
  const res = loadRules([{ name: 'local.rules', text }], { vars: { HOME6: '[fd00::/8,!fd00::1]' }, classifications: builtinClassifications() });
  assert.equal(res.rules.length, 1, JSON.stringify(res.errors.map((e) => e.reason)));
  assert.equal(res.errors.length, bad.length);
  for (let i = 0; i < bad.length; i++) {
    const e = res.errors[i];
    assert.equal(e.file, 'local.rules');
    assert.equal(e.line, i + 1);
    assert.equal(e.sid, 100 + i);
    assert.match(e.reason, bad[i][1], `${bad[i][0]}: ${e.reason}`);
  }
});
