// Suricata / Snort rule parser. A rule file is read line by line (a trailing
// "\" continues a line, "#" starts a comment); each rule becomes a Rule or a
// RuleError naming the file, line, sid and the exact reason it was not
// loaded. Nothing throws past loadRules.
import { EV, eventId } from '../events.ts';
import type { ClassType } from './classification.ts';
import { fastEnd } from './fast-bound.ts';
import { parsePcre, PcreError } from './pcre.ts';
import type {
  ByteExtractItem, ByteJumpItem, ByteTestItem, ContentItem, FlagsOpts, FlowbitOp, FlowOpts, Item, NumMatch, Rule,
  ThresholdOpts,
} from './rule.ts';
import {
  IPOPT_ANY, IPOPT_CIPSO, IPOPT_EOL, IPOPT_ESEC, IPOPT_LSRR, IPOPT_NOP, IPOPT_QS, IPOPT_RR, IPOPT_RTRALT,
  IPOPT_SATID, IPOPT_SEC, IPOPT_SSRR, IPOPT_TS,
} from '../packet.ts';
import { parseAddr, parsePort, SpecError } from './vars.ts';

export interface RuleError {
  file: string;
  line: number;
  sid: number | null;
  reason: string;
  text: string;
}

export interface RuleSource {
  name: string;
  text: string;
}

export interface LoadOptions {
  vars: Record<string, string>;
  classifications: Map<string, ClassType>;
  /** The Suricata version whose behaviour we follow, for `requires:` (default 8.0.0). */
  version?: [number, number, number];
  /**
   * Flowbit names of the rule set this one replaces (its flowbitNames): they
   * keep their ids, so the bits flows already carry mean the same names.
   */
  flowbits?: readonly string[];
}

export interface LoadResult {
  rules: Rule[];
  errors: RuleError[];
  /** Rules whose `requires:` is not met (not errors: Suricata skips them too). */
  skipped: RuleError[];
  /** Flowbit names by id. */
  flowbitNames: string[];
  /** Total rule lines seen (loaded + failed + skipped). */
  total: number;
}

class RuleParseError extends Error {}
class RuleSkip extends Error {}

function fail(msg: string): never {
  throw new RuleParseError(msg);
}

/** Buffers the engine provides (sticky buffer names). */
export const SUPPORTED_BUFFERS = new Set([
  'payload', 'tcp.hdr', 'udp.hdr', 'ipv4.hdr', 'ipv6.hdr', 'icmpv4.hdr', 'icmpv6.hdr',
  'http.uri', 'http.uri.raw', 'http.method', 'http.protocol', 'http.request_line', 'http.header', 'http.header.raw',
  'http.header_names', 'http.host', 'http.host.raw', 'http.user_agent', 'http.cookie', 'http.referer', 'http.accept',
  'http.accept_lang', 'http.accept_enc', 'http.content_type', 'http.content_len', 'http.connection', 'http.start',
  'http.request_body', 'http.response_body', 'http.stat_code', 'http.stat_msg', 'http.response_line', 'http.server',
  'http.location', 'file.data', 'http.request_header', 'http.response_header',
  'dns.query',
  'tls.sni', 'tls.cert_subject', 'tls.cert_issuer', 'tls.cert_serial', 'tls.cert_fingerprint', 'tls.certs',
  'tls.subjectaltname', 'tls.alpn', 'ja3.hash', 'ja3.string', 'ja3s.hash', 'ja3s.string',
]);

/**
 * Multi-buffers: a transaction has several of each (every question name,
 * every certificate, every ALPN, every header line); a rule's list matches
 * when it matches one of them.
 */
export const MULTI_BUFFERS = new Set([
  'dns.query', 'tls.certs', 'tls.subjectaltname', 'tls.alpn', 'http.request_header', 'http.response_header',
]);

/** Transforms (applied to a sticky buffer before its items, in rule order). */
export const TRANSFORMS = new Set([
  'dotprefix', 'to_lowercase', 'to_uppercase', 'strip_whitespace', 'compress_whitespace', 'to_md5', 'to_sha1',
  'to_sha256', 'url_decode',
]);

/** The application protocol a buffer belongs to. */
function appOfBuffer(b: string): string {
  if (b.startsWith('http.') || b === 'file.data') return 'http';
  if (b.startsWith('dns.')) return 'dns';
  if (b.startsWith('tls.') || b.startsWith('ja3')) return 'tls';
  return '';
}

/** Sticky-buffer keywords and their buffer (aliases Suricata accepts). */
const STICKY: Record<string, string> = {
  pkt_data: 'payload', 'tcp.hdr': 'tcp.hdr', 'udp.hdr': 'udp.hdr', 'ipv4.hdr': 'ipv4.hdr', 'ipv6.hdr': 'ipv6.hdr',
  'icmpv4.hdr': 'icmpv4.hdr', 'icmpv6.hdr': 'icmpv6.hdr',
  'http.uri': 'http.uri', http_uri: 'http.uri', 'http.uri.raw': 'http.uri.raw', 'http.method': 'http.method',
  'http.protocol': 'http.protocol', 'http.request_line': 'http.request_line', 'http.header': 'http.header',
  'http.header.raw': 'http.header.raw', 'http.header_names': 'http.header_names', 'http.host': 'http.host',
  'http.host.raw': 'http.host.raw', 'http.user_agent': 'http.user_agent', 'http.cookie': 'http.cookie',
  'http.referer': 'http.referer', 'http.accept': 'http.accept', 'http.accept_lang': 'http.accept_lang',
  'http.accept_enc': 'http.accept_enc', 'http.content_type': 'http.content_type', 'http.content_len': 'http.content_len',
  'http.connection': 'http.connection', 'http.start': 'http.start', 'http.request_body': 'http.request_body',
  'http.client_body': 'http.request_body', 'http.response_body': 'http.response_body', 'http.server_body': 'http.response_body',
  'http.stat_code': 'http.stat_code', 'http.stat_msg': 'http.stat_msg', 'http.response_line': 'http.response_line',
  'http.server': 'http.server', 'http.location': 'http.location', file_data: 'file.data', 'file.data': 'file.data',
  'http.request_header': 'http.request_header', 'http.response_header': 'http.response_header',
  'dns.query': 'dns.query', dns_query: 'dns.query',
  'tls.sni': 'tls.sni', tls_sni: 'tls.sni', 'tls.cert_subject': 'tls.cert_subject', tls_cert_subject: 'tls.cert_subject',
  'tls.cert_issuer': 'tls.cert_issuer', tls_cert_issuer: 'tls.cert_issuer', 'tls.cert_serial': 'tls.cert_serial',
  tls_cert_serial: 'tls.cert_serial', 'tls.cert_fingerprint': 'tls.cert_fingerprint', tls_cert_fingerprint: 'tls.cert_fingerprint',
  'tls.certs': 'tls.certs', 'tls.subjectaltname': 'tls.subjectaltname', 'tls.alpn': 'tls.alpn',
  'ja3.hash': 'ja3.hash', ja3_hash: 'ja3.hash', 'ja3.string': 'ja3.string', ja3_string: 'ja3.string',
  'ja3s.hash': 'ja3s.hash', 'ja3s.string': 'ja3s.string',
};

/** Old-style content modifiers that move the last content to a buffer. */
const CONTENT_BUFFER_MODIFIERS: Record<string, string> = {
  http_uri: 'http.uri', http_raw_uri: 'http.uri.raw', http_method: 'http.method', http_header: 'http.header',
  http_raw_header: 'http.header.raw', http_cookie: 'http.cookie', http_user_agent: 'http.user_agent',
  http_host: 'http.host', http_raw_host: 'http.host.raw', http_client_body: 'http.request_body',
  http_server_body: 'http.response_body', http_stat_code: 'http.stat_code', http_stat_msg: 'http.stat_msg',
  http_header_names: 'http.header_names', http_content_type: 'http.content_type', http_referer: 'http.referer',
  http_accept: 'http.accept', http_connection: 'http.connection', http_protocol: 'http.protocol',
  http_start: 'http.start', http_request_line: 'http.request_line', http_response_line: 'http.response_line',
};

const ACTIONS = new Set(['alert', 'pass', 'drop', 'reject', 'rejectsrc', 'rejectdst', 'rejectboth', 'log', 'accept', 'config']);

const PROTOS: Record<string, { ip: number; app: string; tcpMode: '' | 'pkt' | 'stream' }> = {
  ip: { ip: -1, app: '', tcpMode: '' },
  ipv4: { ip: -1, app: '', tcpMode: '' },
  ipv6: { ip: -1, app: '', tcpMode: '' },
  pkthdr: { ip: -2, app: '', tcpMode: '' },
  tcp: { ip: 6, app: '', tcpMode: '' },
  'tcp-pkt': { ip: 6, app: '', tcpMode: 'pkt' },
  'tcp-stream': { ip: 6, app: '', tcpMode: 'stream' },
  udp: { ip: 17, app: '', tcpMode: '' },
  icmp: { ip: 1, app: '', tcpMode: '' },
  icmpv4: { ip: 1, app: '', tcpMode: '' },
  icmpv6: { ip: 58, app: '', tcpMode: '' },
  'ipv6-icmp': { ip: 58, app: '', tcpMode: '' },
  http: { ip: 6, app: 'http', tcpMode: '' },
  http1: { ip: 6, app: 'http', tcpMode: '' },
  tls: { ip: 6, app: 'tls', tcpMode: '' },
  dns: { ip: -1, app: 'dns', tcpMode: '' },
};

// ---- tokenising ----------------------------------------------------------------

/** Split the option body at ";" outside quotes (a "\;" or a quoted ";" stays). */
function splitOptions(body: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === '\\' && i + 1 < body.length) {
      cur += ch + body[i + 1];
      i++;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      if (cur.trim() !== '') out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (quoted) fail('unterminated quoted string in the options');
  if (cur.trim() !== '') fail(`option "${cur.trim().slice(0, 40)}" is not terminated by ";"`);
  return out;
}

/**
 * A value that has a quoted string must be exactly one: "..." (after an
 * optional "!"), with every quote inside escaped. A missing ";" between two
 * options leaves two quoted strings in one value (msg:"a" content:"b"),
 * which Suricata rejects; so do we, instead of loading a rule that means
 * something else.
 */
function checkQuotes(key: string, value: string): void {
  const v = value.trim();
  let first = -1;
  let last = -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '\\') {
      i++;
      continue;
    }
    if (v[i] === '"') {
      if (first < 0) first = i;
      last = i;
      n++;
    }
  }
  if (n === 0) return;
  const lead = v.startsWith('!') ? 1 : 0;
  const start = v.slice(lead).trimStart();
  if (n !== 2 || !start.startsWith('"') || last !== v.length - 1) {
    fail(`${key}: expected one quoted string${n > 2 ? ` (found ${n} unescaped quotes: a ";" missing before the next option?)` : last !== v.length - 1 ? ` (text after the closing quote: "${v.slice(last + 1, last + 31).trim()}"; a ";" missing?)` : ''}`);
  }
}

/** Unquote "..." and resolve \" \\ \; escapes. */
function unquote(v: string, what: string): string {
  let s = v.trim();
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) fail(`${what}: unterminated quoted string`);
    s = s.slice(1, -1);
  }
  return s.replace(/\\(["\\;:])/g, '$1');
}

/** Content bytes from Snort syntax: text with |hex| blocks. */
function contentBytes(raw: string): Uint8Array {
  const out: number[] = [];
  let hexMode = false;
  let hexBuf = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '|') {
      if (hexMode) {
        const h = hexBuf.replace(/\s+/g, '');
        if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) fail(`content: bad hex block |${hexBuf}|`);
        for (let k = 0; k < h.length; k += 2) out.push(parseInt(h.slice(k, k + 2), 16));
        hexBuf = '';
      }
      hexMode = !hexMode;
      continue;
    }
    if (hexMode) {
      hexBuf += ch;
      continue;
    }
    if (ch === '\\' && i + 1 < raw.length) {
      const nx = raw[i + 1];
      if (nx === '"' || nx === '\\' || nx === ';' || nx === ':' || nx === '|') {
        out.push(nx.charCodeAt(0));
        i++;
        continue;
      }
    }
    const code = ch.charCodeAt(0);
    if (code > 255) fail('content: characters beyond latin1 must be written as |hex|');
    out.push(code);
  }
  if (hexMode) fail('content: unterminated |hex| block');
  if (out.length === 0) fail('content: empty pattern');
  return Uint8Array.from(out);
}

function lower(b: Uint8Array): Uint8Array {
  const o = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) o[i] = b[i] >= 65 && b[i] <= 90 ? b[i] + 32 : b[i];
  return o;
}

function parseIntStrict(v: string, what: string, min = -Infinity, max = Infinity): number {
  const s = v.trim();
  let n: number;
  if (/^-?\d+$/.test(s)) n = Number(s);
  else if (/^0x[0-9a-fA-F]+$/.test(s)) n = parseInt(s, 16);
  else fail(`${what}: expected a number, got "${s}"`);
  if (n < min || n > max) fail(`${what}: ${n} is out of range ${min}..${max}`);
  return n;
}

/** Suricata's uint matching syntax. */
export function parseNum(v: string, what: string, max = 0xffffffff): NumMatch {
  const s = v.replace(/\s+/g, '');
  let m: RegExpExecArray | null;
  if ((m = /^(\d+)(?:<>|-)(\d+)$/.exec(s)) !== null) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    if (a >= b) fail(`${what}: range ${a}<>${b} is empty`);
    return { op: 'range', a, b };
  }
  if ((m = /^(<=|>=|<|>|!=|!|=)?(\d+|0x[0-9a-fA-F]+)$/.exec(s)) !== null) {
    const a = m[2].startsWith('0x') ? parseInt(m[2], 16) : Number(m[2]);
    if (a > max) fail(`${what}: ${a} is larger than ${max}`);
    const op = m[1] === '<' ? 'lt' : m[1] === '>' ? 'gt' : m[1] === '<=' ? 'le' : m[1] === '>=' ? 'ge'
      : m[1] === '!' || m[1] === '!=' ? 'ne' : 'eq';
    return { op, a, b: 0 };
  }
  fail(`${what}: expected N, <N, >N, <=N, >=N, !N or N<>M, got "${v.trim()}"`);
}

// ---- options -------------------------------------------------------------------------

const FLAG_BITS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, C: 0x80, E: 0x40, '1': 0x80, '2': 0x40 };

function parseFlags(v: string): FlagsOpts {
  const [main, ignoreText] = v.split(',').map((x) => x.trim());
  let mode: FlagsOpts['mode'] = 'exact';
  let want = 0;
  let s = main;
  if (s === '0') return { want: 0, ignore: 0, mode: 'none' };
  for (const ch of s) {
    if (ch === '+') mode = 'plus';
    else if (ch === '*') mode = 'any';
    else if (ch === '!') mode = 'not';
    else if (FLAG_BITS[ch.toUpperCase()] !== undefined) want |= FLAG_BITS[ch.toUpperCase()];
    else if (ch === '0') continue;
    else fail(`flags: unknown flag "${ch}" (expected F S R P A U C E 0 and + * !)`);
  }
  s = '';
  let ignore = 0;
  if (ignoreText !== undefined) {
    for (const ch of ignoreText) {
      const bit = FLAG_BITS[ch.toUpperCase()];
      if (bit === undefined) fail(`flags: unknown flag "${ch}" in the mask`);
      ignore |= bit;
    }
  }
  return { want, ignore, mode };
}

function parseFragbits(v: string): FlagsOpts {
  let mode: FlagsOpts['mode'] = 'exact';
  let want = 0;
  for (const ch of v.trim()) {
    if (ch === '+') mode = 'plus';
    else if (ch === '*') mode = 'any';
    else if (ch === '!') mode = 'not';
    else if (ch === 'M') want |= 1;
    else if (ch === 'D') want |= 2;
    else if (ch === 'R') want |= 4;
    else fail(`fragbits: unknown bit "${ch}" (expected M D R and + * !)`);
  }
  return { want, ignore: 0, mode };
}

const IPOPTS: Record<string, number> = {
  rr: IPOPT_RR, eol: IPOPT_EOL, nop: IPOPT_NOP, ts: IPOPT_TS, sec: IPOPT_SEC, esec: IPOPT_ESEC, lsrr: IPOPT_LSRR,
  lsrre: IPOPT_LSRR, ssrr: IPOPT_SSRR, satid: IPOPT_SATID, cipso: IPOPT_CIPSO, qs: IPOPT_QS, rtralt: IPOPT_RTRALT,
  any: IPOPT_ANY,
};

function parseFlow(v: string): FlowOpts {
  const f: FlowOpts = {
    toServer: false, toClient: false, established: false, notEstablished: false, stateless: false,
    onlyStream: false, noStream: false, onlyFrag: false, noFrag: false,
  };
  for (const part of v.split(',').map((x) => x.trim().toLowerCase())) {
    switch (part) {
      case 'to_server': case 'from_client': f.toServer = true; break;
      case 'to_client': case 'from_server': f.toClient = true; break;
      case 'established': f.established = true; break;
      case 'not_established': f.notEstablished = true; break;
      case 'stateless': f.stateless = true; break;
      case 'only_stream': f.onlyStream = true; break;
      case 'no_stream': f.noStream = true; break;
      case 'only_frag': f.onlyFrag = true; break;
      case 'no_frag': f.noFrag = true; break;
      default: fail(`flow: unknown option "${part}"`);
    }
  }
  if (f.toServer && f.toClient) fail('flow: to_server and to_client together never match');
  if (f.established && f.notEstablished) fail('flow: established and not_established together never match');
  return f;
}

function parseThreshold(v: string, df: boolean): ThresholdOpts {
  const kv = new Map<string, string>();
  for (const part of v.split(',')) {
    const m = /^\s*(\w+)\s+(\S+)\s*$/.exec(part);
    if (m === null) fail(`${df ? 'detection_filter' : 'threshold'}: expected "key value" pairs, got "${part.trim()}"`);
    kv.set(m[1], m[2]);
  }
  const what = df ? 'detection_filter' : 'threshold';
  const type = df ? 'detection_filter' : kv.get('type');
  if (type !== 'limit' && type !== 'threshold' && type !== 'both' && type !== 'detection_filter') {
    fail(`${what}: type must be limit, threshold or both (got ${type ?? 'none'})`);
  }
  const track = kv.get('track');
  if (track !== 'by_src' && track !== 'by_dst' && track !== 'by_rule' && track !== 'by_both' && track !== 'by_flow') {
    fail(`${what}: track must be by_src, by_dst, by_rule, by_both or by_flow (got ${track ?? 'none'})`);
  }
  const count = parseIntStrict(kv.get('count') ?? '', `${what} count`, 1, 1e9);
  const seconds = parseIntStrict(kv.get('seconds') ?? '', `${what} seconds`, 0, 1e9);
  for (const k of kv.keys()) if (!['type', 'track', 'count', 'seconds'].includes(k)) fail(`${what}: unknown key "${k}"`);
  return { type, track, count, seconds };
}

function parseByteNumber(tok: string, what: string, vars: Map<string, number>): { value: number; name: string } {
  const t = tok.trim();
  if (/^-?\d+$/.test(t) || /^0x[0-9a-fA-F]+$/i.test(t)) return { value: parseIntStrict(t, what), name: '' };
  if (vars.has(t)) return { value: 0, name: t };
  fail(`${what}: "${t}" is neither a number nor a byte_extract variable`);
}

function byteOptions(opts: string[], what: string): { relative: boolean; little: boolean; base: number; rest: string[]; bitmask: number } {
  let relative = false;
  let little = false;
  let base = 0;
  let bitmask = 0;
  const rest: string[] = [];
  for (const o of opts) {
    const t = o.trim();
    if (t === 'relative') relative = true;
    else if (t === 'little') little = true;
    else if (t === 'big') little = false;
    else if (t === 'string') base = base || 10;
    else if (t === 'dec') base = 10;
    else if (t === 'hex') base = 16;
    else if (t === 'oct') base = 8;
    else if (t.startsWith('bitmask')) bitmask = parseIntStrict(t.slice(7), `${what} bitmask`, 1, 0xffffffff);
    else if (t === 'dce') fail(`${what}: the dce option needs DCE/RPC decoding (not supported)`);
    else rest.push(t);
  }
  if (base !== 0 && !opts.some((o) => o.trim() === 'string')) fail(`${what}: hex/dec/oct need "string"`);
  return { relative, little, base, rest, bitmask };
}

interface State {
  rule: Rule;
  buffer: string;
  list: Item[];
  last: ContentItem | null;
  lastAny: Item | null;
  vars: Map<string, number>;
}

function listFor(st: State, buffer: string): Item[] {
  if (!SUPPORTED_BUFFERS.has(buffer)) fail(`buffer ${buffer} is not supported`);
  let l = st.rule.buffers.get(buffer);
  if (l === undefined) {
    l = [];
    st.rule.buffers.set(buffer, l);
  }
  return l;
}

function needContent(st: State, kw: string): ContentItem {
  if (st.last === null) fail(`${kw} needs a preceding content`);
  return st.last;
}

function applyOption(st: State, key: string, value: string | undefined, ctx: { bits: Map<string, number>; opts: LoadOptions }): void {
  const r = st.rule;
  const v = value ?? '';
  const need = (): string => {
    if (value === undefined || value.trim() === '') fail(`${key} needs a value`);
    return value;
  };
  const sticky = STICKY[key];
  if (sticky !== undefined && value === undefined) {
    st.buffer = sticky;
    st.list = listFor(st, sticky);
    st.last = null;
    st.lastAny = null;
    return;
  }
  if (TRANSFORMS.has(key)) {
    if (value !== undefined) fail(`${key} takes no value`);
    if (st.buffer === 'payload') fail(`transform ${key} needs a sticky buffer before it`);
    if (st.list.length > 0) fail(`transform ${key} must follow its sticky buffer ${st.buffer}, before its content`);
    const t = r.transforms.get(st.buffer) ?? [];
    t.push(key);
    r.transforms.set(st.buffer, t);
    return;
  }
  const moveTo = CONTENT_BUFFER_MODIFIERS[key];
  if (moveTo !== undefined) {
    const c = needContent(st, key);
    const from = st.list;
    const idx = from.lastIndexOf(c);
    if (idx >= 0) from.splice(idx, 1);
    listFor(st, moveTo).push(c);
    return;
  }
  switch (key) {
    case 'msg': r.msg = unquote(need(), 'msg'); return;
    case 'sid': r.sid = parseIntStrict(need(), 'sid', 1, 0xffffffff); return;
    case 'rev': r.rev = parseIntStrict(need(), 'rev', 0, 0xffffffff); return;
    case 'gid': r.gid = parseIntStrict(need(), 'gid', 0, 0xffffffff); return;
    case 'classtype': {
      const name = need().trim();
      const ct = ctx.opts.classifications.get(name);
      if (ct === undefined) fail(`classtype "${name}" is not in the classification table`);
      r.classtype = name;
      if (r.priority === 0) r.priority = -ct.priority; // negative: from the classtype, a priority keyword overrides
      return;
    }
    case 'priority': r.priority = parseIntStrict(need(), 'priority', 1, 255); return;
    case 'reference': case 'rawbytes': case 'prefilter': case 'tag': case 'noalert_drop': return;
    case 'metadata': {
      for (const part of need().split(',')) {
        const t = part.trim();
        if (t === '') continue;
        const sp = t.indexOf(' ');
        const k = sp < 0 ? t : t.slice(0, sp);
        const val = sp < 0 ? '' : t.slice(sp + 1).trim();
        (r.metadata[k] ??= []).push(val);
      }
      return;
    }
    case 'target': {
      const t = need().trim();
      if (t !== 'src_ip' && t !== 'dest_ip') fail('target must be src_ip or dest_ip');
      r.target = t;
      return;
    }
    case 'requires': {
      const ver = ctx.opts.version ?? [8, 0, 0];
      for (const part of need().split(',')) {
        const m = /^\s*version\s*(>=|<=|<|>|=)?\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(part);
        if (m !== null) {
          const want = [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)];
          const cmp = ver[0] - want[0] || ver[1] - want[1] || ver[2] - want[2];
          const op = m[1] ?? '>=';
          const ok = op === '>=' ? cmp >= 0 : op === '>' ? cmp > 0 : op === '<' ? cmp < 0 : op === '<=' ? cmp <= 0 : cmp === 0;
          if (!ok) throw new RuleSkip(`requires version ${op} ${want.join('.')} (we follow Suricata ${ver.join('.')})`);
          continue;
        }
        const f = /^\s*feature\s+(\S+)\s*$/.exec(part);
        if (f !== null) throw new RuleSkip(`requires feature ${f[1]}`);
        fail(`requires: cannot read "${part.trim()}"`);
      }
      return;
    }
    // ---- payload ----
    case 'content': {
      let t = need().trim();
      let neg = false;
      if (t.startsWith('!')) {
        neg = true;
        t = t.slice(1).trim();
      }
      if (!t.startsWith('"') || !t.endsWith('"') || t.length < 2) fail('content must be a quoted string');
      const bytes = contentBytes(t.slice(1, -1));
      const c: ContentItem = {
        k: 'content', bytes, lower: lower(bytes), nocase: false, neg, offset: 0, depth: 0, distance: 0, within: 0,
        hasOffset: false, hasDepth: false, hasDistance: false, hasWithin: false, startswith: false, endswith: false,
        fast: false, fastOnly: false, fastOff: 0, fastLen: bytes.length, vars: {},
      };
      st.list.push(c);
      st.last = c;
      st.lastAny = c;
      return;
    }
    case 'nocase': needContent(st, key).nocase = true; return;
    case 'offset': case 'depth': case 'distance': case 'within': {
      const c = needContent(st, key);
      const bn = parseByteNumber(need(), key, st.vars);
      const n = bn.value;
      if (key === 'offset') {
        if (n < 0) fail('offset must not be negative');
        c.offset = n; c.hasOffset = true; if (bn.name) c.vars.offset = bn.name;
      } else if (key === 'depth') {
        if (n <= 0 && !bn.name) fail('depth must be positive');
        if (!bn.name && n < c.bytes.length) fail(`depth ${n} is shorter than the content (${c.bytes.length} bytes)`);
        c.depth = n; c.hasDepth = true; if (bn.name) c.vars.depth = bn.name;
      } else if (key === 'distance') {
        c.distance = n; c.hasDistance = true; if (bn.name) c.vars.distance = bn.name;
      } else {
        if (!bn.name && n < c.bytes.length) fail(`within ${n} is shorter than the content (${c.bytes.length} bytes)`);
        c.within = n; c.hasWithin = true; if (bn.name) c.vars.within = bn.name;
      }
      if ((c.hasOffset || c.hasDepth) && (c.hasDistance || c.hasWithin)) {
        fail('offset/depth (absolute) and distance/within (relative) cannot be mixed on one content');
      }
      return;
    }
    case 'startswith': {
      const c = needContent(st, key);
      if (c.hasOffset || c.hasDistance || c.hasWithin) fail('startswith cannot be combined with offset, distance or within');
      c.startswith = true;
      c.hasDepth = true;
      c.depth = c.bytes.length;
      return;
    }
    case 'endswith': needContent(st, key).endswith = true; return;
    case 'fast_pattern': {
      const c = needContent(st, key);
      if (c.neg) {
        // Suricata refuses a negated fast pattern unless it is the only content; treat as a hint ignored.
        return;
      }
      c.fast = true;
      const a = (value ?? '').trim();
      if (a === 'only') c.fastOnly = true;
      else if (a !== '') {
        const m = /^(\d+)\s*,\s*(\d+)$/.exec(a);
        if (m === null) fail('fast_pattern: expected nothing, "only" or "offset,length"');
        const o = Number(m[1]);
        const l = Number(m[2]);
        if (o + l > c.bytes.length || l === 0) fail('fast_pattern: offset,length past the content');
        c.fastOff = o;
        c.fastLen = l;
      }
      return;
    }
    case 'pcre': {
      let spec;
      try {
        spec = parsePcre(need());
      } catch (e) {
        if (e instanceof PcreError) fail(`pcre: ${e.message}`);
        throw e;
      }
      const list = spec.buffer === '' ? st.list : listFor(st, spec.buffer);
      const item = { k: 'pcre' as const, spec };
      list.push(item);
      st.lastAny = item;
      return;
    }
    case 'isdataat': {
      const parts = need().split(',').map((x) => x.trim());
      let t = parts[0];
      let neg = false;
      if (t.startsWith('!')) {
        neg = true;
        t = t.slice(1);
      }
      const bn = parseByteNumber(t, 'isdataat', st.vars);
      let relative = false;
      for (const o of parts.slice(1)) {
        if (o === 'relative') relative = true;
        else if (o !== 'rawbytes') fail(`isdataat: unknown option "${o}"`);
      }
      const item = { k: 'isdataat' as const, n: bn.value, nVar: bn.name, relative, neg };
      st.list.push(item);
      st.lastAny = item;
      return;
    }
    case 'bsize': {
      const item = { k: 'bsize' as const, m: parseNum(need(), 'bsize') };
      st.list.push(item);
      return;
    }
    case 'dns.opcode': r.dnsOpcode = parseNum(need(), 'dns.opcode', 15); return;
    case 'dns.rcode': r.dnsRcode = parseNum(need(), 'dns.rcode', 15); return;
    case 'tls.version': {
      // Suricata's names (1.0 ... 1.3, SSLv2, SSLv3) or a hex version; "!" negates.
      let t = need().trim();
      const neg = t.startsWith('!');
      if (neg) t = t.slice(1).trim();
      const names: Record<string, number> = { '1.0': 0x0301, '1.1': 0x0302, '1.2': 0x0303, '1.3': 0x0304, sslv2: 0x0200, sslv3: 0x0300 };
      const v = names[t.toLowerCase()] ?? (/^0x[0-9a-f]{1,4}$/i.test(t) ? parseInt(t, 16) : -1);
      if (v < 0) fail(`tls.version: expected 1.0, 1.1, 1.2, 1.3, SSLv2, SSLv3 or a hex version, got "${t}"`);
      r.tlsVersion = { v, neg };
      return;
    }
    case 'urilen': {
      // The URI's length, normalized (default) or raw: a bsize on that buffer.
      const [n, kind = 'norm'] = need().split(',').map((x) => x.trim());
      if (kind !== 'norm' && kind !== 'raw') fail(`urilen: expected norm or raw after the length, got "${kind}"`);
      listFor(st, kind === 'raw' ? 'http.uri.raw' : 'http.uri').push({ k: 'bsize', m: parseNum(n, 'urilen') });
      return;
    }
    case 'byte_test': {
      const parts = need().split(',');
      if (parts.length < 4) fail('byte_test: expected bytes, [!]operator, value, offset[, options]');
      const nbytes = parseIntStrict(parts[0], 'byte_test bytes', 1, 10);
      let opText = parts[1].trim();
      let neg = false;
      if (opText.startsWith('!')) {
        neg = true;
        opText = opText.slice(1).trim();
      }
      if (opText === '') opText = '=';
      if (!['<', '>', '=', '<=', '>=', '&', '^'].includes(opText)) fail(`byte_test: unknown operator "${parts[1].trim()}"`);
      const value = parseByteNumber(parts[2], 'byte_test value', st.vars);
      const offset = parseByteNumber(parts[3], 'byte_test offset', st.vars);
      const o = byteOptions(parts.slice(4), 'byte_test');
      if (o.rest.length > 0) fail(`byte_test: unknown option "${o.rest[0]}"`);
      if (o.base === 0 && nbytes > 4) fail('byte_test: more than 4 bytes needs "string"');
      const item: ByteTestItem = {
        k: 'byte_test', nbytes, op: opText as ByteTestItem['op'], neg, value: value.value, valueVar: value.name,
        offset: offset.value, offsetVar: offset.name, relative: o.relative, little: o.little, base: o.base, bitmask: o.bitmask,
      };
      st.list.push(item);
      st.lastAny = item;
      return;
    }
    case 'byte_jump': {
      const parts = need().split(',');
      if (parts.length < 2) fail('byte_jump: expected bytes, offset[, options]');
      const nbytes = parseIntStrict(parts[0], 'byte_jump bytes', 1, 10);
      const offset = parseByteNumber(parts[1], 'byte_jump offset', st.vars);
      const o = byteOptions(parts.slice(2), 'byte_jump');
      const item: ByteJumpItem = {
        k: 'byte_jump', nbytes, offset: offset.value, offsetVar: offset.name, relative: o.relative, little: o.little,
        base: o.base, multiplier: 1, align: false, fromBeginning: false, fromEnd: false, postOffset: 0, bitmask: o.bitmask,
      };
      for (const t of o.rest) {
        if (t === 'align') item.align = true;
        else if (t === 'from_beginning') item.fromBeginning = true;
        else if (t === 'from_end') item.fromEnd = true;
        else if (t.startsWith('multiplier')) item.multiplier = parseIntStrict(t.slice(10), 'byte_jump multiplier', 1, 65535);
        else if (t.startsWith('post_offset')) item.postOffset = parseIntStrict(t.slice(11), 'byte_jump post_offset');
        else fail(`byte_jump: unknown option "${t}"`);
      }
      if (item.base === 0 && nbytes > 4) fail('byte_jump: more than 4 bytes needs "string"');
      st.list.push(item);
      st.lastAny = item;
      return;
    }
    case 'byte_extract': {
      const parts = need().split(',');
      if (parts.length < 3) fail('byte_extract: expected bytes, offset, name[, options]');
      const nbytes = parseIntStrict(parts[0], 'byte_extract bytes', 1, 10);
      const offset = parseIntStrict(parts[1], 'byte_extract offset');
      const name = parts[2].trim();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(`byte_extract: bad variable name "${name}"`);
      const o = byteOptions(parts.slice(3), 'byte_extract');
      const item: ByteExtractItem = {
        k: 'byte_extract', nbytes, offset, name, slot: st.vars.size, relative: o.relative, little: o.little, base: o.base,
        multiplier: 1, align: 0, bitmask: o.bitmask,
      };
      for (const t of o.rest) {
        if (t.startsWith('multiplier')) item.multiplier = parseIntStrict(t.slice(10), 'byte_extract multiplier', 1, 65535);
        else if (t.startsWith('align')) item.align = parseIntStrict(t.slice(5), 'byte_extract align', 2, 4);
        else fail(`byte_extract: unknown option "${t}"`);
      }
      st.vars.set(name, item.slot);
      st.list.push(item);
      st.lastAny = item;
      return;
    }
    // ---- packet ----
    case 'flow': r.flow = parseFlow(need()); return;
    case 'flags': case 'tcp.flags': r.flags = parseFlags(need()); return;
    case 'fragbits': r.fragbits = parseFragbits(need()); return;
    case 'fragoffset': r.fragoffset = parseNum(need().replace(/^!/, '!'), 'fragoffset', 8191); return;
    case 'ipopts': {
      const o = IPOPTS[need().trim()];
      if (o === undefined) fail(`ipopts: unknown option "${v.trim()}"`);
      r.ipopts = o;
      return;
    }
    case 'dsize': r.dsize = parseNum(need(), 'dsize', 65535); return;
    case 'itype': r.itype = parseNum(need(), 'itype', 255); return;
    case 'icode': r.icode = parseNum(need(), 'icode', 255); return;
    case 'icmp_id': r.icmpId = parseNum(need(), 'icmp_id', 65535); return;
    case 'icmp_seq': r.icmpSeq = parseNum(need(), 'icmp_seq', 65535); return;
    case 'ttl': r.ttl = parseNum(need(), 'ttl', 255); return;
    case 'tos': r.tos = parseNum(need(), 'tos', 255); return;
    case 'id': r.ipId = parseNum(need(), 'id', 65535); return;
    case 'ip_proto': {
      const t = need().trim();
      const names: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, igmp: 2, gre: 47, esp: 50, ah: 51, 'ipv6-icmp': 58, sctp: 132 };
      const m = /^([!<>=]*)(\w[\w-]*)$/.exec(t);
      if (m === null) fail(`ip_proto: cannot read "${t}"`);
      const num = names[m[2].toLowerCase()] ?? (/^\d+$/.test(m[2]) ? Number(m[2]) : -1);
      if (num < 0 || num > 255) fail(`ip_proto: unknown protocol "${m[2]}"`);
      r.ipProtoMatch = parseNum(`${m[1]}${num}`, 'ip_proto', 255);
      return;
    }
    case 'window': {
      const t = need().trim();
      r.window = parseNum(t.startsWith('!') ? `!${t.slice(1)}` : t, 'window', 65535);
      return;
    }
    case 'ack': r.ack = parseNum(need(), 'ack'); return;
    case 'seq': r.seq = parseNum(need(), 'seq'); return;
    case 'sameip': r.sameip = true; return;
    case 'stream_size': {
      const parts = need().split(',').map((x) => x.trim());
      if (parts.length !== 3) fail('stream_size: expected server|client|both|either, operator, number');
      const which = parts[0];
      if (which !== 'server' && which !== 'client' && which !== 'both' && which !== 'either') fail(`stream_size: unknown side "${which}"`);
      r.streamSize = { which, m: parseNum(`${parts[1] === '=' ? '' : parts[1]}${parts[2]}`, 'stream_size') };
      return;
    }
    case 'decode-event': {
      const name = need().trim().replace(/^decoder\./, '');
      const id = eventId(name);
      if (id < 0) fail(`decode-event: unknown event "${name}"`);
      r.decodeEvents.push(id);
      return;
    }
    case 'flowbits': {
      const parts = need().split(',').map((x) => x.trim());
      const cmd = parts[0];
      if (cmd === 'noalert') {
        r.noalert = true;
        return;
      }
      if (!['set', 'unset', 'toggle', 'isset', 'isnotset'].includes(cmd)) fail(`flowbits: unknown command "${cmd}"`);
      if (parts.length < 2 || parts[1] === '') fail(`flowbits: ${cmd} needs a name`);
      const expr = parts[1];
      const or = expr.includes('|');
      const names = expr.split(/[|&]/).map((x) => x.trim());
      const bits = names.map((n) => {
        let id = ctx.bits.get(n);
        if (id === undefined) {
          id = ctx.bits.size;
          ctx.bits.set(n, id);
        }
        return id;
      });
      const op: FlowbitOp = { cmd: cmd as FlowbitOp['cmd'], bits, or };
      if (cmd === 'set' || cmd === 'unset' || cmd === 'toggle') r.setsBits = true;
      r.flowbits.push(op);
      return;
    }
    case 'noalert': r.noalert = true; return;
    case 'threshold': r.threshold = parseThreshold(need(), false); return;
    case 'detection_filter': r.detectionFilter = parseThreshold(need(), true); return;
    case 'tcp.session': {
      for (const s of need().split(',').map((x) => x.trim())) {
        if (!['setup', 'established', 'closing', 'closed'].includes(s)) fail(`tcp.session: unknown state "${s}"`);
        r.tcpSession.push(s);
      }
      return;
    }
    case 'alert': r.fwAlert = true; return;
    case 'config': {
      // Suricata's `config` rules: only turning off the logging of the matched transaction.
      const parts = need().split(',').map((x) => x.trim().replace(/\s+/g, ' '));
      if (parts.join(',') !== 'logging disable,type tx,scope tx') fail('config: only "logging disable, type tx, scope tx" is supported');
      if (r.action !== 'config') fail('config: needs the config action');
      r.configNoLog = true;
      return;
    }
    default:
      if (sticky !== undefined) fail(`${key} takes no value`);
      fail(`unsupported keyword "${key}"`);
  }
}

/** The next Rule.uid (unique within the process). */
let nextUid = 1;

function newRule(index: number, text: string, file: string, line: number): Rule {
  return {
    index, uid: nextUid++, hits: 0, text, file, line, action: 'alert', scope: '', hook: '', proto: 'ip', ipProto: -1, app: '', tcpMode: '',
    src: { any: true, neg: false, v4: [], v6: [], v6w: new Uint32Array(0), items: [], text: 'any' },
    sp: { any: true, neg: false, ranges: [], items: [], text: 'any' },
    bidir: false,
    dst: { any: true, neg: false, v4: [], v6: [], v6w: new Uint32Array(0), items: [], text: 'any' },
    dp: { any: true, neg: false, ranges: [], items: [], text: 'any' },
    sid: 0, rev: 0, gid: 1, msg: '', classtype: '', priority: 0, buffers: new Map(), fast: null, fastBuffer: '', fastExact: null, fastEnd: -1,
    flow: null, flags: null, fragbits: null, ipopts: 0, dsize: null, itype: null, icode: null, icmpId: null,
    icmpSeq: null, ttl: null, tos: null, ipId: null, ipProtoMatch: null, window: null, ack: null, seq: null,
    fragoffset: null, sameip: false, streamSize: null, decodeEvents: [], flowbits: [], noalert: false, threshold: null,
    detectionFilter: null, tcpSession: [], fwAlert: false, transforms: new Map(), configNoLog: false, dnsOpcode: null, dnsRcode: null, tlsVersion: null, nVars: 0, payload: false, setsBits: false, metadata: {}, target: '',
  };
}

/** Parse one rule. Throws RuleParseError (or RuleSkip) with the reason. */
function parseRule(text: string, index: number, file: string, line: number, ctx: { bits: Map<string, number>; opts: LoadOptions }): Rule {
  const open = text.indexOf('(');
  if (open < 0 || !text.trimEnd().endsWith(')')) fail('expected "header (options)"');
  const header = text.slice(0, open).trim();
  // Header tokens; lists may contain spaces, so split outside brackets.
  const toks: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of header) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (/\s/.test(ch) && depth === 0) {
      if (cur !== '') toks.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') toks.push(cur);
  const r = newRule(index, text, file, line);
  if (toks.length !== 7 && !(toks.length === 2)) fail(`header: expected "action proto src_ip src_port -> dst_ip dst_port", got ${toks.length} fields`);
  const [actionTok, protoTok] = toks;
  const [action, scope = ''] = actionTok.split(':');
  if (!ACTIONS.has(action)) fail(`unknown action "${action}"`);
  r.action = action;
  r.scope = scope;
  const [proto, hook = ''] = protoTok.split(':');
  const pinfo = PROTOS[proto.toLowerCase()];
  if (pinfo === undefined) fail(`protocol "${proto}" is not supported (supported: ${Object.keys(PROTOS).join(', ')})`);
  r.proto = proto.toLowerCase();
  r.hook = hook;
  r.ipProto = pinfo.ip;
  r.app = pinfo.app;
  r.tcpMode = pinfo.tcpMode;
  if (toks.length === 7) {
    const dir = toks[4];
    if (dir !== '->' && dir !== '<>' && dir !== '=>') fail(`direction must be -> or <> (got "${dir}")`);
    if (dir === '=>') fail('the transactional direction "=>" is not supported');
    r.bidir = dir === '<>';
    try {
      r.src = parseAddr(toks[2], ctx.opts.vars);
      r.sp = parsePort(toks[3], ctx.opts.vars);
      r.dst = parseAddr(toks[5], ctx.opts.vars);
      r.dp = parsePort(toks[6], ctx.opts.vars);
    } catch (e) {
      if (e instanceof SpecError) fail(`header: ${e.message}`);
      throw e;
    }
  } else fail('header: missing addresses and ports');
  const body = text.slice(open + 1, text.lastIndexOf(')'));
  const st: State = { rule: r, buffer: 'payload', list: [], last: null, lastAny: null, vars: new Map() };
  st.list = listFor(st, 'payload');
  for (const opt of splitOptions(body)) {
    const colon = findColon(opt);
    const key = (colon < 0 ? opt : opt.slice(0, colon)).trim();
    const value = colon < 0 ? undefined : opt.slice(colon + 1);
    if (/["\s]/.test(key)) fail(`"${key.slice(0, 40)}" is not a keyword (a ";" missing?)`);
    if (value !== undefined) checkQuotes(key, value);
    applyOption(st, key, value, ctx);
  }
  if (r.sid === 0) fail('missing sid');
  if (r.action === 'config' && !r.configNoLog) fail('a config rule needs config: logging disable, type tx, scope tx');
  if (r.msg === '') r.msg = '';
  if (r.priority < 0) r.priority = -r.priority;
  if (r.priority === 0) r.priority = 3;
  r.nVars = st.vars.size;
  for (const [name, items] of r.buffers) {
    if (items.length === 0 && name === 'payload') r.buffers.delete(name);
  }
  r.payload = (r.buffers.get('payload')?.length ?? 0) > 0;
  if (r.buffers.size > 0 && r.ipProto === -2) fail('pkthdr rules cannot inspect payload');
  const used = [...r.buffers.keys()];
  if (r.dnsOpcode !== null || r.dnsRcode !== null) used.push('dns.header');
  if (r.tlsVersion !== null) used.push('tls.header');
  for (const b of used) {
    const app = appOfBuffer(b);
    if (app === '') continue;
    if (r.app === '') {
      if (app !== 'dns' && r.ipProto !== 6 && r.ipProto !== -1) fail(`${b} needs a TCP rule (${app})`);
      r.app = app;
    } else if (r.app !== app) fail(`${b === 'dns.header' ? 'dns.opcode / dns.rcode are dns keywords' : b === 'tls.header' ? 'tls.version is a tls keyword' : `${b} is a ${app} buffer`}, the rule is for ${r.app}`);
  }
  if (r.tcpMode === 'stream' || (r.flow?.onlyStream ?? false)) {
    // fine: inspected on the stream only
  }
  // Fast pattern: an explicit one, else the longest positive content of the payload buffer.
  let best: ContentItem | null = null;
  let bestBuf = '';
  for (const [b, items] of r.buffers) {
    for (const it of items) {
      if (it.k !== 'content' || it.neg) continue;
      if (it.fast) {
        best = it;
        bestBuf = b;
        break;
      }
      if (b === 'payload' && (best === null || (!best.fast && it.bytes.length > best.bytes.length))) {
        best = it;
        bestBuf = b;
      }
    }
    if (best?.fast) break;
  }
  if (best === null) {
    // No payload content: the longest positive content of an application
    // buffer without transforms (its protocol's prefilter scans that buffer).
    for (const [b, items] of r.buffers) {
      if (b === 'payload' || appOfBuffer(b) === '' || r.transforms.has(b)) continue;
      for (const it of items) {
        if (it.k === 'content' && !it.neg && (best === null || it.bytes.length > best.bytes.length)) {
          best = it;
          bestBuf = b;
        }
      }
    }
  }
  if (best !== null) {
    r.fast = best.lower.slice(best.fastOff, best.fastOff + best.fastLen);
    r.fastBuffer = bestBuf;
    r.fastExact = best.nocase ? null : best.bytes.slice(best.fastOff, best.fastOff + best.fastLen);
    r.fastEnd = fastEnd(r.buffers.get(bestBuf) ?? [], best);
  }
  return r;
}

/** The colon that ends the keyword (keywords never contain quotes). */
function findColon(opt: string): number {
  const q = opt.indexOf('"');
  const c = opt.indexOf(':');
  if (c < 0 || (q >= 0 && q < c)) return -1;
  return c;
}

/** Load rule files. Errors never throw: each failed rule is reported with its reason. */
export function loadRules(sources: RuleSource[], opts: LoadOptions): LoadResult {
  const rules: Rule[] = [];
  const errors: RuleError[] = [];
  const skipped: RuleError[] = [];
  const bits = new Map<string, number>();
  (opts.flowbits ?? []).forEach((n, id) => { if (n !== undefined) bits.set(n, id); });
  const bySid = new Map<string, Rule>();
  let total = 0;
  const ctx = { bits, opts };
  for (const src of sources) {
    const lines = src.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let text = lines[i].trim();
      const start = i + 1;
      while (text.endsWith('\\') && i + 1 < lines.length) {
        text = text.slice(0, -1) + lines[++i].trim();
      }
      if (text === '' || text.startsWith('#')) continue;
      total++;
      const sidm = /[(;]\s*sid\s*:\s*(\d+)/.exec(text);
      const sid = sidm === null ? null : Number(sidm[1]);
      try {
        const r = parseRule(text, rules.length, src.name, start, ctx);
        const key = `${r.gid}:${r.sid}`;
        const prev = bySid.get(key);
        if (prev !== undefined) {
          if (r.rev > prev.rev) {
            errors.push({ file: prev.file, line: prev.line, sid: prev.sid, reason: `replaced by a higher rev (${r.rev}) of sid ${r.sid} at ${src.name}:${start}`, text: prev.text });
            const at = rules.indexOf(prev);
            r.index = prev.index;
            rules[at] = r;
            bySid.set(key, r);
          } else {
            errors.push({ file: src.name, line: start, sid: r.sid, reason: `duplicate sid ${r.sid} (rev ${r.rev}; ${prev.file}:${prev.line} has rev ${prev.rev})`, text });
          }
          continue;
        }
        bySid.set(key, r);
        rules.push(r);
      } catch (e) {
        if (e instanceof RuleSkip) skipped.push({ file: src.name, line: start, sid, reason: e.message, text });
        else if (e instanceof RuleParseError) errors.push({ file: src.name, line: start, sid, reason: e.message, text });
        else errors.push({ file: src.name, line: start, sid, reason: `internal error: ${(e as Error).message}`, text });
      }
    }
  }
  rules.forEach((r, i) => { r.index = i; });
  const flowbitNames: string[] = [];
  for (const [n, id] of bits) flowbitNames[id] = n;
  void EV;
  return { rules, errors, skipped, flowbitNames, total };
}
