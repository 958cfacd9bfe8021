// The entrypoint: one event-driven loop per component thread, like Genode's
// Entrypoint. It polls the fds of everything registered (TAP devices, session
// wake-up eventfds, sockets) with one synchronous poll(2), runs every pollable
// that is readable or has work pending, and sleeps only after each pollable has
// armed its wake-up (so a peer signals only when this side sleeps).
//
// The loop gives Node's event loop a turn regularly (timers, the control
// channel from init), and at once when the control fd becomes readable.
import { POLLIN, POLLERR, POLLHUP, poll, schedYield } from '../sys/libc.ts';
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
  /**
   * Polling budget, ns: after a turn with work the loop keeps polling (without
   * arming its wake-ups, yielding the CPU between polls) this long before it
   * sleeps, so a peer that sends again soon need not wake it. 0: sleep at once.
   */
  spinNs?: number;
}

const REVENTS_READY = POLLIN | POLLERR | POLLHUP;
/** Turns in a row that may skip poll(2) because a ring has work (the fds then get their turn). */
const MAX_FAST_TURNS = 4;
/** Polling budgets in a row that found no work before the loop stops spinning. */
const SPIN_MISSES = 3;

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
  readonly stats = { turns: 0, sleeps: 0, idleNs: 0n, busyNs: 0n, yields: 0, fastTurns: 0, spins: 0, spinHits: 0 };
  // Tracepoints: "ep.wait" (blocking poll), "ep.poll" (non-blocking poll),
  // "ep.outside" (from the end of one turn to the start of the next: Node's event loop).
  #tr: Tracer = NO_TRACE;
  #pWait = 0;
  #pPoll = 0;
  #pOutside = 0;
  #lastEnd = 0;
  // Polling budget: spin after work while spins keep finding work; after
  // SPIN_MISSES budgets in a row that found none, sleep at once until a sleep
  // ends sooner than the budget (the peer is active again).
  #spinNs = 0n;
  #spinOn = true;
  #spinMisses = 0;

  constructor(opts: EntrypointOptions = {}) {
    this.#maxSleepMs = opts.maxSleepMs ?? 50;
    this.#yieldEveryMs = opts.yieldEveryMs ?? 2;
    this.#controlFd = opts.controlFd ?? -1;
    this.#controlDrain = opts.controlDrain;
    this.#spinNs = BigInt(Math.max(0, Math.round(opts.spinNs ?? 0)));
  }

  /** Set the polling budget (ns; 0: sleep as soon as there is no work). */
  setSpin(ns: number): void {
    this.#spinNs = BigInt(Math.max(0, Math.round(ns)));
    this.#spinOn = true;
    this.#spinMisses = 0;
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
    let busy = false;
    let fastTurns = 0;
    let hadWork = false;
    let spinUntil = 0n;
    let idleNs = 0n;
    for (;;) {
      this.stats.turns++;
      // After a turn with work, a pollable with work pending in shared memory
      // (a ring) runs again without a system call; a few such turns at most,
      // then the fds get their poll. Otherwise every pollable arms its wake-up
      // and the loop polls, sleeping unless one was pending when it armed: no
      // separate non-blocking poll first (it cost a system call per batch,
      // ~2.5 us each on the 2-core test machine).
      let skipPoll = false;
      if (busy && fastTurns < MAX_FAST_TURNS) {
        for (let i = 0; i < ps.length; i++) {
          const p = ps[i];
          if (p.pending !== undefined && p.pending()) {
            skipPoll = true;
            break;
          }
        }
      }
      // Build the poll set (not needed on a turn that skips poll(2)).
      let n = 0;
      for (let i = 0; i < ps.length && !skipPoll; i++) {
        const p = ps[i];
        if (p.fd < 0 || (p.active !== undefined && !p.active())) continue;
        view.setInt32(n * 8, p.fd, true);
        view.setInt16(n * 8 + 4, POLLIN, true);
        view.setInt16(n * 8 + 6, 0, true);
        this.#slot[n] = i;
        n++;
      }
      const ctl = n;
      if (this.#controlFd >= 0 && !skipPoll) {
        view.setInt32(n * 8, this.#controlFd, true);
        view.setInt16(n * 8 + 4, POLLIN, true);
        view.setInt16(n * 8 + 6, 0, true);
        n++;
      }
      let timeout = 0;
      let r = 0;
      let spinning = false;
      if (!skipPoll && hadWork && this.#spinOn && this.#spinNs > 0n) {
        const now = process.hrtime.bigint();
        if (spinUntil === 0n) spinUntil = now + this.#spinNs;
        if (now < spinUntil) spinning = true;
        else if (++this.#spinMisses >= SPIN_MISSES) this.#spinOn = false;
      }
      if (skipPoll) {
        fastTurns++;
        this.stats.fastTurns++;
      } else if (spinning) {
        // Within the polling budget: look at the fds without arming (a peer
        // that submits now need not signal), letting other threads of this
        // CPU run first.
        this.stats.spins++;
        schedYield();
        const tp = tr.begin();
        r = poll(this.#pfds, n, 0);
        tr.end(this.#pPoll, tp, r);
      } else {
        fastTurns = 0;
        spinUntil = 0n;
        timeout = this.#maxSleepMs;
        for (let i = 0; i < ps.length; i++) {
          const p = ps[i];
          if (p.arm !== undefined && p.arm()) timeout = 0;
        }
        let t0 = 0n;
        if (timeout > 0) {
          this.stats.sleeps++;
          hadWork = false;
          t0 = process.hrtime.bigint();
        }
        const tp = tr.begin();
        r = poll(this.#pfds, n, timeout);
        tr.end(timeout > 0 ? this.#pWait : this.#pPoll, tp, r);
        if (timeout > 0) {
          const slept = process.hrtime.bigint() - t0;
          idleNs += slept;
          // Woken sooner than the budget: spinning would have caught it.
          if (r > 0 && !this.#spinOn && slept < this.#spinNs) {
            this.#spinOn = true;
            this.#spinMisses = 0;
          }
        }
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
      if (busy) {
        hadWork = true;
        if (spinning) {
          this.stats.spinHits++;
          this.#spinMisses = 0;
        }
        spinUntil = 0n;
      }
      const controlReady = n > ctl && r > 0 && (view.getInt16(ctl * 8 + 6, true) & REVENTS_READY) !== 0;
      if (controlReady) {
        this.#controlDrain?.();
        break;
      }
      // A sleep that ended by its timeout yields to Node's event loop, unless
      // it ended with work found (a pollable without an fd, seen by pending()).
      if ((timeout > 0 && r === 0 && work === 0) || !this.#running) break;
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

/** Longest polling budget a loop accepts, ns (config `scheduling.spin-us` is at most 10 ms). */
export const MAX_SPIN_NS = 10_000_000;

/**
 * The polling budget of a loop running these components' grants, ns: the
 * largest they carry, a value that is not a number in 0..MAX_SPIN_NS counted as 0.
 */
export function spinBudget(grants: readonly { spinNs?: number }[]): number {
  let ns = 0;
  for (const g of grants) {
    const v = g.spinNs;
    if (typeof v === 'number' && Number.isFinite(v) && v > ns) ns = Math.min(v, MAX_SPIN_NS);
  }
  return ns;
}
