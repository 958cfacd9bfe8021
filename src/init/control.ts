// init's control API: JSON over HTTP on a Unix socket in a root-only folder
// (control.socket), answered only to root and members of the admin group
// (SO_PEERCRED), and, only when configured, on a loopback TCP port with a
// bearer token, Host and Origin checks (src/init/control-auth.ts). Every
// request passes the same checks, trace captures and exports included; a
// refusal is counted (GET /status, control.denied) and logged. GET reads;
// every changing request carries a JSON object body sent as
// application/json (415 otherwise): the trace endpoints' POSTs (at most 4 KiB,
// src/init/trace-http.ts), POST /reload ({}), POST /components/NAME/fault (at
// most 1 KiB, only when the config enables fault injection). GET /metrics is
// the Prometheus text exposition (src/init/metrics.ts, docs/METRICS.md);
// GET /dashboard the live dashboard and its event stream (src/init/dashboard.ts).
// Slow clients are cut off.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { peerCred } from '../sys/libc.ts';
import type { ControlSettings } from './config.ts';
import { checkBearer, checkContentType, checkHost, checkOrigin, checkPeer, prepareSocketDir, procGroups, readTokenFile, resolveGroup } from './control-auth.ts';
import type { Refusal } from './control-auth.ts';
import type { MetricsInput } from './metrics-read.ts';
import type { Init } from './init.ts';
import { handleTrace } from './trace-http.ts';
import { FAULT_DISABLED } from './fault.ts';
import { createMetrics } from './metrics.ts';
import { createDashboard } from './dashboard.ts';

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
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return finish('the body must be a JSON object');
      finish(v as Record<string, unknown>);
    });
  });
}

/** POST /components/NAME/fault {"kind": "throw"|"allocate"|"hang"|"forbidden-call"|"hostile", "attack": A (hostile only)}: fault injection (src/init/fault.ts). */
async function handleFault(init: Init, req: IncomingMessage, res: ServerResponse, component: string): Promise<void> {
  if (req.method !== 'POST') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on /components/${component}/fault; use POST`);
  if (init.config.debug?.faultInjection !== true) return error(res, FAULT_DISABLED.status, FAULT_DISABLED.code, FAULT_DISABLED.message);
  // The body's content type was checked before routing (application/json, else 415: control-auth.ts).
  const body = await readJsonObject(req, MAX_FAULT_BODY);
  if (typeof body === 'string') return error(res, 400, 'MG_BAD_BODY', body);
  const extra = Object.keys(body).filter((k) => k !== 'kind' && k !== 'attack');
  if (extra.length > 0) return error(res, 400, 'MG_BAD_BODY', `unknown key ${JSON.stringify(extra[0])} in the body; expected "kind" (and "attack" for kind "hostile")`);
  const r = await init.fault(component, body.kind, body.attack);
  if (r.status !== 202) return error(res, r.status, r.code, r.message);
  reply(res, 202, { ok: true, component, kind: body.kind, ...(body.attack !== undefined ? { attack: body.attack } : {}), unit: r.unit, pid: r.pid, message: r.message });
}

export interface ControlServer {
  /** The Unix socket's path. */
  socket: string;
  /** The TCP listener's port, when one is configured. */
  port?: number;
  /** Refusals so far, by reason. */
  denied: Record<Refusal['counter'], number>;
  close(): Promise<void>;
}

export interface ControlOptions {
  log?: (line: string) => void;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  replyWith(res, status, body, {});
}

function replyWith(res: ServerResponse, status: number, body: unknown, extra: Record<string, string>): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(text);
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  reply(res, status, { error: { code, message } });
}

export async function startControl(init: Init, settings: ControlSettings, opts: ControlOptions = {}): Promise<ControlServer> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  // Everything that can be wrong with the settings fails here, before anything listens.
  const adminGid = settings.adminGroup === undefined ? undefined : resolveGroup(settings.adminGroup);
  const token = settings.tcp === undefined ? undefined : readTokenFile(settings.tcp.tokenFile);
  const denied: Record<Refusal['counter'], number> = { peer: 0, token: 0, host: 0, origin: 0, 'content-type': 0 };
  const info = { socket: settings.socket, tcp: null as string | null, adminGroup: settings.adminGroup ?? null, denied };
  const limiter = logLimiter(log);
  const refuse = (res: ServerResponse, req: IncomingMessage, r: Refusal, who: string): void => {
    denied[r.counter]++;
    limiter(`init: control: refused ${req.method ?? '?'} ${req.url ?? '?'} from ${who}: ${r.message} (${r.status})`);
    const headers: Record<string, string> = r.status === 401 ? { 'www-authenticate': 'Bearer realm="microgate"' } : {};
    replyWith(res, r.status, { error: { code: r.code, message: r.message } }, headers);
  };

  const gather = async (): Promise<MetricsInput> => ({
    components: init.components(),
    services: init.services(),
    reports: await init.reports(),
    alerts: init.eve?.alertCounts() ?? [],
    serviceEvents: init.serviceEvents(),
    denied: { ...denied },
    nowMs: Date.now(),
  });
  const metrics = createMetrics(gather);
  // The live dashboard (GET /dashboard, /dashboard/events): src/init/dashboard.ts.
  const dashboard = createDashboard({
    gather,
    uptimeS: () => Math.round((Date.now() - init.startedAt) / 1000),
    alerts: (n) => {
      const eve = init.eve;
      if (eve === undefined) return undefined;
      const seq = eve.since(Number.MAX_SAFE_INTEGER).seq;
      return eve.since(Math.max(0, seq - n)).lines;
    },
  });

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    '/status': (_req, res) => {
      reply(res, 200, {
        ready: init.ready,
        pid: process.pid,
        uptimeS: Math.round((Date.now() - init.startedAt) / 1000),
        config: init.config.file,
        components: init.components(),
        services: init.services(),
        control: info,
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
    // The Prometheus text exposition (version 0.0.4) of the gateway: docs/METRICS.md.
    '/metrics': async (_req, res) => {
      const text = await metrics.scrape();
      res.writeHead(200, {
        'content-type': metrics.contentType,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(text);
    },
    // The HA pair (src/init/ha.ts): role, last takeover, the pair link as conn-sync sees it.
    '/ha': async (_req, res) => {
      if (init.ha === undefined) return error(res, 404, 'MG_NO_HA', 'this gateway is not one of an HA pair (no conn-sync with `pair`)');
      reply(res, 200, await init.ha.status());
    },
    '/audit': (_req, res) => {
      const units = init.audit();
      const services = init.auditServices();
      reply(res, 200, { ok: [...units, ...services].every((u) => u.violations.length === 0), units, services });
    },
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://control');
    // /trace/*: tracing (GET reads, POST with a bounded JSON body changes), see src/init/trace-http.ts.
    if (url.pathname === '/trace' || url.pathname.startsWith('/trace/')) return handleTrace(init, req, res, url);
    if (dashboard.handle(req, res, url)) return;
    if (url.pathname === '/reload') {
      // Re-read the config file and apply it (init.reload: fail closed). POST {} as application/json.
      if (req.method !== 'POST') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on /reload; use POST`);
      readJsonObject(req, MAX_FAULT_BODY)
        .then((body) => {
          if (typeof body === 'string') return error(res, 400, 'MG_BAD_BODY', `${body}; POST /reload takes {}`);
          const extra = Object.keys(body);
          if (extra.length > 0) return error(res, 400, 'MG_BAD_BODY', `unknown key ${JSON.stringify(extra[0])} in the body; POST /reload takes {}`);
          return init.reload().then((r) => reply(res, r.ok ? 200 : 409, r));
        })
        .catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
      return;
    }
    if (url.pathname === '/ha/role') {
      // Set the HA role: POST {"role": "master" | "backup", "force"?: true} (keepalived's notify scripts, `microgate ha role`).
      if (req.method !== 'POST') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on /ha/role; use POST`);
      readJsonObject(req, MAX_FAULT_BODY)
        .then(async (body) => {
          const usage = 'POST /ha/role takes {"role": "master" | "backup", "force"?: true}';
          if (typeof body === 'string') return error(res, 400, 'MG_BAD_BODY', `${body}; ${usage}`);
          const extra = Object.keys(body).find((k) => k !== 'role' && k !== 'force');
          if (extra !== undefined) return error(res, 400, 'MG_BAD_BODY', `unknown key ${JSON.stringify(extra)}; ${usage}`);
          if (body.role !== 'master' && body.role !== 'backup') return error(res, 400, 'MG_BAD_BODY', `role: expected master or backup; ${usage}`);
          if (body.force !== undefined && typeof body.force !== 'boolean') return error(res, 400, 'MG_BAD_BODY', `force: expected true or false; ${usage}`);
          if (init.ha === undefined) return error(res, 404, 'MG_NO_HA', 'this gateway is not one of an HA pair (no conn-sync with `pair`)');
          const r = await init.ha.setRole(body.role, body.force === true);
          return r.status === 200 ? reply(res, 200, r.ha) : error(res, r.status, r.code, r.message);
        })
        .catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
      return;
    }
    const fault = /^\/components\/([^/]+)\/fault$/.exec(url.pathname);
    if (fault !== null) {
      handleFault(init, req, res, fault[1]).catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
      return;
    }
    const route = routes[url.pathname];
    if (route === undefined) return error(res, 404, 'MG_NOT_FOUND', `no such endpoint ${url.pathname}; try /status, /components, /counters, /metrics, /dashboard, /audit, /ha`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'MG_METHOD', `${req.method} is not allowed on ${url.pathname}; use GET`);
    Promise.resolve(route(req, res)).catch((e: unknown) => error(res, 500, 'MG_INTERNAL', e instanceof Error ? e.message : String(e)));
  };
  const serverOpts = { requestTimeout: 5000, headersTimeout: 5000, maxHeaderSize: 8192 };

  // The Unix socket: the peer's credentials are checked once per connection (SO_PEERCRED at accept).
  const peers = new WeakMap<Socket, { refusal: Refusal | null; who: string }>();
  const unix = createServer(serverOpts, (req, res) => {
    const p = peers.get(req.socket) ?? { refusal: { status: 403, code: 'MG_FORBIDDEN', message: 'the peer could not be identified', counter: 'peer' as const }, who: 'an unknown peer' };
    if (p.refusal !== null) return refuse(res, req, p.refusal, p.who);
    const ct = checkContentType(req.method, req.headers['content-type']);
    if (ct !== null) return refuse(res, req, ct, p.who);
    handle(req, res);
  });
  unix.on('connection', (sock: Socket) => {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    try {
      if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
      const cred = peerCred(fd);
      const groups = cred.uid === 0 || adminGid === undefined || cred.gid === adminGid ? [] : procGroups(cred.pid, cred.uid);
      peers.set(sock, { refusal: checkPeer(cred, groups, adminGid), who: `pid ${cred.pid} uid ${cred.uid} gid ${cred.gid}` });
    } catch (e) {
      peers.set(sock, { refusal: { status: 403, code: 'MG_FORBIDDEN', message: `the peer could not be identified (${(e as Error).message})`, counter: 'peer' }, who: 'an unknown peer' });
    }
  });
  unix.on('clientError', (_e, socket) => socket.destroy());
  await listenUnix(unix, settings.socket, adminGid);

  // The TCP listener, only when configured: token, Host, Origin.
  let tcp: Server | undefined;
  let port: number | undefined;
  if (settings.tcp !== undefined && token !== undefined) {
    const t = settings.tcp;
    let bound = t.port;
    tcp = createServer(serverOpts, (req, res) => {
      const who = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
      const r = checkHost(req.headers.host, bound) ?? checkOrigin(req.headers.origin) ?? checkBearer(req.headers.authorization, token) ?? checkContentType(req.method, req.headers['content-type']);
      if (r !== null) return refuse(res, req, r, who);
      handle(req, res);
    });
    tcp.on('clientError', (_e, socket) => socket.destroy());
    const srv = tcp;
    try {
      await new Promise<void>((resolveP, reject) => {
        srv.once('error', reject);
        srv.listen(t.port, t.host, () => resolveP());
      });
    } catch (e) {
      await new Promise<void>((r) => unix.close(() => r()));
      throw e;
    }
    const addr = tcp.address();
    bound = typeof addr === 'object' && addr !== null ? addr.port : t.port;
    port = bound;
  }
  log(`init: control API on ${settings.socket} (root${settings.adminGroup === undefined ? '' : ` and group ${settings.adminGroup}`})${port === undefined ? '' : ` and http://${settings.tcp?.host}:${port} (bearer token)`}`);
  if (port !== undefined) info.tcp = `${settings.tcp?.host}:${port}`;
  const closeOne = (s: Server): Promise<void> => new Promise<void>((r) => {
    s.close(() => r());
    s.closeAllConnections();
  });
  return {
    socket: settings.socket,
    port,
    denied,
    close: async () => {
      dashboard.close();
      await closeOne(unix);
      if (tcp !== undefined) await closeOne(tcp);
      try {
        unlinkSync(settings.socket);
      } catch {
        // already gone
      }
    },
  };
}

/** At most 20 refusal lines a minute in init's log (the counters count all). */
function logLimiter(log: (line: string) => void): (line: string) => void {
  let windowStart = 0;
  let n = 0;
  let dropped = 0;
  return (line) => {
    const now = Date.now();
    if (now - windowStart > 60_000) {
      if (dropped > 0) log(`init: control: ${dropped} more refusals not logged in the last minute`);
      windowStart = now;
      n = 0;
      dropped = 0;
    }
    if (++n <= 20) log(line);
    else dropped++;
  };
}

/** Is something answering on the socket at `path`? (A stale socket file refuses.) */
function answers(path: string): Promise<boolean> {
  return new Promise((resolveP) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolveP(true);
    });
    c.once('error', () => resolveP(false));
  });
}

/**
 * Before init creates or starts anything (`microgate run`): are the admin
 * group and the token file usable, the control socket free (no file, or a
 * stale socket: no gateway answers there), and the TCP port, when one is
 * configured? Throws a message naming what is wrong or taken.
 * startControl checks again when it listens (a race between two starts).
 */
export async function checkControlFree(settings: ControlSettings): Promise<void> {
  // What startControl would refuse later, refused now: the admin group, the token file.
  if (settings.adminGroup !== undefined) resolveGroup(settings.adminGroup);
  if (settings.tcp !== undefined) readTokenFile(settings.tcp.tokenFile);
  let st;
  try {
    st = lstatSync(settings.socket);
  } catch {
    st = undefined;
  }
  if (st !== undefined) {
    if (!st.isSocket()) throw new Error(`control.socket ${settings.socket}: exists and is not a socket; remove it or choose another path`);
    if (await answers(settings.socket)) throw new Error(`control.socket ${settings.socket}: another gateway answers there; stop it or choose another path`);
  }
  const t = settings.tcp;
  if (t !== undefined && t.port !== 0) {
    const probe = createServer();
    await new Promise<void>((resolveP, reject) => {
      probe.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`control.listen ${t.host}:${t.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use (another gateway?); stop it or choose another port' : e.message}`)));
      probe.listen(t.port, t.host, () => probe.close(() => resolveP()));
    });
  }
}

/** Listen on `path` in a root-only folder; the socket 0600 (0660 root:ADMIN). A stale socket is replaced; a live one is an error. */
async function listenUnix(server: Server, path: string, adminGid: number | undefined): Promise<void> {
  prepareSocketDir(path, adminGid);
  let st;
  try {
    st = lstatSync(path);
  } catch {
    st = undefined;
  }
  if (st !== undefined) {
    if (!st.isSocket()) throw new Error(`control.socket ${path}: exists and is not a socket; remove it or choose another path`);
    if (await answers(path)) throw new Error(`control.socket ${path}: another gateway answers there; stop it or choose another path`);
    unlinkSync(path);
  }
  await new Promise<void>((resolveP, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolveP());
  });
  chownSync(path, 0, adminGid ?? 0);
  chmodSync(path, adminGid === undefined ? 0o600 : 0o660);
}
