// A client of the trace endpoints (src/init/trace-http.ts), for the CLI, the
// benchmarks and tests: drive tracing, fetch reports and exports. It talks
// through the one control API client (src/sys/control-client.ts) to the target
// it is given (finding a lab's is the caller's job: src/cli/control-url.ts).
import { ControlClient, ControlError } from '../sys/control-client.ts';
import type { ControlTarget } from '../sys/control-client.ts';
import type { TraceReport } from './report.ts';
import type { TraceMode, TracerSnapshot } from './tracer.ts';

/** The control client's error (status 0 when no gateway answered). */
export { ControlError as TraceClientError };

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
  readonly control: ControlClient;

  /** `target`: a control client, a target, or a socket path / loopback URL. */
  constructor(target: ControlClient | ControlTarget | string, timeoutMs = 20000) {
    this.control = target instanceof ControlClient ? target : new ControlClient(target, timeoutMs);
  }

  get<T>(path: string): Promise<T> {
    return this.control.get<T>(path);
  }

  bytes(path: string): Promise<Buffer> {
    return this.control.bytes(path);
  }

  post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.control.post<T>(path, body);
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
