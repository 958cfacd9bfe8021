// The packet being handled: ONE object per router, allocated once and reused
// for every packet (no allocation per packet). receive() copies the frame out
// of the shared ingress slot into `buf` (private: no other process can write
// it) at offset 0; every later step parses, decides and rewrites only there,
// filling in the fields below as it learns them, instead of passing them down
// long argument lists.
import { ETH_HLEN } from '../../net/ethernet.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';

/** Bytes before the IP header in a packet: virtio_net_hdr + Ethernet (the IP header's offset in Packet.buf). */
export const L3 = VNET_HDR_LEN + ETH_HLEN;

export class Packet {
  /** The private copy of the frame (virtio_net_hdr + Ethernet), at offset 0. */
  readonly buf: Uint8Array;
  /** buf holds the current packet (false in timers: drops then have no packet to describe). */
  has = false;
  /** Ingress domain. */
  dom = 0;
  /** Bytes of the frame in buf (vnet header included). */
  len = 0;
  /** IPv4 header length; the L4 header is at l4 = L3 + ihl, l4Len bytes to the IP total length. */
  ihl = 0;
  l4 = 0;
  l4Len = 0;
  proto = 0;
  /** Addresses as int32 (getI32), so never boxed. */
  src = 0;
  dst = 0;
  /** TCP/UDP ports; for ICMP echo both are the identifier. */
  sport = 0;
  dport = 0;
  tcpFlags = 0;
  /** ICMP type, or -1 for TCP/UDP. */
  icmpType = -1;
  /** vnet NEEDS_CSUM: the L4 checksum field holds the partial pseudo-header sum. */
  needsCsum = false;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
}
