// The Nic session contract, modelled on Genode's packet stream
// (repos/os/include/os/packet_stream.h): per direction a bulk buffer, a submit
// ring and an acknowledge ring of (offset, length) descriptors. A packet on a
// Nic session is a 12-byte virtio_net_hdr followed by an Ethernet frame (see
// src/net/vnet.ts), so GSO super-frames and checksum offload cross whole.
//
// Every transport (shared memory, socket copy, in-process) implements these
// interfaces, so components are the same code whatever isolates them.
import type { Tracer } from '../trace/tracer.ts';
import type { PacketCapture } from './capture.ts';

/** Anything the entrypoint loop (src/runtime/entrypoint.ts) polls and runs. */
export interface Pollable {
  /** The fd to poll for readability, or -1. */
  readonly fd: number;
  /** When false, the fd is not polled (e.g. a source waiting for buffer space). */
  active?(): boolean;
  /** Cheap check for work that needs no fd readiness (e.g. a non-empty ring). */
  pending?(): boolean;
  /** Before sleeping: enable the peer's wake-up; return true if work arrived meanwhile. */
  arm?(): boolean;
  /** After waking: the peer need not signal any more. */
  disarm?(): void;
  /** Do one batch of work; `readable` says the fd was reported ready. Returns units of work done. */
  run(readable: boolean): number;
}

/** Bytes of virtio_net_hdr in front of every frame on a Nic session. */
export { VNET_HDR_LEN } from '../net/vnet.ts';

/** The sending half of one direction. Only one thread uses it. */
export interface PacketSource {
  /** The bulk memory this side writes packets into. */
  readonly buf: Uint8Array;
  /** The numeric address of buf[0] (for read(2) straight into the slot), or -1. */
  readonly address: number;
  /** The largest packet a slot holds, in bytes. */
  readonly slotSize: number;
  /** Reserve a slot: returns its offset in buf, or -1 when every slot is in flight. Reclaims acknowledged slots first. */
  alloc(): number;
  /** Slots alloc() would hand out now (acknowledged slots reclaimed first). */
  available(): number;
  /** Give back a slot that was reserved and not submitted. */
  release(offset: number): void;
  /** Queue a packet (offset from alloc, length <= slotSize). The slot stays in flight until acknowledged. */
  submit(offset: number, length: number): void;
  /** Publish the submitted batch and wake the sink if it sleeps. Call once per batch. */
  flush(): void;
  /** A pollable that wakes when acknowledged slots come back (for a source that ran out); run(): reclaims. */
  readonly spacePollable: Pollable;
  /**
   * Trace the owner's work on each slot, from the end of alloc() to the start
   * of submit() or release(), as procedure `name` on the tracer attached to
   * this end (argument: the bytes submitted, 0 when released); an alloc()
   * right after a submit() or release() then starts at its reading. For an
   * owner that fills one slot at a time (a driver's read(2) into it) and
   * records no tracepoint of its own meanwhile.
   */
  traceFill(name: string): void;
}

/** The receiving half of one direction. Only one thread uses it. */
export interface PacketSink {
  readonly buf: Uint8Array;
  readonly address: number;
  /**
   * Deliver up to `max` pending packets to fn(offset, length); each is acknowledged
   * when fn returns (fn must copy what it keeps). Descriptors that fall outside the
   * bulk buffer are dropped and counted, never delivered. Returns packets delivered.
   */
  receive(fn: (offset: number, length: number) => void, max: number): number;
  /** Acknowledge the packets delivered so far and wake the source if it waits for space. */
  flushAcks(): void;
  /**
   * True when a delivered packet's bytes stay in place, unchanged by this
   * side, until flushAcks() (shared-memory and local rings: the slot is the
   * source's until acknowledged); false when the next delivery may reuse them
   * (socket: one receive buffer). A sink whose owner collects packets during
   * receive() and hands them on together before flushAcks() (the nic-driver's
   * sendmmsg) may do so only when this is true.
   */
  readonly heldUntilAck: boolean;
  /** True when packets are waiting. */
  pending(): boolean;
  /** The fd that becomes readable when the source submits while this side sleeps; -1 for in-process. */
  readonly fd: number;
  /** Before sleeping: ask the source to signal; returns true if packets arrived meanwhile. */
  arm(): boolean;
  disarm(): void;
  /** Consume the wake-up signal (after the fd was readable). */
  clearWakeup(): void;
  /**
   * Trace receive()'s fn, each packet's handling, as procedure `name` on the
   * tracer attached to this end (argument: the packet's bytes), from the end
   * of get_packet to a reading after fn returns, which the next get_packet
   * starts from: the component's own handling, timed without a tracepoint in
   * its code.
   */
  traceHandler(name: string): void;
}

/** One end of a Nic session, as a component sees it. */
export interface SessionEnd {
  /** The port name this component knows the session by (e.g. "nic", "lan"). */
  readonly name: string;
  readonly out: PacketSource;
  readonly in: PacketSink;
  /** Statistics for status reports. */
  stats(): Record<string, number>;
  /** Forget all in-flight state after the peer restarted (both rings empty, all slots free). */
  reset(): void;
  close(): void;
  /** Record this end's operations with `tracer`, as procedures "<port>.<operation>" (port: default this end's name; see src/trace/README.md). */
  attachTrace?(tracer: Tracer, port?: string): void;
  /** Copy every packet this end submits or receives into `c`; null stops. */
  capture?(c: PacketCapture | null): void;
}

/** How a session crosses the isolation boundary. */
export type TransportKind = 'shm' | 'socket' | 'local';

/** What init hands a component for one session end (JSON; fds are inherited). */
export interface SessionGrant {
  name: string;
  transport: TransportKind;
  /** shm: 0 = the side that created the layout header ("a"), 1 = the other ("b"). */
  side: 0 | 1;
  slots: number;
  slotSize: number;
  /** local: both ends with the same key are paired in-process by the host. */
  key?: string;
  /** Inherited fds: shm = [memfd, efd a->b submit, efd a->b ack, efd b->a submit, efd b->a ack]; socket = [socket]. */
  fds: number[];
}
