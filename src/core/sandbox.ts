// How init starts a component process with least privilege:
//   unshare --net --mount      an empty network namespace (only a down `lo`) and
//                              a private mount namespace
//   tmpfs at CODE_DIR with     the project's code (src, node_modules,
//   read-only binds            package.json), read-only, so the component can
//                              read its code wherever the project lives (even
//                              in a 0700 folder) and nothing else of it
//   setpriv                    its own non-root uid/gid, no groups, no
//                              capabilities (ambient, inheritable, bounding),
//                              no_new_privs
//   node --permission          file reads limited to the code (defence in depth:
//                              a component with FFI can step around it)
// and the component host installs a seccomp filter (src/core/seccomp.ts) that
// takes away execve/fork before any component code runs. A service that serves
// on its host's network (the file gateway in the dmz namespace) uses the same
// sandbox with `keepNetwork`, its own read/write paths and `allowNet`.
import { fileURLToPath } from 'node:url';
import { dirname, relative, resolve, isAbsolute } from 'node:path';
import { realpathSync, statSync } from 'node:fs';

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
   * namespace, src/components/file-gateway/README.md). Default false.
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
  for (const p of ['src/core/host.ts', 'src', 'node_modules/koffi/package.json', process.execPath]) {
    const full = p.startsWith('/') ? p : resolve(ROOT, p);
    const mode = statSync(full).mode;
    const need = statSync(full).isDirectory() ? 0o005 : 0o004;
    if ((mode & need) !== need) {
      return `${full} is not readable by other users (mode ${(mode & 0o777).toString(8)}); components run as unprivileged uids and must read the code: use umask 022 (chmod -R o+rX the project)`;
    }
  }
  return undefined;
}

/** The command and arguments that start `spec.script` sandboxed. Init must run as root. */
export function sandboxCommand(spec: SandboxSpec): { file: string; args: string[] } {
  const node = inCode(process.execPath);
  const script = inCode(spec.script);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const root = realpathSync(ROOT);
  // A private tmpfs at CODE_DIR holding read-only binds of exactly what the
  // component needs. Binding the project folder itself would not do: it may
  // be 0700 (a mktemp or home directory) and unreadable to the component's uid.
  const parts = ['src', 'node_modules'];
  const inner = [
    ...(spec.cgroupProcs !== undefined ? [`echo $$ > ${q(spec.cgroupProcs)}`] : []),
    `mount -t tmpfs -o mode=755,size=64k microgate-code ${CODE_DIR}`,
    `mkdir ${parts.map((p) => `${CODE_DIR}/${p}`).join(' ')}`,
    `touch ${CODE_DIR}/package.json`,
    ...[...parts, 'package.json'].map((p) => `mount --bind ${q(`${root}/${p}`)} ${CODE_DIR}/${p} && mount -o remount,bind,ro ${CODE_DIR}/${p}`),
    `mount -o remount,ro ${CODE_DIR}`,
    `cd /`,
    [
      'exec setpriv',
      `--reuid=${spec.uid}`,
      `--regid=${spec.uid}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--ambient-caps=-all',
      '--bounding-set=-all',
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
