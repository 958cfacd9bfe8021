// conn-sync: keeps a warm copy of the router's connection table and hands it
// back when the router restarts, so a restarted router keeps its NAT flows
// (issue 19; the same table is what an HA standby will hold).
//
// One session, port `router` (to the router's `sync` port). The router sends
// packets of 40-byte records (new, changed, expired; conn-record.ts); each is
// copied out of shared memory, checked, and applied to the warm table
// (table.ts). When init restarts the router it resets this end of the session
// first (sessionReset): conn-sync then sends every record back, as many per
// slot as fit, as fast as the router frees slots, and measures how long that
// took. The router checks each against its own policy and table before it
// installs it (router/sync.ts) and exports what it kept; `confirm-ms` after
// the last record the ones it did not confirm are forgotten.
//
// No device, no privilege: a process with two shared-memory rings.
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import { RECORD_ERRORS, RECORD_LEN } from '../router/conn-record.ts';
import { parseConnSyncConfig } from './config.ts';
import { APPLY_ADDED, APPLY_FULL, APPLY_REMOVED, APPLY_UNKNOWN, APPLY_UPDATED, WarmTable } from './table.ts';

export const ROUTER_PORT = 'router';
/** How often a restore in progress looks for free slots (ms). */
const PUMP_MS = 2;

interface RestoreReport {
  /** Records in the table when the restore began. */
  entries: number;
  sent: number;
  /** From the session reset to the last record submitted. */
  ms: number;
  /** Records the router did not confirm (forgotten), once known. */
  unconfirmed: number | undefined;
}

export default function create(env: ComponentEnv): Component {
  const cfg = parseConnSyncConfig(env.config, env.configSource);
  const end = env.sessions.get(ROUTER_PORT);
  if (end === undefined) {
    throw new Error(`conn-sync needs a session on its port "${ROUTER_PORT}" (to the router's "sync"); granted: ${[...env.sessions.keys()].join(', ') || 'none'}`);
  }
  const table = new WarmTable(cfg.max);
  const c = env.counters;
  const cAdded = c.define('records.added');
  const cUpdated = c.define('records.updated');
  const cRemoved = c.define('records.removed');
  const cUnknown = c.define('records.expired-unknown');
  const cRestores = c.define('restores');
  const cRestored = c.define('restore.sent');
  const cForgotten = c.define('restore.unconfirmed');
  const dFull = c.dropReason('table-full');
  const dLength = c.dropReason('bad-length');
  const dRecord = RECORD_ERRORS.map((e) => (e === 'ok' ? -1 : c.dropReason(`record-${e}`)));
  const priv = new Uint8Array(Math.max(end.out.slotSize, RECORD_LEN));
  let pollable: Pollable | undefined;
  let pump: ReturnType<typeof setInterval> | undefined;
  let confirmTimer: ReturnType<typeof setTimeout> | undefined;
  let cursor = -1;
  let started = 0;
  let sent = 0;
  let entries = 0;
  let last: RestoreReport | undefined;

  const receive = (off: number, len: number): void => {
    if (len % RECORD_LEN !== 0 || len > priv.length) {
      c.add(dLength);
      return;
    }
    priv.set(end.in.buf.subarray(off, off + len)); // the router may still write its slot
    for (let o = 0; o < len; o += RECORD_LEN) {
      const v = table.apply(priv, o);
      if (v < 0) c.add(dRecord[-v]);
      else if (v === APPLY_ADDED) c.add(cAdded);
      else if (v === APPLY_UPDATED) c.add(cUpdated);
      else if (v === APPLY_REMOVED) c.add(cRemoved);
      else if (v === APPLY_UNKNOWN) c.add(cUnknown);
      else if (v === APPLY_FULL) c.add(dFull);
    }
  };

  /** Send restore records while the router has free slots; true when all are sent. */
  const sendSome = (): boolean => {
    const out = end.out;
    const per = Math.floor(out.slotSize / RECORD_LEN);
    let any = false;
    while (cursor >= 0 && cursor < table.max) {
      const slot = out.alloc();
      if (slot < 0) break;
      let n = 0;
      while (n < per && cursor < table.max) {
        if (table.used(cursor)) {
          table.copy(cursor, out.buf, slot + n * RECORD_LEN);
          n++;
        }
        cursor++;
      }
      if (n === 0) {
        out.release(slot);
        break;
      }
      out.submit(slot, n * RECORD_LEN);
      sent += n;
      any = true;
    }
    if (any) out.flush();
    return cursor >= table.max;
  };

  const finish = (): void => {
    if (pump !== undefined) clearInterval(pump);
    pump = undefined;
    cursor = -1;
    const ms = performance.now() - started;
    c.add(cRestored, sent);
    const report: RestoreReport = { entries, sent, ms: Math.round(ms * 100) / 100, unconfirmed: undefined };
    last = report;
    env.log.info('restore sent', { entries, sent, ms: report.ms });
    confirmTimer = setTimeout(() => {
      confirmTimer = undefined;
      report.unconfirmed = table.forgetUnconfirmed();
      c.add(cForgotten, report.unconfirmed);
      env.log.info('restore confirmed', { kept: table.size, unconfirmed: report.unconfirmed });
    }, cfg.confirmMs);
    confirmTimer.unref();
  };

  const restore = (): void => {
    if (pump !== undefined) clearInterval(pump);
    if (confirmTimer !== undefined) clearTimeout(confirmTimer);
    confirmTimer = undefined;
    c.add(cRestores);
    table.beginRestore();
    started = performance.now();
    sent = 0;
    entries = table.size;
    cursor = 0;
    if (sendSome()) return finish();
    pump = setInterval(() => {
      if (sendSome()) finish();
    }, PUMP_MS);
  };

  return {
    start(): void {
      pollable = sinkPollable(end.in, receive);
      env.ep.add(pollable);
      env.log.info('conn-sync started', { max: cfg.max });
    },
    status(): Record<string, unknown> {
      return { entries: table.size, max: cfg.max, restoring: cursor >= 0, lastRestore: last ?? null };
    },
    sessionReset(name: string): void {
      // The router restarted with an empty table: give it back its connections.
      if (name === ROUTER_PORT) restore();
    },
    stop(): void {
      if (pollable !== undefined) env.ep.remove(pollable);
      pollable = undefined;
      if (pump !== undefined) clearInterval(pump);
      if (confirmTimer !== undefined) clearTimeout(confirmTimer);
    },
  };
}
