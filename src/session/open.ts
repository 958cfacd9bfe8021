// Opening a session end from what init granted: dispatch on the transport.
// In a component process the grant's fds are the inherited fd numbers.
import type { SessionEnd, SessionGrant } from './types.ts';
import { openShmEnd } from './shm.ts';
import type { OpenOptions } from './shm.ts';
import { openSocketEnd } from './socket.ts';

export type { OpenOptions } from './shm.ts';

export function openSessionEnd(grant: SessionGrant, opts: OpenOptions = {}): SessionEnd {
  switch (grant.transport) {
    case 'shm':
      return openShmEnd(grant, opts);
    case 'socket':
      return openSocketEnd(grant, opts);
    case 'local':
      throw new Error(`session ${grant.name}: a local session cannot be opened from a grant; use createLocalSession() in-process`);
    default:
      throw new Error(`session ${(grant as SessionGrant).name}: unknown transport ${String((grant as SessionGrant).transport)}`);
  }
}
