// ARP poisoning detection, per mirrored domain, from the ARP packets alone
// (requests and replies: both carry a sender binding, IPv4 -> MAC):
//   - a binding changed: an address claimed by a second MAC while the first
//     binding is fresh (`binding-s`)                               mg.arp_spoof
//   - a configured static binding (the gateway's own address and MAC, say)
//     claimed by any other MAC, with no history needed             mg.arp_spoof
//   - one MAC claiming several IPv4 addresses within `binding-s`
//     (`addresses-per-mac`, default 2: a poisoner that answers for the gateway
//     and then for a host; works on a capture that starts mid-attack)
//                                                                  mg.arp_multi_claim
//   - gratuitous ARP (sender address = target address) storms from one MAC:
//     `gratuitous.count` within `gratuitous.seconds`               mg.arp_gratuitous_storm
// RFC 5227 probes (sender address 0.0.0.0) claim nothing and are skipped.
// State is bounded: BoundedMap keys per domain+address and per domain+MAC,
// each MAC holding at most `maxPerSource` keys; a MAC's address set stops
// growing once it fired.
import { formatMac } from '../../net/addr.ts';
import { BoundedMap } from './bounded-map.ts';
import { EV } from './events.ts';
import type { Packet } from './packet.ts';

export interface ArpConfig {
  enabled: boolean;
  /** Seconds a learned binding (and a MAC's claimed-address set) stays fresh. */
  bindingS: number;
  /** Distinct addresses one MAC may claim in a domain within bindingS before mg.arp_multi_claim (0: off). */
  addressesPerMac: number;
  /** Known bindings: IPv4 address (int) -> MAC ("aa:bb:cc:dd:ee:ff", lower case). */
  staticBindings: ReadonlyMap<number, string>;
  /** MACs allowed to claim several addresses (proxy ARP, hosts with aliases). */
  multiAddressMacs: ReadonlySet<string>;
  gratuitous: { count: number; seconds: number };
}

export const ARP_DEFAULTS: ArpConfig = {
  enabled: true,
  bindingS: 600,
  addressesPerMac: 2,
  staticBindings: new Map(),
  multiAddressMacs: new Set(),
  gratuitous: { count: 10, seconds: 1 },
};

interface Binding {
  mac: string;
  seen: number;
}

interface Claims {
  start: number;
  ips: Set<number>;
  fired: boolean;
  gStart: number;
  gCount: number;
  gFiredAt: number;
}

export class ArpWatch {
  readonly cfg: ArpConfig;
  readonly #bindings: BoundedMap<Binding>;
  readonly #claims: BoundedMap<Claims>;
  readonly counters = { spoofs: 0, staticViolations: 0, multiClaims: 0, gratuitousStorms: 0 };

  constructor(cfg: ArpConfig, maxTracked: number, maxPerSource: number) {
    this.cfg = cfg;
    this.#bindings = new BoundedMap(maxTracked, maxPerSource);
    this.#claims = new BoundedMap(maxTracked, maxTracked);
  }

  /** Keys evicted from the bounded tables: the whole table was full / a MAC's share was. */
  get evictions(): { evicted: number; sourceEvicted: number } {
    const b = this.#bindings.counters;
    const c = this.#claims.counters;
    return { evicted: b.evicted + c.evicted, sourceEvicted: b.groupEvicted + c.groupEvicted };
  }

  observe(p: Packet, nowS: number): void {
    const b = p.buf;
    const a = p.arp;
    const spa = ((b[a + 14] << 24) | (b[a + 15] << 16) | (b[a + 16] << 8) | b[a + 17]) >>> 0;
    if (spa === 0) return; // RFC 5227 probe
    const tpa = ((b[a + 24] << 24) | (b[a + 25] << 16) | (b[a + 26] << 8) | b[a + 27]) >>> 0;
    const mac = formatMac(b, a + 8);
    const cfg = this.cfg;

    const fixed = cfg.staticBindings.get(spa);
    if (fixed !== undefined && fixed !== mac) {
      this.counters.staticViolations++;
      this.counters.spoofs++;
      p.event(EV['mg.arp_spoof']);
    } else {
      const key = `${p.domain}|${spa}`;
      const known = this.#bindings.get(key);
      if (known !== undefined && known.mac !== mac && nowS - known.seen <= cfg.bindingS) {
        this.counters.spoofs++;
        p.event(EV['mg.arp_spoof']);
        // the first binding stays: the claim is the anomaly
      } else {
        if (known !== undefined) this.#bindings.delete(key);
        this.#bindings.set(key, mac, { mac, seen: nowS });
      }
    }

    const ck = `${p.domain}|${mac}`;
    let c = this.#claims.get(ck);
    if (c === undefined || nowS - c.start > cfg.bindingS) {
      if (c !== undefined) this.#claims.delete(ck);
      c = { start: nowS, ips: new Set(), fired: false, gStart: nowS, gCount: 0, gFiredAt: -Infinity };
      this.#claims.set(ck, ck, c);
    }
    if (cfg.addressesPerMac > 0 && !c.fired && !cfg.multiAddressMacs.has(mac)) {
      c.ips.add(spa);
      if (c.ips.size >= cfg.addressesPerMac) {
        c.fired = true;
        c.ips.clear();
        this.counters.multiClaims++;
        p.event(EV['mg.arp_multi_claim']);
      }
    }
    if (spa === tpa && cfg.gratuitous.count > 0) {
      if (nowS - c.gStart > cfg.gratuitous.seconds) {
        c.gStart = nowS;
        c.gCount = 0;
      }
      c.gCount++;
      if (c.gCount >= cfg.gratuitous.count && nowS - c.gFiredAt > cfg.gratuitous.seconds) {
        c.gFiredAt = nowS;
        this.counters.gratuitousStorms++;
        p.event(EV['mg.arp_gratuitous_storm']);
      }
    }
  }

  /** Bindings learned (for status). */
  bindings(): { domain: number; ip: string; mac: string }[] {
    const out = [];
    for (const [k, v] of this.#bindings.entries()) {
      const [d, ipn] = k.split('|').map(Number);
      out.push({ domain: d, ip: `${ipn >>> 24}.${(ipn >>> 16) & 255}.${(ipn >>> 8) & 255}.${ipn & 255}`, mac: v.mac });
      if (out.length >= 200) break;
    }
    return out;
  }
}
