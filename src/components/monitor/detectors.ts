// Behavioural detectors that no single packet shows: port scans (one source
// probing many destination ports), SYN floods (SYNs to one destination port
// at a high rate, typically from random sources), and ARP spoofing (a MAC
// claiming an IPv4 address already bound to another MAC in the same domain).
// Each raises an event on the packet that crosses its threshold (mg.*), at
// most once per window per key; state is bounded (`maxTracked` keys each,
// oldest evicted) and per sender (`maxTrackedPerSource` keys per source
// address for scans, per destination address for floods, per MAC for ARP
// bindings: past it that sender's oldest key goes), so nobody can flush the
// state gathered about someone else by sending many keys of their own.
import { BoundedMap } from './bounded-map.ts';
import { EV } from './events.ts';
import { PROTO_TCP, PROTO_UDP, type Packet } from './packet.ts';

export interface DetectorConfig {
  portScan: { enabled: boolean; ports: number; seconds: number };
  synFlood: { enabled: boolean; rate: number; seconds: number };
  arpSpoof: { enabled: boolean; bindingS: number };
  maxTracked: number;
  maxTrackedPerSource: number;
}

export const DETECTOR_DEFAULTS: DetectorConfig = {
  portScan: { enabled: true, ports: 20, seconds: 3 },
  synFlood: { enabled: true, rate: 200, seconds: 1 },
  arpSpoof: { enabled: true, bindingS: 600 },
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

interface Binding {
  mac: string;
  seen: number;
}

export class Detectors {
  readonly cfg: DetectorConfig;
  readonly #scans: BoundedMap<ScanState>;
  readonly #floods: BoundedMap<FloodState>;
  readonly #arp: BoundedMap<Binding>;
  readonly counters = { portScans: 0, synFloods: 0, arpSpoofs: 0 };

  constructor(cfg: DetectorConfig = DETECTOR_DEFAULTS) {
    this.cfg = cfg;
    const per = Math.min(cfg.maxTrackedPerSource, cfg.maxTracked);
    this.#scans = new BoundedMap(cfg.maxTracked, per);
    this.#floods = new BoundedMap(cfg.maxTracked, per);
    this.#arp = new BoundedMap(cfg.maxTracked, per);
  }

  /** Keys evicted: the whole table was full / their sender's share was. */
  get evictions(): { evicted: number; sourceEvicted: number } {
    let evicted = 0;
    let sourceEvicted = 0;
    for (const m of [this.#scans, this.#floods, this.#arp]) {
      evicted += m.counters.evicted;
      sourceEvicted += m.counters.groupEvicted;
    }
    return { evicted, sourceEvicted };
  }

  /** Look at a decoded packet at time nowS (seconds); may add mg.* events to it. */
  observe(p: Packet, nowS: number): void {
    if (p.arp >= 0) {
      if (this.cfg.arpSpoof.enabled) this.#arpSeen(p, nowS);
      return;
    }
    if (p.ipVer !== 4 || !p.l4Ok) return;
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
    const key = `${p.src4 >>> 0}>${p.dst4 >>> 0}`;
    let s = this.#scans.get(key);
    if (s === undefined || nowS - s.start > c.seconds) {
      if (s !== undefined) this.#scans.delete(key);
      s = { start: nowS, ports: new Set(), fired: false };
      this.#scans.set(key, String(p.src4 >>> 0), s);
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
    const key = `${p.dst4 >>> 0}:${p.dp}`;
    let s = this.#floods.get(key);
    if (s === undefined || nowS - s.start > c.seconds) {
      if (s !== undefined) this.#floods.delete(key);
      s = { start: nowS, count: 0, fired: false };
      this.#floods.set(key, String(p.dst4 >>> 0), s);
    }
    s.count++;
    if (!s.fired && s.count >= c.rate * c.seconds) {
      s.fired = true;
      this.counters.synFloods++;
      p.event(EV['mg.syn_flood']);
    }
  }

  #arpSeen(p: Packet, nowS: number): void {
    const b = p.buf;
    const a = p.arp;
    const spa = ((b[a + 14] << 24) | (b[a + 15] << 16) | (b[a + 16] << 8) | b[a + 17]) >>> 0;
    if (spa === 0) return; // RFC 5227 probe
    let macText = '';
    for (let i = 0; i < 6; i++) macText += b[a + 8 + i].toString(16).padStart(2, '0');
    const key = `${p.domain}|${spa}`;
    const known = this.#arp.get(key);
    if (known !== undefined && known.mac !== macText && nowS - known.seen <= this.cfg.arpSpoof.bindingS) {
      this.counters.arpSpoofs++;
      p.event(EV['mg.arp_spoof']);
      return; // the first binding stays: the claim is the anomaly
    }
    if (known !== undefined) this.#arp.delete(key);
    this.#arp.set(key, macText, { mac: macText, seen: nowS });
  }

  /** Bindings learned (for status). */
  arpBindings(): { domain: number; ip: string; mac: string }[] {
    const out = [];
    for (const [k, v] of this.#arp.entries()) {
      const [d, ipn] = k.split('|').map(Number);
      out.push({ domain: d, ip: `${ipn >>> 24}.${(ipn >>> 16) & 255}.${(ipn >>> 8) & 255}.${ipn & 255}`, mac: v.mac.replace(/(..)(?!$)/g, '$1:') });
    }
    return out.slice(0, 200);
  }
}
