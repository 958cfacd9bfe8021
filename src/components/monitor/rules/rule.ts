// The parsed form of one signature. Plain data built once at load; the
// matcher reads it. Numbers compare with NumMatch (Suricata's uint syntax).
import type { AddrSpec, PortSpec } from './vars.ts';
import type { PcreSpec } from './pcre.ts';

/** N, <N, >N, <=N, >=N, !N, N<>M / N-M (exclusive range). */
export interface NumMatch {
  op: 'eq' | 'lt' | 'gt' | 'le' | 'ge' | 'ne' | 'range';
  a: number;
  b: number;
}

export function numTest(m: NumMatch, v: number): boolean {
  switch (m.op) {
    case 'eq': return v === m.a;
    case 'lt': return v < m.a;
    case 'gt': return v > m.a;
    case 'le': return v <= m.a;
    case 'ge': return v >= m.a;
    case 'ne': return v !== m.a;
    default: return v > m.a && v < m.b;
  }
}

export interface ContentItem {
  k: 'content';
  bytes: Uint8Array;
  /** Lower-cased copy for nocase comparison. */
  lower: Uint8Array;
  nocase: boolean;
  neg: boolean;
  offset: number;
  depth: number;
  distance: number;
  within: number;
  hasOffset: boolean;
  hasDepth: boolean;
  hasDistance: boolean;
  hasWithin: boolean;
  startswith: boolean;
  endswith: boolean;
  fast: boolean;
  fastOnly: boolean;
  /** fast_pattern:offset,length chop */
  fastOff: number;
  fastLen: number;
  /** byte_extract variables used as offset/depth/distance/within */
  vars: { offset?: string; depth?: string; distance?: string; within?: string };
}

export interface PcreItem {
  k: 'pcre';
  spec: PcreSpec;
}

export interface ByteTestItem {
  k: 'byte_test';
  nbytes: number;
  op: '<' | '>' | '=' | '<=' | '>=' | '&' | '^';
  neg: boolean;
  value: number;
  valueVar: string;
  offset: number;
  offsetVar: string;
  relative: boolean;
  little: boolean;
  base: number; // 0 binary, else 8/10/16
  bitmask: number;
}

export interface ByteJumpItem {
  k: 'byte_jump';
  nbytes: number;
  offset: number;
  offsetVar: string;
  relative: boolean;
  little: boolean;
  base: number;
  multiplier: number;
  align: boolean;
  fromBeginning: boolean;
  fromEnd: boolean;
  postOffset: number;
  bitmask: number;
}

export interface ByteExtractItem {
  k: 'byte_extract';
  nbytes: number;
  offset: number;
  name: string;
  slot: number;
  relative: boolean;
  little: boolean;
  base: number;
  multiplier: number;
  align: number;
  bitmask: number;
}

export interface IsDataAtItem {
  k: 'isdataat';
  n: number;
  nVar: string;
  relative: boolean;
  neg: boolean;
}

export interface BsizeItem {
  k: 'bsize';
  m: NumMatch;
}

export type Item = ContentItem | PcreItem | ByteTestItem | ByteJumpItem | ByteExtractItem | IsDataAtItem | BsizeItem;

export interface FlowOpts {
  toServer: boolean;
  toClient: boolean;
  established: boolean;
  notEstablished: boolean;
  stateless: boolean;
  onlyStream: boolean;
  noStream: boolean;
  onlyFrag: boolean;
  noFrag: boolean;
}

export interface FlagsOpts {
  /** Flags that must be set (exact mode: all and nothing else outside `ignore`). */
  want: number;
  ignore: number;
  mode: 'exact' | 'plus' | 'any' | 'not' | 'none';
}

export interface FlowbitOp {
  cmd: 'set' | 'unset' | 'toggle' | 'isset' | 'isnotset';
  /** Bit ids; for isset/isnotset with "|" any of them, with "&" all of them. */
  bits: number[];
  or: boolean;
}

export interface ThresholdOpts {
  type: 'limit' | 'threshold' | 'both' | 'detection_filter';
  track: 'by_src' | 'by_dst' | 'by_rule' | 'by_both' | 'by_flow';
  count: number;
  seconds: number;
}

export interface Rule {
  /** Position in the rule set (load order). */
  index: number;
  /**
   * Identity of this rule's state (thresholds) across rule sets: unique per
   * parsed rule, kept by a reload for a rule whose gid, sid, rev and text did
   * not change (rules/swap.ts), so no other rule ever inherits its state.
   */
  uid: number;
  /** Times the rule matched a packet (before noalert and thresholds); kept by a reload like uid. */
  hits: number;
  text: string;
  file: string;
  line: number;
  action: string;
  /** Firewall rules (Suricata 8): action scope ("packet", "flow", "hook") and protocol hook. */
  scope: string;
  hook: string;
  proto: string;
  /** IP protocol required (-1: any IP; -2: any packet incl. non-IP, pkthdr). */
  ipProto: number;
  /** Application protocol the rule needs ('' none). */
  app: string;
  /** tcp-pkt (packet only) / tcp-stream (stream only) / '' */
  tcpMode: '' | 'pkt' | 'stream';
  src: AddrSpec;
  sp: PortSpec;
  bidir: boolean;
  dst: AddrSpec;
  dp: PortSpec;
  sid: number;
  rev: number;
  gid: number;
  msg: string;
  classtype: string;
  priority: number;
  /** Inspection lists by buffer name ('payload' = packet payload / reassembled stream). */
  buffers: Map<string, Item[]>;
  /** The prefilter pattern (lower-cased), its buffer, or null. */
  fast: Uint8Array | null;
  fastBuffer: string;
  /** The prefilter pattern as written (case kept), or null when its content is nocase. */
  fastExact: Uint8Array | null;
  /**
   * Where in its buffer the fast pattern must end at the latest (its content's
   * absolute offset + depth, startswith included), or -1: anywhere.
   */
  fastEnd: number;
  flow: FlowOpts | null;
  flags: FlagsOpts | null;
  fragbits: FlagsOpts | null;
  ipopts: number;
  dsize: NumMatch | null;
  itype: NumMatch | null;
  icode: NumMatch | null;
  icmpId: NumMatch | null;
  icmpSeq: NumMatch | null;
  ttl: NumMatch | null;
  tos: NumMatch | null;
  ipId: NumMatch | null;
  ipProtoMatch: NumMatch | null;
  window: NumMatch | null;
  ack: NumMatch | null;
  seq: NumMatch | null;
  fragoffset: NumMatch | null;
  sameip: boolean;
  streamSize: { which: 'server' | 'client' | 'both' | 'either'; m: NumMatch } | null;
  decodeEvents: number[];
  flowbits: FlowbitOp[];
  noalert: boolean;
  threshold: ThresholdOpts | null;
  detectionFilter: ThresholdOpts | null;
  /** tcp.session (firewall) states: setup, established, closing, closed */
  tcpSession: string[];
  /** Firewall: "alert" keyword (also log an alert on accept). */
  fwAlert: boolean;
  /** Transforms per sticky buffer (dotprefix, to_lowercase, to_sha256, ...), applied in order before its items. */
  transforms: Map<string, string[]>;
  /** dns.opcode / dns.rcode: the DNS message's header fields (a dns rule). */
  dnsOpcode: NumMatch | null;
  dnsRcode: NumMatch | null;
  /** tls.version: the session's version (0x0303 for 1.2 ...), with negation. */
  tlsVersion: { v: number; neg: boolean } | null;
  /** A `config` rule: the transaction it matches is not logged (no alert either). */
  configNoLog: boolean;
  /** Number of byte_extract variables (slots). */
  nVars: number;
  /** Has payload inspection (content, pcre, byte_*, isdataat) on the payload buffer. */
  payload: boolean;
  /** Sets flowbits (evaluated before the rules that test them). */
  setsBits: boolean;
  /** For EVE alert.metadata: key -> values. */
  metadata: Record<string, string[]>;
  target: '' | 'src_ip' | 'dest_ip';
}
