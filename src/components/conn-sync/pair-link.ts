// The HA pair's sync link (issue 19): conn-sync's end of a Nic session to a
// nic-driver whose TAP is the dedicated sync device. Components have no
// sockets, so the link is raw Ethernet: each frame is the session's virtio-net
// header (12 bytes, zero), an Ethernet header (the peer's MAC or broadcast,
// this side's MAC, EtherType 0x88B5, IEEE "local experimental") and one
// pair-wire.ts message (a sealed batch of up to 35 records, or a status
// block). No ARP, no IP: the link is a dedicated segment between two gateways.
//
// Sending: records go into a bounded, preallocated queue (`queue` records);
// a batch leaves when 35 wait or `batch-ms` after the oldest. The queue full:
// the record is dropped and counted (`pair.queue-full`), and the next status
// block asks nothing of the peer but this side starts a full resync at once
// (the peer's table is then repaired). As master it also sends its whole
// table every `resync-ms`, and whenever the peer's status asks for it (the
// peer started empty, or saw a gap in the sequence numbers). A status block
// (role, table, queue, drops, config hash) goes every `heartbeat-ms`.
//
// Receiving: every frame is copied out of the slot first, then checked:
// virtio-net header without GSO, Ethernet length, EtherType, destination MAC,
// message length, then PairOpener (tag, ids, freshness, replay). Every
// refusal is counted by its reason (`drop.pair-<reason>`) and the first of
// each reason per second is logged. No message from the peer for `dead-ms`:
// the pair is degraded (`pair.down`, logged); the next authentic one brings it
// back (`pair.up`). Per batch (not per record) the HMAC costs node:crypto's
// allocations; the queue, the batch and the frames copy without any.
import type { Logger } from '../../runtime/component.ts';
import type { Counters } from '../../runtime/counters.ts';
import type { SessionEnd } from '../../session/types.ts';
import { getU16, getU32, setU16 } from '../../net/bytes.ts';
import { RECORD_LEN } from '../router/conn-record.ts';
import type { PairConfig } from './config.ts';
import { PAIR_ERRORS, PAIR_FLAG_STATUS, PAIR_HEADER, PAIR_MAX_DATAGRAM, PAIR_MAX_RECORDS, PairOpener, PairSealer } from './pair-wire.ts';
import { decodeStatus, encodeStatus, hashPrefix, type PairStatus, type Role, STATUS_LEN } from './pair-status.ts';
import type { WarmTable } from './table.ts';

export const ETHERTYPE_PAIR = 0x88b5;
/** Copies between Uint8Arrays without a view object (Buffer's copy works on any Uint8Array). */
const copyBytes = Buffer.prototype.copy;
const VNET = 12;
const ETH = 14;
const FRAME_HEAD = VNET + ETH;
/** Times a status block carries a resync request (a lost one is covered by the next). */
const ASK_TIMES = 3;

export const LINK_DROPS = ['runt', 'bad-vnet', 'not-sync', 'not-for-us', 'too-long', 'bad-status', ...PAIR_ERRORS.slice(1)] as const;

export interface PairLinkHooks {
  /** Records from the peer, authentic and in order, at buf[off, off + count * 40): apply them. */
  records(buf: Uint8Array, off: number, count: number): void;
}

export class PairLink {
  readonly cfg: PairConfig;
  role: Role = 'backup';
  readonly #end: SessionEnd;
  readonly #c: Counters;
  readonly #log: Logger;
  readonly #table: WarmTable;
  readonly #hooks: PairLinkHooks;
  readonly #sealer: PairSealer;
  readonly #opener: PairOpener;
  #hash: Uint8Array = new Uint8Array(24);
  #hashText: string | undefined;
  // The send queue: a ring of records and the time each was queued.
  readonly #q: Uint8Array;
  readonly #qAt: Float64Array;
  #head = 0;
  #count = 0;
  // Scratch: one batch, one sealed message, one received frame's message.
  readonly #batch = new Uint8Array(PAIR_MAX_RECORDS * RECORD_LEN);
  readonly #msg = new Uint8Array(PAIR_MAX_DATAGRAM);
  readonly #rx = new Uint8Array(PAIR_MAX_DATAGRAM);
  readonly #status = new Uint8Array(STATUS_LEN);
  // Full resync of the table to the peer: the next table slot, or -1.
  #resync = -1;
  #lastResync = -Infinity;
  #asks = 0;
  #lastHeartbeat = -Infinity;
  #lastHeard = -Infinity;
  #up = false;
  #everHeard = false;
  #peer: PairStatus | undefined;
  #peerDelayMs = 0;
  readonly #lastLog = new Float64Array(LINK_DROPS.length).fill(-Infinity);
  readonly #dLink: Int32Array;
  readonly #cSent: number;
  readonly #cFrames: number;
  readonly #cRecv: number;
  readonly #cStatus: number;
  readonly #cQueueFull: number;
  readonly #cNoSlot: number;
  readonly #cGap: number;
  readonly #cResyncs: number;
  readonly #cResent: number;
  readonly #cIgnored: number;
  readonly #cDown: number;
  readonly #cUp: number;
  #queueDrops = 0;
  readonly #now: () => number;
  readonly #wall: () => number;

  constructor(cfg: PairConfig, key: Uint8Array, end: SessionEnd, counters: Counters, log: Logger, table: WarmTable, hooks: PairLinkHooks,
    clock: { now?: () => number; wallMs?: () => number } = {}) {
    this.cfg = cfg;
    this.#end = end;
    this.#c = counters;
    this.#log = log;
    this.#table = table;
    this.#hooks = hooks;
    this.#now = clock.now ?? (() => performance.now());
    this.#wall = clock.wallMs ?? Date.now;
    const ends = { self: cfg.self, peer: cfg.peer };
    this.#sealer = new PairSealer(key, ends, BigInt(this.#wall()), this.#wall);
    this.#opener = new PairOpener(key, ends, { clockMs: this.#wall });
    this.#q = new Uint8Array(cfg.queue * RECORD_LEN);
    this.#qAt = new Float64Array(cfg.queue);
    this.#dLink = Int32Array.from(LINK_DROPS, (r) => counters.dropReason(`pair-${r}`));
    this.#cSent = counters.define('pair.records-sent');
    this.#cFrames = counters.define('pair.frames-sent');
    this.#cRecv = counters.define('pair.records-received');
    this.#cStatus = counters.define('pair.status-received');
    this.#cQueueFull = counters.define('pair.queue-full');
    this.#cNoSlot = counters.define('pair.no-slot');
    this.#cGap = counters.define('pair.gap');
    this.#cResyncs = counters.define('pair.resyncs');
    this.#cResent = counters.define('pair.records-resynced');
    this.#cIgnored = counters.define('pair.ignored-as-master');
    this.#cDown = counters.define('pair.down');
    this.#cUp = counters.define('pair.up');
    // Started empty: ask the peer for its table.
    this.#asks = ASK_TIMES;
  }

  /** The router's config hash as init gave it ("sha256:<hex>"), carried in the status blocks. */
  setConfigHash(hash: string | undefined): void {
    this.#hashText = hash;
    this.#hash = hashPrefix(hash);
  }

  /** Become master (send the table, ignore the peer's records) or backup (take them; ask for the table). */
  setRole(role: Role): void {
    if (role === this.role) return;
    this.role = role;
    if (role === 'master') this.startResync();
    else {
      this.#resync = -1;
      this.#asks = ASK_TIMES;
    }
    this.#lastHeartbeat = -Infinity; // tell the peer at once
  }

  /** Send the whole table to the peer (again), from its first slot. */
  startResync(): void {
    this.#resync = 0;
    this.#lastResync = this.#now();
    this.#c.add(this.#cResyncs);
  }

  /** A record of this router (buf[off, off + 40), checked already): queued for the peer when master. */
  enqueue(buf: Uint8Array, off: number): void {
    if (this.role !== 'master') return;
    if (this.#count === this.cfg.queue) {
      this.#c.add(this.#cQueueFull);
      this.#queueDrops++;
      if (this.#resync < 0) this.startResync(); // the peer missed a record: repair its table
      return;
    }
    let i = this.#head + this.#count;
    if (i >= this.cfg.queue) i -= this.cfg.queue;
    copyBytes.call(buf, this.#q, i * RECORD_LEN, off, off + RECORD_LEN);
    this.#qAt[i] = this.#now();
    this.#count++;
  }

  /** Timers and sending: call every few ms and after each batch of records. */
  tick(): void {
    const now = this.#now();
    if (this.role === 'master') {
      if (this.#resync < 0 && this.cfg.resyncMs > 0 && now - this.#lastResync >= this.cfg.resyncMs) this.startResync();
      this.#pumpResync();
    }
    this.#flush(now, false);
    if (now - this.#lastHeartbeat >= this.cfg.heartbeatMs) this.#heartbeat(now);
    const silent = now - this.#lastHeard;
    if (this.#up && silent > this.cfg.deadMs) {
      this.#up = false;
      this.#c.add(this.#cDown);
      this.#log.warn('pair degraded: no authentic message from the peer', { peer: this.cfg.peer, silentMs: Math.round(silent), role: this.role });
    }
  }

  /** Move table records into the send queue, up to half of its free room per call. */
  #pumpResync(): void {
    if (this.#resync < 0) return;
    const t = this.#table;
    const room = (this.cfg.queue - this.#count) >> 1;
    let moved = 0;
    let i = this.#resync;
    for (; i < t.max && moved < room; i++) {
      if (!t.used(i)) continue;
      let j = this.#head + this.#count;
      if (j >= this.cfg.queue) j -= this.cfg.queue;
      t.copy(i, this.#q, j * RECORD_LEN);
      this.#qAt[j] = this.#now();
      this.#count++;
      moved++;
    }
    this.#resync = i >= t.max ? -1 : i;
    if (moved > 0) this.#c.add(this.#cResent, moved);
  }

  /** Send full batches; with `all` (or when the oldest waited batch-ms) also the last partial one. */
  #flush(now: number, all: boolean): void {
    const out = this.#end.out;
    let sent = false;
    while (this.#count > 0 && (this.#count >= PAIR_MAX_RECORDS || all || now - this.#qAt[this.#head] >= this.cfg.batchMs)) {
      const slot = out.alloc();
      if (slot < 0) {
        this.#c.add(this.#cNoSlot);
        break;
      }
      const n = Math.min(this.#count, PAIR_MAX_RECORDS);
      for (let k = 0; k < n; k++) {
        const from = this.#head * RECORD_LEN;
        copyBytes.call(this.#q, this.#batch, k * RECORD_LEN, from, from + RECORD_LEN);
        this.#head = this.#head + 1 === this.cfg.queue ? 0 : this.#head + 1;
      }
      this.#count -= n;
      const len = this.#sealer.seal(this.#batch, n, this.#msg);
      this.#frame(slot, len);
      this.#c.add(this.#cSent, n);
      sent = true;
    }
    if (sent) out.flush();
  }

  #heartbeat(now: number): void {
    const out = this.#end.out;
    const slot = out.alloc();
    if (slot < 0) return this.#c.add(this.#cNoSlot);
    this.#lastHeartbeat = now;
    const want = this.role === 'backup' && this.#asks > 0;
    if (want) this.#asks--;
    encodeStatus(this.#status, 0, { role: this.role, wantResync: want, entries: this.#table.size, queued: this.#count, queueDrops: this.#queueDrops, hash: this.#hash });
    const len = this.#sealer.seal(this.#status, 1, this.#msg, PAIR_FLAG_STATUS);
    this.#frame(slot, len);
    out.flush();
  }

  /** Write the session header, the Ethernet header and the sealed message (in #msg) into `slot`, and submit it. */
  #frame(slot: number, len: number): void {
    const out = this.#end.out;
    const b = out.buf;
    b.fill(0, slot, slot + VNET);
    b.set(this.cfg.peerMac, slot + VNET);
    b.set(this.cfg.mac, slot + VNET + 6);
    setU16(b, slot + VNET + 12, ETHERTYPE_PAIR);
    copyBytes.call(this.#msg, b, slot + FRAME_HEAD, 0, len);
    out.submit(slot, FRAME_HEAD + len);
    this.#c.add(this.#cFrames);
  }

  #drop(reason: number): void {
    this.#c.add(this.#dLink[reason]);
    const now = this.#now();
    if (now - this.#lastLog[reason] >= 1000) {
      this.#lastLog[reason] = now;
      this.#log.warn('sync frame dropped', { reason: LINK_DROPS[reason], counter: `drop.pair-${LINK_DROPS[reason]}` });
    }
  }

  /** A frame from the sync link at the session's buf[off, off + len). */
  receive(buf: Uint8Array, off: number, len: number): void {
    if (len < FRAME_HEAD) return this.#drop(0);
    if ((buf[off + 1] & 0x7f) !== 0) return this.#drop(1); // a GSO super-frame: nothing of ours
    if (getU16(buf, off + VNET + 12) !== ETHERTYPE_PAIR) return this.#drop(2);
    const d = off + VNET;
    let broadcast = true;
    let mine = true;
    for (let i = 0; i < 6; i++) {
      if (buf[d + i] !== 0xff) broadcast = false;
      if (buf[d + i] !== this.cfg.mac[i]) mine = false;
    }
    if (!broadcast && !mine) return this.#drop(3);
    const mlen = len - FRAME_HEAD;
    if (mlen > PAIR_MAX_DATAGRAM) return this.#drop(4);
    const m = this.#rx;
    copyBytes.call(buf, m, 0, off + FRAME_HEAD, off + len); // the driver may still write its slot
    const before = this.#opener.last;
    const v = this.#opener.open(m, mlen);
    if (v < 0) return this.#drop(5 + -v);
    const after = this.#opener.last;
    this.#heard();
    if (m[5] === PAIR_FLAG_STATUS) {
      const s = decodeStatus(m, PAIR_HEADER);
      if (s === undefined) return this.#drop(5);
      this.#c.add(this.#cStatus);
      this.#peer = s;
      this.#peerDelayMs = this.#wall() - this.#sentAt(m);
      // A request repeated (a backup asks a few times) right after a resync began is the same request.
      if (s.wantResync && this.role === 'master' && this.#resync < 0 && this.#now() - this.#lastResync >= this.cfg.deadMs) this.startResync();
      return;
    }
    if (after.epoch === before.epoch && after.seq !== before.seq + 1n) {
      this.#c.add(this.#cGap); // lost messages: ask for the whole table
      this.#asks = ASK_TIMES;
    }
    if (this.role === 'master') {
      this.#c.add(this.#cIgnored, v);
      return;
    }
    this.#c.add(this.#cRecv, v);
    this.#peerDelayMs = this.#wall() - this.#sentAt(m);
    this.#hooks.records(m, PAIR_HEADER, v);
  }

  /** The message's `sent at` (u64 ms at 32, pair-wire.ts; within 2^53 for any real clock). */
  #sentAt(m: Uint8Array): number {
    return getU32(m, 32) * 2 ** 32 + getU32(m, 36);
  }

  #heard(): void {
    this.#lastHeard = this.#now();
    this.#everHeard = true;
    if (!this.#up) {
      this.#up = true;
      this.#c.add(this.#cUp);
      this.#log.info('pair link up', { peer: this.cfg.peer, role: this.role });
    }
  }

  /** For status: the link's state, the peer as it last said, the queue and its lag. */
  status(): Record<string, unknown> {
    const now = this.#now();
    return {
      self: this.cfg.self,
      peer: this.cfg.peer,
      role: this.role,
      link: this.#up ? 'up' : this.#everHeard ? 'down' : 'never-heard',
      lastHeardMs: this.#everHeard ? Math.round(now - this.#lastHeard) : null,
      peerDelayMs: this.#everHeard ? this.#peerDelayMs : null,
      peerStatus: this.#peer ?? null,
      configHash: this.#hashText ?? null,
      queued: this.#count,
      queueMax: this.cfg.queue,
      lagMs: this.#count === 0 ? 0 : Math.round(now - this.#qAt[this.#head]),
      queueDrops: this.#queueDrops,
      resyncing: this.#resync >= 0,
    };
  }
}
