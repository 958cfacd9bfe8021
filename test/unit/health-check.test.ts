// init's health check of a service (src/init/health-check.ts) against local
// servers: 200 is healthy; any other status, garbage, a refused connection,
// a server that never answers and a TLS mismatch are problems named as such,
// each within the timeout, never a rejection.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHealth } from '../../src/init/health-check.ts';

let dir: string;
let https: HttpServer;
let plain: HttpServer;
let silent: TcpServer;
let garbage: TcpServer;
const held: Socket[] = [];
const port = (s: HttpServer | TcpServer): number => (s.address() as { port: number }).port;
const listen = (s: HttpServer | TcpServer): Promise<void> => new Promise((r) => s.listen(0, '127.0.0.1', () => r()));
const target = (p: number, path: string, tls = true) => ({ netns: undefined, host: '127.0.0.1', port: p, path, tls });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-health-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=t',
    '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
  const handler = (req: { url?: string }, res: { writeHead(s: number): void; end(b: string): void }): void => {
    res.writeHead(req.url === '/healthz' ? 200 : 503);
    res.end('x');
  };
  https = createHttpsServer({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) }, handler);
  plain = createHttpServer(handler);
  silent = createTcpServer((s) => { held.push(s); }); // accepts, never answers
  garbage = createTcpServer((s) => { s.end('SSH-2.0-OpenSSH\r\n'); });
  for (const s of [https, plain, silent, garbage]) await listen(s);
});

after(() => {
  for (const s of held) s.destroy();
  for (const s of [https, plain, silent, garbage]) s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('200 over HTTPS (self-signed: a liveness check does not verify the certificate) and over plain HTTP', async () => {
  assert.equal(await checkHealth(target(port(https), '/healthz'), 2000), undefined);
  assert.equal(await checkHealth(target(port(plain), '/healthz', false), 2000), undefined);
});

test('anything else is a problem, within the timeout', async () => {
  assert.equal(await checkHealth(target(port(https), '/other'), 2000), 'status 503');
  assert.match((await checkHealth(target(port(plain), '/healthz'), 2000))!, /^TLS: /, 'TLS to a plain HTTP server');
  assert.equal(await checkHealth(target(port(garbage), '/healthz', false), 2000), 'not an HTTP answer');
  assert.match((await checkHealth(target(1, '/healthz'), 2000))!, /ECONNREFUSED/);
  const t0 = Date.now();
  assert.equal(await checkHealth(target(port(silent), '/healthz'), 300), 'no answer within 300 ms');
  assert.ok(Date.now() - t0 < 1500);
});

test('a namespace that does not exist is named', async () => {
  assert.match((await checkHealth({ ...target(port(https), '/healthz'), netns: 'mg-no-such-netns' }, 500))!, /cannot open a socket in network namespace mg-no-such-netns/);
});
