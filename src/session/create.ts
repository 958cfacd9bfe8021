// Creating the kernel objects of one session (init's side): dispatch on the
// transport. The returned grants carry fds valid in the calling process; init
// maps them to the child's fd numbers when it spawns each side.
import type { TransportKind } from './types.ts';
import { createShmSession } from './shm.ts';
import type { SessionOptions, SessionResources } from './shm.ts';
import { createSocketSession } from './socket.ts';

export type { SessionOptions, SessionResources, SideGrant } from './shm.ts';

export function createSessionResources(transport: TransportKind, opts: SessionOptions): SessionResources {
  switch (transport) {
    case 'shm':
      return createShmSession(opts);
    case 'socket':
      return createSocketSession(opts);
    case 'local':
      throw new Error('a local session has no kernel resources: create both ends in-process with createLocalSession()');
    default:
      throw new Error(`unknown transport ${String(transport)}`);
  }
}
