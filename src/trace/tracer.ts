// Tracepoints: the paper's tick counters around chosen procedures, kept in
// RAM and read later (their log went to ram_fs and out over HTTP).
//
// One Tracer per component (and one per entrypoint thread), used by one
// thread only. A procedure is registered once, off the hot path, and gets a
// small integer id. A tracepoint is two calls around the code it measures:
//
//   const t0 = tr.begin();        // performance.now(), or 0 when tracing is off
//   ...work...
//   tr.end(P_WORK, t0, bytes);    // records [t0, now) with an argument; returns now (to chain the next stage)
//
// Modes (`level`):
//   0 off         begin() and end() are one field load and a branch: nothing else.
//   1 aggregates  per procedure: count, sum, min, max (and when), a log-linear
//                 histogram and the last few spikes; fixed arrays, no allocation.
//   2 events      aggregates, plus every span into a fixed ring of 16-byte
//                 events (start, duration, procedure, argument); the oldest
//                 are overwritten and the loss is counted.
// Nothing on the hot path allocates, throws or does I/O.
//
// Chaining: reading the clock is most of a tracepoint's cost (~38 ns of ~45-50),
// so consecutive stages share readings. end() returns its reading, the start
// of the next stage; latest() is the latest reading without reading the
// clock; chainNext() tells the next tracepoint of this tracer (a begin() or an
// end(), often in a callee such as a session's submit()) that nothing happens
// in between, so it takes the latest reading instead of reading the clock;
// stage() starts a stage inside a chain that does not follow the previous one
// at once (it reads the clock but makes no sampling decision); endAt() records
// a span between two readings already taken. See README.md, "Chaining".
// Most components call none of this: their session ends and the entrypoint
// time them (README.md, "Who records what").
//
// Sampling (`sample` N, a power of two, default 1): every span is counted, but
// only a random 1 in N is timed (begin() reads the clock, else returns 0 and the
// span only counts). A chain of spans started from an untimed begin() stays
// untimed (latest(), chained readings and stage() follow it), so the stages of a
// packet, or of a batch, are timed together. Means and percentiles are
// those of the timed spans; max and spikes can only come from timed spans.
import { threadId } from 'node:worker_threads';
import { BUCKETS, bucketOf, bucketsToHdr, encodeHdr } from './histogram.ts';
import { monotonicOffsetNs } from './clock.ts';

export type TraceMode = 'off' | 'aggregates' | 'events';
export const TRACE_MODES: readonly TraceMode[] = ['off', 'aggregates', 'events'];
export const LEVEL_OFF = 0;
export const LEVEL_AGGREGATES = 1;
export const LEVEL_EVENTS = 2;

export function modeLevel(m: TraceMode): number {
  return m === 'off' ? LEVEL_OFF : m === 'aggregates' ? LEVEL_AGGREGATES : LEVEL_EVENTS;
}

export function levelMode(l: number): TraceMode {
  return l === LEVEL_OFF ? 'off' : l === LEVEL_AGGREGATES ? 'aggregates' : 'events';
}

/** Default events per ring (16 bytes each: 256 KiB, stays in L2). */
export const DEFAULT_RING_EVENTS = 16384;
/** Bytes per event: start (float64 ms), duration (uint32 ns), procedure (8 bits) and argument (24 bits). */
export const EVENT_BYTES = 16;
/** Procedures per tracer: an event keeps the id in 8 bits. */
export const MAX_PROCS = 256;
/** An event's duration saturates here (ns, ~4.3 s); the aggregates keep the exact value. */
export const MAX_EVENT_DUR_NS = 0xffffffff;
/** An event's argument saturates to this range (signed 24 bits); the aggregates do not keep arguments. */
export const MAX_EVENT_ARG = 0x7fffff;
export const MIN_EVENT_ARG = -0x800000;
/** Spikes kept per procedure (the most recent). */
export const SPIKES_KEPT = 8;
/** A span is logged as a spike when longer than this many times the procedure's mean so far. */
export const DEFAULT_SPIKE_FACTOR = 8;
/** ...and only after this many spans (the mean must mean something). */
const SPIKE_MIN_COUNT = 64;
// Per procedure aggregates, one cache line each: [count (timed), sum ns, min, max, when max (ms), untimed count, spikes seen, -].
const AGG = 8;
const A_COUNT = 0;
const A_SUM = 1;
const A_MIN = 2;
const A_MAX = 3;
const A_MAX_AT = 4;
const A_UNTIMED = 5;
const A_SPIKES = 6;

/** Largest sampling divisor. */
export const MAX_SAMPLE = 1024;

export function validSample(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_SAMPLE && (n & (n - 1)) === 0;
}

export interface TracerOptions {
  /** The component (or, for an entrypoint shared by several components, the unit) this tracer belongs to. */
  component: string;
  /** Thread label, e.g. "main" or "worker". */
  thread?: string;
  mode?: TraceMode;
  ringEvents?: number;
  spikeFactor?: number;
  /** Time 1 in `sample` spans (a power of two; default 1: all). */
  sample?: number;
}

export interface ProcSnapshot {
  name: string;
  /** Spans counted (timed or not). */
  count: number;
  /** Spans timed: sumNs, min, max, the histogram and spikes are theirs (= count unless sampling). */
  timed: number;
  sumNs: number;
  minNs: number;
  maxNs: number;
  /** CLOCK_MONOTONIC ns when the longest span started. */
  maxAtNs: number;
  /** HdrHistogram (ns), compressed base64 (the HdrHistogram log format's encoding). */
  hdr: string;
  /** The last spikes: [start CLOCK_MONOTONIC ns, duration ns], oldest first. */
  spikes: [number, number][];
  /** Spikes seen in all (SPIKES_KEPT are kept). */
  spikeCount: number;
}

export interface EventsSnapshot {
  capacity: number;
  /** Events recorded since the last reset. */
  total: number;
  /** Overwritten before they were read: max(0, total - capacity). */
  lost: number;
  /** Columns, oldest first: start (CLOCK_MONOTONIC ns), duration (ns), procedure index (into procs), argument. */
  t: number[];
  dur: number[];
  proc: number[];
  arg: number[];
}

export interface TracerSnapshot {
  component: string;
  thread: string;
  pid: number;
  tid: number;
  mode: TraceMode;
  /** CLOCK_MONOTONIC ns of the last reset (aggregates and events count from here) and of this snapshot. */
  sinceNs: number;
  nowNs: number;
  spikeFactor: number;
  /** 1 in `sample` spans is timed. */
  sample: number;
  procs: ProcSnapshot[];
  events?: EventsSnapshot;
}

const now = performance.now.bind(performance);

/** An event's argument, saturated to signed 24 bits. */
function clampArg(a: number): number {
  return a > MAX_EVENT_ARG ? MAX_EVENT_ARG : a < MIN_EVENT_ARG ? MIN_EVENT_ARG : a;
}

export class Tracer {
  readonly component: string;
  readonly thread: string;
  /** 0 off, 1 aggregates, 2 events. Read on the hot path; change it with setMode(). */
  level: number;
  readonly spikeFactor: number;
  readonly ringEvents: number;
  readonly #offsetNs: number;
  #names: string[] = [];
  #index = new Map<string, number>();
  #cap = 0;
  /** AGG numbers per procedure (A_COUNT, A_SUM, ...). */
  #agg = new Float64Array(0);
  #hist = new Float64Array(0);
  /** Per procedure SPIKES_KEPT pairs (t0 ms, duration ns). */
  #spikes = new Float64Array(0);
  /**
   * The event ring, one ArrayBuffer of EVENT_BYTES per event, two views:
   * #evT[2i] the start (ms), #evW[4i + 2] the duration (ns), #evW[4i + 3]
   * the argument (high 24 bits, signed) and the procedure (low 8 bits).
   */
  #evT: Float64Array | null = null;
  #evW = new Uint32Array(0);
  /** The latest clock reading of begin(), stage() or end() (0 after an untimed one). */
  #last = 0;
  /** chainNext(): the next reading takes #last instead of the clock. */
  #chain = false;
  /** Sampling: time a span when (random & mask) === 0; mask 0 times all. */
  #mask = 0;
  #rng = 0x9e3779b9;
  #evPos = 0;
  #evTotal = 0;
  #since: number;

  constructor(o: TracerOptions) {
    this.component = o.component;
    this.thread = o.thread ?? 'main';
    this.level = modeLevel(o.mode ?? 'off');
    this.spikeFactor = o.spikeFactor ?? DEFAULT_SPIKE_FACTOR;
    const n = o.ringEvents ?? DEFAULT_RING_EVENTS;
    if (!Number.isInteger(n) || n < 16 || n > 1 << 24) throw new RangeError(`ringEvents must be an integer in 16..${1 << 24}, got ${n}`);
    this.ringEvents = n;
    this.#offsetNs = monotonicOffsetNs();
    this.#since = now();
    this.setSample(o.sample ?? 1);
    if (this.level === LEVEL_EVENTS) this.#allocRing();
  }

  get mode(): TraceMode {
    return levelMode(this.level);
  }

  get sample(): number {
    return this.#mask + 1;
  }

  /** Time 1 in n spans (a power of two, 1..MAX_SAMPLE); every span is still counted. */
  setSample(n: number): void {
    if (!validSample(n)) throw new RangeError(`sample must be a power of two from 1 to ${MAX_SAMPLE}, got ${n}`);
    this.#mask = n - 1;
  }

  /** Register (or find) a procedure; keep the id for the hot path. At most MAX_PROCS per tracer. */
  proc(name: string): number {
    const known = this.#index.get(name);
    if (known !== undefined) return known;
    const id = this.#names.length;
    if (id >= MAX_PROCS) {
      throw new RangeError(`tracer "${this.component}": cannot register procedure "${name}": at most ${MAX_PROCS} procedures per tracer (an event keeps the id in 8 bits)`);
    }
    this.#names.push(name);
    this.#index.set(name, id);
    if (id >= this.#cap) this.#grow(Math.min(MAX_PROCS, Math.max(16, this.#cap * 2)));
    return id;
  }

  get procedures(): readonly string[] {
    return this.#names;
  }

  #grow(cap: number): void {
    const g = (a: Float64Array<ArrayBuffer>, per: number): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(cap * per);
      b.set(a);
      return b;
    };
    const agg = g(this.#agg, AGG);
    for (let id = this.#cap; id < cap; id++) agg[id * AGG + A_MIN] = Infinity;
    this.#agg = agg;
    this.#hist = g(this.#hist, BUCKETS);
    this.#spikes = g(this.#spikes, SPIKES_KEPT * 2);
    this.#cap = cap;
  }

  #allocRing(): void {
    const b = new ArrayBuffer(this.ringEvents * EVENT_BYTES);
    this.#evT = new Float64Array(b);
    this.#evW = new Uint32Array(b);
  }

  /** Switch mode; `reset` also clears aggregates and events. Allocates the event ring on first use. */
  setMode(mode: TraceMode, reset = false): void {
    const l = modeLevel(mode);
    if (l === LEVEL_EVENTS && this.#evT === null) this.#allocRing();
    if (reset) this.reset();
    this.#chain = false;
    this.#last = 0;
    this.level = l;
  }

  reset(): void {
    const agg = this.#agg;
    agg.fill(0);
    for (let id = 0; id < this.#cap; id++) agg[id * AGG + A_MIN] = Infinity;
    this.#hist.fill(0);
    this.#spikes.fill(0);
    this.#evPos = 0;
    this.#evTotal = 0;
    this.#chain = false;
    this.#since = now();
  }

  // ---- hot path ---------------------------------------------------------------
  //
  // begin() starts a span, end() records it; stage(), latest() and chainNext()
  // let consecutive stages share clock readings (README.md, "Chaining").

  /** Start a span: performance.now() in ms (the latest reading after chainNext()), or 0 when tracing is off or the span is not timed. */
  begin(): number {
    if (this.level === LEVEL_OFF) return 0;
    if (this.#chain) {
      this.#chain = false;
      return this.#last;
    }
    if (this.#mask !== 0) {
      // xorshift32: a sampling decision independent of the call pattern.
      let x = this.#rng;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#rng = x;
      if ((x & this.#mask) !== 0) return (this.#last = 0);
    }
    return (this.#last = now());
  }

  /**
   * Start a stage inside a chain, after other stages of the same packet or
   * batch but not right after them (so not latest()): reads the clock if the
   * chain is timed, else returns 0. Unlike begin() it makes no sampling
   * decision of its own, so with sampling the stages of a chain are timed
   * together; with every span timed it is begin().
   */
  stage(): number {
    if (this.level === LEVEL_OFF) return 0;
    if (this.#chain) {
      this.#chain = false;
      return this.#last;
    }
    if (this.#mask !== 0 && this.#last === 0) return 0;
    return (this.#last = now());
  }

  /**
   * The latest reading of begin(), stage() or end(), without reading the
   * clock (0 when off): the start of a span that begins where the previous
   * one ended, e.g. a packet handed over right after the session's
   * get_packet tracepoint.
   */
  latest(): number {
    return this.level !== LEVEL_OFF ? this.#last : 0;
  }

  /**
   * Promise that the next tracepoint of this tracer follows at once: its
   * reading (a begin(), or the end of a span) takes the latest one instead of
   * reading the clock. For a stage that ends where a callee's span starts (a
   * session's alloc() or submit()), or an enclosing span that ends with its
   * last stage. Used by the next tracepoint, whatever it is.
   */
  chainNext(): void {
    if (this.level !== LEVEL_OFF) this.#chain = true;
  }

  /**
   * Record the span [t0, now) of procedure `id` with an argument kept in the
   * event (bytes, batch size, ...; an integer, saturated to 24 bits signed in
   * the event); returns now (0 when off or not timed) to start the next span.
   */
  end(id: number, t0: number, arg = 0): number {
    if (this.level === LEVEL_OFF) return 0;
    let end: number;
    if (this.#chain) {
      this.#chain = false;
      end = this.#last;
    } else if (t0 !== 0) {
      end = this.#last = now();
    } else {
      end = 0;
    }
    if (t0 === 0 || end === 0) {
      // Not timed (sampling, or tracing switched on since begin()): count it only.
      this.#agg[id * AGG + A_UNTIMED]++;
      return (this.#last = 0);
    }
    this.#record(id, t0, (end - t0) * 1e6, arg);
    return end;
  }

  /**
   * Record the span [t0, t1) of procedure `id` between two readings already
   * taken (neither 0: else only counted), without reading the clock: a stage
   * that ends where the next one's begin() read it (a session end times the
   * component's work on a slot this way). Returns t1.
   */
  endAt(id: number, t0: number, t1: number, arg = 0): number {
    if (this.level === LEVEL_OFF) return 0;
    if (t0 === 0 || t1 === 0) {
      this.#agg[id * AGG + A_UNTIMED]++;
      return t1;
    }
    this.#record(id, t0, (t1 - t0) * 1e6, arg);
    return t1;
  }

  /** Record a span measured elsewhere (start in performance.now() ms, duration in ns), e.g. a GC pause. */
  record(id: number, t0: number, durNs: number, arg = 0): void {
    if (this.level !== LEVEL_OFF) this.#record(id, t0, durNs < 0 ? 0 : durNs, arg);
  }

  #record(id: number, t0: number, d: number, arg: number): void {
    const a = this.#agg;
    const k = id * AGG;
    const c = ++a[k + A_COUNT];
    const sum = (a[k + A_SUM] += d);
    if (d > a[k + A_MAX]) {
      a[k + A_MAX] = d;
      a[k + A_MAX_AT] = t0;
    }
    if (d < a[k + A_MIN]) a[k + A_MIN] = d;
    this.#hist[id * BUCKETS + bucketOf(d)]++;
    if (c > SPIKE_MIN_COUNT && d * c > this.spikeFactor * sum) {
      const n = a[k + A_SPIKES]++;
      const s = (id * SPIKES_KEPT + (n % SPIKES_KEPT)) * 2;
      this.#spikes[s] = t0;
      this.#spikes[s + 1] = d;
    }
    if (this.level === LEVEL_EVENTS) {
      const p = this.#evPos;
      this.#evT![p << 1] = t0;
      const w = this.#evW;
      const i = p << 2;
      w[i + 2] = d < MAX_EVENT_DUR_NS ? d : MAX_EVENT_DUR_NS;
      w[i + 3] = (clampArg(arg) << 8) | id;
      this.#evPos = p + 1 === this.ringEvents ? 0 : p + 1;
      this.#evTotal++;
    }
  }

  // ---- reading (off the hot path) --------------------------------------------------

  /** ms of performance.now() to CLOCK_MONOTONIC ns. */
  toMonotonicNs(ms: number): number {
    return this.#offsetNs + ms * 1e6;
  }

  /** Spans of procedure `name` counted so far, timed or not (0 if unknown): for tests and status. */
  count(name: string): number {
    const id = this.#index.get(name);
    return id === undefined ? 0 : this.#agg[id * AGG + A_COUNT] + this.#agg[id * AGG + A_UNTIMED];
  }

  /** Events recorded since the last reset, and how many were overwritten. */
  eventStats(): { capacity: number; total: number; lost: number } {
    return { capacity: this.#evT === null ? 0 : this.ringEvents, total: this.#evTotal, lost: Math.max(0, this.#evTotal - this.ringEvents) };
  }

  snapshot(opts: { events?: boolean; maxEvents?: number } = {}): TracerSnapshot {
    const procs: ProcSnapshot[] = [];
    const a = this.#agg;
    for (let id = 0; id < this.#names.length; id++) {
      const k = id * AGG;
      const n = a[k + A_COUNT];
      const spikes: [number, number][] = [];
      const seen = a[k + A_SPIKES];
      const kept = Math.min(seen, SPIKES_KEPT);
      for (let j = seen - kept; j < seen; j++) {
        const s = (id * SPIKES_KEPT + (j % SPIKES_KEPT)) * 2;
        spikes.push([Math.round(this.toMonotonicNs(this.#spikes[s])), Math.round(this.#spikes[s + 1])]);
      }
      procs.push({
        name: this.#names[id],
        count: n + a[k + A_UNTIMED],
        timed: n,
        sumNs: Math.round(a[k + A_SUM]),
        minNs: n === 0 ? 0 : Math.round(a[k + A_MIN]),
        maxNs: Math.round(a[k + A_MAX]),
        maxAtNs: n === 0 ? 0 : Math.round(this.toMonotonicNs(a[k + A_MAX_AT])),
        hdr: n === 0 ? '' : encodeHdr(bucketsToHdr(this.#hist, id * BUCKETS)),
        spikes,
        spikeCount: seen,
      });
    }
    const snap: TracerSnapshot = {
      component: this.component,
      thread: this.thread,
      pid: process.pid,
      tid: threadId,
      mode: this.mode,
      sinceNs: Math.round(this.toMonotonicNs(this.#since)),
      nowNs: Math.round(this.toMonotonicNs(now())),
      spikeFactor: this.spikeFactor,
      sample: this.sample,
      procs,
    };
    if (opts.events === true) snap.events = this.#eventsSnapshot(opts.maxEvents ?? Infinity);
    return snap;
  }

  #eventsSnapshot(max: number): EventsSnapshot {
    const cap = this.ringEvents;
    const total = this.#evTotal;
    const evT = this.#evT;
    const have = Math.min(total, evT === null ? 0 : cap);
    const take = Math.min(have, Math.max(0, Math.floor(max)));
    const out: EventsSnapshot = { capacity: evT === null ? 0 : cap, total, lost: Math.max(0, total - cap), t: [], dur: [], proc: [], arg: [] };
    if (evT === null || take === 0) return out;
    const w = this.#evW;
    // The newest `take` events, oldest first.
    let p = (this.#evPos - take + cap) % cap;
    for (let k = 0; k < take; k++) {
      out.t.push(Math.round(this.toMonotonicNs(evT[p << 1])));
      out.dur.push(w[(p << 2) + 2]);
      const x = w[(p << 2) + 3];
      out.proc.push(x & 0xff);
      out.arg.push(x >> 8);
      if (++p === cap) p = 0;
    }
    return out;
  }
}

/** A tracer that is always off: the default of every session end and router until one is attached. */
export const NO_TRACE = new Tracer({ component: '(none)', mode: 'off', ringEvents: 16 });
