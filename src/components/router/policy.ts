// The compiled policy: what the router asks about every new connection, in
// typed arrays scanned without allocation. Built from the parsed config
// (policy-config.ts) once per (re)configuration and swapped in whole.
//
// Order of evaluation for a packet that belongs to no tracked connection
// (router.ts calls these in this order; see README.md "Policy"):
//   1. blocklist of the ingress domain (source address; also before conntrack)
//   2. tcp-forward / udp-forward of the ingress domain (packets to the router's own address)
//   3. rate limits of the ingress domain (every new connection attempt that would be forwarded)
//   4. the protocol's rules (tcp / udp / icmp), longest destination prefix first,
//      then the narrowest port range, then config order; the first match decides
//   5. the ip rules, longest prefix first
//   6. the domain's default action
// A rule with `to` matches only packets routed to that domain (routing is by
// destination: the domain whose prefix holds it, else the default route).
// Whether an accepted connection is masqueraded is the target domain's `nat`.
import { IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { Blocklist } from './blocklist.ts';
import { Blocklist6 } from './blocklist6.ts';
import type { RouterConfig } from './config.ts';
import type { PolicyRule, PortForward, RuleAction } from './policy-config.ts';
import { TokenBuckets } from './rate-limit.ts';

export const POLICY_DROP = 0;
export const POLICY_ACCEPT = 1;
export const POLICY_ACCEPT_NAT = 2;
export const POLICY_REJECT = 3;

/** Buckets of a per-source rate limit (sources whose hashes collide share one). */
export const RATE_BUCKETS = 4096;

const ACTION_CODE: Record<RuleAction, number> = { drop: POLICY_DROP, accept: POLICY_ACCEPT, reject: POLICY_REJECT };

/** Protocol class of a rule list: tcp 0, udp 1, icmp 2. */
function protoClass(proto: number): number {
  return proto === IPPROTO_TCP ? 0 : proto === IPPROTO_UDP ? 1 : 2;
}

interface Entry {
  rule: number;
  net: number;
  mask: number;
  prefix: number;
  lo: number;
  hi: number;
  to: number;
  action: number;
}

export class Policy {
  readonly n: number;
  /** Every rule, domain by domain in config order; indexes of ruleHits and lastRule. */
  readonly rules: readonly PolicyRule[];
  readonly forwards: readonly PortForward[];
  /** Times each rule decided a new connection. */
  readonly ruleHits: Float64Array;
  /** Times each domain's default action decided. */
  readonly defaultHits: Float64Array;
  /** The rule behind the last decide() (index into rules), or -1 for the default action. */
  lastRule = -1;

  // Rule entries of (domain, protocol class) in [start, end), in evaluation order.
  readonly #start: Int32Array;
  readonly #end: Int32Array;
  readonly #net: Int32Array;
  readonly #mask: Int32Array;
  readonly #lo: Uint16Array;
  readonly #hi: Uint16Array;
  readonly #to: Int8Array;
  readonly #action: Uint8Array;
  readonly #rule: Int32Array;
  readonly #default: Uint8Array;
  // The same for IPv6 (rules whose dst is an IPv6 prefix, or none): network bytes at 16 * i, prefix length.
  readonly #start6: Int32Array;
  readonly #end6: Int32Array;
  readonly #net6: Uint8Array;
  readonly #prefix6: Uint8Array;
  readonly #lo6: Uint16Array;
  readonly #hi6: Uint16Array;
  readonly #to6: Int8Array;
  readonly #action6: Uint8Array;
  readonly #rule6: Int32Array;
  /** Masquerade connections from domain i into domain o: #nat[o * n + i]. */
  readonly #nat: Uint8Array;
  /** NAT ports (ICMP ids) per source address in each target domain; 0: no limit. */
  readonly natPortsPerSource: Int32Array;
  // Port forwards of (domain, tcp 0 / udp 1) in [fStart, fEnd), sorted by port.
  readonly #fStart: Int32Array;
  readonly #fEnd: Int32Array;
  readonly #fPort: Uint16Array;
  readonly #fIndex: Int32Array;
  /** Per forward (by index in `forwards`): target domain, host (int32), host port. */
  readonly fwdTo: Int32Array;
  readonly fwdHost: Int32Array;
  readonly fwdPort: Uint16Array;
  readonly blocklists: readonly (Blocklist | undefined)[];
  readonly blocklists6: readonly (Blocklist6 | undefined)[];
  readonly #perSource: readonly (TokenBuckets | undefined)[];
  readonly #total: readonly (TokenBuckets | undefined)[];

  /**
   * `now` is the router's monotonic clock (ms), `wallNow` Date.now(): blocklist
   * entries with `for-s` expire `for-s` after now, those with `until` at that
   * wall-clock time.
   */
  constructor(cfg: RouterConfig, now: number, wallNow: number = Date.now()) {
    const n = cfg.domains.length;
    this.n = n;
    const rules: PolicyRule[] = [];
    const forwards: PortForward[] = [];
    for (const d of cfg.domains) {
      rules.push(...d.policy.rules);
      forwards.push(...d.policy.forwards);
    }
    this.rules = rules;
    this.forwards = forwards;
    this.ruleHits = new Float64Array(rules.length);
    this.defaultHits = new Float64Array(n);

    // Rule entries, per domain and protocol class, in evaluation order.
    const lists: Entry[][] = [];
    let ruleBase = 0;
    this.#default = new Uint8Array(n);
    for (const d of cfg.domains) {
      this.#default[d.index] = ACTION_CODE[d.policy.defaultAction];
      const own = d.policy.rules;
      const entriesOf = (proto: string): Entry[] => {
        const out: Entry[] = [];
        own.forEach((r, k) => {
          if (r.proto !== proto || r.dstPrefix < 0) return; // IPv6-only rules: policy6.ts
          const mask = r.dstPrefix === 0 ? 0 : r.dstPrefix >= 32 ? -1 : (-1 << (32 - r.dstPrefix));
          const ranges = r.ports ?? [{ first: 0, last: 65535 }];
          for (const p of ranges) {
            out.push({ rule: ruleBase + k, net: r.dst | 0, mask, prefix: r.dstPrefix, lo: p.first, hi: p.last, to: r.to, action: ACTION_CODE[r.action] });
          }
        });
        // Longest prefix, then narrowest port range, then config order (sort is stable).
        return out.sort((a, b) => (b.prefix - a.prefix) || ((a.hi - a.lo) - (b.hi - b.lo)));
      };
      const ip = entriesOf('ip');
      for (const proto of ['tcp', 'udp', 'icmp']) lists.push([...entriesOf(proto), ...ip]);
      ruleBase += own.length;
    }
    const total = lists.reduce((a, l) => a + l.length, 0);
    this.#start = new Int32Array(n * 3);
    this.#end = new Int32Array(n * 3);
    this.#net = new Int32Array(total);
    this.#mask = new Int32Array(total);
    this.#lo = new Uint16Array(total);
    this.#hi = new Uint16Array(total);
    this.#to = new Int8Array(total);
    this.#action = new Uint8Array(total);
    this.#rule = new Int32Array(total);
    let k = 0;
    lists.forEach((l, li) => {
      this.#start[li] = k;
      for (const e of l) {
        this.#net[k] = e.net;
        this.#mask[k] = e.mask;
        this.#lo[k] = e.lo;
        this.#hi[k] = e.hi;
        this.#to[k] = e.to;
        this.#action[k] = e.action;
        this.#rule[k] = e.rule;
        k++;
      }
      this.#end[li] = k;
    });

    // IPv6 rule entries (no NAT66: accept is accept).
    const lists6: { rule: number; net: Uint8Array; prefix: number; lo: number; hi: number; to: number; action: number }[][] = [];
    let base6 = 0;
    for (const d of cfg.domains) {
      const own = d.policy.rules;
      const entriesOf = (proto: string): typeof lists6[number] => {
        const out: typeof lists6[number] = [];
        own.forEach((r, k) => {
          if (r.proto !== proto || r.dstPrefix6 < 0) return;
          for (const p of r.ports ?? [{ first: 0, last: 65535 }]) {
            out.push({ rule: base6 + k, net: r.dst6, prefix: r.dstPrefix6, lo: p.first, hi: p.last, to: r.to, action: ACTION_CODE[r.action] });
          }
        });
        return out.sort((a, b) => (b.prefix - a.prefix) || ((a.hi - a.lo) - (b.hi - b.lo)));
      };
      const ip = entriesOf('ip');
      for (const proto of ['tcp', 'udp', 'icmp']) lists6.push([...entriesOf(proto), ...ip]);
      base6 += own.length;
    }
    const total6 = lists6.reduce((a, l) => a + l.length, 0);
    this.#start6 = new Int32Array(n * 3);
    this.#end6 = new Int32Array(n * 3);
    this.#net6 = new Uint8Array(total6 * 16);
    this.#prefix6 = new Uint8Array(total6);
    this.#lo6 = new Uint16Array(total6);
    this.#hi6 = new Uint16Array(total6);
    this.#to6 = new Int8Array(total6);
    this.#action6 = new Uint8Array(total6);
    this.#rule6 = new Int32Array(total6);
    let k6 = 0;
    lists6.forEach((l, li) => {
      this.#start6[li] = k6;
      for (const e of l) {
        this.#net6.set(e.net, k6 * 16);
        this.#prefix6[k6] = e.prefix;
        this.#lo6[k6] = e.lo;
        this.#hi6[k6] = e.hi;
        this.#to6[k6] = e.to;
        this.#action6[k6] = e.action;
        this.#rule6[k6] = e.rule;
        k6++;
      }
      this.#end6[li] = k6;
    });

    // NAT.
    this.#nat = new Uint8Array(n * n);
    this.natPortsPerSource = new Int32Array(n);
    for (const d of cfg.domains) {
      const nat = d.policy.nat;
      if (nat === null) continue;
      for (const f of nat.from) this.#nat[d.index * n + f] = 1;
      this.natPortsPerSource[d.index] = nat.portsPerSource;
    }

    // Port forwards.
    this.#fStart = new Int32Array(n * 2);
    this.#fEnd = new Int32Array(n * 2);
    this.#fPort = new Uint16Array(forwards.length);
    this.#fIndex = new Int32Array(forwards.length);
    this.fwdTo = new Int32Array(forwards.length);
    this.fwdHost = new Int32Array(forwards.length);
    this.fwdPort = new Uint16Array(forwards.length);
    forwards.forEach((f, i) => {
      this.fwdTo[i] = f.to;
      this.fwdHost[i] = f.host | 0;
      this.fwdPort[i] = f.hostPort;
    });
    let fk = 0;
    let base = 0;
    for (const d of cfg.domains) {
      for (const [pc, proto] of [[0, 'tcp'], [1, 'udp']] as const) {
        const li = d.index * 2 + pc;
        this.#fStart[li] = fk;
        const mine = d.policy.forwards.map((f, j) => ({ f, j: base + j })).filter((x) => x.f.proto === proto).sort((a, b) => a.f.port - b.f.port);
        for (const { f, j } of mine) {
          this.#fPort[fk] = f.port;
          this.#fIndex[fk] = j;
          fk++;
        }
        this.#fEnd[li] = fk;
      }
      base += d.policy.forwards.length;
    }

    // Blocklists and rate limits.
    this.blocklists = cfg.domains.map((d) => {
      if (d.policy.blocklist.length === 0) return undefined;
      const b = new Blocklist();
      for (const e of d.policy.blocklist) {
        const expires = e.forMs !== undefined ? now + e.forMs : e.untilMs !== undefined ? now + (e.untilMs - wallNow) : Infinity;
        b.add(e.network, e.prefix, expires);
      }
      return b;
    });
    this.blocklists6 = cfg.domains.map((d) => d.policy.blocklist6.length === 0 ? undefined : new Blocklist6(d.policy.blocklist6.map((e) => ({
      network: e.network6 as Uint8Array,
      prefix: e.prefix,
      expires: e.forMs !== undefined ? now + e.forMs : e.untilMs !== undefined ? now + (e.untilMs - wallNow) : Infinity,
    }))));
    this.#perSource = cfg.domains.map((d) => {
      const l = d.policy.limits;
      return l.newPerSource > 0 ? new TokenBuckets(l.newPerSource, l.newPerSourceBurst, RATE_BUCKETS) : undefined;
    });
    this.#total = cfg.domains.map((d) => {
      const l = d.policy.limits;
      return l.newTotal > 0 ? new TokenBuckets(l.newTotal, l.newTotalBurst, 1) : undefined;
    });
  }

  /**
   * Verdict for a new connection arriving on inDom, routed to outDom:
   * POLICY_DROP, POLICY_REJECT, POLICY_ACCEPT or POLICY_ACCEPT_NAT. For ICMP
   * pass dport 0. Sets lastRule and counts the hit.
   */
  decide(inDom: number, outDom: number, proto: number, dst: number, dport: number): number {
    const li = inDom * 3 + protoClass(proto);
    const net = this.#net;
    const mask = this.#mask;
    const lo = this.#lo;
    const hi = this.#hi;
    const to = this.#to;
    const d = dst | 0;
    for (let i = this.#start[li], end = this.#end[li]; i < end; i++) {
      if ((d & mask[i]) === net[i] && dport >= lo[i] && dport <= hi[i] && (to[i] < 0 || to[i] === outDom)) {
        const r = this.#rule[i];
        this.lastRule = r;
        this.ruleHits[r]++;
        const a = this.#action[i];
        return a === POLICY_ACCEPT && this.#nat[outDom * this.n + inDom] === 1 ? POLICY_ACCEPT_NAT : a;
      }
    }
    this.lastRule = -1;
    this.defaultHits[inDom]++;
    const a = this.#default[inDom];
    return a === POLICY_ACCEPT && this.#nat[outDom * this.n + inDom] === 1 ? POLICY_ACCEPT_NAT : a;
  }

  /**
   * The verdict for a new IPv6 connection to the address at buf[dstOff]:
   * POLICY_DROP / REJECT / ACCEPT (never NAT: IPv6 is routed). The same rule
   * order as decide(); rules with an IPv4 dst do not apply.
   */
  decide6(inDom: number, outDom: number, proto: number, buf: Uint8Array, dstOff: number, dport: number): number {
    const li = inDom * 3 + protoClass(proto);
    const net = this.#net6;
    const plen = this.#prefix6;
    const to = this.#to6;
    for (let i = this.#start6[li], end = this.#end6[li]; i < end; i++) {
      if (dport < this.#lo6[i] || dport > this.#hi6[i] || (to[i] >= 0 && to[i] !== outDom)) continue;
      const bits = plen[i];
      const nb = i * 16;
      let j = 0;
      let match = true;
      for (; j + 8 <= bits; j += 8) {
        if (buf[dstOff + (j >>> 3)] !== net[nb + (j >>> 3)]) { match = false; break; }
      }
      if (match && j < bits) {
        const m = (0xff << (8 - (bits - j))) & 0xff;
        match = (buf[dstOff + (j >>> 3)] & m) === net[nb + (j >>> 3)];
      }
      if (!match) continue;
      const r = this.#rule6[i];
      this.lastRule = r;
      this.ruleHits[r]++;
      return this.#action6[i];
    }
    this.lastRule = -1;
    this.defaultHits[inDom]++;
    return this.#default[inDom];
  }

  /** The same verdict as decide6(), without counting (reload re-checks). */
  peek6(inDom: number, outDom: number, proto: number, buf: Uint8Array, dstOff: number, dport: number): number {
    const last = this.lastRule;
    const v = this.decide6(inDom, outDom, proto, buf, dstOff, dport);
    if (this.lastRule >= 0) this.ruleHits[this.lastRule]--;
    else this.defaultHits[inDom]--;
    this.lastRule = last;
    return v;
  }

  /** The same verdict as decide(), without counting (reload re-checks, status, translation). */
  peek(inDom: number, outDom: number, proto: number, dst: number, dport: number): number {
    const last = this.lastRule;
    const v = this.decide(inDom, outDom, proto, dst, dport);
    if (this.lastRule >= 0) this.ruleHits[this.lastRule]--;
    else this.defaultHits[inDom]--;
    this.lastRule = last;
    return v;
  }

  /** Are connections from inDom into outDom masqueraded? */
  nat(inDom: number, outDom: number): boolean {
    return this.#nat[outDom * this.n + inDom] === 1;
  }

  /** The port forward of dom for (TCP or UDP, port) to the router's own address: its index, or -1. */
  forward(dom: number, proto: number, port: number): number {
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return -1;
    const li = dom * 2 + (proto === IPPROTO_TCP ? 0 : 1);
    let a = this.#fStart[li];
    let b = this.#fEnd[li] - 1;
    const ports = this.#fPort;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const p = ports[m];
      if (p === port) return this.#fIndex[m];
      if (p < port) a = m + 1;
      else b = m - 1;
    }
    return -1;
  }

  /** Is src blocked on dom at now? */
  blocked(dom: number, src: number, now: number): boolean {
    const b = this.blocklists[dom];
    return b !== undefined && b.has(src, now);
  }

  /** Is the IPv6 source at buf[off] blocked on dom at now (the blocklist's IPv6 entries)? */
  blocked6(dom: number, buf: Uint8Array, off: number, now: number): boolean {
    const b = this.blocklists6[dom];
    return b !== undefined && b.has(buf, off, now);
  }

  /** May src open one more connection from dom at now (rate limits)? Takes a token when it may. */
  admit(dom: number, src: number, now: number): boolean {
    const t = this.#total[dom];
    const s = this.#perSource[dom];
    if (s !== undefined && !s.admit(src, now)) return false;
    return t === undefined || t.admit(0, now);
  }

  /** Does dom have any rate limit? */
  limited(dom: number): boolean {
    return this.#perSource[dom] !== undefined || this.#total[dom] !== undefined;
  }
}
