// The privilege audit of a supervised service (config `services`): what its
// process holds, read from /proc, against what its config grants: its uid and
// gid (no groups, no capabilities), no_new_privs, a seccomp filter, the
// configured network namespace (not init's), a mount namespace of its own,
// exactly the permission-model grants of its config, and no fd beyond stdio,
// its own listening and accepted sockets, connections to its storage, and
// files under its granted paths. Anything else is a violation.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ServiceEndpoint } from './service-kind.ts';
import { CODE_DIR } from './sandbox.ts';
import { SANDBOX_ROOT } from './sandbox-root.ts';
import { ALLOWED_ANON, auditIdentity } from './audit.ts';
import { netInterfaces, openFds, permissionFlags } from './procfs.ts';

export interface ServiceAuditExpectation {
  service: string;
  kind: string;
  pid: number;
  uid: number;
  /** The configured network namespace (a name under /run/netns). */
  netns: string;
  grants: { read: string[]; write: string[]; net: boolean };
  listen: ServiceEndpoint[];
  upstream: ServiceEndpoint[];
}

export interface ServiceAuditReport {
  service: string;
  kind: string;
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
  /** name: the configured namespace; configured: the process is in it; interfaces: of the namespace it is in. */
  netns: { name: string; configured: boolean; interfaces: string[] };
  mntns: { own: boolean };
  /** The top-level entries of its root filesystem. */
  root: string[];
  seccompFilters: number;
  permission: string[];
  fds: { fd: number; target: string }[];
  sockets: { listening: number; accepted: number; upstream: number; stdio: number };
  violations: string[];
}

/** TCP state LISTEN in /proc/net/tcp. */
const TCP_LISTEN = '0A';

/** "0280A8C0:1F90" (little-endian words) -> { host: '192.168.128.2', port: 8080 }; IPv4-mapped IPv6 as IPv4. */
export function decodeProcAddress(s: string): ServiceEndpoint {
  const [hex, portHex] = s.split(':');
  const port = parseInt(portHex, 16);
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return { host: bytes.join('.'), port };
  const mapped = bytes.slice(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { host: bytes.slice(12).join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return { host: canonical(groups.join(':')), port };
}

/** One spelling per address: IPv6 compressed and lower-case (as the URL parser writes it), IPv4-mapped as IPv4. */
function canonical(host: string): string {
  if (isIP(host) !== 6) return host;
  const h = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (m !== null) return m[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (hex === null) return h;
  const a = parseInt(hex[1], 16);
  const b = parseInt(hex[2], 16);
  return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
}

interface TcpSocket { local: ServiceEndpoint; remote: ServiceEndpoint; listening: boolean }

/** TCP sockets of the network namespace `pid` is in, by inode. */
function tcpSockets(pid: number): Map<number, TcpSocket> {
  const out = new Map<number, TcpSocket>();
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const inode = Number(f[9]);
      if (inode === 0) continue;
      out.set(inode, { local: decodeProcAddress(f[1]), remote: decodeProcAddress(f[2]), listening: f[3] === TCP_LISTEN });
    }
  }
  return out;
}

/** Inodes of the Unix sockets of init's own network namespace (the service's stdio, made by init). */
function initUnixSockets(): Set<number> {
  const out = new Set<number>();
  for (const line of readFileSync('/proc/self/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 7) out.add(Number(f[6]));
  }
  return out;
}

function same(a: string, b: string): boolean {
  return canonical(a) === canonical(b);
}

/** Whether `local` is one of the listen addresses (a wildcard listens on every address). */
function isListenAddress(local: ServiceEndpoint, listen: ServiceEndpoint[]): boolean {
  return listen.some((l) => l.port === local.port && (l.host === '0.0.0.0' || l.host === '::' || same(l.host, local.host)));
}

/** Whether `remote` is an upstream (a host name matches any address on its port). */
function isUpstream(remote: ServiceEndpoint, upstream: ServiceEndpoint[]): boolean {
  return upstream.some((u) => u.port === remote.port && (isIP(u.host) === 0 || same(u.host, remote.host)));
}

/** A file under a granted path: a folder grant ends in "/", a file grant is the file itself. */
function granted(path: string, grants: string[]): boolean {
  return grants.some((g) => (g.endsWith('/') ? path.startsWith(g) || `${path}/` === g : path === g));
}

/** The inode of the namespace behind a /proc/PID/ns link ("net:[4026532]") or a bind-mounted namespace file. */
function nsInode(link: string): number {
  return Number(/\[(\d+)\]/.exec(link)?.[1] ?? NaN);
}

export function auditService(x: ServiceAuditExpectation): ServiceAuditReport {
  const v: string[] = [];
  // No io_uring (sandbox.ts) and the `service` allow-list (main.ts); its root holds its grants.
  const id = auditIdentity(x.pid, x.uid, 2, [...x.grants.read, ...x.grants.write], v);
  const { uid, gid, groups, capEff, capBnd, noNewPrivs, seccomp, dumpable } = id;

  // The network namespace: the configured one (the inode of /run/netns/NAME), never init's.
  const mine = nsInode(readlinkSync(`/proc/${x.pid}/ns/net`));
  let want = NaN;
  try {
    want = statSync(`/run/netns/${x.netns}`).ino;
  } catch {
    v.push(`the configured network namespace ${x.netns} does not exist`);
  }
  const configured = mine === want;
  if (mine === nsInode(readlinkSync('/proc/self/ns/net'))) v.push("shares init's network namespace");
  else if (!configured && !Number.isNaN(want)) v.push(`in another network namespace than the configured ${x.netns}`);
  const interfaces = netInterfaces(x.pid);

  // Node's permission model: exactly the grants of its config (and reading its code, and addons for the seccomp filter).
  const permission = permissionFlags(x.pid);
  const expected = new Set([
    '--permission', '--allow-addons', `--allow-fs-read=${CODE_DIR}/`,
    ...x.grants.read.map((p) => `--allow-fs-read=${p}`),
    ...x.grants.write.map((p) => `--allow-fs-write=${p}`),
    ...(x.grants.net ? ['--allow-net'] : []),
  ]);
  if (!permission.includes('--permission')) v.push("Node's permission model is off");
  for (const p of permission) if (!expected.has(p)) v.push(`permission grant ${p} exceeds the config`);
  for (const p of expected) if (p !== '--permission' && !permission.includes(p)) v.push(`permission grant ${p} of the config is missing (the grants must be exactly the config's)`);

  // Open files: stdio, its own sockets, files under its grants.
  const fds = openFds(x.pid);
  const sockets = { listening: 0, accepted: 0, upstream: 0, stdio: 0 };
  const tcp = tcpSockets(x.pid);
  const unix = initUnixSockets();
  const paths = [`${CODE_DIR}/`, ...x.grants.read, ...x.grants.write];
  for (const { fd, target } of fds) {
    // A file in its own root (sandbox-root.ts) shows with that root's prefix.
    const path = target.startsWith(`${SANDBOX_ROOT}/`) ? target.slice(SANDBOX_ROOT.length) : target;
    if (path === '/dev/null' || target.startsWith('pipe:') || ALLOWED_ANON.test(target)) continue;
    const sock = /^socket:\[(\d+)\]$/.exec(target);
    if (sock !== null) {
      const inode = Number(sock[1]);
      const t = tcp.get(inode);
      if (t !== undefined && isListenAddress(t.local, x.listen)) {
        if (t.listening) sockets.listening++;
        else sockets.accepted++;
      } else if (t !== undefined && !t.listening && isUpstream(t.remote, x.upstream)) {
        sockets.upstream++;
      } else if (t === undefined && unix.has(inode) && fd <= 2) {
        sockets.stdio++;
      } else if (t !== undefined) {
        v.push(`fd ${fd} -> TCP ${t.listening ? 'listening on' : 'from'} ${t.local.host}:${t.local.port}${t.listening ? '' : ` to ${t.remote.host}:${t.remote.port}`}: neither its listeners nor its storage`);
      } else {
        v.push(`fd ${fd} -> ${target}: not a socket of its listeners, its storage or its stdio`);
      }
      continue;
    }
    if (path.startsWith('/') && granted(path, paths)) continue;
    v.push(`fd ${fd} -> ${target}: not under a granted path`);
  }
  return {
    service: x.service,
    kind: x.kind,
    pid: x.pid,
    uid,
    gid,
    groups,
    capEff,
    capBnd,
    noNewPrivs,
    dumpable,
    seccomp,
    netns: { name: x.netns, configured, interfaces },
    mntns: id.mntns,
    root: id.root,
    seccompFilters: id.seccompFilters,
    permission,
    fds,
    sockets,
    violations: v,
  };
}
