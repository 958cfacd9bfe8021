// A `kind: packet` device, confined to its interface. An AF_PACKET socket can
// send on, and set promiscuous, any interface of the network namespace it was
// made in (sendto and setsockopt name the interface by index, and seccomp
// cannot look into a sockaddr), so its driver must not share a namespace with
// anything else. init therefore, before the driver starts:
//   1. checks the interface in its namespace (`netns`, or init's): it exists
//      and carries no address but link-local ones (the gateway owns it; the
//      move would drop them: refused, or with `host-addresses: warn` a
//      warning); a port that is down, or where the host would autoconfigure
//      IPv6, gets a warning naming it and what to do (docs/DEPLOY.md);
//   2. makes a network namespace for it alone (unshare, held by an fd: no
//      name under /run/netns, nothing else in it but a down lo), where IPv6
//      is off by default: the kernel itself sends nothing on the port (no
//      link-local address, router solicitation or DAD) and answers nothing;
//   3. moves the interface there (rtnetlink IFLA_NET_NS_FD) and sets it up;
//   4. opens the driver's AF_PACKET socket inside that namespace.
// While it runs, init watches the link (link-watch.ts: probe() here); when the
// interface was deleted and one of that name is back home, reattach() repeats
// steps 1, 3 and 4 into the same namespace and returns the new socket.
// On a clean stop init moves the interface back where it was and restores its
// up/down state. If init dies without stopping, the kernel frees the namespace
// once the driver's socket closes too: a physical interface then goes back to
// the *initial* network namespace (not to `netns`), down, renamed devN if its
// name is taken there; a virtual one (veth, ...) is deleted with its peer.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { ifNameToIndex } from '../sys/libc.ts';
import { inNetnsFd, netnsInterfaces, newNetns, openPacketSocket } from '../sys/packet.ts';
import { getLink, setLinkNetns, setLinkUp, type LinkFlags } from '../sys/netlink.ts';

export interface PacketLink {
  ifname: string;
  /** The namespace it came from (a name under /run/netns), undefined: init's own. */
  home: string | undefined;
  /** The driver's AF_PACKET socket (made in the link's own namespace); a new one after reattach(). */
  readonly fd: number;
  vnetHdrLen: number;
  /** The interfaces of the link's namespace (lo and the link, nothing else). */
  interfaces(): string[];
  /** The link in its own namespace now; undefined: it is gone (deleted, e.g. with its veth peer). */
  probe(): LinkFlags | undefined;
  /** Whether an interface of its name is in its home namespace (recreated after it was deleted). */
  backHome(): boolean;
  /**
   * Confine the interface of its name that is back home (checked as at the
   * start; its warnings go to `warn`) into the link's namespace, set it up and
   * open a new socket there; returns the old socket, which the caller closes
   * once the driver holding it has ended. Throws (nothing moved) when it is
   * refused.
   */
  reattach(warn: (line: string) => void): number;
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

export interface PacketLinkOptions {
  /** A port with host addresses: refuse to attach (default), or warn and attach (the move drops them). */
  hostAddresses: 'warn' | 'refuse';
  /** Where warnings go (init's log). */
  warn: (line: string) => void;
}

/** The interface's IPv6 autoconfiguration settings in `home` (the host's, for when it goes back): what is on, or undefined. */
function autoconf(ifname: string, homeFd: number): string | undefined {
  const read = (key: string): string | undefined => {
    try {
      return readFileSync(`/proc/sys/net/ipv6/conf/${ifname}/${key}`, 'utf8').trim();
    } catch {
      return undefined; // no IPv6 in that kernel or namespace
    }
  };
  const v = inNetnsFd(homeFd, () => ({ disabled: read('disable_ipv6'), acceptRa: read('accept_ra'), autoconf: read('autoconf') }));
  if (v.disabled === undefined || v.disabled !== '0') return undefined;
  const on = [v.acceptRa !== undefined && v.acceptRa !== '0' ? `accept_ra=${v.acceptRa}` : '', v.autoconf !== undefined && v.autoconf !== '0' ? `autoconf=${v.autoconf}` : ''].filter((x) => x !== '');
  return on.length > 0 ? on.join(', ') : undefined;
}

/**
 * Check the interface in its home namespace before it moves: host addresses
 * (refused, or a warning), down, IPv6 autoconfiguration on (warnings). Returns
 * whether it was up.
 */
function inspect(ifname: string, home: string | undefined, homeFd: number, opts: PacketLinkOptions): boolean {
  const link = describe(ifname, home);
  const where = home !== undefined ? `network namespace ${home}` : "init's network namespace";
  const addrs = (link.addr_info ?? []).filter((a) => a.scope !== 'link');
  if (addrs.length > 0) {
    const list = `${addrs.length > 1 ? 'es' : ''} ${addrs.map((a) => `${a.local}/${a.prefixlen}`).join(', ')}`;
    if (opts.hostAddresses === 'refuse') {
      throw new Error(`interface "${ifname}" has the address${list}: a packet device must carry none (the gateway owns the link; init moves it into a namespace of its own, which would drop them); `
        + 'remove them from the host\'s network configuration (docs/DEPLOY.md, "Preparing the host"), or set host-addresses: warn on the device to have them dropped');
    }
    opts.warn(`warning: interface "${ifname}" in ${where} has the host address${list}: it is dropped when init moves the interface into the gateway's namespace, and not put back at stop; `
      + 'remove it from the host\'s network configuration (docs/DEPLOY.md, "Preparing the host")');
  }
  const wasUp = (link.flags ?? []).includes('UP');
  if (!wasUp) {
    opts.warn(`warning: interface "${ifname}" in ${where} is down: init sets it up in the gateway's namespace (and down again at stop); check that it is the port you meant and that its cable is in`);
  }
  const ac = autoconf(ifname, homeFd);
  if (ac !== undefined) {
    opts.warn(`warning: interface "${ifname}" in ${where} has IPv6 autoconfiguration on (${ac}): the gateway turns IPv6 off on it while it runs, but the host would configure it again when it gets it back; `
      + `set net.ipv6.conf.${ifname}.accept_ra=0 and autoconf=0 (or disable_ipv6=1) in the host's configuration (docs/DEPLOY.md, "Preparing the host")`);
  }
  return wasUp;
}

/** In the link's own namespace: IPv6 off for every interface that arrives (the kernel then sends and answers nothing on the port). */
function quietNetns(nsFd: number): void {
  inNetnsFd(nsFd, () => {
    for (const [key, value] of [['disable_ipv6', '1'], ['accept_ra', '0'], ['autoconf', '0']]) {
      try {
        writeFileSync(`/proc/sys/net/ipv6/conf/default/${key}`, value);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // ENOENT: a kernel without IPv6, nothing to turn off
      }
    }
  });
}

/** Move `ifname` from home into the link's namespace, IPv6 off, set it up, open its socket there. */
function moveIn(ifname: string, homeFd: number, nsFd: number, wantHdrLen: 10 | 12): { fd: number; vnetHdrLen: number } {
  inNetnsFd(homeFd, () => {
    const i = ifNameToIndex(ifname);
    if (i === 0) throw new Error(`interface "${ifname}" went away`);
    setLinkNetns(i, nsFd);
  });
  try {
    inNetnsFd(nsFd, () => {
      try {
        writeFileSync(`/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, '1');
      } catch {
        // no IPv6 in this kernel: nothing to turn off
      }
      setLinkUp(ifNameToIndex(ifname), true);
    });
    return openPacketSocket(ifname, nsFd, wantHdrLen);
  } catch (e) {
    (e as { moved?: boolean }).moved = true;
    throw e;
  }
}

/** Give `ifname` (in `home`, undefined: init's namespace) a network namespace of its own and open its driver's socket there. */
export function confinePacketLink(ifname: string, home: string | undefined, wantHdrLen: 10 | 12, opts: PacketLinkOptions): PacketLink {
  const homeFd = openSync(home !== undefined ? `/run/netns/${home}` : '/proc/thread-self/ns/net', 'r');
  let wasUp: boolean;
  try {
    wasUp = inspect(ifname, home, homeFd, opts);
  } catch (e) {
    closeSync(homeFd);
    throw e;
  }
  let nsFd = -1;
  let sock = -1;
  let vnetHdrLen: number = wantHdrLen;
  try {
    nsFd = newNetns();
    quietNetns(nsFd);
    const ps = moveIn(ifname, homeFd, nsFd, wantHdrLen);
    sock = ps.fd;
    vnetHdrLen = ps.vnetHdrLen;
  } catch (e) {
    if ((e as { moved?: boolean }).moved === true) {
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
  let fd = sock;
  let released = false;
  return {
    ifname,
    home,
    get fd() {
      return fd;
    },
    vnetHdrLen,
    interfaces: () => netnsInterfaces(nsFd),
    probe: () => inNetnsFd(nsFd, () => getLink(ifname)),
    backHome: () => inNetnsFd(homeFd, () => getLink(ifname)) !== undefined,
    reattach(warn: (line: string) => void): number {
      if (released) throw new Error('the link was released');
      wasUp = inspect(ifname, home, homeFd, { ...opts, warn });
      let ps: { fd: number; vnetHdrLen: number };
      try {
        ps = moveIn(ifname, homeFd, nsFd, wantHdrLen);
      } catch (e) {
        if ((e as { moved?: boolean }).moved === true) {
          try {
            moveHome(ifname, nsFd, homeFd, wasUp);
          } catch {
            // it stays in the link's namespace, degraded; release() tries again
          }
        }
        throw e;
      }
      if (ps.vnetHdrLen !== vnetHdrLen) {
        closeSync(ps.fd);
        moveHome(ifname, nsFd, homeFd, wasUp);
        throw new Error(`the new socket has ${ps.vnetHdrLen}-byte virtio-net headers, the driver was started with ${vnetHdrLen}`);
      }
      const old = fd;
      fd = ps.fd;
      return old;
    },
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
