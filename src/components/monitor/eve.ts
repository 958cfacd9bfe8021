// Suricata EVE JSON records: one JSON object per line. Field names and
// formats follow Suricata's (timestamps "2024-01-02T03:04:05.123456+0000",
// IPv6 addresses fully expanded, proto names from its protocol table).
import { Buffer } from 'node:buffer';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type Packet } from './packet.ts';
import { FLOW_STATE_NAMES, type Flow } from './flow.ts';

const PROTO_NAMES: Record<number, string> = {
  1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 41: 'IPV6', 47: 'GRE', 50: 'ESP', 51: 'AH', 58: 'IPv6-ICMP', 89: 'OSPF',
  103: 'PIM', 132: 'SCTP',
};

export function protoName(p: number): string {
  return PROTO_NAMES[p] ?? String(p);
}

export function formatTs(sec: number, usec: number): string {
  const d = new Date(sec * 1000);
  const iso = d.toISOString(); // 2024-01-02T03:04:05.000Z
  return `${iso.slice(0, 19)}.${String(usec).padStart(6, '0')}+0000`;
}

export function ip4(a: number): string {
  const u = a >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 0xff}.${(u >>> 8) & 0xff}.${u & 0xff}`;
}

export function ip6(b: Uint8Array, off: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i] << 8) | b[off + i + 1]).toString(16).padStart(4, '0'));
  return parts.join(':');
}

export function mac(b: Uint8Array, off: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(b[off + i].toString(16).padStart(2, '0'));
  return parts.join(':');
}

export interface EveContext {
  /** "wire/pcap" offline, "wire/live" on the mirror. */
  pktSrc: string;
  pcapFilename: string;
  /** Mirror domain names by index (in_iface). */
  domains: readonly string[];
  /** Put the packet (base64) in alerts, at most this many bytes (0 = no). */
  packetBytes: number;
}

type Rec = Record<string, unknown>;

/** Fields every packet-based record starts with. */
export function packetBase(p: Packet, eventType: string, ctx: EveContext): Rec {
  const r: Rec = { timestamp: formatTs(p.tsSec, p.tsUsec) };
  if (p.flow !== null) r.flow_id = p.flow.id;
  if (p.domain >= 0) r.in_iface = ctx.domains[p.domain] ?? `domain${p.domain}`;
  if (p.pcapCnt > 0) r.pcap_cnt = p.pcapCnt;
  r.event_type = eventType;
  if (p.vlanCount > 0) r.vlan = p.vlanCount > 1 ? [p.vlan0, p.vlan1] : [p.vlan0];
  if (p.ipVer === 4) {
    r.src_ip = ip4(p.src4);
    if (p.l4Ok && (p.proto === PROTO_TCP || p.proto === PROTO_UDP)) r.src_port = p.sp;
    r.dest_ip = ip4(p.dst4);
    if (p.l4Ok && (p.proto === PROTO_TCP || p.proto === PROTO_UDP)) r.dest_port = p.dp;
  } else if (p.ipVer === 6) {
    r.src_ip = ip6(p.buf, p.src6);
    if (p.l4Ok && (p.proto === PROTO_TCP || p.proto === PROTO_UDP)) r.src_port = p.sp;
    r.dest_ip = ip6(p.buf, p.dst6);
    if (p.l4Ok && (p.proto === PROTO_TCP || p.proto === PROTO_UDP)) r.dest_port = p.dp;
  }
  if (p.ipVer !== 0 && p.proto >= 0) r.proto = protoName(p.proto);
  if ((p.proto === PROTO_ICMP || p.proto === PROTO_ICMPV6) && p.icmpType >= 0) {
    r.icmp_type = p.icmpType;
    r.icmp_code = p.icmpCode;
  }
  r.pkt_src = p.pseudo ? 'defrag' : ctx.pktSrc;
  if (p.eth >= 0) r.ether = { src_mac: mac(p.buf, p.eth + 6), dest_mac: mac(p.buf, p.eth) };
  return r;
}

export function flowSummary(f: Flow): Rec {
  return {
    pkts_toserver: f.pktsToServer,
    pkts_toclient: f.pktsToClient,
    bytes_toserver: f.bytesToServer,
    bytes_toclient: f.bytesToClient,
    start: formatTs(f.startSec, f.startUsec),
  };
}

function flowAddrs(f: Flow, r: Rec): void {
  if (f.ipVer === 4) {
    r.src_ip = ip4(f.src4);
    if (f.proto === PROTO_TCP || f.proto === PROTO_UDP) r.src_port = f.sp;
    r.dest_ip = ip4(f.dst4);
    if (f.proto === PROTO_TCP || f.proto === PROTO_UDP) r.dest_port = f.dp;
  } else {
    r.src_ip = ip6(f.addr, 0);
    if (f.proto === PROTO_TCP || f.proto === PROTO_UDP) r.src_port = f.sp;
    r.dest_ip = ip6(f.addr, 16);
    if (f.proto === PROTO_TCP || f.proto === PROTO_UDP) r.dest_port = f.dp;
  }
  r.proto = protoName(f.proto);
}

export function flowRecord(f: Flow, reason: string, ctx: EveContext): string {
  const r: Rec = { timestamp: formatTs(f.lastSec, f.lastUsec), flow_id: f.id, event_type: 'flow' };
  flowAddrs(f, r);
  if (f.proto === PROTO_ICMP || f.proto === PROTO_ICMPV6) {
    r.icmp_type = f.sp;
    r.icmp_code = 0;
  }
  if (f.appProto !== '') r.app_proto = f.appProto;
  const fl: Rec = {
    ...flowSummary(f),
    end: formatTs(f.lastSec, f.lastUsec),
    age: Math.max(0, Math.round(f.lastSec - f.startSec)),
    state: FLOW_STATE_NAMES[f.state],
    reason,
    alerted: f.alerted,
  };
  if (f.fwAction !== '') fl.action = f.fwAction;
  r.flow = fl;
  void ctx;
  return JSON.stringify(r);
}

export function packetField(p: Packet, max: number): string {
  const n = Math.min(p.len, max);
  return Buffer.from(p.buf.buffer, p.buf.byteOffset + p.off, n).toString('base64');
}
