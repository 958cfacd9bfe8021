// The entrypoint: one event-driven loop per component thread, like Genode's
// Entrypoint. It polls the fds of everything registered (TAP devices, session
// wake-up eventfds, sockets) with one synchronous poll(2), runs every pollable
// that is readable or has work pending, and sleeps only after each pollable has
// armed its wake-up (so a peer signals only when this side sleeps).
//
// The loop gives Node's event loop a turn regularly (timers, the control
// channel from init), and at once when the control fd becomes readable.
import { POLLIN, POLLERR, POLLHUP, poll } from '../sys/libc.ts';
import { NO_TRACE } from '../trace/tracer.ts';
import type { Tracer } from '../trace/tracer.ts';
import type { Pollable } from '../session/pollable.ts';

export type { Pollable };

export interface EntrypointOptions {
  /** Longest blocking poll, ms: bounds timer latency while idle. */
  maxSleepMs?: number;
  /** Longest busy stretch before Node's event loop gets a turn, ms. */
  yieldEveryMs?: number;
  /** A fd whose readability means "control message waiting": the loop yields at once. */
  controlFd?: number;
  /** Called when the control fd is ready, before yielding (e.g. to drain an eventfd doorbell). */
  controlDrain?: () => void;
}

const REVENTS_READY = POLLIN | POLLERR | POLLHUP;

export class Entrypoint {
  #pollables: Pollable[] = [];
  #pfds = new Uint8Array(8 * 64);
  #pview = new DataView(this.#pfds.buffer);
  #slot: Int32Array = new Int32Array(64); // pollable index for each pollfd entry
  #running = false;
  #scheduled = false;
  #maxSleepMs: number;
  #yieldEveryMs: number;
  #controlFd: number;
  #controlDrain: (() => void) | undefined;
  /** Statistics: loop turns, sleeps, ns spent blocked in poll. */
  readonly stats = { turns: 0, sleeps: 0, idleNs: 0n, busyNs: 0n, yields: 0 };
  // Tracepoints: "ep.wait" (blocking poll), "ep.poll" (non-blocking poll),
  // "ep.outside" (from the end of one turn to the start of the next: Node's event loop).
  #tr: Tracer = NO_TRACE;
  #pWait = 0;
  #pPoll = 0;
  #pOutside = 0;
  #lastEnd = 0;

  constructor(opts: EntrypointOptions = {}) {
    this.#maxSleepMs = opts.maxSleepMs ?? 50;
    this.#yieldEveryMs = opts.yieldEveryMs ?? 2;
    this.#controlFd = opts.controlFd ?? -1;
    this.#controlDrain = opts.controlDrain;
  }

  add(p: Pollable): void {
    this.#pollables.push(p);
    if (this.#pollables.length + 1 > this.#slot.length) {
      const n = this.#slot.length * 2;
      this.#pfds = new Uint8Array(8 * n);
      this.#pview = new DataView(this.#pfds.buffer);
      this.#slot = new Int32Array(n);
    }
    this.kick();
  }

  remove(p: Pollable): void {
    const i = this.#pollables.indexOf(p);
    if (i >= 0) this.#pollables.splice(i, 1);
  }

  start(): void {
    this.#running = true;
    this.kick();
  }

  /** Record this loop's waits, polls and time outside its turns with `tr`. */
  setTracer(tr: Tracer): void {
    this.#pWait = tr.proc('ep.wait');
    this.#pPoll = tr.proc('ep.poll');
    this.#pOutside = tr.proc('ep.outside');
    this.#tr = tr;
  }

  stop(): void {
    this.#running = false;
  }

  /** Make sure the loop runs soon (after registering work from outside the loop). */
  kick(): void {
    if (!this.#running || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#turn);
  }

  #turn = (): void => {
    this.#scheduled = false;
    if (!this.#running) return;
    const ps = this.#pollables;
    const view = this.#pview;
    const tr = this.#tr;
    tr.end(this.#pOutside, this.#lastEnd);
    const started = process.hrtime.bigint();
    const deadline = started + BigInt(this.#yieldEveryMs * 1_000_000);
    let busy = true;
    let idleNs = 0n;
    for (;;) {
      this.stats.turns++;
      // Build the poll set.
      let n = 0;
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i];
        if (p.fd < 0 || (p.active !== undefined && !p.active())) continue;
        view.setInt32(n * 8, p.fd, true);
        view.setInt16(n * 8 + 4, POLLIN, true);
        view.setInt16(n * 8 + 6, 0, true);
        this.#slot[n] = i;
        n++;
      }
      const ctl = n;
      if (this.#controlFd >= 0) {
        view.setInt32(n * 8, this.#controlFd, true);
        view.setInt16(n * 8 + 4, POLLIN, true);
        view.setInt16(n * 8 + 6, 0, true);
        n++;
      }
      let timeout = 0;
      let armed = false;
      if (!busy) {
        timeout = this.#maxSleepMs;
        armed = true;
        for (let i = 0; i < ps.length; i++) {
          const p = ps[i];
          if (p.arm !== undefined && p.arm()) timeout = 0;
        }
      }
      let t0 = 0n;
      if (timeout > 0) {
        this.stats.sleeps++;
        t0 = process.hrtime.bigint();
      }
      const tp = tr.begin();
      const r = poll(this.#pfds, n, timeout);
      tr.end(timeout > 0 ? this.#pWait : this.#pPoll, tp, r);
      if (timeout > 0) idleNs += process.hrtime.bigint() - t0;
      if (armed) {
        for (let i = 0; i < ps.length; i++) {
          const p = ps[i];
          if (p.disarm !== undefined) p.disarm();
        }
      }
      let work = 0;
      // Fds reported ready.
      const ready = this.#readyMask;
      ready.fill(0, 0, ps.length);
      if (r > 0) {
        for (let k = 0; k < ctl; k++) {
          if (view.getInt16(k * 8 + 6, true) & REVENTS_READY) ready[this.#slot[k]] = 1;
        }
      }
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i];
        const rd = ready[i] === 1;
        if (rd || (p.pending !== undefined && p.pending())) work += p.run(rd);
      }
      busy = work > 0;
      const controlReady = n > ctl && r > 0 && (view.getInt16(ctl * 8 + 6, true) & REVENTS_READY) !== 0;
      if (controlReady) {
        this.#controlDrain?.();
        break;
      }
      if ((timeout > 0 && r === 0) || !this.#running) break;
      if (process.hrtime.bigint() >= deadline) break;
    }
    const now = process.hrtime.bigint();
    this.stats.idleNs += idleNs;
    this.stats.busyNs += now - started - idleNs;
    this.stats.yields++;
    this.#lastEnd = tr.begin();
    if (this.#running) {
      this.#scheduled = true;
      setImmediate(this.#turn);
    }
  };

  get #readyMask(): Uint8Array {
    if (this.#ready.length < this.#pollables.length) this.#ready = new Uint8Array(this.#slot.length);
    return this.#ready;
  }
  #ready = new Uint8Array(64);
}
