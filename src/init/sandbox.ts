// How init starts a component process with least privilege:
//   unshare --net --mount      an empty network namespace (only a down `lo`) and
//                              a private mount namespace
//   a new root (chroot)        a read-only tmpfs holding only the project's code
//                              at CODE_DIR (src, node_modules, package.json,
//                              read-only binds, so the component can read its
//                              code wherever the project lives, even in a 0700
//                              folder), the shared libraries node needs, four
//                              /dev nodes, its own procfs (hidepid=invisible) and
//                              the paths its grant names (sandbox-root.ts)
//   setpriv                    its own non-root uid/gid, no groups, no
//                              capabilities (ambient, inheritable, bounding),
//                              no_new_privs, and SIGKILL when init dies
//                              (pdeathsig: every program of the chain execs
//                              the next, so init is the parent; no component
//                              or service outlives init, however init ends)
//   perl -e EARLY_FILTER_PERL  a seccomp filter taking away io_uring, then exec
//                              (before node: libuv sets up a ring at start)
//   node --permission          file reads limited to the code (defence in depth:
//                              a component with FFI can step around it)
// and the component host installs a seccomp allow-list (src/sys/seccomp.ts)
// before any component code runs, and a second filter taking away every path
// lookup once its components are loaded. A service that serves on its host's
// network (the file gateway in the dmz namespace) uses the same sandbox with
// `keepNetwork`, its own read/write paths, `allowNet`, and the `service`
// seccomp profile.
import { fileURLToPath } from 'node:url';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { SANDBOX_ROOT, isFolder, rootLayout } from './sandbox-root.ts';
import { noIoUringProgram } from '../sys/seccomp.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CODE_DIR = '/run/microgate/code';

export interface SandboxSpec {
  uid: number;
  maxOldSpaceMb: number;
  /** Script (absolute path inside ROOT) the sandboxed node runs. */
  script: string;
  /** Allow worker threads (the shared host of `thread` components). */
  allowWorker?: boolean;
  /** A cgroup.procs file to join before node starts (memory limit). */
  cgroupProcs?: string;
  /**
   * Stay in the caller's network namespace instead of a new empty one: for a
   * service that serves on its host's network (the file gateway in the dmz
   * namespace, src/services/file-gateway/README.md). Default false.
   */
  keepNetwork?: boolean;
  /** Absolute paths node may read besides the code (Node permission model). */
  allowFsRead?: string[];
  /** Absolute paths node may write (Node permission model; default none). */
  allowFsWrite?: string[];
  /** Arguments after the script. */
  args?: string[];
  /** Allow network access under Node's permission model (--allow-net); with keepNetwork. */
  allowNet?: boolean;
}

function inCode(p: string): string {
  const real = realpathSync(p);
  const rel = relative(realpathSync(ROOT), real);
  if (rel.startsWith('..') || isAbsolute(rel)) return real;
  return `${CODE_DIR}/${rel}`;
}

/**
 * The code must be readable by an unprivileged uid (files o+r, folders o+x),
 * as it is after a clone or npm install with the usual umask 022. Returns a
 * problem to report, or undefined.
 */
export function checkCodeReadable(): string | undefined {
  for (const p of ['src/runtime/host.ts', 'src', 'node_modules/koffi/package.json', process.execPath]) {
    const full = p.startsWith('/') ? p : resolve(ROOT, p);
    const mode = statSync(full).mode;
    const need = statSync(full).isDirectory() ? 0o005 : 0o004;
    if ((mode & need) !== need) {
      return `${full} is not readable by other users (mode ${(mode & 0o777).toString(8)}); components run as unprivileged uids and must read the code: use umask 022 (chmod -R o+rX the project)`;
    }
  }
  return undefined;
}

/** One fstab(5) line; blanks and backslashes in paths escaped as octal. */
function fstabLine(src: string, dst: string, type: string, opts: string): string {
  const esc = (p: string): string => p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return `${esc(src)} ${esc(dst)} ${type} ${opts} 0 0`;
}

/**
 * The first seccomp filter, installed before node exists: libuv (1.52, in
 * Node 26) sets up an io_uring ring while node starts, before any JavaScript
 * runs, aborts when io_uring_enter is later refused, and ring operations pass
 * no seccomp filter. So a ~3 ms perl step (perl-base is essential on Debian,
 * and its `syscall` builtin needs no module) installs the program in
 * MG_SECCOMP_EARLY (hex, seccomp.ts noIoUringProgram: io_uring_* -> ENOSYS,
 * all else allowed) and execs chroot, setpriv and node, which inherit it; their
 * libuv then falls back to plain epoll. It runs as root, which may install a
 * filter without no_new_privs (setpriv sets that next).
 */
export const EARLY_FILTER_PERL =
  'if (($ENV{MG_NO_SECCOMP} // "") ne "1") { my $f = pack("H*", $ENV{MG_SECCOMP_EARLY}); '
  + 'syscall(317, 1, 0, pack("S x6 P", length($f) / 8, $f)) == 0 or die "microgate sandbox: seccomp: $!\n" } '
  + 'delete $ENV{MG_SECCOMP_EARLY}; exec { $ARGV[0] } @ARGV or die "microgate sandbox: exec $ARGV[0]: $!\n"';

/** koffi's native addons (their shared libraries go into the root). */
function koffiAddons(): string[] {
  const base = resolve(ROOT, 'node_modules/@koromix');
  const out: string[] = [];
  if (!existsSync(base)) return out;
  for (const pkg of readdirSync(base)) {
    if (!pkg.startsWith('koffi-linux-')) continue;
    for (const d of readdirSync(join(base, pkg))) {
      const f = join(base, pkg, d, 'koffi.node');
      if (existsSync(f)) out.push(f);
    }
  }
  return out;
}

let setprivPath: string | undefined;
function setpriv(): string {
  setprivPath ??= ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((p) => existsSync(p)) ?? '/usr/bin/setpriv';
  return setprivPath;
}

/** The command and arguments that start `spec.script` sandboxed. Init must run as root. */
export function sandboxCommand(spec: SandboxSpec): { file: string; args: string[] } {
  const node = inCode(process.execPath);
  const script = inCode(spec.script);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const root = realpathSync(ROOT);
  const R = SANDBOX_ROOT;
  const layout = rootLayout({
    node: realpathSync(process.execPath),
    codeRoot: root,
    addons: koffiAddons(),
    setpriv: setpriv(),
    read: spec.allowFsRead ?? [],
    write: spec.allowFsWrite ?? [],
    resolver: spec.keepNetwork === true,
  });
  // The code: binding the project folder itself would not do: it may be 0700
  // (a mktemp or home directory) and unreadable to the component's uid.
  const parts = ['src', 'node_modules'];
  const devs = ['null', 'zero', 'random', 'urandom'];
  // Every mount point first (one mkdir, one touch), then every mount in one
  // `mount -a` over a generated fstab: a handful of programs instead of one
  // per mount keeps a restart fast.
  const dirs = [
    ...layout.dirs,
    ...parts.map((p) => `${CODE_DIR}/${p}`),
    '/dev',
    '/proc',
    ...layout.binds.filter(([p]) => isFolder(p)).map(([p]) => p),
    ...layout.binds.filter(([p]) => !isFolder(p)).map(([p]) => dirname(p)),
  ];
  const files = [`${CODE_DIR}/package.json`, ...devs.map((d) => `/dev/${d}`), ...layout.binds.filter(([p]) => !isFolder(p)).map(([p]) => p)];
  const fstab = [
    ...[...parts, 'package.json'].map((p) => fstabLine(`${root}/${p}`, `${R}${CODE_DIR}/${p}`, 'none', 'bind,ro,nosuid,nodev')),
    ...devs.map((d) => fstabLine(`/dev/${d}`, `${R}/dev/${d}`, 'none', 'bind,nosuid,noexec')),
    fstabLine('proc', `${R}/proc`, 'proc', 'hidepid=invisible,nosuid,nodev,noexec'),
    ...layout.binds.map(([p, w]) => fstabLine(p, R + p, 'none', w ? 'bind,nosuid,nodev,noexec' : 'bind,ro,nosuid,nodev')),
  ];
  const FSTAB = `${R}/.fstab`;
  const inner = [
    ...(spec.cgroupProcs !== undefined ? [`echo $$ > ${q(spec.cgroupProcs)}`] : []),
    `mkdir -p ${R}`,
    `mount -t tmpfs -o mode=755,size=1m,nosuid microgate-root ${R}`,
    `mkdir -p ${[...new Set(dirs)].map((d) => q(R + d)).join(' ')}`,
    ...layout.links.map(([p, t]) => `ln -s ${q(t)} ${q(R + p)}`),
    `touch ${[...new Set(files)].map((f) => q(R + f)).join(' ')}`,
    `printf '%s\\n' ${fstab.map(q).join(' ')} > ${FSTAB}`,
    `mount -a -T ${FSTAB}`,
    `rm ${FSTAB}`,
    `mount -o remount,ro,nosuid ${R}`,
    [
      // perl (Debian's essential perl-base, ~3 ms) installs the no-io_uring filter and execs the rest.
      `MG_SECCOMP_EARLY=${noIoUringProgram()} exec perl -e ${q(EARLY_FILTER_PERL)} chroot ${R} ${q(setpriv())}`,
      `--reuid=${spec.uid}`,
      `--regid=${spec.uid}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--ambient-caps=-all',
      '--bounding-set=-all',
      '--pdeathsig=SIGKILL',
      '--',
      q(node),
      '--permission',
      `--allow-fs-read=${CODE_DIR}/`,
      ...(spec.allowFsRead ?? []).map((p) => q(`--allow-fs-read=${p}`)),
      ...(spec.allowFsWrite ?? []).map((p) => q(`--allow-fs-write=${p}`)),
      '--allow-addons',
      ...(spec.allowNet ? ['--allow-net'] : []),
      ...(spec.allowWorker ? ['--allow-worker'] : []),
      '--disable-warning=ExperimentalWarning',
      '--disable-warning=SecurityWarning',
      `--max-old-space-size=${spec.maxOldSpaceMb}`,
      q(script),
      ...(spec.args ?? []).map(q),
    ].join(' '),
  ].join(' && ');
  return {
    file: 'unshare',
    args: [...(spec.keepNetwork ? [] : ['--net']), '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', inner],
  };
}
