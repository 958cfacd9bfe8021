// How init starts a component process with least privilege:
//   unshare --net --mount      an empty network namespace (only a down `lo`) and
//                              a private mount namespace
//   mount --bind -o ro ROOT    the project's code, read-only, at CODE_DIR, so the
//                              component can read its code wherever the project
//                              lives (even under a 0700 home directory)
//   setpriv                    its own non-root uid/gid, no groups, no
//                              capabilities (ambient, inheritable, bounding),
//                              no_new_privs
//   node --permission          file reads limited to the code (defence in depth:
//                              a component with FFI can step around it)
// and the component host installs a seccomp filter (src/core/seccomp.ts) that
// takes away execve/fork before any component code runs.
import { fileURLToPath } from 'node:url';
import { dirname, relative, resolve, isAbsolute } from 'node:path';
import { realpathSync } from 'node:fs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CODE_DIR = '/run/microgate/code';

export interface SandboxSpec {
  uid: number;
  maxOldSpaceMb: number;
  /** Script (absolute path inside ROOT) the sandboxed node runs. */
  script: string;
  /** Allow worker threads (the shared host of `thread` components). */
  allowWorker?: boolean;
}

function inCode(p: string): string {
  const real = realpathSync(p);
  const rel = relative(realpathSync(ROOT), real);
  if (rel.startsWith('..') || isAbsolute(rel)) return real;
  return `${CODE_DIR}/${rel}`;
}

/** The command and arguments that start `spec.script` sandboxed. Init must run as root. */
export function sandboxCommand(spec: SandboxSpec): { file: string; args: string[] } {
  const node = inCode(process.execPath);
  const script = inCode(spec.script);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const inner = [
    `mount --bind ${q(realpathSync(ROOT))} ${CODE_DIR}`,
    `mount -o remount,bind,ro ${CODE_DIR}`,
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
      '--allow-addons',
      ...(spec.allowWorker ? ['--allow-worker'] : []),
      '--disable-warning=ExperimentalWarning',
      '--disable-warning=SecurityWarning',
      `--max-old-space-size=${spec.maxOldSpaceMb}`,
      q(script),
    ].join(' '),
  ].join(' && ');
  return {
    file: 'unshare',
    args: ['--net', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', inner],
  };
}
