// A `kind: packet` device, confined to its interface. An AF_PACKET socket can
// send on, and set promiscuous, any interface of the network namespace it was
// made in (sendto and setsockopt name the interface by index, and seccomp
// cannot look into a sockaddr), so its driver must not share a namespace with
// anything else. init therefore, before the driver starts:
//   1. checks the interface in its namespace (`netns`, or init's): it exists
//      and carries no address but link-local ones (the gateway owns it; the
//      move would drop them);
//   2. makes a network namespace for it alone (unshare, held by an fd: no
//      name under /run/netns, nothing else in it but a down lo);
//   3. moves the interface there (rtnetlink IFLA_NET_NS_FD) and sets it up;
//   4. opens the driver's AF_PACKET socket inside that namespace.
// On a clean stop init moves the interface back where it was and restores its
// up/down state. If init dies without stopping, the kernel frees the namespace
// once the driver's socket closes too: a physical interface then goes back to
// the *initial* network namespace (not to `netns`), down, renamed devN if its
// name is taken there; a virtual one (veth, ...) is deleted with its peer.
import { closeSync, openSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { ifNameToIndex } from '../sys/libc.ts';
import { inNetnsFd, netnsInterfaces, newNetns, openPacketSocket } from '../sys/packet.ts';
import { setLinkNetns, setLinkUp } from '../sys/netlink.ts';

export interface PacketLink {
  ifname: string;
  /** The namespace it came from (a name under /run/netns), undefined: init's own. */
  home: string | undefined;
  /** The driver's AF_PACKET socket (made in the link's own namespace). */
  fd: number;
  vnetHdrLen: number;
  /** The interfaces of the link's namespace (lo and the link, nothing else). */
  interfaces(): string[];
  /** Close the socket and move the interface back home (state restored); returns what went wrong, if anything. */
  release(): string | undefined;
}

interface IpLink {
  ifname: string;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope: string }[];
}

/** The interface as `ip -j addr` sees it in its home namespace. */
function describe(ifname: string, home: string | undefined): IpLink {
  const args = [...(home !== undefined ? ['-n', home] : []), '-j', 'addr', 'show', 'dev', ifname];
  let out: string;
  try {
    out = execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  } catch (e) {
    const err = (e as { stderr?: string }).stderr?.trim();
    throw new Error(`no interface "${ifname}"${home !== undefined ? ` in network namespace ${home}` : " in init's network namespace"}${err ? ` (${err})` : ''}`);
  }
  const links = JSON.parse(out) as IpLink[];
  if (links.length !== 1) throw new Error(`ip ${args.join(' ')}: expected one link, got ${links.length}`);
  return links[0];
}

/** Give `ifname` (in `home`, undefined: init's namespace) a network namespace of its own and open its driver's socket there. */
export function confinePacketLink(ifname: string, home: string | undefined, wantHdrLen: 10 | 12): PacketLink {
  const link = describe(ifname, home);
  const addrs = (link.addr_info ?? []).filter((a) => a.scope !== 'link');
  if (addrs.length > 0) {
    throw new Error(`interface "${ifname}" has the address${addrs.length > 1 ? 'es' : ''} ${addrs.map((a) => `${a.local}/${a.prefixlen}`).join(', ')}: `
      + 'a packet device must carry none (the gateway owns the link; init moves it into a namespace of its own, which would drop them)');
  }
  const wasUp = (link.flags ?? []).includes('UP');
  const homeFd = openSync(home !== undefined ? `/run/netns/${home}` : '/proc/thread-self/ns/net', 'r');
  let nsFd = -1;
  let moved = false;
  let sock = -1;
  let vnetHdrLen: number = wantHdrLen;
  try {
    nsFd = newNetns();
    inNetnsFd(homeFd, () => {
      const i = ifNameToIndex(ifname);
      if (i === 0) throw new Error(`interface "${ifname}" went away`);
      setLinkNetns(i, nsFd);
    });
    moved = true;
    inNetnsFd(nsFd, () => setLinkUp(ifNameToIndex(ifname), true));
    const ps = openPacketSocket(ifname, nsFd, wantHdrLen);
    sock = ps.fd;
    vnetHdrLen = ps.vnetHdrLen;
  } catch (e) {
    if (sock >= 0) closeSync(sock);
    if (moved) {
      try {
        moveHome(ifname, nsFd, homeFd, wasUp);
      } catch {
        // the namespace's end (below) returns or deletes it
      }
    }
    if (nsFd >= 0) closeSync(nsFd);
    closeSync(homeFd);
    throw e;
  }
  const fd = sock;
  let released = false;
  return {
    ifname,
    home,
    fd,
    vnetHdrLen,
    interfaces: () => netnsInterfaces(nsFd),
    release(): string | undefined {
      if (released) return undefined;
      released = true;
      closeSync(fd);
      let problem: string | undefined;
      try {
        moveHome(ifname, nsFd, homeFd, wasUp);
      } catch (e) {
        problem = `could not move interface "${ifname}" back to ${home !== undefined ? `network namespace ${home}` : "init's network namespace"}: ${(e as Error).message}`
          + ' (when its namespace ends, a physical interface goes to the initial namespace, a virtual one is deleted)';
      }
      closeSync(nsFd);
      closeSync(homeFd);
      return problem;
    },
  };
}

function moveHome(ifname: string, nsFd: number, homeFd: number, wasUp: boolean): void {
  inNetnsFd(nsFd, () => {
    const i = ifNameToIndex(ifname);
    if (i === 0) throw new Error(`interface "${ifname}" is no longer in its namespace`);
    setLinkNetns(i, homeFd);
  });
  if (wasUp) inNetnsFd(homeFd, () => setLinkUp(ifNameToIndex(ifname), true));
}
