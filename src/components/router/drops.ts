// What the router counts: every drop reason (counter "drop.<reason>", and per
// ingress domain "domain.<domain>.drop.<reason>"), its other counters, and
// Drops, which counts a drop under both and writes the rate-limited drop log
// (config log.drops-per-s). Nothing is formatted while the log's budget is spent.
import type { Counters } from '../../runtime/counters.ts';
import { describePacket } from './drop-log.ts';
import type { Packet } from './packet.ts';

/** Every drop reason the router counts (as the counter "drop.<reason>"). */
export const DROP_REASONS = [
  // framing
  'eth-truncated', 'eth-bad-source', 'eth-not-for-us', 'eth-unsupported-type',
  'vnet-bad-gso', 'vnet-bad-csum',
  // ARP
  'arp-truncated', 'arp-unsupported', 'arp-bad-op', 'arp-bad-sender', 'arp-address-conflict', 'arp-not-for-us',
  'arp-cache-full', 'arp-pending-full', 'arp-pool-exhausted', 'arp-unresolved',
  // IPv4
  'ip-truncated', 'ip-bad-version', 'ip-bad-ihl', 'ip-bad-length', 'ip-bad-checksum',
  'ip-bad-source', 'ip-spoofed-source', 'ip-broadcast', 'ip-unsupported-protocol',
  // IPv4 fragments (reassembly.ts) and the egress MTU (mtu.ts)
  'frag-overlap', 'frag-too-big', 'frag-table-full', 'frag-source-limit', 'frag-too-many', 'frag-bad-length', 'frag-needed',
  // IPv6 (local6.ts; the ip6-ext-* / ip6-frag-* names follow net/ipv6.ts IP6_ERROR_NAMES)
  'ip6-truncated', 'ip6-bad-version', 'ip6-ext-truncated', 'ip6-ext-chain-too-long', 'ip6-ext-duplicate', 'ip6-ext-order',
  'ip6-routing-type-0', 'ip6-frag-reserved', 'ip6-frag-bad-length', 'ip6-frag-incomplete-chain',
  'ip6-bad-source', 'ip6-spoofed-source', 'ip6-multicast', 'ip6-fragment',
  // IPv6 fragments (reassembly6.ts)
  'ip6-frag-overlap', 'ip6-frag-too-big', 'ip6-frag-table-full', 'ip6-frag-source-limit', 'ip6-frag-too-many',
  'icmp6-truncated', 'icmp6-bad-checksum', 'icmp6-unsupported-type',
  'nd-invalid', 'nd-not-for-us', 'nd-address-conflict', 'nd-no-ra', 'ip6-link-local', 'nd-cache-full', 'nd-unresolved', 'ip6-too-big',
  // L4
  'tcp-truncated', 'tcp-bad-offset', 'tcp-bad-checksum',
  'udp-truncated', 'udp-bad-length', 'udp-bad-checksum',
  'icmp-truncated', 'icmp-bad-checksum', 'icmp-unsupported-type', 'icmp-error-malformed', 'icmp-error-untracked',
  // addressed to the router
  'to-router', 'to-router-other-domain',
  // forwarding and policy
  'no-route', 'hairpin', 'no-rule', 'tcp-new-not-syn', 'icmp-new-not-echo',
  'blocklisted', 'rate-limited', 'policy-denied', 'rejected', 'nat-quota-exceeded',
  'conntrack-full', 'conntrack-collision', 'conntrack-source-limit', 'conntrack-probe-limit', 'nat-ports-exhausted',
  'ttl-exceeded', 'egress-full', 'egress-too-big',
  // an HA pair's backup router (ha.ts) takes no frame from its domains
  'ha-backup',
  // DHCP server
  'dhcp-malformed', 'dhcp-pool-exhausted', 'dhcp-not-ours',
  // DHCP client (address: dhcp): no lease yet; an answer malformed, not ours, or refused
  'dhcp-unbound', 'dhcpc-malformed', 'dhcpc-ignored', 'dhcpc-refused',
] as const;

export type DropReason = typeof DROP_REASONS[number];

/** Other counters the router keeps (per domain ones are "<name>.<domain>"). */
export const COUNTERS = [
  'forwarded', 'conntrack.new', 'conntrack.expired', 'arp.request-sent', 'arp.reply-sent', 'arp.learned',
  'arp.refreshed', 'arp.queued', 'arp.released', 'icmp.echo-reply-sent', 'icmp.error-sent', 'icmp.error-translated',
  'conntrack.port-forwarded', 'conntrack.reload-removed', 'policy.reloads', 'tcp.reset-sent',
  'dhcp.discover', 'dhcp.request', 'dhcp.decline', 'dhcp.release', 'dhcp.inform', 'dhcp.offer', 'dhcp.ack', 'dhcp.nak',
  'block.added', 'block.refused', 'block.expired', 'block.conns-removed',
  'frag.held', 'frag.reassembled', 'frag.timeout', 'frag.timeout-icmp-sent', 'frag.sent', 'icmp.error-rate-limited', 'tcp.mss-clamped',
  'dhcpc.discover', 'dhcpc.request', 'dhcpc.release', 'dhcpc.offer', 'dhcpc.ack', 'dhcpc.nak',
  'dhcpc.leased', 'dhcpc.changed', 'dhcpc.lost', 'dhcpc.conns-removed',
  'ha.became-master', 'ha.became-backup', 'arp.gratuitous-sent',
] as const;

export type CounterName = typeof COUNTERS[number];

/** Counter ids of COUNTERS, defined once. */
export function defineCounters(counters: Counters): Record<CounterName, number> {
  const c = {} as Record<CounterName, number>;
  for (const k of COUNTERS) c[k] = counters.define(k);
  return c;
}

export class Drops {
  /** Counter id of "drop.<reason>" by reason: pass it to drop(). */
  readonly id: Readonly<Record<DropReason, number>>;
  readonly #counters: Counters;
  readonly #pkt: Packet;
  readonly #names: readonly string[];
  /** Counter id of "domain.<d>.drop.<reason>" at [domain * DROP_REASONS.length + reason index]. */
  readonly #domDrop: Int32Array;
  /** Reason index (in DROP_REASONS) by the counter id of "drop.<reason>". */
  readonly #reasonIdx: Int32Array;
  /** Where drop log lines (and the router's other log lines) go, if anywhere. */
  readonly log: ((line: string) => void) | undefined;
  #perS = 0;
  #budget = 0;
  #suppressed = 0;

  /** Drops are counted for the ingress domain of `pkt` and logged with its headers. */
  constructor(counters: Counters, domainNames: readonly string[], pkt: Packet, log: ((line: string) => void) | undefined, logPerS: number) {
    this.#counters = counters;
    this.#pkt = pkt;
    this.#names = domainNames;
    this.log = log;
    const d = {} as Record<DropReason, number>;
    for (const r of DROP_REASONS) d[r] = counters.dropReason(r);
    this.id = d;
    const nr = DROP_REASONS.length;
    this.#domDrop = new Int32Array(domainNames.length * nr);
    this.#reasonIdx = new Int32Array(Math.max(...Object.values(d)) + 1);
    DROP_REASONS.forEach((r, k) => {
      this.#reasonIdx[d[r]] = k;
      domainNames.forEach((name, i) => { this.#domDrop[i * nr + k] = counters.define(`domain.${name}.drop.${r}`); });
    });
    this.setRate(logPerS);
  }

  /** Count a drop (an id of `id`) for the current packet's domain; log it while the budget lasts. */
  drop(id: number): void {
    this.#counters.add(id);
    this.#counters.add(this.#domDrop[this.#pkt.dom * DROP_REASONS.length + this.#reasonIdx[id]]);
    if (this.#budget > 0) this.#logDrop(id);
    else if (this.log !== undefined) this.#suppressed++;
  }

  #logDrop(id: number): void {
    this.#budget--;
    const p = this.#pkt;
    const reason = DROP_REASONS[this.#reasonIdx[id]];
    const pkt = describePacket(p.has ? p.buf : undefined, 0, p.len);
    this.log!(`drop ${reason} domain ${this.#names[p.dom]}${pkt === '' ? '' : ` ${pkt}`}`);
  }

  /** Log lines per second (a reload); the budget starts full. */
  setRate(perS: number): void {
    this.#perS = perS;
    this.#budget = this.log === undefined ? 0 : perS;
  }

  /** Once a second: the budget, and a line about what it left out. */
  refill(): void {
    if (this.log === undefined) return;
    if (this.#suppressed > 0 && this.#perS > 0) this.log(`drop log: ${this.#suppressed} more drops not logged (log.drops-per-s ${this.#perS})`);
    this.#suppressed = 0;
    this.#budget = this.#perS;
  }
}
