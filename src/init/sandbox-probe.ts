// The sandbox probe: runs inside exactly the sandbox of a component (or of the
// file gateway service), installs the same seccomp filters the component host
// does, and then tries what a compromised component would try: read or write
// files, open sockets, start programs, signal or trace other processes, mount,
// become root. It prints one JSON line per try: {try, ok, code} where ok means
// the call succeeded (the sandbox did NOT stop it) and code is the error.
// Calls the filter answers by killing the process are tried one per process
// (`--try NAME`); the runner (sandbox-probe-run.ts) reads the exit signal.
//
//   node sandbox-probe.ts --profile component|service --stage allow-list|loaded [--try NAME]
//
// The calls go to the kernel directly (syscall(2) through koffi), around
// Node's permission model, as an intruder with code execution would; a few go
// through Node's API to show its permission model too.
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import koffi from 'koffi';
import { forbidPathLookups, installAllowList } from '../sys/seccomp.ts';
import { setNotDumpable } from '../sys/libc.ts';
import type { Profile } from '../sys/seccomp.ts';
import { SYSCALLS_X86_64 as NR } from '../sys/syscalls.ts';

const CODE = '/run/microgate/code';
const lib = koffi.load('libc.so.6');
const sysPath = lib.func('long syscall(long nr, const char *path, long a2, long a3)');
const sysInt = lib.func('long syscall(long nr, long a1, long a2, long a3)');
const sysPtr = lib.func('long syscall(long nr, long a1, _Inout_ uint8_t *a2, long a3)');
const sysMount = lib.func('long syscall(long nr, const char *src, const char *dst, const char *type, long flags, long data)');
const strerrorname = lib.func('const char *strerrordesc_np(int errnum)');

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 13: 'EACCES', 22: 'EINVAL', 30: 'EROFS', 38: 'ENOSYS' };

export interface TryResult {
  try: string;
  /** The call succeeded: the sandbox did not stop it. */
  ok: boolean;
  /** The error it got (errno name, or Node's error code). */
  code?: string;
  detail?: string;
}

function raw(name: string, r: number | bigint): TryResult {
  const n = Number(r);
  if (n >= 0) return { try: name, ok: true };
  const e = koffi.errno();
  return { try: name, ok: false, code: ERRNO_NAMES[e] ?? `errno ${e}`, detail: String(strerrorname(e)) };
}

function viaNode(name: string, f: () => void): TryResult {
  try {
    f();
    return { try: name, ok: true };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { try: name, ok: false, code: err.code ?? err.name, detail: err.message.split('\n')[0] };
  }
}

/** A fork that succeeded must not run on: the child leaves at once. */
function guardChild(r: number | bigint): number | bigint {
  if (Number(r) === 0) sysInt(NR.exit_group, 0, 0, 0);
  return r;
}

const O_RDONLY = 0;
const O_WRONLY = 1;
const AF_INET = 2;
const AF_PACKET = 17;
const SOCK_STREAM = 1;
const SOCK_RAW = 3;
const SIGCHLD = 17;

/** Tries that return. */
export const TRIES: Record<string, () => TryResult> = {
  'read-file (Node fs)': () => viaNode('read-file (Node fs)', () => readFileSync('/etc/hostname')),
  'write-code (Node fs)': () => viaNode('write-code (Node fs)', () => writeFileSync(`${CODE}/src/probe-was-here`, 'x')),
  'spawn (Node child_process)': () => {
    const name = 'spawn (Node child_process)';
    try {
      const r = spawnSync('/bin/true');
      if (r.error !== undefined) throw r.error;
      return { try: name, ok: true };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { try: name, ok: false, code: err.code ?? err.name, detail: err.message.split('\n')[0] };
    }
  },
  'open /etc/passwd': () => raw('open /etc/passwd', sysPath(NR.open, '/etc/passwd', O_RDONLY, 0)),
  'open own code': () => raw('open own code', sysPath(NR.open, `${CODE}/package.json`, O_RDONLY, 0)),
  'open own code for writing': () => raw('open own code for writing', sysPath(NR.open, `${CODE}/package.json`, O_WRONLY, 0)),
  'open /proc/1/status': () => raw('open /proc/1/status', sysPath(NR.open, '/proc/1/status', O_RDONLY, 0)),
  'socket AF_INET': () => raw('socket AF_INET', sysInt(NR.socket, AF_INET, SOCK_STREAM, 0)),
  'socket AF_PACKET': () => raw('socket AF_PACKET', sysInt(NR.socket, AF_PACKET, SOCK_RAW, 0)),
  'execve /bin/true': () => raw('execve /bin/true', sysPath(NR.execve, '/bin/true', 0, 0)),
  'fork': () => raw('fork', guardChild(sysInt(NR.fork, 0, 0, 0))),
  'clone a process': () => raw('clone a process', guardChild(sysInt(NR.clone, SIGCHLD, 0, 0))),
  'kill pid 1': () => raw('kill pid 1', sysInt(NR.kill, 1, 0, 0)),
  'io_uring_setup': () => raw('io_uring_setup', sysPtr(NR.io_uring_setup, 8, new Uint8Array(120), 0)),
  // Made non-dumpable before the filters (as the host does), it cannot make itself dumpable again.
  'prctl PR_SET_DUMPABLE 1': () => raw('prctl PR_SET_DUMPABLE 1', sysInt(NR.prctl, 4 /* PR_SET_DUMPABLE */, 1, 0)),
};

/** Tries the filter answers by killing the process: one per process. */
export const FATAL_TRIES: Record<string, () => TryResult> = {
  'ptrace attach to init': () => raw('ptrace attach to init', sysInt(NR.ptrace, 16 /* PTRACE_ATTACH */, process.ppid, 0)),
  'mount a tmpfs': () => raw('mount a tmpfs', sysMount(NR.mount, 'none', '/tmp', 'tmpfs', 0, 0)),
  'setuid 0': () => raw('setuid 0', sysInt(NR.setuid, 0, 0, 0)),
  'unshare a user namespace': () => raw('unshare a user namespace', sysInt(NR.unshare, 0x10000000 /* CLONE_NEWUSER */, 0, 0)),
};

function main(): void {
  const { values } = parseArgs({ options: { profile: { type: 'string' }, stage: { type: 'string' }, try: { type: 'string' } } });
  const profile = (values.profile ?? 'component') as Profile;
  if (profile !== 'component' && profile !== 'service') throw new Error(`--profile: component or service, not ${profile}`);
  const stage = values.stage ?? 'loaded';
  if (stage !== 'allow-list' && stage !== 'loaded') throw new Error(`--stage: allow-list or loaded, not ${stage}`);
  // As the component host does: not dumpable, the allow-list, the path filter once "loaded".
  setNotDumpable();
  installAllowList(profile);
  if (stage === 'loaded' && profile === 'component') forbidPathLookups();
  const names = values.try !== undefined ? [values.try] : Object.keys(TRIES);
  for (const n of names) {
    const f = TRIES[n] ?? FATAL_TRIES[n];
    if (f === undefined) throw new Error(`unknown try "${n}"`);
    process.stdout.write(`${JSON.stringify(f())}\n`);
  }
}

if (process.argv[1]?.endsWith('sandbox-probe.ts')) main();
