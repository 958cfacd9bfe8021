// Thin, synchronous bindings to the few libc calls microgate needs on Linux.
//
// Why koffi: Node has no API for memfd, eventfd, mmap, poll on arbitrary fds or
// ioctl. koffi is a maintained FFI library that ships prebuilt binaries in its
// npm package, calls C in ~25 ns, and can expose mapped memory as an
// ArrayBuffer without copying (koffi.view). Every call here is synchronous:
// the data path never does async I/O per packet (see docs/ARCHITECTURE.md).
//
// Addresses are passed as plain numbers (x86-64 user addresses fit in 47 bits),
// so the hot path allocates nothing per call.
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');

export const O_NONBLOCK = 0o4000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const AF_UNIX = 1;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const EAGAIN = 11;
export const EINTR = 4;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;

const _read = lib.func('long read(int fd, intptr_t buf, size_t count)');
const _write = lib.func('long write(int fd, intptr_t buf, size_t count)');
const _recvmmsg = lib.func('int recvmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags, intptr_t timeout)');
const _sendmmsg = lib.func('int sendmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags)');
const _readBuf = lib.func('long read(int fd, _Out_ void *buf, size_t count)');
const _writeBuf = lib.func('long write(int fd, const void *buf, size_t count)');
const _poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)');
const _close = lib.func('int close(int fd)');
const _schedYield = lib.func('int sched_yield()');
const _eventfd = lib.func('int eventfd(unsigned int initval, int flags)');
const _memfd = lib.func('int memfd_create(const char *name, unsigned int flags)');
const _ftruncate = lib.func('int ftruncate(int fd, long length)');
const _fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
const _mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
const _munmap = lib.func('int munmap(void *addr, size_t length)');
const _ioctlPtr = lib.func('int ioctl(int fd, unsigned long request, void *arg)');
const _ioctlInt = lib.func('int ioctl(int fd, unsigned long request, unsigned long arg)');
const _socketpair = lib.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)');
const _prctl = lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)');
const _syscall3 = lib.func('long syscall(long number, unsigned long a1, unsigned long a2, void *a3)');
const _strerror = lib.func('const char *strerror(int errnum)');
const _socket = lib.func('int socket(int domain, int type, int protocol)');
const _bind = lib.func('int bind(int fd, const void *addr, unsigned int len)');
const _setsockopt = lib.func('int setsockopt(int fd, int level, int name, const void *val, unsigned int len)');
const _setns = lib.func('int setns(int fd, int nstype)');
const _sendto = lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, unsigned int addrlen)');
const _getsockname = lib.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)');
const _unshare = lib.func('int unshare(int flags)');
const _ifNameToIndex = lib.func('unsigned int if_nametoindex(const char *name)');
const _getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ unsigned int *len)');

/** An error from a libc call, with the errno and the call that failed. */
export class SysError extends Error {
  readonly errno: number;
  readonly call: string;
  constructor(call: string, errno: number) {
    super(`${call}: ${_strerror(errno) as string} (errno ${errno})`);
    this.name = 'SysError';
    this.errno = errno;
    this.call = call;
  }
}

export function errno(): number {
  return koffi.errno();
}

function check(call: string, r: number): number {
  if (r < 0) throw new SysError(call, koffi.errno());
  return r;
}

/** read(2) into raw memory; returns bytes read, or -errno (no throw: hot path). */
export function readAddr(fd: number, addr: number, len: number): number {
  const r = Number(_read(fd, addr, len));
  return r < 0 ? -koffi.errno() : r;
}

/** write(2) from raw memory; returns bytes written, or -errno (no throw: hot path). */
export function writeAddr(fd: number, addr: number, len: number): number {
  const r = Number(_write(fd, addr, len));
  return r < 0 ? -koffi.errno() : r;
}

/** recvmmsg(2) into `vlen` struct mmsghdr at `addr` (no timeout); returns messages received, or -errno (hot path). */
export function recvmmsgAddr(fd: number, addr: number, vlen: number, flags = 0): number {
  const r = _recvmmsg(fd, addr, vlen, flags, 0) as number;
  return r < 0 ? -koffi.errno() : r;
}

/** sendmmsg(2) of `vlen` struct mmsghdr at `addr`; returns messages sent, or -errno (hot path). */
export function sendmmsgAddr(fd: number, addr: number, vlen: number, flags = 0): number {
  const r = _sendmmsg(fd, addr, vlen, flags) as number;
  return r < 0 ? -koffi.errno() : r;
}

/** read(2) into a JS buffer; returns bytes read, or -errno. */
export function readBuf(fd: number, buf: Uint8Array, len = buf.byteLength): number {
  const r = Number(_readBuf(fd, buf, len));
  return r < 0 ? -koffi.errno() : r;
}

/** write(2) from a JS buffer; returns bytes written, or -errno. */
export function writeBuf(fd: number, buf: Uint8Array, len = buf.byteLength): number {
  const r = Number(_writeBuf(fd, buf, len));
  return r < 0 ? -koffi.errno() : r;
}

/** poll(2) over a caller-owned array of struct pollfd (8 bytes each). Returns count or -errno. */
export function poll(pollfds: Uint8Array, nfds: number, timeoutMs: number): number {
  const r = _poll(pollfds, nfds, timeoutMs) as number;
  return r < 0 ? -koffi.errno() : r;
}

/** sched_yield(2): let another runnable thread of this CPU go first (a polling loop's courtesy). */
export function schedYield(): void {
  _schedYield();
}

export function close(fd: number): void {
  _close(fd);
}

export function eventfd(flags = EFD_NONBLOCK | EFD_CLOEXEC): number {
  return check('eventfd', _eventfd(0, flags) as number);
}

/**
 * A memfd of `size` bytes sealed against shrinking and growing (and further
 * sealing): a peer that holds it can never truncate it under the other
 * side's mapping (which would make that side fault with SIGBUS).
 */
export function memfdCreateSealed(name: string, size: number): number {
  const fd = check('memfd_create', _memfd(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) as number);
  check('ftruncate', _ftruncate(fd, size) as number);
  check('fcntl(F_ADD_SEALS)', _fcntl(fd, F_ADD_SEALS, 'int', F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) as number);
  return fd;
}

/** The seals of a memfd (F_SEAL_* bits). */
export function memfdSeals(fd: number): number {
  return check('fcntl(F_GET_SEALS)', _fcntl(fd, F_GET_SEALS, 'int', 0) as number);
}

export interface Mapping {
  /** The mapped memory as an ArrayBuffer (no copy: writes go to the shared pages). */
  buffer: ArrayBuffer;
  /** The numeric address of the first byte, for readAddr/writeAddr. */
  address: number;
  size: number;
  unmap(): void;
}

/** mmap(2) a whole fd shared, read-write. */
export function mapShared(fd: number, size: number): Mapping {
  const p = _mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const address = Number(koffi.address(p));
  if (address === 0 || address === 2 ** 64 - 1 || address > 2 ** 53) {
    throw new SysError('mmap', koffi.errno());
  }
  const buffer = koffi.view(p, size) as ArrayBuffer;
  return {
    buffer,
    address,
    size,
    unmap: () => {
      _munmap(p, size);
    },
  };
}

const MAP_PRIVATE = 2;
const MAP_ANONYMOUS = 0x20;

/** Private anonymous memory with a known address (for buffers read/written by fd calls). */
export function mapAnonymous(size: number): Mapping {
  const p = _mmap(null, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const address = Number(koffi.address(p));
  if (address === 0 || address > 2 ** 53) throw new SysError('mmap', koffi.errno());
  return { buffer: koffi.view(p, size) as ArrayBuffer, address, size, unmap: () => { _munmap(p, size); } };
}

export function ioctlPtr(fd: number, request: number, arg: Uint8Array): number {
  return check(`ioctl(0x${request.toString(16)})`, _ioctlPtr(fd, request, arg) as number);
}

export function ioctlInt(fd: number, request: number, arg: number): number {
  return check(`ioctl(0x${request.toString(16)})`, _ioctlInt(fd, request, arg) as number);
}

/** A pair of connected AF_UNIX SOCK_SEQPACKET sockets (close-on-exec, non-blocking). */
export function seqpacketPair(): [number, number] {
  const sv = [0, 0];
  check('socketpair', _socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) as number);
  return [sv[0], sv[1]];
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Mark fd close-on-exec (so no child inherits it). */
export function setCloexec(fd: number): void {
  const flags = _fcntl(fd, F_GETFD, 'int', 0) as number;
  if (flags >= 0 && (flags & FD_CLOEXEC) === 0) _fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC);
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', _socket(domain, type, protocol) as number);
}

export function bind(fd: number, addr: Uint8Array): void {
  check('bind', _bind(fd, addr, addr.byteLength) as number);
}

export function setsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
  check(`setsockopt(${level}, ${name})`, _setsockopt(fd, level, name, value, value.byteLength) as number);
}

/** sendto(2) of a JS buffer to `addr` (a struct sockaddr); returns bytes sent, or -errno. */
export function sendTo(fd: number, buf: Uint8Array, addr: Uint8Array): number {
  const r = Number(_sendto(fd, buf, buf.byteLength, 0, addr, addr.byteLength));
  return r < 0 ? -koffi.errno() : r;
}

/** getsockname(2) into `out` (a struct sockaddr buffer); returns its length. */
export function getsockname(fd: number, out: Uint8Array): number {
  const len = [out.byteLength];
  check('getsockname', _getsockname(fd, out, len) as number);
  return len[0];
}

/** setns(2): move the calling thread into the namespace behind fd. */
export function setns(fd: number, nstype: number): void {
  check('setns', _setns(fd, nstype) as number);
}

/** unshare(2): give the calling thread new namespaces (e.g. CLONE_NEWNET: a network namespace of its own). */
export function unshare(flags: number): void {
  check('unshare', _unshare(flags) as number);
}

/** The index of a network interface in the calling thread's namespace, or 0. */
export function ifNameToIndex(name: string): number {
  return _ifNameToIndex(name) as number;
}

export function prctl(option: number, a2 = 0, a3 = 0, a4 = 0, a5 = 0): number {
  return check(`prctl(${option})`, _prctl(option, a2, a3, a4, a5) as number);
}

const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;

/**
 * PR_SET_DUMPABLE 0: no core dump, and /proc/PID of this process becomes
 * root's, so no other process of the same uid may ptrace it or open its
 * /proc/PID/mem, maps, environ or fds (only root, i.e. init, still can). Every
 * component host and service calls it first thing: exec(2) of node had set it
 * back to 1. The seccomp allow-list then refuses PR_SET_DUMPABLE, so it stays 0.
 */
export function setNotDumpable(): void {
  prctl(PR_SET_DUMPABLE, 0);
  if (prctl(PR_GET_DUMPABLE) !== 0) throw new Error('prctl(PR_SET_DUMPABLE, 0) did not take');
}

/** syscall(2) with two integers and a pointer (enough for seccomp(2)). */
export function syscallPtr(nr: number, a1: number, a2: number, a3: Uint8Array | null): number {
  const r = Number(_syscall3(nr, a1, a2, a3));
  if (r < 0) throw new SysError(`syscall(${nr})`, koffi.errno());
  return r;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/** The credentials of a Unix socket's peer as the kernel recorded them at connect(2). */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** getsockopt(2) into `out`; returns the length the kernel wrote, or -errno (no throw). */
export function getsockoptInto(fd: number, level: number, name: number, out: Uint8Array): number {
  const len = [out.byteLength];
  const r = _getsockopt(fd, level, name, out, len) as number;
  return r < 0 ? -koffi.errno() : len[0];
}

/** getsockopt(SO_PEERCRED) on a connected Unix socket's fd (struct ucred: pid, uid, gid). */
export function peerCred(fd: number): PeerCred {
  const buf = new Uint8Array(12);
  const len = [12];
  check('getsockopt(SO_PEERCRED)', _getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) as number);
  if (len[0] !== 12) throw new Error(`getsockopt(SO_PEERCRED): ${len[0]} bytes, expected 12`);
  const v = new DataView(buf.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}
