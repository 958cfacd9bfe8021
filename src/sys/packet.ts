// AF_PACKET sockets on an existing interface, opened by init (root) and
// handed to a nic-driver as its link fd, like a TAP fd. With PACKET_VNET_HDR
// every frame carries the same 12-byte virtio_net_hdr as on a TAP, so GSO/GRO
// super-frames and checksum offload cross whole and the driver is unchanged.
import { openSync, closeSync, readFileSync } from 'node:fs';
import { bind, getsockoptInto, ifNameToIndex, setns, setsockopt, socket, unshare, SOCK_CLOEXEC, SOCK_NONBLOCK } from './libc.ts';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const ETH_P_ALL = 0x0003;
/** The socket-option level of packet sockets (also packet-ring.ts). */
export const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_MR_PROMISC = 1;
const PACKET_STATISTICS = 6;
const PACKET_VNET_HDR = 15;
const PACKET_QDISC_BYPASS = 20;
const PACKET_IGNORE_OUTGOING = 23;
const PACKET_VNET_HDR_SZ = 24; // Linux 6.2+
const CLONE_NEWNET = 0x40000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
/**
 * Socket buffer of a packet link, each way (the kernel doubles it for its
 * bookkeeping). The default (net.core.rmem_default, 208 KiB here) holds three
 * 64 KiB GSO super-frames: a burst from the host overflowed it and TCP
 * through the link retransmitted ~9 % of its segments. A TAP queues 1000
 * frames (txqueuelen). 4 MiB: ~60 super-frames or ~8000 small ones.
 */
export const PACKET_SOCKET_BUFFER = 4 << 20;

/** A setsockopt int argument (also packet-ring.ts). */
export function int32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/** Run fn with the calling thread in the network namespace behind `nsFd`, then come back. */
export function inNetnsFd<T>(nsFd: number, fn: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    setns(nsFd, CLONE_NEWNET);
    try {
      return fn();
    } finally {
      setns(home, CLONE_NEWNET);
    }
  } finally {
    closeSync(home);
  }
}

/** Run fn with the calling thread in network namespace `netns` (a name under /run/netns; undefined: where it is), then come back. */
export function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (netns === undefined) return fn();
  const there = openSync(`/run/netns/${netns}`, 'r');
  try {
    return inNetnsFd(there, fn);
  } finally {
    closeSync(there);
  }
}

/**
 * A new network namespace, empty but for a down `lo`, held only by the
 * returned fd (close-on-exec): no name under /run/netns, no process in it. It
 * lives while the fd or a socket made in it is open. The calling thread
 * makes it (unshare) and goes back to its own at once.
 */
export function newNetns(): number {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    unshare(CLONE_NEWNET);
    try {
      return openSync('/proc/thread-self/ns/net', 'r');
    } finally {
      setns(home, CLONE_NEWNET);
    }
  } finally {
    closeSync(home);
  }
}

/** The interfaces of the network namespace behind `nsFd` (from its /proc/net/dev). */
export function netnsInterfaces(nsFd: number): string[] {
  return inNetnsFd(nsFd, () => readFileSync('/proc/thread-self/net/dev', 'utf8'))
    .split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter((n) => n !== '');
}

/**
 * A non-blocking, close-on-exec AF_PACKET socket bound to `ifname` in the
 * network namespace behind `nsFd`, promiscuous, with virtio-net headers, not
 * reading back its own transmissions. The socket stays in that namespace
 * wherever the fd goes: it can reach no interface of any other (init gives a
 * packet link a namespace of its own: src/init/packet-link.ts).
 */
export function openPacketSocket(ifname: string, nsFd: number, wantHdrLen: 10 | 12 = 12): { fd: number; vnetHdrLen: number } {
  return inNetnsFd(nsFd, () => {
    const ifindex = ifNameToIndex(ifname);
    if (ifindex === 0) throw new Error(`no interface "${ifname}" in the link's network namespace`);
    const proto = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8); // htons
    const fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    try {
      setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, int32(1));
      // The Nic session's 12-byte header where the kernel can (6.2+); else the
      // classic 10-byte one, which the driver widens (see nic-driver README).
      let vnetHdrLen = 10;
      if (wantHdrLen === 12) {
        try {
          setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR_SZ, int32(12));
          vnetHdrLen = 12;
        } catch {
          // an older kernel: the classic 10-byte header
        }
      }
      setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, int32(1));
      setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, int32(1));
      // Past net.core.rmem_max / wmem_max: init is root (CAP_NET_ADMIN).
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, int32(PACKET_SOCKET_BUFFER));
      setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, int32(PACKET_SOCKET_BUFFER));
      const sll = new Uint8Array(20); // struct sockaddr_ll
      const v = new DataView(sll.buffer);
      v.setUint16(0, AF_PACKET, true);
      v.setUint16(2, proto, true);
      v.setInt32(4, ifindex, true);
      bind(fd, sll);
      const mreq = new Uint8Array(16); // struct packet_mreq
      const m = new DataView(mreq.buffer);
      m.setInt32(0, ifindex, true);
      m.setUint16(4, PACKET_MR_PROMISC, true);
      setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
      return { fd, vnetHdrLen };
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  });
}

/**
 * A packet socket's statistics since the last call (PACKET_STATISTICS resets
 * them when read): frames received and frames the kernel dropped because the
 * socket's receive queue was full (its reader was too slow). -errno when the
 * call fails (not a packet socket, a closed fd). Not for the per-packet path:
 * one system call.
 */
export function packetSocketStats(fd: number, into: Uint8Array = new Uint8Array(8)): { packets: number; drops: number } | number {
  const n = getsockoptInto(fd, SOL_PACKET, PACKET_STATISTICS, into);
  if (n < 0) return n;
  if (n < 8) return -22; // EINVAL: not struct tpacket_stats
  const v = new DataView(into.buffer, into.byteOffset, 8);
  return { packets: v.getUint32(0, true), drops: v.getUint32(4, true) };
}
