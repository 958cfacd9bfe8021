// `microgate dashboard`: the live dashboard in a browser. init serves it on
// its control API (GET /dashboard, /dashboard/events: src/init/dashboard.ts),
// which a browser cannot reach (a Unix socket answered to root and the admin
// group only). This relay, run by an admin, listens on a loopback port and
// passes GET requests for /dashboard paths, and nothing else, to the control
// API. Its own access rule, since any local user can connect to a loopback
// port: a random key printed to the admin's terminal, exchanged once for an
// HttpOnly SameSite=Strict cookie (constant-time compared on every request);
// the Host header must name the listener (no DNS rebinding); GET and HEAD only.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { CONTROL_HELP, resolveControl } from './control-url.ts';
import { ControlClient, type ControlTarget } from '../sys/control-client.ts';

export const DASHBOARD_HELP = `Usage: microgate dashboard [--lab NAME | --control SOCKET|URL] [--port N] [--interval MS]

Serve the gateway's live dashboard to a browser on this machine: throughput
per domain over time, drops by reason, component health and restarts,
connections and NAT ports, tunnel peers, recent alerts, services; updated
live (server-sent events). init serves the page on its control API; this
command relays it on http://127.0.0.1:PORT and prints a URL with a one-time
key: open it (the key becomes a cookie of that browser). Requests without the
cookie, with another Host, or for anything but the dashboard are refused.
Runs until Ctrl-C.

Options:
${CONTROL_HELP}
  --port N           the loopback port (default 0: any free one)
  --interval MS      how often the page updates (default 1000, at least 200)
  -h, --help         this help`;

const COOKIE = 'mg_dashboard';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time equality of a presented secret and ours. */
function same(given: string | undefined, secret: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(secret));
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
  res.end(`${text}\n`);
}

export interface DashboardRelay {
  port: number;
  /** The URL to open: carries the one-time key. */
  url: string;
  close(): Promise<void>;
}

/** Start the relay towards the control API `target` on 127.0.0.1:`port`. */
export async function startDashboardRelay(target: ControlTarget, opts: { port?: number; interval?: number } = {}): Promise<DashboardRelay> {
  const secret = randomBytes(32).toString('base64url');
  let port = opts.port ?? 0;
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5000, maxHeaderSize: 8192 }, (req, res) => {
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return plain(res, 421, `this relay answers http://127.0.0.1:${port} only`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'GET only', { allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (url.pathname === '/' && url.searchParams.has('key')) {
      if (!same(url.searchParams.get('key') ?? undefined, secret)) return plain(res, 403, 'wrong key: open the URL microgate dashboard printed');
      res.writeHead(303, {
        'set-cookie': `${COOKIE}=${secret}; HttpOnly; SameSite=Strict; Path=/`,
        location: `/dashboard${opts.interval === undefined ? '' : `?interval=${opts.interval}`}`,
        'cache-control': 'no-store',
      });
      return res.end();
    }
    if (!same(cookie(req, COOKIE), secret)) return plain(res, 401, 'no key: open the URL microgate dashboard printed');
    if (url.pathname !== '/dashboard' && !url.pathname.startsWith('/dashboard/')) return plain(res, 404, 'only the dashboard is relayed');
    const headers: Record<string, string> = { host: 'localhost' };
    if ('url' in target && target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
    const path = `${url.pathname}${url.search}`;
    const up = 'socket' in target
      ? httpRequest({ socketPath: target.socket, path, method: req.method, headers })
      : httpRequest(new URL(path, target.url), { method: req.method, headers: { ...headers, host: new URL(target.url).host } });
    up.on('response', (r) => {
      const keep = ['content-type', 'content-length', 'content-security-policy', 'x-content-type-options', 'x-frame-options', 'referrer-policy', 'cache-control', 'retry-after'];
      const out: Record<string, string> = {};
      for (const k of keep) if (typeof r.headers[k] === 'string') out[k] = r.headers[k];
      res.writeHead(r.statusCode ?? 502, out);
      r.pipe(res);
      res.on('close', () => r.destroy());
    });
    up.on('error', (e) => {
      if (!res.headersSent) plain(res, 502, `the gateway's control API did not answer: ${e.message}`);
      else res.destroy();
    });
    res.on('close', () => up.destroy());
    up.end();
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolveP, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveP());
  });
  const addr = server.address();
  port = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    port,
    url: `http://127.0.0.1:${port}/?key=${secret}`,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

export async function dashboardCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { lab: { type: 'string' }, control: { type: 'string' }, port: { type: 'string' }, interval: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(`${DASHBOARD_HELP}\n`);
    return 0;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`microgate dashboard: --port must be a port number (0-65535), not ${JSON.stringify(values.port)}\n`);
    return 2;
  }
  const interval = values.interval === undefined ? undefined : Number(values.interval);
  if (interval !== undefined && (!Number.isInteger(interval) || interval < 200)) {
    process.stderr.write(`microgate dashboard: --interval must be a whole number of milliseconds, at least 200\n`);
    return 2;
  }
  const target = await resolveControl(values);
  // The gateway must answer first: a relay to nothing would print a URL that shows nothing (one clear line instead).
  await new ControlClient(target, 5000).get('/status');
  const relay = await startDashboardRelay(target, { port, interval });
  process.stdout.write(`dashboard: ${relay.url}\n  (this machine only; the key in the URL is the access: do not share it; Ctrl-C stops)\n`);
  await new Promise<void>((resolveP) => {
    process.once('SIGINT', resolveP);
    process.once('SIGTERM', resolveP);
  });
  await relay.close();
  return 0;
}
