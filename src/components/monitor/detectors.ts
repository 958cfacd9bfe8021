// Behavioural detectors that no single packet shows: port scans (one source
// probing many destination ports), SYN floods at one destination port (both
// over IPv4 and IPv6),
// half-open floods spread over many destinations (floods.ts: sensor-wide and
// per destination network, TCP, UDP and ICMP) and ARP poisoning
// (arp-watch.ts). Each raises an event on the packet that crosses its
// threshold (mg.*), at most once per window per key; state is bounded
// (`maxTracked` keys each, oldest evicted) and per sender
// (`maxTrackedPerSource` keys per source address for scans, per destination
// address for floods, per MAC for ARP bindings: past it that sender's oldest
// key goes), so nobody can flush the state gathered about someone else by
// sending many keys of their own.
import { BoundedMap } from './bounded-map.ts';
import { ARP_DEFAULTS, ArpWatch, type ArpConfig } from './arp-watch.ts';
import { EV } from './events.ts';
import { FLOOD_DEFAULTS, FloodDetector, type FloodConfig, type FlowCounts } from './floods.ts';
import { PROTO_TCP, PROTO_UDP, type Packet } from './packet.ts';

export interface DetectorConfig {
  portScan: { enabled: boolean; ports: number; seconds: number };
  synFlood: { enabled: boolean; rate: number; seconds: number };
  flood: FloodConfig;
  arpSpoof: ArpConfig;
  maxTracked: number;
  maxTrackedPerSource: number;
}

export const DETECTOR_DEFAULTS: DetectorConfig = {
  portScan: { enabled: true, ports: 20, seconds: 3 },
  synFlood: { enabled: true, rate: 200, seconds: 1 },
  flood: FLOOD_DEFAULTS,
  arpSpoof: ARP_DEFAULTS,
  maxTracked: 16384,
  maxTrackedPerSource: 1024,
};

interface ScanState {
  start: number;
  ports: Set<number>;
  fired: boolean;
}

interface FloodState {
  start: number;
  count: number;
  fired: boolean;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A packet's source or destination address as a key: IPv4 as its number, IPv6 as 32 hex digits. */
function addrText(p: Packet, src: boolean): string {
  if (p.ipVer === 4) return String((src ? p.src4 : p.dst4) >>> 0);
  const b = p.buf;
  const o = src ? p.src6 : p.dst6;
  let s = '';
  for (let i = 0; i < 16; i++) s += HEX[b[o + i]];
  return s;
}

export class Detectors {
  readonly cfg: DetectorConfig;
  readonly #scans: BoundedMap<ScanState>;
  readonly #floods: BoundedMap<FloodState>;
  readonly floods: FloodDetector;
  readonly arp: ArpWatch;
  readonly counters = { portScans: 0, synFloods: 0 };

  constructor(cfg: DetectorConfig = DETECTOR_DEFAULTS) {
    this.cfg = cfg;
    const per = Math.min(cfg.maxTrackedPerSource, cfg.maxTracked);
    this.#scans = new BoundedMap(cfg.maxTracked, per);
    this.#floods = new BoundedMap(cfg.maxTracked, per);
    this.floods = new FloodDetector(cfg.flood, cfg.maxTracked);
    this.arp = new ArpWatch(cfg.arpSpoof, cfg.maxTracked, per);
  }

  /** Keys evicted: the whole table was full / their sender's share was. */
  get evictions(): { evicted: number; sourceEvicted: number } {
    let evicted = 0;
    let sourceEvicted = 0;
    for (const m of [this.#scans, this.#floods]) {
      evicted += m.counters.evicted;
      sourceEvicted += m.counters.groupEvicted;
    }
    evicted += this.floods.evicted + this.arp.evictions.evicted;
    sourceEvicted += this.arp.evictions.sourceEvicted;
    return { evicted, sourceEvicted };
  }

  /** Look at a decoded packet at time nowS (seconds); may add mg.* events to it. */
  observe(p: Packet, nowS: number): void {
    if (p.arp >= 0) {
      if (this.cfg.arpSpoof.enabled) this.arp.observe(p, nowS);
      return;
    }
    if ((p.ipVer !== 4 && p.ipVer !== 6) || !p.l4Ok) return;
    if (p.proto === PROTO_TCP) {
      const fl = p.tcpFlags & 0x3f;
      const syn = (fl & 0x02) !== 0 && (fl & 0x10) === 0;
      // Probes: bare SYN, or the stealth scans' flag sets (no ACK).
      const probe = syn || ((fl & 0x10) === 0 && (fl & 0x04) === 0);
      if (probe && this.cfg.portScan.enabled) this.#scan(p, nowS);
      if (syn && this.cfg.synFlood.enabled) this.#flood(p, nowS);
    } else if (p.proto === PROTO_UDP && this.cfg.portScan.enabled && p.payLen === 0) {
      this.#scan(p, nowS);
    }
  }

  #scan(p: Packet, nowS: number): void {
    const c = this.cfg.portScan;
    const src = addrText(p, true);
    const key = `${src}>${addrText(p, false)}`;
    let s = this.#scans.get(key);
    if (s === undefined || nowS - s.start > c.seconds) {
      if (s !== undefined) this.#scans.delete(key);
      s = { start: nowS, ports: new Set(), fired: false };
      this.#scans.set(key, src, s);
    }
    if (s.fired) return;
    s.ports.add(p.dp | (p.proto << 16));
    if (s.ports.size >= c.ports) {
      s.fired = true;
      s.ports.clear();
      this.counters.portScans++;
      p.event(EV['mg.port_scan']);
    }
  }

  #flood(p: Packet, nowS: number): void {
    const c = this.cfg.synFlood;
    const dst = addrText(p, false);
    const key = `${dst}:${p.dp}`;
    let s = this.#floods.get(key);
    if (s === undefined || nowS - s.start > c.seconds) {
      if (s !== undefined) this.#floods.delete(key);
      s = { start: nowS, count: 0, fired: false };
      this.#floods.set(key, dst, s);
    }
    s.count++;
    if (!s.fired && s.count >= c.rate * c.seconds) {
      s.fired = true;
      this.counters.synFloods++;
      p.event(EV['mg.syn_flood']);
    }
  }

  /** A packet of a tracked flow, before the flow counts it (half-open floods). */
  flowPacket(p: Packet, f: FlowCounts, nowS: number): void {
    this.floods.flowPacket(p, f, nowS);
  }

  /** Bindings learned (for status). */
  arpBindings(): { domain: number; ip: string; mac: string }[] {
    return this.arp.bindings();
  }
}
