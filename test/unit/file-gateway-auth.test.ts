// The file gateway's authentication pieces: Argon2id hashes (interoperable
// PHC strings), sessions (expiry, password change, bounded table), cookies,
// CSRF token comparison, login throttling per (account, source) and per
// source with growing delays and bounded memory, the per-source request bucket, and the password-check gate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argon2id } from '@noble/hashes/argon2.js';
import { hashPassword, needsRehash, parseHash, verifyPassword } from '../../src/services/file-gateway/kdf.ts';
import { SessionTable, cookie, parseCookies, safeEqual } from '../../src/services/file-gateway/sessions.ts';
import { Gate, LoginThrottle, RequestBuckets, sourceKey } from '../../src/services/file-gateway/rate-limit.ts';
import { passwordProblem, usernameProblem, parseUsersFile } from '../../src/services/file-gateway/users.ts';

const CHEAP = { m: 8192, t: 1, p: 1 };

test('argon2id: PHC string, verifies the right password only, matches an independent implementation, refuses malformed or absurd parameters', async () => {
  const h = await hashPassword('correct horse battery', CHEAP);
  assert.match(h, /^\$argon2id\$v=19\$m=8192,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.equal(await verifyPassword('correct horse battery', h), true);
  assert.equal(await verifyPassword('correct horse batterY', h), false);
  assert.notEqual(await hashPassword('correct horse battery', CHEAP), h, 'a fresh salt each time');
  const p = parseHash(h)!;
  const noble = argon2id(Buffer.from('correct horse battery'), p.salt, { t: 1, m: 8192, p: 1, dkLen: 32 });
  assert.deepEqual(Buffer.from(noble), p.tag, '@noble/hashes computes the same tag');
  for (const bad of ['', 'plain', h.replace('argon2id', 'argon2i'), h.replace('m=8192', 'm=999999999'), h.replace('t=1', 't=99'), h.replace('m=8192', 'm=1024')]) {
    assert.equal(parseHash(bad), undefined, bad);
    assert.equal(await verifyPassword('correct horse battery', bad), false);
  }
  assert.equal(needsRehash(h), true, 'weaker than the default');
});

test('users: names and passwords are checked; users.json is validated', () => {
  assert.equal(usernameProblem('alice'), undefined);
  for (const n of ['', 'Alice', '1abc', 'a b', 'a/b', 'x'.repeat(33)]) assert.ok(usernameProblem(n) !== undefined, n);
  assert.match(passwordProblem('short')!, /shorter than 10/);
  assert.equal(passwordProblem('ten chars!'), undefined);
  assert.throws(() => parseUsersFile({ version: 1, users: { alice: { hash: 'plain' } } }), /users\.alice\.hash/);
  assert.throws(() => parseUsersFile({ version: 2, users: {} }), /version/);
});

test('sessions: cookie ID kept only as a digest; idle and absolute expiry; a password change or removal ends them; the table is bounded', () => {
  const t = new SessionTable({ idleMs: 1000, maxMs: 5000, maxSessions: 3 });
  const fp = new Map([['alice', 'f1'], ['bob', 'f2']]);
  const of = (u: string): string | undefined => fp.get(u);
  const a = t.create('alice', 'f1', 0);
  assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a.session.csrf, a.id);
  assert.equal(t.get(a.id, 500, of)?.user, 'alice');
  assert.equal(t.get(a.id, 1400, of)?.user, 'alice', 'touched at 500: still alive at 1400');
  assert.equal(t.get(a.id, 2500, of), undefined, 'idle for 1100 ms');
  const b = t.create('alice', 'f1', 3000);
  for (let now = 3500; now < 8000; now += 500) t.get(b.id, now, of);
  assert.equal(t.get(b.id, 8100, of), undefined, 'older than maxMs');
  const c = t.create('bob', 'f2', 10_000);
  fp.set('bob', 'changed');
  assert.equal(t.get(c.id, 10_001, of), undefined, 'password changed');
  const d = t.create('alice', 'f1', 20_000);
  fp.delete('alice');
  assert.equal(t.get(d.id, 20_001, of), undefined, 'user removed');
  fp.set('alice', 'f1');
  const ids = [0, 1, 2, 3].map((i) => t.create('alice', 'f1', 30_000 + i).id);
  assert.equal(t.size, 3);
  assert.equal(t.get(ids[0], 30_010, of), undefined, 'the oldest went');
  assert.equal(t.get(ids[3], 30_010, of)?.user, 'alice');
  assert.equal(t.destroy(ids[3])?.user, 'alice');
  assert.equal(t.get(ids[3], 30_010, of), undefined);
  assert.equal(t.get('not-a-session', 0, of), undefined);
});

test('cookies: parse only well-formed values; our Set-Cookie is Secure, HttpOnly, SameSite=Strict; CSRF comparison', () => {
  const c = parseCookies('__Host-mgfs=abc_DEF-1; other=x y; __Host-mgfs=second; bad; z=');
  assert.equal(c.get('__Host-mgfs'), 'abc_DEF-1');
  assert.equal(c.has('other'), false);
  assert.equal(cookie('__Host-mgfs', 'v'), '__Host-mgfs=v; Path=/; Secure; HttpOnly; SameSite=Strict');
  assert.match(cookie('__Host-mgfs', '', 0), /Max-Age=0$/);
  assert.equal(safeEqual('abc', 'abc'), true);
  assert.equal(safeEqual('abc', 'abd'), false);
  assert.equal(safeEqual('abc', 'abcd'), false);
});

test('login throttle: per (account, source) with doubling delays up to a cap; another source logs in at once; per-source delays; success clears the pair; the window forgets', () => {
  const t = new LoginThrottle({ freeFailures: 3, sourceFailures: 10, delayMs: 1000, maxDelayMs: 8000, windowMs: 60_000 });
  assert.deepEqual(t.check('alice', '1.1.1.1', 0), { locked: false });
  for (let i = 0; i < 3; i++) assert.deepEqual(t.fail('alice', '1.1.1.1', i), { pairDelayMs: 0, sourceDelayMs: 0 });
  // From the 4th failure on: 1 s, 2 s, 4 s, 8 s, then capped at 8 s.
  let now = 10;
  for (const want of [1000, 2000, 4000, 8000, 8000]) {
    assert.equal(t.fail('alice', '1.1.1.1', now).pairDelayMs, want);
    const v = t.check('alice', '1.1.1.1', now + 1);
    assert.ok(v.locked && v.by === 'account-source' && v.retryAfterMs === want - 1, JSON.stringify(v));
    now += want;
    assert.equal(t.check('alice', '1.1.1.1', now).locked, false, 'the delay ends');
  }
  // The attacker's failures never delay the owner elsewhere: no lockout of the account.
  assert.deepEqual(t.check('alice', '2.2.2.2', now), { locked: false });
  // Nor another account from the attacker's source (until the source's own limit).
  assert.deepEqual(t.check('bob', '1.1.1.1', now), { locked: false });
  // Success clears the pair (not the source's count).
  t.succeed('alice', '1.1.1.1');
  assert.equal(t.fail('alice', '1.1.1.1', now).pairDelayMs, 0, 'counting starts again for the pair');
  // The source: 8 + 1 = 9 failures so far; the 10th is free, the 11th starts its delay (any name, or a wrong token).
  assert.equal(t.fail('x1', '1.1.1.1', now + 1).sourceDelayMs, 0);
  assert.equal(t.failSource('1.1.1.1', now + 2), 1000);
  const s = t.check('fresh', '1.1.1.1', now + 3);
  assert.ok(s.locked && s.by === 'source');
  assert.ok(t.sourceLockedFor('1.1.1.1', now + 3) > 0);
  assert.equal(t.sourceLockedFor('3.3.3.3', now + 3), 0);
  // The window: a pair with no failure for windowMs is forgotten.
  for (let i = 0; i < 4; i++) t.fail('carol', '4.4.4.4', 100_000 + i);
  assert.ok(t.check('carol', '4.4.4.4', 100_004).locked);
  assert.equal(t.fail('carol', '4.4.4.4', 100_003 + 60_001).pairDelayMs, 0, 'forgotten after the window');
});

test('login throttle: memory is bounded per source and in all, the least recently failing forgotten; IPv6 counted per /64', () => {
  const t = new LoginThrottle({ freeFailures: 1, sourceFailures: 1_000_000, delayMs: 1000, maxDelayMs: 1000, windowMs: 3_600_000, maxTracked: 200, maxPerSource: 10 });
  // One source spraying 50 names keeps at most 10 pairs (plus its own entry).
  for (let i = 0; i < 50; i++) t.fail(`user${i}`, '5.5.5.5', i);
  assert.equal(t.size, 11);
  assert.equal(t.fail('user49', '5.5.5.5', 100).pairDelayMs, 1000, 'recent pairs are remembered');
  assert.equal(t.fail('user0', '5.5.5.5', 101).pairDelayMs, 0, 'the oldest pair was forgotten');
  // Many sources: never more than maxTracked entries.
  for (let i = 0; i < 1000; i++) t.fail('victim', `10.0.${i >> 8}.${i & 255}`, 1000 + i);
  assert.ok(t.size <= 200, `size ${t.size}`);
  assert.equal(t.fail('victim', '10.0.3.231', 3000).pairDelayMs, 1000, 'the most recent sources are remembered');
  assert.equal(t.fail('victim', '10.0.0.0', 3001).pairDelayMs, 0, 'the oldest were forgotten');
  // IPv6: every address of one /64 is one source.
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
  const u = new LoginThrottle({ freeFailures: 1, sourceFailures: 100, delayMs: 1000, maxDelayMs: 1000, windowMs: 60_000 });
  u.fail('alice', '2001:db8:1:2::1', 0);
  assert.equal(u.fail('alice', '2001:db8:1:2::2', 1).pairDelayMs, 1000, 'another address of the same /64 is the same source');
  assert.deepEqual(u.check('alice', '2001:db8:1:3::1', 2), { locked: false }, 'another /64 is not');
});

test('request buckets: burst, then the rate; per source; bounded', () => {
  const b = new RequestBuckets(10, 3, 2);
  assert.deepEqual([0, 0, 0, 0].map(() => b.take('a', 0)), [true, true, true, false]);
  assert.equal(b.take('b', 0), true, 'another source has its own bucket');
  assert.equal(b.take('a', 100), true, '100 ms at 10/s is one token');
  assert.equal(b.take('a', 100), false);
  assert.equal(b.take('c', 1000), true, 'a third source evicts an idle one');
});

test('gate: at most n at once, a bounded queue, release hands over in order', async () => {
  const g = new Gate(1, 1);
  const r1 = await g.enter();
  assert.ok(r1 !== undefined);
  let second = false;
  const p2 = g.enter().then((r) => { second = true; return r; });
  assert.equal(await g.enter(), undefined, 'the queue is full');
  await new Promise((r) => setImmediate(r));
  assert.equal(second, false);
  r1();
  const r2 = await p2;
  assert.ok(second && r2 !== undefined);
  r2();
  r1();
  assert.ok((await g.enter()) !== undefined, 'releasing twice changes nothing');
});
