// The WebDAV backend: reads files from a network drive over HTTP(S) with
// HEAD (size, validator) and GET with Range and If-Match (the bytes of exactly
// the version that HEAD saw), streaming the body. Over https the server's
// certificate must chain to the configured CA and name the server. The
// storage account should be read-only (the lab's NAS gives it GET, HEAD,
// PROPFIND and OPTIONS only); paths are percent-encoded segment by segment.
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { WebdavStorageConfig } from './config.ts';
import { shareUrl } from './paths.ts';
import { StorageUnavailable, type FileInfo, type Storage } from './storage.ts';

const TIMEOUT_MS = 15_000;

export class WebdavStorage implements Storage {
  #base: string;
  #https: boolean;
  #agent: HttpAgent | HttpsAgent;
  #auth: string | undefined;

  constructor(cfg: WebdavStorageConfig) {
    this.#base = cfg.url;
    this.#https = cfg.url.startsWith('https:');
    const common = { keepAlive: true, maxSockets: cfg.maxConnections, maxFreeSockets: cfg.maxConnections, timeout: TIMEOUT_MS };
    this.#agent = this.#https
      ? new HttpsAgent({ ...common, ...(cfg.ca !== undefined ? { ca: readFileSync(cfg.ca) } : {}), minVersion: 'TLSv1.2' })
      : new HttpAgent(common);
    if (cfg.user !== undefined && cfg.passwordFile !== undefined) {
      const pw = readFileSync(cfg.passwordFile, 'utf8').split('\n')[0].replace(/\r$/, '');
      this.#auth = `Basic ${Buffer.from(`${cfg.user}:${pw}`).toString('base64')}`;
    }
  }

  #request(method: 'HEAD' | 'GET', path: string, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    const url = new URL(shareUrl(this.#base, path));
    const h: OutgoingHttpHeaders = { ...headers, 'user-agent': 'microgate-file-gateway' };
    if (this.#auth !== undefined) h.authorization = this.#auth;
    return new Promise((resolve, reject) => {
      const req = (this.#https ? httpsRequest : httpRequest)(url, { method, headers: h, agent: this.#agent }, resolve);
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new StorageUnavailable(`storage: no answer within ${TIMEOUT_MS} ms`)));
      req.on('error', (e) => reject(e instanceof StorageUnavailable ? e : new StorageUnavailable(`storage: ${e.message}`)));
      req.end();
    });
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const res = await this.#request('HEAD', path, {});
    res.resume();
    if (res.statusCode === 200) {
      const size = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(size) || size < 0) throw new StorageUnavailable('storage: HEAD without a Content-Length');
      const lm = res.headers['last-modified'];
      const mtime = lm === undefined ? undefined : new Date(lm);
      const etag = res.headers.etag;
      return { size, mtime: mtime !== undefined && !Number.isNaN(mtime.getTime()) ? mtime : undefined, validator: etag ?? `${size}:${lm ?? ''}` };
    }
    if ((res.statusCode ?? 500) >= 500 || res.statusCode === 401) throw new StorageUnavailable(`storage: HEAD answered ${res.statusCode}`);
    // 404, 403 (e.g. a symlink with disable_symlinks), 301 (a folder), ...: nothing to serve.
    return undefined;
  }

  async open(path: string, info: FileInfo, range?: { start: number; end: number }): Promise<Readable | undefined> {
    const headers: OutgoingHttpHeaders = {};
    if (info.validator.startsWith('"')) headers['if-match'] = info.validator;
    if (range !== undefined) headers.range = `bytes=${range.start}-${range.end}`;
    const res = await this.#request('GET', path, headers);
    const want = range === undefined ? info.size : range.end - range.start + 1;
    const okStatus = range === undefined ? res.statusCode === 200 : res.statusCode === 206 && res.headers['content-range'] === `bytes ${range.start}-${range.end}/${info.size}`;
    if (!okStatus || Number(res.headers['content-length']) !== want) {
      res.resume();
      if ((res.statusCode ?? 500) >= 500) throw new StorageUnavailable(`storage: GET answered ${res.statusCode}`);
      return undefined; // 412 (changed since HEAD), 404 (gone), an unexpected range: not this version any more
    }
    return res;
  }

  close(): void {
    this.#agent.destroy();
  }
}
