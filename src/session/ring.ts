// The packet-stream rings shared by the shm and local transports: the memory
// layout of one session, the source and sink halves of a direction, and a
// session end that joins a source and a sink. The memory is an ArrayBuffer
// (mapped from a memfd for shm, plain for local); the signaller is an eventfd
// per ring (shm) or nothing (local, fd -1). See README.md for the layout, the
// wake-up protocol and who resets what.
//
// Everything the peer can write (indices, descriptors, flags, the header,
// packet bytes) is untrusted: each side keeps its geometry and its own indices
// in local fields, reads a peer-written word once into a local, and checks it
// before use. A hostile peer can hurt only the traffic it takes part in.
import type { Pollable } from './pollable.ts';
import type { PacketSink, PacketSource, SessionEnd } from './types.ts';
import { mapAnonymous, readAddr, writeAddr } from '../sys/libc.ts';
import { NO_TRACE } from '../trace/tracer.ts';
import type { Tracer } from '../trace/tracer.ts';
import { DIR_IN, DIR_OUT } from './capture.ts';
import type { PacketCapture } from './capture.ts';

// ---- layout ------------------------------------------------------------------

export const MAGIC = 0x5350474d; // "MGPS" little-endian
export const LAYOUT_VERSION = 1;
/** Slot strides are rounded up to this (cache-line aligned slots). */
export const SLOT_ALIGN = 64;
const PAGE = 4096;
const MAX_SLOTS = 1 << 16;
const MAX_BULK = 2 ** 31;

// Header words (int32 index = byte offset / 4).
const H_MAGIC = 0;
const H_VERSION = 1;
const H_SLOTS = 2;
const H_SLOT_SIZE = 3;
const H_RING_CAP = 4;
/** Bumped by resetSessionMemory(); a side that sees it change re-synchronises. */
export const H_GENERATION = 5;
const H_HEADER_BYTES = 6;
const H_BULK_BYTES = 7;
const H_BULK0 = 8;
const H_BULK1 = 9;

/** Byte offset of ring r's control block; each is 128 bytes: producer line, consumer line. */
export const RING_CTL_OFF = 64;
const RING_CTL_BYTES = 128;
/** Within a ring control block (int32 index): head (producer writes), tail and waiting (consumer writes). */
const R_HEAD = 0;
const R_TAIL = 16;
const R_WAITING = 17;
const RING_ENTRIES_OFF = RING_CTL_OFF + 4 * RING_CTL_BYTES; // 576

/** Rings: 0 = a->b submit, 1 = a->b ack, 2 = b->a submit, 3 = b->a ack (= grant fds 1..4). */
export const RING_AB_SUBMIT = 0;
export const RING_AB_ACK = 1;
export const RING_BA_SUBMIT = 2;
export const RING_BA_ACK = 3;

export interface Layout {
  slots: number;
  /** Slot stride = largest packet, a multiple of SLOT_ALIGN. */
  slotSize: number;
  /** Entries per ring: the power of two >= slots. */
  ringCap: number;
  /** Bytes of header + rings (page-aligned): the bulk buffers start here. */
  headerBytes: number;
  /** Bytes of one bulk buffer = slots * slotSize. */
  bulkBytes: number;
  /** Byte offsets of the a->b and b->a bulk buffers. */
  bulkOff: [number, number];
  totalBytes: number;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** The layout of a session of `slots` slots of (at least) `slotSize` bytes per direction. */
export function sessionLayout(slots: number, slotSize: number): Layout {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) throw new RangeError(`slots must be an integer in 1..${MAX_SLOTS}, got ${slots}`);
  if (!Number.isInteger(slotSize) || slotSize < 1) throw new RangeError(`slotSize must be a positive integer, got ${slotSize}`);
  const stride = roundUp(slotSize, SLOT_ALIGN);
  const bulkBytes = slots * stride;
  if (bulkBytes > MAX_BULK) throw new RangeError(`slots * slotSize must be <= ${MAX_BULK} bytes, got ${bulkBytes}`);
  let ringCap = 2;
  while (ringCap < slots) ringCap *= 2;
  const headerBytes = roundUp(RING_ENTRIES_OFF + 4 * ringCap * 8, PAGE);
  const bulk1 = headerBytes + roundUp(bulkBytes, PAGE);
  return {
    slots,
    slotSize: stride,
    ringCap,
    headerBytes,
    bulkBytes,
    bulkOff: [headerBytes, bulk1],
    totalBytes: bulk1 + roundUp(bulkBytes, PAGE),
  };
}

/** Write a fresh header and empty rings (the creator of the memory does this once). */
export function initSessionMemory(mem: ArrayBuffer, l: Layout): void {
  const h = new Int32Array(mem, 0, l.headerBytes >> 2);
  h.fill(0);
  h[H_VERSION] = LAYOUT_VERSION;
  h[H_SLOTS] = l.slots;
  h[H_SLOT_SIZE] = l.slotSize;
  h[H_RING_CAP] = l.ringCap;
  h[H_HEADER_BYTES] = l.headerBytes;
  h[H_BULK_BYTES] = l.bulkBytes;
  h[H_BULK0] = l.bulkOff[0];
  h[H_BULK1] = l.bulkOff[1];
  Atomics.store(h, H_MAGIC, MAGIC);
}

/** Throw unless the header in `mem` describes layout `l` (checked once, at attach). */
export function checkSessionMemory(mem: ArrayBuffer, l: Layout): void {
  const h = new Int32Array(mem, 0, 16);
  const want = [MAGIC, LAYOUT_VERSION, l.slots, l.slotSize, l.ringCap, -1, l.headerBytes, l.bulkBytes, l.bulkOff[0], l.bulkOff[1]];
  for (let i = 0; i < want.length; i++) {
    if (i === H_GENERATION) continue;
    if (h[i] !== want[i]) throw new Error(`session memory: header word ${i} is ${h[i]}, expected ${want[i]} (not a session of ${l.slots} x ${l.slotSize} B)`);
  }
}

function ringWord(ring: number, word: number): number {
  return ((RING_CTL_OFF + ring * RING_CTL_BYTES) >> 2) + word;
}

/** Int32 indices (into the header's Int32Array) of ring r's words: for tests and tools. */
export function ringWords(l: Layout, ring: number): { head: number; tail: number; waiting: number; entries: number } {
  return {
    head: ringWord(ring, R_HEAD),
    tail: ringWord(ring, R_TAIL),
    waiting: ringWord(ring, R_WAITING),
    entries: (RING_ENTRIES_OFF + ring * l.ringCap * 8) >> 2,
  };
}

/**
 * Empty all four rings (head, tail and waiting flag zeroed) and bump the
 * generation. Called by the surviving side's reset() while its peer is dead
 * or not yet attached; the partner notices the new generation and re-reads.
 */
/**
 * Write the header's geometry words back from `l` (all but the generation):
 * a peer that died may have overwritten them, and the restarted one checks
 * them when it attaches (checkSessionMemory). The survivor does this in its
 * reset, before the new peer attaches.
 */
export function restoreSessionHeader(ctl: Int32Array, l: Layout): void {
  const words: [number, number][] = [
    [H_VERSION, LAYOUT_VERSION], [H_SLOTS, l.slots], [H_SLOT_SIZE, l.slotSize], [H_RING_CAP, l.ringCap],
    [H_HEADER_BYTES, l.headerBytes], [H_BULK_BYTES, l.bulkBytes], [H_BULK0, l.bulkOff[0]], [H_BULK1, l.bulkOff[1]],
  ];
  for (const [i, v] of words) Atomics.store(ctl, i, v);
  Atomics.store(ctl, H_MAGIC, MAGIC);
}

export function resetSessionMemory(ctl: Int32Array): void {
  for (let r = 0; r < 4; r++) {
    Atomics.store(ctl, ringWord(r, R_HEAD), 0);
    Atomics.store(ctl, ringWord(r, R_TAIL), 0);
    Atomics.store(ctl, ringWord(r, R_WAITING), 0);
  }
  Atomics.add(ctl, H_GENERATION, 1);
}

// ---- wake-ups ----------------------------------------------------------------

let scratchAddr = 0;
/** An 8-byte "1" at scratchAddr (eventfd_write) and 8 bytes to read into at +8. */
function scratch(): number {
  if (scratchAddr === 0) {
    const m = mapAnonymous(PAGE);
    new Uint8Array(m.buffer)[0] = 1;
    scratchAddr = m.address;
  }
  return scratchAddr;
}

/** Add 1 to an eventfd (no-op for fd -1). */
export function signalFd(fd: number): void {
  if (fd >= 0) writeAddr(fd, scratch(), 8);
}

/** Consume an eventfd's count (non-blocking; no-op for fd -1). */
export function drainFd(fd: number): void {
  if (fd >= 0) readAddr(fd, scratch() + 8, 8);
}

// ---- slot states (source side, local memory) ----------------------------------

export const SLOT_FREE = 0;
/** Reserved by alloc(), owned by the caller until submit() or release(). */
export const SLOT_ALLOCATED = 1;
/** Submitted: owned by the session until its acknowledgement comes back. */
export const SLOT_IN_FLIGHT = 2;

function slotError(what: string, offset: number): Error {
  return new Error(`${what}: offset ${offset} is not a slot reserved by alloc()`);
}

// ---- source ----------------------------------------------------------------------

/** The sending half of one direction over shared rings. */
export class RingSource implements PacketSource {
  readonly buf: Uint8Array;
  readonly address: number;
  readonly slotSize: number;
  readonly spacePollable: Pollable;

  // Statistics (plain numbers: the hot path only adds).
  packets = 0;
  bytes = 0;
  batches = 0;
  wakeups = 0;
  acks = 0;
  allocFail = 0;
  dropAckMisaligned = 0;
  dropAckRange = 0;
  dropAckNotInFlight = 0;
  dropAckIndex = 0;
  resyncs = 0;

  #ctl: Int32Array;
  #slots: number;
  #mask: number;
  #cap: number;
  #bulkBytes: number;
  #subHead: number;
  #subWait: number;
  #subEnt: number;
  #ackHead: number;
  #ackTail: number;
  #ackWait: number;
  #ackEnt: number;
  /** The eventfd this side writes to wake the sink, and the one it polls for acks. */
  #wakeFd: number;
  #spaceFd: number;
  #gen = 0;
  /** Next submit index, and the last one published. */
  #head = 0;
  #published = 0;
  /** Next ack to read. */
  #ackNext = 0;
  #free: Int32Array;
  #nfree = 0;
  #state: Uint8Array;
  #armed = false;
  // Tracing (procedures "<port>.<op>", see src/trace/README.md) and capture.
  #tr: Tracer = NO_TRACE;
  #pAlloc = 0;
  #pRelease = 0;
  #pSubmit = 0;
  #pFlush = 0;
  #pAcked = 0;
  #pWakeSend = 0;
  #pWakeRecv = 0;
  /**
   * traceFill(): the owner's work on a slot, from the end of alloc() to the
   * start of submit() or release(), as one procedure (-1: none); the reading
   * that ended the last alloc() (its start) and the last submit() or
   * release() (where the next alloc() starts). 0: none.
   */
  #fillName: string | null = null;
  #pFill = -1;
  #allocEnd = 0;
  #doneEnd = 0;
  #capture: PacketCapture | null = null;

  constructor(ctl: Int32Array, l: Layout, bulk: Uint8Array, address: number, submitRing: number, ackRing: number, wakeFd: number, spaceFd: number) {
    this.buf = bulk;
    this.address = address;
    this.slotSize = l.slotSize;
    this.#ctl = ctl;
    this.#slots = l.slots;
    this.#cap = l.ringCap;
    this.#mask = l.ringCap - 1;
    this.#bulkBytes = l.bulkBytes;
    this.#subHead = ringWord(submitRing, R_HEAD);
    this.#subWait = ringWord(submitRing, R_WAITING);
    this.#subEnt = (RING_ENTRIES_OFF + submitRing * l.ringCap * 8) >> 2;
    this.#ackHead = ringWord(ackRing, R_HEAD);
    this.#ackTail = ringWord(ackRing, R_TAIL);
    this.#ackWait = ringWord(ackRing, R_WAITING);
    this.#ackEnt = (RING_ENTRIES_OFF + ackRing * l.ringCap * 8) >> 2;
    this.#wakeFd = wakeFd;
    this.#spaceFd = spaceFd;
    this.#free = new Int32Array(l.slots);
    this.#state = new Uint8Array(l.slots);
    this.resync();
    this.resyncs = 0;
    const self = this;
    this.spacePollable = {
      fd: spaceFd,
      active: () => self.#nfree === 0,
      pending: () => self.#nfree > 0 || Atomics.load(self.#ctl, self.#ackHead) !== self.#ackNext,
      arm: () => self.#armSpace(),
      disarm: () => self.#disarmSpace(),
      run: (readable: boolean) => {
        if (readable) {
          const t0 = self.#tr.begin();
          drainFd(self.#spaceFd);
          self.#tr.end(self.#pWakeRecv, t0);
        }
        if (Atomics.load(self.#ctl, H_GENERATION) !== self.#gen) self.resync();
        return self.#reclaim(false);
      },
    };
  }

  /** Trace this source's operations as "<port>.alloc_packet", "<port>.submit_packet", ... */
  attachTrace(tr: Tracer, port: string): void {
    this.#pAlloc = tr.proc(`${port}.alloc_packet`);
    this.#pRelease = tr.proc(`${port}.release_packet`);
    this.#pSubmit = tr.proc(`${port}.submit_packet`);
    this.#pFlush = tr.proc(`${port}.flush`);
    this.#pAcked = tr.proc(`${port}.get_acked`);
    this.#pWakeSend = tr.proc(`${port}.wakeup_send`);
    this.#pWakeRecv = tr.proc(`${port}.wakeup_recv`);
    if (this.#fillName !== null) this.#pFill = tr.proc(this.#fillName);
    this.#tr = tr;
  }

  traceFill(name: string): void {
    this.#fillName = name;
    if (this.#tr !== NO_TRACE) this.#pFill = this.#tr.proc(name);
  }

  /** Copy every submitted packet into `c` (null: stop). */
  capture(c: PacketCapture | null): void {
    this.#capture = c;
  }

  /** Slots not free: reserved by alloc(), in flight, or acknowledged and not yet reclaimed. */
  get busy(): number {
    return this.#slots - this.#nfree;
  }

  /** Slots free right now (not counting acks not yet reclaimed). */
  get free(): number {
    return this.#nfree;
  }

  /**
   * Forget everything in flight and adopt the indices now in shared memory:
   * in-flight and unpublished slots become free; slots reserved by alloc()
   * and not yet submitted stay with their owner.
   */
  resync(): void {
    const ctl = this.#ctl;
    this.#gen = Atomics.load(ctl, H_GENERATION);
    this.#head = this.#published = Atomics.load(ctl, this.#subHead) | 0;
    this.#ackNext = Atomics.load(ctl, this.#ackTail) | 0;
    this.#armed = false;
    const st = this.#state;
    let n = 0;
    // Push in reverse so alloc() hands out slot 0 first.
    for (let s = this.#slots - 1; s >= 0; s--) {
      if (st[s] === SLOT_IN_FLIGHT) st[s] = SLOT_FREE;
      if (st[s] === SLOT_FREE) this.#free[n++] = s;
    }
    this.#nfree = n;
    this.resyncs++;
  }

  alloc(): number {
    const tr = this.#tr;
    const filling = this.#pFill >= 0;
    // A filling owner's loop is alloc, fill, submit: an alloc() right after
    // the previous submit() (no tracepoint between) starts at its reading.
    if (filling && this.#doneEnd !== 0 && this.#doneEnd === tr.latest()) tr.chainNext();
    const t0 = tr.begin();
    const off = this.#alloc();
    const end = tr.end(this.#pAlloc, t0);
    if (filling) this.#allocEnd = off >= 0 ? end : 0;
    return off;
  }

  available(): number {
    if (Atomics.load(this.#ctl, H_GENERATION) !== this.#gen) this.resync();
    if (Atomics.load(this.#ctl, this.#ackHead) !== this.#ackNext) this.#reclaim(false);
    return this.#nfree;
  }

  #alloc(): number {
    const ctl = this.#ctl;
    if (Atomics.load(ctl, H_GENERATION) !== this.#gen) this.resync();
    // get_acked starts at alloc's start and alloc_packet ends with it (chained: no clock read of their own).
    if (Atomics.load(ctl, this.#ackHead) !== this.#ackNext) this.#reclaim(true);
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
    if (s * this.slotSize !== offset || s < 0 || s >= this.#slots || this.#state[s] !== SLOT_ALLOCATED) throw slotError(what, offset);
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

  /** The fill of the slot alloc() last handed out ends where submit() or release() starts. */
  #endFill(t: number, arg: number): void {
    this.#tr.endAt(this.#pFill, this.#allocEnd, t, arg);
    this.#allocEnd = 0;
  }

  submit(offset: number, length: number): void {
    const tr = this.#tr;
    const t0 = tr.begin();
    if (this.#pFill >= 0) this.#endFill(t0, length);
    const s = this.#slotOf(offset, 'submit');
    if (!(length >= 1 && length <= this.slotSize) || (length | 0) !== length) throw new RangeError(`submit: length ${length} not in 1..${this.slotSize}`);
    this.#state[s] = SLOT_IN_FLIGHT;
    const e = this.#subEnt + ((this.#head & this.#mask) << 1);
    const ctl = this.#ctl;
    ctl[e] = offset;
    ctl[e + 1] = length;
    this.#head = (this.#head + 1) | 0;
    this.packets++;
    this.bytes += length;
    const end = tr.end(this.#pSubmit, t0, length);
    if (this.#pFill >= 0) this.#doneEnd = end;
    if (this.#capture !== null) this.#capture.record(this.buf, offset, length, DIR_OUT);
  }

  flush(): void {
    const ctl = this.#ctl;
    if (Atomics.load(ctl, H_GENERATION) !== this.#gen) {
      // The session was reset under us: the unpublished batch is void.
      this.resync();
      return;
    }
    const head = this.#head;
    if (head === this.#published) return;
    const tr = this.#tr;
    // A filling owner's flush right after its last submit() starts there.
    if (this.#pFill >= 0 && this.#doneEnd !== 0 && this.#doneEnd === tr.latest()) tr.chainNext();
    const t0 = tr.begin();
    const batch = (head - this.#published) >>> 0;
    this.#published = head;
    // Descriptors were written with plain stores; this seq-cst store publishes
    // them and orders the publish before the load of the waiting flag.
    Atomics.store(ctl, this.#subHead, head);
    this.batches++;
    if (Atomics.load(ctl, this.#subWait) !== 0 && Atomics.exchange(ctl, this.#subWait, 0) !== 0) {
      // wakeup_send starts at flush's reading (two atomics ago) and flush ends with it.
      const tw = tr.latest();
      signalFd(this.#wakeFd);
      tr.end(this.#pWakeSend, tw);
      this.wakeups++;
      tr.chainNext();
    }
    tr.end(this.#pFlush, t0, batch);
  }

  /**
   * Take back every acknowledged slot; bogus acks are dropped and counted.
   * Returns slots freed. `inAlloc`: called at the start of alloc(), whose
   * reading it starts from and whose span it ends.
   */
  #reclaim(inAlloc: boolean): number {
    const ctl = this.#ctl;
    const head = Atomics.load(ctl, this.#ackHead) | 0;
    let next = this.#ackNext;
    let n = (head - next) >>> 0;
    if (n === 0) return 0;
    if (n > this.#cap) {
      // The peer's index jumped beyond the ring: skip to it, take nothing.
      this.dropAckIndex++;
      this.#ackNext = head;
      Atomics.store(ctl, this.#ackTail, head);
      return 0;
    }
    const t0 = inAlloc ? this.#tr.latest() : this.#tr.begin();
    const ent = this.#ackEnt;
    const mask = this.#mask;
    const size = this.slotSize;
    const st = this.#state;
    const free = this.#free;
    let nfree = this.#nfree;
    let got = 0;
    while (n-- > 0) {
      const off = ctl[ent + ((next & mask) << 1)] >>> 0;
      next = (next + 1) | 0;
      if (off >= this.#bulkBytes) {
        this.dropAckRange++;
        continue;
      }
      const s = (off / size) | 0;
      if (s * size !== off) {
        this.dropAckMisaligned++;
        continue;
      }
      if (st[s] !== SLOT_IN_FLIGHT) {
        this.dropAckNotInFlight++;
        continue;
      }
      st[s] = SLOT_FREE;
      free[nfree++] = s;
      got++;
    }
    this.#nfree = nfree;
    this.#ackNext = next;
    Atomics.store(ctl, this.#ackTail, next);
    this.acks += got;
    this.#tr.end(this.#pAcked, t0, got);
    if (inAlloc) this.#tr.chainNext();
    return got;
  }

  #armSpace(): boolean {
    if (this.#nfree > 0) return false; // nothing to wait for: do not make the sink signal
    Atomics.exchange(this.#ctl, this.#ackWait, 1);
    this.#armed = true;
    return Atomics.load(this.#ctl, this.#ackHead) !== this.#ackNext;
  }

  #disarmSpace(): void {
    if (!this.#armed) return;
    this.#armed = false;
    Atomics.store(this.#ctl, this.#ackWait, 0);
  }
}

// ---- sink ----------------------------------------------------------------------

/** The receiving half of one direction over shared rings. */
export class RingSink implements PacketSink {
  /** A delivered slot is the source's until flushAcks() publishes its ack. */
  readonly heldUntilAck = true;
  readonly buf: Uint8Array;
  readonly address: number;
  readonly fd: number;

  packets = 0;
  bytes = 0;
  batches = 0;
  acks = 0;
  ackBatches = 0;
  wakeups = 0;
  dropRange = 0;
  dropMisaligned = 0;
  dropLength = 0;
  dropIndex = 0;
  resyncs = 0;

  #ctl: Int32Array;
  #cap: number;
  #mask: number;
  #slotSize: number;
  #bulkBytes: number;
  #subHead: number;
  #subTail: number;
  #subWait: number;
  #subEnt: number;
  #ackHead: number;
  #ackTail: number;
  #ackWait: number;
  #ackEnt: number;
  #ackFd: number;
  #gen = 0;
  /** Next descriptor to read; next ack to write; last ack published. */
  #next = 0;
  #ackNext = 0;
  #ackPublished = 0;
  #tr: Tracer = NO_TRACE;
  #pGet = 0;
  #pAck = 0;
  #pWakeSend = 0;
  #pWakeRecv = 0;
  /**
   * Chained tracepoints across this sink's calls (sinkPollable: clearWakeup,
   * receive, flushAcks in a row): the reading that ended wakeup_recv and the
   * one that ended receive's loop; the next call starts from it if it is
   * still the tracer's latest reading, else reads the clock. 0: none.
   */
  #wokeAt = 0;
  #ackAt = 0;
  /** traceHandler(): each packet's handling, from get_packet's end to the next reading, as one procedure (-1: none). */
  #handlerName: string | null = null;
  #pHandler = -1;
  #capture: PacketCapture | null = null;

  constructor(ctl: Int32Array, l: Layout, bulk: Uint8Array, address: number, submitRing: number, ackRing: number, wakeFd: number, ackFd: number) {
    this.buf = bulk;
    this.address = address;
    this.fd = wakeFd;
    this.#ctl = ctl;
    this.#cap = l.ringCap;
    this.#mask = l.ringCap - 1;
    this.#slotSize = l.slotSize;
    this.#bulkBytes = l.bulkBytes;
    this.#subHead = ringWord(submitRing, R_HEAD);
    this.#subTail = ringWord(submitRing, R_TAIL);
    this.#subWait = ringWord(submitRing, R_WAITING);
    this.#subEnt = (RING_ENTRIES_OFF + submitRing * l.ringCap * 8) >> 2;
    this.#ackHead = ringWord(ackRing, R_HEAD);
    this.#ackTail = ringWord(ackRing, R_TAIL);
    this.#ackWait = ringWord(ackRing, R_WAITING);
    this.#ackEnt = (RING_ENTRIES_OFF + ackRing * l.ringCap * 8) >> 2;
    this.#ackFd = ackFd;
    this.resync();
    this.resyncs = 0;
  }

  /** Trace this sink's operations as "<port>.get_packet", "<port>.acknowledge_packet", ... */
  attachTrace(tr: Tracer, port: string): void {
    this.#pGet = tr.proc(`${port}.get_packet`);
    this.#pAck = tr.proc(`${port}.acknowledge_packet`);
    this.#pWakeSend = tr.proc(`${port}.wakeup_send`);
    this.#pWakeRecv = tr.proc(`${port}.wakeup_recv`);
    if (this.#handlerName !== null) this.#pHandler = tr.proc(this.#handlerName);
    this.#tr = tr;
  }

  traceHandler(name: string): void {
    this.#handlerName = name;
    if (this.#tr !== NO_TRACE) this.#pHandler = this.#tr.proc(name);
  }

  /** Copy every received packet into `c` (null: stop). */
  capture(c: PacketCapture | null): void {
    this.#capture = c;
  }

  /** Descriptors submitted by the peer and not yet received (as the peer wrote the head: a hint). */
  get queued(): number {
    const n = (Atomics.load(this.#ctl, this.#subHead) - this.#next) >>> 0;
    return n > this.#cap ? this.#cap : n;
  }

  /** Adopt the indices now in shared memory; unpublished acks are void. */
  resync(): void {
    const ctl = this.#ctl;
    this.#gen = Atomics.load(ctl, H_GENERATION);
    this.#next = Atomics.load(ctl, this.#subTail) | 0;
    this.#ackNext = this.#ackPublished = Atomics.load(ctl, this.#ackHead) | 0;
    this.resyncs++;
  }

  receive(fn: (offset: number, length: number) => void, max: number): number {
    const ctl = this.#ctl;
    const woke = this.#wokeAt;
    this.#wokeAt = 0;
    this.#ackAt = 0;
    if (Atomics.load(ctl, H_GENERATION) !== this.#gen) this.resync();
    let next = this.#next;
    const head = Atomics.load(ctl, this.#subHead) | 0;
    const avail = (head - next) >>> 0;
    if (avail === 0) return 0;
    const cap = this.#cap;
    if (avail > cap) {
      // The peer's index jumped beyond the ring: skip to it, deliver nothing.
      this.dropIndex++;
      this.#next = head;
      Atomics.store(ctl, this.#subTail, head);
      return 0;
    }
    // Room in the ack ring (an honest source never lets it fill: see README).
    let ackNext = this.#ackNext;
    const ackUsed = (ackNext - Atomics.load(ctl, this.#ackTail)) >>> 0;
    let room = ackUsed >= cap ? 0 : cap - ackUsed;
    let n = avail < max ? avail : max;
    const mask = this.#mask;
    const ent = this.#subEnt;
    const ackEnt = this.#ackEnt;
    const size = this.#slotSize;
    const bulkBytes = this.#bulkBytes;
    const tr = this.#tr;
    const pGet = this.#pGet;
    const pHandler = this.#pHandler;
    const capture = this.#capture;
    let delivered = 0;
    let bytes = 0;
    // get_packet: from here (the end of wakeup_recv when just woken, or the end
    // of the previous packet's handling) until the descriptor is read and
    // checked. With a handler procedure (traceHandler), the handling is timed
    // from get_packet's end to one reading after fn, where the next
    // get_packet starts; without, a handler that ends with a tracepoint calls
    // tr.chainNext(), and the next get_packet starts from its reading.
    let t = woke !== 0 && woke === tr.latest() ? woke : tr.begin();
    while (n > 0) {
      // Read each peer-written word once; check the local copies.
      const e = ent + ((next & mask) << 1);
      const off = ctl[e] >>> 0;
      const len = ctl[e + 1] >>> 0;
      if (off >= bulkBytes) this.dropRange++;
      else if (((off / size) | 0) * size !== off) this.dropMisaligned++;
      else if (len > size || len === 0) this.dropLength++;
      else {
        if (room === 0) break;
        const got = tr.end(pGet, t, len);
        if (capture !== null) capture.record(this.buf, off, len, DIR_IN);
        fn(off, len);
        if (pHandler >= 0) {
          t = tr.stage();
          tr.endAt(pHandler, got, t, len);
        } else t = tr.begin();
        const a = ackEnt + ((ackNext & mask) << 1);
        ctl[a] = off;
        ctl[a + 1] = len;
        ackNext = (ackNext + 1) | 0;
        room--;
        delivered++;
        bytes += len;
      }
      next = (next + 1) | 0;
      n--;
    }
    this.#next = next;
    this.#ackNext = ackNext;
    Atomics.store(ctl, this.#subTail, next);
    if (delivered > 0) {
      this.packets += delivered;
      this.bytes += bytes;
      this.batches++;
      // acknowledge_packet starts where the loop's last reading was taken.
      this.#ackAt = t;
    }
    return delivered;
  }

  flushAcks(): void {
    const ctl = this.#ctl;
    if (Atomics.load(ctl, H_GENERATION) !== this.#gen) {
      this.resync();
      return;
    }
    const h = this.#ackNext;
    const from = this.#ackAt;
    this.#ackAt = 0;
    if (h === this.#ackPublished) return;
    const tr = this.#tr;
    const t0 = from !== 0 && from === tr.latest() ? from : tr.begin();
    const n = (h - this.#ackPublished) >>> 0;
    this.acks += n;
    this.#ackPublished = h;
    Atomics.store(ctl, this.#ackHead, h);
    this.ackBatches++;
    if (Atomics.load(ctl, this.#ackWait) !== 0 && Atomics.exchange(ctl, this.#ackWait, 0) !== 0) {
      const tw = tr.latest();
      signalFd(this.#ackFd);
      tr.end(this.#pWakeSend, tw);
      this.wakeups++;
      tr.chainNext();
    }
    tr.end(this.#pAck, t0, n);
  }

  pending(): boolean {
    const ctl = this.#ctl;
    this.#wokeAt = 0;
    if (Atomics.load(ctl, H_GENERATION) !== this.#gen) this.resync();
    return Atomics.load(ctl, this.#subHead) !== this.#next;
  }

  arm(): boolean {
    const ctl = this.#ctl;
    // A locked exchange: the flag is visible before the head is re-read.
    Atomics.exchange(ctl, this.#subWait, 1);
    return Atomics.load(ctl, this.#subHead) !== this.#next;
  }

  disarm(): void {
    const ctl = this.#ctl;
    if (ctl[this.#subWait] !== 0) Atomics.store(ctl, this.#subWait, 0);
  }

  clearWakeup(): void {
    const t0 = this.#tr.begin();
    drainFd(this.fd);
    this.#wokeAt = this.#tr.end(this.#pWakeRecv, t0);
  }
}

// ---- session end -------------------------------------------------------------------

export interface RingEndOptions {
  name: string;
  /** The session memory (header, rings, both bulk buffers). */
  mem: ArrayBuffer;
  /** Numeric address of mem[0], or -1 (local memory). */
  address: number;
  layout: Layout;
  side: 0 | 1;
  /** Eventfds of rings 0..3 (-1: no signalling). */
  efds: [number, number, number, number];
  /** Release the memory (and fds) on close. */
  release?: () => void;
}

/** One end of a ring-based session: a source into one direction, a sink from the other. */
export class RingEnd implements SessionEnd {
  readonly name: string;
  readonly layout: Layout;
  readonly out: RingSource;
  readonly in: RingSink;
  readonly ctl: Int32Array;
  resets = 0;
  #release: (() => void) | undefined;
  #closed = false;

  constructor(o: RingEndOptions) {
    const l = o.layout;
    this.name = o.name;
    this.layout = l;
    this.ctl = new Int32Array(o.mem, 0, l.headerBytes >> 2);
    const outDir = o.side; // a (0) sends a->b (bulk 0), b (1) sends b->a (bulk 1)
    const inDir = 1 - o.side;
    const bulk = (d: number): Uint8Array => new Uint8Array(o.mem, l.bulkOff[d], l.bulkBytes);
    const addr = (d: number): number => (o.address < 0 ? -1 : o.address + l.bulkOff[d]);
    const outSubmit = outDir * 2;
    const inSubmit = inDir * 2;
    this.out = new RingSource(this.ctl, l, bulk(outDir), addr(outDir), outSubmit, outSubmit + 1, o.efds[outSubmit], o.efds[outSubmit + 1]);
    this.in = new RingSink(this.ctl, l, bulk(inDir), addr(inDir), inSubmit, inSubmit + 1, o.efds[inSubmit], o.efds[inSubmit + 1]);
    this.#release = o.release;
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
      'out.wakeups': o.wakeups,
      'out.acks': o.acks,
      'out.alloc-fail': o.allocFail,
      'out.free-slots': o.free,
      'out.busy-slots': o.busy,
      'in.packets': i.packets,
      'in.bytes': i.bytes,
      'in.batches': i.batches,
      'in.queued': this.#closed ? 0 : i.queued,
      'in.acks': i.acks,
      'in.wakeups': i.wakeups,
      'drop.ack-misaligned': o.dropAckMisaligned,
      'drop.ack-out-of-range': o.dropAckRange,
      'drop.ack-not-in-flight': o.dropAckNotInFlight,
      'drop.ack-ring-index': o.dropAckIndex,
      'drop.desc-misaligned': i.dropMisaligned,
      'drop.desc-out-of-range': i.dropRange,
      'drop.desc-bad-length': i.dropLength,
      'drop.desc-ring-index': i.dropIndex,
      generation: this.#closed ? -1 : Atomics.load(this.ctl, H_GENERATION),
      resyncs: o.resyncs + i.resyncs,
      resets: this.resets,
    };
  }

  /**
   * The peer restarted (it is dead or not yet attached): empty all four rings
   * in shared memory, bump the generation, and free everything in flight here.
   */
  reset(): void {
    if (this.#closed) return;
    restoreSessionHeader(this.ctl, this.layout);
    resetSessionMemory(this.ctl);
    this.out.resync();
    this.in.resync();
    // Stale wake-ups from before the reset would cost one spurious turn; drop them.
    this.in.clearWakeup();
    drainFd(this.out.spacePollable.fd);
    this.resets++;
  }

  /** Release the memory. The buffers must not be touched afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const r = this.#release;
    this.#release = undefined;
    if (r !== undefined) r();
  }
}
