// The privilege audit: what each running component process actually holds,
// read from /proc, held against what its config grants. Any excess is a
// violation (`microgate audit` then exits 1).
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { CODE_DIR } from './sandbox.ts';
import { SANDBOX_ROOT } from './sandbox-root.ts';
import { netInterfaces, openFds, permissionFlags } from './procfs.ts';

export interface AuditExpectation {
  unit: string;
  components: string[];
  pid: number;
  uid: number;
  taps: number;
  /** Link devices that are AF_PACKET sockets (they show as sockets). */
  packets: number;
  /** Each packet device: its interface and what init finds in the network namespace its socket lives in. */
  links?: PacketLinkView[];
  shmSessions: number;
  socketSessions: number;
  allowWorker: boolean;
}

/** A packet device as the audit sees it: the namespace of its socket must hold only lo and its interface. */
export interface PacketLinkView {
  device: string;
  ifname: string;
  /** The interfaces of the link's own network namespace. */
  netnsInterfaces: string[];
}

export interface AuditReport {
  unit: string;
  components: string[];
  pid: number;
  uid: number;
  gid: number;
  groups: number[];
  capEff: string;
  capBnd: string;
  noNewPrivs: boolean;
  /** 0: not dumpable (PR_SET_DUMPABLE 0), as required. */
  dumpable: number;
  seccomp: number;
  netns: { own: boolean; interfaces: string[] };
  mntns: { own: boolean };
  /** The top-level entries of its root filesystem (its own tmpfs, not init's /). */
  root: string[];
  /** Seccomp filters installed (3 once its components are loaded: no io_uring, the allow-list, no path lookups). */
  seccompFilters: number;
  permission: string[];
  fds: { fd: number; target: string }[];
  sessions: { shm: number; socket: number; tap: number };
  /** Its packet devices and their namespaces. */
  links: PacketLinkView[];
  violations: string[];
  /** The unit's control channel (filled in by init): processes killed for protocol violations, the last reason. */
  channel?: { violations: number; lastViolation: string };
}

export function status(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}


/** What a component's root holds (sandbox-root.ts): code under run/, libraries under usr/ (lib, lib64 link there), etc/ld.so.cache, dev/, proc/. */
const ROOT_ENTRIES = new Set(['dev', 'etc', 'lib', 'lib64', 'proc', 'run', 'usr', 'bin', 'sbin']);

function rootEntries(pid: number): { sameAsInit: boolean; entries: string[] } {
  const a = statSync(`/proc/${pid}/root/`);
  const b = statSync('/');
  return { sameAsInit: a.dev === b.dev && a.ino === b.ino, entries: readdirSync(`/proc/${pid}/root/`).sort() };
}

/** Anonymous inodes any sandboxed process may hold: epoll and eventfd, no io_uring (the sandbox's first filter keeps libuv off it). */
export const ALLOWED_ANON = /^anon_inode:\[?(eventpoll|eventfd)\]?$/;

/** What every sandboxed process is checked for, component or service: identity, privileges, seccomp, its own root. */
export interface SandboxIdentity {
  uid: number;
  gid: number;
  groups: number[];
  capEff: string;
  capBnd: string;
  noNewPrivs: boolean;
  seccomp: number;
  seccompFilters: number;
  /** PR_GET_DUMPABLE as seen from outside (dumpable()): 0 expected. */
  dumpable: number;
  mntns: { own: boolean };
  /** The top-level entries of its root filesystem (its own tmpfs, not init's /). */
  root: string[];
}

/**
 * Whether process `pid` (not root) is dumpable, read from outside: the kernel
 * makes the files under /proc/PID root's when the process is not dumpable
 * (task_dump_owner; the /proc/PID folder itself keeps its first owner), and
 * its own uid's otherwise. 1 dumpable, 0 not;
 * for a root process it cannot tell and says 1 (a component never runs as root).
 */
export function dumpable(pid: number, uid: number): number {
  const owner = statSync(`/proc/${pid}/status`).uid;
  return owner === 0 && uid !== 0 ? 0 : 1;
}

/**
 * Read a sandboxed process's identity from /proc and hold it against its
 * uid; `minFilters` seccomp filters, and a root holding nothing beyond the
 * sandbox's entries and the top folders of `grants`. Violations go to `v`.
 */
export function auditIdentity(pid: number, uid: number, minFilters: number, grants: string[], v: string[]): SandboxIdentity {
  const st = status(pid);
  const id: SandboxIdentity = {
    uid: Number(st.get('Uid')?.split(/\s+/)[0]),
    gid: Number(st.get('Gid')?.split(/\s+/)[0]),
    groups: (st.get('Groups') ?? '').split(/\s+/).filter((g) => g !== '').map(Number),
    capEff: st.get('CapEff') ?? '?',
    capBnd: st.get('CapBnd') ?? '?',
    noNewPrivs: st.get('NoNewPrivs') === '1',
    seccomp: Number(st.get('Seccomp')),
    seccompFilters: Number(st.get('Seccomp_filters') ?? NaN),
    dumpable: 1,
    mntns: { own: readlinkSync(`/proc/${pid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt') },
    root: [],
  };
  if (id.uid === 0) v.push('runs as root');
  if (id.uid !== uid) v.push(`uid ${id.uid}, config grants ${uid}`);
  if (id.gid !== uid) v.push(`gid ${id.gid}, expected ${uid}`);
  if (id.groups.length > 0) v.push(`supplementary groups ${id.groups.join(',')}`);
  if (!/^0+$/.test(id.capEff)) v.push(`effective capabilities ${id.capEff}`);
  if (!/^0+$/.test(id.capBnd)) v.push(`bounding capabilities ${id.capBnd}`);
  if (!id.noNewPrivs) v.push('no_new_privs is not set');
  id.dumpable = dumpable(pid, id.uid);
  if (id.dumpable !== 0) v.push('dumpable (PR_SET_DUMPABLE is not 0): a process of its uid could read its memory through /proc/PID/mem');
  if (id.seccomp !== 2) v.push(`seccomp mode ${id.seccomp}, expected 2 (filter)`);
  else if (!(id.seccompFilters >= minFilters)) v.push(`${id.seccompFilters} seccomp filter(s), expected ${minFilters}`);
  if (!id.mntns.own) v.push("shares init's mount namespace");
  const root = rootEntries(pid);
  id.root = root.entries;
  if (root.sameAsInit) v.push("sees init's root filesystem");
  const allowed = new Set([...ROOT_ENTRIES, ...grants.map((g) => g.split('/').filter((x) => x !== '')[0] ?? '')]);
  const extra = root.entries.filter((e) => !allowed.has(e));
  if (extra.length > 0) v.push(`root filesystem holds ${extra.join(', ')} beyond the sandbox's`);
  return id;
}

export function auditUnit(x: AuditExpectation): AuditReport {
  const v: string[] = [];
  // No io_uring, the allow-list and, once loaded, no path lookups (seccomp.ts).
  const id = auditIdentity(x.pid, x.uid, 3, [], v);
  const { uid, gid, groups, capEff, capBnd, noNewPrivs, seccomp, dumpable: dump } = id;

  const ownNet = readlinkSync(`/proc/${x.pid}/ns/net`) !== readlinkSync('/proc/self/ns/net');
  const ifs = netInterfaces(x.pid);
  if (!ownNet) v.push("shares init's network namespace");
  if (ifs.some((i) => i !== 'lo')) v.push(`network interfaces ${ifs.join(', ')} (only lo expected)`);


  const permission = permissionFlags(x.pid);
  if (!permission.includes('--permission')) v.push("Node's permission model is off");
  for (const p of permission) {
    if (p === '--permission' || p === '--allow-addons') continue;
    if (p === '--allow-worker' && x.allowWorker) continue;
    if (p === `--allow-fs-read=${CODE_DIR}/`) continue;
    v.push(`permission grant ${p} exceeds the config`);
  }

  const fds = openFds(x.pid);
  let sockets = 0;
  let taps = 0;
  let memfds = 0;
  for (const { fd, target } of fds) {
    if (target === '/dev/null' || target === `${SANDBOX_ROOT}/dev/null` || target.startsWith('pipe:') || ALLOWED_ANON.test(target)) continue;
    if (target.startsWith('socket:')) sockets++;
    else if (target === '/dev/net/tun') taps++;
    else if (target.startsWith('/memfd:microgate-session')) memfds++;
    else v.push(`fd ${fd} -> ${target}: not granted`);
  }
  // stdout, stderr and the control channel are sockets; each socket session adds one.
  const grantedSockets = 3 + x.socketSessions + x.packets;
  if (sockets > grantedSockets) v.push(`${sockets} sockets open, the config grants ${grantedSockets} (stdio, control, socket sessions, packet devices)`);
  if (taps > x.taps) v.push(`${taps} TAP fds open, the config grants ${x.taps}`);
  if (memfds > x.shmSessions) v.push(`${memfds} session memfds open, the config grants ${x.shmSessions}`);
  for (const l of x.links ?? []) {
    const extra = l.netnsInterfaces.filter((i) => i !== 'lo' && i !== l.ifname);
    if (extra.length > 0) v.push(`packet device ${l.device}: its socket's network namespace holds ${extra.join(', ')} besides ${l.ifname}: the driver could send there`);
    if (!l.netnsInterfaces.includes(l.ifname)) v.push(`packet device ${l.device}: ${l.ifname} is not in its socket's network namespace`);
  }
  return {
    unit: x.unit,
    components: x.components,
    pid: x.pid,
    uid,
    gid,
    groups,
    capEff,
    capBnd,
    noNewPrivs,
    dumpable: dump,
    seccomp,
    netns: { own: ownNet, interfaces: ifs },
    mntns: id.mntns,
    root: id.root,
    seccompFilters: id.seccompFilters,
    permission,
    fds,
    sessions: { shm: memfds, socket: Math.max(0, sockets - 3 - x.packets), tap: taps },
    links: x.links ?? [],
    violations: v,
  };
}
