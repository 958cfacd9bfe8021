// The last step of the sandbox before a component host (or service) starts:
// `node preexec.ts NODE ARGS...` installs the seccomp filter that takes away
// io_uring, then replaces itself with `NODE ARGS...`. It has to happen before
// that node starts: libuv sets up an io_uring ring while the runtime
// initialises, before any JavaScript runs, and the operations of a ring pass no
// seccomp filter. Runs as the component's uid with no_new_privs already set
// (setpriv), inside its root.
//
// It is on the restart path of every component, so it loads nothing but koffi:
// the filter comes compiled in MG_SECCOMP_EARLY (seccomp.ts, noIoUringProgram).
import koffi from 'koffi';

const PR_SET_NO_NEW_PRIVS = 38;
const SYS_seccomp = 317;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

function fail(m: string): never {
  process.stderr.write(`microgate preexec: ${m}\n`);
  process.exit(70);
}

const [file, ...rest] = process.argv.slice(2);
if (file === undefined) fail('usage: node preexec.ts NODE [ARGS...]');
const lib = koffi.load('libc.so.6');
const fcntl = lib.func('int fcntl(int fd, int cmd, int arg)');
const prctl = lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)');
const seccomp = lib.func('long syscall(long number, unsigned long a1, unsigned long a2, void *a3)');
const mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');

const env: Record<string, string | undefined> = { ...process.env };
// init's IPC channel (sandbox.ts renamed it so that this node leaves it alone).
if (env.MG_CHANNEL_FD !== undefined) {
  env.NODE_CHANNEL_FD = env.MG_CHANNEL_FD;
  if (env.MG_CHANNEL_MODE !== undefined && env.MG_CHANNEL_MODE !== '') env.NODE_CHANNEL_SERIALIZATION_MODE = env.MG_CHANNEL_MODE;
}
// node marked every inherited fd close-on-exec at start: the granted ones must pass.
for (const fd of (env.MG_PASS_FDS ?? '').split(' ').filter((x) => x !== '').map(Number)) {
  const flags = fcntl(fd, F_GETFD, 0) as number;
  if (flags < 0) fail(`granted fd ${fd} is not open (errno ${koffi.errno()})`);
  if (fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) as number < 0) fail(`fcntl(${fd}, F_SETFD): errno ${koffi.errno()}`);
}
const program = env.MG_SECCOMP_EARLY;
for (const k of ['MG_CHANNEL_FD', 'MG_CHANNEL_MODE', 'MG_PASS_FDS', 'MG_SECCOMP_EARLY']) delete env[k];

if (env.MG_NO_SECCOMP !== '1') {
  if (program === undefined) fail('MG_SECCOMP_EARLY is missing');
  const bytes = Buffer.from(program, 'base64');
  if (bytes.length === 0 || bytes.length % 8 !== 0) fail('MG_SECCOMP_EARLY is not a BPF program');
  // The kernel reads the program by address: put it in memory of known address.
  const p = mmap(null, 4096, 3 /* PROT_READ|WRITE */, 0x22 /* MAP_PRIVATE|ANONYMOUS */, -1, 0);
  const address = koffi.address(p);
  if (address === 0n || address === 2n ** 64n - 1n) fail(`mmap: errno ${koffi.errno()}`);
  new Uint8Array(koffi.view(p, 4096) as ArrayBuffer).set(bytes);
  const fprog = new Uint8Array(16);
  const dv = new DataView(fprog.buffer);
  dv.setUint16(0, bytes.length / 8, true);
  dv.setBigUint64(8, address, true);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as number < 0) fail(`prctl(NO_NEW_PRIVS): errno ${koffi.errno()}`);
  if (Number(seccomp(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, fprog)) < 0) fail(`seccomp: errno ${koffi.errno()}`);
}
process.execve!(file, [file, ...rest], env);
