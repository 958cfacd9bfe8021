// The detection engine: rules grouped by IP protocol, each group with an
// Aho-Corasick prefilter over its rules' fast patterns; per packet the
// candidates (prefilter hits plus rules without a fast pattern) are checked
// in rule order (flowbit setters first) against the header, flow and
// payload conditions. Thresholds, detection filters and flowbits keep state
// per rule, per address or per flow.
import { BoundedMap } from '../bounded-map.ts';
import { AhoCorasick } from './ac.ts';
import { Inspector } from './inspect.ts';
import { PacketPrefilter, type PacketPattern } from './packet-prefilter.ts';
import { applyTransforms } from './transforms.ts';
import { MULTI_BUFFERS } from '../rules/parse.ts';
import { numTest } from '../rules/rule.ts';
import type { FlagsOpts, Item, Rule, ThresholdOpts } from '../rules/rule.ts';
import { addrMatch4, addrMatch6, portMatch } from '../rules/vars.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type Packet } from '../packet.ts';
import { FLOW_ESTABLISHED, TCP_CLOSED, TCP_CLOSING, TCP_ESTABLISHED, TCP_SYN_RECV, TCP_SYN_SENT, type Flow } from '../flow.ts';

/** Threshold / detection_filter states (by_src, by_dst, by_both) held at most. */
export const MAX_THRESHOLD_KEYS = 100_000;
/** ... of them created by packets of one source address (by_dst keys: one per destination it reaches). */
export const MAX_THRESHOLD_KEYS_PER_SOURCE = 10_000;

const G_TCP = 0;
const G_UDP = 1;
const G_ICMP = 2;
const G_ICMP6 = 3;
const G_OTHER = 4;
const G_NONIP = 5;
const NGROUPS = 6;

function groupOf(p: Packet): number {
  if (p.ipVer === 0) return G_NONIP;
  switch (p.proto) {
    case PROTO_TCP: return G_TCP;
    case PROTO_UDP: return G_UDP;
    case PROTO_ICMP: return G_ICMP;
    case PROTO_ICMPV6: return G_ICMP6;
    default: return G_OTHER;
  }
}

class Group {
  readonly rules: Rule[] = [];
  ac: AhoCorasick | null = null;
  /** pattern id -> rule indices (into Detector.rules) */
  patternRules: Int32Array[] = [];
  /** Rules checked on every packet of the group (no payload fast pattern), by index. */
  always: Int32Array = new Int32Array(0);
  /**
   * Application rules without a payload fast pattern, by application
   * protocol: candidates only when the packet brings that protocol's buffers
   * (so the hundreds of tls.certs rules cost nothing on other packets).
   * Those with a fast pattern in an application buffer go through that
   * buffer's prefilter; the others are always candidates then.
   */
  alwaysApp = new Map<string, Int32Array>();
  appPrefilter = new Map<string, AppPrefilter[]>();
  /**
   * The fast patterns of the rules that inspect single TCP packets (tcp-pkt,
   * flow:no_stream), or null. A TCP packet of a tracked stream that brought
   * no new in-order bytes (past the stream depth, a retransmission, held
   * behind a gap) is looked at through this one only: no other rule of the
   * group could match its payload (Suricata stops content inspection at the
   * depth the same way).
   */
  packetPre: PacketPrefilter | null = null;
}

/** One application buffer's prefilter: an automaton over its rules' fast patterns. */
interface AppPrefilter {
  buffer: string;
  multi: boolean;
  ac: AhoCorasick;
  patternRules: Int32Array[];
}

/** What a packet offers besides its own bytes. */
export interface DetectContext {
  /** The TCP packet belongs to a reassembled stream: stream rules inspect `window`, not the packet. */
  streamActive: boolean;
  window: Uint8Array | null;
  windowLen: number;
  /** Bytes of the window delivered before this packet. */
  windowOld: number;
  /** Application buffers (HTTP, DNS, TLS) for this packet, or null. */
  app: Map<string, Uint8Array> | null;
  /** Application multi-buffers (dns.query, tls.certs, tls.alpn, http.request_header ...), or null. */
  appMulti: Map<string, Uint8Array[]> | null;
  /** The application protocol of `app` ('' with none). */
  appProto: string;
  /** The DNS message's opcode and rcode with DNS buffers (-1 otherwise). */
  dnsOpcode: number;
  dnsRcode: number;
  /** The TLS session's version with TLS buffers (0 unknown, -1 otherwise). */
  tlsVersion: number;
  /** Stream sizes for stream_size: bytes client->server, server->client. */
  streamClient: number;
  streamServer: number;
}

export interface Match {
  rule: Rule;
  /** Matched on the reassembled stream (not the packet alone). */
  stream: boolean;
}

export const MAX_ALERTS_PER_PACKET = 15;

export class Detector {
  readonly rules: Rule[];
  readonly groups: Group[] = [];
  readonly #inspector = new Inspector();
  /** Dedup stamp per rule. */
  readonly #stamp: Uint32Array;
  #gen = 1;
  readonly #cand: Int32Array;
  #ncand = 0;
  /** Sort rank: flowbit setters before everything else, then load order. */
  readonly #rank: Int32Array;
  /**
   * Bounded in total and per packet source (keys come from packet addresses:
   * a spoofed-source flood makes new ones at will); the oldest go first,
   * counted in `thresholdsEvicted`. The map never grows past the bound and
   * no new key walks it.
   */
  #thresholds = new BoundedMap<{ start: number; count: number }>(MAX_THRESHOLD_KEYS, MAX_THRESHOLD_KEYS_PER_SOURCE);
  readonly matches: Match[] = [];
  readonly counters = { packets: 0, candidates: 0, matches: 0, suppressed: 0, prefilterBytes: 0 };

  /** Threshold states evicted (the map full, or the source's share of it). */
  get thresholdsEvicted(): number {
    return this.#thresholds.counters.evicted + this.#thresholds.counters.groupEvicted;
  }

  constructor(rules: Rule[]) {
    this.rules = rules;
    const n = rules.length;
    this.#stamp = new Uint32Array(n);
    this.#cand = new Int32Array(n);
    const rank = rules.map((r, i) => ({ i, key: (r.setsBits ? 0 : 1) * 1e7 + i }));
    rank.sort((a, b) => a.key - b.key);
    this.#rank = new Int32Array(n);
    rank.forEach((x, pos) => { this.#rank[x.i] = pos; });
    for (let g = 0; g < NGROUPS; g++) this.groups.push(new Group());
    for (const r of rules) for (const g of groupsOfRule(r)) this.groups[g].rules.push(r);
    for (const g of this.groups) this.#build(g);
  }

  #build(g: Group): void {
    const patterns: Uint8Array[] = [];
    const byKey = new Map<string, number>();
    const lists: number[][] = [];
    const always: number[] = [];
    const alwaysApp = new Map<string, number[]>();
    // app -> buffer -> (pattern key -> rules)
    const appPats = new Map<string, Map<string, Map<string, { pat: Uint8Array; rules: number[] }>>>();
    const packetPats = new Map<string, PacketPattern>();
    for (const r of g.rules) {
      if (r.fast !== null && r.fastBuffer === 'payload' && isPacketRule(r)) {
        const key = `${r.fastExact === null ? 'i' : 'e'}${r.fastEnd} ${Buffer.from(r.fastExact ?? r.fast).toString('latin1')}`;
        const e = packetPats.get(key) ?? { lower: r.fast, exact: r.fastExact, end: r.fastEnd, rules: [], gate: [] };
        packetPats.set(key, e);
        e.rules.push(r.index);
        const need = neededBits(r);
        e.gate = need === null || e.gate === null ? null : [...new Set([...e.gate, ...need])];
      }
      if (r.fast === null || r.fastBuffer !== 'payload') {
        if (r.app === '') always.push(r.index);
        else if (r.fast !== null && !r.transforms.has(r.fastBuffer)) {
          const byBuf = appPats.get(r.app) ?? new Map<string, Map<string, { pat: Uint8Array; rules: number[] }>>();
          appPats.set(r.app, byBuf);
          const pats = byBuf.get(r.fastBuffer) ?? new Map<string, { pat: Uint8Array; rules: number[] }>();
          byBuf.set(r.fastBuffer, pats);
          const key = Buffer.from(r.fast).toString('latin1');
          const e = pats.get(key) ?? { pat: r.fast, rules: [] };
          pats.set(key, e);
          e.rules.push(r.index);
        } else {
          const l = alwaysApp.get(r.app) ?? [];
          l.push(r.index);
          alwaysApp.set(r.app, l);
        }
        continue;
      }
      const key = Buffer.from(r.fast).toString('latin1');
      let id = byKey.get(key);
      if (id === undefined) {
        id = patterns.length;
        byKey.set(key, id);
        patterns.push(r.fast);
        lists.push([]);
      }
      lists[id].push(r.index);
    }
    g.ac = patterns.length > 0 ? new AhoCorasick(patterns) : null;
    // A gate holds only while no rule that can run on a packet of the packet
    // prefilter's path (every rule but the stream rules found by the payload
    // automaton) sets one of its bits: such a rule could set it on this very packet.
    const settable = new Set<number>();
    for (const r of g.rules) {
      if (r.fast !== null && r.fastBuffer === 'payload' && !isPacketRule(r)) continue;
      for (const op of r.flowbits) if (op.cmd === 'set' || op.cmd === 'toggle') for (const b of op.bits) settable.add(b);
    }
    for (const e of packetPats.values()) if (e.gate !== null && e.gate.some((b) => settable.has(b))) e.gate = null;
    g.packetPre = packetPats.size > 0 ? new PacketPrefilter([...packetPats.values()]) : null;
    g.patternRules = lists.map((l) => Int32Array.from(l));
    g.always = Int32Array.from(always);
    for (const [app, l] of alwaysApp) g.alwaysApp.set(app, Int32Array.from(l));
    for (const [app, byBuf] of appPats) {
      const list: AppPrefilter[] = [];
      for (const [buffer, pats] of byBuf) {
        const es = [...pats.values()];
        list.push({ buffer, multi: MULTI_BUFFERS.has(buffer), ac: new AhoCorasick(es.map((e) => e.pat)), patternRules: es.map((e) => Int32Array.from(e.rules)) });
      }
      g.appPrefilter.set(app, list);
    }
  }

  /**
   * Take over the state of the detector this one replaces (a rule reload):
   * its threshold table (keyed by Rule.uid, which unchanged rules keep) and
   * its counters.
   */
  adopt(old: Detector): void {
    this.#thresholds = old.#thresholds;
    Object.assign(this.counters, old.counters);
  }

  /** Memory of the prefilter tables, bytes. */
  get prefilterBytes(): number {
    let n = 0;
    for (const g of this.groups) n += g.ac?.bytes ?? 0;
    return n;
  }

  #hit = (id: number): void => {
    const list = this.#curLists[id];
    const gen = this.#gen;
    for (let k = 0; k < list.length; k++) {
      const ri = list[k];
      if (this.#stamp[ri] !== gen) {
        this.#stamp[ri] = gen;
        this.#cand[this.#ncand++] = ri;
      }
    }
  };
  #curLists: Int32Array[] = [];

  /** Run every rule that can match p; the matches are left in `this.matches` (cleared first). */
  inspect(p: Packet, ctx: DetectContext, nowS: number): Match[] {
    const out = this.matches;
    out.length = 0;
    this.counters.packets++;
    const g = this.groups[groupOf(p)];
    if (g.rules.length === 0) return out;
    this.#gen = (this.#gen + 1) >>> 0;
    if (this.#gen === 0) {
      this.#stamp.fill(0);
      this.#gen = 1;
    }
    const gen = this.#gen;
    this.#ncand = 0;
    for (let k = 0; k < g.always.length; k++) {
      const ri = g.always[k];
      this.#stamp[ri] = gen;
      this.#cand[this.#ncand++] = ri;
    }
    if (ctx.app !== null) {
      const extra = g.alwaysApp.get(ctx.appProto);
      if (extra !== undefined) {
        for (let k = 0; k < extra.length; k++) {
          const ri = extra[k];
          this.#stamp[ri] = gen;
          this.#cand[this.#ncand++] = ri;
        }
      }
      const pre = g.appPrefilter.get(ctx.appProto);
      if (pre !== undefined) {
        for (const f of pre) {
          this.#curLists = f.patternRules;
          if (f.multi) {
            const list = ctx.appMulti?.get(f.buffer);
            if (list !== undefined) for (const b of list) f.ac.scan(b, 0, b.length, this.#hit);
          } else {
            const b = ctx.app.get(f.buffer);
            if (b !== undefined) f.ac.scan(b, 0, b.length, this.#hit);
          }
        }
      }
    }
    if (g.ac !== null) {
      this.#curLists = g.patternRules;
      // In-order TCP data: the window holds the packet's payload (and what came
      // before), so one scan serves stream and packet rules alike.
      if (ctx.streamActive && ctx.window !== null && ctx.windowLen > 0) {
        g.ac.scan(ctx.window, 0, ctx.windowLen, this.#hit);
        this.counters.prefilterBytes += ctx.windowLen;
      } else if (p.payLen > 0 && (!ctx.streamActive || p.proto !== PROTO_TCP)) {
        g.ac.scan(p.buf, p.payOff, p.payOff + p.payLen, this.#hit);
        this.counters.prefilterBytes += p.payLen;
      } else if (p.payLen > 0 && g.packetPre !== null) {
        this.#curLists = g.packetPre.patternRules;
        this.counters.prefilterBytes += g.packetPre.scan(p.buf, p.payOff, p.payLen, p.flow?.bits ?? null, this.#hit);
      }
    }
    const n = this.#ncand;
    if (n === 0) return out;
    this.counters.candidates += n;
    const cand = this.#cand.subarray(0, n);
    const rank = this.#rank;
    if (n > 1) cand.sort((a, b) => rank[a] - rank[b]);
    let passed = false;
    for (let k = 0; k < n; k++) {
      const r = this.rules[cand[k]];
      const m = this.#evaluate(r, p, ctx);
      if (m === 0) continue;
      this.counters.matches++;
      // The second copy of a forwarded packet (both sides mirrored) is the same packet: counted once.
      if (!p.secondCopy) r.hits++;
      if (r.action === 'pass') passed = true;
      // Post-match: flowbits, then thresholds decide whether it alerts.
      if (r.flowbits.length > 0 && p.flow !== null) applyFlowbits(r, p.flow);
      if (r.noalert) continue;
      if (!this.#thresholdAllows(r, p, nowS)) {
        this.counters.suppressed++;
        continue;
      }
      if (out.length < MAX_ALERTS_PER_PACKET) out.push({ rule: r, stream: m === 2 });
    }
    if (passed) {
      // pass wins over every other action (Suricata's default action-order).
      let w = 0;
      for (const m of out) if (m.rule.action === 'pass') out[w++] = m;
      out.length = w;
    }
    return out;
  }

  /** 0: no match; 1: matched on the packet; 2: matched on the stream window. */
  #evaluate(r: Rule, p: Packet, ctx: DetectContext): number {
    // Protocol.
    if (r.ipProto === -1) {
      if (p.ipVer === 0) return 0;
    } else if (r.ipProto >= 0) {
      if (p.proto !== r.ipProto || p.ipVer === 0) return 0;
    }
    if (r.app !== '' && (ctx.app === null || p.flow?.appProto !== r.app)) return 0;
    if (r.dnsOpcode !== null && (ctx.dnsOpcode < 0 || !numTest(r.dnsOpcode, ctx.dnsOpcode))) return 0;
    if (r.dnsRcode !== null && (ctx.dnsRcode < 0 || !numTest(r.dnsRcode, ctx.dnsRcode))) return 0;
    if (r.tlsVersion !== null && (ctx.tlsVersion <= 0 || (ctx.tlsVersion === r.tlsVersion.v) === r.tlsVersion.neg)) return 0;
    // Addresses and ports.
    if (!headerMatch(r, p)) return 0;
    const f = p.flow;
    // Flow.
    const fo = r.flow;
    if (fo !== null) {
      if (fo.toServer && (f === null || !p.toServer)) return 0;
      if (fo.toClient && (f === null || p.toServer)) return 0;
      if (fo.established && (f === null || !flowEstablished(f))) return 0;
      if (fo.notEstablished && f !== null && flowEstablished(f)) return 0;
      if (fo.onlyFrag && !p.pseudo) return 0;
      if (fo.noFrag && p.pseudo) return 0;
    }
    if (r.decodeEvents.length > 0) {
      for (const ev of r.decodeEvents) if (!p.hasEvent(ev)) return 0;
    }
    if (r.flags !== null) {
      if (p.proto !== PROTO_TCP || !p.l4Ok || !flagsMatch(r.flags, p.tcpFlags & 0xff)) return 0;
    }
    if (r.fragbits !== null) {
      if (p.ipVer !== 4) return 0;
      const bits = (p.mf ? 1 : 0) | (p.df ? 2 : 0) | (p.rf ? 4 : 0);
      if (!flagsMatch(r.fragbits, bits)) return 0;
    }
    if (r.fragoffset !== null && (p.ipVer !== 4 || !numTest(r.fragoffset, p.fragOff >> 3))) return 0;
    if (r.ipopts !== 0 && (p.ipOpts & r.ipopts) === 0) return 0;
    if (r.dsize !== null) {
      // As Suricata: dsize with >, >=, !=, a range or == N > 0 needs a payload (so "!9" skips empty packets).
      const d = r.dsize;
      if (p.isFragment || !numTest(d, p.payLen)) return 0;
      if (p.payLen === 0 && (d.op === 'gt' || d.op === 'ge' || d.op === 'ne' || d.op === 'range')) return 0;
    }
    if (r.itype !== null && (p.icmpType < 0 || !numTest(r.itype, p.icmpType))) return 0;
    if (r.icode !== null && (p.icmpCode < 0 || !numTest(r.icode, p.icmpCode))) return 0;
    if (r.icmpId !== null && (p.icmpId < 0 || !numTest(r.icmpId, p.icmpId))) return 0;
    if (r.icmpSeq !== null && (p.icmpSeq < 0 || !numTest(r.icmpSeq, p.icmpSeq))) return 0;
    if (r.ttl !== null && (p.ipVer === 0 || !numTest(r.ttl, p.ttl))) return 0;
    if (r.tos !== null && (p.ipVer !== 4 || !numTest(r.tos, p.tos))) return 0;
    if (r.ipId !== null && (p.ipVer !== 4 || !numTest(r.ipId, p.ipId))) return 0;
    if (r.ipProtoMatch !== null && (p.ipVer === 0 || !numTest(r.ipProtoMatch, p.proto))) return 0;
    if (r.window !== null && (p.proto !== PROTO_TCP || !p.l4Ok || !numTest(r.window, p.tcpWin))) return 0;
    if (r.ack !== null && (p.proto !== PROTO_TCP || !p.l4Ok || !numTest(r.ack, p.tcpAck))) return 0;
    if (r.seq !== null && (p.proto !== PROTO_TCP || !p.l4Ok || !numTest(r.seq, p.tcpSeq))) return 0;
    if (r.sameip && !sameIp(p)) return 0;
    if (r.streamSize !== null) {
      const s = r.streamSize;
      const c = ctx.streamClient;
      const sv = ctx.streamServer;
      const ok = s.which === 'client' ? numTest(s.m, c) : s.which === 'server' ? numTest(s.m, sv)
        : s.which === 'both' ? numTest(s.m, c) && numTest(s.m, sv) : numTest(s.m, c) || numTest(s.m, sv);
      if (!ok) return 0;
    }
    if (r.tcpSession.length > 0 && !tcpSessionMatch(r.tcpSession, f)) return 0;
    // Flowbit conditions.
    for (const op of r.flowbits) {
      if (op.cmd !== 'isset' && op.cmd !== 'isnotset') continue;
      const bits = f?.bits ?? null;
      let res: boolean;
      if (op.or) {
        res = false;
        for (const b of op.bits) if ((bits?.has(b) ?? false) === (op.cmd === 'isset')) res = true;
      } else {
        res = true;
        for (const b of op.bits) if ((bits?.has(b) ?? false) !== (op.cmd === 'isset')) res = false;
      }
      if (!res) return 0;
    }
    // Payload and other buffers.
    let result = 1;
    for (const [name, items] of r.buffers) {
      if (name === 'payload') {
        const m = this.#payload(r, items, p, ctx);
        if (m === 0) return 0;
        result = m;
      } else if (!this.#otherBuffer(r, name, items, p, ctx)) return 0;
    }
    return result;
  }

  #payload(r: Rule, items: Item[], p: Packet, ctx: DetectContext): number {
    const onlyStream = r.tcpMode === 'stream' || (r.flow?.onlyStream ?? false);
    const noStream = r.tcpMode === 'pkt' || (r.flow?.noStream ?? false);
    if (ctx.streamActive && p.proto === PROTO_TCP && !noStream) {
      if (ctx.window === null || ctx.windowLen === 0) return 0;
      return this.#inspector.match(items, ctx.window, 0, ctx.windowLen, ctx.windowOld) ? 2 : 0;
    }
    if (onlyStream && p.proto === PROTO_TCP) return 0;
    if (p.isFragment) return 0;
    return this.#inspector.match(items, p.buf, p.payOff, p.payLen) ? 1 : 0;
  }

  #otherBuffer(r: Rule, name: string, items: Item[], p: Packet, ctx: DetectContext): boolean {
    const b = p.buf;
    switch (name) {
      case 'tcp.hdr':
        return p.proto === PROTO_TCP && p.l4Ok && this.#inspector.match(items, b, p.l4, p.tcpHlen);
      case 'udp.hdr':
        return p.proto === PROTO_UDP && p.l4Ok && this.#inspector.match(items, b, p.l4, 8);
      case 'ipv4.hdr':
        return p.ipVer === 4 && this.#inspector.match(items, b, p.l3, p.ipHlen);
      case 'ipv6.hdr':
        return p.ipVer === 6 && this.#inspector.match(items, b, p.l3, 40);
      case 'icmpv4.hdr':
        return p.proto === PROTO_ICMP && p.l4Ok && this.#inspector.match(items, b, p.l4, p.icmpHlen);
      case 'icmpv6.hdr':
        return p.proto === PROTO_ICMPV6 && p.l4Ok && this.#inspector.match(items, b, p.l4, p.icmpHlen);
      default: {
        const tf = r.transforms.get(name);
        if (MULTI_BUFFERS.has(name)) {
          const list = ctx.appMulti?.get(name);
          if (list === undefined) return false;
          for (const one of list) {
            const buf = tf === undefined ? one : applyTransforms(tf, one);
            if (this.#inspector.match(items, buf, 0, buf.length)) return true;
          }
          return false;
        }
        const raw = ctx.app?.get(name);
        if (raw === undefined) return false;
        const buf = tf === undefined ? raw : applyTransforms(tf, raw);
        return this.#inspector.match(items, buf, 0, buf.length);
      }
    }
  }

  #thresholdAllows(r: Rule, p: Packet, nowS: number): boolean {
    const t = r.threshold;
    const d = r.detectionFilter;
    if (t === null && d === null) return true;
    let ok = true;
    if (d !== null) ok = this.#track(r, d, p, nowS, 'd');
    if (t !== null && ok) ok = this.#track(r, t, p, nowS, 't');
    return ok;
  }

  #track(r: Rule, t: ThresholdOpts, p: Packet, nowS: number, tag: string): boolean {
    let st: { start: number; count: number } | undefined;
    if (t.track === 'by_flow') {
      const f = p.flow;
      if (f === null) return true;
      f.thresholds ??= new Map();
      const key = r.uid * 2 + (tag === 'd' ? 1 : 0);
      st = f.thresholds.get(key);
      if (st === undefined) {
        st = { start: nowS, count: 0 };
        f.thresholds.set(key, st);
      }
    } else {
      const src = addrKey(p, true);
      const dst = addrKey(p, false);
      const who = t.track === 'by_src' ? src : t.track === 'by_dst' ? dst : t.track === 'by_both' ? `${src}>${dst}` : '';
      const key = `${tag}${r.uid}|${who}`;
      st = this.#thresholds.get(key);
      if (st === undefined) {
        st = { start: nowS, count: 0 };
        this.#thresholds.set(key, src, st);
      }
    }
    if (t.seconds > 0 && nowS - st.start >= t.seconds) {
      st.start = nowS;
      st.count = 0;
    }
    st.count++;
    switch (t.type) {
      case 'limit': return st.count <= t.count;
      case 'threshold':
        if (st.count >= t.count) {
          st.count = 0;
          return true;
        }
        return false;
      case 'both': return st.count === t.count;
      default: return st.count > t.count; // detection_filter
    }
  }

}

function groupsOfRule(r: Rule): number[] {
  switch (r.ipProto) {
    case -2: return [G_TCP, G_UDP, G_ICMP, G_ICMP6, G_OTHER, G_NONIP];
    case -1: return [G_TCP, G_UDP, G_ICMP, G_ICMP6, G_OTHER];
    case PROTO_TCP: return [G_TCP];
    case PROTO_UDP: return [G_UDP];
    case PROTO_ICMP: return [G_ICMP];
    case PROTO_ICMPV6: return [G_ICMP6];
    default: return [G_OTHER];
  }
}

function flowEstablished(f: Flow): boolean {
  if (f.proto === PROTO_TCP) return f.tcpState >= TCP_ESTABLISHED && f.tcpState !== TCP_CLOSED;
  return f.state === FLOW_ESTABLISHED;
}

function tcpSessionMatch(states: string[], f: Flow | null): boolean {
  if (f === null || f.proto !== PROTO_TCP) return false;
  const s = f.tcpState;
  const name = s === TCP_SYN_SENT || s === TCP_SYN_RECV ? 'setup' : s === TCP_ESTABLISHED ? 'established'
    : s === TCP_CLOSING ? 'closing' : s === TCP_CLOSED ? 'closed' : 'setup';
  return states.includes(name);
}

function flagsMatch(o: FlagsOpts, v: number): boolean {
  const x = v & ~o.ignore;
  switch (o.mode) {
    case 'none': return x === 0;
    case 'exact': return x === o.want;
    case 'plus': return (x & o.want) === o.want;
    case 'any': return (x & o.want) !== 0;
    default: return (x & o.want) === 0;
  }
}

function sameIp(p: Packet): boolean {
  if (p.ipVer === 4) return p.src4 === p.dst4;
  if (p.ipVer === 6) {
    for (let i = 0; i < 16; i++) if (p.buf[p.src6 + i] !== p.buf[p.dst6 + i]) return false;
    return true;
  }
  return false;
}

function hasPorts(p: Packet): boolean {
  return (p.proto === PROTO_TCP || p.proto === PROTO_UDP) && p.l4Ok;
}

function headerMatch(r: Rule, p: Packet): boolean {
  if (p.ipVer === 0) {
    return r.src.any && r.dst.any && r.sp.any && r.dp.any;
  }
  if (oneWay(r, p, false)) return true;
  return r.bidir && oneWay(r, p, true);
}

function oneWay(r: Rule, p: Packet, rev: boolean): boolean {
  const ports = hasPorts(p);
  const sp = rev ? p.dp : p.sp;
  const dp = rev ? p.sp : p.dp;
  if (!r.sp.any && (!ports || !portMatch(r.sp, sp))) return false;
  if (!r.dp.any && (!ports || !portMatch(r.dp, dp))) return false;
  if (p.ipVer === 4) {
    const s = rev ? p.dst4 : p.src4;
    const d = rev ? p.src4 : p.dst4;
    return addrMatch4(r.src, s) && addrMatch4(r.dst, d);
  }
  const s = rev ? p.dst6 : p.src6;
  const d = rev ? p.src6 : p.dst6;
  return addrMatch6(r.src, p.buf, s) && addrMatch6(r.dst, p.buf, d);
}

function applyFlowbits(r: Rule, f: Flow): void {
  for (const op of r.flowbits) {
    if (op.cmd === 'isset' || op.cmd === 'isnotset') continue;
    f.bits ??= new Set();
    for (const b of op.bits) {
      if (op.cmd === 'set') f.bits.add(b);
      else if (op.cmd === 'unset') f.bits.delete(b);
      else if (f.bits.has(b)) f.bits.delete(b);
      else f.bits.add(b);
    }
  }
}

function addrKey(p: Packet, src: boolean): string {
  if (p.ipVer === 4) return String((src ? p.src4 : p.dst4) >>> 0);
  if (p.ipVer === 6) return Buffer.from(p.buf.subarray(src ? p.src6 : p.dst6, (src ? p.src6 : p.dst6) + 16)).toString('hex');
  return '';
}

/** A rule that inspects single TCP packets, not the stream. */
function isPacketRule(r: Rule): boolean {
  return r.tcpMode === 'pkt' || (r.flow?.noStream ?? false);
}

/**
 * Flowbits of which a flow must have at least one for r to match (from its
 * first isset condition: any of an "|" list, the first of an "&" list), or
 * null: none needed.
 */
function neededBits(r: Rule): number[] | null {
  for (const op of r.flowbits) {
    if (op.cmd !== 'isset' || op.bits.length === 0) continue;
    return op.or ? op.bits : [op.bits[0]];
  }
  return null;
}
