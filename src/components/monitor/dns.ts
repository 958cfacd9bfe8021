// DNS messages (RFC 1035) over UDP, and over TCP with the 2-byte length
// prefix from the reassembled stream: enough for the dns.query buffer, the
// `dns` rule protocol and Suricata-style EVE "dns" records (format version 2).
// Bounded: names of at most 255 bytes and 127 labels, at most 16 compression
// pointers per name, each pointing strictly backwards (no loop can form), at
// most MAX_RECORDS records per section read. A malformed message returns
// null (the caller counts it); nothing here throws on any input.
import { UNLIMITED, type AppMemory } from './app-memory.ts';

export const MAX_NAME = 255;
export const MAX_LABELS = 127;
export const MAX_POINTERS = 16;
export const MAX_RECORDS = 64;
/** A DNS-over-TCP side buffers at most this much (one 64 KiB message and its prefix). */
export const MAX_TCP_BUFFER = 65537;

export interface DnsQuestion {
  /** Dotted, no trailing dot ("" for the root), label bytes as latin1 (one char per byte). */
  name: string;
  type: number;
}

export interface DnsAnswer {
  name: string;
  type: number;
  ttl: number;
  /** Formatted rdata (addresses, names, text) or "" when the type is not formatted. */
  data: string;
}

export interface DnsMessage {
  id: number;
  flags: number;
  qr: boolean;
  opcode: number;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsAnswer[];
  /** Authority records (SOA of an NXDOMAIN ...), formatted like answers. */
  authorities: DnsAnswer[];
}

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR',
  41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 52: 'TLSA', 64: 'SVCB', 65: 'HTTPS',
  99: 'SPF', 251: 'IXFR', 252: 'AXFR', 255: 'ANY', 257: 'CAA',
};

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];

export function dnsTypeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

export function dnsRcodeName(r: number): string {
  return RCODE_NAMES[r] ?? String(r);
}

class Malformed extends Error {}

/** Reads one (possibly compressed) name at `at`; returns its text and the offset after it. */
function readName(b: Uint8Array, start: number, end: number, at: number): { name: string; next: number } {
  let pos = at;
  let next = -1;
  let labels = 0;
  let pointers = 0;
  let total = 0;
  let name = '';
  // The lowest offset a pointer may target: strictly before the name part that holds it.
  let limit = at;
  for (;;) {
    if (pos >= end) throw new Malformed('name runs past the message');
    const len = b[pos];
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= end) throw new Malformed('truncated compression pointer');
      const target = start + (((len & 0x3f) << 8) | b[pos + 1]);
      if (++pointers > MAX_POINTERS) throw new Malformed('too many compression pointers');
      if (target >= limit) throw new Malformed('compression pointer does not point backwards');
      if (next < 0) next = pos + 2;
      limit = target;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new Malformed('reserved label type');
    if (pos + 1 + len > end) throw new Malformed('label runs past the message');
    if (++labels > MAX_LABELS) throw new Malformed('too many labels');
    total += len + 1;
    if (total > MAX_NAME) throw new Malformed('name longer than 255 bytes');
    if (name !== '') name += '.';
    for (let i = 0; i < len; i++) name += String.fromCharCode(b[pos + 1 + i]);
    pos += 1 + len;
  }
  return { name, next };
}

function ipv6Text(b: Uint8Array, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i] << 8) | b[o + i + 1]).toString(16).padStart(4, '0'));
  return parts.join(':');
}

function rdataText(b: Uint8Array, start: number, end: number, type: number, o: number, len: number): string {
  switch (type) {
    case 1: return len === 4 ? `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}` : '';
    case 28: return len === 16 ? ipv6Text(b, o) : '';
    case 2: case 5: case 12: return readName(b, start, end, o).name;
    case 15: return len > 2 ? readName(b, start, end, o + 2).name : '';
    case 16: {
      // Character strings, concatenated (Suricata logs the first; we keep them all, bounded by len).
      let s = '';
      let p = o;
      while (p < o + len) {
        const n = b[p];
        if (p + 1 + n > o + len) throw new Malformed('TXT string runs past its record');
        for (let i = 0; i < n; i++) s += String.fromCharCode(b[p + 1 + i]);
        p += 1 + n;
      }
      return s;
    }
    default: return '';
  }
}

function readRecords(b: Uint8Array, start: number, end: number, pos: number, count: number, out: DnsAnswer[]): number {
  for (let i = 0; i < count; i++) {
    const { name, next } = readName(b, start, end, pos);
    if (next + 10 > end) throw new Malformed('truncated resource record');
    const type = (b[next] << 8) | b[next + 1];
    const ttl = ((b[next + 4] << 24) | (b[next + 5] << 16) | (b[next + 6] << 8) | b[next + 7]) >>> 0;
    const rdlen = (b[next + 8] << 8) | b[next + 9];
    const rd = next + 10;
    if (rd + rdlen > end) throw new Malformed('rdata runs past the message');
    if (out.length < MAX_RECORDS) out.push({ name, type, ttl, data: rdataText(b, start, end, type, rd, rdlen) });
    pos = rd + rdlen;
  }
  return pos;
}

/**
 * Parses one DNS message at b[off, off+len); null when it is not a well-formed
 * DNS message (too short, counts past the data, bad names). Sections past
 * MAX_RECORDS records are read for their length but not kept.
 */
export function parseDns(b: Uint8Array, off: number, len: number): DnsMessage | null {
  if (len < 12 || off < 0 || off + len > b.length) return null;
  const end = off + len;
  const flags = (b[off + 2] << 8) | b[off + 3];
  const qd = (b[off + 4] << 8) | b[off + 5];
  const an = (b[off + 6] << 8) | b[off + 7];
  const ns = (b[off + 8] << 8) | b[off + 9];
  const ar = (b[off + 10] << 8) | b[off + 11];
  // Every question takes at least 5 bytes, every record 11: counts the data cannot hold are malformed.
  if (qd * 5 + (an + ns + ar) * 11 > len - 12) return null;
  const m: DnsMessage = {
    id: (b[off] << 8) | b[off + 1], flags, qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0xf, rcode: flags & 0xf,
    questions: [], answers: [], authorities: [],
  };
  try {
    let pos = off + 12;
    for (let i = 0; i < qd; i++) {
      const { name, next } = readName(b, off, end, pos);
      if (next + 4 > end) return null;
      if (m.questions.length < MAX_RECORDS) m.questions.push({ name, type: (b[next] << 8) | b[next + 1] });
      pos = next + 4;
    }
    pos = readRecords(b, off, end, pos, an, m.answers);
    readRecords(b, off, end, pos, ns, m.authorities);
    // Additional records (EDNS OPT ...) are not needed by rules or logs.
  } catch (e) {
    if (e instanceof Malformed) return null;
    throw e;
  }
  return m;
}

/** Suricata's "flags" field: the 16 header flag bits in hex. */
export function dnsFlagsHex(m: DnsMessage): string {
  return m.flags.toString(16).padStart(4, '0');
}

/**
 * DNS over TCP, one direction: bytes from the reassembled stream in, whole
 * messages (2-byte length prefix) out. A side that buffers more than
 * MAX_TCP_BUFFER bytes without a whole message is given up (returns false).
 */
export class DnsTcpSide {
  #buf = new Uint8Array(0);
  #len = 0;
  failed = false;
  readonly #mem: AppMemory;

  constructor(mem: AppMemory = UNLIMITED) {
    this.#mem = mem;
  }

  /** The flow ends: the buffer goes back to the budget. */
  release(): void {
    this.#mem.give(this.#buf.length);
    this.#buf = new Uint8Array(0);
    this.#len = 0;
  }

  /** Adds bytes; calls `each` with every whole message's bytes. */
  feed(b: Uint8Array, off: number, len: number, each: (msg: Uint8Array, off: number, len: number) => void): void {
    if (this.failed) return;
    if (this.#len + len > MAX_TCP_BUFFER) {
      this.failed = true;
      this.release();
      return;
    }
    if (this.#buf.length < this.#len + len) {
      const size = Math.min(MAX_TCP_BUFFER, Math.max(512, (this.#len + len) * 2));
      if (!this.#mem.take(size - this.#buf.length)) {
        this.failed = true;
        this.release();
        return;
      }
      const nb = new Uint8Array(size);
      nb.set(this.#buf.subarray(0, this.#len));
      this.#buf = nb;
    }
    this.#buf.set(b.subarray(off, off + len), this.#len);
    this.#len += len;
    let p = 0;
    while (this.#len - p >= 2) {
      const n = (this.#buf[p] << 8) | this.#buf[p + 1];
      if (this.#len - p - 2 < n) break;
      each(this.#buf, p + 2, n);
      p += 2 + n;
    }
    if (p > 0) {
      this.#buf.copyWithin(0, p, this.#len);
      this.#len -= p;
    }
  }
}
