// The file gateway's HTTP front fuzzed live: fast-check builds requests (any
// method, hostile paths, Range / conditional / cookie / length headers, form
// bodies, with and without a real session) and raw byte strings, and sends
// each over its own TLS connection to the real service on loopback (local
// folder storage). Properties: every complete request gets an HTTP answer that
// is not a server error (a 5xx here is an unexpected exception: the storage is
// a local folder), no answer names the server or the share's folder, nothing
// is logged as an error, and the service still answers /healthz afterwards.
// FUZZ_SEED=N FUZZ_SCALE=K as for the other fuzz files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { hashPassword, type KdfParams } from '../../src/services/file-gateway/kdf.ts';
import { writeJsonAtomic } from '../../src/services/file-gateway/json-file.ts';
import { createPublication } from '../../src/services/file-gateway/publications.ts';
import { startService, type RunningService } from '../../src/services/file-gateway/service.ts';
import { fileGatewayDir } from './fixtures/file-gateway-dir.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x6d67) | 0;
const runs = (n: number): fc.Parameters<unknown> => ({ numRuns: Math.round(n * Number(process.env.FUZZ_SCALE ?? 1)), seed: SEED });

const CHEAP: KdfParams = { m: 8192, t: 1, p: 1 };
const PW = 'correct horse battery';

let dir: string;
let svc: RunningService;
let port: number;
let id = '';
let token = '';
let cookie = '';
let csrf = '';
const logged: string[] = [];

interface Answer { status: number | undefined; head: string; text: string; timedOut: boolean }

/**
 * Send `bytes` on a new TLS connection and read until the server closes (or
 * `ms`). `halfClose`: end our side right after (for raw bytes that may never
 * make a complete request; a complete one says `Connection: close` instead,
 * since Node's server drops a connection whose client ended before the answer).
 */
function exchange(bytes: Uint8Array | string, ms = 4000, halfClose = false): Promise<Answer> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (timedOut: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      const end = text.indexOf('\r\n\r\n');
      resolve({ status: m === null ? undefined : Number(m[1]), head: end < 0 ? text : text.slice(0, end), text, timedOut });
    };
    const timer = setTimeout(() => finish(true), ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => finish(false));
    s.on('error', () => finish(false));
    s.once('secureConnect', () => (halfClose ? s.end(bytes) : s.write(bytes)));
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-fgw-fuzz-'));
  mkdirSync(join(dir, 'share', 'docs'), { recursive: true });
  writeFileSync(join(dir, 'share', 'docs', 'report.txt'), 'the quarterly report\n');
  writeFileSync(join(dir, 'share', 'big.bin'), Buffer.alloc(200_000, 7));
  // Limits high enough that the fuzzer mostly reaches the handlers (429 and lockouts are still allowed answers).
  const cfg = fileGatewayDir(dir, { login: { freeFailures: 1000, sourceFailures: 100000 }, limits: { rps: 100000, notFoundMs: 1 } });
  const now = new Date().toISOString();
  writeJsonAtomic(join(dir, 'users.json'), { version: 1, users: { alice: { hash: await hashPassword(PW, CHEAP), created: now, updated: now } } });
  const a = createPublication({ path: 'docs/report.txt', publicLink: true });
  const b = createPublication({ path: 'big.bin', users: ['alice'] });
  writeJsonAtomic(join(dir, 'publications.json'), { version: 1, publications: [a.publication, b.publication] });
  id = b.publication.id;
  token = a.token ?? '';
  svc = await startService(cfg, { dummyHash: await hashPassword('dummy-password', CHEAP), log: (line: string) => logged.push(line) });
  port = svc.address.port;
  // A real session for some of the requests: the login page's CSRF token, then the form.
  const page = await exchange('GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(page.status, 200);
  csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  const pre = /set-cookie: ([^;\r\n]+)/i.exec(page.head)?.[1] ?? '';
  const body = new URLSearchParams({ csrf, user: 'alice', password: PW }).toString();
  const res = await exchange(`POST /login HTTP/1.1\r\nHost: x\r\nCookie: ${pre}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  assert.equal(res.status, 303, `logged in: ${res.head}`);
  cookie = /set-cookie: ([^;\r\n]+)/i.exec(res.head)?.[1] ?? '';
  assert.ok(cookie !== '', 'a session cookie');
});

after(async () => {
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

const segment = fc.oneof(
  fc.constantFrom('..', '.', '%2e%2e', '%2E%2e', '%2f', '%5c', '%00', '%ff', '%', '%%', '\\', 'docs', 'report.txt', 'big.bin', '~', ';', '?', '#', 'é', '%c0%ae'),
  fc.string({ maxLength: 12 }).map((x) => encodeURIComponent(x)),
  fc.constant('a'.repeat(300)),
);

const path = (): fc.Arbitrary<string> => fc.oneof(
  fc.constantFrom('/', '/login', '/logout', '/healthz', '/assets/app.css', '/f/', '/p/', '*', '', '//', '/f//', 'http://x/'),
  fc.constant(null).map(() => `/f/${id}`),
  fc.constant(null).map(() => `/f/${id}/big.bin`),
  fc.constant(null).map(() => `/p/${token}/report.txt`),
  fc.constant(null).map(() => `/p/${token}`),
  fc.tuple(fc.constantFrom('/f/', '/p/', '/'), fc.array(segment, { maxLength: 6 }), fc.option(fc.string({ maxLength: 20 }).map(encodeURIComponent)))
    .map(([p, segs, q]) => `${p}${segs.join('/')}${q === null ? '' : `?${q}`}`),
);

const headerValue = fc.oneof(
  fc.constantFrom('', 'bytes=0-0', 'bytes=-1', 'bytes=0-', 'bytes=5-2', 'bytes=0-1,2-3,4-5', 'bytes=99999999999999999999-', 'bytes=--', 'items=0-1',
    '"x"', '*', 'W/"x"', 'gzip', 'chunked', '0', '-1', '18446744073709551616', 'application/json', 'multipart/form-data; boundary=x'),
  fc.string({ maxLength: 40 }).map((x) => x.replace(/[\r\n\0]/g, '')),
);

const header = fc.tuple(
  fc.constantFrom('Range', 'If-None-Match', 'If-Range', 'If-Modified-Since', 'Cookie', 'Content-Type', 'Origin', 'Referer', 'Accept', 'Accept-Encoding',
    'X-Forwarded-For', 'Sec-Fetch-Site', 'Authorization', 'Expect', 'Upgrade'),
  headerValue,
);

const request = fc.record({
  method: fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND'), fc.stringMatching(/^[A-Z]{1,10}$/)),
  path: path(),
  headers: fc.array(header, { maxLength: 6 }),
  session: fc.boolean(),
  withCsrf: fc.boolean(),
  body: fc.option(fc.oneof(
    fc.record({ csrf: fc.string({ maxLength: 10 }), user: fc.string({ maxLength: 10 }), password: fc.string({ maxLength: 10 }), id: fc.string({ maxLength: 10 }) })
      .map((r) => new URLSearchParams(r).toString()),
    fc.string({ maxLength: 200 }),
  )),
});

interface Req { method: string; path: string; headers: [string, string][]; session: boolean; withCsrf: boolean; body: string | null }

function build(r: Req): string {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, 'Host: 198.19.0.1'];
  const cookies: string[] = [];
  for (const [k, v] of r.headers) {
    if (k === 'Cookie') cookies.push(v);
    else lines.push(`${k}: ${v}`);
  }
  if (r.session) cookies.push(cookie);
  if (cookies.length > 0) lines.push(`Cookie: ${cookies.join('; ')}`);
  let body = r.body ?? '';
  if (r.withCsrf && r.body !== null) body = `csrf=${encodeURIComponent(csrf)}&${body}`;
  if (r.body !== null) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

function checkHead(a: Answer, what: string): void {
  assert.doesNotMatch(a.head, /^server:/im, `${what}: no Server header`);
  assert.ok(!a.head.includes(dir), `${what}: the share's folder is not named`);
}

test('fuzz: structured requests to the live service get an answer, never a server error', async () => {
  const seen = new Map<number, number>();
  await fc.assert(fc.asyncProperty(request, async (r) => {
    const raw = build(r);
    const a = await exchange(raw);
    assert.ok(!a.timedOut, `answered in time: ${JSON.stringify(raw.slice(0, 300))}`);
    assert.ok(a.status !== undefined, `an HTTP answer to ${JSON.stringify(raw.slice(0, 300))}: ${JSON.stringify(a.head.slice(0, 200))}`);
    assert.ok(a.status < 500, `no server error: ${a.status} for ${JSON.stringify(raw.slice(0, 300))}`);
    checkHead(a, raw.split('\r\n')[0]);
    seen.set(a.status, (seen.get(a.status) ?? 0) + 1);
  }), runs(300));
  process.stdout.write(`# answers by status: ${JSON.stringify([...seen].sort((a, b) => a[0] - b[0]))}\n`);
  // The generator reached the handlers, not only the parser's refusals.
  const handled = [...seen].filter(([s]) => s !== 400 && s !== 431).reduce((n, [, c]) => n + c, 0);
  const total = [...seen.values()].reduce((a, b) => a + b, 0);
  assert.ok(handled > total / 5, `answers beyond 400/431: ${JSON.stringify([...seen])}`);
  for (const s of [200, 404]) assert.ok((seen.get(s) ?? 0) > 0, `some ${s}: ${JSON.stringify([...seen])}`);
  assert.deepEqual(logged.filter((l) => !/rate-limited/.test(l)), [], 'nothing logged as an error');
});

test('fuzz: raw bytes and broken request lines: a 4xx or a closed connection, never a crash', async () => {
  const junk = fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/9.9', '', 'http/1.1'))
      .map(([m, p, v]) => Buffer.from(`${m} ${p} ${v}\r\nHost: x\r\n\r\n`, 'latin1')),
    fc.constant(null).map(() => Buffer.from(`GET / HTTP/1.1\r\n${'X-A: b\r\n'.repeat(1000)}\r\n`)),
    fc.constant(null).map(() => Buffer.from('POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n')),
    fc.constant(null).map(() => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab')),
  );
  await fc.assert(fc.asyncProperty(junk, async (bytes) => {
    const a = await exchange(bytes, 3000, true);
    if (a.status !== undefined) {
      assert.ok(a.status < 500, `no server error: ${a.status} for ${JSON.stringify(Buffer.from(bytes).toString('latin1').slice(0, 200))}`);
      checkHead(a, 'raw');
    }
  }), runs(150));
  const h = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(h.status, 200, 'the service still answers');
  assert.deepEqual(logged.filter((l) => !/rate-limited/.test(l)), [], 'nothing logged as an error');
});
