// The tunnel as an IPv4 host on one Nic session (a router domain): it answers
// ARP for its own address and resolves its gateway (the router's address in
// that domain), whose MAC every frame it sends is addressed to. Frames carry
// the 12-byte virtio_net_hdr of the Nic session in front.
import { isGroupMac, macEquals } from '../../net/addr.ts';
import {
  ARP_LEN, ARP_OK, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpOp, checkArp, writeArp,
} from '../../net/arp.ts';
import { getI32 } from '../../net/bytes.ts';
import { ETH_HLEN, ETH_MIN_FRAME, ETHERTYPE_ARP, writeEthHeader } from '../../net/ethernet.ts';
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

  /** Resolve or refresh the gateway's MAC when due. */
  tick(now: number): void {
    if (now < this.#nextArp) return;
    this.#nextArp = now + (this.resolved ? ARP_REFRESH_MS : ARP_RETRY_MS);
    // A refresh keeps the old MAC in use; it is forgotten only after three missed refreshes.
    if (this.resolved && now - this.#lastLearned > 3 * ARP_REFRESH_MS + ARP_RETRY_MS) this.resolved = false;
    this.#sendArp(ARP_OP_REQUEST, BROADCAST, this.cfg.gateway, ZERO_MAC);
    this.arpRequestsSent++;
  }

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
