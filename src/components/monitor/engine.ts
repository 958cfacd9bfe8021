// The monitor's engine, the same for live mirror traffic and offline
// captures: decode -> behavioural detectors -> defragmentation -> flow ->
// TCP reassembly -> HTTP -> detection -> EVE records. One Engine holds all
// state; memory is bounded by the limits of its parts.
import { Buffer } from 'node:buffer';
import { decode } from './decode.ts';
import { Defrag, DEFRAG_DEFAULTS, type DefragLimits } from './defrag.ts';
import { Detectors, DETECTOR_DEFAULTS, type DetectorConfig } from './detectors.ts';
import { Detector, type DetectContext, type Match } from './detect/detect.ts';
import { eventName, FIRST_DETECTOR_EVENT } from './events.ts';
import { flowRecord, flowSummary, packetBase, packetField, protoName, type EveContext } from './eve.ts';
import {
  Flow, FLOW_CLOSED, FLOW_DEFAULTS, FLOW_ESTABLISHED, FlowTable, TCP_CLOSED, TCP_CLOSING, TCP_ESTABLISHED,
  TCP_NONE, TCP_SYN_RECV, TCP_SYN_SENT, type FlowLimits,
} from './flow.ts';
import { HttpState, httpBuffers, httpEve, httpMulti, type HttpTx } from './http.ts';
import { parseDns, DnsTcpSide, type DnsMessage } from './dns.ts';
import { DNS_PORT, DnsFlow, dnsEve, dnsMulti } from './dns-app.ts';
import { TlsState, tlsBuffers, tlsEve, tlsMulti } from './tls.ts';
import { AppMemory } from './app-memory.ts';
import { LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, Packet, PROTO_TCP, PROTO_UDP } from './packet.ts';
import type { ClassType } from './rules/classification.ts';
import type { LoadResult } from './rules/parse.ts';
import type { Rule } from './rules/rule.ts';
import { carryOver } from './rules/swap.ts';
import { Reassembler, Stream, STREAM_DEFAULTS, type StreamLimits } from './stream.ts';
import { NO_TRACE, type Tracer } from '../../trace/tracer.ts';

export type EveType = 'alert' | 'anomaly' | 'flow' | 'stats' | 'http' | 'arp' | 'dns' | 'tls';
export const DEFAULT_EVE_TYPES: readonly EveType[] = ['alert', 'anomaly', 'flow', 'stats', 'http', 'dns', 'tls'];

/** An application message parsed from this packet, waiting for detection and logging. */
interface DnsPending {
  flow: Flow;
  dns: DnsFlow;
  msg: DnsMessage;
  tx: number;
}

const NO_BUFFERS: Map<string, Uint8Array> = new Map();

export interface EngineOptions {
  rules: LoadResult;
  /** Replaced by replaceRules when a reload brings a new classification table. */
  classifications: Map<string, ClassType>;
  flow?: FlowLimits;
  defrag?: DefragLimits;
  stream?: StreamLimits;
  detectors?: DetectorConfig;
  /** Pick up TCP connections without their handshake (Suricata's stream.midstream). */
  midstream?: boolean;
  eveTypes?: readonly EveType[];
  eve: EveContext;
  /** Receives every EVE line (no newline). */
  emit: (line: string, type: EveType) => void;
  /** Called for every alert (after thresholds), e.g. for block feedback. */
  onAlert?: (rule: Rule, p: Packet) => void;
  /** Tracepoints monitor.decode / monitor.detectors / monitor.inspect (default: none). */
  tracer?: Tracer;
}

export class Engine {
  /** Replaced as a whole by replaceRules (a rule reload); read once per packet. */
  detector: Detector;
  readonly flows: FlowTable;
  readonly defrag: Defrag;
  readonly stream: Reassembler;
  readonly detectors: Detectors;
  rules: LoadResult;
  /** Rule reloads applied (replaceRules). */
  reloads = 0;
  readonly #opts: EngineOptions;
  readonly #types: Set<EveType>;
  readonly #p = new Packet();
  readonly #pseudo = new Packet();
  readonly #ctx: DetectContext = {
    streamActive: false, window: null, windowLen: 0, windowOld: 0, app: null, appMulti: null, appProto: '', dnsOpcode: -1, dnsRcode: -1, tlsVersion: -1,
    streamClient: 0, streamServer: 0,
  };
  /** DNS messages of the current packet (reused; emptied per packet). */
  readonly #dnsPending: DnsPending[] = [];
  /** Application-layer counters: malformed messages are counted, never thrown. */
  /** The application parsers' shared buffer budget (TLS handshakes, DNS over TCP). */
  readonly appMemory = new AppMemory();
  readonly appStats = { dnsMessages: 0, dnsMalformed: 0, dnsTcpGivenUp: 0, tlsSessions: 0, tlsMalformed: 0, tlsBadCerts: 0 };
  #nowMs = 0;
  #lastSweep = 0;
  readonly #tr: Tracer;
  readonly #pDecode: number;
  readonly #pDetectors: number;
  readonly #pInspect: number;
  readonly #pSecond: number;
  /**
   * The mirror's second copies of forwarded packets raise no alert, so only
   * the rules that set, unset or toggle a flowbit (state that later packets
   * of the flow read) need to see them: they run through a detector of their
   * own. Without such a rule a second copy is counted and dropped before
   * decoding (half the monitor's work when both sides of a forwarded flow
   * are mirrored).
   */
  readonly #secondDetector: Detector | null;
  readonly startedAt = Date.now();
  /** Counters, as Suricata's stats names them (decoder.*, detect.*, flow.*). */
  readonly stats = {
    pkts: 0, bytes: 0, invalid: 0, ipv4: 0, ipv6: 0, ethernet: 0, arp: 0, tcp: 0, udp: 0, icmpv4: 0, icmpv6: 0,
    vlan: 0, fragments: 0, alerts: 0, anomalies: 0, secondCopies: 0, secondCopiesSkipped: 0, events: new Map<string, number>(),
  };

  /** Fragments seen and datagrams rebuilt, IPv4 [0] and IPv6 [1] (Suricata's defrag.ipv4.* / defrag.ipv6.*). */
  readonly fragStats = [{ fragments: 0, reassembled: 0 }, { fragments: 0, reassembled: 0 }];

  constructor(opts: EngineOptions) {
    this.#opts = opts;
    const tr = (this.#tr = opts.tracer ?? NO_TRACE);
    this.#pDecode = tr.proc('monitor.decode');
    this.#pDetectors = tr.proc('monitor.detectors');
    this.#pInspect = tr.proc('monitor.inspect');
    this.#pSecond = tr.proc('monitor.second_copy');
    this.rules = opts.rules;
    this.#types = new Set(opts.eveTypes ?? DEFAULT_EVE_TYPES);
    this.detector = new Detector(opts.rules.rules);
    this.flows = new FlowTable(opts.flow ?? FLOW_DEFAULTS);
    this.flows.onEnd = (f, reason) => this.#flowEnd(f, reason);
    this.defrag = new Defrag(opts.defrag ?? DEFRAG_DEFAULTS);
    this.stream = new Reassembler(opts.stream ?? STREAM_DEFAULTS);
    this.detectors = new Detectors(opts.detectors ?? DETECTOR_DEFAULTS);
    const setters = opts.rules.rules.filter((r) => r.flowbits.some((op) => op.cmd !== 'isset' && op.cmd !== 'isnotset'));
    // The detector indexes its rules by position: the subset gets its own indexes.
    this.#secondDetector = setters.length === 0 ? null : new Detector(setters.map((r, i) => ({ ...r, index: i })));
  }


  /**
   * Use the rule set `next` for the next packets (a rule reload). Flows,
   * streams, defragmentation and detector state stay; flowbits keep their
   * meaning (load `next` with `flowbits: this.rules.flowbitNames`); unchanged
   * rules keep their hit counters and threshold state (rules/swap.ts). Call
   * it between packets: the swap is one assignment, no packet sees half of it.
   */
  replaceRules(next: LoadResult, classifications?: Map<string, ClassType>, built?: Detector): void {
    carryOver(this.rules, next);
    // The prefilter automata may have been built beforehand (a reload's dry run), so the swap itself is short.
    const d = built ?? new Detector(next.rules);
    d.adopt(this.detector);
    this.detector = d;
    this.rules = next;
    if (classifications !== undefined) this.#opts.classifications = classifications;
    this.reloads++;
  }

  /**
   * One captured frame: buf[off, off+len) with its link type, capture time
   * and (offline) its position in the capture; (live) its mirror domain and
   * direction.
   */
  process(buf: Uint8Array, off: number, len: number, linktype: number, tsSec: number, tsUsec: number,
    pcapCnt = 0, domain = -1, txDir = 0, secondCopy = false): void {
    if (secondCopy && this.#secondDetector === null) {
      const t = this.#tr.begin();
      this.stats.pkts++;
      this.stats.bytes += len;
      this.stats.secondCopies++;
      this.stats.secondCopiesSkipped++;
      this.#tr.end(this.#pSecond, t, len);
      return;
    }
    const p = this.#p;
    p.reset(buf, off, len);
    p.tsSec = tsSec;
    p.tsUsec = tsUsec;
    p.pcapCnt = pcapCnt;
    p.domain = domain;
    p.txDir = txDir;
    p.secondCopy = secondCopy;
    this.#nowMs = tsSec * 1000 + tsUsec / 1000;
    // Stages chained: decode (and counting), the scan/flood detectors, then
    // defragmentation, flow, stream reassembly and rule matching.
    const tr = this.#tr;
    let t = tr.begin();
    decode(p, linktype);
    this.#count(p);
    t = tr.end(this.#pDecode, t, len);
    if (!secondCopy) this.detectors.observe(p, tsSec + tsUsec / 1e6);
    t = tr.end(this.#pDetectors, t);
    this.#handle(p);
    tr.end(this.#pInspect, t);
    if (this.#nowMs - this.#lastSweep >= 1000) {
      this.#lastSweep = this.#nowMs;
      this.flows.sweep(this.#nowMs);
      this.defrag.sweep(this.#nowMs);
    }
  }

  #count(p: Packet): void {
    const s = this.stats;
    s.pkts++;
    s.bytes += p.len;
    if (p.invalid) s.invalid++;
    if (p.eth >= 0) s.ethernet++;
    if (p.vlanCount > 0) s.vlan++;
    if (p.arp >= 0) s.arp++;
    if (p.ipVer === 4) s.ipv4++;
    else if (p.ipVer === 6) s.ipv6++;
    if (p.isFragment) s.fragments++;
    else if (p.l4Ok) {
      if (p.proto === 6) s.tcp++;
      else if (p.proto === 17) s.udp++;
      else if (p.proto === 1) s.icmpv4++;
      else if (p.proto === 58) s.icmpv6++;
    }
  }

  #handle(p: Packet): void {
    const ctx = this.#ctx;
    ctx.streamActive = false;
    ctx.window = null;
    ctx.windowLen = 0;
    ctx.windowOld = 0;
    ctx.app = null;
    ctx.appMulti = null;
    ctx.appProto = '';
    ctx.dnsOpcode = -1;
    ctx.dnsRcode = -1;
    ctx.tlsVersion = -1;
    this.#dnsPending.length = 0;
    ctx.streamClient = 0;
    ctx.streamServer = 0;
    let rebuilt: Uint8Array | null = null;
    let httpDone: HttpTx[] | null = null;
    if (p.isFragment) {
      rebuilt = this.defrag.add(p, this.#nowMs);
      const fs = this.fragStats[p.ipVer === 6 ? 1 : 0];
      fs.fragments++;
      if (rebuilt !== null) fs.reassembled++;
    } else if (p.ipVer !== 0) {
      const f = this.flows.lookup(p, this.#nowMs);
      if (f !== null && !f.passed) {
        if (f.pktsToServer === 0 && f.pktsToClient === 0) f.secondCopy = p.secondCopy;
        if (!p.secondCopy) this.detectors.flowPacket(p, f, this.#nowMs / 1000);
        httpDone = this.#track(f, p);
      }
    }
    if (p.arp >= 0 && this.#types.has('arp')) this.#arpRecord(p);
    this.#detectAndLog(p, ctx);
    // HTTP transactions whose request completed with this packet: detection with the http buffers.
    if (httpDone !== null) {
      for (const tx of httpDone) {
        this.#httpContext(tx);
        this.#detectApp(p, ctx);
        if (tx.respDone && !tx.logged && p.flow !== null) this.#httpRecord(p.flow, p, tx);
      }
    }
    if (this.#dnsPending.length > 0) this.#dnsDetectAndLog(p);
    const pf = p.flow;
    if (pf !== null && pf.app instanceof TlsState) this.#tlsDetectAndLog(p, pf, pf.app);
    if (rebuilt !== null) {
      const q = this.#pseudo;
      q.reset(rebuilt, 0, rebuilt.length);
      q.tsSec = p.tsSec;
      q.tsUsec = p.tsUsec;
      q.pcapCnt = 0;
      q.domain = p.domain;
      q.txDir = p.txDir;
      q.secondCopy = p.secondCopy;
      decode(q, (rebuilt[0] >> 4) === 6 ? LINKTYPE_IPV6 : LINKTYPE_IPV4);
      q.pseudo = true;
      q.linktype = p.linktype;
      if (q.ipVer !== 0 && !q.isFragment) {
        const f = this.flows.lookup(q, this.#nowMs);
        this.#dnsPending.length = 0;
        const done = f !== null ? this.#track(f, q) : null;
        this.#detectAndLog(q, ctx);
        if (this.#dnsPending.length > 0) this.#dnsDetectAndLog(q);
        if (done !== null) {
          for (const tx of done) {
            this.#httpContext(tx);
            this.#detectApp(q, ctx);
          }
        }
      }
    }
  }

  /** Flow and TCP state, reassembly, HTTP. Returns HTTP transactions whose request just completed. */
  #track(f: Flow, p: Packet): HttpTx[] | null {
    const ctx = this.#ctx;
    f.lastSec = p.tsSec;
    f.lastUsec = p.tsUsec;
    f.lastMs = this.#nowMs;
    if (p.toServer) {
      f.pktsToServer++;
      f.bytesToServer += p.len;
    } else {
      f.pktsToClient++;
      f.bytesToClient += p.len;
    }
    if (f.proto !== PROTO_TCP) {
      if (f.pktsToServer > 0 && f.pktsToClient > 0 && f.state !== FLOW_ESTABLISHED) f.state = FLOW_ESTABLISHED;
      // DNS over UDP: port 53 and a message that parses (two number compares for every other flow).
      if (f.proto === PROTO_UDP && p.l4Ok && p.payLen > 0 && (f.appProto === 'dns' || (f.appProto === '' && (f.sp === DNS_PORT || f.dp === DNS_PORT)))) {
        this.#dnsMessage(f, p.buf, p.payOff, p.payLen);
      }
      return null;
    }
    if (!p.l4Ok) return null;
    const fl = p.tcpFlags;
    const syn = (fl & 0x02) !== 0;
    const ack = (fl & 0x10) !== 0;
    const dir = p.toServer ? 0 : 1;
    if (f.tcpState === TCP_NONE) {
      if (syn && !ack && p.toServer) f.tcpState = TCP_SYN_SENT;
      else if (syn && ack && !p.toServer && this.#opts.midstream === true) f.tcpState = TCP_SYN_RECV;
      else if (this.#opts.midstream === true && ack && f.pktsToServer + f.pktsToClient === 1) {
        f.tcpState = TCP_ESTABLISHED;
        f.midstream = true;
        f.state = FLOW_ESTABLISHED;
      }
    } else if (f.tcpState === TCP_SYN_SENT && syn && ack && !p.toServer) f.tcpState = TCP_SYN_RECV;
    else if (f.tcpState === TCP_SYN_RECV && ack && !syn && p.toServer) {
      f.tcpState = TCP_ESTABLISHED;
      f.state = FLOW_ESTABLISHED;
    }
    if ((fl & 0x04) !== 0 && f.tcpState !== TCP_NONE) {
      f.tcpState = TCP_CLOSED;
      f.state = FLOW_CLOSED;
    } else if ((fl & 0x01) !== 0 && f.tcpState >= TCP_ESTABLISHED) {
      if (p.toServer) f.finClient = true;
      else f.finServer = true;
      f.tcpState = f.finClient && f.finServer ? TCP_CLOSED : TCP_CLOSING;
      if (f.tcpState === TCP_CLOSED) f.state = FLOW_CLOSED;
    }
    if (f.tcpState === TCP_NONE) return null;
    // Reassembly.
    let s = f.streams[dir];
    if (s === null) {
      s = new Stream();
      f.streams[dir] = s;
    }
    if (syn) this.stream.syn(s, p.tcpSeq);
    ctx.streamActive = true;
    const c = f.streams[0];
    const sv = f.streams[1];
    ctx.streamClient = c?.offset ?? 0;
    ctx.streamServer = sv?.offset ?? 0;
    if (p.payLen === 0) return null;
    const added = this.stream.segment(s, p.tcpSeq, p.buf, p.payOff, p.payLen);
    if (added === 0) return null;
    const st = this.stream;
    ctx.window = st.window;
    ctx.windowLen = st.windowLen;
    ctx.windowOld = st.windowOld;
    if (p.toServer) ctx.streamClient = s.offset;
    else ctx.streamServer = s.offset;
    // HTTP on any port: recognised by the first bytes the client sends.
    if (f.app === null && f.appProto === '' && p.toServer && st.windowOffset === 0) {
      if (HttpState.detect(st.window, st.windowOld, st.windowLen - st.windowOld)) {
        f.app = new HttpState();
        f.appProto = 'http';
      } else if (TlsState.detect(st.window, st.windowOld, st.windowLen - st.windowOld)) {
        f.app = new TlsState(this.appMemory);
        f.appProto = 'tls';
        this.appStats.tlsSessions++;
      } else if (f.sp === DNS_PORT || f.dp === DNS_PORT) {
        f.app = new DnsFlow();
        f.appProto = 'dns';
      } else f.appProto = 'unknown';
    }
    if (f.app instanceof TlsState) {
      const t = f.app;
      if (t.feed(p.toServer ? 0 : 1, st.window, st.windowOld, st.windowLen - st.windowOld)) t.dirtyPkts = f.pktsToServer + f.pktsToClient;
      return null;
    }
    if (f.app instanceof DnsFlow) {
      const d = f.app;
      const side = (d.tcp[dir] ??= new DnsTcpSide(this.appMemory));
      const was = side.failed;
      side.feed(st.window, st.windowOld, st.windowLen - st.windowOld, (b, o, n) => this.#dnsMessage(f, b, o, n));
      if (side.failed && !was) this.appStats.dnsTcpGivenUp++;
      return null;
    }
    if (f.app instanceof HttpState) {
      const h = f.app;
      if (p.toServer) return h.toServer(st.window, st.windowOld, st.windowLen - st.windowOld);
      for (const tx of h.toClient(st.window, st.windowOld, st.windowLen - st.windowOld)) this.#httpRecord(f, p, tx);
    }
    return null;
  }

  /** One DNS message of flow f: parsed (or counted as malformed), queued for detection and logging. */
  #dnsMessage(f: Flow, b: Uint8Array, off: number, len: number): void {
    const m = parseDns(b, off, len);
    if (m === null) {
      this.appStats.dnsMalformed++;
      return;
    }
    this.appStats.dnsMessages++;
    let d: DnsFlow;
    if (f.app instanceof DnsFlow) d = f.app;
    else {
      d = new DnsFlow();
      f.app = d;
      f.appProto = 'dns';
    }
    this.#dnsPending.push({ flow: f, dns: d, msg: m, tx: d.txOf(m) });
  }

  #httpContext(tx: HttpTx): void {
    const ctx = this.#ctx;
    ctx.app = httpBuffers(tx);
    ctx.appMulti = httpMulti(tx);
    ctx.appProto = 'http';
    ctx.streamActive = false;
  }

  /** The DNS messages of this packet: rules with their buffers, then EVE "dns" records. */
  #dnsDetectAndLog(p: Packet): void {
    const ctx = this.#ctx;
    for (const e of this.#dnsPending) {
      ctx.app = NO_BUFFERS;
      ctx.appMulti = dnsMulti(e.msg);
      ctx.appProto = 'dns';
      ctx.dnsOpcode = e.msg.opcode;
      ctx.dnsRcode = e.msg.rcode;
      ctx.streamActive = false;
      // A second copy: only the flowbit setters (its flow's state); the first copy alerted and logged.
      if (p.secondCopy) {
        this.#secondDetector?.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
        continue;
      }
      const matches = this.detector.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
      let w = 0;
      for (const m of matches) {
        if (m.rule.app === '') continue;
        if (m.rule.configNoLog) e.dns.skipLog(e.tx);
        else matches[w++] = m;
      }
      matches.length = w;
      if (matches.length > 0) this.#alerts(p, matches);
      if (this.#types.has('dns') && !e.flow.secondCopy && !e.dns.noLog.has(e.tx)) {
        for (const o of dnsEve(e.msg, e.tx)) {
          const r = packetBase(p, 'dns', this.#opts.eve);
          delete r.ether;
          r.tx_id = e.tx;
          r.dns = o;
          this.#opts.emit(JSON.stringify(r), 'dns');
        }
      }
    }
    this.#dnsPending.length = 0;
    ctx.dnsOpcode = -1;
    ctx.dnsRcode = -1;
  }

  /**
   * TLS rules see a session once something new was parsed: when the server
   * has answered (its ServerHello and later messages), or, for a ClientHello
   * the server does not answer, at the client's next packet. One alert per
   * rule per session. The EVE "tls" record once the server ends its handshake.
   */
  #tlsDetectAndLog(p: Packet, f: Flow, t: TlsState): void {
    if (t.dirty && (t.serverHello || (p.toServer && f.pktsToServer + f.pktsToClient > t.dirtyPkts))) {
      t.dirty = false;
      const ctx = this.#ctx;
      ctx.app = tlsBuffers(t);
      ctx.appMulti = tlsMulti(t);
      ctx.appProto = 'tls';
      ctx.tlsVersion = t.version;
      ctx.streamActive = false;
      if (p.secondCopy) this.#secondDetector?.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
      else {
        const matches = this.detector.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
        let w = 0;
        for (const m of matches) {
          if (m.rule.app === '' || t.alerted.has(m.rule.index)) continue;
          t.alerted.add(m.rule.index);
          matches[w++] = m;
        }
        matches.length = w;
        if (matches.length > 0) this.#alerts(p, matches);
      }
    }
    if (t.serverDone && !t.logged) {
      t.logged = true;
      if (!this.#types.has('tls') || f.secondCopy) return;
      const r = packetBase(p, 'tls', this.#opts.eve);
      if (!p.toServer) {
        [r.src_ip, r.dest_ip] = [r.dest_ip, r.src_ip];
        [r.src_port, r.dest_port] = [r.dest_port, r.src_port];
      }
      delete r.ether;
      r.tls = tlsEve(t);
      this.#opts.emit(JSON.stringify(r), 'tls');
    }
  }

  #detectAndLog(p: Packet, ctx: DetectContext): void {
    // The second copy of a forwarded packet: the flowbit setters keep its
    // flow's state; the first copy raised the alerts.
    if (p.secondCopy) {
      this.#secondDetector?.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
      this.stats.secondCopies++;
      return;
    }
    const matches = this.detector.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
    if (p.nEvents > 0) this.#anomalies(p);
    if (matches.length > 0) this.#alerts(p, matches);
  }

  #detectApp(p: Packet, ctx: DetectContext): void {
    if (p.secondCopy) {
      this.#secondDetector?.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
      return;
    }
    const matches = this.detector.inspect(p, ctx, p.tsSec + p.tsUsec / 1e6);
    // Only the rules that needed the application buffers are new here.
    let w = 0;
    for (const m of matches) if (m.rule.app !== '') matches[w++] = m;
    matches.length = w;
    if (matches.length > 0) this.#alerts(p, matches);
  }

  #anomalies(p: Packet): void {
    for (let i = 0; i < p.nEvents; i++) {
      const name = eventName(p.events[i]);
      const ev = this.stats.events;
      ev.set(name, (ev.get(name) ?? 0) + 1);
      this.stats.anomalies++;
      if (!this.#types.has('anomaly')) continue;
      const r = packetBase(p, 'anomaly', this.#opts.eve);
      const det = p.events[i] >= FIRST_DETECTOR_EVENT;
      r.anomaly = { type: det ? 'detector' : 'decode', event: det ? name : `decoder.${name}` };
      if (this.#opts.eve.pcapFilename !== '') r.pcap_filename = this.#opts.eve.pcapFilename;
      this.#opts.emit(JSON.stringify(r), 'anomaly');
    }
  }

  #alerts(p: Packet, matches: Match[]): void {
    const eve = this.#opts.eve;
    for (const m of matches) {
      const rule = m.rule;
      if (rule.action === 'pass' || rule.configNoLog) continue;
      this.stats.alerts++;
      if (p.flow !== null) p.flow.alerted = true;
      this.#opts.onAlert?.(rule, p);
      if (!this.#types.has('alert')) continue;
      const r = packetBase(p, 'alert', eve);
      if (p.flow !== null) r.direction = p.toServer ? 'to_server' : 'to_client';
      const ct = rule.classtype === '' ? undefined : this.#opts.classifications.get(rule.classtype);
      const a: Record<string, unknown> = {
        action: 'allowed',
        gid: rule.gid,
        signature_id: rule.sid,
        rev: rule.rev,
        signature: rule.msg,
        category: ct?.description ?? '',
        severity: rule.priority,
      };
      if (Object.keys(rule.metadata).length > 0) a.metadata = rule.metadata;
      r.alert = a;
      if (p.flow !== null) {
        if (p.flow.appProto !== '' && p.flow.appProto !== 'unknown') r.app_proto = p.flow.appProto;
        r.flow = { ...flowSummary(p.flow), src_ip: r.src_ip, dest_ip: r.dest_ip };
      }
      if (p.flow !== null && p.flow.app instanceof TlsState) r.tls = tlsEve(p.flow.app);
      if (m.stream) r.stream = 1;
      if (eve.packetBytes > 0) {
        r.packet = packetField(p, eve.packetBytes);
        r.packet_info = { linktype: p.linktype };
      }
      r.verdict = { action: 'alert' };
      if (eve.pcapFilename !== '') r.pcap_filename = eve.pcapFilename;
      this.#opts.emit(JSON.stringify(r), 'alert');
    }
  }

  #httpRecord(f: Flow, p: Packet, tx: HttpTx): void {
    if (tx.logged) return;
    tx.logged = true;
    if (!this.#types.has('http') || f.secondCopy) return;
    const r = packetBase(p, 'http', this.#opts.eve);
    // HTTP records are oriented client -> server.
    if (!p.toServer) {
      [r.src_ip, r.dest_ip] = [r.dest_ip, r.src_ip];
      [r.src_port, r.dest_port] = [r.dest_port, r.src_port];
    }
    delete r.ether;
    r.tx_id = tx.id;
    r.http = httpEve(tx);
    void f;
    this.#opts.emit(JSON.stringify(r), 'http');
  }

  #arpRecord(p: Packet): void {
    const b = p.buf;
    const a = p.arp;
    const r = packetBase(p, 'arp', this.#opts.eve);
    const op = (b[a + 6] << 8) | b[a + 7];
    const ip = (o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
    const mac = (o: number): string => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
    r.arp = {
      hw_type: 'ethernet',
      proto_type: 'ipv4',
      opcode: op === 1 ? 'request' : op === 2 ? 'reply' : op === 3 ? 'rarp_request' : op === 4 ? 'rarp_reply' : String(op),
      src_mac: mac(a + 8),
      src_ip: ip(a + 14),
      dest_mac: mac(a + 18),
      dest_ip: ip(a + 24),
    };
    this.#opts.emit(JSON.stringify(r), 'arp');
  }

  #flowEnd(f: Flow, reason: string): void {
    for (const s of f.streams) if (s !== null) this.stream.free(s);
    if (f.app instanceof HttpState) {
      for (const tx of f.app.close()) {
        if (!tx.logged && this.#types.has('http')) {
          tx.logged = true;
          const r: Record<string, unknown> = { timestamp: flowRecordTs(f), flow_id: f.id, event_type: 'http' };
          r.tx_id = tx.id;
          r.http = httpEve(tx);
          this.#opts.emit(JSON.stringify(r), 'http');
        }
      }
    }
    if (f.app instanceof DnsFlow) for (const side of f.app.tcp) side?.release();
    if (f.app instanceof TlsState) {
      const t = f.app;
      t.release();
      this.appStats.tlsMalformed += t.malformed;
      if (t.certs.length > 0 && t.cert === null) this.appStats.tlsBadCerts++;
      if (!t.logged && t.clientHello && this.#types.has('tls') && !f.secondCopy) {
        t.logged = true;
        this.#opts.emit(JSON.stringify({ timestamp: flowRecordTs(f), flow_id: f.id, event_type: 'tls', tls: tlsEve(t) }), 'tls');
      }
    }
    if (this.#types.has('flow') && !f.secondCopy) this.#opts.emit(flowRecord(f, reason, this.#opts.eve), 'flow');
  }

  /** End of input (offline) or shutdown: end every flow, then a stats record. */
  finish(reason = 'shutdown'): void {
    this.flows.flushAll(reason);
    if (this.#types.has('stats')) this.#opts.emit(JSON.stringify(this.statsRecord()), 'stats');
  }

  /** Live: periodic timeouts without packets. */
  tick(nowMs: number): void {
    this.#nowMs = nowMs;
    this.flows.sweep(nowMs);
    this.defrag.sweep(nowMs);
  }

  statsRecord(): Record<string, unknown> {
    const s = this.stats;
    const now = Date.now();
    const events: Record<string, Record<string, number>> = {};
    for (const [name, n] of s.events) {
      const [layer, ev] = name.split('.');
      (events[layer] ??= {})[ev] = n;
    }
    return {
      timestamp: formatNow(now),
      event_type: 'stats',
      stats: {
        uptime: Math.round((now - this.startedAt) / 1000),
        decoder: {
          pkts: s.pkts, bytes: s.bytes, invalid: s.invalid, ipv4: s.ipv4, ipv6: s.ipv6, ethernet: s.ethernet, arp: s.arp,
          tcp: s.tcp, udp: s.udp, icmpv4: s.icmpv4, icmpv6: s.icmpv6, vlan: s.vlan,
          avg_pkt_size: s.pkts === 0 ? 0 : Math.round(s.bytes / s.pkts), event: events,
        },
        defrag: {
          ipv4: { ...this.fragStats[0] },
          ipv6: { ...this.fragStats[1] },
          max_trackers_reached: this.defrag.counters.trackersFull, memcap_exceeded: this.defrag.counters.memcap,
          source_evicted: this.defrag.counters.sourceEvicted,
          overlaps: this.defrag.counters.overlaps, too_large: this.defrag.counters.tooLarge, timeouts: this.defrag.counters.timeouts,
        },
        flow: {
          total: this.flows.counters.created, active: this.flows.count, timeouts: this.flows.counters.timeouts,
          evicted: this.flows.counters.evicted, source_evicted: this.flows.counters.sourceEvicted,
          chain_full: this.flows.counters.chainFull,
        },
        tcp: {
          segments: this.stream.counters.segments, retransmissions: this.stream.counters.retransmissions,
          out_of_order: this.stream.counters.outOfOrder, gaps: this.stream.counters.gaps,
          depth_reached: this.stream.counters.depthReached, memcap_exceeded: this.stream.counters.memcap,
          reassembly_memuse: this.stream.bytes,
        },
        detect: {
          alert: s.alerts,
          alerts_suppressed: this.detector.counters.suppressed,
          thresholds_evicted: this.detector.thresholdsEvicted,
          detectors_evicted: this.detectors.evictions.evicted, detectors_source_evicted: this.detectors.evictions.sourceEvicted,
          engines: [{ id: 0, rules_loaded: this.rules.rules.length, rules_failed: this.rules.errors.length, rules_skipped: this.rules.skipped.length }],
        },
        ips: { accepted: s.pkts, blocked: 0, rejected: 0, replaced: 0 },
        app_layer: {
          dns: { messages: this.appStats.dnsMessages, malformed: this.appStats.dnsMalformed, tcp_given_up: this.appStats.dnsTcpGivenUp },
          tls: { sessions: this.appStats.tlsSessions, malformed: this.appStats.tlsMalformed, bad_certificates: this.appStats.tlsBadCerts },
          memuse: this.appMemory.used, memcap_exceeded: this.appMemory.denied,
        },
      },
    };
  }
}

function formatNow(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}.${String((ms % 1000) * 1000).padStart(6, '0')}+0000`;
}

function flowRecordTs(f: Flow): string {
  const iso = new Date(f.lastSec * 1000).toISOString();
  return `${iso.slice(0, 19)}.${String(f.lastUsec).padStart(6, '0')}+0000`;
}

void Buffer;
void protoName;
void LINKTYPE_ETHERNET;
