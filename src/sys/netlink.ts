// Three rtnetlink requests init makes on links, in the calling thread's network
// namespace: move a link into the namespace behind an fd (IFLA_NET_NS_FD; the
// `ip` of Debian 12 takes only names or PIDs, and the namespaces init makes for
// packet links have neither), set a link up or down, and read a link's index
// and flags by name (init's watch over packet links, src/init/link-watch.ts).
// Each request opens a NETLINK_ROUTE socket, sends one message, reads the
// kernel's answer and closes it; a refusal throws with the kernel's errno.
import { close, readBuf, socket, SOCK_CLOEXEC, SysError, writeBuf } from './libc.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const IFLA_IFNAME = 3;
const IFLA_NET_NS_FD = 28;
const IFF_UP = 1;
/** The driver (carrier) says the link is up: struct ifinfomsg flags, as `ip link` shows LOWER_UP. */
const IFF_LOWER_UP = 0x10000;
const ENODEV = 19;

/** One RTM_NEWLINK for link `ifindex`: flags/change as in struct ifinfomsg, and u32 attributes. */
function newLink(what: string, ifindex: number, flags: number, change: number, attrs: [type: number, value: number][]): void {
  const len = 16 + 16 + attrs.length * 8;
  const msg = new Uint8Array(len);
  const v = new DataView(msg.buffer);
  v.setUint32(0, len, true); // nlmsghdr.nlmsg_len
  v.setUint16(4, RTM_NEWLINK, true);
  v.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, true);
  v.setUint32(8, 1, true); // seq
  v.setUint32(12, 0, true); // pid: the kernel fills it in
  // struct ifinfomsg: family (AF_UNSPEC), pad, type, index, flags, change
  v.setInt32(20, ifindex, true);
  v.setUint32(24, flags, true);
  v.setUint32(28, change, true);
  attrs.forEach(([type, value], i) => {
    const at = 32 + i * 8;
    v.setUint16(at, 8, true);
    v.setUint16(at + 2, type, true);
    v.setUint32(at + 4, value, true);
  });
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const w = writeBuf(fd, msg);
    if (w !== len) throw new SysError(`netlink ${what}: send`, w < 0 ? -w : 5);
    const buf = new Uint8Array(4096);
    const n = readBuf(fd, buf);
    if (n < 0) throw new SysError(`netlink ${what}: receive`, -n);
    const r = new DataView(buf.buffer);
    if (n < 20 || r.getUint16(4, true) !== NLMSG_ERROR) throw new Error(`netlink ${what}: unexpected answer (${n} bytes, type ${n >= 6 ? r.getUint16(4, true) : '?'})`);
    const err = r.getInt32(16, true);
    if (err !== 0) throw new SysError(`netlink ${what}`, -err);
  } finally {
    close(fd);
  }
}

/** Move link `ifindex` (of the calling thread's namespace) into the network namespace behind `nsFd`. */
export function setLinkNetns(ifindex: number, nsFd: number): void {
  newLink(`move link ${ifindex} to another namespace`, ifindex, 0, 0, [[IFLA_NET_NS_FD, nsFd]]);
}

/** Set link `ifindex` (of the calling thread's namespace) up or down. */
export function setLinkUp(ifindex: number, up: boolean): void {
  newLink(`set link ${ifindex} ${up ? 'up' : 'down'}`, ifindex, up ? IFF_UP : 0, IFF_UP, []);
}

/** A link as the kernel reports it: its index, and whether it is set up and has a carrier. */
export interface LinkFlags {
  ifindex: number;
  up: boolean;
  lowerUp: boolean;
}

/** Link `ifname` of the calling thread's namespace (RTM_GETLINK by IFLA_IFNAME); undefined when there is none. */
export function getLink(ifname: string): LinkFlags | undefined {
  const name = new TextEncoder().encode(ifname);
  if (name.length === 0 || name.length > 15) throw new Error(`netlink: bad interface name ${JSON.stringify(ifname)}`);
  const attrLen = 4 + name.length + 1;
  const len = 32 + ((attrLen + 3) & ~3);
  const msg = new Uint8Array(len);
  const v = new DataView(msg.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, RTM_GETLINK, true);
  v.setUint16(6, NLM_F_REQUEST, true);
  v.setUint32(8, 1, true);
  v.setUint16(32, attrLen, true);
  v.setUint16(34, IFLA_IFNAME, true);
  msg.set(name, 36);
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const w = writeBuf(fd, msg);
    if (w !== len) throw new SysError(`netlink get link ${ifname}: send`, w < 0 ? -w : 5);
    const buf = new Uint8Array(16384);
    const n = readBuf(fd, buf);
    if (n < 0) throw new SysError(`netlink get link ${ifname}: receive`, -n);
    const r = new DataView(buf.buffer);
    const type = n >= 6 ? r.getUint16(4, true) : -1;
    if (type === NLMSG_ERROR && n >= 20) {
      const err = -r.getInt32(16, true);
      if (err === ENODEV) return undefined;
      throw new SysError(`netlink get link ${ifname}`, err);
    }
    if (type !== RTM_NEWLINK || n < 32) throw new Error(`netlink get link ${ifname}: unexpected answer (${n} bytes, type ${type})`);
    const flags = r.getUint32(24, true);
    return { ifindex: r.getInt32(20, true), up: (flags & IFF_UP) !== 0, lowerUp: (flags & IFF_LOWER_UP) !== 0 };
  } finally {
    close(fd);
  }
}
