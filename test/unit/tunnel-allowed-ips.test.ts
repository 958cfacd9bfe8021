// Cryptokey routing (allowed-ips.ts) for both families: longest prefix wins
// whatever the insertion order, overlapping prefixes of different peers,
// /0 and host routes, word boundaries of IPv6 masks; and the config's
// allowed-ips entries: both families, every bad entry named by its path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowedIps } from '../../src/components/tunnel/allowed-ips.ts';
import { parseAllowedIp, parseTunnelConfig } from '../../src/components/tunnel/config.ts';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/components/keystore/keys.ts';
import { parseIpv4 } from '../../src/net/addr.ts';
import { parseIpv6 } from '../../src/net/addr6.ts';

const v6 = (t: string): Uint8Array => parseIpv6(t) as Uint8Array;
const v4 = (t: string): number => parseIpv4(t) as number;

/** A table from [prefix, peer] pairs, inserted in the given order. */
function table(entries: [string, number][]): AllowedIps {
  const t = new AllowedIps();
  for (const [text, peer] of entries) {
    const a = parseAllowedIp(text);
    assert.ok(typeof a !== 'string', text);
    if (a.network6 !== null) t.add6(a.network6, a.prefix, peer);
    else t.add(a.network, a.prefix, peer);
  }
  return t;
}

const look6 = (t: AllowedIps, addr: string): number => {
  const b = new Uint8Array(40);
  b.set(v6(addr), 7); // unaligned, inside a larger buffer, as in a packet
  return t.lookup6(b, 7);
};

test('IPv6: the most specific prefix wins in any insertion order; /0, /128 and masks across word boundaries', () => {
  const entries: [string, number][] = [
    ['::/0', 9], ['2001:db8::/32', 1], ['2001:db8:64::/64', 2], ['2001:db8:64::2/128', 3], ['2001:db8:64:0:8000::/65', 4],
    ['2001:db8:64::/63', 5], ['2001:db8:ff00::/40', 6], ['2001:db8:64:0:0:0:0:8/127', 7],
  ];
  for (const order of [entries, [...entries].reverse(), [entries[3], entries[0], entries[6], entries[1], entries[4], entries[2], entries[7], entries[5]]]) {
    const t = table(order);
    assert.equal(t.size6, 8);
    assert.equal(t.size, 0);
    assert.equal(look6(t, '2001:db8:64::2'), 3, '/128 inside /64');
    assert.equal(look6(t, '2001:db8:64::3'), 2);
    assert.equal(look6(t, '2001:db8:64::8'), 7, '/127');
    assert.equal(look6(t, '2001:db8:64::9'), 7);
    assert.equal(look6(t, '2001:db8:64::a'), 2);
    assert.equal(look6(t, '2001:db8:64:0:8000::1'), 4, '/65: the first bit of word 2');
    assert.equal(look6(t, '2001:db8:64:0:7fff::1'), 2);
    assert.equal(look6(t, '2001:db8:64:1::1'), 5, '/63 covers ...:64:0 and ...:64:1, but /64 and longer win in :0');
    assert.equal(look6(t, '2001:db8:64:2::1'), 1);
    assert.equal(look6(t, '2001:db8:ff12::1'), 6, '/40: a mask ending inside word 1');
    assert.equal(look6(t, '2001:db8:fe12::1'), 1);
    assert.equal(look6(t, '2001:db9::1'), 9, 'the default route');
  }
  const none = table([['2001:db8:64::/64', 1]]);
  assert.equal(look6(none, '2001:db8:65::1'), -1);
  assert.equal(look6(none, '::'), -1);
  assert.equal(look6(none, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), -1);
});

test('IPv4 and IPv6 tables are separate; IPv4 keeps longest-prefix order; many entries grow the arrays', () => {
  const t = table([['0.0.0.0/0', 0], ['198.18.64.0/24', 1], ['198.18.64.128/25', 2], ['198.18.64.200/32', 3], ['2001:db8:64::/64', 4]]);
  assert.equal(t.lookup(v4('198.18.64.200')), 3);
  assert.equal(t.lookup(v4('198.18.64.201')), 2);
  assert.equal(t.lookup(v4('198.18.64.1')), 1);
  assert.equal(t.lookup(v4('8.8.8.8')), 0);
  assert.equal(look6(t, '2001:db8:64::1'), 4);
  assert.equal(look6(t, '2001:db8:65::1'), -1, 'IPv4 0.0.0.0/0 routes no IPv6');
  const big = new AllowedIps();
  for (let i = 0; i < 300; i++) {
    const a = v6('2001:db8::');
    a[4] = i >> 8;
    a[5] = i & 255;
    big.add6(a, 48, i);
  }
  assert.equal(big.size6, 300);
  assert.equal(look6(big, '2001:db8:12b::1'), 0x12b);
  assert.throws(() => big.add6(new Uint8Array(4), 8, 0), RangeError);
  assert.throws(() => big.add6(new Uint8Array(16), 129, 0), RangeError);
});

test('allowed-ips config: both families; overlap between peers allowed (most specific wins), the same prefix twice refused; hostile entries named', () => {
  const k = () => encodeKey(publicKeyOf(generatePrivateKey()));
  const base = (peers: unknown[]) => ({
    plain: { address: '198.18.255.2/30', gateway: '198.18.255.1', address6: '2001:db8:ff:1::2/64', gateway6: '2001:db8:ff:1::1' },
    uplink: { address: '198.19.1.2/30', gateway: '198.19.1.1' },
    peers,
  });
  const src = { file: 'gw.yaml', path: 'components[4].config' };
  const c = parseTunnelConfig(base([
    { 'public-key': k(), 'allowed-ips': ['198.18.64.0/24', '2001:db8:64::/48'] },
    { 'public-key': k(), 'allowed-ips': ['2001:db8:64:5::/64', '::/0'] },
  ]), 'tunnel', src);
  assert.deepEqual(c.peers[0].allowedIps.map((a) => a.text), ['198.18.64.0/24', '2001:db8:64::/48']);
  assert.deepEqual(c.peers[1].allowedIps.map((a) => [a.family, a.text]), [[6, '2001:db8:64:5::/64'], [6, '::/0']]);
  assert.equal(c.plain.ipv6?.prefix, 64);
  const bad = (entries: unknown[], re: RegExp, second: unknown[] = ['198.18.99.0/24']) => assert.throws(() => parseTunnelConfig(base([
    { 'public-key': k(), 'allowed-ips': second },
    { 'public-key': k(), 'allowed-ips': entries },
  ]), 'tunnel', src), re);
  bad(['2001:db8:64::1/64'], /components\[4\]\.config\.peers\[1\]\.allowed-ips\[0\]: expected a network address \(2001:db8:64::\/64\)/);
  bad(['2001:db8:64::/129'], /allowed-ips\[0\]: expected an IPv6 prefix like 2001:db8:64::\/64 \(length 0 to 128\)/);
  bad(['2001:db8:64::'], /allowed-ips\[0\]: expected an IPv6 prefix/);
  bad(['2001:db8:64:::/64'], /allowed-ips\[0\]: expected an IPv6 prefix/);
  bad(['::ffff:1.2.3.4/128x'], /allowed-ips\[0\]: expected an IPv6 prefix/);
  bad([42], /allowed-ips\[0\]: expected an IPv4 prefix like 198\.18\.64\.0\/24 or an IPv6 prefix/);
  bad(['198.18.64.0'], /allowed-ips\[0\]: expected an IPv4 prefix/);
  bad(['2001:db8:64::/64', '2001:DB8:64:0::/64'], /allowed-ips\[1\]: expected each prefix once \(this peer lists 2001:db8:64::\/64 twice\)/);
  bad(['2001:db8:64::/64'], /peers\[1\]\.allowed-ips\[0\]: expected a prefix no other peer has \(peers\[0\] lists it too\)/, ['2001:db8:0064::/64']);
  const link = (plain: Record<string, unknown>, re: RegExp) => assert.throws(() => parseTunnelConfig({ ...base([{ 'public-key': k(), 'allowed-ips': ['10.0.0.0/8'] }]), plain }, 'tunnel', src), re);
  link({ address: '198.18.255.2/30', gateway: '198.18.255.1', gateway6: '2001:db8:ff:1::1' }, /plain\.address6: expected "address6" with "gateway6"/);
  link({ address: '198.18.255.2/30', gateway: '198.18.255.1', address6: '2001:db8:ff:1::/64', gateway6: '2001:db8:ff:1::1' }, /plain\.address6: expected a global or unique-local host address/);
  link({ address: '198.18.255.2/30', gateway: '198.18.255.1', address6: 'fe80::2/64', gateway6: 'fe80::1' }, /plain\.address6: expected a global or unique-local host address/);
  link({ address: '198.18.255.2/30', gateway: '198.18.255.1', address6: '2001:db8:ff:1::2/64', gateway6: '2001:db8:ff:2::1' }, /plain\.gateway6: expected the router's IPv6 address inside 2001:db8:ff:1::\/64/);
  link({ address: '198.18.255.2/30', gateway: '198.18.255.1', address6: '2001:db8:ff:1::2/64' }, /plain\.gateway6: expected the router's IPv6 address/);
  assert.throws(() => parseTunnelConfig({ ...base([{ 'public-key': k(), 'allowed-ips': ['10.0.0.0/8'] }]), uplink: { address: '198.19.1.2/30', gateway: '198.19.1.1', address6: '2001:db8::2/64' } }, 'tunnel', src),
    /uplink\.address6: unknown key/);
});
