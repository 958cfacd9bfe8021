// A small HTTP/1.x parser over reassembled TCP streams: enough to recognise
// HTTP on any port, split requests and responses (Content-Length and chunked
// bodies), give rules the http.* buffers, and log Suricata-style "http"
// records. Bounded: headers up to 16 KiB, bodies inspected up to 64 KiB each.
const MAX_HEADER = 16 * 1024;
const MAX_BODY = 64 * 1024;
const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'PATCH', 'PROPFIND', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PROPPATCH', 'SEARCH', 'SUBSCRIBE', 'NOTIFY'];

const enc = new TextEncoder();
const latin1 = new TextDecoder('latin1');

export interface HttpTx {
  id: number;
  method: string;
  uri: string;
  protocol: string;
  reqHeaders: [string, string][];
  reqHeaderRaw: string;
  reqBody: number[];
  reqDone: boolean;
  status: number;
  statMsg: string;
  respProtocol: string;
  respHeaders: [string, string][];
  respHeaderRaw: string;
  respBody: number[];
  respLen: number;
  respDone: boolean;
  logged: boolean;
}

interface Side {
  buf: number[];
  state: 'headers' | 'body-len' | 'body-chunked' | 'body-close' | 'done' | 'error';
  remaining: number;
  chunkState: 'size' | 'data' | 'data-crlf' | 'trailer';
}

function newSide(): Side {
  return { buf: [], state: 'headers', remaining: 0, chunkState: 'size' };
}

export class HttpState {
  txs: HttpTx[] = [];
  #nextId = 0;
  #req = newSide();
  #resp = newSide();
  #respTx = 0;

  /** Does this look like the start of an HTTP request? */
  static detect(b: Uint8Array, off: number, len: number): boolean {
    const head = latin1.decode(b.subarray(off, off + Math.min(len, 10)));
    return METHODS.some((m) => head.startsWith(`${m} `));
  }

  /** Feed to-server bytes; returns transactions whose request part just completed. */
  toServer(b: Uint8Array, off: number, len: number): HttpTx[] {
    const done: HttpTx[] = [];
    const s = this.#req;
    for (let i = 0; i < len; i++) s.buf.push(b[off + i]);
    for (let guard = 0; guard < 64 && s.buf.length > 0 && s.state !== 'error'; guard++) {
      if (s.state === 'headers' || s.state === 'done') {
        const lines = takeHead(s);
        if (lines === undefined) break;
        const m = /^(\S+)\s+(\S+)(?:\s+(HTTP\/\d\.\d))?/.exec(lines[0]);
        if (m === null) {
          s.state = 'error';
          break;
        }
        const tx: HttpTx = {
          id: this.#nextId++, method: m[1], uri: m[2], protocol: m[3] ?? '', reqHeaders: parseHeaders(lines), reqHeaderRaw: headerRaw(lines),
          reqBody: [], reqDone: false, status: 0, statMsg: '', respProtocol: '', respHeaders: [], respHeaderRaw: '', respBody: [],
          respLen: 0, respDone: false, logged: false,
        };
        this.txs.push(tx);
        bodyMode(s, tx.reqHeaders, false);
        if (s.state === 'done') {
          tx.reqDone = true;
          done.push(tx);
        }
        continue;
      }
      const tx = this.txs[this.txs.length - 1];
      if (this.#body(s, tx.reqBody)) {
        tx.reqDone = true;
        done.push(tx);
      } else break;
    }
    return done;
  }

  /** Feed to-client bytes; returns transactions whose response just completed. */
  toClient(b: Uint8Array, off: number, len: number): HttpTx[] {
    const done: HttpTx[] = [];
    const s = this.#resp;
    for (let i = 0; i < len; i++) s.buf.push(b[off + i]);
    for (let guard = 0; guard < 64 && s.buf.length > 0 && s.state !== 'error'; guard++) {
      if (s.state === 'headers' || s.state === 'done') {
        const lines = takeHead(s);
        if (lines === undefined) break;
        const m = /^(HTTP\/\d\.\d)\s+(\d{3})\s*(.*)$/.exec(lines[0]);
        const tx = this.txs[this.#respTx];
        if (m === null || tx === undefined) {
          s.state = 'error';
          break;
        }
        tx.respProtocol = m[1];
        tx.status = Number(m[2]);
        tx.statMsg = m[3];
        tx.respHeaders = parseHeaders(lines);
        tx.respHeaderRaw = headerRaw(lines);
        bodyMode(s, tx.respHeaders, true);
        if (s.state === 'done') {
          tx.respDone = true;
          this.#respTx++;
          done.push(tx);
        }
        continue;
      }
      const tx = this.txs[this.#respTx];
      if (tx === undefined) break;
      const before = tx.respBody.length;
      const fin = this.#body(s, tx.respBody);
      tx.respLen += tx.respBody.length - before;
      if (fin) {
        tx.respDone = true;
        this.#respTx++;
        done.push(tx);
      } else break;
    }
    return done;
  }

  /** Consume body bytes from s.buf into `into`; true when the body is complete. */
  #body(s: Side, into: number[]): boolean {
    if (s.state === 'body-len') {
      const n = Math.min(s.remaining, s.buf.length);
      const part = s.buf.splice(0, n);
      for (const x of part) if (into.length < MAX_BODY) into.push(x);
      s.remaining -= n;
      if (s.remaining === 0) {
        s.state = 'done';
        return true;
      }
      return false;
    }
    if (s.state === 'body-close') {
      const part = s.buf.splice(0, s.buf.length);
      for (const x of part) if (into.length < MAX_BODY) into.push(x);
      return false;
    }
    if (s.state === 'body-chunked') {
      for (let guard = 0; guard < 4096; guard++) {
        if (s.chunkState === 'size') {
          const nl = s.buf.indexOf(10);
          if (nl < 0) return false;
          const line = latin1.decode(Uint8Array.from(s.buf.splice(0, nl + 1))).trim();
          const size = parseInt(line.split(';')[0], 16);
          if (Number.isNaN(size)) {
            s.state = 'error';
            return true;
          }
          if (size === 0) s.chunkState = 'trailer';
          else {
            s.remaining = size;
            s.chunkState = 'data';
          }
        } else if (s.chunkState === 'data') {
          if (s.buf.length === 0) return false;
          const n = Math.min(s.remaining, s.buf.length);
          const part = s.buf.splice(0, n);
          for (const x of part) if (into.length < MAX_BODY) into.push(x);
          s.remaining -= n;
          if (s.remaining > 0) return false;
          s.chunkState = 'data-crlf';
        } else if (s.chunkState === 'data-crlf') {
          const nl = s.buf.indexOf(10);
          if (nl < 0) return false;
          s.buf.splice(0, nl + 1);
          s.chunkState = 'size';
        } else {
          const nl = s.buf.indexOf(10);
          if (nl < 0) return false;
          const line = s.buf.splice(0, nl + 1);
          if (line.length <= 2) {
            s.state = 'done';
            s.chunkState = 'size';
            return true;
          }
        }
      }
      return false;
    }
    return true;
  }

  /** The flow ends: bodies running until close are complete. Returns transactions not yet logged. */
  close(): HttpTx[] {
    return this.txs.filter((t) => !t.logged);
  }
}

/**
 * The header block at the front of a side's buffer, removed from it and split
 * into lines; undefined while it is incomplete (past MAX_HEADER the side goes
 * into the error state).
 */
function takeHead(s: ReturnType<typeof newSide>): string[] | undefined {
  const end = headerEnd(s.buf);
  if (end < 0) {
    if (s.buf.length > MAX_HEADER) s.state = 'error';
    return undefined;
  }
  const head = latin1.decode(Uint8Array.from(s.buf.slice(0, end)));
  s.buf.splice(0, end);
  return head.split(/\r?\n/);
}

function headerEnd(buf: number[]): number {
  for (let i = 0; i + 1 < buf.length && i < MAX_HEADER + 4; i++) {
    if (buf[i] === 10 && buf[i + 1] === 10) return i + 2;
    if (buf[i] === 10 && buf[i + 1] === 13 && buf[i + 2] === 10) return i + 3;
  }
  return -1;
}

function parseHeaders(lines: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const l of lines.slice(1)) {
    if (l === '') continue;
    const c = l.indexOf(':');
    if (c <= 0) continue;
    out.push([l.slice(0, c).trim(), l.slice(c + 1).trim()]);
  }
  return out;
}

function headerRaw(lines: string[]): string {
  return lines.slice(1).filter((l) => l !== '').map((l) => `${l}\r\n`).join('');
}

function header(h: [string, string][], name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of h) if (k.toLowerCase() === n) return v;
  return undefined;
}

function bodyMode(s: Side, h: [string, string][], response: boolean): void {
  const te = header(h, 'transfer-encoding');
  const cl = header(h, 'content-length');
  if (te !== undefined && te.toLowerCase().includes('chunked')) {
    s.state = 'body-chunked';
    s.chunkState = 'size';
  } else if (cl !== undefined && /^\d+$/.test(cl)) {
    s.remaining = Number(cl);
    s.state = s.remaining === 0 ? 'done' : 'body-len';
  } else s.state = response ? 'body-close' : 'done';
}

/** The http.* buffers of a transaction (request side, and response side once present). */
export function httpBuffers(tx: HttpTx): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined) m.set(k, Uint8Array.from(v, (c) => c.charCodeAt(0) & 0xff));
  };
  put('http.method', tx.method);
  put('http.uri', normalizeUri(tx.uri));
  put('http.uri.raw', tx.uri);
  put('http.protocol', tx.protocol);
  put('http.request_line', `${tx.method} ${tx.uri}${tx.protocol ? ` ${tx.protocol}` : ''}`);
  put('http.header', tx.reqHeaders.map(([k, v]) => `${k}: ${v}\r\n`).join(''));
  put('http.header.raw', tx.reqHeaderRaw);
  put('http.header_names', `\r\n${tx.reqHeaders.map(([k]) => `${k}\r\n`).join('')}\r\n`);
  put('http.host', header(tx.reqHeaders, 'host')?.toLowerCase().replace(/:\d+$/, ''));
  put('http.host.raw', header(tx.reqHeaders, 'host'));
  put('http.user_agent', header(tx.reqHeaders, 'user-agent'));
  put('http.cookie', header(tx.reqHeaders, 'cookie'));
  put('http.referer', header(tx.reqHeaders, 'referer'));
  put('http.accept', header(tx.reqHeaders, 'accept'));
  put('http.accept_lang', header(tx.reqHeaders, 'accept-language'));
  put('http.accept_enc', header(tx.reqHeaders, 'accept-encoding'));
  put('http.connection', header(tx.reqHeaders, 'connection'));
  put('http.content_type', header(tx.reqHeaders, 'content-type'));
  put('http.content_len', header(tx.reqHeaders, 'content-length'));
  put('http.start', `${tx.method} ${tx.uri} ${tx.protocol}\r\n${tx.reqHeaderRaw}\r\n`);
  if (tx.reqBody.length > 0) m.set('http.request_body', Uint8Array.from(tx.reqBody));
  if (tx.status > 0) {
    put('http.stat_code', String(tx.status));
    put('http.stat_msg', tx.statMsg);
    put('http.response_line', `${tx.respProtocol} ${tx.status} ${tx.statMsg}`);
    put('http.server', header(tx.respHeaders, 'server'));
    put('http.location', header(tx.respHeaders, 'location'));
    const ct = header(tx.respHeaders, 'content-type');
    if (ct !== undefined) put('http.content_type', ct);
    if (tx.respBody.length > 0) {
      const body = Uint8Array.from(tx.respBody);
      m.set('http.response_body', body);
      m.set('file.data', body);
    }
  }
  void enc;
  return m;
}

/** http.request_header / http.response_header: every header line as "Name: value" (multi-buffers). */
export function httpMulti(tx: HttpTx): Map<string, Uint8Array[]> {
  const line = ([k, v]: [string, string]): Uint8Array => Uint8Array.from(`${k}: ${v}`, (c) => c.charCodeAt(0) & 0xff);
  const m = new Map<string, Uint8Array[]>();
  m.set('http.request_header', tx.reqHeaders.map(line));
  if (tx.status > 0) m.set('http.response_header', tx.respHeaders.map(line));
  return m;
}

/** Percent-decoding of unreserved characters and "/./" "//" collapsing (a subset of libhtp's). */
function normalizeUri(u: string): string {
  let s = u.replace(/%([0-9a-fA-F]{2})/g, (all, h: string) => {
    const c = parseInt(h, 16);
    return /[A-Za-z0-9\-._~]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : all;
  });
  s = s.replace(/\/\.\//g, '/');
  return s;
}

/** The EVE "http" object of a transaction. */
export function httpEve(tx: HttpTx): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const host = header(tx.reqHeaders, 'host');
  if (host !== undefined) o.hostname = host.replace(/:\d+$/, '');
  o.url = tx.uri;
  const ua = header(tx.reqHeaders, 'user-agent');
  if (ua !== undefined) o.http_user_agent = ua;
  const ct = header(tx.respHeaders, 'content-type');
  if (ct !== undefined) o.http_content_type = ct;
  o.http_method = tx.method;
  o.protocol = tx.protocol;
  if (tx.status > 0) o.status = tx.status;
  o.length = tx.respLen;
  return o;
}
