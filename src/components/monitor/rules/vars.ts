// Address and port specs of rule headers: "any", single values, CIDR,
// ranges, $VARIABLES, [lists] nested to any depth, and "!" negation, with
// Snort/Suricata semantics: a list matches when one of its positive items
// matches (or it has none) and none of its negated items does. IPv4 and IPv6
// (and mixed lists) alike; matching a packet allocates nothing.

export interface AddrRange4 {
  lo: number;
  hi: number;
}

export interface AddrRange6 {
  lo: bigint;
  hi: bigint;
}

export interface AddrSpec {
  any: boolean;
  neg: boolean;
  v4: AddrRange4[];
  v6: AddrRange6[];
  /** `v6` packed for matching: per range 8 words, lo then hi, most significant first. */
  v6w: Uint32Array;
  items: AddrSpec[];
  /** The spec as written after variable expansion (for status and errors). */
  text: string;
}

export interface PortSpec {
  any: boolean;
  neg: boolean;
  ranges: { lo: number; hi: number }[];
  items: PortSpec[];
  text: string;
}

/** Suricata's default address and port groups (suricata.yaml). */
export const DEFAULT_ADDRESS_VARS: Record<string, string> = {
  HOME_NET: '[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]',
  EXTERNAL_NET: '!$HOME_NET',
  HTTP_SERVERS: '$HOME_NET',
  SMTP_SERVERS: '$HOME_NET',
  SQL_SERVERS: '$HOME_NET',
  DNS_SERVERS: '$HOME_NET',
  TELNET_SERVERS: '$HOME_NET',
  AIM_SERVERS: '$EXTERNAL_NET',
  DC_SERVERS: '$HOME_NET',
  DNP3_SERVER: '$HOME_NET',
  DNP3_CLIENT: '$HOME_NET',
  MODBUS_CLIENT: '$HOME_NET',
  MODBUS_SERVER: '$HOME_NET',
  ENIP_CLIENT: '$HOME_NET',
  ENIP_SERVER: '$HOME_NET',
};

export const DEFAULT_PORT_VARS: Record<string, string> = {
  HTTP_PORTS: '80',
  SHELLCODE_PORTS: '!80',
  ORACLE_PORTS: '1521',
  SSH_PORTS: '22',
  DNP3_PORTS: '20000',
  MODBUS_PORTS: '502',
  FILE_DATA_PORTS: '[$HTTP_PORTS,110,143]',
  FTP_PORTS: '21',
  GENEVE_PORTS: '6081',
  VXLAN_PORTS: '4789',
  TEREDO_PORTS: '3544',
  SIP_PORTS: '[5060,5061]',
};

export class SpecError extends Error {}

/** Split a list body "a,[b,c],!d" at top-level commas. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      if (cur.trim() === '') throw new SpecError(`empty item in list "[${s}]"`);
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
    if (depth < 0) throw new SpecError(`unbalanced "]" in "${s}"`);
  }
  if (depth !== 0) throw new SpecError(`unbalanced "[" in "${s}"`);
  if (cur.trim() !== '') out.push(cur.trim());
  else if (out.length > 0) throw new SpecError(`empty item in list "[${s}]"`);
  return out;
}

// ---- addresses -------------------------------------------------------------------
//
// Leaves, as Suricata accepts them (detect-engine-address.c):
//   IPv4  1.2.3.4 | 1.2.3.0/24 | 1.2.3.0/255.255.255.0 | 1.2.3.4-1.2.3.9
//   IPv6  2001:db8::1 | 2001:db8::/32 | 2001:db8::1-2001:db8::ff | ::ffff:1.2.3.4
// A prefix's host bits are cleared; a range's ends must be of one family and
// in order. Dotted quads are decimal without leading zeros (inet_pton).

/** A dotted quad (decimal, no leading zeros, each part 0-255) as uint32, or undefined. */
export function parseV4(s: string): number | undefined {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
  if (m === null) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((x) => x > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** Parse an IPv6 address (RFC 4291 text forms, as inet_pton accepts them) into a bigint, or undefined. */
export function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(':')) return undefined;
  let head = s;
  let v4tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    v4tail = [v4 >>> 16, v4 & 0xffff];
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return undefined;
  const left = dbl[0] === '' ? [] : dbl[0].split(':');
  const right = dbl.length === 2 ? (dbl[1] === '' ? [] : dbl[1].split(':')) : [];
  let groups: string[];
  if (dbl.length === 2) {
    const fill = 8 - left.length - right.length;
    if (fill < 1) return undefined; // "::" stands for at least one group
    groups = [...left, ...new Array<string>(fill).fill('0'), ...right];
  } else groups = left;
  if (groups.length !== 8) return undefined;
  let v = 0n;
  const nums = groups.map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN));
  if (v4tail.length === 2) {
    nums[6] = v4tail[0];
    nums[7] = v4tail[1];
  }
  for (const n of nums) {
    if (Number.isNaN(n)) return undefined;
    v = (v << 16n) | BigInt(n);
  }
  return v;
}

function emptyAddr(text: string): AddrSpec {
  return { any: false, neg: false, v4: [], v6: [], v6w: new Uint32Array(0), items: [], text };
}

/**
 * The grammar address and port specs share: `!` negation, `any`, `$VAR`
 * (resolved through `vars`, nesting bounded), `[a, b, ...]` lists; `leaf`
 * parses a single address or port (range).
 */
function parseSpec<T extends { any: boolean; neg: boolean; items: T[]; text: string }>(
  text: string,
  vars: Record<string, string>,
  depth: number,
  what: 'address' | 'port',
  empty: (text: string) => T,
  self: (text: string, vars: Record<string, string>, depth: number) => T,
  leaf: (s: string) => T,
): T {
  if (depth > 16) throw new SpecError(`variables nest too deep (a loop?) at "${text}"`);
  let s = text.trim();
  let neg = false;
  while (s.startsWith('!')) {
    neg = !neg;
    s = s.slice(1).trim();
  }
  if (s === '') throw new SpecError(`empty ${what} in "${text}"`);
  let spec: T;
  if (s === 'any') {
    spec = empty(text);
    spec.any = true;
  } else if (s.startsWith('$')) {
    const name = s.slice(1);
    const v = vars[name];
    if (v === undefined) throw new SpecError(`undefined ${what} variable $${name}`);
    spec = self(v, vars, depth + 1);
  } else if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new SpecError(`unbalanced "[" in "${text}"`);
    spec = empty(text);
    const parts = splitTop(s.slice(1, -1));
    if (parts.length === 0) throw new SpecError(`empty ${what} list "${text}"`);
    for (const part of parts) spec.items.push(self(part, vars, depth + 1));
  } else {
    spec = leaf(s);
  }
  if (neg) {
    if (spec.any) throw new SpecError(`"!any" matches nothing`);
    return { ...spec, neg: !spec.neg, text };
  }
  return spec;
}

function v6text(v: bigint): string {
  return v.toString(16).padStart(32, '0').replace(/(.{4})(?!$)/g, '$1:');
}

/** One address leaf into `spec` (IPv4 or IPv6 address, prefix, netmask or range). */
function addrLeaf(s: string, spec: AddrSpec): void {
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const a = s.slice(0, dash).trim();
    const b = s.slice(dash + 1).trim();
    const a4 = parseV4(a);
    const b4 = parseV4(b);
    if (a4 !== undefined || b4 !== undefined) {
      if (a4 === undefined || b4 === undefined) throw new SpecError(`bad IPv4 range "${s}": expected two IPv4 addresses like 10.0.0.1-10.0.0.9`);
      if (a4 > b4) throw new SpecError(`bad IPv4 range "${s}": its first address is above its last`);
      spec.v4.push({ lo: a4, hi: b4 });
      return;
    }
    const a6 = parseV6(a);
    const b6 = parseV6(b);
    if (a6 === undefined || b6 === undefined) throw new SpecError(`bad address range "${s}": expected two IPv4 or two IPv6 addresses`);
    if (a6 > b6) throw new SpecError(`bad IPv6 range "${s}": its first address is above its last`);
    spec.v6.push({ lo: a6, hi: b6 });
    return;
  }
  const slash = s.indexOf('/');
  const base = slash < 0 ? s : s.slice(0, slash);
  const v4 = parseV4(base);
  if (v4 !== undefined) {
    let bits = 32;
    if (slash >= 0) {
      const m = s.slice(slash + 1);
      const mask = parseV4(m);
      if (mask !== undefined) {
        bits = popcount(mask);
        if (bits !== 32 && ((mask << bits) >>> 0) !== 0) throw new SpecError(`bad IPv4 netmask in "${s}": not contiguous`);
      } else if (/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(m)) bits = Number(m);
      else throw new SpecError(`bad IPv4 netmask in "${s}": expected 0 to 32 or a dotted mask`);
    }
    const size = bits === 0 ? 2 ** 32 : 2 ** (32 - bits);
    const lo = Math.floor(v4 / size) * size;
    spec.v4.push({ lo, hi: lo + size - 1 });
    return;
  }
  const v6 = parseV6(base);
  if (v6 === undefined) {
    throw new SpecError(base.includes(':') ? `bad IPv6 address "${base}"` : `not an address, CIDR, range, list or variable: "${s}"`);
  }
  let bits = 128;
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    if (!/^(?:[0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$/.test(m)) throw new SpecError(`bad IPv6 prefix length in "${s}": expected 0 to 128`);
    bits = Number(m);
  }
  const hostBits = BigInt(128 - bits);
  const lo = (v6 >> hostBits) << hostBits;
  spec.v6.push({ lo, hi: lo + (1n << hostBits) - 1n });
}

/** The IPv6 ranges as 32-bit words (lo0..lo3, hi0..hi3 per range): matched without allocating. */
function packV6(r: AddrRange6[]): Uint32Array {
  const w = new Uint32Array(r.length * 8);
  for (let i = 0; i < r.length; i++) {
    for (let k = 0; k < 4; k++) {
      const sh = BigInt(96 - 32 * k);
      w[i * 8 + k] = Number((r[i].lo >> sh) & 0xffffffffn);
      w[i * 8 + 4 + k] = Number((r[i].hi >> sh) & 0xffffffffn);
    }
  }
  return w;
}

/** Parse an address spec with variables resolved through `vars` (names without "$"). */
export function parseAddr(text: string, vars: Record<string, string>, depth = 0): AddrSpec {
  return parseSpec(text, vars, depth, 'address', emptyAddr, parseAddr, (s) => {
    const spec = emptyAddr(text);
    addrLeaf(s, spec);
    spec.v6w = packV6(spec.v6);
    return spec;
  });
}

/** The ranges of a parsed v6 leaf as text (status, tests). */
export function formatRange6(r: AddrRange6): string {
  return r.lo === r.hi ? v6text(r.lo) : `${v6text(r.lo)}-${v6text(r.hi)}`;
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
  return n;
}

/** Does IPv4 address `a` (int32 or uint32) match the spec? */
export function addrMatch4(spec: AddrSpec, a: number): boolean {
  return core4(spec, a >>> 0) !== spec.neg;
}

function core4(spec: AddrSpec, u: number): boolean {
  if (spec.any) return true;
  const r4 = spec.v4;
  for (let i = 0; i < r4.length; i++) if (u >= r4[i].lo && u <= r4[i].hi) return noNegHit4(spec, u);
  const items = spec.items;
  let pos = 0;
  let posHit = false;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.neg) {
      if (core4(it, u)) return false;
    } else {
      pos++;
      if (!posHit && core4(it, u)) posHit = true;
    }
  }
  return posHit || (pos === 0 && items.length > 0 && spec.v4.length === 0 && spec.v6.length === 0);
}

function noNegHit4(spec: AddrSpec, u: number): boolean {
  for (const it of spec.items) if (it.neg && core4(it, u)) return false;
  return true;
}

/** Does the IPv6 address at b[off..off+16) match the spec? Allocates nothing. */
export function addrMatch6(spec: AddrSpec, b: Uint8Array, off: number): boolean {
  if (spec.any) return !spec.neg;
  return core6(spec, b, off) !== spec.neg;
}

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** Compare the address at b[off] with the 4 words at w[at]: <0, 0, >0. */
function cmp6(b: Uint8Array, off: number, w: Uint32Array, at: number): number {
  for (let k = 0; k < 4; k++) {
    const x = word(b, off + 4 * k);
    if (x !== w[at + k]) return x < w[at + k] ? -1 : 1;
  }
  return 0;
}

function core6(spec: AddrSpec, b: Uint8Array, off: number): boolean {
  if (spec.any) return true;
  let hit = false;
  const w = spec.v6w;
  for (let i = 0; i < w.length && !hit; i += 8) if (cmp6(b, off, w, i) >= 0 && cmp6(b, off, w, i + 4) <= 0) hit = true;
  const items = spec.items;
  let pos = 0;
  let posHit = false;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.neg) {
      if (core6(it, b, off)) return false;
    } else {
      pos++;
      if (!posHit && core6(it, b, off)) posHit = true;
    }
  }
  return hit || posHit || (pos === 0 && items.length > 0 && spec.v4.length === 0 && spec.v6.length === 0);
}

// ---- ports -------------------------------------------------------------------------

function emptyPort(text: string): PortSpec {
  return { any: false, neg: false, ranges: [], items: [], text };
}

export function parsePort(text: string, vars: Record<string, string>, depth = 0): PortSpec {
  return parseSpec(text, vars, depth, 'port', emptyPort, parsePort, (s) => {
    const m = /^(\d{0,5})(:?)(\d{0,5})$/.exec(s);
    if (m === null || (m[1] === '' && m[3] === '') || (m[2] === '' && m[3] !== '')) {
      throw new SpecError(`not a port, range, list or variable: "${s}"`);
    }
    const lo = m[1] === '' ? 0 : Number(m[1]);
    const hi = m[2] === '' ? lo : m[3] === '' ? 65535 : Number(m[3]);
    if (lo > 65535 || hi > 65535 || lo > hi) throw new SpecError(`bad port range "${s}"`);
    const spec = emptyPort(text);
    spec.ranges.push({ lo, hi });
    return spec;
  });
}

export function portMatch(spec: PortSpec, port: number): boolean {
  return corePort(spec, port) !== spec.neg;
}

function corePort(spec: PortSpec, port: number): boolean {
  if (spec.any) return true;
  let hit = false;
  const rs = spec.ranges;
  for (let i = 0; i < rs.length; i++) if (port >= rs[i].lo && port <= rs[i].hi) hit = true;
  const items = spec.items;
  let pos = 0;
  let posHit = false;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.neg) {
      if (corePort(it, port)) return false;
    } else {
      pos++;
      if (!posHit && corePort(it, port)) posHit = true;
    }
  }
  return hit || posHit || (pos === 0 && items.length > 0 && rs.length === 0);
}
