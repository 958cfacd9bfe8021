// The trace endpoints of init's control API (src/init/control.ts: they are
// reached only past its peer, token, Host/Origin and content-type checks, like
// every endpoint; captures and pcapng exports carry the lan's payload). GET
// reads, POST changes; request bodies are JSON objects of at most 4 KiB ({} at
// least); every error is JSON {error: {code, message}} with a stable code.
//
//   GET  /trace               status: mode and event-ring fill of every tracer, captures
//   POST /trace/start         {mode?: "events"|"aggregates", reset?: true, sample?: 1, capture?: "COMPONENT.PORT", snaplen?, packets?}
//   POST /trace/stop          {mode?: "aggregates"|"off"}: events stop (kept for export), captures stop
//   POST /trace/mode          {mode: "off"|"aggregates"|"events", reset?: false, sample?: N}
//   POST /trace/reset         clear aggregates and events
//   GET  /trace/aggregates    per tracer: per procedure count, sum, min, max, HdrHistogram (base64), spikes
//   GET  /trace/report        Table 1: ?spike=N (default 10), ?all=1 (zero counts too)
//   GET  /trace/events        aggregates + raw events: ?component=NAME, ?max=N (newest N per tracer)
//   GET  /trace/chrome        Chrome trace-event JSON (Perfetto): ?component=NAME, ?max=N
//   GET  /trace/pcapng        the session captures as one pcapng file
//   GET  /trace/counters      per component: drops by reason, queue depths, wake-ups, busy/idle time
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ComponentReport } from '../runtime/messages.ts';
import { toChromeTrace } from '../trace/chrome.ts';
import { toPcapng } from '../trace/pcapng.ts';
import type { TraceReply, TraceRequest } from '../trace/protocol.ts';
import { buildReport } from '../trace/report.ts';
import { MAX_SAMPLE, TRACE_MODES, validSample } from '../trace/tracer.ts';
import type { TraceMode } from '../trace/tracer.ts';

/** What the trace endpoints need of init. */
export interface TraceTarget {
  trace(req: TraceRequest): Promise<TraceReply>;
  reports(): Promise<ComponentReport[]>;
}

const MAX_BODY = 4096;

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown, compact = false): void {
  send(res, status, `${compact ? JSON.stringify(body) : JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8');
}

/** Read a JSON object body of at most MAX_BODY bytes (an empty body is refused: send {}). */
function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolveP, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY) {
      reject(new HttpError(413, 'MG_BODY_TOO_LARGE', `request body is ${declared} bytes; at most ${MAX_BODY}`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY && !failed) {
        failed = true;
        reject(new HttpError(413, 'MG_BODY_TOO_LARGE', `request body exceeds ${MAX_BODY} bytes`));
      }
      if (!failed) chunks.push(c);
    });
    req.on('error', (e) => reject(e));
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return reject(new HttpError(400, 'MG_BAD_JSON', 'request body is empty: send a JSON object ({} at least) as application/json'));
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return reject(new HttpError(400, 'MG_BAD_JSON', `request body is not JSON: ${(e as Error).message}`));
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return reject(new HttpError(400, 'MG_BAD_JSON', 'request body must be a JSON object'));
      resolveP(v as Record<string, unknown>);
    });
  });
}

function known(body: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(body)) {
    if (!keys.includes(k)) throw new HttpError(400, 'MG_BAD_REQUEST', `${path}: unknown field "${k}"; expected ${keys.length > 0 ? `one of ${keys.join(', ')}` : 'none'}`);
  }
}

function modeOf(v: unknown, field: string, allowed: readonly TraceMode[] = TRACE_MODES): TraceMode {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new HttpError(400, 'MG_BAD_REQUEST', `${field}: expected one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as TraceMode;
}

function boolOf(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new HttpError(400, 'MG_BAD_REQUEST', `${field}: expected true or false (got ${JSON.stringify(v)})`);
  return v;
}

function intOf(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(400, 'MG_BAD_REQUEST', `${field}: expected an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return n;
}

function sampleOf(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (!validSample(v)) throw new HttpError(400, 'MG_BAD_REQUEST', `sample: expected a power of two from 1 to ${MAX_SAMPLE} (got ${JSON.stringify(v)})`);
  return v;
}

function numOf(v: string | null, field: string, min: number, max: number, dflt: number): number {
  if (v === null) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new HttpError(400, 'MG_BAD_REQUEST', `${field}: expected a number from ${min} to ${max} (got ${JSON.stringify(v)})`);
  return n;
}

/** "router.lan" -> ["router", "lan"]. */
function target(v: unknown): [string, string] {
  const m = typeof v === 'string' ? /^([a-z][a-z0-9-]{0,31})\.([A-Za-z0-9_-]{1,64})$/.exec(v) : null;
  if (m === null) throw new HttpError(400, 'MG_BAD_REQUEST', `capture: expected "COMPONENT.PORT", e.g. "drv-lan.nic" (got ${JSON.stringify(v)})`);
  return [m[1], m[2]];
}

async function ask(t: TraceTarget, req: TraceRequest): Promise<TraceReply> {
  const r = await t.trace(req);
  return r;
}

function status(r: TraceReply): Record<string, unknown> {
  return { tracers: r.status.tracers, captures: r.status.captures, errors: r.errors };
}

/** Per component: drops by reason, queue depths, wake-ups, loop busy/idle (from init's component reports). */
export function countersView(reports: readonly ComponentReport[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const r of reports) {
    const drops: Record<string, number> = {};
    const counters: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.counters)) {
      if (k.startsWith('drop.')) drops[k.slice(5)] = v;
      else counters[k] = v;
    }
    const sessions: Record<string, unknown> = {};
    for (const [port, s] of Object.entries(r.sessions)) {
      const sdrops: Record<string, number> = {};
      for (const [k, v] of Object.entries(s)) if (k.startsWith('drop.') && v !== 0) sdrops[k.slice(5)] = v;
      sessions[port] = {
        queued: s['in.queued'] ?? 0,
        busySlots: s['out.busy-slots'] ?? 0,
        freeSlots: s['out.free-slots'] ?? 0,
        wakeupsSent: (s['out.wakeups'] ?? 0) + (s['in.wakeups'] ?? 0),
        packetsOut: s['out.packets'] ?? 0,
        packetsIn: s['in.packets'] ?? 0,
        allocFailures: s['out.alloc-fail'] ?? 0,
        drops: sdrops,
      };
    }
    const busy = Number(r.loop.busyNs);
    const idle = Number(r.loop.idleNs);
    out[r.name] = {
      drops,
      counters,
      sessions,
      loop: {
        turns: r.loop.turns,
        sleeps: r.loop.sleeps,
        busyNs: busy,
        idleNs: idle,
        idlePct: busy + idle === 0 ? 0 : Math.round((idle / (busy + idle)) * 1000) / 10,
      },
    };
  }
  return out;
}

async function route(t: TraceTarget, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname.replace(/\/+$/, '') || '/trace';
  const method = req.method ?? 'GET';
  const posts = ['/trace/start', '/trace/stop', '/trace/mode', '/trace/reset'];
  const gets = ['/trace', '/trace/aggregates', '/trace/report', '/trace/events', '/trace/chrome', '/trace/pcapng', '/trace/counters'];
  if (posts.includes(path)) {
    if (method !== 'POST') throw new HttpError(405, 'MG_METHOD', `${method} is not allowed on ${path}; use POST`);
  } else if (gets.includes(path)) {
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'MG_METHOD', `${method} is not allowed on ${path}; use GET`);
  } else {
    throw new HttpError(404, 'MG_NOT_FOUND', `no such endpoint ${path}; try ${[...gets, ...posts].join(', ')}`);
  }
  const component = url.searchParams.get('component');
  const max = intOf(url.searchParams.get('max') ?? undefined, 'max', 0, 1 << 24);
  switch (path) {
    case '/trace':
      return json(res, 200, status(await ask(t, { op: 'status' })));
    case '/trace/start': {
      const b = await readBody(req);
      known(b, ['mode', 'reset', 'sample', 'capture', 'snaplen', 'packets'], path);
      const mode = b.mode === undefined ? 'events' : modeOf(b.mode, 'mode', ['aggregates', 'events']);
      const reset = boolOf(b.reset, 'reset', true);
      const sample = sampleOf(b.sample);
      if (b.capture !== undefined) {
        const [comp, session] = target(b.capture);
        const snaplen = intOf(b.snaplen, 'snaplen', 64, 65536);
        const packets = intOf(b.packets, 'packets', 1, 1 << 20);
        const r = await ask(t, { op: 'capture-start', component: comp, session, snaplen, packets });
        if (r.errors.length > 0 && r.matched === 0) throw new HttpError(400, 'MG_BAD_REQUEST', r.errors.join('; '));
        if (r.matched === 0) throw new HttpError(404, 'MG_TRACE_NO_SESSION', `no session end ${comp}.${session}: see GET /components for components and their sessions`);
      } else if (b.snaplen !== undefined || b.packets !== undefined) {
        throw new HttpError(400, 'MG_BAD_REQUEST', 'snaplen and packets need capture');
      }
      return json(res, 200, status(await ask(t, { op: 'mode', mode, reset, sample })));
    }
    case '/trace/stop': {
      const b = await readBody(req);
      known(b, ['mode'], path);
      const mode = b.mode === undefined ? 'aggregates' : modeOf(b.mode, 'mode', ['aggregates', 'off']);
      await ask(t, { op: 'capture-stop' });
      return json(res, 200, status(await ask(t, { op: 'mode', mode })));
    }
    case '/trace/mode': {
      const b = await readBody(req);
      known(b, ['mode', 'reset', 'sample'], path);
      if (b.mode === undefined) throw new HttpError(400, 'MG_BAD_REQUEST', `mode: expected one of ${TRACE_MODES.join(', ')} (missing)`);
      return json(res, 200, status(await ask(t, { op: 'mode', mode: modeOf(b.mode, 'mode'), reset: boolOf(b.reset, 'reset', false), sample: sampleOf(b.sample) })));
    }
    case '/trace/reset': {
      known(await readBody(req), [], path);
      return json(res, 200, status(await ask(t, { op: 'reset' })));
    }
    case '/trace/aggregates': {
      const r = await ask(t, { op: 'snapshot' });
      return json(res, 200, { tracers: r.tracers.filter((x) => component === null || x.component === component), errors: r.errors }, true);
    }
    case '/trace/report': {
      const spike = numOf(url.searchParams.get('spike'), 'spike', 1, 1e9, 10);
      const all = url.searchParams.get('all') === '1' || url.searchParams.get('all') === 'true';
      const r = await ask(t, { op: 'snapshot', events: true });
      const tracers = r.tracers.filter((x) => component === null || x.component === component);
      return json(res, 200, { ...buildReport(tracers, { spikeFactor: spike, all }), errors: r.errors });
    }
    case '/trace/events': {
      const r = await ask(t, { op: 'snapshot', events: true, maxEvents: max });
      return json(res, 200, { tracers: r.tracers.filter((x) => component === null || x.component === component), errors: r.errors }, true);
    }
    case '/trace/chrome': {
      const r = await ask(t, { op: 'snapshot', events: true, maxEvents: max });
      const trace = toChromeTrace(r.tracers.filter((x) => component === null || x.component === component));
      return send(res, 200, JSON.stringify(trace), 'application/json; charset=utf-8', { 'content-disposition': 'attachment; filename="microgate-trace.json"' });
    }
    case '/trace/pcapng': {
      const r = await ask(t, { op: 'captures' });
      const caps = r.captures.filter((x) => component === null || x.component === component);
      if (caps.length === 0) throw new HttpError(404, 'MG_TRACE_NO_CAPTURE', 'nothing captured: start one with POST /trace/start {"capture": "COMPONENT.PORT"}');
      return send(res, 200, toPcapng(caps), 'application/x-pcapng', { 'content-disposition': 'attachment; filename="microgate.pcapng"' });
    }
    case '/trace/counters':
      return json(res, 200, { components: countersView(await t.reports()) });
  }
}

/** Serve a request under /trace. */
export function handleTrace(t: TraceTarget, req: IncomingMessage, res: ServerResponse, url: URL): void {
  route(t, req, res, url).catch((e: unknown) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof HttpError) json(res, e.status, { error: { code: e.code, message: e.message } });
    else json(res, 500, { error: { code: 'MG_INTERNAL', message: e instanceof Error ? e.message : String(e) } });
  });
}
