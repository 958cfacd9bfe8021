// IP protocol numbers the monitor's decoder and flow table both use (a module
// of its own so flow.ts needs nothing of packet.ts).
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_GRE = 47;
export const PROTO_ICMPV6 = 58;
