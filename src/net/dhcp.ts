// DHCP (RFC 2131/2132) on the wire, shared by the router's DHCP server and
// its WAN DHCP client: the BOOTP layout, message types, the option walk, and
// the UDP/IPv4/Ethernet framing of a message built in a buffer. Not the hot
// path: a DHCP message is handled with a few small allocations at most.
import { checksum, pseudoSum4 } from './checksum.ts';
import { getU16, getU32, setU16 } from './bytes.ts';
import { ETH_HLEN, ETHERTYPE_IPV4, writeEthHeader } from './ethernet.ts';
import { IPPROTO_UDP, IPV4_HLEN, writeIpv4Header } from './ipv4.ts';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr (16), sname (64), file (128). */
export const BOOTP_FIXED = 236;
export const DHCP_COOKIE = 0x63825363;
/** Where the options start: after the fixed part and the magic cookie. */
export const DHCP_OPT_START = BOOTP_FIXED + 4;
/** Minimum BOOTP message (RFC 951 peers may drop shorter ones). */
export const BOOTP_MIN = 300;
/** Offsets in the BOOTP message. */
export const BOOTP_XID = 4;
export const BOOTP_FLAGS = 10;
export const BOOTP_CIADDR = 12;
export const BOOTP_YIADDR = 16;
export const BOOTP_CHADDR = 28;
/** flags: ask the server to broadcast its answer (a client without an address yet). */
export const BOOTP_BROADCAST = 0x8000;
/** The largest frame a DHCP message of ours takes: Ethernet, IPv4, UDP, 576 bytes of BOOTP. */
export const DHCP_FRAME_MAX = ETH_HLEN + IPV4_HLEN + 8 + 576;

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;
export const DHCP_TYPE_NAMES: Record<number, string> = {
  1: 'discover', 2: 'offer', 3: 'request', 4: 'decline', 5: 'ack', 6: 'nak', 7: 'release', 8: 'inform',
};

export const OPT_SUBNET_MASK = 1;
export const OPT_ROUTER = 3;
export const OPT_DNS = 6;
export const OPT_HOSTNAME = 12;
export const OPT_REQUESTED_IP = 50;
export const OPT_LEASE_TIME = 51;
export const OPT_MESSAGE_TYPE = 53;
export const OPT_SERVER_ID = 54;
export const OPT_PARAMS = 55;
export const OPT_T1 = 58;
export const OPT_T2 = 59;
export const OPT_CLIENT_ID = 61;

/**
 * Walk the options of the BOOTP message at buf[b, b+len): calls `fn(code,
 * valueOffset, valueLength)` for each (pads skipped, stops at END). Returns
 * false when an option runs past the message (malformed).
 */
export function walkDhcpOptions(buf: Uint8Array, b: number, len: number, fn: (code: number, v: number, l: number) => void): boolean {
  for (let o = b + DHCP_OPT_START, end = b + len; o < end;) {
    const code = buf[o];
    if (code === 255) return true;
    if (code === 0) {
      o++;
      continue;
    }
    if (o + 1 >= end) return true;
    const l = buf[o + 1];
    const v = o + 2;
    if (v + l > end) return false;
    fn(code, v, l);
    o = v + l;
  }
  return true;
}

/** Does the BOOTP message at buf[b, b+len) have the fixed part, Ethernet addressing and the magic cookie? `op`: 1 request, 2 reply. */
export function isBootp(buf: Uint8Array, b: number, len: number, op: 1 | 2): boolean {
  return len >= DHCP_OPT_START + 1 && buf[b] === op && buf[b + 1] === 1 && buf[b + 2] === 6 && getU32(buf, b + BOOTP_FIXED) === DHCP_COOKIE;
}

/**
 * Frame the BOOTP message already written at out[ETH_HLEN + IPV4_HLEN + 8,
 * +bootpLen) (padded to BOOTP_MIN): UDP sport -> dport, IPv4 src -> dst, Ethernet
 * srcMac -> dstMac. Returns the frame length.
 */
export function frameDhcp(out: Uint8Array, bootpLen: number, srcMac: Uint8Array, dstMac: Uint8Array, src: number, dst: number, sport: number, dport: number): number {
  const ip = ETH_HLEN;
  const udp = ip + IPV4_HLEN;
  const udpLen = 8 + Math.max(BOOTP_MIN, bootpLen);
  writeEthHeader(out, 0, dstMac, srcMac, ETHERTYPE_IPV4);
  writeIpv4Header(out, ip, IPV4_HLEN + udpLen, IPPROTO_UDP, src, dst);
  setU16(out, udp, sport);
  setU16(out, udp + 2, dport);
  setU16(out, udp + 4, udpLen);
  setU16(out, udp + 6, 0);
  let c = checksum(out, udp, udpLen, pseudoSum4(src, dst, IPPROTO_UDP, udpLen));
  if (c === 0) c = 0xffff;
  setU16(out, udp + 6, c);
  return ETH_HLEN + IPV4_HLEN + udpLen;
}

/**
 * Is the IPv4 packet at buf[ip] (avail bytes) an unfragmented UDP datagram
 * to `port`? A cheap check before full validation.
 */
export function isUdpToPort(buf: Uint8Array, ip: number, avail: number, port: number): boolean {
  if (avail < IPV4_HLEN + 8 || buf[ip] >>> 4 !== 4 || buf[ip + 9] !== IPPROTO_UDP) return false;
  const ihl = (buf[ip] & 0x0f) << 2;
  if (ihl < IPV4_HLEN || avail < ihl + 8 || (getU16(buf, ip + 6) & 0x3fff) !== 0) return false;
  return getU16(buf, ip + ihl + 2) === port;
}
