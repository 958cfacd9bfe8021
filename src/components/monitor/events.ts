// Decoder and engine events, named as Suricata names them (decode-event
// keyword, EVE anomaly.event "decoder.<name>"). Every name Suricata's
// decoder-events.rules uses is known here, so those rule files load; the
// decoder raises the subset our decoder implements (see README.md). Events
// prefixed "mg." are microgate's own behavioural detectors.

export const DECODER_EVENTS = [
  // Ethernet, VLAN
  'ethernet.pkt_too_small', 'vlan.header_too_small', 'vlan.unknown_type', 'vlan.too_many_layers',
  // IPv4
  'ipv4.pkt_too_small', 'ipv4.hlen_too_small', 'ipv4.iplen_smaller_than_hlen', 'ipv4.trunc_pkt',
  'ipv4.opt_invalid', 'ipv4.opt_invalid_len', 'ipv4.opt_malformed', 'ipv4.opt_pad_required',
  'ipv4.opt_eol_required', 'ipv4.opt_duplicate', 'ipv4.opt_unknown', 'ipv4.wrong_ip_version', 'ipv4.icmpv6',
  'ipv4.frag_pkt_too_large', 'ipv4.frag_overlap', 'ipv4.frag_ignored',
  // ICMPv4
  'icmpv4.pkt_too_small', 'icmpv4.unknown_type', 'icmpv4.unknown_code', 'icmpv4.ipv4_trunc_pkt', 'icmpv4.ipv4_unknown_ver',
  // IPv6
  'ipv6.pkt_too_small', 'ipv6.trunc_pkt', 'ipv6.trunc_exthdr', 'ipv6.exthdr_dupl_fh', 'ipv6.exthdr_useless_fh',
  'ipv6.exthdr_dupl_rh', 'ipv6.exthdr_dupl_hh', 'ipv6.exthdr_dupl_dh', 'ipv6.exthdr_dupl_ah', 'ipv6.exthdr_dupl_eh',
  'ipv6.exthdr_invalid_optlen', 'ipv6.wrong_ip_version', 'ipv6.exthdr_ah_res_not_null', 'ipv6.hopopts_unknown_opt',
  'ipv6.hopopts_only_padding', 'ipv6.dstopts_unknown_opt', 'ipv6.dstopts_only_padding', 'ipv6.rh_type_0',
  'ipv6.zero_len_padn', 'ipv6.fh_non_zero_reserved_field', 'ipv6.data_after_none_header', 'ipv6.unknown_next_header',
  'ipv6.icmpv4', 'ipv6.frag_pkt_too_large', 'ipv6.frag_overlap', 'ipv6.frag_invalid_length', 'ipv6.frag_ignored',
  'ipv6.ipv4_in_ipv6_too_small', 'ipv6.ipv4_in_ipv6_wrong_version', 'ipv6.ipv6_in_ipv6_too_small',
  'ipv6.ipv6_in_ipv6_wrong_version',
  // ICMPv6
  'icmpv6.unknown_type', 'icmpv6.unknown_code', 'icmpv6.pkt_too_small', 'icmpv6.ipv6_unknown_version',
  'icmpv6.ipv6_trunc_pkt', 'icmpv6.mld_message_with_invalid_hl', 'icmpv6.unassigned_type', 'icmpv6.experimentation_type',
  // TCP, UDP, GRE
  'tcp.pkt_too_small', 'tcp.hlen_too_small', 'tcp.invalid_optlen', 'tcp.opt_invalid_len', 'tcp.opt_duplicate',
  'udp.pkt_too_small', 'udp.hlen_too_small', 'udp.hlen_invalid', 'udp.len_invalid',
  'gre.pkt_too_small', 'gre.wrong_version', 'gre.version0_recur', 'gre.version0_flags', 'gre.version0_hdr_too_big',
  'gre.version0_malformed_sre_hdr', 'gre.version1_chksum', 'gre.version1_route', 'gre.version1_ssr',
  'gre.version1_recur', 'gre.version1_flags', 'gre.version1_no_key', 'gre.version1_wrong_protocol',
  'gre.version1_malformed_sre_hdr', 'gre.version1_hdr_too_big',
  // other link and tunnel layers Suricata knows (accepted by rules; not decoded here)
  'sll.pkt_too_small', 'ppp.pkt_too_small', 'ppp.vju_pkt_too_small', 'ppp.ip4_pkt_too_small', 'ppp.ip6_pkt_too_small',
  'ppp.wrong_type', 'ppp.unsup_proto', 'pppoe.pkt_too_small', 'pppoe.wrong_code', 'pppoe.malformed_tags',
  'ieee8021ah.header_too_small', 'vntag.header_too_small', 'vntag.unknown_type', 'ipraw.invalid_ip_version',
  'ltnull.pkt_too_small', 'ltnull.unsupported_type', 'mpls.header_too_small', 'mpls.pkt_too_small',
  'mpls.bad_label_router_alert', 'mpls.bad_label_implicit_null', 'mpls.bad_label_reserved', 'mpls.unknown_payload_type',
  'erspan.header_too_small', 'erspan.unsupported_version', 'erspan.too_many_vlan_layers', 'chdlc.pkt_too_small',
  'dce.pkt_too_small', 'afpacket.trunc_pkt', 'too_many_layers', 'esp.pkt_too_small', 'sctp.pkt_too_small',
  'nsh.header_too_small', 'geneve.unknown_payload_type', 'vxlan.unknown_payload_type', 'arp.pkt_too_small',
  'arp.invalid_hardware_size', 'arp.invalid_protocol_size', 'arp.unsupported_hardware', 'arp.unsupported_protocol',
  // microgate's behavioural detectors (anomaly.type "detector")
  'mg.port_scan', 'mg.syn_flood', 'mg.arp_spoof',
  'mg.syn_flood_spread', 'mg.udp_flood', 'mg.icmp_flood', 'mg.arp_multi_claim', 'mg.arp_gratuitous_storm',
] as const;

export type DecoderEvent = typeof DECODER_EVENTS[number];

const INDEX = new Map<string, number>(DECODER_EVENTS.map((n, i) => [n, i]));

/** Event id by name, or -1. */
export function eventId(name: string): number {
  return INDEX.get(name) ?? -1;
}

export function eventName(id: number): string {
  return DECODER_EVENTS[id] ?? `unknown-${id}`;
}

/** Ids used by the decoder and engine (resolved once). */
export const EV = Object.fromEntries(DECODER_EVENTS.map((n, i) => [n, i])) as Record<DecoderEvent, number>;

/** The first id of microgate's own detector events. */
export const FIRST_DETECTOR_EVENT = EV['mg.port_scan'];
