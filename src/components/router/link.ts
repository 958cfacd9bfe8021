// The link layer of every domain: ARP (answering for the router's address,
// learning, resolving next hops, retries and expiry, the pending pool of
// packets waiting on a resolution) and the egress slots.
//
// Egress slots are shared memory the egress peer can write too, so the router
// never reads from them: every frame is finished in private memory (the
// packet's copy, the pending pool, or `own` for frames the router builds) and
// then copied into a slot and submitted; the mirror copies from the private
// source, not from the slot.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import type { Tracer } from '../../trace/tracer.ts';
import { isGroupMac, macEquals } from '../../net/addr.ts';
import {
  ARP_ERR_BAD_OP, ARP_ERR_TRUNCATED, ARP_LEN, ARP_OK, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpOp,
  checkArp, writeArp,
} from '../../net/arp.ts';
import { getI32, setU16 } from '../../net/bytes.ts';
import { ETH_HLEN, ETH_MIN_FRAME, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthHeader, writeMacBytes } from '../../net/ethernet.ts';
import { VNET_HDR_LEN, vnetClear } from '../../net/vnet.ts';
import { fragmentCount, writeIpv4Fragment } from '../../net/ipv4-frag.ts';
import { completeChecksum } from './mtu.ts';
import { ArpCache, type ArpEntry, PendingPool } from './arp-cache.ts';
import type { RouterConfig } from './config.ts';
import type { CounterName, Drops } from './drops.ts';
import type { EgressHold } from './egress-hold.ts';
import type { Mirror } from './mirror.ts';
import { copyFrame, L3, type Packet, words } from './packet.ts';
import type { Routing } from './routing.ts';
import type { EgressPort } from './types.ts';

const ZERO_MAC = new Uint8Array(6);
const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
// Buffer#copy accepts any Uint8Array as `this` and target: a native copy with
// no view allocated per packet (subarray + set allocates a view each time).
const copyBytes = Buffer.prototype.copy;

export class Link {
  /** The router's coarse clock (ms), set by the router once per batch or timer. */
  now = 0;
  /** ARP settings in force (reconfigure replaces them; pending-pool cannot change). */
  arpCfg: RouterConfig['arp'];
  /** The router's MAC per domain. */
  readonly macs: readonly Uint8Array[];
  /** Per domain: the link MTU (larger IPv4 packets leave as fragments; the router refused DF ones). */
  readonly mtu: Int32Array;
  readonly caches: ArpCache[];
  readonly pool: PendingPool;
  /** Private buffer the router builds its own frames in (ARP, ICMP, resets, DHCP) before copying them out. */
  readonly own: Uint8Array;
  readonly #ports: readonly EgressPort[];
  /** The egress buffers as 32-bit words (copyFrame). */
  readonly #out32: (Int32Array | undefined)[];
  readonly #dirty: Uint8Array;
  readonly #txId: Int32Array;
  readonly #counters: Counters;
  readonly #c: Record<CounterName, number>;
  readonly #drops: Drops;
  readonly #pkt: Packet;
  readonly #rt: Routing;
  readonly #mirror: Mirror | undefined;
  readonly #tr: Tracer;
  readonly #pCopy: number;
  /** Which egresses each ingress's frames go to (backpressure, egress-hold.ts). */
  readonly #hold: EgressHold;

  constructor(cfg: RouterConfig, ports: readonly EgressPort[], rt: Routing, pkt: Packet, drops: Drops,
    counters: Counters, c: Record<CounterName, number>, mirror: Mirror | undefined, tr: Tracer, pCopy: number, hold: EgressHold) {
    this.arpCfg = cfg.arp;
    this.macs = cfg.domains.map((d) => d.mac);
    this.mtu = Int32Array.from(cfg.domains, (d) => d.mtu);
    this.caches = cfg.domains.map(() => new ArpCache());
    this.#ports = ports;
    this.#out32 = ports.map((p) => words(p.buf));
    this.#dirty = new Uint8Array(ports.length);
    this.#txId = Int32Array.from(cfg.domains, (d) => counters.define(`tx.${d.name}`));
    let slotSize = 0;
    for (const p of ports) slotSize = Math.max(slotSize, p.slotSize);
    this.pool = new PendingPool(cfg.arp.pendingPool, slotSize);
    this.own = new Uint8Array(slotSize);
    this.#counters = counters;
    this.#c = c;
    this.#drops = drops;
    this.#pkt = pkt;
    this.#rt = rt;
    this.#mirror = mirror;
    this.#tr = tr;
    this.#pCopy = pCopy;
    this.#hold = hold;
  }

  // ---- egress ------------------------------------------------------------------

  /** Publish what the last batch produced (one flush per egress that got packets). */
  flush(): void {
    this.#mirror?.flush();
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      if (dirty[i] !== 0) {
        dirty[i] = 0;
        this.#ports[i].flush();
      }
    }
  }

  /**
   * Start a router-built frame of frameLen bytes (excluding the vnet header)
   * for domain dom in `own`: true with a zeroed vnet header, or false (counted)
   * when it cannot fit the domain's slots.
   */
  ownFrame(dom: number, frameLen: number): boolean {
    if (VNET_HDR_LEN + frameLen > this.#ports[dom].slotSize) {
      this.#drops.drop(this.#drops.id['egress-too-big']);
      return false;
    }
    vnetClear(this.own, 0);
    return true;
  }

  /** Send the frame built in `own` (frameLen bytes after the vnet header; padded to the Ethernet minimum). */
  sendOwn(dom: number, frameLen: number): boolean {
    return this.send(dom, this.own, 0, VNET_HDR_LEN + this.pad(this.own, VNET_HDR_LEN, frameLen));
  }

  /**
   * Copy src[off, off+len) (private memory) into a slot of dom and submit it;
   * false (counted) when no slot is free. `ingress`: the domain a forwarded
   * frame came in on (the mirror marks its copy as the second one), -1 for
   * the router's own frames.
   */
  send(dom: number, src: Uint8Array, off: number, len: number, ingress = -1): boolean {
    const port = this.#ports[dom];
    const slot = port.alloc();
    if (slot < 0) {
      if (ingress >= 0) this.#hold.use(ingress, dom);
      this.#drops.drop(this.#drops.id['egress-full']);
      return false;
    }
    copyBytes.call(src, port.buf, slot, off, off + len);
    this.#submit(dom, slot, src, off, len, ingress);
    return true;
  }

  #submit(dom: number, slot: number, src: Uint8Array, off: number, len: number, ingress: number): void {
    if (this.#mirror !== undefined) this.#mirror.tx(dom, src, off, len, ingress);
    if (ingress >= 0) this.#hold.use(ingress, dom);
    this.#ports[dom].submit(slot, len);
    this.#dirty[dom] = 1;
    this.#counters.add(this.#txId[dom]);
  }

  /** Pad an Ethernet frame at buf[eth] to the minimum size; returns the padded length. */
  pad(buf: Uint8Array, eth: number, frameLen: number): number {
    if (frameLen >= ETH_MIN_FRAME) return frameLen;
    buf.fill(0, eth + frameLen, eth + ETH_MIN_FRAME);
    return ETH_MIN_FRAME;
  }

  /**
   * Where a packet of len bytes to nDst leaves domain out: the ARP entry of
   * its next hop (resolved, or resolving), or undefined when it cannot (no
   * route, too big for the slots, ARP cache full: counted).
   */
  hopEntry(out: number, nDst: number, len: number): ArpEntry | undefined {
    const D = this.#drops.id;
    const hop = this.#rt.hopFor(out, nDst);
    if (hop === -1) {
      this.#drops.drop(D['no-route']);
      return undefined;
    }
    if (len > this.#ports[out].slotSize) {
      this.#drops.drop(D['egress-too-big']);
      return undefined;
    }
    const e = this.#nextHop(out, hop);
    if (e === undefined) this.#drops.drop(D['arp-cache-full']);
    return e;
  }

  /**
   * Send the finished packet in the packet's private copy (buf[0, len)) to
   * next hop e in domain out: into an egress slot when e is resolved, else
   * into the pending pool until the reply comes (both counted when full).
   * True when it was sent or queued.
   */
  transmit(out: number, e: ArpEntry, len: number): boolean {
    const D = this.#drops.id;
    const b = this.#pkt.buf;
    if (e.resolved) {
      writeEthHeader(b, VNET_HDR_LEN, e.mac, this.macs[out], ETHERTYPE_IPV4);
      if (len - L3 > this.mtu[out] && (b[1] & 0x7f) === 0) return this.#sendFragments(out, b, len);
      const tr = this.#tr;
      tr.chainNext(); // alloc_packet starts where the previous stage ended
      const port = this.#ports[out];
      const slot = port.alloc();
      if (slot < 0) {
        this.#hold.use(this.#pkt.dom, out);
        this.#drops.drop(D['egress-full']);
        return false;
      }
      const tp = tr.latest();
      copyFrame(b, this.#pkt.buf32, 0, port.buf, this.#out32[out], slot, len);
      tr.end(this.#pCopy, tp, len);
      tr.chainNext(); // submit_packet starts where the copy ended
      this.#submit(out, slot, b, 0, len, this.#pkt.dom);
      this.#counters.add(this.#c.forwarded);
      return true;
    }
    if (e.queue.length >= this.arpCfg.maxPending) {
      this.#drops.drop(D['arp-pending-full']);
      return false;
    }
    const id = this.pool.alloc();
    if (id < 0) {
      this.#drops.drop(D['arp-pool-exhausted']);
      return false;
    }
    copyBytes.call(b, this.pool.buf(id), 0, 0, len);
    e.queue.push(id);
    e.queueLen.push(len);
    this.#counters.add(this.#c['arp.queued']);
    return true;
  }

  /**
   * Send the IPv4 packet src[0, len) (vnet + Ethernet header written) to dom
   * as fragments of at most the domain's MTU, each built in `own` and copied
   * out. The router checked DF before (a DF packet never gets here). Counted:
   * forwarded once, frag.sent per fragment.
   */
  #sendFragments(dom: number, src: Uint8Array, len: number): boolean {
    completeChecksum(src, len);
    const ihl = (src[L3] & 0x0f) << 2;
    const total = len - L3;
    const mtu = this.mtu[dom];
    const n = fragmentCount(ihl, total, mtu);
    if (n === 0 || !this.ownFrame(dom, ETH_HLEN + mtu)) {
      if (n === 0) this.#drops.drop(this.#drops.id['egress-too-big']);
      return false;
    }
    const own = this.own;
    copyBytes.call(src, own, VNET_HDR_LEN, VNET_HDR_LEN, L3); // Ethernet header
    for (let k = 0; k < n; k++) {
      const fl = writeIpv4Fragment(src, L3, ihl, total, mtu, k, own, L3);
      if (!this.send(dom, own, 0, VNET_HDR_LEN + this.pad(own, VNET_HDR_LEN, ETH_HLEN + fl), this.#pkt.dom)) return false;
      this.#counters.add(this.#c['frag.sent']);
    }
    this.#counters.add(this.#c.forwarded);
    return true;
  }

  // ---- ARP -------------------------------------------------------------------------

  /** An ARP frame arrived (in the packet's private copy). */
  arpIn(p: Packet): void {
    const dr = this.#drops;
    const D = dr.id;
    const buf = p.buf;
    const dom = p.dom;
    const a = L3;
    const r = checkArp(buf, a, p.len - L3);
    if (r !== ARP_OK) {
      return dr.drop(r === ARP_ERR_TRUNCATED ? D['arp-truncated'] : r === ARP_ERR_BAD_OP ? D['arp-bad-op'] : D['arp-unsupported']);
    }
    const sha = a + ARP_SHA;
    if (isGroupMac(buf, sha) || macEquals(buf, sha, ZERO_MAC)) return dr.drop(D['arp-bad-sender']);
    const op = arpOp(buf, a);
    const spa = getI32(buf, a + ARP_SPA);
    const tpa = getI32(buf, a + ARP_TPA);
    const rt = this.#rt;
    const own = rt.addr[dom];
    if (spa === own) return dr.drop(D['arp-address-conflict']);
    const learnable = spa !== rt.net[dom] && spa !== rt.bcast[dom] && (spa & rt.mask[dom]) === rt.net[dom];
    const cache = this.caches[dom];
    if (op === ARP_OP_REQUEST) {
      if (tpa !== own) {
        // Not for us; refresh what we already know, learn nothing new.
        const known = learnable ? cache.get(spa) : undefined;
        if (known !== undefined) this.#learn(dom, known, buf, sha);
        return dr.drop(D['arp-not-for-us']);
      }
      if (spa !== 0) { // spa 0 is an RFC 5227 probe: answer, learn nothing
        if (!learnable) return dr.drop(D['arp-bad-sender']);
        let entry = cache.get(spa);
        if (entry === undefined) entry = cache.add(spa);
        if (entry !== undefined) this.#learn(dom, entry, buf, sha);
        else dr.drop(D['arp-cache-full']);
      }
      this.#sendArpReply(dom, buf, sha, spa);
      return;
    }
    // Reply: learn when it answers us or updates an entry we have.
    if (!learnable) return dr.drop(D['arp-bad-sender']);
    let entry = cache.get(spa);
    if (entry === undefined) {
      if (tpa !== own) return dr.drop(D['arp-not-for-us']);
      entry = cache.add(spa);
      if (entry === undefined) return dr.drop(D['arp-cache-full']);
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
    e.expires = this.now + this.arpCfg.timeoutMs;
    this.#counters.add(this.#c[was ? 'arp.refreshed' : 'arp.learned']);
    if (e.queue.length > 0) this.#releaseQueue(dom, e);
  }

  #releaseQueue(dom: number, e: ArpEntry): void {
    const pool = this.pool;
    for (let i = 0; i < e.queue.length; i++) {
      const id = e.queue[i];
      const pb = pool.buf(id);
      writeEthHeader(pb, VNET_HDR_LEN, e.mac, this.macs[dom], ETHERTYPE_IPV4);
      const len = e.queueLen[i];
      if (len - L3 > this.mtu[dom] && (pb[1] & 0x7f) === 0) {
        if (this.#sendFragments(dom, pb, len)) this.#counters.add(this.#c['arp.released']);
      } else if (this.send(dom, pb, 0, len)) {
        this.#counters.add(this.#c['arp.released']);
        this.#counters.add(this.#c.forwarded);
      }
      pool.free(id);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  /** Drop the packets waiting on e, each counted under reason. */
  dropQueue(e: ArpEntry, reason: number): void {
    for (let i = 0; i < e.queue.length; i++) {
      this.pool.free(e.queue[i]);
      this.#drops.drop(reason);
    }
    e.queue.length = 0;
    e.queueLen.length = 0;
  }

  #sendArpReply(dom: number, req: Uint8Array, sha: number, spa: number): void {
    if (!this.ownFrame(dom, ETH_MIN_FRAME)) return;
    const b = this.own;
    const e = VNET_HDR_LEN;
    // Destination MAC = the requester's hardware address.
    for (let i = 0; i < 6; i++) b[e + i] = req[sha + i];
    writeMacBytes(b, e + 6, this.macs[dom]);
    setU16(b, e + 12, ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REPLY, this.macs[dom], this.#rt.addr[dom], b.subarray(e, e + 6), spa);
    if (this.sendOwn(dom, ETH_HLEN + ARP_LEN)) this.#counters.add(this.#c['arp.reply-sent']);
  }

  /** Gratuitous ARP: a broadcast request for the router's own address in `dom` (hosts and switches learn where it is now). */
  announce(dom: number): void {
    if (this.#rt.addr[dom] === 0) return;
    this.#sendArpRequest(dom, this.#rt.addr[dom]);
    this.#counters.add(this.#c['arp.gratuitous-sent']);
  }

  #sendArpRequest(dom: number, ip: number): void {
    if (!this.ownFrame(dom, ETH_MIN_FRAME)) return;
    const b = this.own;
    const e = VNET_HDR_LEN;
    writeEthHeader(b, e, BROADCAST_MAC, this.macs[dom], ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, ARP_OP_REQUEST, this.macs[dom], this.#rt.addr[dom], ZERO_MAC, ip);
    if (this.sendOwn(dom, ETH_HLEN + ARP_LEN)) this.#counters.add(this.#c['arp.request-sent']);
  }

  /**
   * The ARP entry to send to `hop` in `dom`: resolved (use its MAC) or
   * resolving (queue the packet). Starts resolution, or a refresh of an
   * expired entry, as needed. Undefined when the cache is full.
   */
  #nextHop(dom: number, hop: number): ArpEntry | undefined {
    const cache = this.caches[dom];
    let e = cache.get(hop);
    if (e === undefined) {
      e = cache.add(hop);
      if (e === undefined) return undefined;
    }
    if (!e.probing && (!e.resolved || this.now >= e.expires)) {
      e.probing = true;
      e.tries = 1;
      e.nextTry = this.now + this.arpCfg.retryMs;
      this.#sendArpRequest(dom, hop);
    }
    return e;
  }

  /** Timers: ARP retries, giving up (waiting packets dropped `arp-unresolved`), expiry. */
  tick(): void {
    const now = this.now;
    const { retryMs, maxTries, timeoutMs } = this.arpCfg;
    const p = this.#pkt;
    p.has = false;
    for (let dom = 0; dom < this.caches.length; dom++) {
      const cache = this.caches[dom];
      p.dom = dom;
      for (const e of cache.entries.values()) {
        if (e.probing) {
          if (now < e.nextTry) continue;
          if (e.tries >= maxTries) {
            this.dropQueue(e, this.#drops.id['arp-unresolved']);
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
  }

  /** Forget the ARP state of a domain (its session was reset). Waiting packets are dropped as unresolved. */
  reset(dom: number): void {
    const cache = this.caches[dom];
    for (const e of cache.entries.values()) this.dropQueue(e, this.#drops.id['arp-unresolved']);
    cache.entries.clear();
    this.#dirty[dom] = 0;
  }
}
