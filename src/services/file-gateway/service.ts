// The running service: the HTTPS listener (and optionally a plain-HTTP one
// that only redirects to HTTPS), its limits (header size, timeouts,
// connections and requests per source), the data files it re-reads when
// they change, and its state (consumed.json, audit.jsonl).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { AUDIT_FILE, AuditLog } from './audit.ts';
import type { FileGatewayConfig, ListenAddress } from './config.ts';
import { hashPassword } from './kdf.ts';
import { ReloadingJson, writeJsonAtomic } from './json-file.ts';
import {
  EMPTY_CONSUMED, EMPTY_PUBLICATIONS, PublicationIndex, parseConsumedFile, parsePublicationsFile,
  type ConsumedFile, type PublicationsFile,
} from './publications.ts';
import { FileGateway } from './server.ts';
import { openStorage } from './open-storage.ts';
import type { Storage } from './storage.ts';
import { EMPTY_USERS, parseUsersFile, type UsersFile } from './users.ts';

/**
 * TLS 1.3, and TLS 1.2 only with ECDHE key exchange and AEAD ciphers (GCM,
 * ChaCha20-Poly1305): no CBC, no SHA-1 MACs, no static RSA key exchange.
 * Stated explicitly rather than left to OpenSSL's and Node's defaults.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: [
    'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
    'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  ].join(':'),
  honorCipherOrder: true,
} as const;

export const USERS_FILE = 'users.json';
export const PUBLICATIONS_FILE = 'publications.json';
export const CONSUMED_FILE = 'consumed.json';
export { AUDIT_FILE } from './audit.ts';

export interface RunningService {
  gateway: FileGateway;
  /** Where the HTTPS listener is bound (port 0 in the config picks a free one). */
  address: ListenAddress;
  redirectAddress: ListenAddress | undefined;
  close(): Promise<void>;
}

export interface ServiceOptions {
  log?: (msg: string) => void;
  /** Override the storage (tests). */
  storage?: Storage;
  /** A precomputed hash for unknown users (tests use cheap parameters). */
  dummyHash?: string;
}

/** A raw answer for requests the HTTP parser rejects: no body, no server name. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Refuse more than `limit` concurrent connections from one address. */
function limitConnections(server: HttpServer | HttpsServer, limit: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const a = (socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
    const n = (open.get(a) ?? 0) + 1;
    if (n > limit) {
      socket.destroy();
      return;
    }
    open.set(a, n);
    socket.once('close', () => {
      const left = (open.get(a) ?? 1) - 1;
      if (left <= 0) open.delete(a);
      else open.set(a, left);
    });
  });
}

function listen(server: HttpServer | HttpsServer, at: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : at);
    });
  });
}

/** The plain-HTTP side: every request is redirected to the same path over HTTPS (public-url, else the Host asked for). */
export function redirectHandler(cfg: FileGatewayConfig): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = /^\/[A-Za-z0-9/_.~-]{0,512}$/.test(req.url ?? '') && !(req.url ?? '').includes('//') ? req.url! : '/';
    let origin = cfg.publicUrl;
    if (origin === undefined) {
      const host = req.headers.host ?? '';
      const m = /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/.exec(host);
      if (m === null) {
        res.writeHead(400, { 'content-length': 0, connection: 'close' });
        res.end();
        return;
      }
      origin = `https://${m[1]}`;
    }
    res.writeHead(301, { location: `${origin}${path}`, 'content-length': 0, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
    res.end();
  };
}

export async function startService(cfg: FileGatewayConfig, opts: ServiceOptions = {}): Promise<RunningService> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  const onError = (m: string): void => log(`file-gateway: ${m}`);
  const users = new ReloadingJson<UsersFile>(join(cfg.dataDir, USERS_FILE), parseUsersFile, EMPTY_USERS, { onError });
  let index = new PublicationIndex(EMPTY_PUBLICATIONS);
  const pubs = new ReloadingJson<PublicationsFile>(join(cfg.dataDir, PUBLICATIONS_FILE), parsePublicationsFile, EMPTY_PUBLICATIONS, {
    onError,
    onChange: (v) => { index = new PublicationIndex(v); },
  });
  const consumedFile = join(cfg.stateDir, CONSUMED_FILE);
  const consumedReader = new ReloadingJson<ConsumedFile>(consumedFile, parseConsumedFile, EMPTY_CONSUMED, { onError });
  let consumed: ConsumedFile = { version: 1, consumed: { ...consumedReader.value.consumed } };
  const storage = opts.storage ?? await openStorage(cfg.storage);
  const audit = new AuditLog({ file: join(cfg.stateDir, AUDIT_FILE) });
  const dummyHash = opts.dummyHash ?? await hashPassword(randomBytes(16).toString('base64'));

  const gateway = new FileGateway({
    config: cfg,
    storage,
    users: () => users.value,
    publications: () => index,
    consumed: () => consumed,
    claimOnce: (id) => {
      // Synchronous from the check to the mark: no other request runs in between.
      if (consumed.consumed[id] !== undefined) return false;
      consumed = { version: 1, consumed: { ...consumed.consumed, [id]: new Date().toISOString() } };
      try {
        writeJsonAtomic(consumedFile, consumed, { mode: 0o600 });
      } catch (e) {
        // Still consumed in memory; a restart would forget it, so say so.
        log(`file-gateway: cannot record a consumed publication: ${(e as Error).message}`);
      }
      return true;
    },
    audit,
    dummyHash,
    log,
  });

  const poll = setInterval(() => {
    if (users.check()) gateway.prune();
    pubs.check();
  }, cfg.reloadMs);
  poll.unref();
  const prune = setInterval(() => gateway.prune(), 60_000);
  prune.unref();

  const limits = {
    maxHeaderSize: cfg.limits.headerBytes,
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
  };
  const https = createHttpsServer({
    ...limits,
    key: readFileSync(cfg.tls.key),
    cert: readFileSync(cfg.tls.cert),
    ...TLS_POLICY,
  }, (req, res) => gateway.handle(req, res));
  https.setTimeout(120_000);
  https.on('clientError', clientError);
  https.on('tlsClientError', () => { /* handshake failures: nothing to answer */ });
  limitConnections(https, cfg.limits.connectionsPerSource);

  let http: HttpServer | undefined;
  const servers: (HttpServer | HttpsServer)[] = [https];
  try {
    const address = await listen(https, cfg.listen);
    let redirectAddress: ListenAddress | undefined;
    if (cfg.redirectListen !== undefined) {
      http = createHttpServer(limits, redirectHandler(cfg));
      http.setTimeout(30_000);
      http.on('clientError', clientError);
      limitConnections(http, cfg.limits.connectionsPerSource);
      servers.push(http);
      redirectAddress = await listen(http, cfg.redirectListen);
    }
    return {
      gateway,
      address,
      redirectAddress,
      close: async () => {
        clearInterval(poll);
        clearInterval(prune);
        await Promise.all(servers.map((s) => new Promise<void>((r) => {
          s.close(() => r());
          s.closeAllConnections();
        })));
        storage.close();
        await audit.close();
      },
    };
  } catch (e) {
    clearInterval(poll);
    clearInterval(prune);
    for (const s of servers) s.close();
    storage.close();
    await audit.close();
    throw e;
  }
}
