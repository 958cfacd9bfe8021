// The tunnel as a host on one Nic session (a router domain): it answers ARP
// for its own address and resolves its gateway (the router's address in that
// domain), whose MAC every frame it sends is addressed to. With an IPv6
// address (plain side, `address6`) it does the same with Neighbor Discovery:
// NS for its global or link-local address answered with an NA, the IPv6
// gateway resolved with NS to its solicited-node group. Frames carry the
// 12-byte virtio_net_hdr of the Nic session in front.
import { isGroupMac, macEquals } from '../../net/addr.ts';
import {
  ARP_LEN, ARP_OK, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpOp, checkArp, writeArp,
} from '../../net/arp.ts';
import { ipv6Equals, isUnspecifiedIpv6, multicastMac6, solicitedNode } from '../../net/addr6.ts';
import { getI32 } from '../../net/bytes.ts';
import { ETH_HLEN, ETH_MIN_FRAME, ETHERTYPE_ARP, ETHERTYPE_IPV6, writeEthHeader } from '../../net/ethernet.ts';
import {
  checkNd, icmp6ChecksumOk, icmp6SetChecksum, ND_NA_FLAG_OVERRIDE, ND_NA_FLAG_SOLICITED, ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT, ND_OK,
  ND_OPT_SOURCE_LINKADDR, ND_OPT_TARGET_LINKADDR, ndLinkAddr, writeNeighborAdvert, writeNeighborSolicit,
} from '../../net/icmpv6.ts';
import { IP6_SRC, IPV6_HLEN, NH_ICMPV6, writeIpv6Header } from '../../net/ipv6.ts';
import { vnetClear, VNET_HDR_LEN } from '../../net/vnet.ts';
import type { PacketSource } from '../../session/types.ts';
import type { LinkConfig } from './config.ts';

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);
/** While the gateway is unresolved, ask every this many ms; once resolved, refresh this often. */
const ARP_RETRY_MS = 500;
const ARP_REFRESH_MS = 60_000;

export const ARP_IGNORED = 0;
export const ARP_HANDLED = 1;
export const ARP_BAD = 2;

export class LinkHost {
  readonly cfg: LinkConfig;
  readonly port: PacketSource;
  readonly gatewayMac = new Uint8Array(6);
  resolved = false;
  #nextArp = 0;
  #lastLearned = 0;
  /** The link produced frames since the last flush. */
  dirty = false;
  arpRequestsSent = 0;
  arpRepliesSent = 0;
  // IPv6 (cfg.ipv6 set): the gateway's MAC learned by Neighbor Discovery.
  readonly gatewayMac6 = new Uint8Array(6);
  resolved6 = false;
  #nextNs = 0;
  #lastLearned6 = 0;
  nsSent = 0;
  naSent = 0;
  /** Scratch: the address an NA goes to, a solicited-node group (no allocation per ND message). */
  readonly #to6 = new Uint8Array(16);

  constructor(cfg: LinkConfig, port: PacketSource) {
    this.cfg = cfg;
    this.port = port;
  }

  /** Destination MAC check for an incoming frame at buf[off] (vnet header first): ours, or broadcast. */
  forUs(buf: Uint8Array, off: number): boolean {
    const e = off + VNET_HDR_LEN;
    return macEquals(buf, e, this.cfg.mac) || isGroupMac(buf, e);
  }

  /** An ARP frame arrived: answer requests for our address, learn the gateway. Returns ARP_HANDLED, ARP_IGNORED or ARP_BAD. */
  arpIn(buf: Uint8Array, off: number, len: number, now: number): number {
    const a = off + VNET_HDR_LEN + ETH_HLEN;
    if (checkArp(buf, a, len - VNET_HDR_LEN - ETH_HLEN) !== ARP_OK) return ARP_BAD;
    const sha = a + ARP_SHA;
    if (isGroupMac(buf, sha) || macEquals(buf, sha, ZERO_MAC)) return ARP_BAD;
    const spa = getI32(buf, a + ARP_SPA);
    const tpa = getI32(buf, a + ARP_TPA);
    const op = arpOp(buf, a);
    if (spa === (this.cfg.gateway | 0)) {
      for (let i = 0; i < 6; i++) this.gatewayMac[i] = buf[sha + i];
      this.resolved = true;
      this.#lastLearned = now;
      this.#nextArp = now + ARP_REFRESH_MS;
    }
    if (op === ARP_OP_REQUEST && tpa === (this.cfg.address | 0)) {
      this.#sendArp(ARP_OP_REPLY, buf.subarray(sha, sha + 6), spa, buf.subarray(sha, sha + 6));
      this.arpRepliesSent++;
      return ARP_HANDLED;
    }
    return op === ARP_OP_REPLY || op === ARP_OP_REQUEST ? ARP_IGNORED : ARP_BAD;
  }

  /** Resolve or refresh the gateway's MACs (ARP, and ND with IPv6) when due. */
  tick(now: number): void {
    this.#tick6(now);
    if (now < this.#nextArp) return;
    this.#nextArp = now + (this.resolved ? ARP_REFRESH_MS : ARP_RETRY_MS);
    // A refresh keeps the old MAC in use; it is forgotten only after three missed refreshes.
    if (this.resolved && now - this.#lastLearned > 3 * ARP_REFRESH_MS + ARP_RETRY_MS) this.resolved = false;
    this.#sendArp(ARP_OP_REQUEST, BROADCAST, this.cfg.gateway, ZERO_MAC);
    this.arpRequestsSent++;
  }

  /**
   * An ICMPv6 message of an IPv6 packet (header checked, n bytes at
   * off + VNET_HDR_LEN + ETH_HLEN) that is ND: answer an NS for our global or
   * link-local address, learn the gateway's MAC from its NS or NA. Returns
   * ARP_HANDLED, ARP_IGNORED (ND not for us) or ARP_BAD (malformed, counted by the caller).
   */
  ndIn(buf: Uint8Array, off: number, n: number, now: number): number {
    const v6 = this.cfg.ipv6;
    if (v6 === null) return ARP_IGNORED;
    const ip = off + VNET_HDR_LEN + ETH_HLEN;
    const l4 = ip + IPV6_HLEN;
    const len = n - IPV6_HLEN;
    if (buf[ip + 6] !== NH_ICMPV6 || len < 4) return ARP_BAD;
    const type = buf[l4];
    if (type !== ND_NEIGHBOR_SOLICIT && type !== ND_NEIGHBOR_ADVERT) return ARP_IGNORED;
    if (checkNd(buf, ip, l4, len) !== ND_OK || !icmp6ChecksumOk(buf, ip, l4, len)) return ARP_BAD;
    const target = l4 + 8;
    if (type === ND_NEIGHBOR_ADVERT) {
      const tlla = ndLinkAddr(buf, l4, len, ND_OPT_TARGET_LINKADDR);
      if (tlla < 0 || !ipv6Equals(buf, target, v6.gateway, 0)) return ARP_IGNORED;
      this.#learn6(buf, l4 + tlla, now);
      return ARP_HANDLED;
    }
    const slla = ndLinkAddr(buf, l4, len, ND_OPT_SOURCE_LINKADDR);
    if (slla >= 0 && ipv6Equals(buf, ip + IP6_SRC, v6.gateway, 0)) this.#learn6(buf, l4 + slla, now);
    const global = ipv6Equals(buf, target, v6.address, 0);
    if (!global && !ipv6Equals(buf, target, v6.linkLocal, 0)) return ARP_IGNORED;
    // Duplicate address detection by another host for our address: nothing to answer to (it is the host's to notice).
    if (isUnspecifiedIpv6(buf, ip + IP6_SRC)) return ARP_IGNORED;
    const dstMac = slla >= 0 ? buf.subarray(l4 + slla, l4 + slla + 6) : buf.subarray(off + VNET_HDR_LEN + 6, off + VNET_HDR_LEN + 12);
    for (let i = 0; i < 16; i++) this.#to6[i] = buf[ip + IP6_SRC + i];
    this.#sendNd(ND_NEIGHBOR_ADVERT, dstMac, global ? v6.address : v6.linkLocal, this.#to6);
    this.naSent++;
    return ARP_HANDLED;
  }

  #learn6(buf: Uint8Array, mac: number, now: number): void {
    if ((buf[mac] & 1) !== 0) return; // never a group MAC
    for (let i = 0; i < 6; i++) this.gatewayMac6[i] = buf[mac + i];
    this.resolved6 = true;
    this.#lastLearned6 = now;
    this.#nextNs = now + ARP_REFRESH_MS;
  }

  /** An NS (to the gateway's solicited-node group) or an NA (solicited, override; target = src) from src to `to`. */
  #sendNd(type: number, dstMac: Uint8Array, src: Uint8Array, to: Uint8Array): void {
    const port = this.port;
    const slot = port.alloc();
    if (slot < 0) return;
    const b = port.buf;
    vnetClear(b, slot);
    const e = slot + VNET_HDR_LEN;
    writeEthHeader(b, e, dstMac, this.cfg.mac, ETHERTYPE_IPV6);
    const ip = e + ETH_HLEN;
    const l4 = ip + IPV6_HLEN;
    const v6 = this.cfg.ipv6!;
    const len = type === ND_NEIGHBOR_SOLICIT
      ? writeNeighborSolicit(b, l4, v6.gateway, 0, this.cfg.mac, 0)
      : writeNeighborAdvert(b, l4, ND_NA_FLAG_SOLICITED | ND_NA_FLAG_OVERRIDE, src, 0, this.cfg.mac, 0);
    writeIpv6Header(b, ip, len, NH_ICMPV6, 255, src, to);
    icmp6SetChecksum(b, ip, l4, len);
    port.submit(slot, VNET_HDR_LEN + ETH_HLEN + IPV6_HLEN + len);
    this.dirty = true;
  }

  /** Resolve or refresh the IPv6 gateway's MAC when due (an NS to its solicited-node group). */
  #tick6(now: number): void {
    const v6 = this.cfg.ipv6;
    if (v6 === null || now < this.#nextNs) return;
    this.#nextNs = now + (this.resolved6 ? ARP_REFRESH_MS : ARP_RETRY_MS);
    if (this.resolved6 && now - this.#lastLearned6 > 3 * ARP_REFRESH_MS + ARP_RETRY_MS) this.resolved6 = false;
    solicitedNode(v6.gateway, 0, this.#to6, 0);
    const mac = this.#mcastMac;
    multicastMac6(this.#to6, 0, mac, 0);
    this.#sendNd(ND_NEIGHBOR_SOLICIT, mac, v6.address, this.#to6);
    this.nsSent++;
  }

  readonly #mcastMac = new Uint8Array(6);

  #sendArp(op: number, dstMac: Uint8Array, targetIp: number, targetMac: Uint8Array): void {
    const port = this.port;
    const slot = port.alloc();
    if (slot < 0) return;
    const b = port.buf;
    vnetClear(b, slot);
    const e = slot + VNET_HDR_LEN;
    writeEthHeader(b, e, dstMac, this.cfg.mac, ETHERTYPE_ARP);
    writeArp(b, e + ETH_HLEN, op, this.cfg.mac, this.cfg.address, targetMac, targetIp);
    b.fill(0, e + ETH_HLEN + ARP_LEN, e + ETH_MIN_FRAME);
    port.submit(slot, VNET_HDR_LEN + ETH_MIN_FRAME);
    this.dirty = true;
  }

  flush(): void {
    if (this.dirty) {
      this.dirty = false;
      this.port.flush();
    }
  }
}
