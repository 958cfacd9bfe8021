// Whole-frame object forms: (virtio_net_hdr +) Ethernet + ARP or IPv4 + TCP /
// UDP / ICMP, as a discriminated union. For tests, tools and the control plane;
// the data path works on buffers with the field functions of each module.
import { parseArp, serializeArp, type ArpError, type ArpPacket } from './arp.ts';
import { parseIpv4 } from './addr.ts';
import { setU16 } from './bytes.ts';
import { partialChecksum4 } from './checksum.ts';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, parseEthernet, serializeEthernet, type EthernetError } from './ethernet.ts';
import { parseIcmp, serializeIcmp, type IcmpError, type IcmpMessage } from './icmp.ts';
import {
  IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, parseIpv4Packet, serializeIpv4Packet, type Ipv4Error,
} from './ipv4.ts';
import { fail, ok, type ParseResult } from './result.ts';
import { parseTcp, serializeTcp, TCP_CHECKSUM, type TcpError, type TcpSegment } from './tcp.ts';
import { parseUdp, serializeUdp, UDP_CHECKSUM, type UdpDatagram, type UdpError } from './udp.ts';
import { parseVnet, serializeVnet, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, type VnetError, type VnetHeader } from './vnet.ts';

export type L4 =
  | { proto: 'tcp'; tcp: TcpSegment }
  | { proto: 'udp'; udp: UdpDatagram }
  | { proto: 'icmp'; icmp: IcmpMessage }
  | { proto: 'other'; number: number; payload: Uint8Array };

export interface Ipv4Fields {
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  flags?: number;
  fragmentOffset?: number;
  tos?: number;
  options?: Uint8Array;
  /** Decoded: as read. Encoding: forced value, computed when omitted. */
  checksum?: number;
  totalLength?: number;
}

export interface EthFields {
  dst: string;
  src: string;
}

export type Frame =
  | { kind: 'arp'; vnet?: Partial<VnetHeader>; eth: EthFields; arp: ArpPacket }
  | { kind: 'ipv4'; vnet?: Partial<VnetHeader>; eth: EthFields; ip: Ipv4Fields; l4: L4 }
  | { kind: 'other'; vnet?: Partial<VnetHeader>; eth: EthFields; type: number; payload: Uint8Array };

export type FrameError = VnetError | EthernetError | ArpError | Ipv4Error | TcpError | UdpError | IcmpError;

export interface DecodeOptions {
  /** The bytes start with a virtio_net_hdr (default true: packets on a Nic session). */
  vnet?: boolean;
  /** Verify L4 checksums (default true; skipped when the vnet header says NEEDS_CSUM or DATA_VALID). */
  verify?: boolean;
}

/** Decode a whole frame; views into buf, no throwing on malformed input. */
export function decodeFrame(buf: Uint8Array, opts: DecodeOptions = {}): ParseResult<Frame, FrameError> {
  let off = 0;
  let vnet: VnetHeader | undefined;
  if (opts.vnet ?? true) {
    const v = parseVnet(buf, 0);
    if (!v.ok) return v;
    vnet = v.value;
    off = VNET_HDR_LEN;
  }
  const e = parseEthernet(buf, off);
  if (!e.ok) return e;
  const eth = { dst: e.value.dst, src: e.value.src };
  const body = e.value.payload;
  if (e.value.type === ETHERTYPE_ARP) {
    const a = parseArp(body);
    if (!a.ok) return a;
    return ok({ kind: 'arp', vnet, eth, arp: a.value });
  }
  if (e.value.type !== ETHERTYPE_IPV4) return ok({ kind: 'other', vnet, eth, type: e.value.type, payload: body });
  const p = parseIpv4Packet(body);
  if (!p.ok) return p;
  const { payload, protocol, ...ipRest } = p.value;
  const ip: Ipv4Fields = ipRest;
  const verify = (opts.verify ?? true) && (vnet === undefined || (vnet.flags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0);
  const later = p.value.fragmentOffset !== 0;
  let l4: L4;
  if (later || (protocol !== IPPROTO_TCP && protocol !== IPPROTO_UDP && protocol !== IPPROTO_ICMP)) {
    l4 = { proto: 'other', number: protocol, payload };
  } else if (protocol === IPPROTO_TCP) {
    const t = verify ? parseTcp(payload, ip.src, ip.dst) : parseTcp(payload);
    if (!t.ok) return t;
    l4 = { proto: 'tcp', tcp: t.value };
  } else if (protocol === IPPROTO_UDP) {
    const u = verify ? parseUdp(payload, ip.src, ip.dst) : parseUdp(payload);
    if (!u.ok) return u;
    l4 = { proto: 'udp', udp: u.value };
  } else {
    const i = parseIcmp(payload, 0, payload.length, verify);
    if (!i.ok) return i;
    l4 = { proto: 'icmp', icmp: i.value };
  }
  return ok({ kind: 'ipv4', vnet, eth, ip, l4 });
}

export interface EncodeOptions {
  /** Prepend a virtio_net_hdr (default true). */
  vnet?: boolean;
}

/**
 * Encode a frame with computed checksums. When the frame's vnet header has
 * NEEDS_CSUM and the L4 is TCP or UDP, the L4 checksum field gets the partial
 * (pseudo-header) sum and csum_start / csum_offset are filled in unless given,
 * as Linux hands such frames over. Throws TypeError on malformed addresses.
 */
export function encodeFrame(f: Frame, opts: EncodeOptions = {}): Uint8Array {
  let type: number;
  let body: Uint8Array;
  const vnet: Partial<VnetHeader> = { ...(f.vnet ?? {}) };
  if (f.kind === 'arp') {
    type = ETHERTYPE_ARP;
    body = serializeArp(f.arp);
  } else if (f.kind === 'other') {
    type = f.type;
    body = f.payload;
  } else {
    type = ETHERTYPE_IPV4;
    const { src, dst } = f.ip;
    let protocol: number;
    let l4: Uint8Array;
    let csumOff = -1;
    switch (f.l4.proto) {
      case 'tcp':
        protocol = IPPROTO_TCP;
        l4 = serializeTcp(f.l4.tcp, src, dst);
        csumOff = TCP_CHECKSUM;
        break;
      case 'udp':
        protocol = IPPROTO_UDP;
        l4 = serializeUdp(f.l4.udp, src, dst);
        csumOff = UDP_CHECKSUM;
        break;
      case 'icmp':
        protocol = IPPROTO_ICMP;
        l4 = serializeIcmp(f.l4.icmp);
        break;
      case 'other':
        protocol = f.l4.number;
        l4 = f.l4.payload;
        break;
    }
    body = serializeIpv4Packet({ ...f.ip, protocol, payload: l4 });
    const ihl = body.length - l4.length;
    if (((vnet.flags ?? 0) & VNET_F_NEEDS_CSUM) !== 0 && csumOff >= 0) {
      const s = parseIpv4(src) ?? 0;
      const d = parseIpv4(dst) ?? 0;
      setU16(body, ihl + csumOff, partialChecksum4(s, d, protocol, l4.length));
      vnet.csumStart ??= ETH_HLEN + ihl;
      vnet.csumOffset ??= csumOff;
    }
  }
  const frame = serializeEthernet({ dst: f.eth.dst, src: f.eth.src, type, payload: body });
  if (!(opts.vnet ?? true)) return frame;
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  serializeVnet(vnet, out, 0);
  out.set(frame, VNET_HDR_LEN);
  return out;
}
