// The router's connection-state sync (issue 19), over the optional session
// port `sync` (to conn-sync): export of new / changed / expired IPv4 and
// IPv6 connections (record6, the same ring), and import of connections
// conn-sync hands back (IPv6 records: sync6.ts, the same rules).
//
// Export: a connection that is created, changes state (tracking.ts) or leaves
// the table is written at once as a 40-byte record (conn-record.ts) into a
// preallocated ring of SYNC_QUEUE records: no allocation on the forwarding
// path. flush() (once per batch, with the egress) packs the waiting records
// into session slots, up to slotSize / 40 per slot. The ring full (the peer
// does not take them, or a burst): the record is dropped and counted
// (`sync.export-dropped`), forwarding never waits.
//
// Import: a packet on `sync` is copied out of shared memory first, then each
// record is decoded and checked (conn-record.ts), then checked against this
// router (importConn): the addresses, the route, the policy in force (an
// imported connection must be one the router's own policy would have
// accepted for its first packet, the same way: target, NAT, port forward),
// blocklists, the reply tuple it implies, the NAT port inside `nat-ports`
// and free, the per-source and NAT quotas, and no collision with a
// connection in the table. Only then is it installed, as if its first packet
// had created it, in the record's state with that state's full idle timeout
// (packets since the record was written renewed it; the end of a connection
// comes as an expired record, which conn-sync applies to its table). The
// router's own timers expire it like any other. Each connection installed or
// updated is exported back (a changed record): the peer learns which of the
// records it sent the router kept. Records of kind `expired`
// are refused on import: a peer cannot remove the router's connections. Every
// refusal is counted under `sync.import-refused.<reason>`.
import { Buffer } from 'node:buffer';
import { isMartianSourceIpv4, isMulticastIpv4 } from '../../net/addr.ts';
import { IPPROTO_ICMP } from '../../net/ipv4.ts';
import type { Counters } from '../../runtime/counters.ts';
import type { RouterConfig } from './config.ts';
import type { Conn } from './conn-index.ts';
import { ConnRecord, decodeRecord, encodeRecord, REC_CHANGED, REC_EXPIRED, REC_NEW, REC_OK, RECORD_ERRORS, RECORD_LEN } from './conn-record.ts';
import { type ConnTable, CT_LINKED, CT_REFUSED_SOURCE } from './conntrack.ts';
import { NAT_QUOTA_EXCEEDED, type NatBook } from './nat.ts';
import { type Policy, POLICY_ACCEPT, POLICY_ACCEPT_NAT } from './policy.ts';
import type { Routing } from './routing.ts';
import type { RuntimeBlocks } from './runtime-blocks.ts';
import { acquireSwept, IMPORT_INSTALLED, IMPORT_REFUSALS, IMPORT_REMOVED, IMPORT_UPDATED, type ImportRefusal, refusal, takeState } from './import-codes.ts';
import { ConnRecord6, decodeRecord6, encodeRecord6, isRecord6 } from './conn-record6.ts';
import type { Conn6, ConnTable6 } from './conntrack6.ts';
import { expireConn6, type Import6Target, importConn6 } from './sync6.ts';
import type { EgressPort } from './types.ts';

export const SYNC_PORT = 'sync';
/** Records the export ring holds. */
export const SYNC_QUEUE = 4096;

/** What importConn reads and writes: the router's tables and policy. */
export interface ImportTarget {
  cfg: RouterConfig;
  rt: Routing;
  policy: Policy;
  ct: ConnTable;
  nat: NatBook;
  rtBlocks: RuntimeBlocks;
  now: number;
  /** Set by importConn: the connection installed or updated. */
  conn?: Conn;
  /** The IPv6 table and route (sync6.ts): IPv6 records are imported there. */
  v6: Import6Target;
}

/**
 * Install or update the connection of a decoded record r (kind new or
 * changed): IMPORT_INSTALLED, IMPORT_UPDATED, or the index of the refusal in
 * IMPORT_REFUSALS.
 */
export function importConn(t: ImportTarget, r: ConnRecord): number {
  const R = refusal;
  if (r.kind === REC_EXPIRED) return R('expired-kind');
  const { rt, policy, ct, nat, now } = t;
  const inDom = r.inDom;
  const outDom = r.outDom;
  const icmp = r.proto === IPPROTO_ICMP;
  // The original direction, as the packet path would have accepted it (router.ts #ipIn).
  const src = r.oSrc;
  const dst = r.oDst;
  if (isMartianSourceIpv4(src) || src === rt.bcast[inDom] || src === rt.addr[inDom] || rt.addr[inDom] === 0) return R('bad-address');
  if (rt.gw[inDom] === -1 && (src & rt.mask[inDom]) !== rt.net[inDom] && rt.routeIn(inDom, src) < 0) return R('bad-address');
  if (dst === -1 || dst === 0 || isMulticastIpv4(dst) || dst === rt.bcast[inDom]) return R('bad-address');
  if (policy.blocked(inDom, src, now) || t.rtBlocks.has(src, now) || policy.blocked(outDom, r.rSrc, now)) return R('blocked');
  // Where it goes and whether the policy in force accepts it that way.
  let dnatHost = dst;
  let dnatPort = r.oDport;
  if (dst === rt.addr[inDom]) { // a port forward
    const f = policy.forward(inDom, r.proto, r.oDport);
    if (f < 0 || policy.fwdTo[f] !== outDom) return R('policy');
    if (policy.nat(inDom, outDom) !== r.nat) return R('policy');
    dnatHost = policy.fwdHost[f];
    dnatPort = policy.fwdPort[f];
  } else {
    for (let i = 0; i < rt.n; i++) if (dst === rt.addr[i]) return R('bad-address');
    if (rt.route(dst) !== outDom) return R('not-routed');
    if (policy.peek(inDom, outDom, r.proto, dst, r.oDport) !== (r.nat ? POLICY_ACCEPT_NAT : POLICY_ACCEPT)) return R('policy');
  }
  // The reply tuple the router itself would have made.
  const rDst = r.nat ? rt.addr[outDom] : src;
  if (r.rSrc !== dnatHost || r.rDst !== rDst) return R('bad-reply');
  if (icmp ? r.rSport !== r.rDport : r.rSport !== dnatPort) return R('bad-reply');
  if (!r.nat && r.rDport !== r.oSport) return R('bad-reply');
  if (r.nat && !nat.inRange(r.rDport)) return R('nat-port-range');
  // Already there: the same connection is updated; anything else is a collision.
  const ref = ct.lookup(r.proto, inDom, src, r.oSport, dst, r.oDport);
  if (ref >= 0) {
    const c = ct.conn(ref >>> 1);
    if ((ref & 1) !== 0 || c.outDom !== outDom || c.rSrc !== r.rSrc || c.rSport !== r.rSport || c.rDst !== r.rDst || c.rDport !== r.rDport || c.nat !== r.nat) {
      return R('collision');
    }
    takeState(c, r, t.cfg, now);
    t.conn = c;
    return IMPORT_UPDATED;
  }
  if (ct.lookup(r.proto, outDom, r.rSrc, r.rSport, r.rDst, r.rDport) >= 0) return R('collision');
  if (ct.sourceFull(inDom, src)) return R('source-limit');
  if (r.nat) {
    const port = nat.claim(r.proto, outDom, src, r.rDport, policy.natPortsPerSource[outDom]);
    if (port === NAT_QUOTA_EXCEEDED) return R('nat-quota');
    if (port < 0) return R('nat-port-taken');
  }
  const c = acquireSwept(ct, now);
  if (c === undefined) {
    if (r.nat) nat.unalloc(outDom, r.proto, r.rDport);
    return R('table-full');
  }
  c.proto = r.proto;
  c.inDom = inDom;
  c.oSrc = src;
  c.oSport = r.oSport;
  c.oDst = dst;
  c.oDport = r.oDport;
  c.outDom = outDom;
  c.rSrc = r.rSrc;
  c.rSport = r.rSport;
  c.rDst = r.rDst;
  c.rDport = r.rDport;
  c.nat = r.nat;
  c.created = now;
  takeState(c, r, t.cfg, now);
  const linked = ct.link(c);
  if (linked !== CT_LINKED) {
    if (r.nat) nat.unalloc(outDom, r.proto, r.rDport);
    ct.abandon(c);
    return R(linked === CT_REFUSED_SOURCE ? 'source-limit' : 'probe-limit');
  }
  if (r.nat && !nat.hold(outDom, r.proto, src)) {
    ct.remove(c); // frees its NAT port
    return R('probe-limit');
  }
  t.conn = c;
  return IMPORT_INSTALLED;
}

/**
 * An `expired` record on an HA backup (the active peer's connection ended):
 * remove the connection with exactly the record's tuples (original and reply,
 * domains, NAT). Only a backup takes these: it forwards nothing, so the worst
 * a lying holder does is make a takeover need a new handshake for that
 * connection, as withholding its record would. Returns IMPORT_REMOVED or a refusal.
 */
export function expireConn(t: ImportTarget, r: ConnRecord): number {
  const ref = t.ct.lookup(r.proto, r.inDom, r.oSrc, r.oSport, r.oDst, r.oDport);
  if (ref < 0 || (ref & 1) !== 0) return refusal('expired-unknown');
  const c = t.ct.conn(ref >>> 1);
  if (c.outDom !== r.outDom || c.rSrc !== r.rSrc || c.rSport !== r.rSport || c.rDst !== r.rDst || c.rDport !== r.rDport || c.nat !== r.nat) {
    return refusal('collision');
  }
  t.ct.remove(c);
  return IMPORT_REMOVED;
}

/** The router's end of the sync session: the export ring and the import path. */
export class ConnSync {
  readonly #out: EgressPort;
  readonly #counters: Counters;
  readonly #ring = new Uint8Array(SYNC_QUEUE * RECORD_LEN);
  #head = 0;
  #count = 0;
  /** Re-export of the whole table after the peer restarted: the next slot to look at, or -1. */
  #resync = -1;
  #table: ConnTable | undefined;
  /** The same for the IPv6 table. */
  #resync6 = -1;
  #table6: ConnTable6 | undefined;
  /** Private copy of an imported packet (the peer can still write its slot). */
  #in: Uint8Array;
  readonly #rec = new ConnRecord();
  readonly #rec6 = new ConnRecord6();
  readonly #cExported: number;
  readonly #cDropped: number;
  readonly #cNoSlot: number;
  readonly #cInstalled: number;
  readonly #cUpdated: number;
  readonly #cRemoved: number;
  readonly #cTruncated: number;
  readonly #cLate: number;
  readonly #cDecode: Int32Array;
  readonly #cRefused: Int32Array;

  constructor(out: EgressPort, inSlotSize: number, counters: Counters) {
    this.#out = out;
    this.#counters = counters;
    this.#in = new Uint8Array(Math.max(inSlotSize, RECORD_LEN));
    this.#cExported = counters.define('sync.exported');
    this.#cDropped = counters.define('sync.export-dropped');
    this.#cNoSlot = counters.define('sync.export-waiting');
    this.#cInstalled = counters.define('sync.imported');
    this.#cUpdated = counters.define('sync.import-updated');
    this.#cRemoved = counters.define('sync.import-removed');
    this.#cTruncated = counters.define('sync.import-refused.truncated');
    this.#cLate = counters.define('sync.import-refused.not-restoring');
    this.#cDecode = Int32Array.from(RECORD_ERRORS, (e) => (e === 'ok' ? -1 : counters.define(`sync.import-refused.${e}`)));
    this.#cRefused = Int32Array.from(IMPORT_REFUSALS, (e) => counters.define(`sync.import-refused.${e}`));
  }

  /** Records waiting in the ring. */
  get queued(): number {
    return this.#count;
  }

  /** Connection c was created (REC_NEW), changed state (REC_CHANGED) or left the table (REC_EXPIRED). */
  record(kind: number, c: Conn, now: number): void {
    const at = this.#take();
    if (at >= 0) encodeRecord(this.#ring, at, kind, c, now);
  }

  /** IPv6 connection c was created, changed state or left the table (a record6, conn-record6.ts). */
  record6(kind: number, c: Conn6): void {
    const at = this.#take();
    if (at >= 0) encodeRecord6(this.#ring, at, kind, c);
  }

  /** The byte offset of the next record in the export ring (taken), or -1 when it is full (counted). */
  #take(): number {
    if (this.#count === SYNC_QUEUE) {
      this.#counters.add(this.#cDropped);
      return -1;
    }
    let i = this.#head + this.#count;
    if (i >= SYNC_QUEUE) i -= SYNC_QUEUE;
    this.#count++;
    return i * RECORD_LEN;
  }

  /**
   * The peer restarted (its table is empty): export every live connection of
   * `table` and `table6` again, as REC_NEW records, a ring's worth per flush().
   */
  resyncAll(table: ConnTable, table6?: ConnTable6): void {
    this.#table = table;
    this.#resync = 0;
    this.#table6 = table6;
    this.#resync6 = table6 === undefined ? -1 : 0;
  }

  /** Pack waiting records into slots and publish them (once per batch). */
  flush(now = 0): void {
    const table = this.#table;
    if (this.#resync >= 0 && table !== undefined) {
      let i = this.#resync;
      const end = table.slots;
      for (; i < end && this.#count < SYNC_QUEUE; i++) {
        const c = table.conn(i);
        if (c.live) this.record(REC_NEW, c, now);
      }
      this.#resync = i < end ? i : -1;
    }
    const table6 = this.#table6;
    if (this.#resync < 0 && this.#resync6 >= 0 && table6 !== undefined) {
      let i = this.#resync6;
      const end = table6.slots;
      for (; i < end && this.#count < SYNC_QUEUE; i++) {
        const c = table6.conn(i);
        if (c.live) this.record6(REC_NEW, c);
      }
      this.#resync6 = i < end ? i : -1;
    }
    if (this.#count === 0) return;
    const out = this.#out;
    const per = Math.floor(out.slotSize / RECORD_LEN);
    let sent = 0;
    while (this.#count > 0) {
      const slot = out.alloc();
      if (slot < 0) {
        this.#counters.add(this.#cNoSlot);
        break;
      }
      let n = 0;
      while (n < per && this.#count > 0) {
        const from = this.#head * RECORD_LEN;
        out.buf.set(this.#ring.subarray(from, from + RECORD_LEN), slot + n * RECORD_LEN);
        this.#head = this.#head + 1 === SYNC_QUEUE ? 0 : this.#head + 1;
        this.#count--;
        n++;
      }
      out.submit(slot, n * RECORD_LEN);
      sent += n;
    }
    if (sent > 0) {
      this.#counters.add(this.#cExported, sent);
      out.flush();
    }
  }

  /** A packet of records that came after the restore window (router.ts SYNC_RESTORE_MS): each counted, none looked at. */
  refuseLate(len: number): void {
    this.#counters.add(this.#cLate, Math.max(1, Math.floor(len / RECORD_LEN)));
  }

  /**
   * A packet of records from the peer in buf[off, off + len): copied, then
   * each record checked and imported into t. `backup` (an HA backup router):
   * `expired` records remove their connection (expireConn); else they are refused.
   */
  receive(buf: Uint8Array, off: number, len: number, t: ImportTarget, domains: number, backup = false): void {
    const counters = this.#counters;
    if (len > this.#in.length || len % RECORD_LEN !== 0) {
      counters.add(this.#cTruncated);
      return;
    }
    const b = this.#in;
    Buffer.prototype.copy.call(buf, b, 0, off, off + len);
    const r = this.#rec;
    for (let o = 0; o < len; o += RECORD_LEN) {
      if (isRecord6(b, o)) {
        this.#receive6(b, o, t.v6, domains, backup);
        continue;
      }
      const e = decodeRecord(b, o, domains, r);
      if (e !== REC_OK) {
        counters.add(this.#cDecode[e]);
        continue;
      }
      if (backup && r.kind === REC_EXPIRED) {
        const x = expireConn(t, r);
        counters.add(x === IMPORT_REMOVED ? this.#cRemoved : this.#cRefused[x]);
        continue;
      }
      const v = importConn(t, r);
      if (v === IMPORT_INSTALLED || v === IMPORT_UPDATED) {
        counters.add(v === IMPORT_INSTALLED ? this.#cInstalled : this.#cUpdated);
        // Confirmed back to the peer: what it restored and the router kept (conn-sync forgets the rest).
        if (t.conn !== undefined) this.record(REC_CHANGED, t.conn, t.now);
      } else counters.add(this.#cRefused[v]);
    }
  }

  /** One IPv6 record at b[o] (receive's private copy): checked, then imported into t (the same rules as IPv4). */
  #receive6(b: Uint8Array, o: number, t: Import6Target, domains: number, backup: boolean): void {
    const counters = this.#counters;
    const r = this.#rec6;
    const e = decodeRecord6(b, o, domains, r);
    if (e !== REC_OK) return counters.add(this.#cDecode[e]);
    if (backup && r.kind === REC_EXPIRED) {
      const x = expireConn6(t, r);
      return counters.add(x === IMPORT_REMOVED ? this.#cRemoved : this.#cRefused[x]);
    }
    t.conn = undefined;
    const v = importConn6(t, r);
    if (v !== IMPORT_INSTALLED && v !== IMPORT_UPDATED) return counters.add(this.#cRefused[v]);
    counters.add(v === IMPORT_INSTALLED ? this.#cInstalled : this.#cUpdated);
    if (t.conn !== undefined) this.record6(REC_CHANGED, t.conn);
  }
}

export { REC_NEW, REC_CHANGED, REC_EXPIRED };
export { IMPORT_INSTALLED, IMPORT_REFUSALS, IMPORT_REMOVED, IMPORT_UPDATED, type ImportRefusal };
