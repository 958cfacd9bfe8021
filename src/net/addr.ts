// IPv4 and MAC address helpers. On the hot path an IPv4 address is an unsigned
// 32-bit number (host order value of the big-endian field) and a MAC address is
// a 48-bit number (exact in a double) or 6 bytes in a buffer; the string forms
// are for config, status and tests.
import { getU16, getU32, setU16, setU32 } from './bytes.ts';

// ---- IPv4 -------------------------------------------------------------------

/** Parse dotted-quad "198.18.0.1" (exactly four decimal parts 0..255, no leading zeros beyond "0"). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

export interface Ipv4Cidr {
  readonly address: number;
  readonly prefix: number;
}

/** Parse "198.18.0.1/24". */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const pfx = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]?)$/.test(pfx)) return undefined;
  const prefix = Number(pfx);
  if (prefix > 32) return undefined;
  return { address, prefix };
}

export function formatIpv4Cidr(c: Ipv4Cidr): string {
  return `${formatIpv4(c.address)}/${c.prefix}`;
}

/** The netmask of a prefix length, as u32 (prefix 0 -> 0). */
export function prefixMask(prefix: number): number {
  return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
}

export function networkOf(addr: number, prefix: number): number {
  return (addr & prefixMask(prefix)) >>> 0;
}

export function broadcastOf(addr: number, prefix: number): number {
  return (addr | ~prefixMask(prefix)) >>> 0;
}

/** True when addr lies in network/mask (all u32). */
export function inPrefix(addr: number, network: number, mask: number): boolean {
  return ((addr & mask) >>> 0) === network;
}

/** Do two prefixes share any address? */
export function prefixesOverlap(a: number, aPrefix: number, b: number, bPrefix: number): boolean {
  const m = prefixMask(Math.min(aPrefix, bPrefix));
  return ((a & m) >>> 0) === ((b & m) >>> 0);
}

export const IPV4_BROADCAST = 0xffffffff;

export function isMulticastIpv4(addr: number): boolean {
  return addr >>> 28 === 0xe;
}

/** 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 (multicast) and 240.0.0.0/4 (reserved, incl. broadcast). */
export function isMartianSourceIpv4(addr: number): boolean {
  const a = addr >>> 24;
  return a === 0 || a === 127 || a >= 224;
}

export function readIpv4(buf: Uint8Array, off: number): number {
  return getU32(buf, off);
}

export function writeIpv4(buf: Uint8Array, off: number, addr: number): void {
  setU32(buf, off, addr);
}

// ---- MAC --------------------------------------------------------------------

export const MAC_BROADCAST = 0xffffffffffff;

/** Parse "02:00:5e:10:00:01" (also '-' separated). */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6) return undefined;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    if (!/^[0-9a-fA-F]{2}$/.test(parts[i])) return undefined;
    out[i] = parseInt(parts[i], 16);
  }
  return out;
}

/** Parse a MAC prefix of 1..5 bytes ("02:6d"). */
export function parseMacPrefix(text: string): Uint8Array | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length < 1 || parts.length > 5) return undefined;
  const out = new Uint8Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    if (!/^[0-9a-fA-F]{2}$/.test(parts[i])) return undefined;
    out[i] = parseInt(parts[i], 16);
  }
  return out;
}

export function formatMac(buf: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    if (i > 0) s += ':';
    s += buf[off + i].toString(16).padStart(2, '0');
  }
  return s;
}

/** A MAC from 6 bytes as a 48-bit number. */
export function readMac48(buf: Uint8Array, off: number): number {
  return getU16(buf, off) * 0x100000000 + getU32(buf, off + 2);
}

export function writeMac48(buf: Uint8Array, off: number, mac: number): void {
  setU16(buf, off, Math.floor(mac / 0x100000000));
  setU32(buf, off + 2, mac >>> 0);
}

export function mac48ToString(mac: number): string {
  const b = new Uint8Array(6);
  writeMac48(b, 0, mac);
  return formatMac(b);
}

export function macBytes(mac: number): Uint8Array {
  const b = new Uint8Array(6);
  writeMac48(b, 0, mac);
  return b;
}

/** Group bit (multicast or broadcast) of the MAC at buf[off]. */
export function isGroupMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) !== 0;
}

export function isBroadcastMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & buf[off + 1] & buf[off + 2] & buf[off + 3] & buf[off + 4] & buf[off + 5]) === 0xff;
}

/** Compare 6 bytes at buf[off] with mac[0..6). */
export function macEquals(buf: Uint8Array, off: number, mac: Uint8Array): boolean {
  return buf[off] === mac[0] && buf[off + 1] === mac[1] && buf[off + 2] === mac[2] &&
    buf[off + 3] === mac[3] && buf[off + 4] === mac[4] && buf[off + 5] === mac[5];
}

/** Locally administered (bit 1 set) and unicast (bit 0 clear) first byte. */
export function isLocalUnicastMacByte(b0: number): boolean {
  return (b0 & 3) === 2;
}
