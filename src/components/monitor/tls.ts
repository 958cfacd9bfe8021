// TLS handshakes from the reassembled TCP stream: records are split and
// their handshake bytes joined per direction (a message may span records),
// then ClientHello (SNI, ALPN, version, JA3), ServerHello (version, ALPN,
// JA3S) and Certificate (every certificate's DER; the first one's subject,
// issuer, serial, validity, SHA-1 fingerprint and DNS names via
// node:crypto's X509Certificate). Bounded: at most MAX_HANDSHAKE bytes of
// handshake buffered per direction, MAX_CERTS certificates kept; once a
// side sends ChangeCipherSpec (or a 1.3 server's encrypted data starts) its
// handshake is no longer read. Malformed input makes a side give up and is
// counted (`malformed`); nothing here throws on any input.
import { Buffer } from 'node:buffer';
import { createHash, X509Certificate } from 'node:crypto';
import { UNLIMITED, type AppMemory } from './app-memory.ts';

export const MAX_HANDSHAKE = 128 * 1024;
export const MAX_CERTS = 16;
const MAX_LIST = 256;

const REC_CCS = 20;
const REC_ALERT = 21;
const REC_HANDSHAKE = 22;
const REC_APPDATA = 23;

export interface TlsCert {
  subject: string;
  issuer: string;
  serial: string;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  sans: string[];
}

/** Grease values (RFC 8701) are left out of JA3, as its definition says. */
const isGrease = (v: number): boolean => (v & 0x0f0f) === 0x0a0a && (v >> 8) === (v & 0xff);

export function tlsVersionName(v: number): string {
  switch (v) {
    case 0x0200: return 'SSLv2';
    case 0x0300: return 'SSLv3';
    case 0x0301: return 'TLSv1';
    case 0x0302: return 'TLS 1.1';
    case 0x0303: return 'TLS 1.2';
    case 0x0304: return 'TLS 1.3';
    default: return v === 0 ? 'UNDETERMINED' : `0x${v.toString(16).padStart(4, '0')}`;
  }
}

class Side {
  rec: Uint8Array = new Uint8Array(0);
  recLen = 0;
  hs: Uint8Array = new Uint8Array(0);
  hsLen = 0;
  failed = false;
  encrypted = false;
}

/** buf with b[off, off+n) appended at len (grown within the budget), or null when the budget has no room. */
function append(mem: AppMemory, buf: Uint8Array, len: number, b: Uint8Array, off: number, n: number): Uint8Array | null {
  if (buf.length >= len + n) {
    buf.set(b.subarray(off, off + n), len);
    return buf;
  }
  const size = Math.max(1024, (len + n) * 2);
  if (!mem.take(size - buf.length)) return null;
  const nb = new Uint8Array(size);
  nb.set(buf.subarray(0, len));
  nb.set(b.subarray(off, off + n), len);
  return nb;
}

class Malformed extends Error {}

/** A bounded big-endian reader over one handshake message. */
class Reader {
  readonly b: Uint8Array;
  pos: number;
  readonly end: number;
  constructor(b: Uint8Array, pos: number, end: number) {
    this.b = b;
    this.pos = pos;
    this.end = end;
  }
  need(n: number): void {
    if (this.pos + n > this.end) throw new Malformed('truncated');
  }
  u8(): number {
    this.need(1);
    return this.b[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = (this.b[this.pos] << 8) | this.b[this.pos + 1];
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const v = (this.b[this.pos] << 16) | (this.b[this.pos + 1] << 8) | this.b[this.pos + 2];
    this.pos += 3;
    return v;
  }
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.b, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  get left(): number {
    return this.end - this.pos;
  }
}

const latin1 = (b: Uint8Array, from: number, to: number): string => {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]);
  return s;
};

function alpnList(r: Reader, out: string[]): void {
  const list = r.sub(r.u16());
  while (list.left > 0) {
    const n = list.u8();
    list.need(n);
    if (out.length < MAX_LIST) out.push(latin1(list.b, list.pos, list.pos + n));
    list.pos += n;
  }
}

export class TlsState {
  readonly #sides = [new Side(), new Side()];
  readonly #mem: AppMemory;
  /** Bytes this session holds of the shared budget (buffers and certificates). */
  #held = 0;
  clientVersion = 0;
  serverVersion = 0;
  sni = '';
  clientAlpns: string[] = [];
  serverAlpns: string[] = [];
  ja3 = '';
  ja3Hash = '';
  ja3s = '';
  ja3sHash = '';
  /** Every certificate of the server's chain, DER. */
  certs: Uint8Array[] = [];
  cert: TlsCert | null = null;
  clientHello = false;
  serverHello = false;
  /** The server ended its handshake (ServerHelloDone, ChangeCipherSpec or encrypted data): time to log. */
  serverDone = false;
  logged = false;
  /** Something new was parsed since the rules last saw this state. */
  dirty = false;
  /** Packets of the flow when `dirty` was set (the engine's). */
  dirtyPkts = 0;
  /** Rules that alerted on this session (one alert per rule per session, as Suricata's one TLS transaction). */
  readonly alerted = new Set<number>();
  malformed = 0;
  /** Sides given up because the shared budget had no room. */
  memcap = 0;

  constructor(mem: AppMemory = UNLIMITED) {
    this.#mem = mem;
  }

  /** The session ends: its bytes go back to the budget. */
  release(): void {
    this.#mem.give(this.#held);
    this.#held = 0;
    for (const s of this.#sides) {
      s.rec = new Uint8Array(0);
      s.hs = new Uint8Array(0);
      s.recLen = 0;
      s.hsLen = 0;
    }
  }

  #grow(s: Side, which: 'rec' | 'hs', b: Uint8Array, off: number, n: number): boolean {
    const buf = which === 'rec' ? s.rec : s.hs;
    const len = which === 'rec' ? s.recLen : s.hsLen;
    const before = buf.length;
    const nb = append(this.#mem, buf, len, b, off, n);
    if (nb === null) {
      this.memcap++;
      return false;
    }
    this.#held += nb.length - before;
    if (which === 'rec') {
      s.rec = nb;
      s.recLen += n;
    } else {
      s.hs = nb;
      s.hsLen += n;
    }
    return true;
  }

  /** A TLS record header: handshake, then a known version. */
  static detect(b: Uint8Array, off: number, len: number): boolean {
    return len >= 3 && b[off] === REC_HANDSHAKE && b[off + 1] === 3 && b[off + 2] <= 4;
  }

  /** Feed stream bytes of one direction (0 to server, 1 to client); true when something new for the rules was parsed (a hello, the certificates). */
  feed(dir: 0 | 1, b: Uint8Array, off: number, len: number): boolean {
    const s = this.#sides[dir];
    // A side that is encrypted has nothing more for us: its packets cost one test.
    if (s.failed || s.encrypted || len <= 0) return false;
    if (s.recLen + len > MAX_HANDSHAKE + 5) return this.#fail(s);
    if (!this.#grow(s, 'rec', b, off, len)) return this.#fail(s, false);
    let p = 0;
    let changed = false;
    try {
      while (s.recLen - p >= 5) {
        const type = s.rec[p];
        const n = (s.rec[p + 3] << 8) | s.rec[p + 4];
        if (type < REC_CCS || type > REC_APPDATA || s.rec[p + 1] !== 3 || n > 16384 + 2048) return this.#fail(s);
        if (s.recLen - p - 5 < n) break;
        if (type === REC_CCS || type === REC_APPDATA) {
          // Nothing new for the rules: only time to log; the rest of this side is encrypted.
          s.encrypted = true;
          if (dir === 1) this.serverDone = true;
          break;
        } else if (type === REC_HANDSHAKE) {
          if (s.hsLen + n > MAX_HANDSHAKE) return this.#fail(s);
          if (!this.#grow(s, 'hs', s.rec, p + 5, n)) return this.#fail(s, false);
          if (this.#handshakes(dir, s)) changed = true;
        }
        // alerts (21) carry nothing the rules or logs read
        p += 5 + n;
      }
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      this.#fail(s);
      if (changed) this.dirty = true;
      return changed;
    }
    if (s.encrypted) {
      // Its buffers go back to the budget now, not at the flow's end.
      this.#fail(s, false);
      s.failed = false;
      if (changed) this.dirty = true;
      return changed;
    }
    if (p > 0) {
      s.rec.copyWithin(0, p, s.recLen);
      s.recLen -= p;
    }
    if (changed) this.dirty = true;
    return changed;
  }

  #fail(s: Side, malformed = true): false {
    s.failed = true;
    this.#mem.give(s.rec.length + s.hs.length);
    this.#held -= s.rec.length + s.hs.length;
    s.rec = new Uint8Array(0);
    s.recLen = 0;
    s.hs = new Uint8Array(0);
    s.hsLen = 0;
    if (malformed) this.malformed++;
    return false;
  }

  /** Whole handshake messages at the front of s.hs. */
  #handshakes(dir: 0 | 1, s: Side): boolean {
    let p = 0;
    let changed = false;
    while (s.hsLen - p >= 4) {
      const type = s.hs[p];
      const n = (s.hs[p + 1] << 16) | (s.hs[p + 2] << 8) | s.hs[p + 3];
      if (n > MAX_HANDSHAKE) throw new Malformed('handshake message too long');
      if (s.hsLen - p - 4 < n) break;
      const r = new Reader(s.hs, p + 4, p + 4 + n);
      if (type === 1 && dir === 0 && !this.clientHello) {
        this.#clientHello(r);
        changed = true;
      } else if (type === 2 && dir === 1 && !this.serverHello) {
        this.#serverHello(r);
        changed = true;
      } else if (type === 11 && dir === 1 && this.certs.length === 0) {
        this.#certificate(r);
        changed = true;
      } else if (type === 14 && dir === 1) this.serverDone = true;
      p += 4 + n;
    }
    if (p > 0) {
      s.hs.copyWithin(0, p, s.hsLen);
      s.hsLen -= p;
    }
    return changed;
  }

  #clientHello(r: Reader): void {
    this.clientHello = true;
    const version = r.u16();
    this.clientVersion = version;
    r.sub(32);
    r.sub(r.u8());
    const cs = r.sub(r.u16());
    const ciphers: number[] = [];
    while (cs.left >= 2) {
      const c = cs.u16();
      if (!isGrease(c) && ciphers.length < MAX_LIST) ciphers.push(c);
    }
    r.sub(r.u8());
    const exts: number[] = [];
    const groups: number[] = [];
    const formats: number[] = [];
    if (r.left >= 2) {
      const er = r.sub(r.u16());
      while (er.left >= 4) {
        const t = er.u16();
        const d = er.sub(er.u16());
        if (!isGrease(t) && exts.length < MAX_LIST) exts.push(t);
        if (t === 0) {
          const list = d.sub(d.u16());
          while (list.left >= 3) {
            const kind = list.u8();
            const n = list.u16();
            list.need(n);
            if (kind === 0 && this.sni === '') this.sni = latin1(list.b, list.pos, list.pos + n);
            list.pos += n;
          }
        } else if (t === 16) alpnList(d, this.clientAlpns);
        else if (t === 10) {
          const g = d.sub(d.u16());
          while (g.left >= 2) {
            const v = g.u16();
            if (!isGrease(v) && groups.length < MAX_LIST) groups.push(v);
          }
        } else if (t === 11) {
          const f = d.sub(d.u8());
          while (f.left >= 1) if (formats.length < MAX_LIST) formats.push(f.u8()); else f.u8();
        }
      }
    }
    this.ja3 = `${version},${ciphers.join('-')},${exts.join('-')},${groups.join('-')},${formats.join('-')}`;
    this.ja3Hash = createHash('md5').update(this.ja3).digest('hex');
  }

  #serverHello(r: Reader): void {
    this.serverHello = true;
    const legacy = r.u16();
    let version = legacy;
    r.sub(32);
    r.sub(r.u8());
    const cipher = r.u16();
    r.u8();
    const exts: number[] = [];
    if (r.left >= 2) {
      const er = r.sub(r.u16());
      while (er.left >= 4) {
        const t = er.u16();
        const d = er.sub(er.u16());
        if (exts.length < MAX_LIST) exts.push(t);
        if (t === 43 && d.left >= 2) version = d.u16();
        else if (t === 16) alpnList(d, this.serverAlpns);
      }
    }
    this.serverVersion = version;
    this.ja3s = `${legacy},${cipher},${exts.join('-')}`;
    this.ja3sHash = createHash('md5').update(this.ja3s).digest('hex');
  }

  #certificate(r: Reader): void {
    const list = r.sub(r.u24());
    while (list.left >= 3) {
      const n = list.u24();
      list.need(n);
      if (this.certs.length < MAX_CERTS && this.#mem.take(n)) {
        this.#held += n;
        this.certs.push(list.b.slice(list.pos, list.pos + n));
      }
      list.pos += n;
    }
    if (this.certs.length > 0) this.cert = describeCert(this.certs[0]);
  }

  /** The version Suricata reports: the server's choice, else the client's offer. */
  get version(): number {
    return this.serverVersion !== 0 ? this.serverVersion : this.clientVersion;
  }
}

function colonHex(hex: string, upper: boolean): string {
  const h = hex.length % 2 === 1 ? `0${hex}` : hex;
  const pairs = h.match(/../g) ?? [];
  const s = pairs.join(':');
  return upper ? s.toUpperCase() : s.toLowerCase();
}

function dateText(s: string): string {
  const t = Date.parse(s);
  return Number.isNaN(t) ? '' : new Date(t).toISOString().slice(0, 19);
}

/** The first certificate as Suricata logs it; null when the DER does not parse (counted by the caller via `cert === null`). */
export function describeCert(der: Uint8Array): TlsCert | null {
  let x: X509Certificate;
  try {
    x = new X509Certificate(der);
  } catch {
    return null;
  }
  const dn = (s: string): string => s.split('\n').filter((l) => l !== '').join(', ');
  const sans: string[] = [];
  for (const part of (x.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:') && sans.length < MAX_LIST) sans.push(part.slice(4));
  }
  return {
    subject: dn(x.subject),
    issuer: dn(x.issuer),
    serial: colonHex(x.serialNumber, true),
    fingerprint: x.fingerprint.toLowerCase(),
    notBefore: dateText(x.validFrom),
    notAfter: dateText(x.validTo),
    sans,
  };
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** The tls.* / ja3* single buffers. */
export function tlsBuffers(t: TlsState): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  if (t.sni !== '') m.set('tls.sni', bytes(t.sni));
  if (t.ja3 !== '') {
    m.set('ja3.string', bytes(t.ja3));
    m.set('ja3.hash', bytes(t.ja3Hash));
  }
  if (t.ja3s !== '') {
    m.set('ja3s.string', bytes(t.ja3s));
    m.set('ja3s.hash', bytes(t.ja3sHash));
  }
  const c = t.cert;
  if (c !== null) {
    m.set('tls.cert_subject', bytes(c.subject));
    m.set('tls.cert_issuer', bytes(c.issuer));
    m.set('tls.cert_serial', bytes(c.serial));
    m.set('tls.cert_fingerprint', bytes(c.fingerprint));
  }
  return m;
}

/** The tls.* multi-buffers: certificates (DER), subjectAltName DNS names, ALPNs (client's then server's). */
export function tlsMulti(t: TlsState): Map<string, Uint8Array[]> {
  const m = new Map<string, Uint8Array[]>();
  if (t.certs.length > 0) m.set('tls.certs', t.certs);
  if (t.cert !== null) m.set('tls.subjectaltname', t.cert.sans.map(bytes));
  const alpns = [...t.clientAlpns, ...t.serverAlpns];
  if (alpns.length > 0) m.set('tls.alpn', alpns.map(bytes));
  return m;
}

/** The EVE "tls" object, with Suricata's field names. */
export function tlsEve(t: TlsState): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const c = t.cert;
  if (c !== null) {
    o.subject = c.subject;
    o.issuerdn = c.issuer;
    o.serial = c.serial;
    o.fingerprint = c.fingerprint;
  }
  if (t.sni !== '') o.sni = t.sni;
  o.version = tlsVersionName(t.version);
  if (c !== null) {
    o.notbefore = c.notBefore;
    o.notafter = c.notAfter;
  }
  if (t.ja3 !== '') o.ja3 = { hash: t.ja3Hash, string: t.ja3 };
  if (t.ja3s !== '') o.ja3s = { hash: t.ja3sHash, string: t.ja3s };
  if (t.clientAlpns.length > 0) o.client_alpns = t.clientAlpns;
  if (t.serverAlpns.length > 0) o.server_alpns = t.serverAlpns;
  return o;
}
