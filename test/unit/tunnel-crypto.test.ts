// WireGuard's primitives and handshake, checked against published vectors:
// wireguard-go's kdf_test.go (KDF1/2/3 over HMAC-BLAKE2s), noise_test.go (a
// handshake between two devices agrees on chaining key, hash and transport
// keys), cookie_test.go (mac1/mac2 and cookie replies), replay_test.go (the
// kernel's anti-replay cases), RFC 7748 (X25519) and `wg pubkey` formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  clamp, decodeKey, encodeKey, generatePrivateKey, privateKeyObject, publicKeyOf, x25519,
} from '../../src/components/keystore/keys.ts';
import { aeadOpen, aeadSeal, hash, kdf1, kdf2, kdf3, mac, tai64n, timestampAfter } from '../../src/components/tunnel/crypto.ts';
import { aeadBackend, createAeadKey } from '../../src/components/tunnel/aead.ts';
import {
  consumeInitiation, consumeResponse, createInitiation, createResponse, deriveKeys, INITIAL_CHAIN_KEY, INITIAL_HASH,
  type StaticIdentity,
} from '../../src/components/tunnel/noise.ts';
import { CookieChecker, CookieGenerator } from '../../src/components/tunnel/cookie.ts';
import { ReplayFilter } from '../../src/components/tunnel/replay.ts';
import { INITIATION_SIZE, RESPONSE_SIZE } from '../../src/components/tunnel/messages.ts';
import { mapAnonymous } from '../../src/sys/libc.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

test('KDF1/KDF2/KDF3 reproduce wireguard-go kdf_test.go', () => {
  const cases = [
    {
      key: '746573742d6b6579', input: '746573742d696e707574',
      t0: '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      t1: 'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      t2: 'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
    },
    {
      key: '776972656775617264', input: '776972656775617264',
      t0: '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      t1: '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      t2: '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
    },
    {
      key: '', input: '',
      t0: '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      t1: '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      t2: '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
    },
  ];
  for (const c of cases) {
    const [a, b, d] = kdf3(unhex(c.key), unhex(c.input));
    assert.deepEqual([hex(a), hex(b), hex(d)], [c.t0, c.t1, c.t2]);
    const [e, f] = kdf2(unhex(c.key), unhex(c.input));
    assert.deepEqual([hex(e), hex(f)], [c.t0, c.t1]);
    assert.equal(hex(kdf1(unhex(c.key), unhex(c.input))), c.t0);
  }
});

test('the initial chaining key and hash are the Noise construction and WireGuard identifier hashed', () => {
  // HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"): the value every WireGuard implementation starts from.
  assert.equal(hex(INITIAL_CHAIN_KEY), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  assert.equal(hex(INITIAL_HASH), '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
});

test('X25519 reproduces RFC 7748 section 6.1', () => {
  const alice = unhex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = unhex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.equal(hex(publicKeyOf(alice)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(hex(publicKeyOf(bob)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const k = x25519(privateKeyObject(alice), publicKeyOf(bob));
  assert.equal(hex(k!), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  // A low-order point (here 0) gives an all-zero result, which must be refused.
  assert.equal(x25519(privateKeyObject(alice), new Uint8Array(32)), undefined);
});

test('keys: wg base64 format, clamping, and the same public key as `wg pubkey`', () => {
  const k = generatePrivateKey();
  assert.equal(k[0] & 7, 0);
  assert.equal(k[31] & 0xc0, 0x40);
  const text = encodeKey(k);
  assert.match(text, /^[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(decodeKey(`${text}\n`), k);
  for (const bad of ['', 'abc', `${text.slice(0, 43)}`, `${text}=`, `${text.slice(0, 42)}B=`, '!'.repeat(44)]) {
    assert.equal(decodeKey(bad), undefined, bad);
  }
  assert.deepEqual(clamp(new Uint8Array(32).fill(0xff)).slice(0, 1), new Uint8Array([0xf8]));
  if (existsSync('/usr/bin/wg')) {
    const wgPub = execFileSync('wg', ['pubkey'], { input: `${text}\n` }).toString().trim();
    assert.equal(encodeKey(publicKeyOf(k)), wgPub);
    const wgKey = execFileSync('wg', ['genkey']).toString().trim();
    const raw = decodeKey(wgKey)!;
    assert.equal(encodeKey(publicKeyOf(raw)), execFileSync('wg', ['pubkey'], { input: wgKey }).toString().trim());
  }
});

test(`data-path AEAD (${aeadBackend()}) matches node:crypto ChaCha20-Poly1305 and rejects tampering`, () => {
  const mem = mapAnonymous(16384);
  try {
    const buf = new Uint8Array(mem.buffer);
    for (const len of [0, 1, 15, 16, 1420, 4000]) {
      const key = new Uint8Array(randomBytes(32));
      const counter = len === 4000 ? 2 ** 40 + 7 : len * 3;
      const plain = new Uint8Array(randomBytes(len));
      buf.set(plain, 100);
      const sealer = createAeadKey(key, true);
      sealer.seal(buf, mem.address, 100, len, counter);
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64LE(BigInt(counter), 4);
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      const expect = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
      assert.equal(hex(buf.subarray(100, 100 + len + 16)), expect.toString('hex'), `len ${len}`);
      const opener = createAeadKey(key, false);
      assert.equal(opener.open(buf, mem.address, 100, len, buf, mem.address, 5000, counter), true);
      assert.deepEqual(buf.slice(5000, 5000 + len), plain);
      assert.equal(opener.open(buf, mem.address, 100, len, buf, mem.address, 5000, counter + 1), false, 'wrong counter');
      buf[100 + len] ^= 1;
      assert.equal(opener.open(buf, mem.address, 100, len, buf, mem.address, 5000, counter), false, 'bad tag');
      sealer.destroy();
      opener.destroy();
    }
  } finally {
    mem.unmap();
  }
});

function localIdentity(priv: Uint8Array): StaticIdentity & { calls: number } {
  const key = privateKeyObject(priv);
  const id = {
    publicKey: publicKeyOf(priv),
    calls: 0,
    dh: async (peer: Uint8Array) => {
      id.calls++;
      return x25519(key, peer);
    },
  };
  return id;
}

test('Noise_IKpsk2 handshake reproduces wireguard-go noise_test.go: both sides agree, keys pair up', async () => {
  for (const psk of [undefined, new Uint8Array(randomBytes(32))]) {
    const i = localIdentity(generatePrivateKey());
    const r = localIdentity(generatePrivateKey());
    const init = await createInitiation(i, r.publicKey, 0x11223344, tai64n());
    assert.ok(init);
    assert.equal(init.msg.length, INITIATION_SIZE);
    assert.equal(init.msg[0], 1);
    const got = await consumeInitiation(r, init.msg, (pub) => Buffer.compare(pub, i.publicKey) === 0);
    assert.ok(got.ok);
    assert.deepEqual(got.remoteStatic, i.publicKey);
    assert.equal(got.state.remoteIndex, 0x11223344);
    assert.deepEqual(got.state.chainKey, init.state.chainKey, 'chain keys agree after message 1');
    assert.deepEqual(got.state.hash, init.state.hash, 'hashes agree after message 1');
    const resp = createResponse(got.state, psk, 0x55667788);
    assert.ok(resp);
    assert.equal(resp.length, RESPONSE_SIZE);
    assert.equal(await consumeResponse(i, init.state, psk, resp), true);
    assert.equal(init.state.remoteIndex, 0x55667788);
    assert.deepEqual(got.state.chainKey, init.state.chainKey, 'chain keys agree after message 2');
    assert.deepEqual(got.state.hash, init.state.hash, 'hashes agree after message 2');
    const ki = deriveKeys(init.state, true);
    const kr = deriveKeys(got.state, false);
    assert.deepEqual(ki.send, kr.receive);
    assert.deepEqual(ki.receive, kr.send);
    assert.notDeepEqual(ki.send, ki.receive);
    const m1 = new TextEncoder().encode('wireguard test message 1');
    assert.deepEqual(aeadOpen(kr.receive, 0, aeadSeal(ki.send, 0, m1, new Uint8Array(0)), new Uint8Array(0)), m1);
    const m2 = new TextEncoder().encode('wireguard test message 2');
    assert.deepEqual(aeadOpen(ki.receive, 0, aeadSeal(kr.send, 0, m2, new Uint8Array(0)), new Uint8Array(0)), m2);
    // Static-key DHs went through the identity: two on each side.
    assert.equal(i.calls, 2);
    assert.equal(r.calls, 2);
  }
});

test('handshake failures: unknown peer, tampered initiation, wrong preshared key', async () => {
  const i = localIdentity(generatePrivateKey());
  const r = localIdentity(generatePrivateKey());
  const init = (await createInitiation(i, r.publicKey, 1, tai64n()))!;
  const unknown = await consumeInitiation(r, init.msg, () => false);
  assert.deepEqual(unknown, { ok: false, reason: 'unknown-peer' });
  const bad = init.msg.slice();
  bad[50] ^= 1;
  assert.equal((await consumeInitiation(r, bad, () => true)).ok, false);
  const got = await consumeInitiation(r, init.msg, () => true);
  assert.ok(got.ok);
  const resp = createResponse(got.state, new Uint8Array(32).fill(1), 2)!;
  const before = init.state.chainKey.slice();
  assert.equal(await consumeResponse(i, init.state, new Uint8Array(32).fill(2), resp), false);
  assert.deepEqual(init.state.chainKey, before, 'a failed response leaves the state alone');
  // Sent to the wrong responder: the static key does not decrypt.
  const other = localIdentity(generatePrivateKey());
  assert.deepEqual(await consumeInitiation(other, init.msg, () => true), { ok: false, reason: 'bad-static' });
});

test('TAI64N timestamps: 2^62 + 10 + seconds, whitened nanoseconds, ordered', () => {
  const t = tai64n(1_700_000_000_500);
  assert.equal(hex(t.subarray(0, 8)), (0x4000000000000000n + 10n + 1_700_000_000n).toString(16).padStart(16, '0'));
  assert.equal(new DataView(t.buffer).getUint32(8) & 0xffffff, 0);
  assert.ok(timestampAfter(tai64n(1_700_000_001_000), t));
  assert.ok(!timestampAfter(t, t));
});

test('mac1 / mac2 / cookie reply reproduce wireguard-go cookie_test.go', () => {
  const pk = publicKeyOf(generatePrivateKey());
  let now = 1000;
  const clock = () => now;
  const generator = new CookieGenerator(pk, { clock });
  const checker = new CookieChecker(pk, { clock });
  const src = new Uint8Array([192, 168, 13, 37, 10, 10, 10]);
  const checkMac1 = (msg: Uint8Array) => {
    generator.addMacs(msg);
    assert.ok(checker.checkMac1(msg), 'mac1');
    assert.ok(!checker.checkMac2(msg, src), 'no mac2 without a cookie');
  };
  checkMac1(unhex('99bba5fc99aa83bd7b00c59a4cb9cf624023f38ed8d062645db28013dacec69161d630f132b3a2f47b43b5a7e2b1f56c746bb0cd1f94867bc8fb92ed549b44f5c87db78eff49c4e8397c19e0601951f8e48e02f17f1dcc8eb007fff8af7f668283cc7cfa80db8153adf7d80c10e020fde80b3f9015cd93ad0bd50ccc8856e43f'));
  checkMac1(unhex('33e72a849fff576c2dc32de1f55c9756b893c27dd441dd7a4a593b50dd7a7a8c9b96af553ceb6d0b130b9798b340c3ccb85733456e8b092b812ed2b9660b9305'));
  checkMac1(unhex('9b96af553ceb6d0b130b9798b340c3ccb85733456e8b092b812ed2b9660b9305'));
  // Exchange a cookie reply.
  const msg = unhex('6dd7c32eb076d8df30657d623ef89ae8e73c64a37848daf525612853793286' +
    '9fa0279569b6bad0a2f868eaa862f2fd1be0b480e56b3a169e35f6a8f24f9a7be9770bc2b4edbaf922c30397429f797427fef9066e973aa68fc9570a544c644ae24fa1ce959b23a92b859342b0a553edeb632af16d46cb2f618ce1e8fa6720806d');
  generator.addMacs(msg);
  const reply = checker.createReply(msg, 1377, src);
  assert.equal(new DataView(reply.buffer).getUint32(4, true), 1377);
  assert.ok(generator.consumeReply(reply), 'consume cookie reply');
  const tampered = reply.slice();
  tampered[40] ^= 1;
  assert.ok(!generator.consumeReply(tampered), 'a tampered reply is refused');
  const checkMac2 = (m: Uint8Array) => {
    generator.addMacs(m);
    assert.ok(checker.checkMac1(m));
    assert.ok(checker.checkMac2(m, src));
    m[5] ^= 0x20;
    assert.ok(!checker.checkMac1(m));
    assert.ok(!checker.checkMac2(m, src));
    m[5] ^= 0x20;
    assert.ok(!checker.checkMac2(m, new Uint8Array([192, 168, 13, 37, 40, 1])));
    assert.ok(!checker.checkMac2(m, new Uint8Array([192, 168, 13, 38, 40, 1])));
  };
  checkMac2(unhex('0331b99eb02a54a3c13fb49616b925153d3a82f95836863f132ffeb253208c3fbaebfb4b1b2202692c90bcdccfcf85eb62666fe8e1a6a84ca004231542acfa38'));
  checkMac2(unhex('0e2f0ea92903e1f3240175ad16a56685ca66e0bdc634d884099a5814fb05daf590f50c4e2210c9850fe37735e96bc2553246ae25e0e3377a4b71ccfc91dfd6cafeeece3f77a2fd598e730a8d5c2414ca3891b82c8ca2657bbc49bcb558fce3d702cff74c6091ed55e9f9fed1442c75f2b35d7b2756c0484fb0bae47dd0aacd3de350d2cfb9fa4b2dc6df3b329845e68f1c5ca2207d1c28c2d4a1e021528f1cd0629748bbf4a9cb35f207d350d8a9c59a0fbd37afe14519ee41f3f7e5e0303fbe3d3964007a1a515ee1700bb9775af0c48aa13a771ae0c20691d5e91cd3feab931a0a4cbbf0ffdcaa6173cb034b7168643d823141d78b227b7da1d5856df01baa'));
  // The cookie and the secret expire after COOKIE_REFRESH_TIME.
  now += 121_000;
  const m = unhex('0331b99eb02a54a3c13fb49616b925153d3a82f95836863f132ffeb253208c3fbaebfb4b1b2202692c90bcdccfcf85eb62666fe8e1a6a84ca004231542acfa38');
  generator.addMacs(m);
  assert.ok(!generator.hasCookie);
  assert.ok(!checker.checkMac2(m, src));
  assert.deepEqual(mac(new Uint8Array(32), new Uint8Array(0)).length, 16);
  assert.equal(hash(new Uint8Array(0)).length, 32);
});

test('the replay window reproduces wireguard-go replay_test.go (the Linux kernel cases)', () => {
  const f = new ReplayFilter();
  const W = f.windowSize;
  const LIMIT = Number.MAX_SAFE_INTEGER;
  const TL = W + 1;
  let n = 0;
  const T = (c: number, expected: boolean) => {
    n++;
    assert.equal(f.validate(c, LIMIT), expected, `case ${n}: ${c}`);
  };
  T(0, true); T(1, true); T(1, false); T(9, true); T(8, true); T(7, true); T(7, false);
  T(TL, true); T(TL - 1, true); T(TL - 1, false); T(TL - 2, true); T(2, true); T(2, false);
  T(TL + 16, true); T(3, false); T(TL + 16, false); T(TL * 4, true); T(TL * 4 - (TL - 1), true);
  T(10, false); T(TL * 4 - TL, false); T(TL * 4 - (TL + 1), false); T(TL * 4 - (TL - 2), true);
  T(TL * 4 + 1 - TL, false); T(0, false);
  T(LIMIT, false); T(LIMIT - 1, true); T(LIMIT, false); T(LIMIT - 1, false); T(LIMIT - 2, true);
  T(LIMIT + 1, false); T(LIMIT + 2, false); T(LIMIT - 2, false); T(LIMIT - 3, true); T(0, false);
  const bulk = (name: string, body: () => void) => {
    f.reset();
    n = 0;
    body();
    void name;
  };
  bulk('1', () => { for (let i = 1; i <= W; i++) T(i, true); T(0, true); T(0, false); });
  bulk('2', () => { for (let i = 2; i <= W + 1; i++) T(i, true); T(1, true); T(0, false); });
  bulk('3', () => { for (let i = W + 1; i > 0; i--) T(i, true); });
  bulk('4', () => { for (let i = W + 2; i > 1; i--) T(i, true); T(0, false); });
  bulk('5', () => { for (let i = W; i > 0; i--) T(i, true); T(W + 1, true); T(0, false); });
  bulk('6', () => { for (let i = W; i > 0; i--) T(i, true); T(0, true); T(W + 1, true); });
  assert.equal(f.windowSize, 2016);
  assert.equal(new ReplayFilter(8192).windowSize, 8160);
});
