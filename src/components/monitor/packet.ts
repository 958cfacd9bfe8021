// One decoded packet. The engine keeps a few of these and reuses them: the
// decoder fills numeric fields and offsets into `buf` (nothing is copied, no
// object is allocated per packet). Offsets are -1 when a layer is absent.
import type { Flow } from './flow.ts';

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;

export { PROTO_GRE, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from './proto.ts';

/** IPv4 option flags (ipopts keyword). */
export const IPOPT_RR = 1 << 0;
export const IPOPT_EOL = 1 << 1;
export const IPOPT_NOP = 1 << 2;
export const IPOPT_TS = 1 << 3;
export const IPOPT_SEC = 1 << 4;
export const IPOPT_ESEC = 1 << 5;
export const IPOPT_LSRR = 1 << 6;
export const IPOPT_SSRR = 1 << 7;
export const IPOPT_SATID = 1 << 8;
export const IPOPT_CIPSO = 1 << 9;
export const IPOPT_QS = 1 << 10;
export const IPOPT_RTRALT = 1 << 11;
export const IPOPT_ANY = 1 << 12;

export const MAX_EVENTS = 15;

export class Packet {
  // capture
  tsSec = 0;
  tsUsec = 0;
  /** Position in the capture (1-based, as Suricata's pcap_cnt); 0 for pseudo packets. */
  pcapCnt = 0;
  linktype = LINKTYPE_ETHERNET;
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;
  /** Mirror metadata: domain index and direction (0 rx, 1 tx), -1 offline. */
  domain = -1;
  txDir = 0;
  /** The mirror's second copy of a forwarded packet: tracked (flows, streams, rule state), never alerted on. */
  secondCopy = false;
  /** A datagram rebuilt from fragments (not on the wire). */
  pseudo = false;

  // link
  eth = -1;
  vlanCount = 0;
  vlan0 = 0;
  vlan1 = 0;
  arp = -1;

  // network
  l3 = -1;
  /** 4 or 6 when the IP header decoded, else 0 (then no addresses). */
  ipVer = 0;
  ipHlen = 0;
  /** IP total length (v4) or 40 + payload length (v6). */
  ipLen = 0;
  /** IPv4 addresses (int32). */
  src4 = 0;
  dst4 = 0;
  /** IPv6 address offsets in buf (16 bytes each). */
  src6 = -1;
  dst6 = -1;
  /** IP protocol (v6: the upper-layer next header), -1 when unknown. */
  proto = -1;
  ttl = 0;
  tos = 0;
  ipId = 0;
  /** Fragment offset in bytes; mf/df/rf bits. */
  fragOff = 0;
  mf = false;
  df = false;
  rf = false;
  isFragment = false;
  ipOpts = 0;
  /** IPv6 fragment header offset, or -1. */
  v6Frag = -1;

  // transport
  l4 = -1;
  l4Len = 0;
  /** L4 header decoded (ports, flags ... are valid). */
  l4Ok = false;
  sp = 0;
  dp = 0;
  tcpFlags = 0;
  tcpSeq = 0;
  tcpAck = 0;
  tcpWin = 0;
  tcpHlen = 0;
  icmpType = -1;
  icmpCode = -1;
  icmpId = -1;
  icmpSeq = -1;
  icmpHlen = 0;

  // payload (application data of TCP/UDP/ICMP, or the IP payload)
  payOff = 0;
  payLen = 0;

  // events
  readonly events = new Int16Array(MAX_EVENTS);
  nEvents = 0;
  invalid = false;

  // flow
  flow: Flow | null = null;
  toServer = true;

  reset(buf: Uint8Array, off: number, len: number): void {
    this.buf = buf;
    this.off = off;
    this.len = len;
    this.pseudo = false;
    this.eth = -1;
    this.vlanCount = 0;
    this.vlan0 = 0;
    this.vlan1 = 0;
    this.arp = -1;
    this.l3 = -1;
    this.ipVer = 0;
    this.ipHlen = 0;
    this.ipLen = 0;
    this.src4 = 0;
    this.dst4 = 0;
    this.src6 = -1;
    this.dst6 = -1;
    this.proto = -1;
    this.ttl = 0;
    this.tos = 0;
    this.ipId = 0;
    this.fragOff = 0;
    this.mf = false;
    this.df = false;
    this.rf = false;
    this.isFragment = false;
    this.ipOpts = 0;
    this.v6Frag = -1;
    this.l4 = -1;
    this.l4Len = 0;
    this.l4Ok = false;
    this.sp = 0;
    this.dp = 0;
    this.tcpFlags = 0;
    this.tcpSeq = 0;
    this.tcpAck = 0;
    this.tcpWin = 0;
    this.tcpHlen = 0;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.icmpId = -1;
    this.icmpSeq = -1;
    this.icmpHlen = 0;
    this.payOff = 0;
    this.payLen = 0;
    this.nEvents = 0;
    this.invalid = false;
    this.flow = null;
    this.toServer = true;
  }

  /** Record a decoder event; `invalid` marks the packet invalid (Suricata's ENGINE_SET_INVALID_EVENT). */
  event(id: number, invalid = false): void {
    if (this.nEvents < MAX_EVENTS) this.events[this.nEvents++] = id;
    if (invalid) this.invalid = true;
  }

  hasEvent(id: number): boolean {
    for (let i = 0; i < this.nEvents; i++) if (this.events[i] === id) return true;
    return false;
  }
}
