// init's control API: JSON over HTTP on a loopback address only. Read-only
// GET endpoints; anything else gets a specific JSON error. Requests are small
// and bounded: no body is read (except the trace endpoints' POSTs: JSON of at
// most 4 KiB, src/init/trace-http.ts; and POST /components/NAME/fault: JSON of at
// most 1 KiB, only when the config enables fault injection), slow clients are
// cut off.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Init } from './init.ts';
import { handleTrace } from './trace-http.ts';
import { FAULT_DISABLED } from './fault.ts';

const MAX_FAULT_BODY = 1024;

/** A JSON object body of at most `max` bytes; a string says what is wrong with it. */
function readJsonObject(req: IncomingMessage, max: number): Promise<Record<string, unknown> | string> {
  return new Promise((resolveP) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (v: Record<string, unknown> | string): void => {
      if (done) return;
      done = true;
      resolveP(v);
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        finish(`the body is larger than ${max} bytes`);
        req.resume();
      } else {
        chunks.push(c);
      }
    });
    req.on('error', (e) => finish(e.message));
    req.on('end', () => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return finish('the body is not JSON');
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return finish('the body must be a JSON object like {"kind":"throw"}');
      finish(v as Record<string, unknown>);
    });
  });
}

/** POST /components/NAME/fault {"kind": "throw"|"allocate"|"hang"|"forbidden-call"|"hostile", "attack": A (hostile only)}: fault injection (src/init/fault.ts). */
async function handleFault(init: Init, req: IncomingMessage, res: ServerResponse, component: string): Promise<void> {
  if (req.method !== 'POST') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on /components/${component}/fault; use POST`);
  if (init.config.debug?.faultInjection !== true) return error(res, FAULT_DISABLED.status, FAULT_DISABLED.code, FAULT_DISABLED.message);
  // application/json cannot be sent cross-origin without a CORS preflight, which this server never grants.
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') return error(res, 415, 'MG_CONTENT_TYPE', 'the body must be sent as content-type application/json');
  const body = await readJsonObject(req, MAX_FAULT_BODY);
  if (typeof body === 'string') return error(res, 400, 'MG_BAD_BODY', body);
  const extra = Object.keys(body).filter((k) => k !== 'kind' && k !== 'attack');
  if (extra.length > 0) return error(res, 400, 'MG_BAD_BODY', `unknown key ${JSON.stringify(extra[0])} in the body; expected "kind" (and "attack" for kind "hostile")`);
  const r = await init.fault(component, body.kind, body.attack);
  if (r.status !== 202) return error(res, r.status, r.code, r.message);
  reply(res, 202, { ok: true, component, kind: body.kind, ...(body.attack !== undefined ? { attack: body.attack } : {}), unit: r.unit, pid: r.pid, message: r.message });
}

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
        services: init.services(),
      });
    },
    '/components': async (_req, res) => {
      reply(res, 200, { components: await init.reports() });
    },
    '/counters': async (_req, res) => {
      const reports = await init.reports();
      reply(res, 200, Object.fromEntries(reports.map((r) => [r.name, r.counters])));
    },
    // EVE records of the monitor(s), as init collected them: ?since=N returns those after N.
    '/alerts': async (req, res) => {
      const eve = init.eve;
      if (eve === undefined) return error(res, 404, 'MG_NO_MONITOR', 'no component in this gateway produces EVE records (add a monitor)');
      const u = new URL(req.url ?? '/', 'http://control');
      const since = Number(u.searchParams.get('since') ?? '0');
      if (!Number.isInteger(since) || since < 0) return error(res, 400, 'MG_BAD_QUERY', 'since must be a non-negative integer');
      if (u.searchParams.get('fresh') === '1') await eve.collect();
      const r = eve.since(since);
      reply(res, 200, { seq: r.seq, missed: r.missed, events: r.lines.map((l) => JSON.parse(l) as unknown), sources: eve.status() });
    },
    '/audit': (_req, res) => {
      const units = init.audit();
      const services = init.auditServices();
      reply(res, 200, { ok: [...units, ...services].every((u) => u.violations.length === 0), units, services });
    },
  };
  const server = createServer({ requestTimeout: 5000, headersTimeout: 5000, maxHeaderSize: 8192 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://control');
    // /trace/*: tracing (GET reads, POST with a bounded JSON body changes), see src/init/trace-http.ts.
    if (url.pathname === '/trace' || url.pathname.startsWith('/trace/')) return handleTrace(init, req, res, url);
    if (url.pathname === '/reload') {
      // Re-read the config file and apply it (init.reload: fail closed). POST with the
      // header "x-microgate: reload", which a web page cannot send here without a CORS
      // preflight this server never grants.
      if (req.method !== 'POST') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on /reload; use POST`);
      if (req.headers['x-microgate'] !== 'reload') return error(res, 403, 'MG_RELOAD_HEADER', 'POST /reload needs the header "x-microgate: reload"');
      init.reload().then(
        (r) => reply(res, r.ok ? 200 : 409, r),
        (e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)),
      );
      return;
    }
    const fault = /^\/components\/([^/]+)\/fault$/.exec(url.pathname);
    if (fault !== null) {
      handleFault(init, req, res, fault[1]).catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
      return;
    }
    const route = routes[url.pathname];
    if (route === undefined) return error(res, 404, 'MG_NOT_FOUND', `no such endpoint ${url.pathname}; try /status, /components, /counters, /audit`);
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
