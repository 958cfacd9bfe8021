// The router's logic, free of fds and sessions: frames come in through
// receive(domain, buf, off, len) and leave through one EgressPort per domain
// (alloc a slot, write, submit; flush once per batch). Modelled on Genode's
// nic_router: one domain per Nic session, ARP per domain, IPv4 forwarding
// between domains under a per-domain policy, masquerading NAT and connection
// tracking for TCP, UDP and ICMP echo.
//
// The hot path makes every decision reading the ingress buffer, then copies
// the frame once into the egress slot and rewrites headers there in place
// (TTL, addresses, ports, incremental checksums). It allocates nothing per
// forwarded packet, throws nothing, and counts every drop under its reason.
//
// Time is coarse: the router reads its clock in tick() and flush() (once per
// batch), not per packet.
import type { Mirror } from './mirror.ts';
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import { NO_TRACE } from '../../trace/tracer.ts';
import type { Tracer } from '../../trace/tracer.ts';
import {
  formatIpv4, formatMac, isGroupMac, isMartianSourceIpv4, isMulticastIpv4, macEquals,
} from '../../net/addr.ts';
import {
  ARP_ERR_BAD_OP, ARP_ERR_TRUNCATED, ARP_LEN, ARP_OK, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpOp,
  checkArp, writeArp,
} from '../../net/arp.ts';
import { getI32, getU16, getU16le, setU16, setU32 } from '../../net/bytes.ts';
import { partialUpdate32, update16, update32 } from '../../net/checksum.ts';
import { ETH_HLEN, ETH_MIN_FRAME, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthHeader, writeMacBytes } from '../../net/ethernet.ts';
import {
  ICMP_ADMIN_PROHIBITED, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_EXC_TTL, ICMP_HLEN, ICMP_NET_UNREACH,
  ICMP_PARAM_PROBLEM, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED, icmpChecksumOk, icmpSetChecksum,
} from '../../net/icmp.ts';
import {
  checkIpv4, IP_CHECKSUM, IP_DST, IP_ERR_CHECKSUM, IP_ERR_IHL, IP_ERR_LENGTH, IP_ERR_TRUNCATED, IP_ERR_VERSION,
  IP_SRC, IP_TTL, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, ipv4DecrementTtl, ipv4IsFragment,
  writeIpv4Header,
} from '../../net/ipv4.ts';
import {
  checkTcp, TCP_ACK_FLAG, TCP_CHECKSUM, TCP_ERR_CHECKSUM, TCP_ERR_OFFSET, TCP_FIN, TCP_FLAGS, TCP_OK, TCP_RST, TCP_SYN,
} from '../../net/tcp.ts';
import { checkUdp, UDP_CHECKSUM, UDP_ERR_CHECKSUM, UDP_ERR_LENGTH, UDP_OK } from '../../net/udp.ts';
import {
  VNET_CSUM_OFFSET, VNET_CSUM_START, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_UDP, VNET_HDR_LEN,
  vnetClear, vnetGsoKnown,
} from '../../net/vnet.ts';
import { ArpCache, type ArpEntry, PendingPool } from './arp-cache.ts';
import type { RouterConfig } from './config.ts';
import {
  Conn, ConnTable, CT_NEW, CT_REPLIED, CT_STATE_NAMES, CT_TCP_CLOSED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED,
  CT_TCP_SYN_SENT, PortPool, protoName,
} from './conntrack.ts';
import { Policy, POLICY_ACCEPT, POLICY_ACCEPT_NAT, POLICY_DROP, POLICY_REJECT } from './policy.ts';
import {
  DHCP_MALFORMED, DHCP_POOL_EXHAUSTED, DHCP_SILENT, DHCP_TYPE_NAMES, DhcpServer, isDhcpToServer,
} from './dhcp-server.ts';
import { describePacket } from './drop-log.ts';
import { RuntimeBlocks } from './runtime-blocks.ts';
import { TCP_RESET_LEN, writeTcpReset } from './reject.ts';

/** What the router needs of a domain's egress: a PacketSource satisfies it. */
export interface EgressPort {
  readonly buf: Uint8Array;
  readonly slotSize: number;
  /** A slot offset in buf, or -1 when every slot is in flight. */
  alloc(): number;
  submit(offset: number, length: number): void;
  flush(): void;
}

export interface RouterOptions {
  /** Milliseconds, monotonic. Default performance.now. */
  clock?: () => number;
  /** Where drop log lines go (config log.drops-per-s); default: nowhere. */
  log?: (line: string) => void;
  /** Tracepoints router.parse / lookup / conntrack / copy / nat / forward go here (default: none). */
  tracer?: Tracer;
  /** Copies of mirrored domains' frames for the monitor (mirror.ts). */
  mirror?: Mirror;
}

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
  'ip-bad-source', 'ip-spoofed-source', 'ip-broadcast', 'ip-fragment', 'ip-unsupported-protocol',
  // L4
  'tcp-truncated', 'tcp-bad-offset', 'tcp-bad-checksum',
  'udp-truncated', 'udp-bad-length', 'udp-bad-checksum',
  'icmp-truncated', 'icmp-bad-checksum', 'icmp-unsupported-type', 'icmp-error-malformed', 'icmp-error-untracked',
  // addressed to the router
  'to-router', 'to-router-other-domain',
  // forwarding and policy
  'no-route', 'hairpin', 'no-rule', 'tcp-new-not-syn', 'icmp-new-not-echo',
  'blocklisted', 'rate-limited', 'policy-denied', 'rejected', 'nat-quota-exceeded',
  'conntrack-full', 'conntrack-collision', 'nat-ports-exhausted',
  'ttl-exceeded', 'egress-full', 'egress-too-big',
  // DHCP server
  'dhcp-malformed', 'dhcp-pool-exhausted', 'dhcp-not-ours',
] as const;

export type DropReason = typeof DROP_REASONS[number];

/** Other counters the router keeps (per domain ones are "<name>.<domain>"). */
export const COUNTERS = [
  'forwarded', 'conntrack.new', 'conntrack.expired', 'arp.request-sent', 'arp.reply-sent', 'arp.learned',
  'arp.refreshed', 'arp.queued', 'arp.released', 'icmp.echo-reply-sent', 'icmp.error-sent', 'icmp.error-translated',
  'conntrack.port-forwarded', 'conntrack.reload-removed', 'policy.reloads', 'tcp.reset-sent',
  'dhcp.discover', 'dhcp.request', 'dhcp.decline', 'dhcp.release', 'dhcp.inform', 'dhcp.offer', 'dhcp.ack', 'dhcp.nak',
  'block.added', 'block.refused', 'block.expired', 'block.conns-removed',
] as const;

const PROTO_TCP_IDX = 0;
const PROTO_UDP_IDX = 1;
const PROTO_ICMP_IDX = 2;

/** Bytes before the IP header in a packet: virtio_net_hdr + Ethernet. */
const L3 = VNET_HDR_LEN + ETH_HLEN;
const ZERO_MAC = new Uint8Array(6);
const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
// Buffer#copy accepts any Uint8Array as `this` and target: a native copy with
// no view allocated per packet (subarray + set allocates a view each time).
const copyBytes = Buffer.prototype.copy;

function l4ProtoIndex(proto: number): number {
  return proto === IPPROTO_TCP ? PROTO_TCP_IDX : proto === IPPROTO_UDP ? PROTO_UDP_IDX : PROTO_ICMP_IDX;
}

export class Router {
  /** The config in force (replaced by reconfigure()). */
  cfg: RouterConfig;
  readonly #ports: readonly EgressPort[];
  readonly #counters: Counters;
  readonly #clock: () => number;
  readonly #mirror: Mirror | undefined;
  #now: number;

  // Per domain, by index.
  readonly #n: number;
  // Addresses as int32 (see getI32): small integers, never boxed.
  readonly #addr: Int32Array;
  readonly #net: Int32Array;
  readonly #mask: Int32Array;
  readonly #bcast: Int32Array;
  /** Gateway, or -1 (255.255.255.255 is never a valid gateway). */
  readonly #gw: Int32Array;
  readonly #mac: Uint8Array[];
  readonly #arp: ArpCache[];
  readonly #dirty: Uint8Array;
  readonly #rxId: Int32Array;
  readonly #txId: Int32Array;
  /** The domain with a gateway (default route), or -1. */
  readonly #defaultDomain: number;
  /** Static routes of all domains (routes.ts): network, mask, next hop, domain. */
  readonly #rNet: Int32Array;
  readonly #rMask: Int32Array;
  readonly #rVia: Int32Array;
  readonly #rDom: Int32Array;

  #policy: Policy;
  /** Sources blocked at run time (block(): the monitor's block feedback); kept across reconfigure(). */
  readonly #rtBlocks = new RuntimeBlocks();
  readonly #ct: ConnTable;
  readonly #natPools: (PortPool | undefined)[];
  readonly #pool: PendingPool;
  #lastSweep = 0;
  /** Per domain: its DHCP server, if it runs one. */
  readonly #dhcp: (DhcpServer | undefined)[];
  /** NAT ports held by (target domain, protocol, source address), for nat.ports-per-source. */
  readonly #natHeld = new Map<number, number>();
  // The packet being handled: drops are counted per ingress domain, and logged with its headers.
  #curDom = 0;
  #curBuf: Uint8Array | undefined = undefined;
  #curOff = 0;
  #curLen = 0;
  /** Counter id of "domain.<d>.drop.<reason>" at [domain * DROP_REASONS.length + reason index]. */
  readonly #domDrop: Int32Array;
  /** Reason index (in DROP_REASONS) by the counter id of "drop.<reason>". */
  readonly #reasonIdx: Int32Array;
  readonly #log: ((line: string) => void) | undefined;
  #logBudget = 0;
  #logSuppressed = 0;

  readonly #d: Record<DropReason, number>;
  readonly #c: Record<typeof COUNTERS[number], number>;
  // Tracepoints: the packet's start is taken once in receive(); each stage then costs one clock read.
  readonly #tr: Tracer;
  readonly #pParse: number;
  readonly #pLookup: number;
  readonly #pConntrack: number;
  readonly #pCopy: number;
  readonly #pNat: number;
  readonly #pForward: number;
  #t0 = 0;

  constructor(cfg: RouterConfig, ports: readonly EgressPort[], counters: Counters, opts: RouterOptions = {}) {
    if (ports.length !== cfg.domains.length) throw new RangeError('Router: one egress port per domain');
    this.cfg = cfg;
    this.#ports = ports;
    this.#counters = counters;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#mirror = opts.mirror;
    const tr = this.#tr = opts.tracer ?? NO_TRACE;
    this.#pParse = tr.proc('router.parse');
    this.#pLookup = tr.proc('router.lookup');
    this.#pConntrack = tr.proc('router.conntrack');
    this.#pCopy = tr.proc('router.copy');
    this.#pNat = tr.proc('router.nat');
    this.#pForward = tr.proc('router.forward');
    this.#now = this.#clock();
    const n = cfg.domains.length;
    this.#n = n;
    this.#addr = new Int32Array(n);
    this.#net = new Int32Array(n);
    this.#mask = new Int32Array(n);
    this.#bcast = new Int32Array(n);
    this.#gw = new Int32Array(n);
    this.#mac = [];
    this.#arp = [];
    this.#dirty = new Uint8Array(n);
    this.#rxId = new Int32Array(n);
    this.#txId = new Int32Array(n);
    let def = -1;
    for (const d of cfg.domains) {
      const i = d.index;
      this.#addr[i] = d.address;
      this.#net[i] = d.network;
      this.#mask[i] = d.mask;
      this.#bcast[i] = d.broadcast;
      this.#gw[i] = d.gateway < 0 ? -1 : d.gateway;
      this.#mac.push(d.mac);
      this.#arp.push(new ArpCache());
      this.#rxId[i] = counters.define(`rx.${d.name}`);
      this.#txId[i] = counters.define(`tx.${d.name}`);
      if (d.gateway >= 0) def = i;
    }
    this.#defaultDomain = def;
    const routes = cfg.domains.flatMap((d) => (d.routes ?? []).map((r) => ({ ...r, dom: d.index })));
    this.#rNet = Int32Array.from(routes, (r) => r.network | 0);
    this.#rMask = Int32Array.from(routes, (r) => r.mask | 0);
    this.#rVia = Int32Array.from(routes, (r) => r.via | 0);
    this.#rDom = Int32Array.from(routes, (r) => r.dom);
    this.#policy = new Policy(cfg, this.#now);
    this.#dhcp = cfg.domains.map((d) => (d.policy.dhcp === null ? undefined : new DhcpServer(d.policy.dhcp, d.address, d.mask, d.mac)));
    this.#log = opts.log;
    this.#logBudget = opts.log === undefined ? 0 : cfg.logDropsPerS;
    this.#ct = new ConnTable(cfg.conntrack.max);
    this.#ct.onRemove = (c) => this.#releaseNat(c);
    this.#natPools = new Array(n * 3).fill(undefined);
    let slotSize = 0;
    for (const p of ports) slotSize = Math.max(slotSize, p.slotSize);
    this.#pool = new PendingPool(cfg.arp.pendingPool, slotSize);
    const d = {} as Record<DropReason, number>;
    for (const r of DROP_REASONS) d[r] = counters.dropReason(r);
    this.#d = d;
    const c = {} as Record<typeof COUNTERS[number], number>;
    for (const k of COUNTERS) c[k] = counters.define(k);
    this.#c = c;
    const nr = DROP_REASONS.length;
    this.#domDrop = new Int32Array(n * nr);
    this.#reasonIdx = new Int32Array(Math.max(...Object.values(d)) + 1);
    DROP_REASONS.forEach((r, k) => {
      this.#reasonIdx[d[r]] = k;
      for (const dc of cfg.domains) this.#domDrop[dc.index * nr + k] = counters.define(`domain.${dc.name}.drop.${r}`);
    });
  }

  /** The index of a domain by name, or -1. */
  domainIndex(name: string): number {
    return this.cfg.domains.findIndex((d) => d.name === name);
  }

  // ---- batch and timer hooks -------------------------------------------------

  /** Publish what the last batch produced (one flush per egress that got packets). */
  flush(): void {
    this.#now = this.#clock();
    this.#mirror?.flush();
    const dirty = this.#dirty;
    for (let i = 0; i < this.#n; i++) {
      if (dirty[i] !== 0) {
        dirty[i] = 0;
        this.#ports[i].flush();
      }
    }
  }

  /** Timers: ARP retries and expiry, conntrack expiry (once a second). Call every ~100 ms, then flush(). */
  tick(): void {
    const now = this.#now = this.#clock();
    const { retryMs, maxTries, timeoutMs } = this.cfg.arp;
    for (let dom = 0; dom < this.#n; dom++) {
      const cache = this.#arp[dom];
      this.#curDom = dom;
      this.#curBuf = undefined;
      for (const e of cache.entries.values()) {
        if (e.probing) {
          if (now < e.nextTry) continue;
          if (e.tries >= maxTries) {
            this.#dropQueue(e, this.#d['arp-unresolved']);
            cache.delete(e);
            continue;
          }
          e.tries++;
          e.nextTry = now + retryMs;
          this.#sendArpRequest(dom, e.ip);
        } else if (e.resolved && now >= e.expires + timeoutMs) {
          cache.delete(e); // expired and unused for a whole timeout
        }
      }
    }
    const expired = this.#rtBlocks.sweep(now);
    if (expired > 0) this.#counters.add(this.#c['block.expired'], expired);
    if (now - this.#lastSweep >= 1000) {
      this.#lastSweep = now;
      for (const s of this.#dhcp) s?.sweep(now);
      this.#refillLog();
      this.#counters.add(this.#c['conntrack.expired'], this.#ct.sweep(now));
    }
  }

  /** Forget the ARP state of a domain (its session was reset). Waiting packets are dropped as unresolved. */
  resetDomain(dom: number): void {
    const cache = this.#arp[dom];
    for (const e of cache.entries.values()) this.#dropQueue(e, this.#d['arp-unresolved']);
    cache.entries.clear();
    this.#dirty[dom] = 0;
  }

  // ---- ingress ---------------------------------------------------------------

  /** One packet (virtio_net_hdr + Ethernet frame) arrived on domain `dom`; buf[off, off+len) is read, never kept. */
  receive(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    // The sink's get_packet tracepoint ended just before: start from its clock reading.
    this.#t0 = this.#tr.last();
    this.#counters.add(this.#rxId[dom]);
    if (this.#mirror !== undefined) this.#mirror.rx(dom, buf, off, len);
    this.#curDom = dom;
    this.#curBuf = buf;
    this.#curOff = off;
    this.#curLen = len;
    if (len < L3) return this.#drop(D['eth-truncated']);
    const gso = buf[off + 1] & 0x7f;
    if (gso !== 0 && !vnetGsoKnown(gso)) return this.#drop(D['vnet-bad-gso']);
    const e = off + VNET_HDR_LEN;
    if (isGroupMac(buf, e + 6)) return this.#drop(D['eth-bad-source']);
    const dstGroup = isGroupMac(buf, e);
    if (!dstGroup && !macEquals(buf, e, this.#mac[dom])) return this.#drop(D['eth-not-for-us']);
    const type = getU16(buf, e + 12);
    if (type === ETHERTYPE_ARP) {
      if (gso !== 0) return this.#drop(D['vnet-bad-gso']);
      return this.#arpIn(dom, buf, off, len);
    }
    if (type !== ETHERTYPE_IPV4) return this.#drop(D['eth-unsupported-type']);
    if (this.#dhcp[dom] !== undefined && isDhcpToServer(buf, off + L3, len - L3)) return this.#dhcpIn(dom, buf, off, len);
    if (dstGroup) return this.#drop(D['ip-broadcast']);
    this.#ipIn(dom, buf, off, len);
  }

  #drop(id: number): void {
    this.#counters.add(id);
    this.#counters.add(this.#domDrop[this.#curDom * DROP_REASONS.length + this.#reasonIdx[id]]);
    if (this.#logBudget > 0) this.#logDrop(id);
    else if (this.#log !== undefined) this.#logSuppressed++;
  }

  #logDrop(id: number): void {
    this.#logBudget--;
    const reason = DROP_REASONS[this.#reasonIdx[id]];
    const pkt = describePacket(this.#curBuf, this.#curOff, this.#curLen);
    this.#log!(`drop ${reason} domain ${this.cfg.domains[this.#curDom].name}${pkt === '' ? '' : ` ${pkt}`}`);
  }

  /** Once a second: the drop log's budget, and a line about what it left out. */
  #refillLog(): void {
    if (this.#log === undefined) return;
    if (this.#logSuppressed > 0 && this.cfg.logDropsPerS > 0) this.#log(`drop log: ${this.#logSuppressed} more drops not logged (log.drops-per-s ${this.cfg.logDropsPerS})`);
    this.#logSuppressed = 0;
    this.#logBudget = this.cfg.logDropsPerS;
  }

  // ---- ARP -------------------------------------------------------------------

  #arpIn(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const a = off + L3;
    const r = checkArp(buf, a, len - L3);
    if (r !== ARP_OK) {
      return this.#drop(r === ARP_ERR_TRUNCATED ? D['arp-truncated'] : r === ARP_ERR_BAD_OP ? D['arp-bad-op'] : D['arp-unsupported']);
    }
    const sha = a + ARP_SHA;
    if (isGroupMac(buf, sha) || macEquals(buf, sha, ZERO_MAC)) return this.#drop(D['arp-bad-sender']);
    const op = arpOp(buf, a);
    const spa = getI32(buf, a + ARP_SPA);
    const tpa = getI32(buf, a + ARP_TPA);
    const own = this.#addr[dom];
    if (spa === own) return this.#drop(D['arp-address-conflict']);
    const learnable = spa !== this.#net[dom] && spa !== this.#bcast[dom] && (spa & this.#mask[dom]) === this.#net[dom];
    const cache = this.#arp[dom];
    if (op === ARP_OP_REQUEST) {
      if (tpa !== own) {
        // Not for us; refresh what we already know, learn nothing new.
        const known = learnable ? cache.get(spa) : undefined;
        if (known !== undefined) this.#learn(dom, known, buf, sha);
        return this.#drop(D['arp-not-for-us']);
      }
      if (spa !== 0) { // spa 0 is an RFC 5227 probe: answer, learn nothing
        if (!learnable) return this.#drop(D['arp-bad-sender']);
        let entry = cache.get(spa);
        if (entry === undefined) entry = cache.add(spa);
        if (entry !== undefined) this.#learn(dom, entry, buf, sha);
        else this.#drop(D['arp-cache-full']);
      }
      this.#sendArpReply(dom, buf, sha, spa);
      return;
    }
    // Reply: learn when it answers us or updates an entry we have.
    if (!learnable) return this.#drop(D['arp-bad-sender']);
    let entry = cache.get(spa);
    if (entry === undefined) {
      if (tpa !== own) return this.#drop(D['arp-not-for-us']);
      entry = cache.add(spa);
      if (entry === undefined) return this.#drop(D['arp-cache-full']);
    }
    this.#learn(dom, entry, buf, sha);
  }

  /** Store the MAC at buf[sha], mark resolved, release waiting packets. */
  #learn(dom: number, e: ArpEntry, buf: Uint8Array, sha: number): void {
    for (let i = 0; i < 6; i++) e.mac[i] = buf[sha + i];
    const was = e.resolved;
    e.resolved = true;
    e.probing = false;
    e.tries = 0;
    e.expires = this.#now + this.cfg.arp.timeoutMs;
    this.#counters.add(this.#c[was ? 'arp.refreshed' : 'arp.learned']);
    if (e.queue.length > 0) this.#releaseQueue(dom, e);
  }

  #releaseQueue(dom: number, e: ArpEntry): void {
    const port = this.#ports[dom];
    const pool = this.#pool;
    for (let i = 0; i < e.queue.length; i++) {
      const id = e.queue[i];
      const len = e.queueLen[i];
      const slot = port.alloc();
      if (slot < 0) this.#drop(this.#d['egress-full']);
      else {
        const pb = pool.buf(id);
        copyBytes.call(pb, port.buf, slot, 0, len);
        writeEthHeader(port.buf, slot + VNET_HDR_LEN, e.mac, this.#mac[dom], ETHERTYPE_IPV4);
        this.#submit(dom, slot, len);
        this.#counters.add(this.#c['arp.released']);
        this.#counters.add(this.#c.forwarded);
      }
      pool.free(id);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  #dropQueue(e: ArpEntry, reason: number): void {
    for (let i = 0; i < e.queue.length; i++) {
      this.#pool.free(e.queue[i]);
      this.#drop(reason);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  /** A router-built frame: slot with a zero vnet header, or -1 (counted). Frame length excludes the vnet header. */
  #allocOwn(dom: number, frameLen: number): number {
    const port = this.#ports[dom];
    if (VNET_HDR_LEN + frameLen > port.slotSize) {
      this.#drop(this.#d['egress-too-big']);
      return -1;
    }
    const slot = port.alloc();
    if (slot < 0) {
      this.#drop(this.#d['egress-full']);
      return -1;
    }
    vnetClear(port.buf, slot);
    return slot;
  }

  #submit(dom: number, slot: number, len: number): void {
    if (this.#mirror !== undefined) this.#mirror.tx(dom, this.#ports[dom].buf, slot, len);
    this.#ports[dom].submit(slot, len);
    this.#dirty[dom] = 1;
    this.#counters.add(this.#txId[dom]);
  }

  /** Pad an Ethernet frame to the minimum size; returns the padded length. */
  #pad(buf: Uint8Array, eth: number, frameLen: number): number {
    if (frameLen >= ETH_MIN_FRAME) return frameLen;
    buf.fill(0, eth + frameLen, eth + ETH_MIN_FRAME);
    return ETH_MIN_FRAME;
  }

  #sendArpReply(dom: number, req: Uint8Array, sha: number, spa: number): void {
    const slot = this.#allocOwn(dom, ETH_MIN_FRAME);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    // Destination MAC = the requester's hardware address.
    for (let i = 0; i < 6; i++) b[e + i] = req[sha + i];
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REPLY, this.#mac[dom], this.#addr[dom], b.subarray(e, e + 6), spa);
    const len = this.#pad(b, e, ETH_HLEN + ARP_LEN);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['arp.reply-sent']);
  }

  #sendArpRequest(dom: number, ip: number): void {
    const slot = this.#allocOwn(dom, ETH_MIN_FRAME);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    writeEthHeader(b, e, BROADCAST_MAC, this.#mac[dom], ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REQUEST, this.#mac[dom], this.#addr[dom], ZERO_MAC, ip);
    const len = this.#pad(b, e, ETH_HLEN + ARP_LEN);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['arp.request-sent']);
  }

  /**
   * The ARP entry to send to `hop` in `dom`: resolved (use its MAC) or
   * resolving (queue the packet). Starts resolution, or a refresh of an
   * expired entry, as needed. Undefined when the cache is full.
   */
  #nextHop(dom: number, hop: number): ArpEntry | undefined {
    const cache = this.#arp[dom];
    let e = cache.get(hop);
    if (e === undefined) {
      e = cache.add(hop);
      if (e === undefined) return undefined;
    }
    if (!e.probing && (!e.resolved || this.#now >= e.expires)) {
      e.probing = true;
      e.tries = 1;
      e.nextTry = this.#now + this.cfg.arp.retryMs;
      this.#sendArpRequest(dom, hop);
    }
    return e;
  }

  // ---- IPv4 ------------------------------------------------------------------

  #ipIn(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const ip = off + L3;
    const ihl = checkIpv4(buf, ip, len - L3);
    if (ihl < 0) {
      return this.#drop(ihl === IP_ERR_TRUNCATED ? D['ip-truncated'] : ihl === IP_ERR_VERSION ? D['ip-bad-version']
        : ihl === IP_ERR_IHL ? D['ip-bad-ihl'] : ihl === IP_ERR_LENGTH ? D['ip-bad-length']
        : ihl === IP_ERR_CHECKSUM ? D['ip-bad-checksum'] : D['ip-truncated']);
    }
    const src = getI32(buf, ip + IP_SRC);
    const dst = getI32(buf, ip + IP_DST);
    if (isMartianSourceIpv4(src) || src === this.#bcast[dom] || src === this.#addr[dom]) return this.#drop(D['ip-bad-source']);
    // A domain without the default route only speaks for its own prefix.
    if (this.#gw[dom] === -1 && (src & this.#mask[dom]) !== this.#net[dom] && this.#routeIn(dom, src) < 0) return this.#drop(D['ip-spoofed-source']);
    if (dst === -1 || isMulticastIpv4(dst) || dst === this.#bcast[dom]) return this.#drop(D['ip-broadcast']);
    if (ipv4IsFragment(buf, ip)) return this.#drop(D['ip-fragment']);
    if (this.#policy.blocked(dom, src, this.#now)) return this.#drop(D.blocklisted);
    if (this.#rtBlocks.has(src, this.#now)) {
      this.#rtBlocks.hit(src);
      return this.#drop(D.blocklisted);
    }

    const proto = buf[ip + 9];
    const l4 = ip + ihl;
    const l4Len = getU16(buf, ip + 2) - ihl;
    // Offload metadata must agree with the headers it describes.
    const vflags = buf[off];
    const gso = buf[off + 1] & 0x7f;
    const needsCsum = (vflags & VNET_F_NEEDS_CSUM) !== 0;
    if (gso !== 0 && (!needsCsum || (gso === VNET_GSO_TCPV4 ? proto !== IPPROTO_TCP : gso === VNET_GSO_UDP ? proto !== IPPROTO_UDP : true))) {
      return this.#drop(D['vnet-bad-gso']);
    }
    if (needsCsum) {
      const field = proto === IPPROTO_TCP ? TCP_CHECKSUM : proto === IPPROTO_UDP ? UDP_CHECKSUM : proto === IPPROTO_ICMP ? 2 : -1;
      if (getU16le(buf, off + VNET_CSUM_START) !== ETH_HLEN + ihl || getU16le(buf, off + VNET_CSUM_OFFSET) !== field ||
        field + 2 > l4Len) return this.#drop(D['vnet-bad-csum']);
    }
    const verify = this.cfg.verifyChecksums && (vflags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;

    let sport: number;
    let dport: number;
    let tcpFlags = 0;
    let icmpType = -1;
    if (proto === IPPROTO_TCP) {
      const r = checkTcp(buf, ip, l4, l4Len, verify);
      if (r !== TCP_OK) {
        return this.#drop(r === TCP_ERR_CHECKSUM ? D['tcp-bad-checksum'] : r === TCP_ERR_OFFSET ? D['tcp-bad-offset'] : D['tcp-truncated']);
      }
      sport = getU16(buf, l4);
      dport = getU16(buf, l4 + 2);
      tcpFlags = buf[l4 + TCP_FLAGS];
    } else if (proto === IPPROTO_UDP) {
      const r = checkUdp(buf, ip, l4, l4Len, verify);
      if (r !== UDP_OK) {
        return this.#drop(r === UDP_ERR_CHECKSUM ? D['udp-bad-checksum'] : r === UDP_ERR_LENGTH ? D['udp-bad-length'] : D['udp-truncated']);
      }
      sport = getU16(buf, l4);
      dport = getU16(buf, l4 + 2);
    } else if (proto === IPPROTO_ICMP) {
      if (l4Len < ICMP_HLEN) return this.#drop(D['icmp-truncated']);
      if (verify && !icmpChecksumOk(buf, l4, l4Len)) return this.#drop(D['icmp-bad-checksum']);
      icmpType = buf[l4];
      if (icmpType === ICMP_DEST_UNREACH || icmpType === ICMP_TIME_EXCEEDED || icmpType === ICMP_PARAM_PROBLEM) {
        return this.#icmpErrorIn(dom, buf, off, len, ip, ihl, l4, l4Len, needsCsum);
      }
      if (icmpType !== ICMP_ECHO_REQUEST && icmpType !== ICMP_ECHO_REPLY) return this.#drop(D['icmp-unsupported-type']);
      sport = dport = getU16(buf, l4 + 4);
    } else {
      return this.#drop(dst === this.#addr[dom] ? D['to-router'] : D['ip-unsupported-protocol']);
    }

    // A tracked connection: either direction passes.
    const ct = this.#ct;
    const tl = this.#tr.span(this.#pParse, this.#t0);
    let ref = ct.lookup(proto, dom, src, sport, dst, dport);
    this.#tr.span(this.#pLookup, tl);
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
    if (ref >= 0) {
      return this.#forward(dom, buf, off, len, ip, ihl, proto, ct.conn(ref >>> 1), ref & 1, tcpFlags, needsCsum);
    }

    // New traffic.
    if (dst === this.#addr[dom]) {
      if (icmpType === ICMP_ECHO_REQUEST && buf[l4 + 1] === 0) return this.#echoReply(dom, buf, off, ip, ihl, l4, l4Len, needsCsum);
      const f = this.#policy.forward(dom, proto, dport);
      if (f < 0) return this.#drop(D['to-router']);
      return this.#openForwarded(dom, buf, off, len, ip, ihl, proto, src, sport, dst, dport, tcpFlags, needsCsum, f);
    }
    for (let i = 0; i < this.#n; i++) {
      if (dst !== this.#addr[i]) continue;
      // The router's address in another domain answers pings only from a domain
      // that may open connections into that one (as the Linux reference does).
      if (icmpType === ICMP_ECHO_REQUEST && buf[l4 + 1] === 0 && this.#permits(this.#policy.decide(dom, i, proto, dst, dport))) {
        return this.#echoReply(dom, buf, off, ip, ihl, l4, l4Len, needsCsum, i);
      }
      return this.#drop(D['to-router-other-domain']);
    }
    const out = this.#route(dst);
    if (out < 0) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_DEST_UNREACH, ICMP_NET_UNREACH);
      return this.#drop(D['no-route']);
    }
    if (out === dom) return this.#drop(D.hairpin);
    if (!this.#policy.admit(dom, src, this.#now)) return this.#drop(D['rate-limited']);
    const verdict = this.#policy.decide(dom, out, proto, dst, dport);
    if (verdict === POLICY_DROP) return this.#drop(this.#policy.lastRule < 0 ? D['no-rule'] : D['policy-denied']);
    if (verdict === POLICY_REJECT) return this.#reject(dom, buf, off, ip, ihl, l4, l4Len, proto, tcpFlags, icmpType);
    if (proto === IPPROTO_TCP && (tcpFlags & (TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN)) !== TCP_SYN) {
      return this.#drop(D['tcp-new-not-syn']);
    }
    if (proto === IPPROTO_ICMP && icmpType !== ICMP_ECHO_REQUEST) return this.#drop(D['icmp-new-not-echo']);
    if (buf[ip + IP_TTL] <= 1) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drop(D['ttl-exceeded']);
    }
    const tc = this.#tr.next();
    const c = this.#newConn(proto, dom, src, sport, dst, dport, out, verdict === POLICY_ACCEPT_NAT);
    this.#tr.span(this.#pConntrack, tc);
    if (c === undefined) return;
    this.#forward(dom, buf, off, len, ip, ihl, proto, c, 0, tcpFlags, needsCsum);
  }

  /** The egress domain for dst: the domain whose prefix holds it, else the default route, else -1. */
  #route(dst: number): number {
    for (let i = 0; i < this.#n; i++) {
      if ((dst & this.#mask[i]) === this.#net[i]) return i;
    }
    for (let r = 0; r < this.#rNet.length; r++) {
      if ((dst & this.#rMask[r]) === this.#rNet[r]) return this.#rDom[r];
    }
    return this.#defaultDomain;
  }

  /** The static route of domain `dom` holding `addr`, or -1. */
  #routeIn(dom: number, addr: number): number {
    for (let r = 0; r < this.#rNet.length; r++) {
      if (this.#rDom[r] === dom && (addr & this.#rMask[r]) === this.#rNet[r]) return r;
    }
    return -1;
  }

  /** The next hop in domain `dom` for an address: itself on-link, else the gateway, else -1. */
  #hopFor(dom: number, addr: number): number {
    if ((addr & this.#mask[dom]) === this.#net[dom]) return addr;
    const r = this.#routeIn(dom, addr);
    if (r >= 0) return this.#rVia[r];
    return this.#gw[dom];
  }

  // ---- connections -------------------------------------------------------------

  /**
   * A new connection (the caller checked policy, TCP SYN, TTL). With a port
   * forward, dnatHost:dnatPort is where it really goes (else dst:dport).
   */
  #newConn(proto: number, inDom: number, src: number, sport: number, dst: number, dport: number, outDom: number, nat: boolean,
    dnatHost: number = dst, dnatPort: number = dport): Conn | undefined {
    const ct = this.#ct;
    const D = this.#d;
    const icmp = proto === IPPROTO_ICMP;
    let rDst = src;
    let rDport = sport;
    let pool: PortPool | undefined;
    if (nat) {
      const quota = this.#policy.natPortsPerSource[outDom];
      if (quota > 0 && (this.#natHeld.get(this.#heldKey(outDom, proto, src)) ?? 0) >= quota) {
        this.#drop(D['nat-quota-exceeded']);
        return undefined;
      }
      rDst = this.#addr[outDom];
      pool = this.#natPool(outDom, proto);
      rDport = pool.allocFor(ct, proto, outDom, dnatHost, icmp ? -1 : dnatPort, rDst);
      if (rDport < 0) {
        this.#drop(D['nat-ports-exhausted']);
        return undefined;
      }
    } else if (ct.lookup(proto, outDom, dnatHost, dnatPort, rDst, rDport) >= 0) {
      this.#drop(D['conntrack-collision']);
      return undefined;
    }
    let c = ct.acquire();
    if (c === undefined) {
      this.#counters.add(this.#c['conntrack.expired'], ct.sweep(this.#now));
      c = ct.acquire();
    }
    if (c === undefined) {
      if (pool !== undefined) pool.free(rDport);
      this.#drop(D['conntrack-full']);
      return undefined;
    }
    c.proto = proto;
    c.state = proto === IPPROTO_TCP ? CT_TCP_SYN_SENT : CT_NEW;
    c.inDom = inDom;
    c.oSrc = src;
    c.oSport = sport;
    c.oDst = dst;
    c.oDport = dport;
    c.outDom = outDom;
    c.rSrc = dnatHost;
    c.rSport = icmp ? rDport : dnatPort;
    c.rDst = rDst;
    c.rDport = rDport;
    c.nat = nat;
    c.created = this.#now;
    c.expires = this.#now + this.#timeout(c);
    ct.link(c);
    if (nat) {
      const k = this.#heldKey(outDom, proto, src);
      this.#natHeld.set(k, (this.#natHeld.get(k) ?? 0) + 1);
    }
    this.#counters.add(this.#c['conntrack.new']);
    return c;
  }

  /** Key of #natHeld: source address, target domain and protocol in one exact number. */
  #heldKey(dom: number, proto: number, src: number): number {
    return (src >>> 0) * 1024 + dom * 3 + l4ProtoIndex(proto);
  }

  #permits(verdict: number): boolean {
    return verdict === POLICY_ACCEPT || verdict === POLICY_ACCEPT_NAT;
  }

  /** A new connection to the router's own address and a forwarded port: to forward f's host and port. */
  #openForwarded(dom: number, buf: Uint8Array, off: number, len: number, ip: number, ihl: number, proto: number,
    src: number, sport: number, dst: number, dport: number, tcpFlags: number, needsCsum: boolean, f: number): void {
    const D = this.#d;
    const p = this.#policy;
    if (!p.admit(dom, src, this.#now)) return this.#drop(D['rate-limited']);
    if (proto === IPPROTO_TCP && (tcpFlags & (TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN)) !== TCP_SYN) {
      return this.#drop(D['tcp-new-not-syn']);
    }
    if (buf[ip + IP_TTL] <= 1) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drop(D['ttl-exceeded']);
    }
    const out = p.fwdTo[f];
    const c = this.#newConn(proto, dom, src, sport, dst, dport, out, p.nat(dom, out), p.fwdHost[f], p.fwdPort[f]);
    if (c === undefined) return;
    this.#counters.add(this.#c['conntrack.port-forwarded']);
    this.#forward(dom, buf, off, len, ip, ihl, proto, c, 0, tcpFlags, needsCsum);
  }

  /**
   * A reject verdict: TCP gets a reset from the address it tried, UDP an
   * ICMP port unreachable, an ICMP echo an ICMP administratively prohibited
   * (from the router's address in the ingress domain). A new TCP segment
   * that is no bare SYN is dropped instead, as nftables drops it.
   */
  #reject(dom: number, buf: Uint8Array, off: number, ip: number, ihl: number, l4: number, l4Len: number,
    proto: number, tcpFlags: number, icmpType: number): void {
    const D = this.#d;
    if (proto === IPPROTO_TCP) {
      if ((tcpFlags & (TCP_SYN | TCP_ACK_FLAG | TCP_RST | TCP_FIN)) !== TCP_SYN) return this.#drop(D['tcp-new-not-syn']);
      const slot = this.#allocOwn(dom, ETH_HLEN + TCP_RESET_LEN);
      if (slot >= 0) {
        const b = this.#ports[dom].buf;
        const e = slot + VNET_HDR_LEN;
        const eIn = off + VNET_HDR_LEN;
        copyBytes.call(buf, b, e, eIn + 6, eIn + 12);
        writeMacBytes(b, e + 6, this.#mac[dom]);
        setU16(b, e + 12, ETHERTYPE_IPV4);
        writeTcpReset(buf, ip, l4, l4Len, b, e + ETH_HLEN);
        const flen = this.#pad(b, e, ETH_HLEN + TCP_RESET_LEN);
        this.#submit(dom, slot, VNET_HDR_LEN + flen);
        this.#counters.add(this.#c['tcp.reset-sent']);
      }
    } else if (proto === IPPROTO_UDP) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH);
    } else if (icmpType === ICMP_ECHO_REQUEST) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_DEST_UNREACH, ICMP_ADMIN_PROHIBITED);
    } else {
      return this.#drop(D['icmp-new-not-echo']);
    }
    this.#drop(D.rejected);
  }

  #natPool(dom: number, proto: number): PortPool {
    const k = dom * 3 + l4ProtoIndex(proto);
    let p = this.#natPools[k];
    if (p === undefined) {
      p = new PortPool(this.cfg.natPorts.first, this.cfg.natPorts.last);
      this.#natPools[k] = p;
    }
    return p;
  }

  #releaseNat(c: Conn): void {
    if (!c.nat) return;
    this.#natPool(c.outDom, c.proto).free(c.rDport);
    const k = this.#heldKey(c.outDom, c.proto, c.oSrc);
    const held = (this.#natHeld.get(k) ?? 0) - 1;
    if (held > 0) this.#natHeld.set(k, held);
    else this.#natHeld.delete(k);
  }

  #timeout(c: Conn): number {
    const t = this.cfg.conntrack;
    switch (c.state) {
      case CT_TCP_SYN_SENT:
      case CT_TCP_CLOSING:
        return t.tcpTransitoryMs;
      case CT_TCP_ESTABLISHED:
        return t.tcpEstablishedMs;
      case CT_TCP_CLOSED:
        return t.tcpClosedMs;
      default:
        return c.proto === IPPROTO_UDP ? t.udpMs : t.icmpMs;
    }
  }

  /** Advance the connection's state for a packet in direction dir. */
  #track(c: Conn, dir: number, flags: number): void {
    if (dir === 0) c.pktsOrig++;
    else c.pktsReply++;
    if (c.proto === IPPROTO_TCP) {
      if ((flags & TCP_RST) !== 0) c.state = CT_TCP_CLOSED;
      else {
        if ((flags & TCP_SYN) !== 0) {
          if (dir === 0 && c.state === CT_TCP_CLOSED) { // port reuse after close
            c.state = CT_TCP_SYN_SENT;
            c.finOrig = false;
            c.finReply = false;
          } else if (dir === 1 && (flags & TCP_ACK_FLAG) !== 0 && c.state === CT_TCP_SYN_SENT) {
            c.state = CT_TCP_ESTABLISHED;
          }
        }
        if ((flags & TCP_FIN) !== 0) {
          if (dir === 0) c.finOrig = true;
          else c.finReply = true;
          if (c.finOrig && c.finReply) c.state = CT_TCP_CLOSED;
          else if (c.state !== CT_TCP_CLOSED) c.state = CT_TCP_CLOSING;
        }
      }
    } else if (dir === 1) c.state = CT_REPLIED;
    c.expires = this.#now + this.#timeout(c);
  }

  /**
   * Forward a packet of connection c in direction dir: TTL check, next hop,
   * one copy into the egress slot (or the pending pool), header rewrite there.
   */
  #forward(dom: number, buf: Uint8Array, off: number, len: number, ip: number, ihl: number, proto: number,
    c: Conn, dir: number, tcpFlags: number, needsCsum: boolean): void {
    const D = this.#d;
    const tr = this.#tr;
    const tf = tr.last(); // the lookup or conntrack tracepoint just ended
    if (buf[ip + IP_TTL] <= 1) {
      this.#icmpError(dom, buf, off, ip, ihl, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL);
      return this.#drop(D['ttl-exceeded']);
    }
    const out = dir === 0 ? c.outDom : c.inDom;
    // The packet leaves as the other direction's key, reversed.
    const nSrc = dir === 0 ? c.rDst : c.oDst;
    const nSport = dir === 0 ? c.rDport : c.oDport;
    const nDst = dir === 0 ? c.rSrc : c.oSrc;
    const nDport = dir === 0 ? c.rSport : c.oSport;
    const hop = this.#hopFor(out, nDst);
    if (hop === -1) return this.#drop(D['no-route']);
    const port = this.#ports[out];
    if (len > port.slotSize) return this.#drop(D['egress-too-big']);
    const e = this.#nextHop(out, hop);
    if (e === undefined) return this.#drop(D['arp-cache-full']);
    const tc = tr.next(); // mid-chain: timed (sampling) with the packet's other stages
    this.#track(c, dir, tcpFlags);
    tr.span(this.#pConntrack, tc);
    if (e.resolved) {
      // Chained stages (see src/trace/README.md): each starts at the previous
      // one's reading, so a stage costs one clock read. alloc_packet starts
      // where conntrack ended, copy where alloc_packet ended, and so on.
      tr.chain();
      const slot = port.alloc();
      if (slot < 0) return this.#drop(D['egress-full']);
      const b = port.buf;
      const tp = tr.last();
      copyBytes.call(buf, b, slot, off, off + len);
      const tn = tr.spanArg(this.#pCopy, tp, len);
      this.#rewrite(b, slot + L3, ihl, proto, nSrc, nSport, nDst, nDport, needsCsum);
      writeEthHeader(b, slot + VNET_HDR_LEN, e.mac, this.#mac[out], ETHERTYPE_IPV4);
      tr.span(this.#pNat, tn);
      tr.chain();
      this.#submit(out, slot, len);
      this.#counters.add(this.#c.forwarded);
      // router.forward ends with submit_packet, and router.packet (index.ts) with it.
      tr.chain();
      tr.spanArg(this.#pForward, tf, len);
      tr.chain();
      return;
    }
    // Resolving: keep a rewritten copy in the pool until the reply comes.
    if (e.queue.length >= this.cfg.arp.maxPending) return this.#drop(D['arp-pending-full']);
    const id = this.#pool.alloc();
    if (id < 0) return this.#drop(D['arp-pool-exhausted']);
    const pb = this.#pool.buf(id);
    copyBytes.call(buf, pb, 0, off, off + len);
    this.#rewrite(pb, L3, ihl, proto, nSrc, nSport, nDst, nDport, needsCsum);
    e.queue.push(id);
    e.queueLen.push(len);
    this.#counters.add(this.#c['arp.queued']);
  }

  /**
   * Rewrite the IPv4 packet at ip in place: TTL - 1, then addresses and ports
   * to the given values, with incremental checksum updates. With needsCsum the
   * L4 field holds the partial pseudo-header sum: only address changes apply
   * to it (the L4 header is summed when the checksum is completed).
   */
  #rewrite(b: Uint8Array, ip: number, ihl: number, proto: number,
    nSrc: number, nSport: number, nDst: number, nDport: number, needsCsum: boolean): void {
    ipv4DecrementTtl(b, ip);
    const l4 = ip + ihl;
    const oSrc = getI32(b, ip + IP_SRC);
    const oDst = getI32(b, ip + IP_DST);
    const icmp = proto === IPPROTO_ICMP;
    const cOff = proto === IPPROTO_TCP ? l4 + TCP_CHECKSUM : proto === IPPROTO_UDP ? l4 + UDP_CHECKSUM : l4 + 2;
    let ipc = getU16(b, ip + IP_CHECKSUM);
    let l4c = getU16(b, cOff);
    // UDP without checksum (0) stays without; a partial field is never "none".
    const l4None = proto === IPPROTO_UDP && l4c === 0 && !needsCsum;
    let l4Changed = false;
    if (oSrc !== nSrc) {
      setU32(b, ip + IP_SRC, nSrc);
      ipc = update32(ipc, oSrc, nSrc);
      if (!icmp && !l4None) {
        l4c = needsCsum ? partialUpdate32(l4c, oSrc, nSrc) : update32(l4c, oSrc, nSrc);
        l4Changed = true;
      }
    }
    if (oDst !== nDst) {
      setU32(b, ip + IP_DST, nDst);
      ipc = update32(ipc, oDst, nDst);
      if (!icmp && !l4None) {
        l4c = needsCsum ? partialUpdate32(l4c, oDst, nDst) : update32(l4c, oDst, nDst);
        l4Changed = true;
      }
    }
    setU16(b, ip + IP_CHECKSUM, ipc);
    if (icmp) {
      const id = getU16(b, l4 + 4);
      if (id !== nSport) {
        setU16(b, l4 + 4, nSport);
        if (!needsCsum) {
          l4c = update16(l4c, id, nSport);
          l4Changed = true;
        }
      }
    } else {
      const sp = getU16(b, l4);
      if (sp !== nSport) {
        setU16(b, l4, nSport);
        if (!needsCsum && !l4None) {
          l4c = update16(l4c, sp, nSport);
          l4Changed = true;
        }
      }
      const dp = getU16(b, l4 + 2);
      if (dp !== nDport) {
        setU16(b, l4 + 2, nDport);
        if (!needsCsum && !l4None) {
          l4c = update16(l4c, dp, nDport);
          l4Changed = true;
        }
      }
    }
    if (l4Changed) {
      if (proto === IPPROTO_UDP && !needsCsum && l4c === 0) l4c = 0xffff;
      setU16(b, cOff, l4c);
    }
  }

  // ---- ICMP --------------------------------------------------------------------

  /** Answer an echo request (arrived on `dom`) to the router's address in `addrDom` (options are not echoed). */
  #echoReply(dom: number, buf: Uint8Array, off: number, ip: number, ihl: number, l4: number, l4Len: number, needsCsum: boolean, addrDom = dom): void {
    const slot = this.#allocOwn(dom, ETH_HLEN + IPV4_HLEN + l4Len);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    const eIn = off + VNET_HDR_LEN;
    copyBytes.call(buf, b, e, eIn + 6, eIn + 12); // destination = the request's source MAC
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + l4Len, IPPROTO_ICMP, this.#addr[addrDom], getI32(buf, ip + IP_SRC),
      64, getU16(buf, ip + 4), 0, buf[ip + 1]);
    copyBytes.call(buf, b, ricmp, l4, l4 + l4Len);
    b[ricmp] = ICMP_ECHO_REPLY;
    if (needsCsum) icmpSetChecksum(b, ricmp, l4Len);
    else setU16(b, ricmp + 2, update16(getU16(b, ricmp + 2), ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8));
    const len = this.#pad(b, e, ETH_HLEN + IPV4_HLEN + l4Len);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['icmp.echo-reply-sent']);
  }

  /**
   * Send an ICMP error about the packet at ip (arrived on dom) back to its
   * source, from the router's address in dom, quoting the IP header + 8 bytes.
   * Callers never pass ICMP errors, broadcasts or later fragments.
   */
  #icmpError(dom: number, buf: Uint8Array, off: number, ip: number, ihl: number, type: number, code: number): void {
    const total = getU16(buf, ip + 2);
    const quote = Math.min(total, ihl + 8);
    const icmpLen = ICMP_HLEN + quote;
    const slot = this.#allocOwn(dom, ETH_HLEN + IPV4_HLEN + icmpLen);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    const e = slot + VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    const eIn = off + VNET_HDR_LEN;
    copyBytes.call(buf, b, e, eIn + 6, eIn + 12);
    writeMacBytes(b, e + 6, this.#mac[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + icmpLen, IPPROTO_ICMP, this.#addr[dom], getI32(buf, ip + IP_SRC));
    b[ricmp] = type;
    b[ricmp + 1] = code;
    setU32(b, ricmp + 4, 0);
    copyBytes.call(buf, b, ricmp + ICMP_HLEN, ip, ip + quote);
    icmpSetChecksum(b, ricmp, icmpLen);
    const len = this.#pad(b, e, ETH_HLEN + IPV4_HLEN + icmpLen);
    this.#submit(dom, slot, VNET_HDR_LEN + len);
    this.#counters.add(this.#c['icmp.error-sent']);
  }

  /**
   * An ICMP error arrived: forward it only when the packet it quotes belongs
   * to a tracked connection, translated like that connection (outer and
   * quoted headers, with every checksum the change touches).
   */
  #icmpErrorIn(dom: number, buf: Uint8Array, off: number, len: number, ip: number, ihl: number, l4: number, l4Len: number, needsCsum: boolean): void {
    const D = this.#d;
    const inner = l4 + ICMP_HLEN;
    const avail = l4Len - ICMP_HLEN;
    if (avail < IPV4_HLEN || buf[inner] >>> 4 !== 4) return this.#drop(D['icmp-error-malformed']);
    const iihl = (buf[inner] & 0x0f) << 2;
    if (iihl < IPV4_HLEN || avail < iihl + 8) return this.#drop(D['icmp-error-malformed']);
    const iproto = buf[inner + 9];
    const isrc = getI32(buf, inner + IP_SRC);
    const idst = getI32(buf, inner + IP_DST);
    const il4 = inner + iihl;
    let isport: number;
    let idport: number;
    if (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP) {
      isport = getU16(buf, il4);
      idport = getU16(buf, il4 + 2);
    } else if (iproto === IPPROTO_ICMP && (buf[il4] === ICMP_ECHO_REQUEST || buf[il4] === ICMP_ECHO_REPLY)) {
      isport = idport = getU16(buf, il4 + 4);
    } else return this.#drop(D['icmp-error-untracked']);
    // The quoted packet went out on this domain; its answer would be the reversed key.
    const ref = this.#ct.lookup(iproto, dom, idst, idport, isrc, isport);
    if (ref < 0) return this.#drop(D['icmp-error-untracked']);
    const c = this.#ct.conn(ref >>> 1);
    if (c.expires <= this.#now) return this.#drop(D['icmp-error-untracked']);
    if (buf[ip + IP_TTL] <= 1) return this.#drop(D['ttl-exceeded']); // no error about an error
    const dir = ref & 1;
    const out = dir === 0 ? c.outDom : c.inDom;
    const oSrc = getI32(buf, ip + IP_SRC);
    const oDst = getI32(buf, ip + IP_DST);
    // Outer: toward the original source (reply direction) the destination
    // becomes the original source; toward the remote (original direction) a
    // masqueraded connection's errors come from the NAT address.
    const nDst = dir === 1 ? c.oSrc : oDst;
    // Toward the client of a port forward, errors come from the address it connected to.
    const nSrc = dir === 0 && c.nat ? c.rDst : dir === 1 && c.rSrc !== c.oDst ? c.oDst : oSrc;
    const hop = this.#hopFor(out, nDst);
    if (hop === -1) return this.#drop(D['no-route']);
    const port = this.#ports[out];
    if (len > port.slotSize) return this.#drop(D['egress-too-big']);
    const e = this.#nextHop(out, hop);
    if (e === undefined) return this.#drop(D['arp-cache-full']);
    let b: Uint8Array;
    let base: number;
    let slot = -1;
    let id = -1;
    if (e.resolved) {
      slot = port.alloc();
      if (slot < 0) return this.#drop(D['egress-full']);
      b = port.buf;
      base = slot;
    } else {
      if (e.queue.length >= this.cfg.arp.maxPending) return this.#drop(D['arp-pending-full']);
      id = this.#pool.alloc();
      if (id < 0) return this.#drop(D['arp-pool-exhausted']);
      b = this.#pool.buf(id);
      base = 0;
    }
    copyBytes.call(buf, b, base, off, off + len);
    const rip = base + L3;
    // Outer IP header (ICMP has no pseudo header: the ICMP checksum is untouched by it).
    this.#rewrite(b, rip, ihl, IPPROTO_ICMP, nSrc, getU16(b, rip + ihl + 4), nDst, 0, true);
    // Quoted packet: it travelled the other direction, translated; give it the
    // addresses and ports its recipient knows.
    const ricmp = rip + ihl;
    const rin = ricmp + ICMP_HLEN;
    const ril4 = rin + iihl;
    const qSrc = dir === 1 ? c.oSrc : c.rSrc;
    const qSport = dir === 1 ? c.oSport : c.rSport;
    const qDst = dir === 1 ? c.oDst : c.rDst;
    const qDport = dir === 1 ? c.oDport : c.rDport;
    let ic = getU16(b, ricmp + 2);
    let inIpc = getU16(b, rin + IP_CHECKSUM);
    const inIpcOld = inIpc;
    // The quoted L4 checksum, when the quote holds it.
    const qcOff = iproto === IPPROTO_TCP ? (avail >= iihl + TCP_CHECKSUM + 2 ? ril4 + TCP_CHECKSUM : -1)
      : iproto === IPPROTO_UDP ? ril4 + UDP_CHECKSUM : ril4 + 2;
    let qc = qcOff >= 0 ? getU16(b, qcOff) : 0;
    const qcOld = qc;
    const qcNone = qcOff < 0 || (iproto === IPPROTO_UDP && qc === 0);
    const icmpQuoted = iproto === IPPROTO_ICMP;
    // Addresses in the quoted IP header.
    if (isrc !== qSrc) {
      setU32(b, rin + IP_SRC, qSrc);
      inIpc = update32(inIpc, isrc, qSrc);
      ic = update32(ic, isrc, qSrc);
      if (!qcNone && !icmpQuoted) qc = update32(qc, isrc, qSrc);
    }
    if (idst !== qDst) {
      setU32(b, rin + IP_DST, qDst);
      inIpc = update32(inIpc, idst, qDst);
      ic = update32(ic, idst, qDst);
      if (!qcNone && !icmpQuoted) qc = update32(qc, idst, qDst);
    }
    if (inIpc !== inIpcOld) {
      setU16(b, rin + IP_CHECKSUM, inIpc);
      ic = update16(ic, inIpcOld, inIpc);
    }
    // Ports (or the echo identifier) in the quoted L4 header.
    if (icmpQuoted) {
      if (isport !== qSport) {
        setU16(b, ril4 + 4, qSport);
        ic = update16(ic, isport, qSport);
        qc = update16(qc, isport, qSport);
      }
    } else {
      if (isport !== qSport) {
        setU16(b, ril4, qSport);
        ic = update16(ic, isport, qSport);
        if (!qcNone) qc = update16(qc, isport, qSport);
      }
      if (idport !== qDport) {
        setU16(b, ril4 + 2, qDport);
        ic = update16(ic, idport, qDport);
        if (!qcNone) qc = update16(qc, idport, qDport);
      }
    }
    if (!qcNone && qc !== qcOld) {
      if (iproto === IPPROTO_UDP && qc === 0) qc = 0xffff;
      setU16(b, qcOff, qc);
      ic = update16(ic, qcOld, qc);
    }
    // With NEEDS_CSUM the ICMP checksum is completed later over the new bytes.
    if (!needsCsum) setU16(b, ricmp + 2, ic);
    this.#counters.add(this.#c['icmp.error-translated']);
    if (slot >= 0) {
      writeEthHeader(b, slot + VNET_HDR_LEN, e.mac, this.#mac[out], ETHERTYPE_IPV4);
      this.#submit(out, slot, len);
      this.#counters.add(this.#c.forwarded);
    } else {
      e.queue.push(id);
      e.queueLen.push(len);
      this.#counters.add(this.#c['arp.queued']);
    }
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
      if (ip === d.address) refuse(`it is the router's own address on domain ${d.name}`);
      if (ip === d.network || ip === d.broadcast) refuse(`it is the ${ip === d.network ? 'network' : 'broadcast'} address of domain ${d.name}`);
    }
    this.#now = this.#clock();
    if (!this.#rtBlocks.add(ip, seconds * 1000, reason, this.#now)) refuse('the run-time blocklist is full (MAX_RUNTIME_BLOCKS)');
    this.#counters.add(this.#c['block.added']);
    const gone: Conn[] = [];
    for (const c of this.#ct.live()) if ((c.oSrc >>> 0) === ip || (c.rSrc >>> 0) === ip) gone.push(c);
    for (const c of gone) this.#ct.remove(c);
    this.#counters.add(this.#c['block.conns-removed'], gone.length);
    this.#log?.(`router: blocked ${formatIpv4(ip)} for ${seconds} s: ${reason}`);
    return { ip: formatIpv4(ip), seconds, connectionsRemoved: gone.length };
  }

  // ---- status --------------------------------------------------------------------

  status(): Record<string, unknown> {
    const now = this.#now;
    const domains = this.cfg.domains.map((d) => ({
      name: d.name,
      address: `${formatIpv4(d.address)}/${d.prefix}`,
      mac: formatMac(d.mac),
      gateway: d.gateway >= 0 ? formatIpv4(d.gateway) : null,
      routes: (d.routes ?? []).map((r) => `${formatIpv4(r.network)}/${r.prefix} via ${formatIpv4(r.via)}`),
      forward: d.forward.map((f) => ({ to: f.toName, nat: f.nat })),
    }));
    const arp: Record<string, unknown>[] = [];
    this.cfg.domains.forEach((d, i) => {
      for (const e of this.#arp[i].entries.values()) {
        arp.push({
          domain: d.name,
          ip: formatIpv4(e.ip),
          mac: e.resolved ? formatMac(e.mac) : null,
          state: e.resolved ? (e.probing ? 'refreshing' : now >= e.expires ? 'stale' : 'reachable') : 'resolving',
          expiresInS: e.resolved ? Math.round((e.expires - now) / 1000) : null,
          queued: e.queue.length,
        });
      }
    });
    const summary: Record<string, Record<string, number>> = {};
    const connections: Record<string, unknown>[] = [];
    for (const c of this.#ct.live()) {
      const p = protoName(c.proto);
      const s = CT_STATE_NAMES[c.state];
      summary[p] ??= {};
      summary[p][s] = (summary[p][s] ?? 0) + 1;
      if (connections.length < 200) {
        connections.push({
          proto: p,
          state: s,
          from: this.cfg.domains[c.inDom].name,
          to: this.cfg.domains[c.outDom].name,
          src: `${formatIpv4(c.oSrc)}:${c.oSport}`,
          dst: `${formatIpv4(c.oDst)}:${c.oDport}`,
          nat: c.nat ? `${formatIpv4(c.rDst)}:${c.rDport}` : null,
          dnat: c.rSrc !== c.oDst || (c.proto !== IPPROTO_ICMP && c.rSport !== c.oDport) ? `${formatIpv4(c.rSrc)}:${c.rSport}` : null,
          packets: [c.pktsOrig, c.pktsReply],
          ageS: Math.round((now - c.created) / 1000),
          expiresInS: Math.round((c.expires - now) / 1000),
        });
      }
    }
    return {
      domains,
      arp,
      arpPending: { pool: this.#pool.slots, inUse: this.#pool.inUse },
      conntrack: {
        count: this.#ct.count, max: this.#ct.max, byProto: summary,
        timeoutsS: Object.fromEntries(Object.entries(this.cfg.conntrack).filter(([k]) => k.endsWith('Ms')).map(([k, v]) => [k.slice(0, -2), v / 1000])),
      },
      connections,
      policy: {
        ...policyStatus(this.cfg, this.#policy, now),
        runtimeBlocks: this.#rtBlocks.entries().map((e) => ({
          ip: formatIpv4(e.ip),
          reason: e.reason,
          expiresInS: Math.max(0, Math.round((e.expires - now) / 1000)),
          active: e.expires > now,
          drops: e.drops,
          times: e.times,
        })),
      },
      dhcp: this.cfg.domains.filter((d) => this.#dhcp[d.index] !== undefined).map((d) => ({
        domain: d.name,
        range: `${formatIpv4(d.policy.dhcp!.first)}-${formatIpv4(d.policy.dhcp!.last)}`,
        leaseS: d.policy.dhcp!.leaseMs / 1000,
        leases: this.#dhcp[d.index]!.leases(now),
      })),
    };
  }

  // ---- DHCP server -----------------------------------------------------------------

  /** A datagram to UDP port 67 on a domain with a DHCP server. */
  #dhcpIn(dom: number, buf: Uint8Array, off: number, len: number): void {
    const D = this.#d;
    const ip = off + L3;
    const ihl = checkIpv4(buf, ip, len - L3);
    if (ihl < 0) return this.#drop(D['dhcp-malformed']);
    const l4 = ip + ihl;
    const verify = this.cfg.verifyChecksums && (buf[off] & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) === 0;
    if (checkUdp(buf, ip, l4, getU16(buf, ip + 2) - ihl, verify) !== UDP_OK) return this.#drop(D['dhcp-malformed']);
    const s = this.#dhcp[dom]!;
    const n = s.handle(buf, ip, ihl, getU16(buf, l4 + 4), this.#now);
    if (s.lastType !== 0) this.#counters.add(this.#counters.define(`dhcp.${DHCP_TYPE_NAMES[s.lastType]}`));
    if (s.result === DHCP_MALFORMED) return this.#drop(D['dhcp-malformed']);
    if (s.result === DHCP_POOL_EXHAUSTED) return this.#drop(D['dhcp-pool-exhausted']);
    if (s.result === DHCP_SILENT) return this.#drop(D['dhcp-not-ours']);
    if (n === 0) return;
    const slot = this.#allocOwn(dom, n);
    if (slot < 0) return;
    const b = this.#ports[dom].buf;
    copyBytes.call(s.out, b, slot + VNET_HDR_LEN, 0, n);
    const flen = this.#pad(b, slot + VNET_HDR_LEN, n);
    this.#submit(dom, slot, VNET_HDR_LEN + flen);
    this.#counters.add(this.#counters.define(`dhcp.${DHCP_TYPE_NAMES[s.replyType]}`));
  }

  // ---- reconfiguration ---------------------------------------------------------------

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
    this.#now = this.#clock();
    const policy = new Policy(next, this.#now);
    this.cfg = next;
    this.#policy = policy;
    for (const d of next.domains) {
      const spec = d.policy.dhcp;
      const cur = this.#dhcp[d.index];
      if (spec === null) this.#dhcp[d.index] = undefined;
      else if (cur === undefined) this.#dhcp[d.index] = new DhcpServer(spec, d.address, d.mask, d.mac);
      else cur.update(spec);
    }
    this.#logBudget = this.#log === undefined ? 0 : next.logDropsPerS;
    let removed = 0;
    const stale: Conn[] = [];
    for (const c of this.#ct.live()) if (!this.#stillPermitted(c)) stale.push(c);
    for (const c of stale) {
      this.#ct.remove(c);
      removed++;
    }
    for (const c of this.#ct.live()) c.expires = Math.min(c.expires, this.#now + this.#timeout(c));
    this.#counters.add(this.#c['conntrack.reload-removed'], removed);
    this.#counters.add(this.#c['policy.reloads']);
    return undefined;
  }

  /** Would the policy in force accept this connection now, the same way (target, NAT, port forward)? */
  #stillPermitted(c: Conn): boolean {
    const p = this.#policy;
    const now = this.#now;
    if (p.blocked(c.inDom, c.oSrc, now) || p.blocked(c.outDom, c.rSrc, now)) return false;
    if (c.oDst === this.#addr[c.inDom]) {
      const f = p.forward(c.inDom, c.proto, c.oDport);
      return f >= 0 && p.fwdTo[f] === c.outDom && p.fwdHost[f] === c.rSrc && p.fwdPort[f] === c.rSport && p.nat(c.inDom, c.outDom) === c.nat;
    }
    return p.peek(c.inDom, c.outDom, c.proto, c.oDst, c.oDport) === (c.nat ? POLICY_ACCEPT_NAT : POLICY_ACCEPT);
  }
}

/** Why `next` cannot replace `cur` at run time, or undefined. */
export function structuralChange(cur: RouterConfig, next: RouterConfig): string | undefined {
  if (cur.domains.length !== next.domains.length || cur.domains.some((d, i) => d.name !== next.domains[i].name)) {
    return `the domains (${cur.domains.map((d) => d.name).join(', ')}) cannot change at run time: they are the router's sessions; restart the gateway`;
  }
  for (let i = 0; i < cur.domains.length; i++) {
    const a = cur.domains[i];
    const b = next.domains[i];
    if (a.address !== b.address || a.prefix !== b.prefix) return `domains.${a.name}.address cannot change at run time (connections and ARP entries depend on it); restart the gateway`;
    if (a.gateway !== b.gateway) return `domains.${a.name}.gateway cannot change at run time; restart the gateway`;
    if (a.mac.join(',') !== b.mac.join(',')) return 'mac-prefix cannot change at run time (hosts cache the MACs); restart the gateway';
  }
  if (cur.conntrack.max !== next.conntrack.max) return 'conntrack.max cannot change at run time (the table is allocated once); restart the gateway';
  if (cur.arp.pendingPool !== next.arp.pendingPool) return 'arp.pending-pool cannot change at run time; restart the gateway';
  if (cur.natPorts.first !== next.natPorts.first || cur.natPorts.last !== next.natPorts.last) {
    return 'nat-ports cannot change at run time (live connections hold ports of it); restart the gateway';
  }
  return undefined;
}

/** The policy in force, for status(): rules with their hits, defaults, forwards, NAT, blocklists, limits. */
function policyStatus(cfg: RouterConfig, p: Policy, now: number): Record<string, unknown> {
  const names = cfg.domains.map((d) => d.name);
  let k = 0;
  return {
    domains: cfg.domains.map((d) => {
      const rules = d.policy.rules.map((r) => ({ rule: r.text, path: r.path, hits: p.ruleHits[k++] }));
      const bl = p.blocklists[d.index];
      return {
        domain: d.name,
        default: { action: d.policy.defaultAction, hits: p.defaultHits[d.index] },
        rules,
        forwards: d.policy.forwards.map((f) => ({ proto: f.proto, port: f.port, to: f.toName, host: `${formatIpv4(f.host)}:${f.hostPort}` })),
        nat: d.policy.nat === null ? null : { from: d.policy.nat.fromNames, portsPerSource: d.policy.nat.portsPerSource },
        blocklist: bl === undefined ? [] : bl.entries().map((e) => ({
          prefix: `${formatIpv4(e.network)}/${e.prefix}`,
          expiresInS: e.expires === Infinity ? null : Math.max(0, Math.round((e.expires - now) / 1000)),
          active: e.expires > now,
        })),
        limits: d.policy.limits,
      };
    }),
    domainNames: names,
  };
}
