// Address and port specs of rule headers: "any", single values, CIDR,
// ranges, $VARIABLES, [lists] nested to any depth, and "!" negation, with
// Snort/Suricata semantics: a list matches when one of its positive items
// matches (or it has none) and none of its negated items does.

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
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
    if (depth < 0) throw new SpecError(`unbalanced "]" in "${s}"`);
  }
  if (depth !== 0) throw new SpecError(`unbalanced "[" in "${s}"`);
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

// ---- addresses -------------------------------------------------------------------

function parseV4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((x) => x > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** Parse an IPv6 address into a bigint, or undefined. */
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
    if (fill < 0) return undefined;
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
  return { any: false, neg: false, v4: [], v6: [], items: [], text };
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

/** Parse an address spec with variables resolved through `vars` (names without "$"). */
export function parseAddr(text: string, vars: Record<string, string>, depth = 0): AddrSpec {
  return parseSpec(text, vars, depth, 'address', emptyAddr, parseAddr, (s) => {
    const spec = emptyAddr(text);
    const slash = s.indexOf('/');
    const base = slash < 0 ? s : s.slice(0, slash);
    const v4 = parseV4(base);
    if (v4 !== undefined) {
      let bits = 32;
      if (slash >= 0) {
        const m = s.slice(slash + 1);
        const mask = parseV4(m);
        if (mask !== undefined) bits = popcount(mask);
        else if (/^\d{1,2}$/.test(m) && Number(m) <= 32) bits = Number(m);
        else throw new SpecError(`bad IPv4 netmask in "${s}"`);
      }
      const size = bits === 0 ? 2 ** 32 : 2 ** (32 - bits);
      const lo = Math.floor(v4 / size) * size;
      spec.v4.push({ lo, hi: lo + size - 1 });
    } else {
      const v6 = parseV6(base);
      if (v6 === undefined) throw new SpecError(`not an address, CIDR, list or variable: "${s}"`);
      let bits = 128;
      if (slash >= 0) {
        const m = s.slice(slash + 1);
        if (!/^\d{1,3}$/.test(m) || Number(m) > 128) throw new SpecError(`bad IPv6 prefix length in "${s}"`);
        bits = Number(m);
      }
      const hostBits = BigInt(128 - bits);
      const lo = (v6 >> hostBits) << hostBits;
      spec.v6.push({ lo, hi: lo + (1n << hostBits) - 1n });
    }
    return spec;
  });
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

/** Does the IPv6 address at b[off..off+16) match the spec? */
export function addrMatch6(spec: AddrSpec, b: Uint8Array, off: number): boolean {
  if (spec.any) return !spec.neg;
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[off + i]);
  return core6(spec, v) !== spec.neg;
}

function core6(spec: AddrSpec, v: bigint): boolean {
  if (spec.any) return true;
  let hit = false;
  for (const r of spec.v6) if (v >= r.lo && v <= r.hi) hit = true;
  let pos = 0;
  let posHit = false;
  for (const it of spec.items) {
    if (it.neg) {
      if (core6(it, v)) return false;
    } else {
      pos++;
      if (!posHit && core6(it, v)) posHit = true;
    }
  }
  return hit || posHit || (pos === 0 && spec.items.length > 0 && spec.v4.length === 0 && spec.v6.length === 0);
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
