// TAP devices, opened by init (root) and handed to a nic-driver as an fd.
// Constants are Linux UAPI (<linux/if_tun.h>), checked on this kernel.
import { openSync, closeSync, constants } from 'node:fs';
import { ioctlPtr, ioctlInt, O_NONBLOCK } from './libc.ts';

export const TUNSETIFF = 0x400454ca;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;

/**
 * Create (or attach to) TAP device `ifname` with a 12-byte virtio_net_hdr on
 * every frame. With `offload` the kernel may hand over TSO/GSO super-frames
 * with partial checksums; without it, offloads are set to 0 explicitly (a TAP
 * keeps the flags of its last user, and stale flags break TCP silently).
 * Returns a non-blocking, close-on-exec fd.
 */
export function openTap(ifname: string, offload: boolean): number {
  if (Buffer.byteLength(ifname) > 15) throw new Error(`TAP name "${ifname}" is longer than 15 bytes`);
  const fd = openSync('/dev/net/tun', constants.O_RDWR | O_NONBLOCK);
  try {
    const ifr = new Uint8Array(40);
    ifr.set(Buffer.from(ifname, 'ascii'));
    new DataView(ifr.buffer).setUint16(16, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    ioctlPtr(fd, TUNSETIFF, ifr);
    const sz = new Uint8Array(4);
    new DataView(sz.buffer).setInt32(0, 12, true);
    ioctlPtr(fd, TUNSETVNETHDRSZ, sz);
    ioctlInt(fd, TUNSETOFFLOAD, offload ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN : 0);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
