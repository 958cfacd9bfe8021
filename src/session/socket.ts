// The copying transport, for comparison with shm: one AF_UNIX SOCK_SEQPACKET
// socketpair per session, one message per packet. The source writes from its
// private slab (so read(2) from a TAP can still land straight in a slot), the
// kernel copies into the socket and out again, and the sink reads into its
// private buffer. Acknowledgements are local: a slot is free again as soon as
// its message was written.
import { EAGAIN, EINTR, close as closeFd, mapAnonymous, readAddr, seqpacketPair, writeAddr } from '../sys/libc.ts';
import type { Mapping } from '../sys/libc.ts';
import type { Pollable } from './pollable.ts';
import type { PacketSink, PacketSource, SessionEnd, SessionGrant } from './types.ts';
import { SLOT_ALLOCATED, SLOT_FREE, SLOT_IN_FLIGHT, sessionLayout } from './ring.ts';
import type { OpenOptions, SessionOptions, SessionResources } from './shm.ts';
import { NO_TRACE } from '../trace/tracer.ts';
import type { Tracer } from '../trace/tracer.ts';
import { DIR_IN, DIR_OUT } from './capture.ts';
import type { PacketCapture } from './capture.ts';

/** Create the socketpair of one session: side a gets fds[0], side b fds[1]. */
export function createSocketSession(opts: SessionOptions): SessionResources {
  const l = sessionLayout(opts.slots, opts.slotSize);
  const [s0, s1] = seqpacketPair();
  const fds = [s0, s1];
  const base = { transport: 'socket' as const, slots: l.slots, slotSize: l.slotSize };
  return {
    grants: [
      { ...base, side: 0, fds: [s0] },
      { ...base, side: 1, fds: [s1] },
    ],
    fds,
    close: () => {
      for (const fd of fds) closeFd(fd);
      fds.length = 0;
    },
  };
}

export class SocketSource implements PacketSource {
  readonly buf: Uint8Array;
  readonly address: number;
  readonly slotSize: number;
  readonly spacePollable: Pollable;

  packets = 0;
  bytes = 0;
  batches = 0;
  /** Sends that found the socket full (the rest stayed queued). */
  again = 0;
  allocFail = 0;
  dropSendError = 0;
  lastErrno = 0;

  #fd: number;
  #slots: number;
  #free: Int32Array;
  #nfree = 0;
  #state: Uint8Array;
  /** Queue of submitted, unsent packets: (offset, length) pairs. */
  #queue: Int32Array;
  #qmask: number;
  #qhead = 0;
  #qtail = 0;
  #tr: Tracer = NO_TRACE;
  #pAlloc = 0;
  #pRelease = 0;
  #pSubmit = 0;
  #pSend = 0;
  /** traceFill() (as in ring.ts): the fill procedure (-1: none), where the last alloc() and submit()/release() ended. */
  #fillName: string | null = null;
  #pFill = -1;
  #allocEnd = 0;
  #doneEnd = 0;
  #capture: PacketCapture | null = null;

  constructor(fd: number, mem: Mapping, slots: number, slotSize: number) {
    this.#fd = fd;
    this.buf = new Uint8Array(mem.buffer, 0, slots * slotSize);
    this.address = mem.address;
    this.slotSize = slotSize;
    this.#slots = slots;
    this.#free = new Int32Array(slots);
    this.#state = new Uint8Array(slots);
    let cap = 2;
    while (cap < slots) cap *= 2;
    this.#queue = new Int32Array(cap * 2);
    this.#qmask = cap - 1;
    this.reset();
    const self = this;
    // The entrypoint polls for POLLIN only, so a full socket cannot wake us:
    // while packets are queued, arm() says "work pending" and the loop retries
    // every turn without sleeping (the sink drains the socket within µs).
    this.spacePollable = {
      fd: -1,
      active: () => false,
      pending: () => self.#nfree > 0 || self.#qhead !== self.#qtail,
      arm: () => self.#qhead !== self.#qtail,
      run: () => self.#send(),
    };
  }

  get free(): number {
    return this.#nfree;
  }

  /** Trace as "<port>.alloc_packet", "<port>.submit_packet", "<port>.release_packet", "<port>.send" (one write(2) per packet). */
  attachTrace(tr: Tracer, port: string): void {
    this.#pAlloc = tr.proc(`${port}.alloc_packet`);
    this.#pRelease = tr.proc(`${port}.release_packet`);
    this.#pSubmit = tr.proc(`${port}.submit_packet`);
    this.#pSend = tr.proc(`${port}.send`);
    if (this.#fillName !== null) this.#pFill = tr.proc(this.#fillName);
    this.#tr = tr;
  }

  traceFill(name: string): void {
    this.#fillName = name;
    if (this.#tr !== NO_TRACE) this.#pFill = this.#tr.proc(name);
  }

  capture(c: PacketCapture | null): void {
    this.#capture = c;
  }

  get queued(): number {
    return (this.#qtail - this.#qhead) >>> 0;
  }

  /** Drop everything queued; every slot not reserved by alloc() is free. */
  reset(): void {
    this.#qhead = this.#qtail = 0;
    const st = this.#state;
    let n = 0;
    for (let s = this.#slots - 1; s >= 0; s--) {
      if (st[s] === SLOT_IN_FLIGHT) st[s] = SLOT_FREE;
      if (st[s] === SLOT_FREE) this.#free[n++] = s;
    }
    this.#nfree = n;
  }

  alloc(): number {
    const tr = this.#tr;
    const filling = this.#pFill >= 0;
    if (filling && this.#doneEnd !== 0 && this.#doneEnd === tr.latest()) tr.chainNext();
    const t0 = tr.begin();
    const off = this.#alloc();
    const end = tr.end(this.#pAlloc, t0);
    if (filling) this.#allocEnd = off >= 0 ? end : 0;
    return off;
  }

  #endFill(t: number, arg: number): void {
    this.#tr.endAt(this.#pFill, this.#allocEnd, t, arg);
    this.#allocEnd = 0;
  }

  available(): number {
    if (this.#nfree === 0 && this.#qhead !== this.#qtail) this.#send();
    return this.#nfree;
  }

  #alloc(): number {
    if (this.#nfree === 0 && this.#qhead !== this.#qtail) this.#send();
    if (this.#nfree === 0) {
      this.allocFail++;
      return -1;
    }
    const s = this.#free[--this.#nfree];
    this.#state[s] = SLOT_ALLOCATED;
    return s * this.slotSize;
  }

  #slotOf(offset: number, what: string): number {
    const s = (offset / this.slotSize) | 0;
    if (s * this.slotSize !== offset || s < 0 || s >= this.#slots || this.#state[s] !== SLOT_ALLOCATED) {
      throw new Error(`${what}: offset ${offset} is not a slot reserved by alloc()`);
    }
    return s;
  }

  release(offset: number): void {
    const tr = this.#tr;
    const t0 = tr.begin();
    if (this.#pFill >= 0) this.#endFill(t0, 0);
    const s = this.#slotOf(offset, 'release');
    this.#state[s] = SLOT_FREE;
    this.#free[this.#nfree++] = s;
    const end = tr.end(this.#pRelease, t0);
    if (this.#pFill >= 0) this.#doneEnd = end;
  }

  submit(offset: number, length: number): void {
    const tr = this.#tr;
    const t0 = tr.begin();
    if (this.#pFill >= 0) this.#endFill(t0, length);
    const s = this.#slotOf(offset, 'submit');
    if (!(length >= 1 && length <= this.slotSize) || (length | 0) !== length) throw new RangeError(`submit: length ${length} not in 1..${this.slotSize}`);
    this.#state[s] = SLOT_IN_FLIGHT;
    const q = (this.#qtail & this.#qmask) << 1;
    this.#queue[q] = offset;
    this.#queue[q + 1] = length;
    this.#qtail = (this.#qtail + 1) | 0;
    const end = tr.end(this.#pSubmit, t0, length);
    if (this.#pFill >= 0) this.#doneEnd = end;
    if (this.#capture !== null) this.#capture.record(this.buf, offset, length, DIR_OUT);
  }

  flush(): void {
    if (this.#qhead !== this.#qtail) {
      this.#send();
      this.batches++;
    }
  }

  /** Try again to send what a full socket left queued. Returns packets sent. */
  retry(): number {
    return this.#qhead === this.#qtail ? 0 : this.#send();
  }

  /** Write queued packets until the socket is full. Returns packets sent. */
  #send(): number {
    const fd = this.#fd;
    const queue = this.#queue;
    const mask = this.#qmask;
    let head = this.#qhead;
    const tail = this.#qtail;
    let sent = 0;
    let bytes = 0;
    while (head !== tail) {
      const q = (head & mask) << 1;
      const off = queue[q];
      const len = queue[q + 1];
      const t0 = this.#tr.begin();
      const r = writeAddr(fd, this.address + off, len);
      this.#tr.end(this.#pSend, t0, len);
      if (r < 0) {
        if (r === -EINTR) continue;
        if (r === -EAGAIN) {
          this.again++;
          break;
        }
        // The peer is gone or refuses the message: drop it, free the slot.
        this.dropSendError++;
        this.lastErrno = -r;
      } else {
        sent++;
        bytes += len;
      }
      const s = (off / this.slotSize) | 0;
      this.#state[s] = SLOT_FREE;
      this.#free[this.#nfree++] = s;
      head = (head + 1) | 0;
    }
    this.#qhead = head;
    this.packets += sent;
    this.bytes += bytes;
    return sent;
  }
}

export class SocketSink implements PacketSink {
  readonly buf: Uint8Array;
  readonly address: number;
  /** Every message is read into the same buffer: the next delivery overwrites the last. */
  readonly heldUntilAck = false;

  packets = 0;
  bytes = 0;
  batches = 0;
  dropOversize = 0;
  recvErrors = 0;
  lastErrno = 0;
  hangups = 0;

  #fd: number;
  #slotSize: number;
  /** The last receive stopped at `max` with messages possibly left. */
  #more = false;
  /** The socket reported end of file: stop polling it. */
  #hup = false;
  #tr: Tracer = NO_TRACE;
  #pGet = 0;
  /** traceHandler() (as in ring.ts): each packet's handling as one procedure (-1: none). */
  #handlerName: string | null = null;
  #pHandler = -1;
  #capture: PacketCapture | null = null;
  /**
   * The source on the same socket. Its queue (left by a full socket) must drain
   * even when its owner stops submitting, and every component polls its sinks:
   * so the sink's pollable also retries the source's queue.
   */
  #companion: SocketSource | undefined;

  constructor(fd: number, mem: Mapping, slotSize: number, companion?: SocketSource) {
    this.#fd = fd;
    this.#slotSize = slotSize;
    this.#companion = companion;
    this.buf = new Uint8Array(mem.buffer, 0, slotSize);
    this.address = mem.address;
  }

  /** Trace as "<port>.get_packet" (one read(2) per packet). */
  attachTrace(tr: Tracer, port: string): void {
    this.#pGet = tr.proc(`${port}.get_packet`);
    if (this.#handlerName !== null) this.#pHandler = tr.proc(this.#handlerName);
    this.#tr = tr;
  }

  traceHandler(name: string): void {
    this.#handlerName = name;
    if (this.#tr !== NO_TRACE) this.#pHandler = this.#tr.proc(name);
  }

  capture(c: PacketCapture | null): void {
    this.#capture = c;
  }

  /** The socket, or -1 once it reported end of file. */
  get fd(): number {
    return this.#hup ? -1 : this.#fd;
  }

  receive(fn: (offset: number, length: number) => void, max: number): number {
    const c = this.#companion;
    if (c !== undefined && c.queued > 0) c.retry();
    if (this.#hup) return 0;
    const fd = this.#fd;
    const addr = this.address;
    // One byte more than a slot: a longer message shows up as > slotSize (truncated, dropped).
    const want = this.#slotSize + 1;
    let n = 0;
    let bytes = 0;
    this.#more = false;
    const tr = this.#tr;
    const pHandler = this.#pHandler;
    /** Where the last handling ended (traceHandler): the next get_packet starts there. */
    let handled = 0;
    let got = 0;
    while (n < max) {
      if (handled !== 0 && handled === tr.latest()) tr.chainNext();
      handled = 0;
      const t0 = tr.begin();
      const r = readAddr(fd, addr, want);
      if (r > 0) got = tr.end(this.#pGet, t0, r);
      if (r < 0) {
        if (r === -EINTR) continue;
        if (r !== -EAGAIN) {
          this.recvErrors++;
          this.lastErrno = -r;
        }
        break;
      }
      if (r === 0) {
        // Sources never send empty messages, so 0 is end of file.
        this.#hup = true;
        this.hangups++;
        break;
      }
      if (r > this.#slotSize) {
        this.dropOversize++;
        continue;
      }
      if (this.#capture !== null) this.#capture.record(this.buf, 0, r, DIR_IN);
      fn(0, r);
      if (pHandler >= 0) handled = tr.end(pHandler, got, r);
      n++;
      bytes += r;
    }
    if (n === max) this.#more = true;
    if (n > 0) {
      this.packets += n;
      this.bytes += bytes;
      this.batches++;
    }
    return n;
  }

  flushAcks(): void {}

  pending(): boolean {
    return this.#more || (this.#companion !== undefined && this.#companion.queued > 0);
  }

  /** Nothing to arm (the socket is polled); true while work is left, so the loop does not sleep. */
  arm(): boolean {
    return this.pending();
  }

  disarm(): void {}

  clearWakeup(): void {}

  /** Discard every message waiting in the socket. */
  reset(): void {
    this.#more = false;
    this.#hup = false;
    const want = this.#slotSize + 1;
    for (;;) {
      const r = readAddr(this.#fd, this.address, want);
      if (r === -EINTR) continue;
      if (r <= 0) break;
    }
  }
}

export class SocketEnd implements SessionEnd {
  readonly name: string;
  readonly out: SocketSource;
  readonly in: SocketSink;
  resets = 0;
  #maps: Mapping[];
  #fd: number;
  #ownsFd: boolean;
  #closed = false;

  constructor(name: string, fd: number, slots: number, slotSize: number, ownsFd: boolean) {
    this.name = name;
    this.#fd = fd;
    this.#ownsFd = ownsFd;
    const outMem = mapAnonymous(slots * slotSize);
    const inMem = mapAnonymous(slotSize + 4096);
    this.#maps = [outMem, inMem];
    this.out = new SocketSource(fd, outMem, slots, slotSize);
    this.in = new SocketSink(fd, inMem, slotSize, this.out);
  }

  attachTrace(tracer: Tracer, port = this.name): void {
    this.out.attachTrace(tracer, port);
    this.in.attachTrace(tracer, port);
  }

  capture(c: PacketCapture | null): void {
    this.out.capture(c);
    this.in.capture(c);
  }

  stats(): Record<string, number> {
    const o = this.out;
    const i = this.in;
    return {
      'out.packets': o.packets,
      'out.bytes': o.bytes,
      'out.batches': o.batches,
      'out.again': o.again,
      'out.alloc-fail': o.allocFail,
      'out.free-slots': o.free,
      'out.queued': o.queued,
      'in.packets': i.packets,
      'in.bytes': i.bytes,
      'in.batches': i.batches,
      'in.recv-errors': i.recvErrors,
      'in.hangups': i.hangups,
      'drop.send-error': o.dropSendError,
      'drop.recv-oversize': i.dropOversize,
      resets: this.resets,
    };
  }

  /** The peer restarted: drop what is queued here and what waits in our receive queue. */
  reset(): void {
    if (this.#closed) return;
    this.out.reset();
    this.in.reset();
    this.resets++;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#maps) m.unmap();
    if (this.#ownsFd) closeFd(this.#fd);
  }
}

/** Build the end of a socket session from its grant (fds = [socket]). */
export function openSocketEnd(grant: SessionGrant, opts: OpenOptions = {}): SocketEnd {
  if (grant.transport !== 'socket') throw new Error(`openSocketEnd: transport is ${grant.transport}`);
  if (grant.fds.length !== 1) throw new Error(`session ${grant.name}: a socket grant needs 1 fd, got ${grant.fds.length}`);
  const l = sessionLayout(grant.slots, grant.slotSize);
  return new SocketEnd(grant.name, grant.fds[0], l.slots, l.slotSize, opts.ownsFds === true);
}
