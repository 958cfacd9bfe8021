// IPv6 addresses (RFC 4291) and prefixes.
//
// On the hot path an address is 16 bytes in a buffer; tables hold it as four
// int32 words (big-endian order, signed so V8 keeps them small integers), read
// with `readIpv6Words`. The text forms follow RFC 5952 (lower case, the longest
// run of two or more zero groups compressed, the first on a tie).
import { getI32 } from './bytes.ts';

export const IPV6_ADDR_LEN = 16;

/** "2001:db8::1" (also with an embedded dotted IPv4 tail) -> 16 bytes, or undefined. */
export function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  let s = text;
  const out = new Uint8Array(16);
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.includes('.', lastColon)) {
    const v4 = s.slice(lastColon + 1).split('.');
    if (v4.length !== 4) return undefined;
    const b: number[] = [];
    for (const p of v4) {
      if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
      b.push(Number(p));
    }
    s = `${s.slice(0, lastColon + 1)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if (head === undefined || rest === undefined) return undefined;
  const groups = [...head];
  const after = rest;
  const total = groups.length + after.length;
  if (halves.length === 2) {
    if (total > 7) return undefined;
    while (groups.length + after.length < 8) groups.push(0);
  } else if (total !== 8) {
    return undefined;
  }
  groups.push(...after);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >>> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  return out;
}

/** 16 bytes at off -> RFC 5952 text. */
export function formatIpv6(buf: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number): string => g.slice(a, b).map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

export interface Ipv6Cidr {
  addr: Uint8Array;
  prefix: number;
}

/** "2001:db8::/32" (a bare address is a /128) -> the network (host bits cleared) and prefix. */
export function parseIpv6Cidr(text: string): Ipv6Cidr | undefined {
  const i = text.indexOf('/');
  const addr = parseIpv6(i < 0 ? text : text.slice(0, i));
  if (addr === undefined) return undefined;
  let prefix = 128;
  if (i >= 0) {
    const p = text.slice(i + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 128) return undefined;
    prefix = Number(p);
  }
  return { addr: maskIpv6(addr, prefix), prefix };
}

export function formatIpv6Cidr(c: Ipv6Cidr): string {
  return `${formatIpv6(c.addr)}/${c.prefix}`;
}

/** A copy of addr with the bits past prefix cleared. */
export function maskIpv6(addr: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = addr[i] & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Does the address at buf[off..off+16] lie in network/prefix? Allocation-free. */
export function inPrefix6(buf: Uint8Array, off: number, network: Uint8Array, prefix: number): boolean {
  let i = 0;
  for (; i + 8 <= prefix; i += 8) if (buf[off + (i >>> 3)] !== network[i >>> 3]) return false;
  const rem = prefix - i;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return (buf[off + (i >>> 3)] & m) === network[i >>> 3];
}

export function prefixesOverlap6(a: Ipv6Cidr, b: Ipv6Cidr): boolean {
  return inPrefix6(a.addr, 0, b.addr, Math.min(a.prefix, b.prefix));
}

/** Word k (0..3) of the address at off as a signed int32 (table keys, no allocation). */
export function readIpv6Word(buf: Uint8Array, off: number, k: number): number {
  return getI32(buf, off + 4 * k);
}

export function ipv6Equals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** ff00::/8 */
export function isMulticastIpv6(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 0xff;
}

/** fe80::/10 */
export function isLinkLocalIpv6(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 0xfe && (buf[off + 1] & 0xc0) === 0x80;
}

/** :: */
export function isUnspecifiedIpv6(buf: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** ::1 */
export function isLoopbackIpv6(buf: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 15; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 15] === 1;
}

/**
 * A source no router forwards (RFC 4291, RFC 6890): unspecified, loopback,
 * multicast, IPv4-mapped (::ffff:0:0/96).
 */
export function isMartianSourceIpv6(buf: Uint8Array, off = 0): boolean {
  if (isUnspecifiedIpv6(buf, off) || isLoopbackIpv6(buf, off) || isMulticastIpv6(buf, off)) return true;
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of a unicast target (RFC 4291 2.7.1). */
export function solicitedNode(target: Uint8Array, tOff = 0, out = new Uint8Array(16), off = 0): Uint8Array {
  out.fill(0, off, off + 16);
  out[off] = 0xff;
  out[off + 1] = 0x02;
  out[off + 11] = 0x01;
  out[off + 12] = 0xff;
  out[off + 13] = target[tOff + 13];
  out[off + 14] = target[tOff + 14];
  out[off + 15] = target[tOff + 15];
  return out;
}

/** The Ethernet multicast MAC 33:33:XX:XX:XX:XX of an IPv6 multicast address (RFC 2464 7). */
export function multicastMac6(addr: Uint8Array, aOff: number, out: Uint8Array, off: number): void {
  out[off] = 0x33;
  out[off + 1] = 0x33;
  out[off + 2] = addr[aOff + 12];
  out[off + 3] = addr[aOff + 13];
  out[off + 4] = addr[aOff + 14];
  out[off + 5] = addr[aOff + 15];
}

/** The modified EUI-64 link-local address fe80::/64 of a MAC (RFC 4291 appendix A). */
export function linkLocalFromMac(mac: Uint8Array, mOff = 0): Uint8Array {
  const out = new Uint8Array(16);
  out[0] = 0xfe;
  out[1] = 0x80;
  out[8] = mac[mOff] ^ 0x02;
  out[9] = mac[mOff + 1];
  out[10] = mac[mOff + 2];
  out[11] = 0xff;
  out[12] = 0xfe;
  out[13] = mac[mOff + 3];
  out[14] = mac[mOff + 4];
  out[15] = mac[mOff + 5];
  return out;
}
