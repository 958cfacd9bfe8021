// A vector of struct mmsghdr for recvmmsg(2)/sendmmsg(2): one message per
// entry, each with one iovec pointing at caller-owned memory (a session slot),
// so many frames cross in one system call without a copy. The headers and
// iovecs live in private memory with a known address, built once: per call
// the caller only points iovecs at slots (set) and reads back the lengths and
// flags the kernel wrote (length, flags). Nothing is allocated per frame.
//
// Layout (x86-64): struct mmsghdr is 64 bytes: struct msghdr (msg_name 0,
// msg_namelen 8, msg_iov 16, msg_iovlen 24, msg_control 32, msg_controllen 40,
// msg_flags 48) then msg_len at 56; struct iovec is 16 bytes (iov_base 0,
// iov_len 8). The iovecs follow the headers; header i points at iovec i.
import { mapAnonymous, recvmmsgAddr, sendmmsgAddr } from './libc.ts';
import type { Mapping } from './libc.ts';

export const MMSGHDR_SIZE = 64;
export const IOVEC_SIZE = 16;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
const TWO_32 = 4294967296;

export class MmsgVec {
  /** Messages the vector holds (the most one call moves). */
  readonly capacity: number;
  /** Address of header 0 (what recvmmsg/sendmmsg get). */
  readonly address: number;
  /** The headers and iovecs as 32-bit words (tests read the layout through it). */
  readonly words: Uint32Array;
  #mem: Mapping;
  #iov0: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) throw new RangeError(`MmsgVec: capacity ${capacity} not in 1..1024`);
    this.capacity = capacity;
    this.#mem = mapAnonymous(capacity * (MMSGHDR_SIZE + IOVEC_SIZE));
    this.address = this.#mem.address;
    this.words = new Uint32Array(this.#mem.buffer);
    this.#iov0 = capacity * MMSGHDR_SIZE;
    for (let i = 0; i < capacity; i++) {
      const h = i * MMSGHDR_SIZE;
      this.#put64(h + MSG_IOV, this.address + this.#iov0 + i * IOVEC_SIZE);
      this.#put64(h + MSG_IOVLEN, 1);
    }
  }

  #put64(byteOff: number, v: number): void {
    const w = byteOff >>> 2;
    this.words[w] = v >>> 0;
    this.words[w + 1] = (v / TWO_32) >>> 0;
  }

  /** Point message i's iovec at `len` bytes at address `addr`. */
  set(i: number, addr: number, len: number): void {
    const b = this.#iov0 + i * IOVEC_SIZE;
    this.#put64(b, addr);
    this.#put64(b + 8, len);
  }

  /** The bytes the kernel reported for message i (msg_len) after a call. */
  length(i: number): number {
    return this.words[(i * MMSGHDR_SIZE + MSG_LEN) >>> 2];
  }

  /** The flags the kernel reported for received message i (msg_flags: MSG_TRUNC, ...). */
  flags(i: number): number {
    return this.words[(i * MMSGHDR_SIZE + MSG_FLAGS) >>> 2];
  }

  /** recvmmsg(2) into messages 0..n-1: messages received, or -errno. */
  recv(fd: number, n: number, flags = 0): number {
    return recvmmsgAddr(fd, this.address, n, flags);
  }

  /** sendmmsg(2) of messages from..from+n-1: messages sent, or -errno. */
  send(fd: number, from: number, n: number, flags = 0): number {
    return sendmmsgAddr(fd, this.address + from * MMSGHDR_SIZE, n, flags);
  }

  close(): void {
    this.#mem.unmap();
  }
}
