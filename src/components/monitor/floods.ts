// Flood detection that does not depend on one destination: the rate of
// half-open requests, counted sensor-wide and per destination network, over
// a short burst window (milliseconds) and a sustained one (seconds).
//
// A half-open request is a flow that asks and is not answered: a new TCP
// flow opened by a bare SYN, a new UDP flow, a new ICMP/ICMPv6 echo flow
// (flows as the monitor's flow table keys them). The first packet back from
// the destination (SYN/ACK or RST, a UDP reply, an echo reply) answers it and
// takes it off the meters it was counted in, if their window still holds it.
// So a scanner whose probes are answered (RST from closed ports) or a busy
// but healthy server does not read as a flood, while SYNs or datagrams from
// random sources to addresses that never answer (the SYN flood spread over
// many destinations) or to a victim that can no longer answer do.
//
// Each meter raises its event at most once per sustained window (a
// network's event stands for the sensor-wide one too). Per-network
// meters are bounded (BoundedMap, oldest evicted); the sensor-wide ones are
// three fixed objects. An answer forged by the attacker (a spoofed RST from
// the victim's network) can lower a meter; the per-destination SYN counter
// in detectors.ts does not subtract answers and stays as a second line.
import { BoundedMap } from './bounded-map.ts';
import { EV } from './events.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type Packet } from './packet.ts';

/** Thresholds of one protocol's meters: counts per burst window and per second. */
export interface FloodLimits {
  enabled: boolean;
  /** Half-open requests in one burst window, sensor-wide. */
  burst: number;
  /** Half-open requests per second over the sustained window, sensor-wide. */
  rate: number;
  /** The same, towards one destination network. */
  networkBurst: number;
  networkRate: number;
}

export interface FloodConfig {
  burstMs: number;
  seconds: number;
  /** IPv4 destination network prefix length (IPv6 networks are /64). */
  networkPrefix: number;
  tcp: FloodLimits;
  udp: FloodLimits;
  icmp: FloodLimits;
}

export const FLOOD_DEFAULTS: FloodConfig = {
  burstMs: 20,
  seconds: 1,
  networkPrefix: 24,
  tcp: { enabled: true, burst: 64, rate: 1000, networkBurst: 48, networkRate: 500 },
  udp: { enabled: true, burst: 128, rate: 2000, networkBurst: 96, networkRate: 1000 },
  icmp: { enabled: true, burst: 64, rate: 500, networkBurst: 48, networkRate: 250 },
};

/** Burst and sustained windows of one key. */
class Meter {
  start = -Infinity;
  count = 0;
  burstStart = -Infinity;
  burst = 0;
  firedAt = -Infinity;
}

const KINDS = ['tcp', 'udp', 'icmp'] as const;
type Kind = typeof KINDS[number];

function kindOf(proto: number): Kind | null {
  if (proto === PROTO_TCP) return 'tcp';
  if (proto === PROTO_UDP) return 'udp';
  if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) return 'icmp';
  return null;
}

const EVENT: Record<Kind, number> = { tcp: EV['mg.syn_flood_spread'], udp: EV['mg.udp_flood'], icmp: EV['mg.icmp_flood'] };

/** The flow fields the detector reads (the monitor's Flow has them). */
export interface FlowCounts {
  pktsToServer: number;
  pktsToClient: number;
}

export class FloodDetector {
  readonly cfg: FloodConfig;
  readonly #wide: Record<Kind, Meter> = { tcp: new Meter(), udp: new Meter(), icmp: new Meter() };
  readonly #nets: BoundedMap<Meter>;
  readonly counters = { requests: 0, answered: 0, tcpFloods: 0, udpFloods: 0, icmpFloods: 0 };

  constructor(cfg: FloodConfig, maxTracked: number) {
    this.cfg = cfg;
    this.#nets = new BoundedMap(maxTracked, maxTracked);
  }

  get evicted(): number {
    return this.#nets.counters.evicted;
  }

  /**
   * A packet of flow f, before the flow's packet counters count it: a new
   * flow's first packet may be a half-open request, the first packet back
   * answers one. nowS: the packet's time in seconds.
   */
  flowPacket(p: Packet, f: FlowCounts, nowS: number): void {
    const kind = kindOf(p.proto);
    if (kind === null || !this.cfg[kind].enabled) return;
    if (p.toServer) {
      if (f.pktsToServer !== 0 || f.pktsToClient !== 0) return;
      if (kind === 'tcp' && (p.tcpFlags & 0x16) !== 0x02) return; // bare SYN only (no ACK, no RST)
      if (kind === 'icmp' && p.icmpType !== 8 && p.icmpType !== 128) return; // echo requests
      this.#request(p, kind, nowS);
    } else if (f.pktsToClient === 0 && f.pktsToServer !== 0) {
      this.#answer(p, kind, nowS);
    }
  }

  /** The destination network of p's destination (request) or source (answer). */
  #netKey(p: Packet, kind: Kind, ofDst: boolean): string {
    if (p.ipVer === 6) {
      const o = ofDst ? p.dst6 : p.src6;
      const b = p.buf;
      let s = `${kind}|6|`;
      for (let i = 0; i < 8; i++) s += b[o + i].toString(16).padStart(2, '0');
      return s;
    }
    const a = (ofDst ? p.dst4 : p.src4) >>> 0;
    const n = this.cfg.networkPrefix;
    const net = n === 0 ? 0 : (a >>> (32 - n)) << (32 - n) >>> 0;
    return `${kind}|4|${net}/${n}`;
  }

  #request(p: Packet, kind: Kind, nowS: number): void {
    this.counters.requests++;
    const lim = this.cfg[kind];
    const wide = this.#wide[kind];
    const key = this.#netKey(p, kind, true);
    let m = this.#nets.get(key);
    if (m === undefined) {
      m = new Meter();
      this.#nets.set(key, key, m);
    }
    const net = this.#add(m, nowS, lim.networkBurst, lim.networkRate);
    // A network's flood is part of the sensor's: the sensor-wide meter does
    // not raise a second event for it in the same window.
    if (net) wide.firedAt = nowS;
    if (!this.#add(wide, nowS, lim.burst, lim.rate) && !net) return;
    if (kind === 'tcp') this.counters.tcpFloods++;
    else if (kind === 'udp') this.counters.udpFloods++;
    else this.counters.icmpFloods++;
    p.event(EVENT[kind]);
  }

  /** Count one request in m; true when m crosses a threshold and has not fired in this sustained window. */
  #add(m: Meter, nowS: number, burst: number, rate: number): boolean {
    const c = this.cfg;
    if (nowS - m.start > c.seconds) {
      m.start = nowS;
      m.count = 0;
    }
    if (nowS - m.burstStart > c.burstMs / 1000) {
      m.burstStart = nowS;
      m.burst = 0;
    }
    m.count++;
    m.burst++;
    if (m.burst < burst && m.count < rate * c.seconds) return false;
    if (nowS - m.firedAt < c.seconds) return false;
    m.firedAt = nowS;
    return true;
  }

  #answer(p: Packet, kind: Kind, nowS: number): void {
    this.counters.answered++;
    // The request was counted at most one sustained window ago: take it off
    // the windows still open (an answer cannot tell which window, so the
    // current ones; never below zero).
    const c = this.cfg;
    const off = (m: Meter): void => {
      if (nowS - m.start <= c.seconds && m.count > 0) m.count--;
      if (nowS - m.burstStart <= c.burstMs / 1000 && m.burst > 0) m.burst--;
    };
    off(this.#wide[kind]);
    const m = this.#nets.get(this.#netKey(p, kind, false));
    if (m !== undefined) off(m);
  }
}
