// Seccomp allow-lists: the system calls a sandboxed process may make.
//
// Two profiles, each a classic-BPF program compiled from the rule tables below
// and installed with TSYNC (every thread of the process) after no_new_privs:
//
//   component  what a component host needs (Node, libuv, V8, koffi): memory,
//              threads, time, poll/epoll, read/write and socket I/O on the fds
//              init granted, read-only opens of its code. No socket(), bind,
//              connect or listen (a component reaches nothing but its
//              sessions), no file writes, no process creation.
//   service    the file gateway, serving on a real network: the component
//              profile plus sockets (AF_UNIX, AF_INET, AF_INET6) and writes in
//              the folders its grant binds into its root.
//
// Everything not listed fails with EPERM (Node and libc handle a failing call;
// a crash would only hide what was tried). Calls that only an intruder makes
// (ptrace, process_vm_*, mount, bpf, perf_event_open, setuid, module loading,
// kexec, ...) kill the whole process: init sees SIGSYS and restarts it.
// io_uring_setup answers ENOSYS (its operations would bypass this filter;
// libuv falls back to its thread pool) and so does clone3 (glibc then uses
// clone, which is allowed for threads only).
//
// Before any of this, the sandbox (sandbox.ts, EARLY_FILTER_PERL) installs a
// filter that answers io_uring_* with ENOSYS before node starts: libuv sets up
// an io_uring at start (before any JavaScript runs), and ring operations would
// bypass every filter.
//
// Once a component host has loaded its components' code it adds a second
// filter (`forbidPathLookups`): no open, stat, access or readlink by path at
// all, so even through FFI a component cannot open a file.
//
// x86-64 only: the first check kills a process whose calls come in as another
// architecture, so a mismatch cannot pass silently.
import { mapAnonymous, prctl, syscallPtr } from './libc.ts';
import { SYSCALLS_X86_64 } from './syscalls.ts';
import type { SyscallName } from './syscalls.ts';

export type Verdict = 'allow' | 'kill' | { errno: number };

/** A rule: `call` gets `verdict`; with `when`, only if (args[arg] & mask) is one of `in` (low 32 bits), else `otherwise`. */
export interface Rule {
  call: SyscallName;
  verdict: Verdict;
  when?: { arg: number; mask?: number; in: number[] };
  otherwise?: Verdict;
}

export interface Policy {
  name: string;
  rules: Rule[];
  /** What every call not named gets. */
  fallback: Verdict;
}

export const EPERM = 1;
const ENOSYS = 38;
const CLONE_THREAD = 0x00010000;
const O_WRITE_MASK = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000; // O_WRONLY O_RDWR O_CREAT O_TRUNC O_APPEND O_TMPFILE bit
const AT_EMPTY_PATH = 0x1000;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
// prctl options Node and glibc use: GET_DUMPABLE, SET_NAME, GET_NAME, CAPBSET_READ, SET/GET_NO_NEW_PRIVS, SET_VMA.
const PRCTL_OK = [3, 15, 16, 23, 38, 39, 0x53564d41];
// ioctls on its own fds: TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX.
const IOCTL_OK = [0x5401, 0x5413, 0x541b, 0x5421, 0x5450, 0x5451];

const deny: Verdict = { errno: EPERM };
const allow = (...calls: SyscallName[]): Rule[] => calls.map((call) => ({ call, verdict: 'allow' }));

/** The calls only an intruder makes: the process is killed. */
export const KILL_CALLS: readonly SyscallName[] = [
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'bpf', 'perf_event_open', 'userfaultfd',
  'mount', 'umount2', 'pivot_root', 'chroot', 'setns', 'unshare', 'open_tree', 'move_mount', 'fsopen', 'fsconfig',
  'fsmount', 'fspick', 'mount_setattr', 'open_by_handle_at', 'name_to_handle_at', 'mknod', 'mknodat',
  'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load', 'reboot', 'swapon', 'swapoff',
  'keyctl', 'add_key', 'request_key', 'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid',
  'setgroups', 'setfsuid', 'setfsgid', 'capset', 'personality', 'iopl', 'ioperm', 'acct', 'quotactl',
  'settimeofday', 'adjtimex', 'clock_adjtime', 'syslog', 'vhangup', 'fanotify_init', 'lookup_dcookie',
  'sethostname', 'setdomainname',
];

function componentRules(pid: number): Rule[] {
  return [
    // The data path's calls first: the filter is a linear scan.
    // recvmmsg/sendmmsg: a packet link's driver moves many frames per call (recvmsg/sendmsg, many at once: nothing new reachable).
    ...allow('read', 'write', 'poll', 'ppoll', 'futex', 'epoll_pwait', 'epoll_wait', 'readv', 'writev', 'recvmsg', 'sendmsg', 'recvmmsg', 'sendmmsg'),
    ...allow('clock_gettime', 'getpid', 'gettid', 'mmap', 'munmap', 'madvise', 'mprotect', 'mremap', 'brk', 'sched_yield'),
    ...allow('nanosleep', 'clock_nanosleep', 'clock_getres', 'gettimeofday', 'time', 'epoll_pwait2', 'epoll_ctl', 'epoll_create1'),
    ...allow('eventfd2', 'pipe2', 'close', 'dup', 'dup2', 'dup3', 'fcntl', 'fstat', 'fstatfs', 'lseek', 'pread64', 'fsync', 'fdatasync'),
    ...allow('recvfrom', 'sendto', 'getsockname', 'getpeername', 'getsockopt', 'setsockopt', 'shutdown'),
    ...allow('rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'sigaltstack', 'set_robust_list', 'rseq', 'set_tid_address'),
    ...allow('exit', 'exit_group', 'membarrier', 'sched_getaffinity', 'sched_getparam', 'sched_getscheduler'),
    ...allow('getpriority', 'setpriority', 'getuid', 'geteuid', 'getgid', 'getegid', 'getppid', 'getpgrp', 'getgroups'),
    ...allow('uname', 'getrandom', 'sysinfo', 'getrusage', 'times', 'getrlimit', 'getcwd', 'arch_prctl', 'seccomp'),
    // Reading its code (module loading) and /proc/self: opens without any write flag.
    { call: 'openat', verdict: 'allow', when: { arg: 2, mask: O_WRITE_MASK, in: [0] }, otherwise: deny },
    { call: 'open', verdict: 'allow', when: { arg: 1, mask: O_WRITE_MASK, in: [0] }, otherwise: deny },
    ...allow('newfstatat', 'statx', 'readlink', 'access', 'faccessat', 'faccessat2', 'getdents64'),
    { call: 'clone', verdict: 'allow', when: { arg: 0, mask: CLONE_THREAD, in: [CLONE_THREAD] }, otherwise: deny },
    { call: 'clone3', verdict: { errno: ENOSYS } },
    { call: 'io_uring_setup', verdict: { errno: ENOSYS } },
    { call: 'prctl', verdict: 'allow', when: { arg: 0, in: PRCTL_OK }, otherwise: deny },
    { call: 'ioctl', verdict: 'allow', when: { arg: 1, in: IOCTL_OK }, otherwise: deny },
    { call: 'prlimit64', verdict: 'allow', when: { arg: 0, in: [0, pid] }, otherwise: deny },
    // Signals to itself only.
    { call: 'tgkill', verdict: 'allow', when: { arg: 0, in: [pid] }, otherwise: deny },
    { call: 'kill', verdict: 'allow', when: { arg: 0, in: [pid, 0] }, otherwise: deny },
    ...(['execve', 'execveat', 'fork', 'vfork'] as const).map((call): Rule => ({ call, verdict: deny })),
    ...KILL_CALLS.map((call): Rule => ({ call, verdict: 'kill' })),
  ];
}

const SERVICE_EXTRA: Rule[] = [
  { call: 'socket', verdict: 'allow', when: { arg: 0, in: [AF_UNIX, AF_INET, AF_INET6] }, otherwise: deny },
  ...allow('bind', 'listen', 'accept', 'accept4', 'connect'),
  ...allow('pwrite64', 'pwritev', 'preadv', 'ftruncate', 'fallocate', 'fchmod', 'utimensat'),
  ...allow('rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'mkdir', 'mkdirat', 'rmdir', 'readlinkat', 'statfs'),
  ...allow('sendfile', 'copy_file_range', 'flock', 'umask', 'fadvise64'),
];

export type Profile = 'component' | 'service';

/** The allow-list of a profile for process `pid` (signals only to itself). */
export function policy(profile: Profile, pid: number): Policy {
  let rules = componentRules(pid);
  if (profile === 'service') {
    // Any open (its grant binds only what it may write into its root, and Node's permission model checks paths).
    rules = rules.map((r) => (r.call === 'openat' || r.call === 'open' ? { call: r.call, verdict: 'allow' } : r));
    rules.splice(rules.findIndex((r) => r.call === 'clone'), 0, ...SERVICE_EXTRA);
  }
  return { name: profile, rules, fallback: deny };
}

/**
 * The first filter, installed by the sandbox's perl step before node starts the component
 * host: no io_uring (libuv would set up a ring at start, before the allow-list,
 * and then need io_uring_enter; ring operations pass no seccomp filter).
 */
export function noIoUringPolicy(): Policy {
  return {
    name: 'no-io-uring',
    rules: (['io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const).map((call): Rule => ({ call, verdict: { errno: ENOSYS } })),
    fallback: 'allow',
  };
}

/** The second filter of a loaded component host: no path lookups (default: allow; the allow-list still applies). */
export function pathLookupPolicy(): Policy {
  const emptyPathOnly = (call: SyscallName, arg: number): Rule => ({ call, verdict: 'allow', when: { arg, mask: AT_EMPTY_PATH, in: [AT_EMPTY_PATH] }, otherwise: deny });
  return {
    name: 'no-path-lookups',
    rules: [
      ...(['open', 'openat', 'openat2', 'creat', 'stat', 'lstat', 'access', 'faccessat', 'faccessat2', 'readlink', 'readlinkat', 'getdents64', 'chdir'] as const)
        .map((call): Rule => ({ call, verdict: deny })),
      emptyPathOnly('newfstatat', 3),
      emptyPathOnly('statx', 2),
    ],
    fallback: 'allow',
  };
}

// ---- compiling to classic BPF ------------------------------------------------------

const AUDIT_ARCH_X86_64 = 0xc000003e;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;
const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const JEQ_K = 0x15;
const RET_K = 0x06;
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARGS = 16;

export type Insn = [code: number, jt: number, jf: number, k: number];

function ret(v: Verdict): Insn {
  const k = v === 'allow' ? RET_ALLOW : v === 'kill' ? RET_KILL_PROCESS : RET_ERRNO | (v.errno & 0xffff);
  return [RET_K, 0, 0, k >>> 0];
}

/** The BPF program of a policy: each rule a self-contained block that returns, skipped when the call number differs. */
export function compile(p: Policy): Insn[] {
  const out: Insn[] = [
    [LD_W_ABS, 0, 0, OFF_ARCH],
    [JEQ_K, 1, 0, AUDIT_ARCH_X86_64],
    [RET_K, 0, 0, RET_KILL_PROCESS],
    [LD_W_ABS, 0, 0, OFF_NR],
  ];
  const seen = new Set<string>();
  for (const r of p.rules) {
    if (seen.has(r.call)) throw new Error(`seccomp policy ${p.name}: ${r.call} named twice`);
    seen.add(r.call);
    const nr = SYSCALLS_X86_64[r.call];
    const block: Insn[] = [];
    if (r.when === undefined) {
      block.push(ret(r.verdict));
    } else {
      const { arg, mask, in: values } = r.when;
      if (!Number.isInteger(arg) || arg < 0 || arg > 5) throw new Error(`seccomp policy ${p.name}: ${r.call}: argument ${arg} out of 0..5`);
      if (values.length === 0 || values.length > 200) throw new Error(`seccomp policy ${p.name}: ${r.call}: 1..200 values expected`);
      block.push([LD_W_ABS, 0, 0, OFF_ARGS + 8 * arg]); // low 32 bits (little-endian)
      if (mask !== undefined) block.push([ALU_AND_K, 0, 0, mask >>> 0]);
      values.forEach((v, j) => block.push([JEQ_K, values.length - j, 0, v >>> 0]));
      block.push(ret(r.otherwise ?? { errno: EPERM }));
      block.push(ret(r.verdict));
      // The block clobbered the accumulator: the next rule needs the number again.
      block.push([LD_W_ABS, 0, 0, OFF_NR]);
    }
    if (block.length > 255) throw new Error(`seccomp policy ${p.name}: ${r.call}: block too long`);
    out.push([JEQ_K, 0, block.length, nr]);
    out.push(...block);
  }
  out.push(ret(p.fallback));
  if (out.length > 4096) throw new Error(`seccomp policy ${p.name}: ${out.length} instructions, the kernel takes 4096`);
  return out;
}

/** Evaluate a program on one call (for tests): the verdict it returns. */
export function evaluate(prog: Insn[], call: { nr: number; arch?: number; args?: number[] }): Verdict {
  let acc = 0;
  let pc = 0;
  const word = (off: number): number => {
    if (off === OFF_NR) return call.nr >>> 0;
    if (off === OFF_ARCH) return (call.arch ?? AUDIT_ARCH_X86_64) >>> 0;
    const i = (off - OFF_ARGS) / 8;
    return Number(BigInt(call.args?.[i] ?? 0) & 0xffffffffn);
  };
  for (let steps = 0; steps < 10000; steps++) {
    const [code, jt, jf, k] = prog[pc];
    if (code === LD_W_ABS) acc = word(k);
    else if (code === ALU_AND_K) acc = (acc & k) >>> 0;
    else if (code === JEQ_K) {
      pc += acc === k ? jt : jf;
    } else if (code === RET_K) {
      if (k === RET_ALLOW) return 'allow';
      if (k === RET_KILL_PROCESS) return 'kill';
      return { errno: k & 0xffff };
    } else throw new Error(`unknown BPF instruction ${code}`);
    pc++;
  }
  throw new Error('BPF program did not return');
}

const PR_SET_NO_NEW_PRIVS = 38;
const SYS_seccomp = 317;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/** The program as the kernel reads it: struct sock_filter[] (8 bytes each, little-endian). */
export function programBytes(insns: Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const dv = new DataView(out.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    dv.setUint16(i * 8, code, true);
    dv.setUint8(i * 8 + 2, jt);
    dv.setUint8(i * 8 + 3, jf);
    dv.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return out;
}

function install(p: Policy): void {
  if (process.arch !== 'x64') throw new Error(`seccomp filters are written for x86-64, not ${process.arch}`);
  const bytes = programBytes(compile(p));
  const mem = mapAnonymous(Math.ceil(bytes.length / 4096) * 4096);
  new Uint8Array(mem.buffer).set(bytes);
  const fprog = new Uint8Array(16);
  const fv = new DataView(fprog.buffer);
  fv.setUint16(0, bytes.length / 8, true);
  fv.setBigUint64(8, BigInt(mem.address), true);
  prctl(PR_SET_NO_NEW_PRIVS, 1);
  syscallPtr(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, fprog);
}

/** Install a profile's allow-list on every thread of this process. */
export function installAllowList(profile: Profile): void {
  install(policy(profile, process.pid));
}

/** The no-io-uring filter's program in hex: the sandbox's perl step installs it (sandbox.ts EARLY_FILTER_PERL). */
export function noIoUringProgram(): string {
  return Buffer.from(programBytes(compile(noIoUringPolicy()))).toString('hex');
}

/** Add the filter that takes away every path lookup (after the code is loaded). */
export function forbidPathLookups(): void {
  install(pathLookupPolicy());
}
