// The in-process transport: both ends in one thread, the same rings as shm
// over private anonymous memory, no wake-up fds (fd -1; the entrypoint finds work
// through pending()). Used for `inline` isolation and for unit tests of
// components. Slots have real addresses (the memory is an anonymous mapping).
import { RingEnd, initSessionMemory, sessionLayout } from './ring.ts';
import type { SessionOptions } from './shm.ts';
import { mapAnonymous } from '../sys/libc.ts';

export interface LocalSessionOptions extends SessionOptions {
  /** Port names of side a and side b (default "a" and "b"). */
  names?: [string, string];
}

/**
 * Create both ends of an in-process session. reset() on either end empties the
 * rings; the other end notices the new generation at its next call and frees
 * what it had in flight.
 */
export function createLocalSession(opts: LocalSessionOptions): [RingEnd, RingEnd] {
  const l = sessionLayout(opts.slots, opts.slotSize);
  // Private anonymous memory rather than a JS ArrayBuffer: slots get real
  // addresses, so a driver can read(2)/write(2) straight into them inline too.
  const map = mapAnonymous(l.totalBytes);
  const mem = map.buffer;
  initSessionMemory(mem, l);
  const names = opts.names ?? ['a', 'b'];
  const none: [number, number, number, number] = [-1, -1, -1, -1];
  // The memory goes when both ends are closed (one end closing must not pull it from under the other).
  let open = 2;
  const release = (): void => {
    if (--open === 0) map.unmap();
  };
  return [
    new RingEnd({ name: names[0], mem, address: map.address, layout: l, side: 0, efds: none, release }),
    new RingEnd({ name: names[1], mem, address: map.address, layout: l, side: 1, efds: none, release }),
  ];
}
