// The tunnel's config section, and the gateway config around it: the `file`
// device kind (the keystore's key), the keystore's isolation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTunnelConfig } from '../../src/components/tunnel/config.ts';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/components/keystore/keys.ts';
import { parseConfig } from '../../src/init/config.ts';
import { paddedLength, PROTOCOL } from '../../src/components/tunnel/messages.ts';
import { catalog } from '../../src/cli/catalog.ts';

const PEER = encodeKey(publicKeyOf(generatePrivateKey()));
const src = { file: 'gw.yaml', path: 'components[4].config' };
const good = () => ({
  plain: { address: '198.18.255.2/30', gateway: '198.18.255.1' },
  uplink: { address: '198.19.1.2/30', gateway: '198.19.1.1' },
  peers: [{ 'public-key': PEER, endpoint: '198.19.0.3:51820', 'allowed-ips': ['198.18.64.0/24'] }],
});

test('tunnel config: defaults are the protocol\'s', () => {
  const c = parseTunnelConfig(good(), 'tunnel', src);
  assert.equal(c.listenPort, 51820);
  assert.equal(c.mtu, 1420);
  assert.equal(c.timers.rekeyAfterTimeMs, PROTOCOL.rekeyAfterTimeMs);
  assert.equal(c.timers.rejectAfterTimeMs, 180_000);
  assert.equal(c.timers.rekeyTimeoutMs, 5_000);
  assert.equal(c.timers.keepaliveTimeoutMs, 10_000);
  assert.equal(c.peers[0].endpointPort, 51820);
  assert.equal(c.peers[0].persistentKeepalive, 0);
  assert.equal(c.peers[0].presharedKey, undefined);
  assert.notDeepEqual(c.plain.mac, c.uplink.mac);
  assert.equal(c.plain.mac[0] & 3, 2, 'locally administered unicast');
});

test('tunnel config: every mistake names its path', () => {
  const bad = (mut: (c: Record<string, any>) => void, re: RegExp) => {
    const c: Record<string, any> = good();
    mut(c);
    assert.throws(() => parseTunnelConfig(c, 'tunnel', src), re);
  };
  bad((c) => { delete c.plain; }, /components\[4\]\.config\.plain: expected a mapping like/);
  bad((c) => { c.plain.gateway = '198.18.0.1'; }, /plain\.gateway: expected the router's address inside 198\.18\.255\.0\/30/);
  bad((c) => { c.uplink.address = '198.19.1.0/30'; }, /uplink\.address: expected a host address/);
  bad((c) => { c.peers[0]['public-key'] = 'abc'; }, /peers\[0\]\.public-key: expected a base64 public key of 32 bytes/);
  bad((c) => { c.peers.push({ ...c.peers[0] }); }, /peers\[1\]\.public-key: expected each peer once/);
  bad((c) => { c.peers[0]['allowed-ips'] = ['198.18.64.1/24']; }, /allowed-ips\[0\]: expected a network address \(198\.18\.64\.0\/24\)/);
  bad((c) => { c.peers.push({ 'public-key': encodeKey(publicKeyOf(generatePrivateKey())), 'allowed-ips': ['198.18.64.0/24'] }); },
    /peers\[1\]\.allowed-ips\[0\]: expected a prefix no other peer has \(peers\[0\] lists it too\)/);
  bad((c) => { c.peers[0].endpoint = 'host:1'; }, /peers\[0\]\.endpoint: expected an IPv4 address and port/);
  bad((c) => { c.peers[0]['preshared-key'] = 'secret-but-wrong'; }, /preshared-key: expected a base64 key of 32 bytes, as `wg genpsk` prints \(value not shown\)$/);
  bad((c) => { c.timers = { 'rekey-after-time-s': 200 }; }, /timers\.reject-after-time-s: expected more than rekey-after-time-s \(200\)/);
  bad((c) => { c.mtu = 100; }, /mtu: expected an integer from 576/);
  bad((c) => { c.peers = []; }, /peers: expected a non-empty list/);
  bad((c) => { c.listen = 1; }, /config\.listen: unknown key/);
});

test('padding: to 16 bytes, never beyond the MTU', () => {
  assert.equal(paddedLength(1, 1420), 16);
  assert.equal(paddedLength(16, 1420), 16);
  assert.equal(paddedLength(1419, 1420), 1420);
  assert.equal(paddedLength(1420, 1420), 1420);
  assert.equal(paddedLength(1500, 1420), 1500);
});

const GW = (deviceLine: string, iso = '') => `devices:
${deviceLine}
components:
  - { name: keystore, type: keystore${iso}, devices: { private-key: wg-key } }
`;

test('gateway config: a file device for the keystore; relative paths and shared isolation refused', () => {
  const c = parseConfig(GW('  wg-key: { kind: file, path: /etc/microgate/wg.key }'), 'gw.yaml', catalog);
  assert.equal(c.files?.get('wg-key')?.filePath, '/etc/microgate/wg.key');
  assert.equal(c.components[0].devices['private-key'], 'wg-key');
  assert.throws(() => parseConfig(GW('  wg-key: { kind: file, path: wg.key }'), 'gw.yaml', catalog), /devices\.wg-key\.path: expected an absolute file path/);
  assert.throws(() => parseConfig(GW('  wg-key: { kind: file, path: /k, ifname: x }'), 'gw.yaml', catalog), /devices\.wg-key\.ifname: unknown key/);
  assert.throws(() => parseConfig(GW('  wg-key: { kind: file, path: /k }', ', isolation: thread'), 'gw.yaml', catalog), /components\[0\]\.isolation: expected one of process/);
});
