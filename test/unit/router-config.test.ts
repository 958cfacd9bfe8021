import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigFileError } from '../../src/config/reader.ts';
import { DEFAULTS, deriveMac, parseRouterConfig } from '../../src/components/router/config.ts';
import { formatMac } from '../../src/net/addr.ts';

const SRC = { file: 'gateway.yaml', path: 'components[2].config' };
const GOOD = {
  domains: {
    lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' },
  },
};

function errorOf(config: unknown): ConfigFileError {
  try {
    parseRouterConfig(config, 'router', SRC);
  } catch (e) {
    assert.ok(e instanceof ConfigFileError, String(e));
    return e;
  }
  assert.fail('expected a ConfigFileError');
}

test('a minimal config gets the documented defaults', () => {
  const c = parseRouterConfig(GOOD, 'router', SRC);
  assert.equal(c.domains.length, 2);
  const [lan, wan] = c.domains;
  assert.equal(lan.address, 0xc6120001);
  assert.equal(lan.prefix, 24);
  assert.equal(lan.network, 0xc6120000);
  assert.equal(lan.broadcast, 0xc61200ff);
  assert.equal(lan.gateway, -1);
  assert.deepEqual(lan.forward, [{ to: 1, toName: 'wan', nat: true }]);
  assert.equal(wan.gateway, 0xc61300fe);
  assert.deepEqual(wan.forward, []);
  assert.deepEqual(c.arp, { timeoutMs: 300_000, retryMs: 1000, maxTries: 3, maxPending: 32, pendingPool: 64 });
  assert.deepEqual(c.conntrack, {
    max: 16384, perSource: 4096, maxProbe: 64, tcpEstablishedMs: 7_200_000, tcpTransitoryMs: 30_000, tcpClosedMs: 10_000, udpMs: 60_000, icmpMs: 10_000,
  });
  assert.deepEqual(c.natPorts, { first: 49152, last: 65535 });
  assert.equal(c.verifyChecksums, true);
  assert.equal(DEFAULTS.conntrack.tcpEstablishedS, 7200);
});

test('MACs: locally administered unicast, deterministic, distinct per domain, honour mac-prefix', () => {
  const a = parseRouterConfig(GOOD, 'router', SRC);
  const b = parseRouterConfig(GOOD, 'router', SRC);
  const other = parseRouterConfig(GOOD, 'router2', SRC);
  for (const d of a.domains) assert.equal(d.mac[0] & 3, 2, 'locally administered unicast');
  assert.deepEqual(a.domains.map((d) => formatMac(d.mac)), b.domains.map((d) => formatMac(d.mac)));
  assert.notEqual(formatMac(a.domains[0].mac), formatMac(a.domains[1].mac));
  assert.notEqual(formatMac(a.domains[0].mac), formatMac(other.domains[0].mac));
  const p = parseRouterConfig({ ...GOOD, 'mac-prefix': '0a:6d:67' }, 'router', SRC);
  assert.match(formatMac(p.domains[0].mac), /^0a:6d:67:/);
  assert.deepEqual(deriveMac(new Uint8Array([2]), 'r', 'lan'), deriveMac(new Uint8Array([2]), 'r', 'lan'));
});

test('options override the defaults', () => {
  const c = parseRouterConfig({
    ...GOOD,
    arp: { 'timeout-s': 60, 'retry-ms': 200, 'max-tries': 5, 'max-pending': 0, 'pending-pool': 8 },
    conntrack: { max: 100, 'tcp-established-s': 600, 'udp-s': 30 },
    'nat-ports': '40000-40100',
    'verify-checksums': false,
  }, 'router', SRC);
  assert.deepEqual(c.arp, { timeoutMs: 60_000, retryMs: 200, maxTries: 5, maxPending: 0, pendingPool: 8 });
  assert.equal(c.conntrack.max, 100);
  assert.equal(c.conntrack.tcpEstablishedMs, 600_000);
  assert.equal(c.conntrack.udpMs, 30_000);
  assert.equal(c.conntrack.icmpMs, 10_000);
  assert.deepEqual(c.natPorts, { first: 40000, last: 40100 });
  assert.equal(c.verifyChecksums, false);
});

test('errors name the exact path and what was expected', () => {
  const cases: [unknown, string, RegExp][] = [
    [null, 'components[2].config', /expected a mapping/],
    [{}, 'components[2].config.domains', /at least one domain/],
    [{ domains: { lan: { address: '198.18.0.1' } } }, 'components[2].config.domains.lan.address',
      /expected an IPv4 address with prefix like 198\.18\.0\.1\/24.*got "198\.18\.0\.1"/],
    [{ domains: { lan: { address: '198.18.0.0/24' } } }, 'components[2].config.domains.lan.address', /network or broadcast/],
    [{ domains: { lan: { address: '198.18.0.1/24', gateway: '10.0.0.1' } } }, 'components[2].config.domains.lan.gateway', /inside 198\.18\.0\.0\/24/],
    [{ domains: { lan: { address: '198.18.0.1/24', gateway: 'x' } } }, 'components[2].config.domains.lan.gateway', /expected an IPv4 address/],
    [{ domains: { a: { address: '198.18.0.1/24', gateway: '198.18.0.2' }, b: { address: '198.19.0.1/24', gateway: '198.19.0.2' } } },
      'components[2].config.domains.b.gateway', /at most one domain with a gateway/],
    [{ domains: { a: { address: '198.18.0.1/16' }, b: { address: '198.18.5.1/24' } } }, 'components[2].config.domains.b.address', /overlap domain "a"/],
    [{ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'dmz' }] } } }, 'components[2].config.domains.lan.forward[0].to', /another domain/],
    [{ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'lan' }] } } }, 'components[2].config.domains.lan.forward[0].to', /another domain/],
    [{ domains: { lan: { address: '198.18.0.1/24', forward: { to: 'wan' } } } }, 'components[2].config.domains.lan.forward', /a list of rules/],
    [{ ...GOOD, domains: { ...GOOD.domains, lan: { ...GOOD.domains.lan, forward: [{ to: 'wan', nat: 'yes' }] } } },
      'components[2].config.domains.lan.forward[0].nat', /true or false/],
    [{ ...GOOD, domains: { ...GOOD.domains, lan: { ...GOOD.domains.lan, trusted: true } } }, 'components[2].config.domains.lan.trusted', /unknown key/],
    [{ domains: { LAN: { address: '198.18.0.1/24' } } }, 'components[2].config.domains.LAN', /lower-case/],
    [{ domains: { 'my lan': { address: '198.18.0.1/24' } } }, 'components[2].config.domains["my lan"]', /domain name/],
    [{ ...GOOD, arp: { 'timeout-s': 0 } }, 'components[2].config.arp.timeout-s', /integer from 1/],
    [{ ...GOOD, arp: { retry: 5 } }, 'components[2].config.arp.retry', /unknown key; expected one of timeout-s/],
    [{ ...GOOD, conntrack: { 'udp-s': 1.5 } }, 'components[2].config.conntrack.udp-s', /integer/],
    [{ ...GOOD, 'nat-ports': '65535-1024' }, 'components[2].config.nat-ports', /port range/],
    [{ ...GOOD, 'nat-ports': 5 }, 'components[2].config.nat-ports', /port range/],
    [{ ...GOOD, 'mac-prefix': '01:00' }, 'components[2].config.mac-prefix', /locally administered/],
    [{ ...GOOD, 'verify-checksums': 1 }, 'components[2].config.verify-checksums', /true or false/],
  ];
  for (const [config, path, msg] of cases) {
    const e = errorOf(config);
    assert.equal(e.path, path, JSON.stringify(config));
    assert.equal(e.file, 'gateway.yaml');
    assert.match(e.message, msg, e.message);
    assert.ok(e.message.startsWith(`gateway.yaml: ${path}: expected`) || e.message.startsWith(`gateway.yaml: ${path}: unknown key`), e.message);
  }
});

test('address: dhcp: the domain is the default route; nothing may depend on its address', () => {
  const c = parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] }, wan: { address: 'dhcp' } } }, 'router', SRC);
  assert.deepEqual([c.domains[1].dhcpClient, c.domains[1].address, c.domains[0].dhcpClient], [true, 0, false]);
  for (const key of ['gateway', 'routes', 'dhcp-server', 'tcp-forward']) {
    const value = key === 'gateway' ? '198.19.0.254' : key === 'dhcp-server' ? { range: '198.19.0.2-198.19.0.3' } : [];
    const e = errorOf({ domains: { lan: { address: '198.18.0.1/24' }, wan: { address: 'dhcp', [key]: value } } });
    assert.match(e.message, new RegExp(`gateway\\.yaml: components\\[2\\]\\.config\\.domains\\.wan\\.${key}: no ${key} on a domain with address: dhcp`));
  }
  const two = errorOf({ domains: { lan: { address: '198.18.0.1/24', gateway: '198.18.0.254' }, wan: { address: 'dhcp' } } });
  assert.match(two.message, /domains\.wan\.address: expected at most one domain with the default route: "lan" has a gateway/);
  const after = errorOf({ domains: { wan: { address: 'dhcp' }, lan: { address: '198.18.0.1/24', gateway: '198.18.0.254' } } });
  assert.match(after.message, /domains\.lan\.gateway: .*"wan" has it from its DHCP lease/);
  assert.match(errorOf({ domains: { wan: { address: 'dhcpv6' } } }).message, /prefix 1 to 30\), or dhcp \(got "dhcpv6"\)/);
});
