// The connection-state record: one IPv4 connection in 40 bytes, as the router
// exports it on its `sync` session (new, changed, expired) and imports it back
// (conn-sync's warm table after a restart; the HA pair's standby). IPv6
// connections have their own 40-byte record, conn-record6.ts, whose first
// byte (0x65..0x6f) is no kind here: decodeRecord refuses it as bad-kind.
//
//   0 u8 kind (REC_NEW, REC_CHANGED, REC_EXPIRED)   1 u8 protocol (6, 17, 1)
//   2 u8 state (conntrack.ts CT_*)                  3 u8 flags (bit 0 nat, 1 FIN seen original, 2 FIN seen reply)
//   4 u8 ingress domain   5 u8 egress domain        6 u16 zero
//   8 i32 original src   12 i32 original dst       16 u16 sport   18 u16 dport
//  20 i32 reply src      24 i32 reply dst          28 u16 sport   30 u16 dport
//  32 u32 idle time left (ms) when written          36 u32 zero
// Big-endian (network order). Domains are indexes into the router's config.
//
// decodeRecord checks everything that needs no router state (kind, protocol,
// state valid for the protocol, flags, zero fields, domains below the count
// and distinct, an ICMP identifier the same in both "ports" of a key, the
// time left at most MAX_REMAINING_MS); the router then checks the rest
// against its config and table (router.ts importRecord). A record that fails
// is dropped and counted by its reason, never used. No allocation: it
// decodes into a caller-owned ConnRecord.
import { getI32, getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import type { Conn } from './conn-index.ts';
import { CT_NEW, CT_REPLIED, CT_TCP_CLOSED, CT_TCP_SYN_SENT } from './conntrack.ts';

export const RECORD_LEN = 40;

export const REC_NEW = 1;
export const REC_CHANGED = 2;
export const REC_EXPIRED = 3;

export const REC_FLAG_NAT = 1;
export const REC_FLAG_FIN_ORIG = 2;
export const REC_FLAG_FIN_REPLY = 4;

/** Longest idle time left a record may carry: 7 days (above any timeout the config accepts). */
export const MAX_REMAINING_MS = 7 * 24 * 3600 * 1000;

/** Why decodeRecord refused a record (REC_OK: it did not). Names in RECORD_ERRORS. */
export const REC_OK = 0;
export const RECORD_ERRORS = [
  'ok', 'bad-kind', 'bad-protocol', 'bad-state', 'bad-flags', 'bad-reserved', 'bad-domain', 'bad-icmp-id', 'bad-timeout',
] as const;
export type RecordError = typeof RECORD_ERRORS[number];
const E_KIND = 1, E_PROTO = 2, E_STATE = 3, E_FLAGS = 4, E_RESERVED = 5, E_DOMAIN = 6, E_ICMP = 7, E_TIMEOUT = 8;

/** One decoded record (reused: decodeRecord overwrites every field). */
export class ConnRecord {
  kind = 0;
  proto = 0;
  state = 0;
  nat = false;
  finOrig = false;
  finReply = false;
  inDom = 0;
  outDom = 0;
  oSrc = 0;
  oDst = 0;
  oSport = 0;
  oDport = 0;
  rSrc = 0;
  rDst = 0;
  rSport = 0;
  rDport = 0;
  remainingMs = 0;
}

/** Write connection c as a record of `kind` at buf[off, off + RECORD_LEN) (idle time left measured at `now`). */
export function encodeRecord(buf: Uint8Array, off: number, kind: number, c: Conn, now: number): void {
  buf[off] = kind;
  buf[off + 1] = c.proto;
  buf[off + 2] = c.state;
  buf[off + 3] = (c.nat ? REC_FLAG_NAT : 0) | (c.finOrig ? REC_FLAG_FIN_ORIG : 0) | (c.finReply ? REC_FLAG_FIN_REPLY : 0);
  buf[off + 4] = c.inDom;
  buf[off + 5] = c.outDom;
  setU16(buf, off + 6, 0);
  setU32(buf, off + 8, c.oSrc >>> 0);
  setU32(buf, off + 12, c.oDst >>> 0);
  setU16(buf, off + 16, c.oSport);
  setU16(buf, off + 18, c.oDport);
  setU32(buf, off + 20, c.rSrc >>> 0);
  setU32(buf, off + 24, c.rDst >>> 0);
  setU16(buf, off + 28, c.rSport);
  setU16(buf, off + 30, c.rDport);
  const left = c.expires - now;
  setU32(buf, off + 32, left <= 0 ? 0 : left >= MAX_REMAINING_MS ? MAX_REMAINING_MS : Math.floor(left));
  setU32(buf, off + 36, 0);
}

/**
 * Decode and check the record at buf[off, off + RECORD_LEN) (the caller made
 * sure it is there) into r, for a router of `domains` domains. Returns REC_OK
 * or the index of the reason in RECORD_ERRORS.
 */
export function decodeRecord(buf: Uint8Array, off: number, domains: number, r: ConnRecord): number {
  const kind = r.kind = buf[off];
  if (kind !== REC_NEW && kind !== REC_CHANGED && kind !== REC_EXPIRED) return E_KIND;
  const proto = r.proto = buf[off + 1];
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP && proto !== IPPROTO_ICMP) return E_PROTO;
  const state = r.state = buf[off + 2];
  if (proto === IPPROTO_TCP ? state < CT_TCP_SYN_SENT || state > CT_TCP_CLOSED : state !== CT_NEW && state !== CT_REPLIED) return E_STATE;
  const flags = buf[off + 3];
  if ((flags & ~(REC_FLAG_NAT | REC_FLAG_FIN_ORIG | REC_FLAG_FIN_REPLY)) !== 0) return E_FLAGS;
  if (proto !== IPPROTO_TCP && (flags & (REC_FLAG_FIN_ORIG | REC_FLAG_FIN_REPLY)) !== 0) return E_FLAGS;
  r.nat = (flags & REC_FLAG_NAT) !== 0;
  r.finOrig = (flags & REC_FLAG_FIN_ORIG) !== 0;
  r.finReply = (flags & REC_FLAG_FIN_REPLY) !== 0;
  if (getU16(buf, off + 6) !== 0 || getU32(buf, off + 36) !== 0) return E_RESERVED;
  const inDom = r.inDom = buf[off + 4];
  const outDom = r.outDom = buf[off + 5];
  if (inDom >= domains || outDom >= domains || inDom === outDom) return E_DOMAIN;
  r.oSrc = getI32(buf, off + 8);
  r.oDst = getI32(buf, off + 12);
  r.oSport = getU16(buf, off + 16);
  r.oDport = getU16(buf, off + 18);
  r.rSrc = getI32(buf, off + 20);
  r.rDst = getI32(buf, off + 24);
  r.rSport = getU16(buf, off + 28);
  r.rDport = getU16(buf, off + 30);
  if (proto === IPPROTO_ICMP && (r.oSport !== r.oDport || r.rSport !== r.rDport)) return E_ICMP;
  const left = r.remainingMs = getU32(buf, off + 32);
  if (left > MAX_REMAINING_MS) return E_TIMEOUT;
  return REC_OK;
}
