// The one client of init's control API (src/init/control.ts), used by every
// command, the lab, the benchmarks and the tests. It speaks HTTP/1.1 with
// node:http over init's Unix socket (`socketPath`; Node's fetch cannot dial a
// Unix socket without undici's Agent) or, when a gateway is configured with a
// TCP listener, to a loopback URL with a bearer token. Every failure is a
// ControlError with a stable code; when nothing answers it says so
// ("no gateway answers on SOCKET: is it running?"), never "fetch failed".
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

/** Where a control API is: init's Unix socket, or a loopback URL (a TCP listener, with its token). */
export type ControlTarget = { socket: string } | { url: string; token?: string };

export class ControlError extends Error {
  /** The HTTP status, 0 when no answer came. */
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ControlError';
    this.status = status;
    this.code = code;
  }
}

export interface ControlResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  /** Extra headers (tests: a wrong Host, an Origin, text/plain). */
  headers?: Record<string, string>;
  /** A raw body sent as is (default: JSON of `body`). */
  raw?: string | Buffer;
  timeoutMs?: number;
}

/** "/run/.../control.sock" -> a socket; "http://127.0.0.1:7460" -> a URL. Throws ControlError MG_USAGE otherwise. */
export function parseControlTarget(s: string, token?: string): ControlTarget {
  if (s.startsWith('/')) return { socket: s };
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ControlError(0, 'MG_USAGE', `control: expected a socket path (/run/microgate/...) or an http:// URL (got ${JSON.stringify(s)})`);
  }
  if (u.protocol !== 'http:') throw new ControlError(0, 'MG_USAGE', `control: expected an http:// URL (got ${s})`);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) && !u.hostname.startsWith('127.')) {
    throw new ControlError(0, 'MG_USAGE', `control: the URL must name a loopback host (got ${s})`);
  }
  return token === undefined ? { url: s.replace(/\/+$/, '') } : { url: s.replace(/\/+$/, ''), token };
}

/** How a target reads in messages: the socket path or the URL. */
export function describeTarget(t: ControlTarget): string {
  return 'socket' in t ? t.socket : t.url;
}

export class ControlClient {
  readonly target: ControlTarget;
  readonly timeoutMs: number;

  constructor(target: ControlTarget | string, timeoutMs = 20_000) {
    this.target = typeof target === 'string' ? parseControlTarget(target) : target;
    this.timeoutMs = timeoutMs;
  }

  /** The socket path or URL. */
  get where(): string {
    return describeTarget(this.target);
  }

  /**
   * One request; resolves with any HTTP answer (4xx/5xx included), rejects
   * with a ControlError only when no answer came.
   */
  request(method: string, path: string, body?: unknown, o: RequestOptions = {}): Promise<ControlResponse> {
    const t = this.target;
    const data = o.raw !== undefined ? Buffer.from(o.raw) : body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (data !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(data.length);
    }
    let url: URL | undefined;
    if ('url' in t) {
      url = new URL(`${t.url}${path}`);
      if (t.token !== undefined) headers.authorization = `Bearer ${t.token}`;
    } else {
      headers.host = 'localhost';
    }
    Object.assign(headers, o.headers ?? {});
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    return new Promise((resolveP, reject) => {
      const req = httpRequest(
        url !== undefined
          ? { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || 80, path: `${url.pathname}${url.search}`, method, headers }
          : { socketPath: (t as { socket: string }).socket, path, method, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new ControlError(0, 'MG_UNREACHABLE', `the gateway on ${this.where} broke off its answer: ${e.message}`)));
          res.on('end', () => resolveP({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.#unreachable(e, timeoutMs)));
      req.end(data);
    });
  }

  #unreachable(e: NodeJS.ErrnoException, timeoutMs: number): ControlError {
    switch (e.code) {
      case 'ENOENT':
      case 'ECONNREFUSED':
        return new ControlError(0, 'MG_UNREACHABLE', `no gateway answers on ${this.where}: is it running?`);
      case 'EACCES':
      case 'EPERM':
        return new ControlError(0, 'MG_FORBIDDEN', `permission denied on ${this.where}: the control API answers only root and members of its admin group`);
      case 'ETIMEDOUT':
        return new ControlError(0, 'MG_TIMEOUT', `the gateway on ${this.where} did not answer within ${timeoutMs} ms`);
      default:
        return new ControlError(0, 'MG_UNREACHABLE', `no gateway answers on ${this.where} (${e.code ?? e.message}): is it running?`);
    }
  }

  /** A request whose answer must be 2xx; otherwise a ControlError with the API's error code and message. */
  async ok(method: string, path: string, body?: unknown, o: RequestOptions = {}): Promise<ControlResponse> {
    const r = await this.request(method, path, body, o);
    if (r.status >= 200 && r.status < 300) return r;
    let code = 'MG_HTTP';
    let message = `HTTP ${r.status}`;
    try {
      const j = JSON.parse(r.body.toString('utf8')) as { error?: { code?: string; message?: string } };
      if (typeof j.error?.code === 'string') code = j.error.code;
      if (typeof j.error?.message === 'string') message = j.error.message;
    } catch {
      // not JSON: keep the status
    }
    throw new ControlError(r.status, code, message);
  }

  async get<T>(path: string, timeoutMs?: number): Promise<T> {
    return parseJson<T>(await this.ok('GET', path, undefined, { timeoutMs }), this.where);
  }

  async bytes(path: string): Promise<Buffer> {
    return (await this.ok('GET', path)).body;
  }

  /** POST a JSON object (every changing request carries one, `{}` at least). */
  async post<T>(path: string, body: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    return parseJson<T>(await this.ok('POST', path, body, { timeoutMs }), this.where);
  }
}

function parseJson<T>(r: ControlResponse, where: string): T {
  try {
    return JSON.parse(r.body.toString('utf8')) as T;
  } catch {
    throw new ControlError(r.status, 'MG_BAD_ANSWER', `the gateway on ${where} answered with something other than JSON`);
  }
}
