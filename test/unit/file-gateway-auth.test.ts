// The file gateway's authentication pieces: Argon2id hashes (interoperable
// PHC strings), sessions (expiry, password change, bounded table), cookies,
// CSRF token comparison, login throttling with lockout per account and per
// source, the per-source request bucket, and the password-check gate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argon2id } from '@noble/hashes/argon2.js';
import { hashPassword, needsRehash, parseHash, verifyPassword } from '../../src/services/file-gateway/kdf.ts';
import { SessionTable, cookie, parseCookies, safeEqual } from '../../src/services/file-gateway/sessions.ts';
import { Gate, LoginThrottle, RequestBuckets } from '../../src/services/file-gateway/rate-limit.ts';
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

test('login throttle: N failures lock the account (any name) for the lockout, per source too; success clears the account; the window forgets', () => {
  const t = new LoginThrottle({ accountFailures: 3, sourceFailures: 5, windowMs: 10_000, lockoutMs: 60_000 });
  assert.deepEqual(t.check('alice', '1.1.1.1', 0), { locked: false });
  t.fail('alice', '1.1.1.1', 1);
  t.fail('alice', '2.2.2.2', 2);
  assert.deepEqual(t.fail('alice', '3.3.3.3', 3), { account: true, source: false });
  const v = t.check('alice', '4.4.4.4', 4);
  assert.ok(v.locked && v.by === 'account' && v.retryAfterMs === 59_999);
  assert.equal(t.check('alice', '4.4.4.4', 60_004).locked, false, 'the lockout ends');
  // The window: two failures, then a long pause, then two more: no lock.
  t.fail('nobody', '5.5.5.5', 100_000);
  t.fail('nobody', '5.5.5.5', 100_001);
  t.fail('nobody', '6.6.6.6', 120_000);
  t.fail('nobody', '6.6.6.6', 120_001);
  assert.equal(t.check('nobody', '7.7.7.7', 120_002).locked, false);
  // Success clears the account's count.
  t.fail('bob', '8.8.8.8', 200_000);
  t.fail('bob', '8.8.8.8', 200_001);
  t.succeed('bob');
  t.fail('bob', '8.8.8.8', 200_002);
  assert.equal(t.check('bob', '9.9.9.9', 200_003).locked, false);
  // The source: 5 failures over any names lock it for every name.
  for (let i = 0; i < 4; i++) t.fail(`u${i}`, '10.0.0.1', 300_000 + i);
  assert.equal(t.failSource('10.0.0.1', 300_010), true);
  const s = t.check('fresh', '10.0.0.1', 300_011);
  assert.ok(s.locked && s.by === 'source');
  assert.ok(t.sourceLockedFor('10.0.0.1', 300_011) > 0);
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
