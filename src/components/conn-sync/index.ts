// conn-sync: keeps a warm copy of the router's connection tables and hands it
// back when the router restarts, so a restarted router keeps its NAT flows
// (issue 19). With `pair` (pair-link.ts) it also keeps an HA pair's standby
// copy: the active's records over the sync link, handed to its backup router.
//
// One session, port `router` (to the router's `sync` port). The router sends
// packets of 40-byte records (new, changed, expired; IPv4 conn-record.ts,
// IPv6 conn-record6.ts, mixed); each is
// copied out of shared memory, checked, and applied to the warm table
// (table.ts). When init restarts the router it resets this end of the session
// first (sessionReset): conn-sync then sends every record back, as many per
// slot as fit, as fast as the router frees slots, and measures how long that
// took. The router checks each against its own policy and table before it
// installs it (router/sync.ts) and exports what it kept; `confirm-ms` after
// the last record the ones it did not confirm are forgotten.
//
// In an HA pair (config `pair`) it also holds a session `pair` to the
// nic-driver of the dedicated sync link and the pair key (the file device
// "pair-key"): as master it sends its router's records to the peer
// (pair-link.ts); as backup it applies the peer's records to its table and
// hands them to its router at once, which (in its backup role) installs them
// after its own checks, so a takeover needs no restore. The role is init's
// (command "role", from the control API), never the peer's.
//
// Without `pair`: no device, no privilege, a process with two shared-memory rings.
import { closeSync } from 'node:fs';
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import { RECORD_ERRORS, RECORD_LEN } from '../router/conn-record.ts';
import { parseConnSyncConfig } from './config.ts';
import { PairLink } from './pair-link.ts';
import { readPairKey } from './pair-key.ts';
import { parseRoleCommand } from './role-command.ts';
import { APPLY_ADDED, APPLY_FULL, APPLY_REMOVED, APPLY_UNKNOWN, APPLY_UPDATED, WarmTable } from './table.ts';

export const ROUTER_PORT = 'router';
export const PAIR_PORT = 'pair';
export const PAIR_KEY_DEVICE = 'pair-key';
/** Records from the peer waiting for a slot towards the router (backup). */
const TO_ROUTER_QUEUE = 4096;
/** Copies between Uint8Arrays without a view object. */
const copyBytes = Buffer.prototype.copy;
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
  const counted = (v: number): void => {
    if (v < 0) c.add(dRecord[-v]);
    else if (v === APPLY_ADDED) c.add(cAdded);
    else if (v === APPLY_UPDATED) c.add(cUpdated);
    else if (v === APPLY_REMOVED) c.add(cRemoved);
    else if (v === APPLY_UNKNOWN) c.add(cUnknown);
    else if (v === APPLY_FULL) c.add(dFull);
  };

  // The HA pair: the link, and the peer's records on their way to the router (backup).
  let link: PairLink | undefined;
  let pairPollable: Pollable | undefined;
  let pairTimer: ReturnType<typeof setInterval> | undefined;
  const toRouter = new Uint8Array(TO_ROUTER_QUEUE * RECORD_LEN);
  let trHead = 0;
  let trCount = 0;
  const dToRouter = c.dropReason('to-router-full');
  const cToRouter = c.define('pair.to-router');
  const flushToRouter = (): void => {
    if (trCount === 0) return;
    const out = end.out;
    const per = Math.floor(out.slotSize / RECORD_LEN);
    let any = false;
    while (trCount > 0) {
      const slot = out.alloc();
      if (slot < 0) break;
      let n = 0;
      while (n < per && trCount > 0) {
        copyBytes.call(toRouter, out.buf, slot + n * RECORD_LEN, trHead * RECORD_LEN, (trHead + 1) * RECORD_LEN);
        trHead = trHead + 1 === TO_ROUTER_QUEUE ? 0 : trHead + 1;
        trCount--;
        n++;
      }
      out.submit(slot, n * RECORD_LEN);
      c.add(cToRouter, n);
      any = true;
    }
    if (any) out.flush();
  };
  if (cfg.pair !== undefined) {
    const pairEnd = env.sessions.get(PAIR_PORT);
    if (pairEnd === undefined) {
      throw new Error(`conn-sync with \`pair\` needs a session on its port "${PAIR_PORT}" (to the sync link's nic-driver); granted: ${[...env.sessions.keys()].join(', ')}`);
    }
    const fd = env.fds[PAIR_KEY_DEVICE];
    if (fd === undefined) throw new Error(`conn-sync with \`pair\` needs the device "${PAIR_KEY_DEVICE}" (a file device holding the pair's key)`);
    const key = readPairKey(fd);
    try {
      closeSync(fd);
    } catch {
      // already closed: nothing to give up
    }
    const pairIn = pairEnd.in;
    link = new PairLink(cfg.pair, key, pairEnd, c, env.log, table, {
      records(buf, off, count): void {
        for (let i = 0; i < count; i++) {
          const o = off + i * RECORD_LEN;
          const v = table.apply(buf, o);
          counted(v);
          if (v < 0) continue;
          if (trCount === TO_ROUTER_QUEUE) {
            c.add(dToRouter);
            continue;
          }
          let j = trHead + trCount;
          if (j >= TO_ROUTER_QUEUE) j -= TO_ROUTER_QUEUE;
          copyBytes.call(buf, toRouter, j * RECORD_LEN, o, o + RECORD_LEN);
          trCount++;
        }
      },
    });
    key.fill(0);
    const l = link;
    pairPollable = sinkPollable(pairIn, (off, len) => l.receive(pairIn.buf, off, len), flushToRouter);
  }
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
      counted(v);
      if (v >= 0 && link !== undefined) link.enqueue(priv, o); // to the peer, when master
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
      const l = link;
      pollable = sinkPollable(end.in, receive, l === undefined ? undefined : () => l.tick());
      env.ep.add(pollable);
      if (pairPollable !== undefined && l !== undefined) {
        env.ep.add(pairPollable);
        pairTimer = setInterval(() => {
          l.tick();
          flushToRouter();
        }, Math.max(2, Math.min(l.cfg.batchMs, 50)));
        pairTimer.unref();
      }
      env.log.info('conn-sync started', { max: cfg.max, pair: l === undefined ? null : { self: l.cfg.self, peer: l.cfg.peer, role: l.role } });
    },
    status(): Record<string, unknown> {
      return {
        entries: table.size, max: cfg.max, restoring: cursor >= 0, lastRestore: last ?? null,
        ...(link === undefined ? {} : { pair: link.status() }),
      };
    },
    // init's commands: "role" { role: master | backup, configHash? } (the HA pair; from the control API only).
    command(what: string, args: unknown): unknown {
      if (what !== 'role') throw new Error(`unknown command "${what}" (conn-sync knows: role)`);
      if (link === undefined) throw new Error('conn-sync has no `pair` configured: no role to set');
      const r = parseRoleCommand(args);
      if (r.configHash !== undefined) link.setConfigHash(r.configHash);
      const was = link.role;
      link.setRole(r.role);
      if (was !== r.role) env.log.info('role changed', { from: was, to: r.role });
      return link.status();
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
      if (pairPollable !== undefined) env.ep.remove(pairPollable);
      if (pairTimer !== undefined) clearInterval(pairTimer);
    },
  };
}
