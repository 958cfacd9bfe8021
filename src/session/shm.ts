// The shared-memory transport: one sealed memfd per session holding the header,
// the four rings and the two bulk buffers, plus one eventfd per ring for
// wake-ups. init creates them (createShmSession) and passes all five fds to
// both partners; each partner maps the memfd and builds its end
// (openShmEnd). Packets never get copied by the transport.
import { fstatSync } from 'node:fs';
import { close as closeFd, eventfd, mapShared, memfdCreateSealed } from '../sys/libc.ts';
import { RingEnd, checkSessionMemory, initSessionMemory, sessionLayout } from './ring.ts';
import type { SessionGrant } from './types.ts';

export { resetSessionMemory, sessionLayout } from './ring.ts';

export interface SessionOptions {
  /** Slots per direction. */
  slots: number;
  /** Largest packet, bytes (rounded up to a multiple of 64). */
  slotSize: number;
}

/** A grant without the port name; fds are valid in the process that created them. */
export type SideGrant = Omit<SessionGrant, 'name' | 'fds'> & { fds: number[] };

/** What a creator (init) holds for one session. */
export interface SessionResources {
  /** Grants for side a (0) and side b (1). */
  grants: [SideGrant, SideGrant];
  /** Every fd created, in grant order; keep them open while the session may be granted again (restarts). */
  fds: number[];
  /** Close every fd in this process. */
  close(): void;
}

/**
 * Create the memory and eventfds of one shm session in the calling process and
 * write its header. fds = [memfd, efd a->b submit, efd a->b ack, efd b->a submit,
 * efd b->a ack]; both sides get all five.
 */
export function createShmSession(opts: SessionOptions): SessionResources {
  const l = sessionLayout(opts.slots, opts.slotSize);
  const fds: number[] = [];
  try {
    fds.push(memfdCreateSealed('microgate-session', l.totalBytes));
    // Blocking-mode does not matter to poll(); non-blocking keeps a stray read from hanging.
    for (let i = 0; i < 4; i++) fds.push(eventfd());
    const m = mapShared(fds[0], l.headerBytes);
    try {
      initSessionMemory(m.buffer, l);
    } finally {
      m.unmap();
    }
  } catch (e) {
    for (const fd of fds) closeFd(fd);
    throw e;
  }
  const base = { transport: 'shm' as const, slots: l.slots, slotSize: l.slotSize };
  return {
    grants: [
      { ...base, side: 0, fds: fds.slice() },
      { ...base, side: 1, fds: fds.slice() },
    ],
    fds,
    close: () => {
      for (const fd of fds) closeFd(fd);
      fds.length = 0;
    },
  };
}

export interface OpenOptions {
  /** close() also closes the grant's fds (default false: inherited fds live as long as the process). */
  ownsFds?: boolean;
}

/**
 * Attach to a shm session: map the memfd, check the header against the grant,
 * and adopt the ring indices as they are now (fresh or just reset by the peer).
 */
export function openShmEnd(grant: SessionGrant, opts: OpenOptions = {}): RingEnd {
  if (grant.transport !== 'shm') throw new Error(`openShmEnd: transport is ${grant.transport}`);
  if (grant.fds.length !== 5) throw new Error(`session ${grant.name}: a shm grant needs 5 fds, got ${grant.fds.length}`);
  if (grant.side !== 0 && grant.side !== 1) throw new Error(`session ${grant.name}: side must be 0 or 1`);
  const l = sessionLayout(grant.slots, grant.slotSize);
  const [memfd, e0, e1, e2, e3] = grant.fds;
  const size = fstatSync(memfd).size;
  if (size < l.totalBytes) throw new Error(`session ${grant.name}: memfd is ${size} bytes, the layout needs ${l.totalBytes}`);
  const m = mapShared(memfd, l.totalBytes);
  try {
    checkSessionMemory(m.buffer, l);
  } catch (e) {
    m.unmap();
    throw new Error(`session ${grant.name}: ${(e as Error).message}`);
  }
  const fds = grant.fds.slice();
  return new RingEnd({
    name: grant.name,
    mem: m.buffer,
    address: m.address,
    layout: l,
    side: grant.side,
    efds: [e0, e1, e2, e3],
    release: () => {
      m.unmap();
      if (opts.ownsFds === true) for (const fd of fds) closeFd(fd);
    },
  });
}
