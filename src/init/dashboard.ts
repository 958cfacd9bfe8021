// The live dashboard, init's side: GET /dashboard (the page), its script and
// uPlot (served from node_modules, no CDN), and GET /dashboard/events, a
// server-sent event stream of one JSON snapshot a tick. These are control API
// endpoints like the others (src/init/control.ts): the same peer check on the
// Unix socket, the same token on the TCP listener. A browser reaches them
// through `microgate dashboard` (src/cli/dashboard.ts), a relay an admin runs.
//
// One ticker serves every open stream (at most MAX_STREAMS): a tick reads the
// same checked snapshot as GET /metrics (metrics-read.ts, so a compromised
// component's report is bounded and shape-checked here too) plus the newest
// alerts init collected, and writes it to each stream. It runs only while a
// stream is open. The page writes every value with textContent, never as HTML.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readMetrics } from './metrics-read.ts';
import type { MetricsInput, Samples } from './metrics-read.ts';

/** Open event streams at most (a 503 beyond). */
export const MAX_STREAMS = 8;
/** Tick interval bounds, ms (`?interval=` on the event stream). */
export const MIN_INTERVAL_MS = 200;
export const DEFAULT_INTERVAL_MS = 1000;
/** Newest alerts sent each tick. */
const RECENT_ALERTS = 20;

export interface DashboardSource {
  gather(): Promise<MetricsInput>;
  /** The newest EVE records init kept (at most `n`); undefined without a monitor. */
  alerts(n: number): string[] | undefined;
  uptimeS(): number;
}

export interface AlertRow { time: string; sid: string; signature: string; src: string; dst: string; proto: string }

/** What the page gets each tick. */
export interface DashboardTick {
  t: number;
  uptimeS: number;
  metrics: Record<string, { labels: Record<string, string>; value: number }[]>;
  alerts: AlertRow[];
}

function text(v: unknown, max: number): string {
  return typeof v === 'string' ? v.slice(0, max) : typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
}

/** The newest EVE alert records as table rows (fields cut short; the page shows them as text). */
export function alertRows(lines: readonly string[]): AlertRow[] {
  const out: AlertRow[] = [];
  for (let i = lines.length - 1; i >= 0 && out.length < RECENT_ALERTS; i--) {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(lines[i]) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (rec === null || typeof rec !== 'object' || rec.event_type !== 'alert') continue;
    const a = rec.alert !== null && typeof rec.alert === 'object' ? rec.alert as Record<string, unknown> : {};
    out.push({
      time: text(rec.timestamp, 40), sid: text(a.signature_id, 20), signature: text(a.signature, 200),
      src: `${text(rec.src_ip, 45)}${rec.src_port !== undefined ? `:${text(rec.src_port, 5)}` : ''}`,
      dst: `${text(rec.dest_ip, 45)}${rec.dest_port !== undefined ? `:${text(rec.dest_port, 5)}` : ''}`,
      proto: text(rec.proto, 10),
    });
  }
  return out;
}

function assets(): Record<string, { type: string; body: Buffer }> {
  const req = createRequire(import.meta.url);
  const here = (f: string): Buffer => readFileSync(new URL(`./dashboard/${f}`, import.meta.url));
  return {
    '/dashboard': { type: 'text/html; charset=utf-8', body: here('index.html') },
    '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: here('app.js') },
    '/dashboard/app.css': { type: 'text/css; charset=utf-8', body: here('app.css') },
    '/dashboard/uplot.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(req.resolve('uplot/dist/uPlot.iife.min.js')) },
    '/dashboard/uplot.css': { type: 'text/css; charset=utf-8', body: readFileSync(req.resolve('uplot/dist/uPlot.min.css')) },
  };
}

/** Headers of every dashboard answer: nothing from elsewhere, no framing, no sniffing. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface Dashboard {
  /** Answer a /dashboard request (GET or HEAD only; the caller checked the peer). True when the path was the dashboard's. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
  /** Open streams now. */
  readonly streams: number;
  close(): void;
}

export function createDashboard(src: DashboardSource): Dashboard {
  let files: Record<string, { type: string; body: Buffer }> | undefined;
  const streams = new Map<ServerResponse, { intervalMs: number; next: number }>();
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  const rejected = new Map<string, number>(); // the dashboard's own: /metrics counts its refusals

  const tick = async (): Promise<void> => {
    if (busy) return;
    const now = Date.now();
    const due = [...streams].filter(([, s]) => s.next <= now);
    if (due.length === 0) return;
    busy = true;
    try {
      const samples: Samples = readMetrics(await src.gather(), rejected);
      const body: DashboardTick = { t: now, uptimeS: src.uptimeS(), metrics: Object.fromEntries(samples), alerts: alertRows(src.alerts(500) ?? []) };
      const data = `data: ${JSON.stringify(body)}\n\n`;
      for (const [res, s] of due) {
        if (!streams.has(res)) continue;
        s.next = now + s.intervalMs;
        res.write(data);
      }
    } catch (e) {
      for (const [res] of due) res.write(`event: problem\ndata: ${JSON.stringify((e as Error).message)}\n\n`);
    } finally {
      busy = false;
    }
  };

  const stopIfIdle = (): void => {
    if (streams.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    get streams() {
      return streams.size;
    },
    handle(req, res, url) {
      if (url.pathname !== '/dashboard' && !url.pathname.startsWith('/dashboard/')) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD', ...SECURITY_HEADERS });
        res.end(`${req.method} is not allowed on ${url.pathname}; use GET\n`);
        return true;
      }
      if (url.pathname === '/dashboard/events') {
        if (streams.size >= MAX_STREAMS) {
          res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10', ...SECURITY_HEADERS });
          res.end(`at most ${MAX_STREAMS} dashboards at once\n`);
          return true;
        }
        const asked = Number(url.searchParams.get('interval') ?? DEFAULT_INTERVAL_MS);
        const intervalMs = Number.isInteger(asked) ? Math.min(60_000, Math.max(MIN_INTERVAL_MS, asked)) : DEFAULT_INTERVAL_MS;
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...SECURITY_HEADERS });
        res.write(`retry: 2000\n\n`);
        streams.set(res, { intervalMs, next: 0 });
        res.on('close', () => {
          streams.delete(res);
          stopIfIdle();
        });
        timer ??= setInterval(() => void tick(), MIN_INTERVAL_MS / 2);
        void tick();
        return true;
      }
      files ??= assets();
      const f = files[url.pathname];
      if (f === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        res.end(`no such page ${url.pathname}\n`);
        return true;
      }
      res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length, ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : f.body);
      return true;
    },
    close() {
      for (const res of streams.keys()) res.end();
      streams.clear();
      stopIfIdle();
    },
  };
}
