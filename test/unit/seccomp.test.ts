// The seccomp policies compiled to BPF and run through an interpreter of the
// same instructions: what each profile lets through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KILL_CALLS, compile, evaluate, noIoUringPolicy, pathLookupPolicy, policy } from '../../src/sys/seccomp.ts';
import type { Policy } from '../../src/sys/seccomp.ts';
import { SYSCALLS_X86_64 as NR } from '../../src/sys/syscalls.ts';

const PID = 4242;
const component = compile(policy('component', PID));
const service = compile(policy('service', PID));
const paths = compile(pathLookupPolicy());
const EPERM = { errno: 1 };
const ENOSYS = { errno: 38 };

test('component: the data path and Node runtime calls pass', () => {
  for (const c of ['read', 'write', 'poll', 'futex', 'epoll_pwait', 'recvmsg', 'sendmsg', 'recvmmsg', 'sendmmsg', 'mmap', 'munmap', 'close', 'exit_group', 'getrandom'] as const) {
    assert.equal(evaluate(component, { nr: NR[c] }), 'allow', c);
  }
});

test('component: sockets, exec, fork, writes and unknown calls get EPERM', () => {
  assert.deepEqual(evaluate(component, { nr: NR.socket, args: [2, 1, 0] }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.connect }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.bind }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.execve }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.fork }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.unlink }), EPERM);
  assert.deepEqual(evaluate(component, { nr: 1000 }), EPERM, 'a number no table names');
});

test('component: clone only for threads; clone3 and io_uring answer ENOSYS', () => {
  assert.equal(evaluate(component, { nr: NR.clone, args: [0x003d0f00] }), 'allow', 'glibc pthread_create flags');
  assert.deepEqual(evaluate(component, { nr: NR.clone, args: [17] }), EPERM, 'SIGCHLD: a new process');
  assert.deepEqual(evaluate(component, { nr: NR.clone3 }), ENOSYS);
  assert.deepEqual(evaluate(component, { nr: NR.io_uring_setup }), ENOSYS);
  assert.deepEqual(evaluate(component, { nr: NR.io_uring_enter }), EPERM);
});

test('component: opens without write flags only; ioctl, prctl and signals restricted by argument', () => {
  assert.equal(evaluate(component, { nr: NR.openat, args: [-100, 0, 0o2000000] }), 'allow', 'O_RDONLY|O_CLOEXEC');
  for (const flags of [0o1, 0o2, 0o100, 0o1000, 0o2000, 0o20200000]) {
    assert.deepEqual(evaluate(component, { nr: NR.openat, args: [-100, 0, flags] }), EPERM, `flags 0o${flags.toString(8)}`);
  }
  assert.deepEqual(evaluate(component, { nr: NR.open, args: [0, 0o101] }), EPERM);
  assert.equal(evaluate(component, { nr: NR.ioctl, args: [5, 0x5421] }), 'allow', 'FIONBIO');
  assert.deepEqual(evaluate(component, { nr: NR.ioctl, args: [5, 0x400454ca] }), EPERM, 'TUNSETIFF');
  assert.deepEqual(evaluate(component, { nr: NR.ioctl, args: [0, 0x5412] }), EPERM, 'TIOCSTI');
  assert.equal(evaluate(component, { nr: NR.prctl, args: [15] }), 'allow', 'PR_SET_NAME');
  assert.deepEqual(evaluate(component, { nr: NR.prctl, args: [4] }), EPERM, 'PR_SET_DUMPABLE');
  assert.equal(evaluate(component, { nr: NR.kill, args: [PID, 0] }), 'allow');
  assert.deepEqual(evaluate(component, { nr: NR.kill, args: [1, 9] }), EPERM);
  assert.deepEqual(evaluate(component, { nr: NR.tgkill, args: [PID + 1, PID + 1, 9] }), EPERM);
});

test('both profiles kill on every intruder call; another architecture is killed', () => {
  for (const c of KILL_CALLS) {
    assert.equal(evaluate(component, { nr: NR[c] }), 'kill', c);
    assert.equal(evaluate(service, { nr: NR[c] }), 'kill', c);
  }
  assert.equal(evaluate(component, { nr: NR.read, arch: 0x40000003 /* i386 */ }), 'kill');
});

test('service: Internet and Unix sockets and file writes; no packet or netlink sockets', () => {
  assert.equal(evaluate(service, { nr: NR.socket, args: [2, 1, 0] }), 'allow');
  assert.equal(evaluate(service, { nr: NR.socket, args: [10, 1, 0] }), 'allow');
  assert.equal(evaluate(service, { nr: NR.socket, args: [1, 1, 0] }), 'allow');
  assert.deepEqual(evaluate(service, { nr: NR.socket, args: [17, 3, 0] }), EPERM);
  assert.deepEqual(evaluate(service, { nr: NR.socket, args: [16, 3, 0] }), EPERM);
  for (const c of ['bind', 'listen', 'accept4', 'connect', 'rename', 'fsync'] as const) assert.equal(evaluate(service, { nr: NR[c] }), 'allow', c);
  assert.equal(evaluate(service, { nr: NR.openat, args: [-100, 0, 0o1101] }), 'allow');
  assert.deepEqual(evaluate(service, { nr: NR.execve }), EPERM);
});

test('the path-lookup filter: no open, stat or readlink by path; fstat (AT_EMPTY_PATH) and the rest pass', () => {
  for (const c of ['open', 'openat', 'openat2', 'stat', 'readlink', 'access', 'getdents64'] as const) assert.deepEqual(evaluate(paths, { nr: NR[c] }), EPERM, c);
  assert.equal(evaluate(paths, { nr: NR.newfstatat, args: [3, 0, 0, 0x1000] }), 'allow');
  assert.deepEqual(evaluate(paths, { nr: NR.newfstatat, args: [-100, 0, 0, 0] }), EPERM);
  assert.equal(evaluate(paths, { nr: NR.statx, args: [3, 0, 0x1000] }), 'allow');
  assert.deepEqual(evaluate(paths, { nr: NR.statx, args: [-100, 0, 0] }), EPERM);
  assert.equal(evaluate(paths, { nr: NR.read }), 'allow');
  const early = compile(noIoUringPolicy());
  assert.deepEqual(evaluate(early, { nr: NR.io_uring_setup }), ENOSYS);
  assert.equal(evaluate(early, { nr: NR.execve }), 'allow', 'the first filter only takes io_uring; exec follows it');
});

test('compile refuses a call named twice and an argument out of range', () => {
  const twice: Policy = { name: 't', rules: [{ call: 'read', verdict: 'allow' }, { call: 'read', verdict: 'kill' }], fallback: 'allow' };
  assert.throws(() => compile(twice), /read named twice/);
  const bad: Policy = { name: 't', rules: [{ call: 'read', verdict: 'allow', when: { arg: 6, in: [1] } }], fallback: 'allow' };
  assert.throws(() => compile(bad), /argument 6/);
  assert.ok(component.length < 4096 && service.length < 4096);
});
