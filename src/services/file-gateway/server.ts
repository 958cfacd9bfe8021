// The file gateway's HTTP handling: routes, authentication, CSRF, throttles,
// downloads. It knows nothing about sockets or TLS (service.ts owns those),
// so tests drive it over any server.
//
//   GET  /                 the files published to the logged-in user (else 303 /login)
//   GET  /login            the login form (sets the login CSRF cookie)
//   POST /login            user, password, csrf -> session cookie, 303 /
//   POST /logout           csrf -> session ended, 303 /login
//   GET|HEAD /f/ID[/NAME]  a download for the logged-in user (else 303 /login)
//   GET|HEAD /p/TOKEN[/NAME] a public-link download (no account)
//   GET  /assets/app.css   the stylesheet
// Anything else is a generic 404. No response names a host, an address, a
// share path or the server's software; every not-found of /f/ and /p/ takes
// at least `notFoundMs`, whatever the reason (unknown, unpublished, expired,
// consumed, not yours, gone from the storage), and has the same body.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { FileGatewayConfig } from './config.ts';
import type { AuditLog } from './audit.ts';
import { CSS, listPage, loginPage, messagePage, type ListedFile } from './pages.ts';
import { ID_RE, TOKEN_RE, inactiveReason, tokenHash, userMayRead, type ConsumedFile, type Publication, type PublicationIndex } from './publications.ts';
import { contentDisposition, contentType } from './mime.ts';
import { ifRangeAllows, makeEtag, noneMatch, parseRange } from './range.ts';
import { Gate, LoginThrottle, RequestBuckets } from './rate-limit.ts';
import { LOGIN_COOKIE, SESSION_COOKIE, SessionTable, cookie, parseCookies, randomToken, safeEqual, type Session } from './sessions.ts';
import { StorageUnavailable, type FileInfo, type Storage } from './storage.ts';
import { hashFingerprint, type UsersFile } from './users.ts';
import { verifyPassword } from './kdf.ts';

export interface GatewayDeps {
  config: FileGatewayConfig;
  storage: Storage;
  users: () => UsersFile;
  publications: () => PublicationIndex;
  consumed: () => ConsumedFile;
  /**
   * Use up a once-publication as its download starts: true when this call
   * consumed it, false when it already was. Synchronous: the check and the
   * mark cannot interleave with another request's.
   */
  claimOnce: (id: string) => boolean;
  audit: AuditLog;
  /** A valid Argon2id hash checked for unknown users, so they cost the same time as known ones. */
  dummyHash: string;
  now?: () => number;
  log?: (msg: string) => void;
}

/** Headers every response carries. */
export const SECURITY_HEADERS: Record<string, string> = {
  'strict-transport-security': 'max-age=31536000',
  'content-security-policy': "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), interest-cohort=()',
};

const DOWNLOAD_CSP = "default-src 'none'; sandbox";
const MAX_FORM_BYTES = 4096;
const LIST_LIMIT = 500;

type Route = { kind: 'page'; name: string } | { kind: 'file'; via: 'f' | 'p'; key: string };

function route(url: string): Route | undefined {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path === '/' || path === '/login' || path === '/logout' || path === '/assets/app.css' || path === '/healthz') return { kind: 'page', name: path };
  // /f/ID or /f/ID/NAME (NAME is cosmetic: one segment, ignored). Nothing else, no dot segments, no encoded slashes.
  const m = /^\/([fp])\/([A-Za-z0-9_-]{1,64})(?:\/[^/]*)?$/.exec(path);
  if (m === null) return undefined;
  return { kind: 'file', via: m[1] as 'f' | 'p', key: m[2] };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The client's address as the service sees it (after the gateway's port forward, the real source). */
export function sourceOf(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export class FileGateway {
  readonly sessions: SessionTable;
  readonly throttle: LoginThrottle;
  readonly buckets: RequestBuckets;
  #d: GatewayDeps;
  #c: FileGatewayConfig;
  #gate: Gate;
  #now: () => number;

  constructor(deps: GatewayDeps) {
    this.#d = deps;
    this.#c = deps.config;
    this.#now = deps.now ?? Date.now;
    this.sessions = new SessionTable(this.#c.session);
    this.throttle = new LoginThrottle(this.#c.login);
    this.buckets = new RequestBuckets(this.#c.limits.requestsPerSecond, this.#c.limits.burst);
    this.#gate = new Gate(this.#c.login.concurrentChecks, 32);
  }

  /** Forget sessions that expired or whose user changed (call when users.json changes, and now and then). */
  prune(): void {
    this.sessions.prune(this.#now(), (u) => this.#fingerprintOf(u));
  }

  #fingerprintOf(user: string): string | undefined {
    const u = this.#d.users().users[user];
    return u === undefined ? undefined : hashFingerprint(u.hash);
  }

  /** Handle one request; never throws (errors become a generic 500/503). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    this.#dispatch(req, res).catch((e: unknown) => {
      const unavailable = e instanceof StorageUnavailable;
      this.#d.log?.(`file-gateway: ${req.method} ${route(req.url ?? '')?.kind ?? '?'}: ${(e as Error).message}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.#page(res, unavailable ? 503 : 500, unavailable ? messagePage('Temporarily unavailable', 'Please try again later.') : messagePage('Error', 'Something went wrong.'));
    });
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = this.#now();
    const from = sourceOf(req);
    if (!this.buckets.take(from, t0)) {
      this.#d.audit.write({ event: 'rate-limited', result: 'refused', from, status: 429 }, t0);
      res.setHeader('retry-after', '1');
      this.#page(res, 429, messagePage('Too many requests', 'Slow down and try again.'));
      return;
    }
    const r = route(req.url ?? '');
    const method = req.method ?? '';
    if (r === undefined) {
      this.#page(res, 404, messagePage('Not found', 'There is nothing here.'));
      return;
    }
    const cookies = parseCookies(req.headers.cookie);
    const session = this.sessions.get(cookies.get(SESSION_COOKIE), t0, (u) => this.#fingerprintOf(u));
    if (r.kind === 'file') {
      if (method !== 'GET' && method !== 'HEAD') return this.#notAllowed(res, 'GET, HEAD');
      if (r.via === 'f') {
        if (session === undefined) return this.#redirect(res, '/login');
        return this.#download(req, res, r.key, session, from, t0);
      }
      return this.#publicDownload(req, res, r.key, from, t0);
    }
    switch (r.name) {
      case '/healthz':
        // Liveness for init's health check (src/init/health-check.ts): no account, no state, says nothing but "ok".
        if (method !== 'GET' && method !== 'HEAD') return this.#notAllowed(res, 'GET, HEAD');
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': 3 });
        res.end('ok\n');
        return;
      case '/assets/app.css':
        if (method !== 'GET' && method !== 'HEAD') return this.#notAllowed(res, 'GET, HEAD');
        res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=3600', 'content-length': Buffer.byteLength(CSS) });
        res.end(CSS);
        return;
      case '/':
        if (method !== 'GET' && method !== 'HEAD') return this.#notAllowed(res, 'GET, HEAD');
        if (session === undefined) return this.#redirect(res, '/login');
        return this.#list(res, session, from, t0);
      case '/login':
        if (method === 'GET' || method === 'HEAD') {
          if (session !== undefined) return this.#redirect(res, '/');
          return this.#loginForm(res, 200);
        }
        if (method === 'POST') return this.#login(req, res, cookies, from, t0);
        return this.#notAllowed(res, 'GET, HEAD, POST');
      case '/logout':
        if (method !== 'POST') return this.#notAllowed(res, 'POST');
        return this.#logout(req, res, session, cookies, from, t0);
    }
  }

  // ---- responses -----------------------------------------------------------------

  #page(res: ServerResponse, status: number, html: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(html), ...headers });
    res.end(html);
  }

  /** Redirects are always relative: they never carry a host name. */
  #redirect(res: ServerResponse, to: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(303, { location: to, 'cache-control': 'no-store', 'content-length': 0, ...headers });
    res.end();
  }

  #notAllowed(res: ServerResponse, allow: string): void {
    this.#page(res, 405, messagePage('Not allowed', 'This request is not allowed here.'), { allow });
  }

  async #notFound(res: ServerResponse, t0: number): Promise<void> {
    const wait = t0 + this.#c.limits.notFoundMs - this.#now();
    if (wait > 0) await sleep(wait);
    this.#page(res, 404, messagePage('Not found', 'There is nothing here.'));
  }

  #loginForm(res: ServerResponse, status: number, message?: string, user = '', extra: Record<string, string | string[]> = {}): void {
    const token = randomToken();
    const set = [cookie(LOGIN_COOKIE, token, 3600), ...(Array.isArray(extra['set-cookie']) ? extra['set-cookie'] : [])];
    this.#page(res, status, loginPage(token, message, user), { ...extra, 'set-cookie': set });
  }

  // ---- forms and CSRF --------------------------------------------------------------

  /** Same-origin check for state-changing requests: Origin (when sent) must be ours; Sec-Fetch-Site (when sent) same-origin. */
  #sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (this.#c.publicUrl !== undefined && origin === this.#c.publicUrl) return true;
    const host = req.headers.host;
    return host !== undefined && (origin === `https://${host}` || origin === `https://${host.replace(/:443$/, '')}`);
  }

  async #form(req: IncomingMessage): Promise<URLSearchParams | undefined> {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return undefined;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_FORM_BYTES) return undefined;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > MAX_FORM_BYTES) return undefined;
      chunks.push(c);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  async #login(req: IncomingMessage, res: ServerResponse, cookies: Map<string, string>, from: string, t0: number): Promise<void> {
    const form = await this.#form(req);
    const expected = cookies.get(LOGIN_COOKIE);
    const sent = form?.get('csrf') ?? '';
    const why = form === undefined ? 'not a form' : !this.#sameOrigin(req) ? 'cross-origin' : expected === undefined ? 'no login cookie' : !safeEqual(sent, expected) ? 'token mismatch' : undefined;
    if (why !== undefined || form === undefined) {
      this.#d.audit.write({ event: 'csrf', result: 'refused', from, status: 403, detail: `login: ${why}` }, t0);
      return this.#loginForm(res, 403, 'The form expired. Please sign in again.');
    }
    const user = (form.get('user') ?? '').trim().toLowerCase().slice(0, 64);
    const password = form.get('password') ?? '';
    const verdict = this.throttle.check(user, from, t0);
    if (verdict.locked) {
      this.#d.audit.write({ event: 'login', result: `delayed-${verdict.by}`, user, from, status: 429, detail: `retry after ${verdict.retryAfterMs} ms` }, t0);
      return this.#loginForm(res, 429, 'Too many failed sign-in attempts. Try again later.', '', { 'retry-after': String(Math.ceil(verdict.retryAfterMs / 1000)) });
    }
    const release = await this.#gate.enter();
    if (release === undefined) {
      res.setHeader('retry-after', '5');
      return this.#page(res, 503, messagePage('Busy', 'Please try again in a moment.'));
    }
    let ok = false;
    const record = this.#d.users().users[user];
    try {
      // Unknown users and over-long passwords cost one hash too, so timing says nothing about which exist.
      const valid = await verifyPassword(password.length <= 1024 ? password : '', record?.hash ?? this.#d.dummyHash);
      ok = valid && record !== undefined && password.length <= 1024;
    } finally {
      release();
    }
    const now = this.#now();
    if (!ok) {
      const d = this.throttle.fail(user, from, now);
      const delays = [d.pairDelayMs > 0 ? `account+source wait ${d.pairDelayMs} ms` : '', d.sourceDelayMs > 0 ? `source wait ${d.sourceDelayMs} ms` : ''].filter(Boolean).join(', ');
      this.#d.audit.write({ event: 'login', result: 'failed', user, from, status: 401, ...(delays !== '' ? { detail: delays } : {}) }, now);
      return this.#loginForm(res, 401, 'Wrong user name or password.', user);
    }
    this.throttle.succeed(user, from);
    const { id } = this.sessions.create(user, hashFingerprint(record!.hash), now);
    this.#d.audit.write({ event: 'login', result: 'ok', user, from, status: 303 }, now);
    this.#redirect(res, '/', { 'set-cookie': [cookie(SESSION_COOKIE, id), cookie(LOGIN_COOKIE, '', 0)] });
  }

  async #logout(req: IncomingMessage, res: ServerResponse, session: Session | undefined, cookies: Map<string, string>, from: string, t0: number): Promise<void> {
    const form = await this.#form(req);
    if (session === undefined) return this.#redirect(res, '/login', { 'set-cookie': cookie(SESSION_COOKIE, '', 0) });
    const why = form === undefined ? 'not a form' : !this.#sameOrigin(req) ? 'cross-origin' : !safeEqual(form.get('csrf') ?? '', session.csrf) ? 'token mismatch' : undefined;
    if (why !== undefined || form === undefined) {
      this.#d.audit.write({ event: 'csrf', result: 'refused', user: session.user, from, status: 403, detail: `logout: ${why}` }, t0);
      return this.#page(res, 403, messagePage('Not allowed', 'The form expired. Go back and try again.'));
    }
    this.sessions.destroy(cookies.get(SESSION_COOKIE));
    this.#d.audit.write({ event: 'logout', result: 'ok', user: session.user, from, status: 303 }, t0);
    this.#redirect(res, '/login', { 'set-cookie': cookie(SESSION_COOKIE, '', 0) });
  }

  // ---- the list ------------------------------------------------------------------

  async #list(res: ServerResponse, session: Session, from: string, t0: number): Promise<void> {
    const pubs = this.#d.publications().listFor(session.user, t0, this.#d.consumed()).slice(0, LIST_LIMIT);
    const files: ListedFile[] = new Array(pubs.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < pubs.length) {
        const i = next++;
        let size: number | undefined;
        try {
          size = (await this.#d.storage.stat(pubs[i].path))?.size;
        } catch {
          size = undefined;
        }
        files[i] = { publication: pubs[i], size };
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, pubs.length) }, worker));
    this.#d.audit.write({ event: 'list', result: 'ok', user: session.user, from, status: 200, detail: `${files.length} files` }, t0);
    this.#page(res, 200, listPage(session.user, session.csrf, files, t0));
  }

  // ---- downloads -----------------------------------------------------------------

  async #download(req: IncomingMessage, res: ServerResponse, id: string, session: Session, from: string, t0: number): Promise<void> {
    const p = ID_RE.test(id) ? this.#d.publications().byId.get(id) : undefined;
    if (p === undefined || !userMayRead(p, session.user, t0, this.#d.consumed())) {
      this.#d.audit.write({ event: 'download', result: 'not-found', user: session.user, publication: id.slice(0, 22), from, status: 404 }, t0);
      return this.#notFound(res, t0);
    }
    return this.#serve(req, res, p, 'download', session.user, from, t0);
  }

  async #publicDownload(req: IncomingMessage, res: ServerResponse, token: string, from: string, t0: number): Promise<void> {
    const locked = this.throttle.sourceLockedFor(from, t0);
    if (locked > 0) {
      this.#d.audit.write({ event: 'public-download', result: 'locked-source', from, status: 429 }, t0);
      res.setHeader('retry-after', String(Math.ceil(locked / 1000)));
      return this.#page(res, 429, messagePage('Too many requests', 'Try again later.'));
    }
    const p = TOKEN_RE.test(token) ? this.#d.publications().byTokenHash.get(tokenHash(token)) : undefined;
    if (p === undefined || inactiveReason(p, t0, this.#d.consumed()) !== undefined) {
      // A wrong token counts as a failed attempt of the source: guessing is throttled like passwords.
      if (p === undefined) this.throttle.failSource(from, t0);
      this.#d.audit.write({ event: 'public-download', result: 'not-found', publication: p?.id ?? null, from, status: 404 }, t0);
      return this.#notFound(res, t0);
    }
    return this.#serve(req, res, p, 'public-download', null, from, t0);
  }

  async #serve(req: IncomingMessage, res: ServerResponse, p: Publication, event: 'download' | 'public-download', user: string | null, from: string, t0: number): Promise<void> {
    const base = { event, user, publication: p.id, path: p.path, from } as const;
    let info: FileInfo | undefined;
    try {
      info = await this.#d.storage.stat(p.path);
    } catch (e) {
      this.#d.audit.write({ ...base, result: 'storage-unavailable', status: 503 }, t0);
      throw e;
    }
    if (info === undefined) {
      this.#d.audit.write({ ...base, result: 'not-in-storage', status: 404 }, t0);
      return this.#notFound(res, t0);
    }
    const etag = makeEtag(p.id, info.validator, info.size);
    const lastModified = info.mtime?.toUTCString();
    const headers: Record<string, string | number> = {
      etag,
      'content-type': contentType(p.name),
      'content-disposition': contentDisposition(p.name),
      'content-security-policy': DOWNLOAD_CSP,
      'cache-control': 'private, no-cache',
      ...(lastModified !== undefined ? { 'last-modified': lastModified } : {}),
      ...(p.once ? {} : { 'accept-ranges': 'bytes' }),
    };
    if (noneMatch(req.headers['if-none-match'], etag)) {
      this.#d.audit.write({ ...base, result: 'not-modified', status: 304, bytes: 0 }, t0);
      res.writeHead(304, { etag, 'cache-control': 'private, no-cache' });
      res.end();
      return;
    }
    // A once-publication is served whole (no ranges).
    const ifRange = req.headers['if-range'];
    const range = p.once || !ifRangeAllows(typeof ifRange === 'string' ? ifRange : undefined, etag, lastModified) ? { kind: 'none' as const } : parseRange(req.headers.range, info.size);
    if (range.kind === 'unsatisfiable') {
      this.#d.audit.write({ ...base, result: 'range-not-satisfiable', status: 416, range: req.headers.range ?? null }, t0);
      res.writeHead(416, { 'content-range': `bytes */${info.size}`, 'content-length': 0, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const r = range.kind === 'range' ? { start: range.start, end: range.end } : undefined;
    const length = r === undefined ? info.size : r.end - r.start + 1;
    const status = r === undefined ? 200 : 206;
    if (r !== undefined) headers['content-range'] = `bytes ${r.start}-${r.end}/${info.size}`;
    headers['content-length'] = length;
    if (req.method === 'HEAD') {
      this.#d.audit.write({ ...base, result: 'head', status, bytes: 0 }, t0);
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const stream = info.size === 0 ? undefined : await this.#d.storage.open(p.path, info, r);
    if (stream === undefined && info.size !== 0) {
      this.#d.audit.write({ ...base, result: 'changed-in-storage', status: 404 }, t0);
      return this.#notFound(res, t0);
    }
    // A once-publication is used up when its download starts, not when it
    // ends (a client that breaks off cannot repeat it). Claimed synchronously,
    // between the check and the first byte, so of two concurrent requests
    // exactly one gets it.
    if (p.once && !this.#d.claimOnce(p.id)) {
      stream?.destroy();
      this.#d.audit.write({ ...base, result: 'consumed', status: 404 }, t0);
      return this.#notFound(res, t0);
    }
    res.writeHead(status, headers);
    let bytes = 0;
    if (stream === undefined) {
      res.end();
    } else {
      stream.on('data', (c: Buffer) => { bytes += c.length; });
      try {
        await pipeline(stream, res);
      } catch (e) {
        this.#d.audit.write({ ...base, result: 'aborted', status, bytes, range: r === undefined ? null : `${r.start}-${r.end}`, detail: (e as NodeJS.ErrnoException).code ?? 'error' }, this.#now());
        return;
      }
    }
    this.#d.audit.write({ ...base, result: 'ok', status, bytes, range: r === undefined ? null : `${r.start}-${r.end}` }, this.#now());
  }
}
