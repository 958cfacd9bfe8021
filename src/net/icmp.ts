// ICMPv4 (RFC 792): type, code, checksum over the whole message, then 4 bytes
// whose meaning depends on the type (echo: identifier, sequence; errors:
// unused / next-hop MTU / pointer), then data (errors quote the original IP
// header and at least its first 8 bytes of payload).
import { getU16, setU16 } from './bytes.ts';
import { checksum, fold, sum } from './checksum.ts';
import { fail, ok, type ParseResult } from './result.ts';

export const ICMP_HLEN = 8;

export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CHECKSUM = 2;
export const ICMP_ID = 4;
export const ICMP_SEQ = 6;
/** Where an error message's quoted packet starts. */
export const ICMP_ERROR_DATA = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;

export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROTO_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_NET_PROHIBITED = 9;
export const ICMP_HOST_PROHIBITED = 10;
export const ICMP_ADMIN_PROHIBITED = 13;

export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

/** Error messages (they quote a packet; never answered with another error). */
export function icmpIsError(type: number): boolean {
  return type === ICMP_DEST_UNREACH || type === ICMP_SOURCE_QUENCH || type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED || type === ICMP_PARAM_PROBLEM;
}

/** Does the ICMP message at off (len bytes) carry a correct checksum? */
export function icmpChecksumOk(buf: Uint8Array, off: number, len: number): boolean {
  return fold(sum(buf, off, len)) === 0xffff;
}

/** Compute and store the checksum of the ICMP message at off (len bytes). */
export function icmpSetChecksum(buf: Uint8Array, off: number, len: number): void {
  setU16(buf, off + ICMP_CHECKSUM, 0);
  setU16(buf, off + ICMP_CHECKSUM, checksum(buf, off, len));
}

// ---- object form ------------------------------------------------------------

export type IcmpMessage =
  | { kind: 'echo-request' | 'echo-reply'; id: number; seq: number; data: Uint8Array }
  | { kind: 'dest-unreachable'; code: number; /** next-hop MTU (code 4), else 0 */ mtu: number; original: Uint8Array }
  | { kind: 'time-exceeded'; code: number; original: Uint8Array }
  | { kind: 'other'; type: number; code: number; /** bytes 4..8 */ rest: number; data: Uint8Array };

export type IcmpError = 'icmp-truncated' | 'icmp-bad-checksum';

/** Parse; with verify (default) a bad checksum is an error. Data views into buf. */
export function parseIcmp(buf: Uint8Array, off = 0, len = buf.length - off, verify = true): ParseResult<IcmpMessage, IcmpError> {
  if (len < ICMP_HLEN) return fail('icmp-truncated');
  if (verify && !icmpChecksumOk(buf, off, len)) return fail('icmp-bad-checksum');
  const type = buf[off];
  const code = buf[off + 1];
  const data = buf.subarray(off + 8, off + len);
  switch (type) {
    case ICMP_ECHO_REQUEST:
    case ICMP_ECHO_REPLY:
      return ok({
        kind: type === ICMP_ECHO_REQUEST ? 'echo-request' : 'echo-reply',
        id: getU16(buf, off + ICMP_ID), seq: getU16(buf, off + ICMP_SEQ), data,
      });
    case ICMP_DEST_UNREACH:
      return ok({ kind: 'dest-unreachable', code, mtu: getU16(buf, off + 6), original: data });
    case ICMP_TIME_EXCEEDED:
      return ok({ kind: 'time-exceeded', code, original: data });
    default:
      return ok({
        kind: 'other', type, code,
        rest: ((getU16(buf, off + 4) << 16) | getU16(buf, off + 6)) >>> 0, data,
      });
  }
}

/** Serialize with a computed checksum. */
export function serializeIcmp(m: IcmpMessage): Uint8Array {
  let data: Uint8Array;
  let type: number;
  let code = 0;
  let w1 = 0;
  let w2 = 0;
  switch (m.kind) {
    case 'echo-request':
    case 'echo-reply':
      type = m.kind === 'echo-request' ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY;
      w1 = m.id;
      w2 = m.seq;
      data = m.data;
      break;
    case 'dest-unreachable':
      type = ICMP_DEST_UNREACH;
      code = m.code;
      w2 = m.mtu;
      data = m.original;
      break;
    case 'time-exceeded':
      type = ICMP_TIME_EXCEEDED;
      code = m.code;
      data = m.original;
      break;
    case 'other':
      type = m.type;
      code = m.code;
      w1 = m.rest >>> 16;
      w2 = m.rest & 0xffff;
      data = m.data;
      break;
  }
  const out = new Uint8Array(ICMP_HLEN + data.length);
  out[0] = type;
  out[1] = code;
  setU16(out, 4, w1);
  setU16(out, 6, w2);
  out.set(data, ICMP_HLEN);
  icmpSetChecksum(out, 0, out.length);
  return out;
}
