// The keystore component over an in-process session: it reads its key
// through the granted fd (and closes it), answers DH and public-key requests
// from the tunnel's client, refuses low-order points and malformed requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counters } from '../../src/runtime/counters.ts';
import type { ComponentEnv } from '../../src/runtime/component.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import createKeystore, { readPrivateKey } from '../../src/components/keystore/index.ts';
import { encodeKey, generatePrivateKey, privateKeyObject, publicKeyOf, x25519 } from '../../src/components/keystore/keys.ts';
import { KeystoreClient } from '../../src/components/tunnel/keystore-client.ts';
import { createLocalSession } from '../../src/session/local.ts';

function setup(keyText: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-ks-'));
  const file = join(dir, 'key');
  writeFileSync(file, keyText, { mode: 0o400 });
  const fd = openSync(file, 'r');
  const [a, b] = createLocalSession({ slots: 8, slotSize: 2048, names: ['tunnel', 'keys'] });
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: () => {}, kick: () => {} } as unknown as Entrypoint;
  const counters = new Counters();
  const env: ComponentEnv = {
    name: 'keystore', config: {}, configSource: { file: 'gw.yaml', path: 'components[0].config' },
    sessions: new Map([['tunnel', a]]), fds: { 'private-key': fd }, ep, counters,
    log: { info: () => {}, warn: () => {}, error: () => {} },
  } as unknown as ComponentEnv;
  return { dir, fd, a, b, env, pollables, counters };
}

test('keystore: DH and public key over the session, never the private key; the fd is closed', async () => {
  const priv = generatePrivateKey();
  const s = setup(`${encodeKey(priv)}\n`);
  try {
    const ks = createKeystore(s.env);
    assert.throws(() => fstatSync(s.fd), /EBADF/, 'the key fd is closed after reading');
    ks.start();
    const clientCounters = new Counters();
    const client = new KeystoreClient(s.b, clientCounters);
    const pump = async <T>(p: Promise<T>): Promise<T> => {
      for (let i = 0; i < 4; i++) {
        for (const x of s.pollables) x.run(false);
        client.pollable.run(false);
      }
      return p;
    };
    const pub = await pump(client.fetchPublicKey());
    assert.deepEqual(pub, publicKeyOf(priv));
    assert.deepEqual(ks.status(), { publicKey: encodeKey(publicKeyOf(priv)), clients: ['tunnel'] });
    const peer = generatePrivateKey();
    const shared = await pump(client.dh(publicKeyOf(peer)));
    assert.deepEqual(shared, x25519(privateKeyObject(peer), publicKeyOf(priv)));
    // A low-order point: refused, not a zero secret.
    assert.equal(await pump(client.dh(new Uint8Array(32))), undefined);
    assert.equal(s.counters.get('refused.low-order'), 1);
    // A malformed request from a hostile client: counted and answered with an error.
    const slot = s.b.out.alloc();
    s.b.out.buf.fill(7, slot, slot + 13);
    s.b.out.submit(slot, 13);
    s.b.out.flush();
    await pump(Promise.resolve());
    assert.equal(s.counters.get('drop.bad-request'), 1);
    assert.equal(s.counters.get('requests.dh'), 2);
    // Nothing the keystore sent contains the private key: scan its outgoing buffer.
    assert.equal(Buffer.from(s.a.out.buf).indexOf(Buffer.from(priv)), -1);
    // An unanswered request times out.
    const lost = client.dh(publicKeyOf(peer));
    client.expire(performance.now() + 10_000);
    assert.equal(await lost, undefined);
    assert.equal(clientCounters.get('keystore.timeouts'), 1);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('keystore: a key file that is not one base64 key is refused without echoing it', () => {
  const s = setup('not a key, and secret text\n');
  try {
    assert.throws(() => readPrivateKey(s.fd), (e: Error) => /does not hold one base64 key of 32 bytes/.test(e.message) && !e.message.includes('secret'));
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});
