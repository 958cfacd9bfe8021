// What the router's import of a connection record answers (sync.ts for IPv4,
// sync6.ts for IPv6): installed, updated, removed, or the index of its
// refusal in IMPORT_REFUSALS (counted `sync.import-refused.<reason>`; the
// decoders' reasons, conn-record.ts RECORD_ERRORS, come first); and the two
// steps both imports share (the record's state, a free slot).
import type { RouterConfig } from './config.ts';
import type { Conn, ConnIndex } from './conn-index.ts';
import { connTimeout } from './tracking.ts';
export const IMPORT_REFUSALS = [
  'expired-kind', 'bad-address', 'not-routed', 'policy', 'blocked', 'bad-reply', 'nat-port-range', 'nat-port-taken',
  'nat-quota', 'collision', 'table-full', 'source-limit', 'probe-limit', 'expired-unknown',
] as const;
export type ImportRefusal = typeof IMPORT_REFUSALS[number];
/** importConn: installed / updated an existing one. */
export const IMPORT_INSTALLED = -1;
export const IMPORT_UPDATED = -2;
/** expireConn: removed. */
export const IMPORT_REMOVED = -3;

/** The index of a refusal in IMPORT_REFUSALS. */
export function refusal(why: ImportRefusal): number {
  return IMPORT_REFUSALS.indexOf(why);
}

/**
 * The state of a decoded record (either family) given to connection c,
 * installed or updated, with that state's full idle timeout (packets since
 * the record was written renewed it).
 */
export function takeState(c: Conn, r: { state: number; finOrig: boolean; finReply: boolean }, cfg: RouterConfig, now: number): void {
  c.state = r.state;
  c.finOrig = r.finOrig;
  c.finReply = r.finReply;
  c.expires = now + connTimeout(c, cfg.conntrack);
}

/** A free connection of table for an import: after a sweep of the expired ones if there is none. */
export function acquireSwept<C extends Conn>(table: ConnIndex<C>, now: number): C | undefined {
  const c = table.acquire();
  if (c !== undefined) return c;
  table.sweep(now);
  return table.acquire();
}
