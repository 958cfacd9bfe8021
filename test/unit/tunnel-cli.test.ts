// The commands around the tunnel: `microgate keys` (interchangeable with wg's
// key tools) and `microgate tunnel status` formatting (like `wg show`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { formatTunnel } from '../../src/cli/tunnel.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const mg = (args: string[], input?: string) => spawnSync(process.execPath, [MAIN, ...args], { input, encoding: 'utf8' });

test('keys generate | keys pubkey, and both against wg', () => {
  const k = mg(['keys', 'generate']);
  assert.equal(k.status, 0);
  assert.match(k.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  const p = mg(['keys', 'pubkey'], k.stdout);
  assert.equal(p.status, 0);
  assert.match(p.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  assert.match(mg(['keys', 'genpsk']).stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  const bad = mg(['keys', 'pubkey'], 'not a key\n');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not a base64 key of 32 bytes/);
  assert.equal(mg(['keys', 'frobnicate']).status, 2);
  if (existsSync('/usr/bin/wg')) {
    assert.equal(execFileSync('wg', ['pubkey'], { input: k.stdout }).toString(), p.stdout);
    const wk = execFileSync('wg', ['genkey']).toString();
    assert.equal(mg(['keys', 'pubkey'], wk).stdout, execFileSync('wg', ['pubkey'], { input: wk }).toString());
  }
});

test('tunnel status reads like wg show', () => {
  const text = formatTunnel('tunnel', {
    publicKey: 'PUB=', listenPort: 51820, ready: true,
    peers: [{
      publicKey: 'PEER=', presharedKey: true, endpoint: '198.19.0.3:51820', allowedIps: ['198.18.64.0/24'],
      latestHandshake: 1000, transferRx: 2048, transferTx: 100, persistentKeepalive: 25,
    }],
  }, 1065);
  assert.equal(text, [
    'interface: tunnel',
    '  public key: PUB=',
    '  private key: (in the keystore)',
    '  listening port: 51820',
    '',
    'peer: PEER=',
    '  preshared key: (hidden)',
    '  endpoint: 198.19.0.3:51820',
    '  allowed ips: 198.18.64.0/24',
    '  latest handshake: 1 minute, 5 seconds ago',
    '  transfer: 2.00 KiB received, 100 B sent',
    '  persistent keepalive: every 25 seconds',
  ].join('\n'));
  assert.equal(mg(['tunnel']).status, 2);
});
