// The file gateway's config file (YAML): where it listens, its certificate,
// its storage, where its data (users, publications) and its own state live,
// and its limits. Defaults are stated once, in DEFAULTS, and documented in
// README.md. Relative paths are resolved against the config file's folder.
// Errors name the file, the line, the path and what was expected.
import { dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { got, NON_EMPTY, readConfigText, type Path, type Reader } from '../../config/reader.ts';
import { parseYaml } from '../../config/yaml.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface WebdavStorageConfig {
  kind: 'webdav';
  /** The share's base URL, ending in '/': http(s)://HOST[:PORT]/PATH/ */
  url: string;
  /** PEM file of the certificate(s) the storage server's certificate must chain to (https). */
  ca: string | undefined;
  user: string | undefined;
  /** File holding the storage account's password (first line). */
  passwordFile: string | undefined;
  /** Parallel connections to the storage server (default 16). */
  maxConnections: number;
}

export interface DirectoryStorageConfig {
  kind: 'directory';
  /** The share's root folder (a share mounted on the host). */
  root: string;
}

export type StorageConfig = WebdavStorageConfig | DirectoryStorageConfig;

export interface FileGatewayConfig {
  file: string;
  listen: ListenAddress;
  /** Plain-HTTP listener that only redirects to HTTPS (optional). */
  redirectListen: ListenAddress | undefined;
  /** The public origin redirects point to (e.g. https://files.example.org); default: the request's Host. */
  publicUrl: string | undefined;
  tls: { cert: string; key: string };
  storage: StorageConfig;
  /** users.json and publications.json: written by `microgate users|publish` (root), only read by the service. */
  dataDir: string;
  /** audit.jsonl and consumed.json: the only place the service writes. */
  stateDir: string;
  session: { idleMs: number; maxMs: number; maxSessions: number };
  /** Failed logins: per (account, source) and per source, growing delays (rate-limit.ts). */
  login: {
    freeFailures: number;
    sourceFailures: number;
    delayMs: number;
    maxDelayMs: number;
    windowMs: number;
    maxTracked: number;
    maxPerSource: number;
    concurrentChecks: number;
  };
  limits: {
    headerBytes: number;
    requestsPerSecond: number;
    burst: number;
    connectionsPerSource: number;
    /** Every "not found" answer of /f/ and /p/ takes at least this long, so timing says nothing. */
    notFoundMs: number;
  };
  /** How often the data files are checked for changes (ms). */
  reloadMs: number;
}

export const DEFAULTS = {
  idleMinutes: 30,
  maxHours: 12,
  maxSessions: 10_000,
  freeFailures: 3,
  sourceFailures: 20,
  delaySeconds: 1,
  maxDelaySeconds: 900,
  windowMinutes: 60,
  maxTracked: 100_000,
  maxPerSource: 100,
  concurrentChecks: 2,
  headerBytes: 8192,
  requestsPerSecond: 20,
  burst: 100,
  connectionsPerSource: 32,
  notFoundMs: 100,
  reloadMs: 500,
  maxConnections: 16,
} as const;

/** A path from the config, relative ones against the config file's folder. */
function filePath(r: Reader, v: unknown, path: Path): string {
  const s = r.str(v, path, NON_EMPTY, 'a file path');
  return isAbsolute(s) ? s : resolve(dirname(resolve(r.file)), s);
}

/** ADDRESS:PORT with an IP address ([v6] or v4) and a port (0: any free one). */
function listenAddress(r: Reader, v: unknown, path: Path): ListenAddress {
  const s = r.str(v, path, NON_EMPTY, 'ADDRESS:PORT, e.g. 0.0.0.0:8443');
  const m = /^(.+):(\d{1,5})$/.exec(s);
  const port = m === null ? NaN : Number(m[2]);
  const host = m === null ? '' : m[1].replace(/^\[(.*)\]$/, '$1');
  if (m === null || isIP(host) === 0 || port > 65535) r.fail(path, `expected ADDRESS:PORT with an IP address and a port from 0 (any free one) to 65535${got(v)}`);
  return { host, port };
}

export function loadFileGatewayConfig(file: string): FileGatewayConfig {
  return parseFileGatewayConfig(readConfigText(file), file);
}

const TOP = ['listen', 'redirect-listen', 'public-url', 'tls', 'storage', 'data-dir', 'state-dir', 'session', 'login', 'limits', 'reload-ms'] as const;

export function parseFileGatewayConfig(text: string, file: string): FileGatewayConfig {
  const doc = parseYaml(text, file);
  const r: Reader = doc.r;
  const root = r.obj(doc.value, [], TOP);

  const tls = r.obj(root.tls, ['tls'], ['cert', 'key']);
  const storage = parseStorage(r, root.storage);
  let publicUrl: string | undefined;
  if (root['public-url'] !== undefined) {
    const s = r.str(root['public-url'], ['public-url'], /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, 'an origin like https://files.example.org (no path)');
    publicUrl = s;
  }
  const sess = root.session === undefined ? {} : r.obj(root.session, ['session'], ['idle-minutes', 'max-hours', 'max-sessions']);
  const LOGIN_KEYS = ['free-failures', 'source-failures', 'delay-seconds', 'max-delay-seconds', 'window-minutes', 'max-tracked', 'max-per-source', 'concurrent-checks'];
  for (const old of ['account-failures', 'lockout-minutes']) {
    if (root.login !== null && typeof root.login === 'object' && old in root.login) {
      r.fail(['login', old], `no longer exists: failed logins are counted per (account, source) with growing delays, so nobody can lock an account out; expected ${LOGIN_KEYS.join(', ')}`);
    }
  }
  const login = root.login === undefined ? {} : r.obj(root.login, ['login'], LOGIN_KEYS);
  const lim = root.limits === undefined ? {} : r.obj(root.limits, ['limits'], ['header-bytes', 'requests-per-second', 'burst', 'connections-per-source', 'not-found-ms']);
  const MIN = 60_000;
  const cfg: FileGatewayConfig = {
    file,
    listen: listenAddress(r, root.listen, ['listen']),
    redirectListen: root['redirect-listen'] === undefined ? undefined : listenAddress(r, root['redirect-listen'], ['redirect-listen']),
    publicUrl,
    tls: { cert: filePath(r, tls.cert, ['tls', 'cert']), key: filePath(r, tls.key, ['tls', 'key']) },
    storage,
    dataDir: filePath(r, root['data-dir'], ['data-dir']),
    stateDir: filePath(r, root['state-dir'], ['state-dir']),
    session: {
      idleMs: r.int(sess['idle-minutes'], ['session', 'idle-minutes'], 1, 24 * 60, DEFAULTS.idleMinutes) * MIN,
      maxMs: r.int(sess['max-hours'], ['session', 'max-hours'], 1, 24 * 30, DEFAULTS.maxHours) * 60 * MIN,
      maxSessions: r.int(sess['max-sessions'], ['session', 'max-sessions'], 1, 1_000_000, DEFAULTS.maxSessions),
    },
    login: {
      freeFailures: r.int(login['free-failures'], ['login', 'free-failures'], 0, 1000, DEFAULTS.freeFailures),
      sourceFailures: r.int(login['source-failures'], ['login', 'source-failures'], 1, 100_000, DEFAULTS.sourceFailures),
      delayMs: r.int(login['delay-seconds'], ['login', 'delay-seconds'], 1, 3600, DEFAULTS.delaySeconds) * 1000,
      maxDelayMs: r.int(login['max-delay-seconds'], ['login', 'max-delay-seconds'], 1, 24 * 3600, DEFAULTS.maxDelaySeconds) * 1000,
      windowMs: r.int(login['window-minutes'], ['login', 'window-minutes'], 1, 7 * 24 * 60, DEFAULTS.windowMinutes) * MIN,
      maxTracked: r.int(login['max-tracked'], ['login', 'max-tracked'], 100, 10_000_000, DEFAULTS.maxTracked),
      maxPerSource: r.int(login['max-per-source'], ['login', 'max-per-source'], 1, 10_000, DEFAULTS.maxPerSource),
      concurrentChecks: r.int(login['concurrent-checks'], ['login', 'concurrent-checks'], 1, 64, DEFAULTS.concurrentChecks),
    },
    limits: {
      headerBytes: r.int(lim['header-bytes'], ['limits', 'header-bytes'], 1024, 65536, DEFAULTS.headerBytes),
      requestsPerSecond: r.int(lim['requests-per-second'], ['limits', 'requests-per-second'], 1, 100_000, DEFAULTS.requestsPerSecond),
      burst: r.int(lim.burst, ['limits', 'burst'], 1, 100_000, DEFAULTS.burst),
      connectionsPerSource: r.int(lim['connections-per-source'], ['limits', 'connections-per-source'], 1, 100_000, DEFAULTS.connectionsPerSource),
      notFoundMs: r.int(lim['not-found-ms'], ['limits', 'not-found-ms'], 0, 10_000, DEFAULTS.notFoundMs),
    },
    reloadMs: r.int(root['reload-ms'], ['reload-ms'], 50, 60_000, DEFAULTS.reloadMs),
  };
  // A delay must end before its entry may be forgotten.
  if (cfg.login.windowMs < cfg.login.maxDelayMs) r.fail(['login', 'window-minutes'], `expected at least max-delay-seconds (${cfg.login.maxDelayMs / 1000} s), so a delay ends before its failures are forgotten (got ${cfg.login.windowMs / MIN})`);
  if (cfg.login.delayMs > cfg.login.maxDelayMs) r.fail(['login', 'delay-seconds'], `expected at most max-delay-seconds (${cfg.login.maxDelayMs / 1000}) (got ${cfg.login.delayMs / 1000})`);
  return cfg;
}

function parseStorage(r: Reader, v: unknown): StorageConfig {
  const path = ['storage'];
  const kind = r.obj(v, path, ['kind', 'url', 'ca', 'user', 'password-file', 'max-connections', 'root']).kind;
  if (kind === 'directory') {
    const o = r.obj(v, path, ['kind', 'root']);
    return { kind, root: filePath(r, o.root, [...path, 'root']) };
  }
  if (kind !== 'webdav') r.fail([...path, 'kind'], `expected one of webdav, directory${got(kind)}`);
  const o = r.obj(v, path, ['kind', 'url', 'ca', 'user', 'password-file', 'max-connections']);
  const url = r.str(o.url, [...path, 'url'], /^https?:\/\/[^/?#\s]+\/([^?#\s]*\/)?$/, 'an http:// or https:// URL of the share ending in "/"');
  if ((o.user === undefined) !== (o['password-file'] === undefined)) {
    r.fail([...path, o.user === undefined ? 'user' : 'password-file'], 'expected user and password-file together (or neither)');
  }
  return {
    kind,
    url,
    ca: o.ca === undefined ? undefined : filePath(r, o.ca, [...path, 'ca']),
    user: o.user === undefined ? undefined : r.str(o.user, [...path, 'user'], /^[^:\s]{1,64}$/, 'a user name without ":" or spaces'),
    passwordFile: o['password-file'] === undefined ? undefined : filePath(r, o['password-file'], [...path, 'password-file']),
    maxConnections: r.int(o['max-connections'], [...path, 'max-connections'], 1, 256, DEFAULTS.maxConnections),
  };
}
