// The router's logic, free of fds and sessions: frames come in through
// receive(domain, buf, off, len) and leave through one EgressPort per domain
// (alloc a slot, write, submit; flush once per batch). Modelled on Genode's
// nic_router: one domain per Nic session, ARP per domain, IPv4 forwarding
// between domains under a per-domain policy, masquerading NAT and connection
// tracking for TCP, UDP and ICMP echo.
//
// Shared memory is read once: receive() copies the frame out of the ingress
// slot (which the sending peer can still write) into the router's private
// packet buffer (packet.ts), and every check, decision and rewrite reads that
// copy only; the finished frame is then copied into the egress slot (link.ts).
// The hot path allocates nothing per forwarded packet, throws nothing, and
// counts every drop under its reason. The packet's parsed fields live in one
// preallocated context object (Packet) the steps share.
//
// Parts: link.ts (ARP and egress), icmp.ts (echo replies, errors, error
// translation), rewrite.ts (header rewrite, incremental checksums), tracking.ts
// (connection states and timeouts), nat.ts (NAT ports and quotas), routing.ts
// (addresses, routes), drops.ts (counters, drop log), status.ts.
//
// Time is coarse: the router reads its clock in tick() and flush() (once per
// batch), not per packet.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import { NO_TRACE } from '../../trace/tracer.ts';
import type { Tracer } from '../../trace/tracer.ts';
import { formatIpv4, isGroupMac, isMartianSourceIpv4, isMulticastIpv4, macEquals, prefixesOverlap } from '../../net/addr.ts';
import { getI32, getU16, getU16le, setU16 } from '../../net/bytes.ts';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, writeMacBytes } from '../../net/ethernet.ts';
import {
  ICMP_ADMIN_PROHIBITED, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_EXC_FRAGTIME, ICMP_EXC_TTL, ICMP_HLEN, ICMP_NET_UNREACH,
  ICMP_FRAG_NEEDED, ICMP_PARAM_PROBLEM, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED, icmpChecksumOk,
} from '../../net/icmp.ts';
import {
  checkIpv4, IP_DST, IP_ERR_CHECKSUM, IP_ERR_IHL, IP_ERR_LENGTH, IP_ERR_TRUNCATED, IP_ERR_VERSION,
  IP_SRC, IP_TTL, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ipv4DecrementTtl, ipv4IsFragment,
} from '../../net/ipv4.ts';
import {
  checkTcp, TCP_ACK_FLAG, TCP_CHECKSUM, TCP_ERR_CHECKSUM, TCP_ERR_OFFSET, TCP_FIN, TCP_FLAGS, TCP_OK, TCP_RST, TCP_SYN,
} from '../../net/tcp.ts';
import { checkUdp, UDP_CHECKSUM, UDP_ERR_CHECKSUM, UDP_ERR_LENGTH, UDP_OK } from '../../net/udp.ts';
import {
  VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_UDP, VNET_HDR_LEN,
  vnetClear, vnetGsoKnown,
} from '../../net/vnet.ts';
import { type RouterConfig, structuralChange } from './config.ts';
import { type Conn, ConnTable, CT_LINKED } from './conntrack.ts';
import { DHCP_MALFORMED, DHCP_POOL_EXHAUSTED, DHCP_SILENT, DHCP_TYPE_NAMES, DhcpServer, isDhcpToServer } from './dhcp-server.ts';
import { DHCPC_IGNORED, DHCPC_MALFORMED, DHCPC_REFUSED, DhcpClient, isDhcpToClient, type DhcpLease } from './dhcp-client.ts';
import { type CounterName, defineCounters, Drops } from './drops.ts';
import { Icmp } from './icmp.ts';
import { Link } from './link.ts';
import { Forward6, ICMP6_ERRORS_BURST, ICMP6_ERRORS_PER_S } from './forward6.ts';
import { TokenBuckets } from './rate-limit.ts';
import { Local6 } from './local6.ts';
import type { Mirror } from './mirror.ts';
import { NAT_QUOTA_EXCEEDED, NatBook } from './nat.ts';
import { copyFrame, L3, Packet, words } from './packet.ts';
import { Policy, POLICY_ACCEPT, POLICY_ACCEPT_NAT, POLICY_DROP, POLICY_REJECT } from './policy.ts';
import { TCP_RESET_LEN, writeTcpReset } from './reject.ts';
import { l4ChecksumAt, rewriteAddrs } from './rewrite.ts';
import { Ipv4Reassembler, REASM_DONE, REASM_DROP_REASONS, REASM_HELD } from './reassembly.ts';
import { clampMss, egressFit, FIT_FRAGMENT, FIT_OK } from './mtu.ts';
import { EgressHold } from './egress-hold.ts';
import { Routing } from './routing.ts';
import { RuntimeBlocks } from './runtime-blocks.ts';
import { routerStatus } from './status.ts';
import { ConnSync, REC_CHANGED, REC_EXPIRED, REC_NEW } from './sync.ts';
import { connTimeout, initialState, track } from './tracking.ts';
import type { EgressPort } from './types.ts';

export { COUNTERS, DROP_REASONS, type DropReason } from './drops.ts';
import type { DropReason } from './drops.ts';
export type { EgressPort } from './types.ts';
export { structuralChange } from './config.ts';

export interface RouterOptions {
  /** Milliseconds, monotonic. Default performance.now. */
  clock?: () => number;
  /** Where drop log lines go (config log.drops-per-s); default: nowhere. */
  log?: (line: string) => void;
  /** Tracepoints router.parse / lookup / conntrack / copy / nat / forward go here (default: none). */
  tracer?: Tracer;
  /** Copies of mirrored domains' frames for the monitor (mirror.ts). */
  mirror?: Mirror;
  /** The largest frame receive() is handed (the ingress slot size); default the largest egress slot. */
  maxFrame?: number;
  /** Uniform in [0, 1): the jitter of router advertisements (default Math.random). */
  random?: () => number;
  /** The `sync` session (sync.ts): where connection records go, and the largest packet of records that may come in. */
  sync?: { out: EgressPort; inSlotSize: number };
  /** How long after its start the router imports records (ms; default SYNC_RESTORE_MS). */
  syncRestoreMs?: number;
}

const BARE_SYN_MASK = TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN;
/**
 * The restore window: a router imports `sync` records only this long after
 * its start (conn-sync sends its table when the router restarts: measured
 * all in within ~0.75 s for ~3000 connections). Later records are refused
 * (`sync.import-refused.not-restoring`): a compromised conn-sync cannot add
 * connections to a running router or change a live connection's state (e.g.
 * turn an established one "closed", which expires it 10 s after its last
 * packet, or a closed one "established" to hold its NAT port for hours).
 */
export const SYNC_RESTORE_MS = 5000;
const copyBytes = Buffer.prototype.copy;

export class Router {
  /** The config in force (replaced by reconfigure()). */
  cfg: RouterConfig;
  readonly #counters: Counters;
  readonly #clock: () => number;
  readonly #mirror: Mirror | undefined;
  #now: number;
  readonly #n: number;
  readonly #rxId: Int32Array;
  /** Per domain: the ingress buffer last seen and its 32-bit view (for copyFrame). */
  readonly #inBuf: (Uint8Array | undefined)[];
  readonly #in32: (Int32Array | undefined)[];
  /** The packet being handled: the private copy and what is known of it (reused for every packet). */
  readonly #pkt: Packet;
  readonly #rt: Routing;
  readonly #drops: Drops;
  readonly #c: Record<CounterName, number>;
  readonly #link: Link;
  /** Backpressure: which ingresses wait for an egress's slots (egress-hold.ts; the entrypoint's glue in index.ts asks it). */
  readonly hold: EgressHold;
  readonly #icmp: Icmp;
  /** The router's own IPv6: validation, Neighbor Discovery, echo, router advertisements. */
  readonly #local6: Local6;
  /** IPv6 forwarding: its connections, neighbors, policy and errors. */
  readonly #fwd6: Forward6;
  #policy: Policy;
  /** Sources blocked at run time (block(): the monitor's block feedback); kept across reconfigure(). */
  readonly #rtBlocks = new RuntimeBlocks();
  readonly #ct: ConnTable;
  readonly #nat: NatBook;
  /** Per domain: its MTU, and whether it clamps the MSS of TCP SYNs. */
  readonly #mtu: Int32Array;
  readonly #mssClamp: Uint8Array;
  /** IPv4 datagrams being rebuilt from fragments (policy and NAT need the transport header). */
  readonly #reasm: Ipv4Reassembler;
  /** ICMP errors about reassembly timeouts: rate-limited like the ICMPv6 errors (forward6.ts). */
  readonly #errBucket = new TokenBuckets(ICMP6_ERRORS_PER_S, ICMP6_ERRORS_BURST);
  #lastSweep = 0;
  /** Connection-state export and import over the `sync` session (sync.ts), when granted. */
  readonly #sync: ConnSync | undefined;
  /** Imports are taken until then (this router's start + SYNC_RESTORE_MS). */
  readonly #restoreUntil: number;
  /**
   * HA role (config `ha`; init's command `role`): a backup takes no frame from
   * its domains (counted `ha-backup`), sends none (its timers that send are
   * off) and imports its conn-sync's records at any time; a master is a
   * normal router.
   */
  #backup: boolean;
  #roleSince = 0;
  /** Per domain: its DHCP server, if it runs one. */
  readonly #dhcp: (DhcpServer | undefined)[];
  /** Per domain: its DHCP client (`address: dhcp`), if it has one. */
  readonly #dhcpc: (DhcpClient | undefined)[];
  // Tracepoints: the packet's start is taken once in receive(); each stage then costs one clock read.
  readonly #tr: Tracer;
  readonly #pParse: number;
  readonly #pLookup: number;
  readonly #pConntrack: number;
  readonly #pNat: number;
  readonly #pForward: number;
  #t0 = 0;

  constructor(cfg: RouterConfig, ports: readonly EgressPort[], counters: Counters, opts: RouterOptions = {}) {
    if (ports.length !== cfg.domains.length) throw new RangeError('Router: one egress port per domain');
    this.cfg = cfg;
    this.#counters = counters;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#mirror = opts.mirror;
    const tr = this.#tr = opts.tracer ?? NO_TRACE;
    this.#pParse = tr.proc('router.parse');
    this.#pLookup = tr.proc('router.lookup');
    this.#pConntrack = tr.proc('router.conntrack');
    const pCopy = tr.proc('router.copy');
    this.#pNat = tr.proc('router.nat');
    this.#pForward = tr.proc('router.forward');
    this.#now = this.#clock();
    this.#n = cfg.domains.length;
    this.#rxId = Int32Array.from(cfg.domains, (d) => counters.define(`rx.${d.name}`));
    this.#inBuf = new Array<Uint8Array | undefined>(this.#n).fill(undefined);
    this.#in32 = new Array<Int32Array | undefined>(this.#n).fill(undefined);
    let slotSize = 0;
    for (const p of ports) slotSize = Math.max(slotSize, p.slotSize);
    this.#pkt = new Packet(Math.max(slotSize, opts.maxFrame ?? 0));
    this.#rt = new Routing(cfg);
    this.#drops = new Drops(counters, cfg.domains.map((d) => d.name), this.#pkt, opts.log, cfg.logDropsPerS);
    this.#c = defineCounters(counters);
    this.hold = new EgressHold(cfg.domains.map((d) => d.name), cfg.domains.map((d) => d.backpressure), ports, counters,
      this.#clock, opts.log);
    this.#link = new Link(cfg, ports, this.#rt, this.#pkt, this.#drops, counters, this.#c, opts.mirror, tr, pCopy, this.hold);
    this.#link.now = this.#now;
    this.#policy = new Policy(cfg, this.#now);
    this.#dhcp = cfg.domains.map((d) => (d.policy.dhcp === null ? undefined : new DhcpServer(d.policy.dhcp, d.address, d.mask, d.mac)));
    this.#ct = new ConnTable(cfg.conntrack.max, { perSource: cfg.conntrack.perSource, maxProbe: cfg.conntrack.maxProbe });
    this.#nat = new NatBook(this.#n, cfg.natPorts.first, cfg.natPorts.last, cfg.conntrack.max, cfg.conntrack.maxProbe);
    const sync = this.#sync = opts.sync === undefined ? undefined : new ConnSync(opts.sync.out, opts.sync.inSlotSize, counters);
    this.#restoreUntil = this.#now + (opts.syncRestoreMs ?? SYNC_RESTORE_MS);
    this.#backup = cfg.ha;
    this.#roleSince = this.#now;
    this.#ct.onRemove = sync === undefined ? (c) => this.#nat.release(c) : (c) => {
      this.#nat.release(c);
      sync.record(REC_EXPIRED, c, this.#now);
    };
    this.#icmp = new Icmp(this.#link, this.#rt, this.#ct, this.#drops, counters, this.#c);
    this.#reasm = new Ipv4Reassembler(cfg.fragments);
    this.#reasm.onTimeout = (buf, quote, mac, dom) => this.#reassemblyTimedOut(buf, quote, mac, dom);
    this.#mtu = this.#link.mtu;
    this.#mssClamp = Uint8Array.from(cfg.domains, (d) => (d.mssClamp ? 1 : 0));
    this.#fwd6 = new Forward6(cfg, this.#link, this.#drops, counters, () => this.#policy);
    this.#fwd6.now = this.#now;
    if (sync !== undefined) {
      this.#fwd6.sync = sync;
      this.#fwd6.ct.onRemove = (c) => sync.record6(REC_EXPIRED, c);
    }
    this.#local6 = new Local6(cfg, this.#link, this.#drops, counters, this.#fwd6, this.#now, opts.random);
    this.#dhcpc = cfg.domains.map((d) => (!d.dhcpClient ? undefined : new DhcpClient(d.mac, {
      apply: (lease, why) => this.#applyLease(d.index, lease, why),
      acceptable: (address, prefix) => this.#leaseConflict(d.index, address, prefix),
      log: (line) => this.#drops.log?.(`router: domain ${d.name}: ${line}`),
    }, opts.random)));
  }

  /** The index of a domain by name, or -1. */
  domainIndex(name: string): number {
    return this.cfg.domains.findIndex((d) => d.name === name);
  }

  #readClock(): number {
    const now = this.#now = this.#clock();
    this.#link.now = now;
    if (this.#fwd6 !== undefined) this.#fwd6.now = now;
    return now;
  }

  // ---- batch and timer hooks -------------------------------------------------

  /** Publish what the last batch produced (one flush per egress that got packets). */
  flush(): void {
    this.#readClock();
    this.#link.flush();
    this.#sync?.flush(this.#now);
  }

  /** The sync peer restarted with an empty table: send it every connection again (sync.ts). */
  resyncPeer(): void {
    this.#sync?.resyncAll(this.#ct, this.#fwd6.ct);
  }

  /**
   * A packet of connection records from the sync peer (conn-sync) in
   * buf[off, off + len): copied out, each record checked against this
   * router's config, policy and table, and the acceptable ones installed
   * (sync.ts). Ignored when the router has no sync session.
   */
  importSync(buf: Uint8Array, off: number, len: number): void {
    const sync = this.#sync;
    if (sync === undefined) return;
    const now = this.#readClock();
    // Imports are a restart's business: after the restore window a running router takes none,
    // so a holder can neither add connections to it nor change the state of live ones.
    // A backup (HA) takes them at any time: they are the active peer's connections, for a takeover.
    if (!this.#backup && now >= this.#restoreUntil) return sync.refuseLate(len);
    const fwd6 = this.#fwd6;
    const v6 = { cfg: this.cfg, policy: this.#policy, ct: fwd6.ct, route: (b: Uint8Array, o: number) => fwd6.route(b, o), now };
    sync.receive(buf, off, len, { cfg: this.cfg, rt: this.#rt, policy: this.#policy, ct: this.#ct, nat: this.#nat, rtBlocks: this.#rtBlocks, now, v6 }, this.#n, this.#backup);
  }

  /** The HA role: "master" or "backup" (config `ha`; init's command `role`). */
  get role(): 'master' | 'backup' {
    return this.#backup ? 'backup' : 'master';
  }

  /**
   * Init's `role` command (HA pair): a backup becoming master announces each
   * domain's address (gratuitous ARP) and forwards from now on, with the
   * connections it imported as backup; a master becoming backup stops
   * forwarding and sending, and keeps its connections (the peer's resync
   * refreshes them). Returns whether the role changed.
   */
  setRole(role: 'master' | 'backup'): boolean {
    const backup = role === 'backup';
    if (backup === this.#backup) return false;
    this.#readClock();
    this.#backup = backup;
    this.#roleSince = this.#now;
    this.#counters.add(this.#c[backup ? 'ha.became-backup' : 'ha.became-master']);
    if (!backup) {
      for (let d = 0; d < this.#n; d++) this.#link.announce(d);
      this.#link.flush();
    }
    return true;
  }

  /** Timers: ARP retries and expiry, conntrack expiry (once a second). Call every ~100 ms, then flush(). */
  tick(): void {
    const now = this.#readClock();
    if (this.#backup) { // sends nothing: no ARP retries, no advertisements, no DHCP; connections still expire
      if (now - this.#lastSweep >= 1000) {
        this.#lastSweep = now;
        this.#counters.add(this.#c['conntrack.expired'], this.#ct.sweep(now));
      }
      return;
    }
    this.#link.tick();
    this.#local6.tick(now);
    this.#fwd6.tick(now, now - this.#lastSweep >= 1000);
    for (let i = 0; i < this.#n; i++) {
      const cl = this.#dhcpc[i];
      if (cl !== undefined) this.#dhcpcSend(i, cl, cl.tick(now));
    }
    const expired = this.#rtBlocks.sweep(now);
    if (expired > 0) this.#counters.add(this.#c['block.expired'], expired);
    if (now - this.#lastSweep >= 1000) {
      this.#lastSweep = now;
      for (const s of this.#dhcp) s?.sweep(now);
      this.#drops.refill();
      this.#counters.add(this.#c['conntrack.expired'], this.#ct.sweep(now));
      this.#counters.add(this.#c['frag.timeout'], this.#reasm.expire(now));
    }
  }

  /** Forget the ARP state of a domain (its session was reset). Waiting packets are dropped as unresolved. */
  resetDomain(dom: number): void {
    this.#pkt.has = false;
    this.#pkt.dom = dom;
    this.#link.reset(dom);
    this.#fwd6.reset(dom);
  }

  // ---- ingress ---------------------------------------------------------------

  /**
   * One packet (virtio_net_hdr + Ethernet frame) arrived on domain `dom` in
   * buf[off, off+len): copied once into the private packet buffer, and never
   * read again (the sender can still write it).
   */
  receive(dom: number, buf: Uint8Array, off: number, len: number): void {
    const dr = this.#drops;
    const D = dr.id;
    // The sink's get_packet tracepoint ended just before: start from its clock reading.
    this.#t0 = this.#tr.latest();
    this.#counters.add(this.#rxId[dom]);
    const p = this.#pkt;
    p.dom = dom;
    p.len = len;
    if (this.#backup) { // an HA backup: the master forwards (no copy, no answer, no ARP)
      p.has = false;
      return dr.drop(D['ha-backup']);
    }
    const b = p.buf = p.home;
    if (len > b.length) { // larger than any slot the router was given: it could never leave
      p.has = false;
      return dr.drop(D['egress-too-big']);
    }
    if (buf !== this.#inBuf[dom]) { // a session's buffer stays the same: this happens once
      this.#inBuf[dom] = buf;
      this.#in32[dom] = words(buf);
    }
    copyFrame(buf, this.#in32[dom], off, b, p.buf32, 0, len);
    p.has = true;
    if (this.#mirror !== undefined) this.#mirror.rx(dom, b, 0, len);
    if (len < L3) return dr.drop(D['eth-truncated']);
    const gso = b[1] & 0x7f;
    if (gso !== 0 && !vnetGsoKnown(gso)) return dr.drop(D['vnet-bad-gso']);
    const e = VNET_HDR_LEN;
    if (isGroupMac(b, e + 6)) return dr.drop(D['eth-bad-source']);
    const dstGroup = isGroupMac(b, e);
    if (!dstGroup && !macEquals(b, e, this.#link.macs[dom])) return dr.drop(D['eth-not-for-us']);
    const type = getU16(b, e + 12);
    if (type === ETHERTYPE_ARP) {
      if (gso !== 0) return dr.drop(D['vnet-bad-gso']);
      return this.#link.arpIn(p);
    }
    if (type !== ETHERTYPE_IPV4) {
      const v6 = type === ETHERTYPE_IPV6 ? this.cfg.domains[dom].ipv6 : undefined;
      if (v6 !== undefined) return this.#local6.receive(p, v6, this.#now);
      return dr.drop(D['eth-unsupported-type']);
    }
    if (this.#dhcp[dom] !== undefined && isDhcpToServer(b, L3, len - L3)) return this.#dhcpIn(p);
    if (this.#dhcpc[dom] !== undefined && isDhcpToClient(b, L3, len - L3)) return this.#dhcpcIn(p);
    if (dstGroup) return dr.drop(D['ip-broadcast']);
    this.#ipIn(p);
  }

  // ---- IPv4 ------------------------------------------------------------------

  #ipIn(p: Packet): void {
    const dr = this.#drops;
    const D = dr.id;
    const rt = this.#rt;
    const b = p.buf;
    const dom = p.dom;
    const ihl = checkIpv4(b, L3, p.len - L3);
    if (ihl < 0) {
      return dr.drop(ihl === IP_ERR_TRUNCATED ? D['ip-truncated'] : ihl === IP_ERR_VERSION ? D['ip-bad-version']
        : ihl === IP_ERR_IHL ? D['ip-bad-ihl'] : ihl === IP_ERR_LENGTH ? D['ip-bad-length']
        : ihl === IP_ERR_CHECKSUM ? D['ip-bad-checksum'] : D['ip-truncated']);
    }
    const src = p.src = getI32(b, L3 + IP_SRC);
    const dst = p.dst = getI32(b, L3 + IP_DST);
    if (isMartianSourceIpv4(src) || src === rt.bcast[dom] || src === rt.addr[dom]) return dr.drop(D['ip-bad-source']);
    // A domain without the default route only speaks for its own prefix.
    if (rt.gw[dom] === -1 && (src & rt.mask[dom]) !== rt.net[dom] && rt.routeIn(dom, src) < 0) return dr.drop(D['ip-spoofed-source']);
    if (dst === -1 || dst === 0 || isMulticastIpv4(dst) || dst === rt.bcast[dom]) return dr.drop(D['ip-broadcast']);
    if (this.#policy.blocked(dom, src, this.#now)) return dr.drop(D.blocklisted);
    if (this.#rtBlocks.has(src, this.#now)) {
      this.#rtBlocks.hit(src);
      return dr.drop(D.blocklisted);
    }
    if (ipv4IsFragment(b, L3)) return this.#fragmentIn(p, ihl);

    const proto = p.proto = b[L3 + 9];
    const l4 = p.l4 = L3 + ihl;
    const l4Len = p.l4Len = getU16(b, L3 + 2) - ihl;
    p.ihl = ihl;
    // Offload metadata must agree with the headers it describes.
    const vflags = b[0];
    const gso = b[1] & 0x7f;
    const needsCsum = p.needsCsum = (vflags & VNET_F_NEEDS_CSUM) !== 0;
    if (gso !== 0 && (!needsCsum || (gso === VNET_GSO_TCPV4 ? proto !== IPPROTO_TCP : gso === VNET_GSO_UDP ? proto !== IPPROTO_UDP : true))) {
      return dr.drop(D['vnet-bad-gso']);
    }
    if (needsCsum) {
      const field = proto === IPPROTO_TCP ? TCP_CHECKSUM : proto === IPPROTO_UDP ? UDP_CHECKSUM : proto === IPPROTO_ICMP ? 2 : -1;
      if (getU16le(b, VNET_CSUM_START) !== ETH_HLEN + ihl || getU16le(b, VNET_CSUM_OFFSET) !== field ||
        field + 2 > l4Len) return dr.drop(D['vnet-bad-csum']);
    }
    const verify = this.cfg.verifyChecksums && (vflags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;

    p.tcpFlags = 0;
    p.icmpType = -1;
    if (proto === IPPROTO_TCP) {
      const r = checkTcp(b, L3, l4, l4Len, verify);
      if (r !== TCP_OK) {
        return dr.drop(r === TCP_ERR_CHECKSUM ? D['tcp-bad-checksum'] : r === TCP_ERR_OFFSET ? D['tcp-bad-offset'] : D['tcp-truncated']);
      }
      p.sport = getU16(b, l4);
      p.dport = getU16(b, l4 + 2);
      p.tcpFlags = b[l4 + TCP_FLAGS];
    } else if (proto === IPPROTO_UDP) {
      const r = checkUdp(b, L3, l4, l4Len, verify);
      if (r !== UDP_OK) {
        return dr.drop(r === UDP_ERR_CHECKSUM ? D['udp-bad-checksum'] : r === UDP_ERR_LENGTH ? D['udp-bad-length'] : D['udp-truncated']);
      }
      p.sport = getU16(b, l4);
      p.dport = getU16(b, l4 + 2);
    } else if (proto === IPPROTO_ICMP) {
      if (l4Len < ICMP_HLEN) return dr.drop(D['icmp-truncated']);
      if (verify && !icmpChecksumOk(b, l4, l4Len)) return dr.drop(D['icmp-bad-checksum']);
      const t = p.icmpType = b[l4];
      if (t === ICMP_DEST_UNREACH || t === ICMP_TIME_EXCEEDED || t === ICMP_PARAM_PROBLEM) return this.#icmp.errorIn(p, this.#now);
      if (t !== ICMP_ECHO_REQUEST && t !== ICMP_ECHO_REPLY) return dr.drop(D['icmp-unsupported-type']);
      p.sport = p.dport = getU16(b, l4 + 4);
    } else {
      return dr.drop(dst === rt.addr[dom] ? D['to-router'] : D['ip-unsupported-protocol']);
    }
    const icmpType = p.icmpType;

    // A tracked connection: either direction passes.
    const ct = this.#ct;
    const tl = this.#tr.end(this.#pParse, this.#t0);
    let ref = ct.lookup(proto, dom, src, p.sport, dst, p.dport);
    this.#tr.end(this.#pLookup, tl);
    if (ref >= 0) {
      const c = ct.conn(ref >>> 1);
      if (c.expires <= this.#now) {
        ct.remove(c);
        this.#counters.add(this.#c['conntrack.expired']);
        ref = -1;
      } else if (icmpType >= 0 && (icmpType === ICMP_ECHO_REQUEST) !== ((ref & 1) === 0)) {
        ref = -1; // a request must travel the original direction, a reply the other
      }
    }
    if (ref >= 0) return this.#forward(ct.conn(ref >>> 1), ref & 1);

    // New traffic.
    const echoRequest = icmpType === ICMP_ECHO_REQUEST && b[l4 + 1] === 0;
    if (dst === rt.addr[dom]) {
      if (echoRequest) return this.#icmp.echoReply(p, dom);
      const f = this.#policy.forward(dom, proto, p.dport);
      if (f < 0) return dr.drop(D['to-router']);
      return this.#openForwarded(f);
    }
    for (let i = 0; i < this.#n; i++) {
      if (dst !== rt.addr[i]) continue;
      // The router's address in another domain answers pings only from a domain
      // that may open connections into that one (as the Linux reference does).
      if (echoRequest && permits(this.#policy.decide(dom, i, proto, dst, p.dport))) return this.#icmp.echoReply(p, i);
      return dr.drop(D['to-router-other-domain']);
    }
    const out = rt.route(dst);
    if (out < 0) {
      this.#icmp.error(p, ICMP_DEST_UNREACH, ICMP_NET_UNREACH);
      return dr.drop(D['no-route']);
    }
    if (out === dom) return dr.drop(D.hairpin);
    if (rt.addr[out] === 0) return dr.drop(D['dhcp-unbound']); // a DHCP domain without a lease yet
    if (!this.#policy.admit(dom, src, this.#now)) return dr.drop(D['rate-limited']);
    const verdict = this.#policy.decide(dom, out, proto, dst, p.dport);
    if (verdict === POLICY_DROP) return dr.drop(this.#policy.lastRule < 0 ? D['no-rule'] : D['policy-denied']);
    if (verdict === POLICY_REJECT) return this.#reject();
    if (proto === IPPROTO_TCP && (p.tcpFlags & BARE_SYN_MASK) !== TCP_SYN) return dr.drop(D['tcp-new-not-syn']);
    if (proto === IPPROTO_ICMP && icmpType !== ICMP_ECHO_REQUEST) return dr.drop(D['icmp-new-not-echo']);
    if (b[L3 + IP_TTL] <= 1) {
      this.#icmp.error(p, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return dr.drop(D['ttl-exceeded']);
    }
    const tc = this.#tr.stage();
    const c = this.#newConn(out, verdict === POLICY_ACCEPT_NAT, dst, p.dport);
    this.#tr.end(this.#pConntrack, tc);
    if (c === undefined) return;
    this.#forward(c, 0);
  }

  // ---- connections -------------------------------------------------------------

  /**
   * A new connection for the current packet (the caller checked policy, TCP
   * SYN, TTL) into outDom. With a port forward, dnatHost:dnatPort is where it
   * really goes (else the packet's dst:dport).
   */
  #newConn(outDom: number, nat: boolean, dnatHost: number, dnatPort: number): Conn | undefined {
    const p = this.#pkt;
    const ct = this.#ct;
    const dr = this.#drops;
    const D = dr.id;
    const proto = p.proto;
    const icmp = proto === IPPROTO_ICMP;
    let rDst = p.src;
    let rDport = p.sport;
    if (ct.sourceFull(p.dom, p.src)) {
      dr.drop(D['conntrack-source-limit']);
      return undefined;
    }
    if (nat) {
      rDst = this.#rt.addr[outDom];
      rDport = this.#nat.alloc(ct, proto, outDom, p.src, dnatHost, icmp ? -1 : dnatPort, rDst, this.#policy.natPortsPerSource[outDom]);
      if (rDport < 0) {
        dr.drop(rDport === NAT_QUOTA_EXCEEDED ? D['nat-quota-exceeded'] : D['nat-ports-exhausted']);
        return undefined;
      }
    } else if (ct.lookup(proto, outDom, dnatHost, dnatPort, rDst, rDport) >= 0) {
      dr.drop(D['conntrack-collision']);
      return undefined;
    }
    let c = ct.acquire();
    if (c === undefined) {
      this.#counters.add(this.#c['conntrack.expired'], ct.sweep(this.#now));
      c = ct.acquire();
    }
    if (c === undefined) {
      if (nat) this.#nat.unalloc(outDom, proto, rDport);
      dr.drop(D['conntrack-full']);
      return undefined;
    }
    c.proto = proto;
    c.state = initialState(proto);
    c.inDom = p.dom;
    c.oSrc = p.src;
    c.oSport = p.sport;
    c.oDst = p.dst;
    c.oDport = p.dport;
    c.outDom = outDom;
    c.rSrc = dnatHost;
    c.rSport = icmp ? rDport : dnatPort;
    c.rDst = rDst;
    c.rDport = rDport;
    c.nat = nat;
    c.created = this.#now;
    c.expires = this.#now + connTimeout(c, this.cfg.conntrack);
    if (ct.link(c) !== CT_LINKED) { // only the probe bound is left to refuse it (sourceFull above)
      if (nat) this.#nat.unalloc(outDom, proto, rDport);
      ct.abandon(c);
      dr.drop(D['conntrack-probe-limit']);
      return undefined;
    }
    if (nat && !this.#nat.hold(outDom, proto, p.src)) { // no slot within the probe bound
      ct.remove(c); // frees its NAT port
      dr.drop(D['conntrack-probe-limit']);
      return undefined;
    }
    this.#counters.add(this.#c['conntrack.new']);
    this.#sync?.record(REC_NEW, c, this.#now);
    return c;
  }

  /** A new connection to the router's own address and a forwarded port: to forward f's host and port. */
  #openForwarded(f: number): void {
    const p = this.#pkt;
    const dr = this.#drops;
    const D = dr.id;
    const pol = this.#policy;
    if (!pol.admit(p.dom, p.src, this.#now)) return dr.drop(D['rate-limited']);
    if (p.proto === IPPROTO_TCP && (p.tcpFlags & BARE_SYN_MASK) !== TCP_SYN) return dr.drop(D['tcp-new-not-syn']);
    if (p.buf[L3 + IP_TTL] <= 1) {
      this.#icmp.error(p, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return dr.drop(D['ttl-exceeded']);
    }
    const out = pol.fwdTo[f];
    const c = this.#newConn(out, pol.nat(p.dom, out), pol.fwdHost[f], pol.fwdPort[f]);
    if (c === undefined) return;
    this.#counters.add(this.#c['conntrack.port-forwarded']);
    this.#forward(c, 0);
  }

  /**
   * A reject verdict: TCP gets a reset from the address it tried, UDP an
   * ICMP port unreachable, an ICMP echo an ICMP administratively prohibited
   * (from the router's address in the ingress domain). A new TCP segment
   * that is no bare SYN is dropped instead, as nftables drops it.
   */
  #reject(): void {
    const p = this.#pkt;
    const dr = this.#drops;
    const D = dr.id;
    if (p.proto === IPPROTO_TCP) {
      if ((p.tcpFlags & BARE_SYN_MASK) !== TCP_SYN) return dr.drop(D['tcp-new-not-syn']);
      const link = this.#link;
      if (link.ownFrame(p.dom, ETH_HLEN + TCP_RESET_LEN)) {
        const b = link.own;
        const e = VNET_HDR_LEN;
        copyBytes.call(p.buf, b, e, e + 6, e + 12);
        writeMacBytes(b, e + 6, link.macs[p.dom]);
        setU16(b, e + 12, ETHERTYPE_IPV4);
        writeTcpReset(p.buf, L3, p.l4, p.l4Len, b, e + ETH_HLEN);
        if (link.sendOwn(p.dom, ETH_HLEN + TCP_RESET_LEN)) this.#counters.add(this.#c['tcp.reset-sent']);
      }
    } else if (p.proto === IPPROTO_UDP) {
      this.#icmp.error(p, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH);
    } else if (p.icmpType === ICMP_ECHO_REQUEST) {
      this.#icmp.error(p, ICMP_DEST_UNREACH, ICMP_ADMIN_PROHIBITED);
    } else {
      return dr.drop(D['icmp-new-not-echo']);
    }
    dr.drop(D.rejected);
  }

  /**
   * Forward the current packet of connection c in direction dir: TTL check,
   * next hop, state update, header rewrite in the private copy, then one copy
   * into the egress slot (or the pending pool while ARP resolves).
   */
  #forward(c: Conn, dir: number): void {
    const p = this.#pkt;
    const tr = this.#tr;
    const tf = tr.latest(); // the lookup or conntrack tracepoint just ended
    const b = p.buf;
    if (b[L3 + IP_TTL] <= 1) {
      this.#icmp.error(p, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drops.drop(this.#drops.id['ttl-exceeded']);
    }
    const out = dir === 0 ? c.outDom : c.inDom;
    // Too big for the egress link: DF (or a TCP super-frame whose segments do not fit) gets
    // "fragmentation needed" with the link's MTU; otherwise the link cuts it into fragments.
    const mtu = this.#mtu[out];
    const fit = egressFit(b, L3, p.len - L3, p.ihl, p.proto, p.l4, mtu);
    if (fit !== FIT_OK && fit !== FIT_FRAGMENT) {
      this.#icmp.error(p, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu);
      return this.#drops.drop(this.#drops.id['frag-needed']);
    }
    if (p.proto === IPPROTO_TCP && (p.tcpFlags & TCP_SYN) !== 0 && (this.#mssClamp[out] !== 0 || this.#mssClamp[p.dom] !== 0) &&
      clampMss(b, p.l4, p.l4Len, Math.min(mtu, this.#mtu[p.dom]) - 40, !p.needsCsum)) {
      this.#counters.add(this.#c['tcp.mss-clamped']);
    }
    // The packet leaves as the other direction's key, reversed.
    const nDst = dir === 0 ? c.rSrc : c.oSrc;
    const e = this.#link.hopEntry(out, nDst, p.len);
    if (e === undefined) return;
    const tc = tr.stage(); // mid-chain: timed (sampling) with the packet's other stages
    const state = c.state;
    track(c, dir, p.tcpFlags, this.#now, this.cfg.conntrack);
    if (c.state !== state && this.#sync !== undefined) this.#sync.record(REC_CHANGED, c, this.#now);
    const tn = tr.end(this.#pConntrack, tc);
    ipv4DecrementTtl(b, L3);
    rewriteAddrs(b, L3, p.ihl, p.proto, l4ChecksumAt(p.proto, p.l4),
      dir === 0 ? c.rDst : c.oDst, dir === 0 ? c.rDport : c.oDport, nDst, dir === 0 ? c.rSport : c.oSport, p.needsCsum, -1);
    tr.end(this.#pNat, tn);
    // Chained stages (see src/trace/README.md): alloc_packet starts where nat
    // ended, the copy where alloc_packet ended, submit_packet where the copy did.
    if (this.#link.transmit(out, e, p.len) && e.resolved) {
      // router.forward ends with submit_packet, and router.packet (index.ts) with it.
      tr.chainNext();
      tr.end(this.#pForward, tf, p.len);
      tr.chainNext();
    }
  }

  // ---- IPv4 fragments --------------------------------------------------------------

  /**
   * A fragment (in the private copy): held until its datagram is complete,
   * then the whole datagram replaces it in the private copy and goes through
   * the IPv4 path like any packet (policy and NAT see the transport header).
   */
  #fragmentIn(p: Packet, ihl: number): void {
    const dr = this.#drops;
    const b = p.buf;
    if ((b[1] & 0x7f) !== 0) return dr.drop(dr.id['vnet-bad-gso']); // a fragment is never a super-frame
    const r = this.#reasm.offer(b, L3, ihl, getU16(b, L3 + 2), this.#now, p.dom, VNET_HDR_LEN + 6);
    if (r === REASM_HELD) {
      this.#counters.add(this.#c['frag.held']);
      return;
    }
    if (r !== REASM_DONE) return dr.drop(dr.id[REASM_DROP_REASONS[r] as DropReason]);
    const n = this.#reasm.outLength;
    if (L3 + n > b.length) return dr.drop(dr.id['egress-too-big']);
    copyBytes.call(this.#reasm.out, b, L3, 0, n);
    vnetClear(b, 0); // no offload metadata: the sender's checksum covers the whole datagram
    p.len = L3 + n;
    this.#counters.add(this.#c['frag.reassembled']);
    this.#ipIn(p);
  }

  /**
   * A datagram timed out after its first fragment arrived: ICMP time exceeded,
   * fragment reassembly time exceeded (RFC 792), to its source, quoting that
   * fragment's header + 8 bytes; never about a multicast or broadcast
   * destination, rate-limited like the IPv6 errors (RFC 1812 4.3.2.8).
   */
  #reassemblyTimedOut(buf: Uint8Array, quote: number, mac: Uint8Array, dom: number): void {
    const dst = getI32(buf, IP_DST);
    if (dst === -1 || isMulticastIpv4(dst) || dst === this.#rt.bcast[dom]) return;
    if (!this.#errBucket.admit(0, this.#now)) {
      this.#counters.add(this.#c['icmp.error-rate-limited']);
      return;
    }
    if (this.#icmp.errorAbout(dom, mac, 0, buf, 0, quote, getI32(buf, IP_SRC), ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME)) {
      this.#counters.add(this.#c['frag.timeout-icmp-sent']);
    }
  }

  // ---- DHCP server -----------------------------------------------------------------

  /** A datagram to UDP port 67 on a domain with a DHCP server. */
  #dhcpIn(p: Packet): void {
    const dr = this.#drops;
    const D = dr.id;
    const b = p.buf;
    const dom = p.dom;
    const ihl = checkIpv4(b, L3, p.len - L3);
    if (ihl < 0) return dr.drop(D['dhcp-malformed']);
    const l4 = L3 + ihl;
    const verify = this.cfg.verifyChecksums && (b[0] & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;
    if (checkUdp(b, L3, l4, getU16(b, L3 + 2) - ihl, verify) !== UDP_OK) return dr.drop(D['dhcp-malformed']);
    const s = this.#dhcp[dom]!;
    const n = s.handle(b, L3, ihl, getU16(b, l4 + 4), this.#now);
    if (s.lastType !== 0) this.#counters.add(this.#counters.define(`dhcp.${DHCP_TYPE_NAMES[s.lastType]}`));
    if (s.result === DHCP_MALFORMED) return dr.drop(D['dhcp-malformed']);
    if (s.result === DHCP_POOL_EXHAUSTED) return dr.drop(D['dhcp-pool-exhausted']);
    if (s.result === DHCP_SILENT) return dr.drop(D['dhcp-not-ours']);
    if (n === 0) return;
    const link = this.#link;
    if (!link.ownFrame(dom, n)) return;
    copyBytes.call(s.out, link.own, VNET_HDR_LEN, 0, n);
    if (link.sendOwn(dom, n)) this.#counters.add(this.#counters.define(`dhcp.${DHCP_TYPE_NAMES[s.replyType]}`));
  }

  // ---- DHCP client (address: dhcp) ------------------------------------------------

  /** A datagram from UDP port 67 to 68 on a domain with a DHCP client. */
  #dhcpcIn(p: Packet): void {
    const dr = this.#drops;
    const D = dr.id;
    const b = p.buf;
    const ihl = checkIpv4(b, L3, p.len - L3);
    if (ihl < 0) return dr.drop(D['dhcpc-malformed']);
    const l4 = L3 + ihl;
    const verify = this.cfg.verifyChecksums && (b[0] & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;
    if (checkUdp(b, L3, l4, getU16(b, L3 + 2) - ihl, verify) !== UDP_OK) return dr.drop(D['dhcpc-malformed']);
    const cl = this.#dhcpc[p.dom]!;
    const n = cl.handle(b, L3, ihl, getU16(b, l4 + 4), VNET_HDR_LEN + 6, this.#now);
    if (cl.lastType !== 0) this.#counters.add(this.#counters.define(`dhcpc.${DHCP_TYPE_NAMES[cl.lastType]}`));
    if (cl.result === DHCPC_MALFORMED) return dr.drop(D['dhcpc-malformed']);
    if (cl.result === DHCPC_IGNORED) return dr.drop(D['dhcpc-ignored']);
    if (cl.result === DHCPC_REFUSED) return dr.drop(D['dhcpc-refused']);
    this.#dhcpcSend(p.dom, cl, n);
  }

  #dhcpcSend(dom: number, cl: DhcpClient, n: number): void {
    if (n === 0) return;
    const link = this.#link;
    if (!link.ownFrame(dom, n)) return;
    copyBytes.call(cl.out, link.own, VNET_HDR_LEN, 0, n);
    if (link.sendOwn(dom, n)) this.#counters.add(this.#counters.define(`dhcpc.${DHCP_TYPE_NAMES[cl.sentType]}`));
  }

  /** Why a lease of address/prefix cannot be domain dom's: it overlaps another domain's prefix or routes. */
  #leaseConflict(dom: number, address: number, prefix: number): string | undefined {
    for (const d of this.cfg.domains) {
      if (d.index === dom || d.dhcpClient) continue;
      if (prefixesOverlap(address, prefix, d.address, d.prefix)) return `${formatIpv4(address)}/${prefix} overlaps domain ${d.name} (${formatIpv4(d.network)}/${d.prefix})`;
      for (const r of d.routes ?? []) {
        if (prefixesOverlap(address, prefix, r.network, r.prefix)) return `${formatIpv4(address)}/${prefix} overlaps a route of domain ${d.name} (${formatIpv4(r.network)}/${r.prefix})`;
      }
    }
    return undefined;
  }

  /**
   * Domain dom's lease started, changed or ended: its address, prefix and
   * gateway in the routing tables; when the address changed, its ARP state and
   * every connection that used the old address (masqueraded ones, forwards
   * to it, the router's own) go: their packets could not come back.
   */
  #applyLease(dom: number, lease: DhcpLease | undefined, why: string): void {
    const rt = this.#rt;
    const old = rt.addr[dom];
    rt.setLease(dom, lease);
    const now = rt.addr[dom];
    const name = this.cfg.domains[dom].name;
    this.#counters.add(this.#c[lease === undefined ? 'dhcpc.lost' : why === 'leased' ? 'dhcpc.leased' : 'dhcpc.changed']);
    if (old !== now) {
      this.#link.reset(dom);
      const gone: Conn[] = [];
      if (old !== 0) {
        for (const c of this.#ct.live()) {
          if (c.oSrc === old || c.oDst === old || c.rSrc === old || c.rDst === old) gone.push(c);
        }
      }
      for (const c of gone) this.#ct.remove(c);
      this.#counters.add(this.#c['dhcpc.conns-removed'], gone.length);
      this.#drops.log?.(`router: domain ${name}: address ${old === 0 ? 'none' : formatIpv4(old)} -> ${now === 0 ? 'none' : `${formatIpv4(now)}/${lease?.prefix}`}`
        + ` (${why}; ${gone.length} connection${gone.length === 1 ? '' : 's'} of the old address removed)`);
    }
  }

  /** Release every DHCP lease (the router stops): returns how many RELEASEs were sent. */
  releaseLeases(): number {
    let n = 0;
    for (let i = 0; i < this.#n; i++) {
      const cl = this.#dhcpc[i];
      if (cl === undefined) continue;
      const len = cl.release();
      if (len > 0) {
        this.#dhcpcSend(i, cl, len);
        n++;
      }
    }
    this.#link.flush();
    return n;
  }

  // ---- run-time blocks --------------------------------------------------------------

  /**
   * Block source address ip (u32) on every domain for `seconds` (again: the
   * expiry and reason are replaced), and remove the connections it is an end
   * of. Refuses (throws, counted `block.refused`) the router's own addresses,
   * its domains' network and broadcast addresses, and addresses that are no
   * unicast host (0/8, 127/8, multicast, reserved): blocking them would cut
   * the gateway off, or mean nothing.
   */
  block(ip: number, seconds: number, reason: string): { ip: string; seconds: number; connectionsRemoved: number } {
    const refuse = (why: string): never => {
      this.#counters.add(this.#c['block.refused']);
      throw new Error(`will not block ${formatIpv4(ip)}: ${why}`);
    };
    if (isMartianSourceIpv4(ip)) refuse('not a unicast host address');
    for (const d of this.cfg.domains) {
      if (ip === (this.#rt.addr[d.index] >>> 0)) refuse(`it is the router's own address on domain ${d.name}`);
      if (ip === d.network || ip === d.broadcast) refuse(`it is the ${ip === d.network ? 'network' : 'broadcast'} address of domain ${d.name}`);
    }
    this.#readClock();
    if (!this.#rtBlocks.add(ip, seconds * 1000, reason, this.#now)) refuse('the run-time blocklist is full (MAX_RUNTIME_BLOCKS)');
    this.#counters.add(this.#c['block.added']);
    const gone: Conn[] = [];
    for (const c of this.#ct.live()) if ((c.oSrc >>> 0) === ip || (c.rSrc >>> 0) === ip) gone.push(c);
    for (const c of gone) this.#ct.remove(c);
    this.#counters.add(this.#c['block.conns-removed'], gone.length);
    this.#drops.log?.(`router: blocked ${formatIpv4(ip)} for ${seconds} s: ${reason}`);
    return { ip: formatIpv4(ip), seconds, connectionsRemoved: gone.length };
  }

  // ---- status and reconfiguration --------------------------------------------------------

  status(): Record<string, unknown> {
    const s = routerStatus({
      cfg: this.cfg, now: this.#now, arp: this.#link.caches, pending: this.#link.pool, ct: this.#ct,
      policy: this.#policy, rtBlocks: this.#rtBlocks, dhcp: this.#dhcp, ct6: this.#fwd6.ct, neighbors: this.#fwd6.neighbors, nat: this.#nat,
      reassembly: { ipv4: this.#reasm, ipv6: this.#fwd6.reasm },
    });
    const clients: Record<string, unknown> = {};
    for (const d of this.cfg.domains) {
      const cl = this.#dhcpc[d.index];
      if (cl !== undefined) clients[d.name] = cl.status(this.#now);
    }
    const ha = this.cfg.ha ? { ha: { role: this.role, forMs: Math.round(this.#now - this.#roleSince) } } : {};
    const off = this.hold.status();
    const hold = Object.keys(off).length === 0 ? {} : { backpressureOffMs: off };
    return Object.keys(clients).length === 0 ? { ...s, ...ha, ...hold } : { ...s, ...ha, ...hold, dhcpClient: clients };
  }

  /**
   * Swap in a new config: a new compiled policy, conntrack timeouts, DHCP
   * settings, the drop log. Domains, addresses, MACs, table sizes and the NAT
   * range must stay as they are (they hold live state). Connections the new
   * policy no longer permits are removed; the others keep flowing. Returns why
   * the config cannot be applied (then nothing changed), or undefined.
   */
  reconfigure(next: RouterConfig): string | undefined {
    const why = structuralChange(this.cfg, next);
    if (why !== undefined) return why;
    this.#readClock();
    const policy = new Policy(next, this.#now);
    this.cfg = next;
    this.hold.configure(next.domains.map((d) => d.backpressure));
    this.#local6.reconfigure(next);
    this.#fwd6.cfg = next;
    this.#policy = policy;
    this.#link.arpCfg = next.arp;
    for (const d of next.domains) {
      const spec = d.policy.dhcp;
      const cur = this.#dhcp[d.index];
      if (spec === null) this.#dhcp[d.index] = undefined;
      else if (cur === undefined) this.#dhcp[d.index] = new DhcpServer(spec, d.address, d.mask, d.mac);
      else cur.update(spec);
    }
    this.#drops.setRate(next.logDropsPerS);
    for (const d of next.domains) {
      this.#mtu[d.index] = d.mtu;
      this.#mssClamp[d.index] = d.mssClamp ? 1 : 0;
    }
    const stale: Conn[] = [];
    for (const c of this.#ct.live()) if (!this.#stillPermitted(c)) stale.push(c);
    for (const c of stale) this.#ct.remove(c);
    for (const c of this.#ct.live()) c.expires = Math.min(c.expires, this.#now + connTimeout(c, next.conntrack));
    this.#counters.add(this.#c['conntrack.reload-removed'], stale.length + this.#fwd6.reload(policy));
    this.#counters.add(this.#c['policy.reloads']);
    return undefined;
  }

  /** Would the policy in force accept this connection now, the same way (target, NAT, port forward)? */
  #stillPermitted(c: Conn): boolean {
    const p = this.#policy;
    const now = this.#now;
    if (p.blocked(c.inDom, c.oSrc, now) || p.blocked(c.outDom, c.rSrc, now)) return false;
    if (c.oDst === this.#rt.addr[c.inDom]) {
      const f = p.forward(c.inDom, c.proto, c.oDport);
      return f >= 0 && p.fwdTo[f] === c.outDom && p.fwdHost[f] === c.rSrc && p.fwdPort[f] === c.rSport && p.nat(c.inDom, c.outDom) === c.nat;
    }
    return p.peek(c.inDom, c.outDom, c.proto, c.oDst, c.oDport) === (c.nat ? POLICY_ACCEPT_NAT : POLICY_ACCEPT);
  }
}

function permits(verdict: number): boolean {
  return verdict === POLICY_ACCEPT || verdict === POLICY_ACCEPT_NAT;
}
