// init's control API: JSON over HTTP on a loopback address only. Read-only
// GET endpoints; anything else gets a specific JSON error. Requests are small
// and bounded: no body is read, slow clients are cut off.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Init } from './init.ts';

export interface ControlServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  reply(res, status, { error: { code, message } });
}

export async function startControl(init: Init, host: string, port: number): Promise<ControlServer> {
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    '/status': (_req, res) => {
      reply(res, 200, {
        ready: init.ready,
        pid: process.pid,
        uptimeS: Math.round((Date.now() - init.startedAt) / 1000),
        config: init.config.file,
        components: init.components(),
      });
    },
    '/components': async (_req, res) => {
      reply(res, 200, { components: await init.reports() });
    },
    '/counters': async (_req, res) => {
      const reports = await init.reports();
      reply(res, 200, Object.fromEntries(reports.map((r) => [r.name, r.counters])));
    },
  };
  const server = createServer({ requestTimeout: 5000, headersTimeout: 5000, maxHeaderSize: 8192 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://control');
    const route = routes[url.pathname];
    if (route === undefined) return error(res, 404, 'MG_NOT_FOUND', `no such endpoint ${url.pathname}; try /status, /components, /counters`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on ${url.pathname}; use GET`);
    Promise.resolve(route(req, res)).catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolveP, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveP());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    server,
    port: bound,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
