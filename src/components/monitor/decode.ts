// The decoder: link (Ethernet, VLAN, Linux SLL, raw IP), ARP, IPv4 with
// options, IPv6 with extension headers, TCP with options, UDP, ICMPv4,
// ICMPv6, GRE (header only). It follows Suricata's decoder (decode-*.c):
// the same checks in the same order raise the same events, and a layer that
// fails leaves the packet without that layer (an alert on it then has no
// addresses or ports). Fragments are not decoded past the IP header: the
// defragmenter rebuilds the datagram and the engine decodes that.
import { EV } from './events.ts';
import {
  IPOPT_ANY, IPOPT_CIPSO, IPOPT_EOL, IPOPT_ESEC, IPOPT_LSRR, IPOPT_NOP, IPOPT_QS, IPOPT_RR, IPOPT_RTRALT,
  IPOPT_SATID, IPOPT_SEC, IPOPT_SSRR, IPOPT_TS, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL, LINKTYPE_NULL, LINKTYPE_RAW, PROTO_GRE, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
  type Packet,
} from './packet.ts';

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function i32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** Decode p.buf[p.off, p.off + p.len) captured with `linktype`. */
export function decode(p: Packet, linktype: number): void {
  p.linktype = linktype;
  const b = p.buf;
  const o = p.off;
  const n = p.len;
  switch (linktype) {
    case LINKTYPE_ETHERNET:
      return decodeEthernet(p, b, o, n);
    case LINKTYPE_RAW:
      if (n > 0 && b[o] >> 4 === 6) return decodeIpv6(p, b, o, n);
      return decodeIpv4(p, b, o, n);
    case LINKTYPE_IPV4:
      return decodeIpv4(p, b, o, n);
    case LINKTYPE_IPV6:
      return decodeIpv6(p, b, o, n);
    case LINKTYPE_LINUX_SLL:
      if (n < 16) return p.event(EV['sll.pkt_too_small'], true);
      return decodeEtherType(p, b, o + 16, n - 16, u16(b, o + 14), 0);
    case LINKTYPE_NULL: {
      if (n < 4) return p.event(EV['ltnull.pkt_too_small'], true);
      const fam = b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
      const famBe = u32(b, o);
      if (fam === 2 || famBe === 2) return decodeIpv4(p, b, o + 4, n - 4);
      if (fam === 24 || fam === 28 || fam === 30 || famBe === 24 || famBe === 28 || famBe === 30) return decodeIpv6(p, b, o + 4, n - 4);
      return p.event(EV['ltnull.unsupported_type']);
    }
    default:
      return;
  }
}

function decodeEthernet(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 14) return p.event(EV['ethernet.pkt_too_small'], true);
  p.eth = o;
  decodeEtherType(p, b, o + 14, n - 14, u16(b, o + 12), 0);
}

function decodeEtherType(p: Packet, b: Uint8Array, o: number, n: number, type: number, depth: number): void {
  switch (type) {
    case 0x0800:
      return decodeIpv4(p, b, o, n);
    case 0x86dd:
      return decodeIpv6(p, b, o, n);
    case 0x0806:
      return decodeArp(p, b, o, n);
    case 0x8100:
    case 0x88a8:
    case 0x9100: {
      if (n < 4) return p.event(EV['vlan.header_too_small'], true);
      if (p.vlanCount >= 2 || depth >= 2) return p.event(EV['vlan.too_many_layers'], true);
      const id = u16(b, o) & 0x0fff;
      if (p.vlanCount === 0) p.vlan0 = id;
      else p.vlan1 = id;
      p.vlanCount++;
      return decodeEtherType(p, b, o + 4, n - 4, u16(b, o + 2), depth + 1);
    }
    default:
      return;
  }
}

function decodeArp(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 28) return p.event(EV['arp.pkt_too_small'], true);
  if (u16(b, o) !== 1) return p.event(EV['arp.unsupported_hardware']);
  if (u16(b, o + 2) !== 0x0800) return p.event(EV['arp.unsupported_protocol']);
  if (b[o + 4] !== 6) return p.event(EV['arp.invalid_hardware_size'], true);
  if (b[o + 5] !== 4) return p.event(EV['arp.invalid_protocol_size'], true);
  p.arp = o;
}

// ---- IPv4 ----------------------------------------------------------------------

export function decodeIpv4(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 20) return p.event(EV['ipv4.pkt_too_small'], true);
  if (b[o] >> 4 !== 4) return p.event(EV['ipv4.wrong_ip_version'], true);
  const hlen = (b[o] & 0x0f) << 2;
  if (hlen < 20) return p.event(EV['ipv4.hlen_too_small'], true);
  const iplen = u16(b, o + 2);
  if (iplen < hlen) return p.event(EV['ipv4.iplen_smaller_than_hlen'], true);
  if (n < iplen) return p.event(EV['ipv4.trunc_pkt'], true);
  if (hlen > 20 && !ipv4Options(p, b, o + 20, hlen - 20)) return;
  p.l3 = o;
  p.ipVer = 4;
  p.ipHlen = hlen;
  p.ipLen = iplen;
  p.tos = b[o + 1];
  p.ipId = u16(b, o + 4);
  const fo = u16(b, o + 6);
  p.rf = (fo & 0x8000) !== 0;
  p.df = (fo & 0x4000) !== 0;
  p.mf = (fo & 0x2000) !== 0;
  p.fragOff = (fo & 0x1fff) << 3;
  p.ttl = b[o + 8];
  p.proto = b[o + 9];
  p.src4 = i32(b, o + 12);
  p.dst4 = i32(b, o + 16);
  p.payOff = o + hlen;
  p.payLen = iplen - hlen;
  if (p.fragOff > 0 || p.mf) {
    p.isFragment = true;
    return;
  }
  decodeL4(p, b, o + hlen, iplen - hlen);
}

/** Suricata's DecodeIPV4Options: returns false when the header is invalid (the packet loses its IP layer). */
function ipv4Options(p: Packet, b: Uint8Array, o: number, len: number): boolean {
  let plen = len;
  let at = o;
  if (plen % 8 !== 0) p.event(EV['ipv4.opt_pad_required']);
  let seen = 0;
  while (plen > 0) {
    const t = b[at];
    if (t === 0) {
      p.ipOpts |= IPOPT_EOL;
      break;
    }
    if (t === 1) {
      p.ipOpts |= IPOPT_NOP;
      at++;
      plen--;
      continue;
    }
    if (plen < 2) {
      p.event(EV['ipv4.opt_eol_required']);
      break;
    }
    const olen = b[at + 1];
    if (olen > plen || olen < 2) {
      p.event(EV['ipv4.opt_invalid_len'], true);
      return false;
    }
    let flag = 0;
    let ok = true;
    switch (t) {
      case 68: // timestamp
        flag = IPOPT_TS;
        if (olen < 5) ok = bad(p, EV['ipv4.opt_invalid_len']);
        else {
          const ptr = b[at + 2];
          if (ptr < 5 || ptr > olen + 1) ok = bad(p, EV['ipv4.opt_malformed']);
        }
        break;
      case 7: // record route
      case 131: // loose source route
      case 137: { // strict source route
        flag = t === 7 ? IPOPT_RR : t === 131 ? IPOPT_LSRR : IPOPT_SSRR;
        if (olen < 3) ok = bad(p, EV['ipv4.opt_invalid_len']);
        else {
          const ptr = b[at + 2];
          if (ptr < 4 || (ptr - 4) % 4 !== 0 || ptr > olen + 1) ok = bad(p, EV['ipv4.opt_malformed']);
        }
        break;
      }
      case 25: // quick start
        flag = IPOPT_QS;
        if (olen < 8) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      case 130: // security (RFC 1108)
        flag = IPOPT_SEC;
        if (olen !== 11) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      case 133: // extended security
        flag = IPOPT_ESEC;
        if (olen < 3) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      case 134: // CIPSO
        flag = IPOPT_CIPSO;
        if (olen < 10) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      case 136: // stream id
        flag = IPOPT_SATID;
        if (olen !== 4) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      case 148: // router alert
        flag = IPOPT_RTRALT;
        if (olen !== 4) ok = bad(p, EV['ipv4.opt_invalid_len']);
        break;
      default:
        p.event(EV['ipv4.opt_invalid']);
        p.ipOpts |= IPOPT_ANY;
    }
    if (flag !== 0) {
      if ((seen & flag) !== 0) p.event(EV['ipv4.opt_duplicate']);
      else if (ok) {
        seen |= flag;
        p.ipOpts |= flag | IPOPT_ANY;
      }
    }
    at += olen;
    plen -= olen;
  }
  return true;
}

function bad(p: Packet, ev: number): boolean {
  p.event(ev, true);
  return false;
}

// ---- IPv6 ----------------------------------------------------------------------

export function decodeIpv6(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 40) return p.event(EV['ipv6.pkt_too_small'], true);
  if (b[o] >> 4 !== 6) return p.event(EV['ipv6.wrong_ip_version'], true);
  const plen = u16(b, o + 4);
  if (n < 40 + plen) return p.event(EV['ipv6.trunc_pkt'], true);
  p.l3 = o;
  p.ipVer = 6;
  p.ipHlen = 40;
  p.ipLen = 40 + plen;
  p.tos = ((b[o] & 0x0f) << 4) | (b[o + 1] >> 4);
  p.ttl = b[o + 7];
  p.src6 = o + 8;
  p.dst6 = o + 24;
  // Extension headers.
  let nh = b[o + 6];
  let at = o + 40;
  let left = plen;
  let seen = 0;
  let dstopts = 0;
  for (let guard = 0; guard < 16; guard++) {
    switch (nh) {
      case 0: // hop-by-hop
      case 43: // routing
      case 60: { // destination options
        if (left < 8) {
          p.event(EV['ipv6.trunc_exthdr'], true);
          p.proto = nh;
          return;
        }
        const hl = (b[at + 1] + 1) << 3;
        if (hl > left) {
          p.event(EV['ipv6.trunc_exthdr'], true);
          p.proto = nh;
          return;
        }
        const bit = nh === 0 ? 1 : nh === 43 ? 2 : 4;
        if (nh === 60) {
          // Two destination options headers are allowed (before and after a routing header), a third is not.
          if (dstopts === 2) p.event(EV['ipv6.exthdr_dupl_dh']);
          else dstopts++;
        } else if ((seen & bit) !== 0) p.event(nh === 0 ? EV['ipv6.exthdr_dupl_hh'] : EV['ipv6.exthdr_dupl_rh']);
        if (nh === 43 && b[at + 2] === 0) p.event(EV['ipv6.rh_type_0']);
        if (nh !== 43) ipv6Options(p, b, at + 2, hl - 2, nh === 0);
        seen |= bit;
        nh = b[at];
        at += hl;
        left -= hl;
        continue;
      }
      case 44: { // fragment
        if (left < 8) {
          p.event(EV['ipv6.trunc_exthdr'], true);
          p.proto = nh;
          return;
        }
        if ((seen & 8) !== 0) p.event(EV['ipv6.exthdr_dupl_fh']);
        seen |= 8;
        const fo = u16(b, at + 2);
        p.fragOff = fo & 0xfff8;
        p.mf = (fo & 1) !== 0;
        p.ipId = u32(b, at + 4);
        p.v6Frag = at;
        if (b[at + 1] !== 0 || (fo & 6) !== 0) p.event(EV['ipv6.fh_non_zero_reserved_field']);
        if (p.fragOff === 0 && !p.mf) {
          p.event(EV['ipv6.exthdr_useless_fh']);
          nh = b[at];
          at += 8;
          left -= 8;
          p.v6Frag = -1;
          continue;
        }
        if (p.mf && (left - 8) % 8 !== 0) p.event(EV['ipv6.frag_invalid_length'], true);
        p.isFragment = true;
        p.proto = b[at];
        p.payOff = at + 8;
        p.payLen = left - 8;
        return;
      }
      case 51: { // AH
        if (left < 8) {
          p.event(EV['ipv6.trunc_exthdr'], true);
          p.proto = nh;
          return;
        }
        const hl = (b[at + 1] + 2) << 2;
        if (hl > left) {
          p.event(EV['ipv6.trunc_exthdr'], true);
          p.proto = nh;
          return;
        }
        if (u16(b, at + 2) !== 0) p.event(EV['ipv6.exthdr_ah_res_not_null']);
        if ((seen & 16) !== 0) p.event(EV['ipv6.exthdr_dupl_ah']);
        seen |= 16;
        nh = b[at];
        at += hl;
        left -= hl;
        continue;
      }
      case 50: // ESP: the rest is encrypted (nothing after it can be read, so no duplicate either)
        p.proto = 50;
        p.payOff = at;
        p.payLen = left;
        return;
      case 59: // no next header
        p.proto = 59;
        if (left > 0) p.event(EV['ipv6.data_after_none_header']);
        p.payOff = at;
        p.payLen = left;
        return;
      default:
        p.proto = nh;
        p.payOff = at;
        p.payLen = left;
        if (nh === PROTO_ICMP) p.event(EV['ipv6.icmpv4']);
        else if (!KNOWN_V6_NEXT[nh]) p.event(EV['ipv6.unknown_next_header']);
        decodeL4(p, b, at, left);
        return;
    }
  }
  p.proto = nh;
}

/**
 * Next headers the decoder knows besides the extension headers it walks
 * (Suricata raises ipv6.unknown_next_header for the rest): TCP, UDP, ICMPv6,
 * SCTP, IPv4/IPv6 in IPv6, GRE, mobility, HIP, shim6.
 */
const KNOWN_V6_NEXT: readonly boolean[] = (() => {
  const k = new Array<boolean>(256).fill(false);
  for (const n of [6, 17, 58, 132, 4, 41, 47, 135, 139, 140]) k[n] = true;
  return k;
})();

/**
 * The options of a hop-by-hop (`hop`) or destination options header, at
 * b[o, o+n), as Suricata checks them: an option running past the header is
 * ipv6.exthdr_invalid_optlen; a PadN of length 0 ipv6.zero_len_padn; an
 * option other than Pad1, PadN, router alert (5, length 2), jumbo payload
 * (0xc2, length 4) and home address (0xc9, length 16)
 * ipv6.{hopopts,dstopts}_unknown_opt; padding and nothing else
 * ipv6.{hopopts,dstopts}_only_padding.
 */
function ipv6Options(p: Packet, b: Uint8Array, o: number, n: number, hop: boolean): void {
  let off = 0;
  let pad = 0;
  let other = 0;
  while (off < n) {
    const t = b[o + off];
    if (t === 0) { // Pad1
      pad++;
      off++;
      continue;
    }
    if (off + 1 >= n) {
      p.event(EV['ipv6.exthdr_invalid_optlen']);
      return;
    }
    const len = b[o + off + 1];
    if (off + 2 + len > n) {
      p.event(EV['ipv6.exthdr_invalid_optlen']);
      return;
    }
    if (t === 1) {
      pad++;
      if (len === 0) p.event(EV['ipv6.zero_len_padn']);
    } else {
      other++;
      if (t === 5) {
        if (len !== 2) p.event(EV['ipv6.exthdr_invalid_optlen']);
      } else if (t === 0xc2) {
        if (len !== 4) p.event(EV['ipv6.exthdr_invalid_optlen']);
      } else if (t === 0xc9) {
        if (len !== 16) p.event(EV['ipv6.exthdr_invalid_optlen']);
      } else p.event(hop ? EV['ipv6.hopopts_unknown_opt'] : EV['ipv6.dstopts_unknown_opt']);
    }
    off += 2 + len;
  }
  if (pad > 0 && other === 0) p.event(hop ? EV['ipv6.hopopts_only_padding'] : EV['ipv6.dstopts_only_padding']);
}

// ---- L4 ------------------------------------------------------------------------

function decodeL4(p: Packet, b: Uint8Array, o: number, n: number): void {
  p.l4 = o;
  p.l4Len = n;
  switch (p.proto) {
    case PROTO_TCP:
      return decodeTcp(p, b, o, n);
    case PROTO_UDP:
      return decodeUdp(p, b, o, n);
    case PROTO_ICMP:
      if (p.ipVer === 6) return;
      return decodeIcmp4(p, b, o, n);
    case PROTO_ICMPV6:
      if (p.ipVer === 4) {
        p.event(EV['ipv4.icmpv6'], true);
        return;
      }
      return decodeIcmp6(p, b, o, n);
    case PROTO_GRE:
      if (n < 4) return p.event(EV['gre.pkt_too_small'], true);
      if ((b[o + 1] & 7) > 1) p.event(EV['gre.wrong_version'], true);
      p.payOff = o + 4;
      p.payLen = n - 4;
      return;
    default:
      p.payOff = o;
      p.payLen = n;
  }
}

function decodeTcp(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 20) return p.event(EV['tcp.pkt_too_small'], true);
  const hlen = (b[o + 12] >> 4) << 2;
  if (hlen < 20) return p.event(EV['tcp.hlen_too_small'], true);
  if (hlen > n) return p.event(EV['tcp.invalid_optlen'], true);
  // Options: lengths and duplicates.
  let at = o + 20;
  const end = o + hlen;
  let seen = 0;
  while (at < end) {
    const k = b[at];
    if (k === 0) break;
    if (k === 1) {
      at++;
      continue;
    }
    if (at + 1 >= end) {
      p.event(EV['tcp.opt_invalid_len'], true);
      break;
    }
    const ol = b[at + 1];
    if (ol < 2 || at + ol > end) {
      p.event(EV['tcp.opt_invalid_len'], true);
      break;
    }
    const want = k === 2 ? 4 : k === 3 ? 3 : k === 4 ? 2 : k === 8 ? 10 : 0;
    if (want !== 0 && ol !== want) p.event(EV['tcp.opt_invalid_len'], true);
    if (k < 32) {
      const bit = 1 << k;
      if ((seen & bit) !== 0) p.event(EV['tcp.opt_duplicate']);
      seen |= bit;
    }
    at += ol;
  }
  p.sp = u16(b, o);
  p.dp = u16(b, o + 2);
  p.tcpSeq = u32(b, o + 4);
  p.tcpAck = u32(b, o + 8);
  p.tcpFlags = b[o + 13] | ((b[o + 12] & 1) << 8);
  p.tcpWin = u16(b, o + 14);
  p.tcpHlen = hlen;
  p.payOff = o + hlen;
  p.payLen = n - hlen;
  p.l4Ok = true;
}

function decodeUdp(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 8) return p.event(EV['udp.hlen_too_small'], true);
  const ulen = u16(b, o + 4);
  if (n < ulen) return p.event(EV['udp.pkt_too_small'], true);
  if (ulen < 8 || n !== ulen) return p.event(EV['udp.len_invalid'], true);
  p.sp = u16(b, o);
  p.dp = u16(b, o + 2);
  p.payOff = o + 8;
  p.payLen = ulen - 8;
  p.l4Ok = true;
}

/** ICMPv4 types Suricata knows (ICMP_* in decode-icmpv4.h); others raise icmpv4.unknown_type. */
const ICMP4_MAX_CODE = new Int8Array(256).fill(-1);
for (const [t, c] of [[0, 0], [3, 15], [4, 0], [5, 3], [8, 0], [9, 0], [10, 0], [11, 1], [12, 2], [13, 0], [14, 0],
  [15, 0], [16, 0], [17, 0], [18, 0], [30, 0], [31, 0], [32, 0], [33, 0], [34, 0], [35, 0], [36, 0], [37, 0], [38, 0],
  [39, 0], [40, 5], [41, 0]] as const) ICMP4_MAX_CODE[t] = c;

function decodeIcmp4(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 8) return p.event(EV['icmpv4.pkt_too_small'], true);
  const t = b[o];
  const c = b[o + 1];
  p.icmpType = t;
  p.icmpCode = c;
  p.icmpHlen = 8;
  p.l4Ok = true;
  p.payOff = o + 8;
  p.payLen = n - 8;
  if (ICMP4_MAX_CODE[t] < 0) p.event(EV['icmpv4.unknown_type']);
  else if (c > ICMP4_MAX_CODE[t]) p.event(EV['icmpv4.unknown_code']);
  if (t === 0 || t === 8 || t === 13 || t === 14 || t === 15 || t === 16 || t === 17 || t === 18) {
    p.icmpId = u16(b, o + 4);
    p.icmpSeq = u16(b, o + 6);
  } else if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) {
    // The quoted datagram: its IPv4 header must be whole.
    if (n < 8 + 20) p.event(EV['icmpv4.ipv4_trunc_pkt']);
    else if (b[o + 8] >> 4 !== 4) p.event(EV['icmpv4.ipv4_unknown_ver']);
  }
  // Suricata keeps type/code in the port fields of ICMP flows.
  p.sp = t;
  p.dp = c;
}

function decodeIcmp6(p: Packet, b: Uint8Array, o: number, n: number): void {
  if (n < 4) return p.event(EV['icmpv6.pkt_too_small'], true);
  const t = b[o];
  const c = b[o + 1];
  p.icmpType = t;
  p.icmpCode = c;
  p.icmpHlen = Math.min(8, n);
  p.l4Ok = true;
  p.payOff = o + p.icmpHlen;
  p.payLen = n - p.icmpHlen;
  if ((t === 128 || t === 129) && n >= 8) {
    p.icmpId = u16(b, o + 4);
    p.icmpSeq = u16(b, o + 6);
  }
  if (t >= 1 && t <= 4) {
    if (n < 8 + 40) p.event(EV['icmpv6.ipv6_trunc_pkt']);
    else if (b[o + 8] >> 4 !== 6) p.event(EV['icmpv6.ipv6_unknown_version']);
  } else if (t === 100 || t === 101 || t === 200 || t === 201) p.event(EV['icmpv6.experimentation_type']);
  else if ((t > 4 && t < 100) || (t > 161 && t < 200) || t === 127 || t === 255) p.event(EV['icmpv6.unassigned_type']);
  if ((t === 130 || t === 131 || t === 132 || t === 143) && p.ttl !== 1) p.event(EV['icmpv6.mld_message_with_invalid_hl']);
  p.sp = t;
  p.dp = c;
}
