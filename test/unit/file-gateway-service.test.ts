// The file gateway as a client sees it, over real HTTPS on loopback with the
// local-folder storage: login and sessions, CSRF, login delays, downloads with
// Range / ETag, publication rules (unpublished = expired = consumed = never
// existed; once-links used up at the start, even by two racing requests),
// the TLS suites, public links, traversal attempts, limits, and that no response
// names anything inside. (The same against the lab's NAS through the gateway:
// test/integration/file-gateway.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFileGatewayConfig, type FileGatewayConfig } from '../../src/services/file-gateway/config.ts';
import { hashPassword, type KdfParams } from '../../src/services/file-gateway/kdf.ts';
import { writeJsonAtomic } from '../../src/services/file-gateway/json-file.ts';
import { createPublication, type Publication } from '../../src/services/file-gateway/publications.ts';
import { startService, type RunningService } from '../../src/services/file-gateway/service.ts';
import { fileGatewayDir } from './fixtures/file-gateway-dir.ts';

const CHEAP: KdfParams = { m: 8192, t: 1, p: 1 };
const PW = 'correct horse battery';

let dir: string;
let cfg: FileGatewayConfig;
let svc: RunningService;
let port: number;
const pubs: Publication[] = [];
const responses: string[] = [];

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; text: string }

function http(method: string, path: string, opts: { headers?: Record<string, string>; body?: string; jar?: Map<string, string>; from?: string } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.jar !== undefined && opts.jar.size > 0) headers.cookie = [...opts.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  if (opts.body !== undefined) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, rejectUnauthorized: false, agent: false, localAddress: opts.from }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        for (const c of (res.headers['set-cookie'] ?? [])) {
          const [pair] = c.split(';');
          const i = pair.indexOf('=');
          if (opts.jar !== undefined) {
            if (/Max-Age=0/.test(c)) opts.jar.delete(pair.slice(0, i));
            else opts.jar.set(pair.slice(0, i), pair.slice(i + 1));
          }
        }
        responses.push(JSON.stringify(res.headers) + body.toString('latin1'));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function login(user: string, password: string, jar = new Map<string, string>(), from?: string): Promise<{ res: Res; jar: Map<string, string> }> {
  const page = await http('GET', '/login', { jar, from });
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  const res = await http('POST', '/login', { jar, from, body: new URLSearchParams({ csrf, user, password }).toString() });
  return { res, jar };
}

function publish(path: string, opts: Parameters<typeof createPublication>[0] extends infer T ? Partial<T> : never = {}): { p: Publication; token: string | null } {
  const { publication, token } = createPublication({ path, ...opts });
  pubs.push(publication);
  writeJsonAtomic(join(dir, 'publications.json'), { version: 1, publications: pubs });
  return { p: publication, token };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, cfg.reloadMs * 2 + 30));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const BIG = Buffer.alloc(3 * 1024 * 1024 + 17);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 2654435761) >>> 24;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-fgw-'));
  mkdirSync(join(dir, 'share', 'docs'), { recursive: true });
  writeFileSync(join(dir, 'share', 'docs', 'report.txt'), 'the quarterly report\n');
  writeFileSync(join(dir, 'share', 'docs', 'secret.txt'), 'never published\n');
  writeFileSync(join(dir, 'share', 'big.bin'), BIG);
  writeFileSync(join(dir, 'outside.txt'), 'outside the share\n');
  symlinkSync(join(dir, 'outside.txt'), join(dir, 'share', 'link-out.txt'));
  cfg = fileGatewayDir(dir, { login: { freeFailures: 3, sourceFailures: 8 }, limits: { rps: 1000, notFoundMs: 60 } });
  const now = new Date().toISOString();
  writeJsonAtomic(join(dir, 'users.json'), {
    version: 1,
    users: {
      alice: { hash: await hashPassword(PW, CHEAP), created: now, updated: now },
      bob: { hash: await hashPassword(PW, CHEAP), created: now, updated: now },
      carol: { hash: await hashPassword(PW, CHEAP), created: now, updated: now },
    },
  });
  svc = await startService(cfg, { dummyHash: await hashPassword('dummy-password', CHEAP), log: () => {} });
  port = svc.address.port;
});

after(async () => {
  await svc?.close();
  // Nothing any response carried names the share's folder, the host or the server software.
  const all = responses.join('\n');
  // (Only strings that cannot turn up by chance in the random base64url tokens.)
  for (const bad of [dir, 'share/', 'docs/', 'secret.txt', 'outside the', 'Node.js', 'node:', 'X-Powered-By', 'Server:']) {
    assert.ok(!all.includes(bad), `a response contains ${JSON.stringify(bad)}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('without a session: / and /f/ID redirect to /login (the same for any ID); unknown paths are a plain 404', async () => {
  const { p } = publish('docs/report.txt');
  await settle();
  for (const path of ['/', `/f/${p.id}/report.txt`, '/f/AAAAAAAAAAAAAAAAAAAAAA', '/f/x']) {
    const r = await http('GET', path);
    assert.equal(r.status, 303, path);
    assert.equal(r.headers.location, '/login');
  }
  const r = await http('GET', '/etc/passwd');
  assert.equal(r.status, 404);
  assert.equal(r.headers['content-security-policy']?.toString().includes("default-src 'none'"), true);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');
});

test("/healthz (init's health check): 200 \"ok\" without an account, nothing else; GET and HEAD only", async () => {
  const r = await http('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'ok\n');
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['set-cookie'], undefined, 'no session, no login cookie');
  assert.equal((await http('HEAD', '/healthz')).status, 200);
  assert.equal((await http('POST', '/healthz', { body: 'x=1' })).status, 405);
  assert.equal((await http('GET', '/healthz/x')).status, 404);
});

test('login: CSRF token and same origin required; cookies are __Host-, Secure, HttpOnly, SameSite=Strict; logout needs the CSRF token', async () => {
  const jar = new Map<string, string>();
  const page = await http('GET', '/login', { jar });
  assert.equal(page.status, 200);
  const setCookie = (page.headers['set-cookie'] as string[])[0];
  assert.match(setCookie, /^__Host-mgfs-login=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict/);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1];
  // No token, a wrong token, a foreign origin, a cross-site fetch: refused, no session.
  for (const [body, headers] of [
    [`user=alice&password=${encodeURIComponent(PW)}`, {}],
    [`csrf=${'x'.repeat(43)}&user=alice&password=${encodeURIComponent(PW)}`, {}],
    [`csrf=${csrf}&user=alice&password=${encodeURIComponent(PW)}`, { origin: 'https://evil.example' }],
    [`csrf=${csrf}&user=alice&password=${encodeURIComponent(PW)}`, { 'sec-fetch-site': 'cross-site' }],
  ] as const) {
    const r = await http('POST', '/login', { jar: new Map(jar), body, headers });
    assert.equal(r.status, 403, body);
    assert.ok(!String(r.headers['set-cookie']).includes('__Host-mgfs='));
  }
  const ok = await http('POST', '/login', { jar, body: `csrf=${csrf}&user=alice&password=${encodeURIComponent(PW)}`, headers: { origin: `https://127.0.0.1:${port}` } });
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.location, '/');
  const sessionCookie = (ok.headers['set-cookie'] as string[]).find((c) => c.startsWith('__Host-mgfs='))!;
  assert.match(sessionCookie, /^__Host-mgfs=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
  const list = await http('GET', '/', { jar });
  assert.equal(list.status, 200);
  assert.match(list.text, /report\.txt/);
  assert.match(list.text, /21 B/);
  assert.ok(!list.text.includes('secret.txt'), 'unpublished files are never listed');
  const logoutCsrf = /name="csrf" value="([^"]+)"/.exec(list.text)![1];
  assert.equal((await http('POST', '/logout', { jar, body: 'csrf=wrong' })).status, 403);
  assert.equal((await http('GET', '/', { jar })).status, 200, 'a refused logout leaves the session');
  const out = await http('POST', '/logout', { jar, body: `csrf=${logoutCsrf}` });
  assert.equal(out.status, 303);
  assert.equal(out.headers.location, '/login');
  assert.equal((await http('GET', '/', { jar })).status, 303, 'logged out');
});

test('downloads: whole file byte-exact, Range (206, suffix, open-ended), 416, ETag / If-None-Match 304, If-Range, HEAD, Content-Type and -Disposition', async () => {
  const { p } = publish('big.bin', { name: 'Résumé "final".bin' });
  const { jar } = await login('alice', PW);
  await settle();
  const whole = await http('GET', `/f/${p.id}`, { jar });
  assert.equal(whole.status, 200);
  assert.equal(sha(whole.body), sha(BIG));
  assert.equal(whole.headers['content-length'], String(BIG.length));
  assert.equal(whole.headers['accept-ranges'], 'bytes');
  assert.equal(whole.headers['content-type'], 'application/octet-stream');
  assert.equal(whole.headers['content-disposition'], `attachment; filename="R_sum_ _final_.bin"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.bin`);
  assert.equal(whole.headers['content-security-policy'], "default-src 'none'; sandbox");
  const etag = whole.headers.etag as string;
  assert.match(etag, /^"[A-Za-z0-9_-]{27}"$/);
  const part = await http('GET', `/f/${p.id}/x.bin`, { jar, headers: { range: 'bytes=1000-1999' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 1000-1999/${BIG.length}`);
  assert.deepEqual(part.body, BIG.subarray(1000, 2000));
  const suffix = await http('GET', `/f/${p.id}`, { jar, headers: { range: 'bytes=-10' } });
  assert.deepEqual(suffix.body, BIG.subarray(BIG.length - 10));
  const open = await http('GET', `/f/${p.id}`, { jar, headers: { range: `bytes=${BIG.length - 5}-` } });
  assert.equal(open.status, 206);
  assert.deepEqual(open.body, BIG.subarray(BIG.length - 5));
  const beyond = await http('GET', `/f/${p.id}`, { jar, headers: { range: `bytes=${BIG.length}-` } });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers['content-range'], `bytes */${BIG.length}`);
  const multi = await http('GET', `/f/${p.id}`, { jar, headers: { range: 'bytes=0-1,5-6' } });
  assert.equal(multi.status, 200, 'several ranges: the whole file');
  assert.equal((await http('GET', `/f/${p.id}`, { jar, headers: { 'if-none-match': etag } })).status, 304);
  assert.equal((await http('GET', `/f/${p.id}`, { jar, headers: { 'if-none-match': '"other"' } })).status, 200);
  assert.equal((await http('GET', `/f/${p.id}`, { jar, headers: { range: 'bytes=0-9', 'if-range': etag } })).status, 206);
  assert.equal((await http('GET', `/f/${p.id}`, { jar, headers: { range: 'bytes=0-9', 'if-range': '"stale"' } })).status, 200);
  const head = await http('HEAD', `/f/${p.id}`, { jar });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(BIG.length));
  assert.equal(head.body.length, 0);
  const txt = await http('GET', `/f/${pubs[0].id}`, { jar });
  assert.equal(txt.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(txt.text, 'the quarterly report\n');
});

test('not yours, unknown, malformed, expired, withdrawn, consumed, or gone from the share: one answer, 404 after the same floor', async () => {
  const forBob = publish('docs/report.txt', { users: ['bob'] }).p;
  const expired = publish('docs/report.txt').p;
  const withdrawn = publish('docs/report.txt').p;
  const once = publish('docs/report.txt', { once: true }).p;
  const gone = publish('docs/missing.txt').p;
  const linkOut = publish('link-out.txt').p;
  expired.expires = new Date(Date.now() - 1000).toISOString();
  pubs.splice(pubs.indexOf(withdrawn), 1);
  writeJsonAtomic(join(dir, 'publications.json'), { version: 1, publications: pubs });
  const { jar } = await login('alice', PW);
  await settle();
  const first = await http('GET', `/f/${once.id}`, { jar });
  assert.equal(first.status, 200, 'a once-publication serves one download');
  assert.equal(first.headers['accept-ranges'], undefined);
  const reference = await http('GET', '/f/AAAAAAAAAAAAAAAAAAAAAA', { jar });
  assert.equal(reference.status, 404);
  for (const id of [forBob.id, expired.id, withdrawn.id, once.id, gone.id, linkOut.id, 'short', `${forBob.id}x`]) {
    const t0 = performance.now();
    const r = await http('GET', `/f/${id}/name.txt`, { jar });
    const ms = performance.now() - t0;
    assert.equal(r.status, 404, id);
    assert.equal(r.text, reference.text, `${id}: the same page as a never-existing ID`);
    assert.deepEqual(Object.keys(r.headers).sort(), Object.keys(reference.headers).sort(), id);
    assert.ok(ms >= cfg.limits.notFoundMs - 5, `${id}: answered after ${ms.toFixed(0)} ms, before the floor`);
  }
  const bob = await login('bob', PW);
  assert.equal((await http('GET', `/f/${forBob.id}`, { jar: bob.jar })).status, 200, 'bob sees his file');
  assert.ok(!(await http('GET', '/', { jar })).text.includes(forBob.id), "alice's list does not show bob's file");
});

test('traversal: dot segments, encoded dots and slashes, backslashes, absolute and storage-like paths never reach a file', async () => {
  const { jar } = await login('alice', PW);
  const id = pubs[0].id;
  const attempts = [
    `/f/${id}/../secret.txt`, `/f/${id}/..%2fdocs%2fsecret.txt`, '/f/../../etc/passwd', '/f/%2e%2e/%2e%2e/docs/secret.txt',
    `/f/${id}%2f..%2f..%2fdocs%2fsecret.txt`, '/f/..\\..\\docs\\secret.txt', `/f/${id}\\..\\secret.txt`, '//etc/passwd',
    '/docs/secret.txt', '/share/docs/secret.txt', '/f/', '/f', `/f/${id}/a/b`, '/p/../f', `/f/${id}?path=docs/secret.txt`,
    '/%2e%2e/docs/secret.txt', '/link-out.txt', '/f/link-out.txt', '/assets/../docs/secret.txt',
  ];
  for (const path of attempts) {
    const r = await http('GET', path, { jar });
    assert.ok(!r.text.includes('never published') && !r.text.includes('outside the share'), path);
    // After /f/ID/ one segment is the download's cosmetic name and is ignored: at most the published file comes back.
    if (path.startsWith(`/f/${id}/`) || path.startsWith(`/f/${id}?`)) assert.ok(r.status === 404 || r.text === 'the quarterly report\n', path);
    else assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
  }
});

test('brute force: failures delay only that (account, source) pair, growing; the owner from another source logs in at once; the source has its own limit, which wrong public-link tokens count toward', async () => {
  // From a source address of its own (127.0.0.5), so its delays leave the other tests alone.
  const from = '127.0.0.5';
  for (let i = 0; i < cfg.login.freeFailures + 1; i++) {
    const { res } = await login('carol', 'wrong password!', undefined, from);
    assert.equal(res.status, 401);
    assert.match(res.text, /Wrong user name or password/);
  }
  const delayed = await login('carol', PW, undefined, from);
  assert.equal(delayed.res.status, 429, 'the pair waits, even with the right password');
  const wait = Number(delayed.res.headers['retry-after']);
  assert.ok(wait >= 1 && wait <= cfg.login.delayMs / 1000, `retry-after ${wait}`);
  assert.equal((await login('carol', PW)).res.status, 303, 'the owner, from another source, logs in at once');
  // Unknown accounts answer exactly like known ones.
  const ghost = await login('nobody', 'wrong password!', undefined, from);
  assert.equal(ghost.res.status, 401);
  assert.equal((await login('alice', PW, undefined, from)).res.status, 303, 'other accounts from the same source still log in');
  // The source: 4 + 1 failures so far; wrong tokens make 6, 7, 8 (source-failures: free) and the 9th starts its delay.
  for (let i = 0; i < 4; i++) assert.equal((await http('GET', `/p/${'A'.repeat(43)}`, { from })).status, 404);
  assert.equal((await login('alice', PW, undefined, from)).res.status, 429, 'the source waits');
  assert.equal((await http('GET', `/p/${'B'.repeat(43)}`, { from })).status, 429);
  assert.equal((await login('alice', PW)).res.status, 303, 'other sources do not');
});

test('once: used up when the download starts (a download broken off cannot be repeated); of two concurrent requests exactly one gets it', async () => {
  const { jar } = await login('alice', PW);
  const broken = publish('big.bin', { once: true }).p;
  const raced = publish('big.bin', { once: true }).p;
  await settle();
  // Read the first bytes, then hang up.
  const got = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/f/${broken.id}`, headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') }, rejectUnauthorized: false, agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      res.once('data', (c: Buffer) => {
        req.destroy();
        resolve(c.length);
      });
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.end();
  });
  assert.ok(got > 0 && got < BIG.length);
  assert.equal((await http('GET', `/f/${broken.id}`, { jar })).status, 404, 'broken off: still used up');
  const [a, b] = await Promise.all([http('GET', `/f/${raced.id}`, { jar }), http('GET', `/f/${raced.id}`, { jar })]);
  assert.deepEqual([a.status, b.status].sort(), [200, 404]);
  const won = a.status === 200 ? a : b;
  assert.equal(sha(won.body), sha(BIG), 'the winner gets the whole file');
  assert.equal((await http('GET', `/f/${raced.id}`, { jar })).status, 404);
  const consumed = JSON.parse(readFileSync(join(cfg.stateDir, 'consumed.json'), 'utf8')) as { consumed: Record<string, string> };
  assert.ok(consumed.consumed[broken.id] !== undefined && consumed.consumed[raced.id] !== undefined, 'recorded in consumed.json');
});

/** The cipher `openssl s_client` negotiates with `port` (null: the handshake failed). Asynchronous: the servers run in this process. */
function negotiated(p: number, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'test', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      const m = /Cipher is (\S+)/.exec(out);
      resolve(code === 0 && m !== null && m[1] !== '(NONE)' ? m[1] : null);
    });
    c.stdin.end();
  });
}

test('TLS: 1.3, and 1.2 only with ECDHE and AEAD suites: CBC-SHA1 (ECDHE-ECDSA-AES128-SHA) and TLS 1.1 are refused', async () => {
  // Control: a server with Node's defaults accepts the CBC-SHA1 suite, so the refusal below is ours.
  const ctl = createTlsServer({ key: readFileSync(join(dir, 'tls.key')), cert: readFileSync(join(dir, 'tls.crt')) }, (s) => s.end());
  await new Promise<void>((r) => ctl.listen(0, '127.0.0.1', r));
  try {
    const ctlPort = (ctl.address() as { port: number }).port;
    assert.equal(await negotiated(ctlPort, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA']), 'ECDHE-ECDSA-AES128-SHA', 'control server');
  } finally {
    ctl.close();
  }
  assert.equal(await negotiated(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA']), null);
  assert.equal(await negotiated(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256']), null, 'CBC with SHA-2 too');
  assert.equal(await negotiated(port, ['-tls1_1']), null);
  assert.equal(await negotiated(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']), 'ECDHE-ECDSA-AES128-GCM-SHA256');
  assert.equal(await negotiated(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305']), 'ECDHE-ECDSA-CHACHA20-POLY1305');
  assert.match(await negotiated(port, ['-tls1_3']) ?? '', /^TLS_AES_256_GCM_SHA384$|^TLS_CHACHA20_POLY1305_SHA256$|^TLS_AES_128_GCM_SHA256$/);
});

test('public link: works without an account until it expires; the token is stored only hashed', async () => {
  // Long enough to be valid for the first requests on a loaded machine; the test then waits it out.
  const { p, token } = publish('docs/report.txt', { publicLink: true, expiresInMs: 3000 });
  assert.ok(token !== null && p.publicTokenHash !== token);
  await settle();
  const r = await http('GET', `/p/${token}/report.txt`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'the quarterly report\n');
  // Another token: the last character changed (to 'A', or to 'Q' when it was 'A': the same token must not come back).
  const other = `${token!.slice(0, -1)}${token!.endsWith('A') ? 'Q' : 'A'}`;
  assert.equal((await http('GET', `/p/${other}`)).status, 404);
  assert.equal((await http('GET', `/f/${p.id}`)).status, 303, 'the ID alone needs a session');
  await new Promise((res) => setTimeout(res, Date.parse(p.expires!) - Date.now() + 20));
  assert.equal((await http('GET', `/p/${token}/report.txt`)).status, 404, 'expired');
});

test('sessions end when the password changes or the user is removed', async () => {
  const { jar } = await login('bob', PW);
  assert.equal((await http('GET', '/', { jar })).status, 200);
  const now = new Date().toISOString();
  writeJsonAtomic(join(dir, 'users.json'), {
    version: 1,
    users: { alice: { hash: await hashPassword(PW, CHEAP), created: now, updated: now }, bob: { hash: await hashPassword('another password', CHEAP), created: now, updated: now } },
  });
  await settle();
  assert.equal((await http('GET', '/', { jar })).status, 303);
  assert.equal((await login('bob', PW)).res.status, 401);
  assert.equal((await login('bob', 'another password')).res.status, 303);
});

test('limits: over-long headers get 431, bad requests a bare 400; wrong methods 405; nothing names the server', async () => {
  const big = await http('GET', '/', { headers: { 'x-filler': 'a'.repeat(6000) } }).catch((e: Error) => e);
  assert.ok(!(big instanceof Error) && big.status === 431, String(big instanceof Error ? big.message : big.status));
  const raw = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.end('GARBAGE / NOT-HTTP\r\n\r\n'));
    let data = '';
    s.on('data', (d: Buffer) => { data += d.toString(); });
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
  assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
  responses.push(raw);
  assert.equal((await http('DELETE', `/f/${pubs[0].id}`)).status, 405);
  assert.equal((await http('PUT', '/login')).status, 405);
});

test('request rate: a source over its bucket gets 429', async () => {
  const yaml = `listen: 127.0.0.1:0
tls: { cert: tls.crt, key: tls.key }
storage: { kind: directory, root: share }
data-dir: .
state-dir: state2
limits: { requests-per-second: 1, burst: 5 }
`;
  const c2 = parseFileGatewayConfig(yaml, join(dir, 'fg2.yaml'));
  const s2 = await startService(c2, { dummyHash: await hashPassword('x-dummy-password', CHEAP), log: () => {} });
  const saved = port;
  port = s2.address.port;
  try {
    const codes = [];
    for (let i = 0; i < 8; i++) codes.push((await http('GET', '/assets/app.css')).status);
    assert.deepEqual(codes.slice(0, 5), [200, 200, 200, 200, 200]);
    assert.ok(codes.slice(5).every((c) => c === 429), codes.join(','));
  } finally {
    port = saved;
    await s2.close();
  }
});
