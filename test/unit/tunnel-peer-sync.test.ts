// The peer-set diff of a tunnel reload (peer-sync.ts, like `wg syncconf`):
// peers matched by public key whatever their order; which settings changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTunnelConfig } from '../../src/components/tunnel/config.ts';
import { diffPeers, fixedChange } from '../../src/components/tunnel/peer-sync.ts';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/components/keystore/keys.ts';

const key = (): string => encodeKey(publicKeyOf(generatePrivateKey()));
const [K1, K2, K3, K4] = [key(), key(), key(), key()];
const PSK = encodeKey(generatePrivateKey());
const src = { file: 'gw.yaml', path: 'components[5].config' };
const cfg = (peers: unknown[], extra: Record<string, unknown> = {}) => parseTunnelConfig({
  plain: { address: '198.18.255.2/30', gateway: '198.18.255.1' },
  uplink: { address: '198.19.1.2/30', gateway: '198.19.1.1' },
  peers,
  ...extra,
}, 'tunnel', src);

test('diff: added, removed, changed (which settings), unchanged; order and prefix order do not matter', () => {
  const cur = cfg([
    { 'public-key': K1, endpoint: '198.19.0.3:51820', 'allowed-ips': ['198.18.64.0/24', '2001:db8:64::/64'] },
    { 'public-key': K2, 'allowed-ips': ['198.18.65.0/24'], 'persistent-keepalive': 25 },
    { 'public-key': K3, 'allowed-ips': ['198.18.66.0/24'], 'preshared-key': PSK },
  ]);
  const next = cfg([
    { 'public-key': K4, 'allowed-ips': ['198.18.67.0/24'] },
    { 'public-key': K3, 'allowed-ips': ['198.18.66.0/24'], 'preshared-key': PSK },
    { 'public-key': K1, endpoint: '198.19.0.9:51821', 'allowed-ips': ['2001:db8:64::/64', '198.18.64.0/24', '198.18.68.0/24'], 'persistent-keepalive': 5 },
  ]);
  const d = diffPeers(cur.peers, next.peers);
  assert.deepEqual(d.added, [K4]);
  assert.deepEqual(d.removed, [K2]);
  assert.deepEqual(d.changed, [{ publicKey: K1, what: ['allowed-ips', 'endpoint', 'persistent-keepalive'] }]);
  assert.equal(d.unchanged, 1);
  // The same peers in another order, prefixes reordered: nothing changes.
  const same = cfg([
    { 'public-key': K3, 'allowed-ips': ['198.18.66.0/24'], 'preshared-key': PSK },
    { 'public-key': K2, 'allowed-ips': ['198.18.65.0/24'], 'persistent-keepalive': 25 },
    { 'public-key': K1, endpoint: '198.19.0.3:51820', 'allowed-ips': ['2001:db8:64::/64', '198.18.64.0/24'] },
  ]);
  assert.deepEqual(diffPeers(cur.peers, same.peers), { added: [], removed: [], changed: [], unchanged: 3 });
  // A preshared key added, changed or removed is a change (used from the next handshake on).
  const psk2 = cfg([{ 'public-key': K3, 'allowed-ips': ['198.18.66.0/24'] }]);
  assert.deepEqual(diffPeers(cur.peers.slice(2), psk2.peers).changed, [{ publicKey: K3, what: ['preshared-key'] }]);
  // Every peer replaced.
  const all = diffPeers(cur.peers, cfg([{ 'public-key': K4, 'allowed-ips': ['10.0.0.0/8'] }]).peers);
  assert.deepEqual([all.added, all.removed.sort(), all.unchanged], [[K4], [K1, K2, K3].sort(), 0]);
});

test('fixedChange: only the peers may change at run time', () => {
  const peers = [{ 'public-key': K1, 'allowed-ips': ['198.18.64.0/24'] }];
  const cur = cfg(peers);
  assert.equal(fixedChange(cur, cfg([{ 'public-key': K2, 'allowed-ips': ['10.0.0.0/8'] }])), undefined);
  assert.match(fixedChange(cur, cfg(peers, { 'listen-port': 51821 }))!, /listen-port cannot change at run time/);
  assert.match(fixedChange(cur, cfg(peers, { mtu: 1400 }))!, /mtu cannot change/);
  assert.match(fixedChange(cur, cfg(peers, { timers: { 'rekey-after-time-s': 60 } }))!, /timers cannot change/);
  assert.match(fixedChange(cur, cfg(peers, { 'mac-prefix': '06' }))!, /plain cannot change/);
  assert.match(fixedChange(cur, cfg(peers, { plain: { address: '198.18.255.2/30', gateway: '198.18.255.1', address6: '2001:db8::2/64', gateway6: '2001:db8::1' } }))!, /plain cannot change/);
  assert.match(fixedChange(cur, cfg(peers, { 'mss-clamp': false }))!, /mss-clamp cannot change/);
});
