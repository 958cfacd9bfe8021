// The IPv6 connection-state record: one IPv6 connection (conntrack6.ts, no
// NAT66) in one 40-byte unit, the same size as the IPv4 record
// (conn-record.ts), so every queue, batch, slot and table that carries
// records carries both unchanged. It fits because the reply tuple is the
// original one mirrored (no NAT66) and the idle time left is not carried
// (the importer gives a connection its state's full timeout anyway).
//
//   0 u8 head: 0x60 | protocol code << 2 | kind
//        (high nibble 6: IPv6; protocol code 1 TCP, 2 UDP, 3 ICMPv6; kind 1 new, 2 changed, 3 expired)
//   1 u8 state (conntrack.ts CT_*, bits 0-3) | FIN seen original (bit 4) | FIN seen reply (bit 5); bits 6-7 zero
//   2 u8 ingress domain   3 u8 egress domain
//   4 original source address (16)   20 original destination address (16)
//  36 u16 source port   38 u16 destination port (ICMPv6 echo: both the identifier)
// Big-endian. Versioning: a reader that knows only IPv4 records sees a
// first byte of 0x65..0x7f, which is no IPv4 kind: it refuses the record as
// `bad-kind` (counted) and goes on with the next; isRecord6() tells the two
// apart for a reader that knows both.
//
// decodeRecord6 checks everything that needs no router state (the head's
// family, protocol and kind, state valid for the protocol, flags, domains
// below the count and distinct, the ICMPv6 identifier the same in both
// ports) with the IPv4 decoder's reasons (RECORD_ERRORS); the router checks
// addresses, route, policy and table (sync6.ts importConn6). No allocation:
// it decodes into a caller-owned ConnRecord6.
import { getU16, setU16, setU32 } from '../../net/bytes.ts';
import { NH_ICMPV6, NH_TCP, NH_UDP } from '../../net/ipv6.ts';
import { REC_CHANGED, REC_EXPIRED, REC_FLAG_FIN_ORIG, REC_FLAG_FIN_REPLY, REC_NEW, REC_OK } from './conn-record.ts';
import type { Conn6 } from './conntrack6.ts';
import { CT_NEW, CT_REPLIED, CT_TCP_CLOSED, CT_TCP_SYN_SENT } from './conntrack.ts';

const HEAD6 = 0x60;
const E_KIND = 1, E_PROTO = 2, E_STATE = 3, E_FLAGS = 4, E_DOMAIN = 6, E_ICMP = 7;

/** Is the record at buf[off] an IPv6 one (else IPv4, or garbage its decoder refuses)? */
export function isRecord6(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 0xf0) === HEAD6;
}

/** One decoded IPv6 record (reused: decodeRecord6 overwrites every field). kind is REC_NEW / REC_CHANGED / REC_EXPIRED. */
export class ConnRecord6 {
  kind = 0;
  proto = 0;
  state = 0;
  finOrig = false;
  finReply = false;
  inDom = 0;
  outDom = 0;
  /** Offsets of the addresses in `buf` (decodeRecord6's buffer, at the record). */
  buf: Uint8Array = new Uint8Array(0);
  srcOff = 0;
  dstOff = 0;
  oSport = 0;
  oDport = 0;
}

function protoCode(proto: number): number {
  return proto === NH_TCP ? 1 : proto === NH_UDP ? 2 : proto === NH_ICMPV6 ? 3 : 0;
}

/** Write IPv6 connection c as a record of `kind` (REC_NEW / REC_CHANGED / REC_EXPIRED) at buf[off, off + 40). */
export function encodeRecord6(buf: Uint8Array, off: number, kind: number, c: Conn6): void {
  buf[off] = HEAD6 | (protoCode(c.proto) << 2) | kind;
  buf[off + 1] = c.state | (c.finOrig ? REC_FLAG_FIN_ORIG << 3 : 0) | (c.finReply ? REC_FLAG_FIN_REPLY << 3 : 0);
  buf[off + 2] = c.inDom;
  buf[off + 3] = c.outDom;
  for (let w = 0; w < 4; w++) {
    setU32(buf, off + 4 + 4 * w, c.src6[w] >>> 0);
    setU32(buf, off + 20 + 4 * w, c.dst6[w] >>> 0);
  }
  setU16(buf, off + 36, c.oSport);
  setU16(buf, off + 38, c.oDport);
}

/**
 * Decode and check the IPv6 record at buf[off, off + 40) (the caller made
 * sure it is there) into r, for a router of `domains` domains: REC_OK or
 * the index of the reason in RECORD_ERRORS. r.buf / srcOff / dstOff point
 * into buf: copy the addresses before buf changes.
 */
export function decodeRecord6(buf: Uint8Array, off: number, domains: number, r: ConnRecord6): number {
  const head = buf[off];
  const kind = r.kind = head & 3;
  if ((head & 0xf0) !== HEAD6 || (kind !== REC_NEW && kind !== REC_CHANGED && kind !== REC_EXPIRED)) return E_KIND;
  const code = (head >>> 2) & 3;
  if (code === 0) return E_PROTO;
  const proto = r.proto = code === 1 ? NH_TCP : code === 2 ? NH_UDP : NH_ICMPV6;
  const sf = buf[off + 1];
  const state = r.state = sf & 0x0f;
  if (proto === NH_TCP ? state < CT_TCP_SYN_SENT || state > CT_TCP_CLOSED : state !== CT_NEW && state !== CT_REPLIED) return E_STATE;
  const flags = sf >>> 4;
  if ((flags & ~((REC_FLAG_FIN_ORIG | REC_FLAG_FIN_REPLY) >>> 1)) !== 0) return E_FLAGS;
  if (proto !== NH_TCP && flags !== 0) return E_FLAGS;
  r.finOrig = (sf & (REC_FLAG_FIN_ORIG << 3)) !== 0;
  r.finReply = (sf & (REC_FLAG_FIN_REPLY << 3)) !== 0;
  const inDom = r.inDom = buf[off + 2];
  const outDom = r.outDom = buf[off + 3];
  if (inDom >= domains || outDom >= domains || inDom === outDom) return E_DOMAIN;
  r.buf = buf;
  r.srcOff = off + 4;
  r.dstOff = off + 20;
  r.oSport = getU16(buf, off + 36);
  r.oDport = getU16(buf, off + 38);
  if (proto === NH_ICMPV6 && r.oSport !== r.oDport) return E_ICMP;
  return REC_OK;
}
