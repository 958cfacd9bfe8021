// The dashboard's two halves without a lab (issue 16): init's endpoints
// (createDashboard on a real HTTP server over a Unix socket: page, assets,
// CSP, the event stream and its cap) and `microgate dashboard`'s relay, each
// attacked: no key, a wrong key or cookie, a rebound Host, paths outside the
// dashboard, changing methods; alert rows from hostile EVE records.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alertRows, createDashboard, MAX_STREAMS, type DashboardTick } from '../../src/init/dashboard.ts';
import { startDashboardRelay } from '../../src/cli/dashboard.ts';
import type { MetricsInput } from '../../src/init/metrics-read.ts';

const dir = mkdtempSync(join(tmpdir(), 'mg-dash-'));
const sock = join(dir, 'control.sock');
const upstreamPaths: string[] = [];
let gathers = 0;

const input = (): MetricsInput => ({
  components: [{ name: 'router', state: 'running', restarts: 2, hangs: 0, oomKills: 0, channel: { violations: 0 } }],
  services: [], reports: [], alerts: [], serviceEvents: [], denied: {}, nowMs: Date.now(),
});
const dash = createDashboard({
  gather: () => { gathers++; return Promise.resolve(input()); },
  alerts: () => [JSON.stringify({ event_type: 'alert', timestamp: 't', alert: { signature_id: 7, signature: '<img src=x onerror=alert(1)>' }, src_ip: '1.2.3.4', src_port: 5, dest_ip: '5.6.7.8', dest_port: 80, proto: 'TCP' })],
  uptimeS: () => 42,
});
// Stands in for init's control server: every request reaches the dashboard or 404.
const server: Server = createServer((req, res) => {
  upstreamPaths.push(req.url ?? '');
  const url = new URL(req.url ?? '/', 'http://control');
  if (!dash.handle(req, res, url)) {
    res.writeHead(404);
    res.end('not the dashboard');
  }
});
await new Promise<void>((r) => server.listen(sock, () => r()));

after(async () => {
  dash.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** One request; for an event stream, the body up to the first data message. */
function get(opts: { socketPath?: string; port?: number; path: string; method?: string; headers?: Record<string, string> }): Promise<Answer> {
  return new Promise((resolveP, reject) => {
    const req = request({ socketPath: opts.socketPath, host: '127.0.0.1', port: opts.port, path: opts.path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        if (String(res.headers['content-type']).startsWith('text/event-stream') && /\ndata: .*\n\n/.test(body)) {
          res.destroy();
          resolveP({ status: res.statusCode ?? 0, headers: res.headers, body });
        }
      });
      res.on('end', () => resolveP({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('init side: the page, its assets (uPlot from node_modules) and a strict CSP; POST refused', async () => {
  const page = await get({ socketPath: sock, path: '/dashboard' });
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>microgate dashboard<\/title>/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal(page.headers['x-frame-options'], 'DENY');
  assert.ok(!/<script>[^<]/.test(page.body), 'no inline script');
  const uplot = await get({ socketPath: sock, path: '/dashboard/uplot.js' });
  assert.equal(uplot.status, 200);
  assert.match(uplot.body, /uPlot/);
  for (const f of ['/dashboard/app.js', '/dashboard/app.css', '/dashboard/uplot.css']) assert.equal((await get({ socketPath: sock, path: f })).status, 200, f);
  assert.equal((await get({ socketPath: sock, path: '/dashboard/../../etc/passwd' })).status, 404);
  assert.equal((await get({ socketPath: sock, path: '/dashboard/nothing' })).status, 404);
  assert.equal((await get({ socketPath: sock, path: '/dashboard', method: 'POST' })).status, 405);
});

test('init side: the event stream sends checked snapshots; alert text stays text; at most MAX_STREAMS at once', async () => {
  const a = await get({ socketPath: sock, path: '/dashboard/events?interval=200' });
  assert.equal(a.status, 200);
  const tick = JSON.parse(/\ndata: (.*)\n\n/.exec(a.body)![1]) as DashboardTick;
  assert.equal(tick.uptimeS, 42);
  assert.deepEqual(tick.metrics.microgate_component_restarts_total, [{ labels: { component: 'router' }, value: 2 }]);
  assert.deepEqual(tick.alerts, [{ time: 't', sid: '7', signature: '<img src=x onerror=alert(1)>', src: '1.2.3.4:5', dst: '5.6.7.8:80', proto: 'TCP' }]);
  // Hold MAX_STREAMS streams open: the next is refused, and one ticker serves them all.
  const held: ReturnType<typeof request>[] = [];
  for (let i = 0; i < MAX_STREAMS; i++) {
    await new Promise<void>((r) => {
      const req = request({ socketPath: sock, path: '/dashboard/events' }, () => r());
      held.push(req);
      req.end();
    });
  }
  assert.equal(dash.streams, MAX_STREAMS);
  const refused = await get({ socketPath: sock, path: '/dashboard/events' });
  assert.equal(refused.status, 503);
  for (const h of held) h.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(dash.streams, 0);
  const n = gathers;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(gathers, n, 'no ticking without a stream');
});

test('alert rows: newest first, at most 20, fields cut short, records of other shapes skipped', () => {
  const lines = [
    'not json', '[1]', 'null', JSON.stringify({ event_type: 'anomaly' }),
    ...Array.from({ length: 30 }, (_, i) => JSON.stringify({ event_type: 'alert', alert: { signature_id: i, signature: 'x'.repeat(1000) }, src_ip: { evil: 1 }, dest_ip: 'y'.repeat(100) })),
  ];
  const rows = alertRows(lines);
  assert.equal(rows.length, 20);
  assert.equal(rows[0].sid, '29');
  assert.equal(rows[0].signature.length, 200);
  assert.equal(rows[0].src, '');
  assert.equal(rows[0].dst.length, 45);
});

test('relay: only a browser with its key, only with its Host, only the dashboard, only GET', async () => {
  const relay = await startDashboardRelay({ socket: sock }, { interval: 500 });
  try {
    const port = relay.port;
    const host = { host: `127.0.0.1:${port}` };
    upstreamPaths.length = 0;
    assert.equal((await get({ port, path: '/dashboard', headers: host })).status, 401, 'no cookie');
    assert.equal((await get({ port, path: '/?key=wrong', headers: host })).status, 403, 'wrong key');
    assert.equal((await get({ port, path: '/dashboard', headers: { ...host, cookie: 'mg_dashboard=guess' } })).status, 401, 'wrong cookie');
    assert.equal(upstreamPaths.length, 0, 'nothing reached the control API');
    const key = new URL(relay.url).searchParams.get('key')!;
    const login = await get({ port, path: `/?key=${key}`, headers: host });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/dashboard?interval=500');
    const set = String(login.headers['set-cookie']);
    assert.match(set, /^mg_dashboard=[^;]+; HttpOnly; SameSite=Strict; Path=\/$/);
    const cookie = set.split(';')[0];
    const ok = await get({ port, path: '/dashboard', headers: { ...host, cookie } });
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['content-security-policy']), /default-src 'none'/, 'the CSP passes through');
    assert.equal((await get({ port, path: '/dashboard', headers: { host: `localhost:${port}`, cookie } })).status, 200);
    assert.equal((await get({ port, path: '/dashboard', headers: { host: `rebind.example:${port}`, cookie } })).status, 421, 'DNS rebinding');
    assert.equal((await get({ port, path: '/dashboard', headers: { host: '127.0.0.1:1', cookie } })).status, 421);
    for (const p of ['/metrics', '/status', '/trace/pcapng', '/reload', '/dashboardx', '/']) {
      assert.equal((await get({ port, path: p, headers: { ...host, cookie } })).status, 404, p);
    }
    assert.equal((await get({ port, path: '/dashboard', method: 'POST', headers: { ...host, cookie } })).status, 405);
    assert.ok(upstreamPaths.every((p) => p.startsWith('/dashboard')), JSON.stringify(upstreamPaths));
    const ev = await get({ port, path: '/dashboard/events?interval=200', headers: { ...host, cookie } });
    assert.equal(ev.status, 200);
    assert.match(ev.body, /\ndata: \{"t":/);
  } finally {
    await relay.close();
  }
});
