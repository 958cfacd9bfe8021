// The privilege audit: what each running component process actually holds,
// read from /proc, held against what its config grants. Any excess is a
// violation (`microgate audit` then exits 1).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { CODE_DIR } from './sandbox.ts';

export interface AuditExpectation {
  unit: string;
  components: string[];
  pid: number;
  uid: number;
  taps: number;
  /** Link devices that are AF_PACKET sockets (they show as sockets). */
  packets: number;
  shmSessions: number;
  socketSessions: number;
  allowWorker: boolean;
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
  seccomp: number;
  netns: { own: boolean; interfaces: string[] };
  mntns: { own: boolean };
  permission: string[];
  fds: { fd: number; target: string }[];
  sessions: { shm: number; socket: number; tap: number };
  violations: string[];
}

function status(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** Interfaces of the network namespace a process is in (from its /proc/PID/net/dev). */
function interfaces(pid: number): string[] {
  return readFileSync(`/proc/${pid}/net/dev`, 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0].trim())
    .filter((n) => n !== '');
}

const ALLOWED_ANON = /^anon_inode:\[?(eventpoll|io_uring|eventfd)\]?$/;

export function auditUnit(x: AuditExpectation): AuditReport {
  const v: string[] = [];
  const st = status(x.pid);
  const uid = Number(st.get('Uid')?.split(/\s+/)[0]);
  const gid = Number(st.get('Gid')?.split(/\s+/)[0]);
  const groups = (st.get('Groups') ?? '').split(/\s+/).filter((g) => g !== '').map(Number);
  const capEff = st.get('CapEff') ?? '?';
  const capBnd = st.get('CapBnd') ?? '?';
  const noNewPrivs = st.get('NoNewPrivs') === '1';
  const seccomp = Number(st.get('Seccomp'));
  if (uid === 0) v.push('runs as root');
  if (uid !== x.uid) v.push(`uid ${uid}, config grants ${x.uid}`);
  if (gid !== x.uid) v.push(`gid ${gid}, expected ${x.uid}`);
  if (groups.length > 0) v.push(`supplementary groups ${groups.join(',')}`);
  if (!/^0+$/.test(capEff)) v.push(`effective capabilities ${capEff}`);
  if (!/^0+$/.test(capBnd)) v.push(`bounding capabilities ${capBnd}`);
  if (!noNewPrivs) v.push('no_new_privs is not set');
  if (seccomp !== 2) v.push(`seccomp mode ${seccomp}, expected 2 (filter)`);

  const ownNet = readlinkSync(`/proc/${x.pid}/ns/net`) !== readlinkSync('/proc/self/ns/net');
  const ifs = interfaces(x.pid);
  if (!ownNet) v.push("shares init's network namespace");
  if (ifs.some((i) => i !== 'lo')) v.push(`network interfaces ${ifs.join(', ')} (only lo expected)`);
  const ownMnt = readlinkSync(`/proc/${x.pid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt');
  if (!ownMnt) v.push("shares init's mount namespace");

  const argv = readFileSync(`/proc/${x.pid}/cmdline`, 'utf8').split('\0');
  const permission = argv.filter((a) => a === '--permission' || a.startsWith('--allow-'));
  if (!permission.includes('--permission')) v.push("Node's permission model is off");
  for (const p of permission) {
    if (p === '--permission' || p === '--allow-addons') continue;
    if (p === '--allow-worker' && x.allowWorker) continue;
    if (p === `--allow-fs-read=${CODE_DIR}/`) continue;
    v.push(`permission grant ${p} exceeds the config`);
  }

  const fds: { fd: number; target: string }[] = [];
  let sockets = 0;
  let taps = 0;
  let memfds = 0;
  for (const name of readdirSync(`/proc/${x.pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${x.pid}/fd/${name}`);
    } catch {
      continue; // closed meanwhile
    }
    const fd = Number(name);
    fds.push({ fd, target });
    if (target === '/dev/null' || target.startsWith('pipe:') || ALLOWED_ANON.test(target)) continue;
    if (target.startsWith('socket:')) sockets++;
    else if (target === '/dev/net/tun') taps++;
    else if (target.startsWith('/memfd:microgate-session')) memfds++;
    else v.push(`fd ${fd} -> ${target}: not granted`);
  }
  fds.sort((a, b) => a.fd - b.fd);
  // stdout, stderr and the control channel are sockets; each socket session adds one.
  const grantedSockets = 3 + x.socketSessions + x.packets;
  if (sockets > grantedSockets) v.push(`${sockets} sockets open, the config grants ${grantedSockets} (stdio, control, socket sessions, packet devices)`);
  if (taps > x.taps) v.push(`${taps} TAP fds open, the config grants ${x.taps}`);
  if (memfds > x.shmSessions) v.push(`${memfds} session memfds open, the config grants ${x.shmSessions}`);
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
    seccomp,
    netns: { own: ownNet, interfaces: ifs },
    mntns: { own: ownMnt },
    permission,
    fds,
    sessions: { shm: memfds, socket: Math.max(0, sockets - 3 - x.packets), tap: taps },
    violations: v,
  };
}
