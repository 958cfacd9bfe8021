// A client of the trace endpoints (src/init/trace-http.ts), for the CLI, the
// benchmarks and tests: drive tracing, fetch reports and exports. It is given the control API's base
// URL (finding a lab's is the caller's job: src/cli/control-url.ts).
import type { TraceReport } from './report.ts';
import type { TraceMode, TracerSnapshot } from './tracer.ts';

export class TraceClientError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'TraceClientError';
    this.status = status;
    this.code = code;
  }
}

export interface StartOptions {
  /** events (default) or aggregates. */
  mode?: 'events' | 'aggregates';
  /** Clear aggregates and events first (default true). */
  reset?: boolean;
  /** Time 1 in `sample` spans (a power of two; counts stay exact). */
  sample?: number;
  /** Capture session end "COMPONENT.PORT". */
  capture?: string;
  snaplen?: number;
  packets?: number;
}

export interface TraceStatusView {
  tracers: { component: string; thread: string; pid: number; mode: TraceMode; sample: number; procedures: number; events: { capacity: number; total: number; lost: number } }[];
  captures: { component: string; session: string; active: boolean; snaplen: number; packets: number; total: number }[];
  errors: string[];
}

export class TraceClient {
  readonly base: string;
  readonly timeoutMs: number;

  constructor(base: string, timeoutMs = 20000) {
    this.base = base;
    this.timeoutMs = timeoutMs;
  }

  async #fetch(path: string, init: RequestInit = {}): Promise<Response> {
    let r: Response;
    try {
      r = await fetch(`${this.base}${path}`, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new TraceClientError(0, 'MG_UNREACHABLE', `control API ${this.base} did not answer (${cause ?? (e as Error).message}); is the gateway running?`);
    }
    if (!r.ok) {
      let code = 'MG_HTTP';
      let message = `${r.status} ${r.statusText}`;
      try {
        const j = (await r.json()) as { error?: { code?: string; message?: string } };
        if (j.error?.code) code = j.error.code;
        if (j.error?.message) message = j.error.message;
      } catch {
        // not JSON
      }
      throw new TraceClientError(r.status, code, message);
    }
    return r;
  }

  async get<T>(path: string): Promise<T> {
    return (await (await this.#fetch(path)).json()) as T;
  }

  async bytes(path: string): Promise<Buffer> {
    return Buffer.from(await (await this.#fetch(path)).arrayBuffer());
  }

  async post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    const r = await this.#fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return (await r.json()) as T;
  }

  status(): Promise<TraceStatusView> {
    return this.get('/trace');
  }

  start(o: StartOptions = {}): Promise<TraceStatusView> {
    const body: Record<string, unknown> = {};
    if (o.mode !== undefined) body.mode = o.mode;
    if (o.reset !== undefined) body.reset = o.reset;
    if (o.sample !== undefined) body.sample = o.sample;
    if (o.capture !== undefined) body.capture = o.capture;
    if (o.snaplen !== undefined) body.snaplen = o.snaplen;
    if (o.packets !== undefined) body.packets = o.packets;
    return this.post('/trace/start', body);
  }

  stop(mode: 'aggregates' | 'off' = 'aggregates'): Promise<TraceStatusView> {
    return this.post('/trace/stop', { mode });
  }

  mode(mode: TraceMode, reset = false, sample?: number): Promise<TraceStatusView> {
    return this.post('/trace/mode', sample === undefined ? { mode, reset } : { mode, reset, sample });
  }

  reset(): Promise<TraceStatusView> {
    return this.post('/trace/reset');
  }

  report(o: { spike?: number; all?: boolean; component?: string } = {}): Promise<TraceReport & { errors: string[] }> {
    const q = new URLSearchParams();
    if (o.spike !== undefined) q.set('spike', String(o.spike));
    if (o.all === true) q.set('all', '1');
    if (o.component !== undefined) q.set('component', o.component);
    const s = q.toString();
    return this.get(`/trace/report${s === '' ? '' : `?${s}`}`);
  }

  events(o: { component?: string; max?: number } = {}): Promise<{ tracers: TracerSnapshot[]; errors: string[] }> {
    return this.get(`/trace/events${query(o)}`);
  }

  chrome(o: { component?: string; max?: number } = {}): Promise<Buffer> {
    return this.bytes(`/trace/chrome${query(o)}`);
  }

  pcapng(o: { component?: string } = {}): Promise<Buffer> {
    return this.bytes(`/trace/pcapng${query(o)}`);
  }

  counters(): Promise<{ components: Record<string, unknown> }> {
    return this.get('/trace/counters');
  }
}

function query(o: { component?: string; max?: number }): string {
  const q = new URLSearchParams();
  if (o.component !== undefined) q.set('component', o.component);
  if (o.max !== undefined) q.set('max', String(o.max));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
