// Tracepoints: the paper's tick counters around chosen procedures, kept in
// RAM and read later (their log went to ram_fs and out over HTTP).
//
// One Tracer per component (and one per entrypoint thread), used by one
// thread only. A procedure is registered once, off the hot path, and gets a
// small integer id. A tracepoint is two calls around the code it measures:
//
//   const t0 = tr.t();            // performance.now(), or 0 when tracing is off
//   ...work...
//   tr.span(P_WORK, t0);          // records [t0, now); returns now (to chain the next stage)
//
// Modes (`level`):
//   0 off         t() and span() are one field load and a branch: nothing else.
//   1 aggregates  per procedure: count, sum, min, max (and when), a log-linear
//                 histogram and the last few spikes; fixed arrays, no allocation.
//   2 events      aggregates, plus every span into a fixed ring of events
//                 (start, duration, procedure, argument); the oldest are
//                 overwritten and the loss is counted.
// Nothing on the hot path allocates, throws or does I/O.
//
// Sampling (`sample` N, a power of two, default 1): every span is counted, but
// only a random 1 in N is timed (t() reads the clock, else returns 0 and the
// span only counts). A chain of spans started from an untimed t() stays
// untimed, so a packet's stages are timed together. Means and percentiles are
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

/** Default events per ring (32 bytes each: 2 MiB). */
export const DEFAULT_RING_EVENTS = 65536;
/** Spikes kept per procedure (the most recent). */
export const SPIKES_KEPT = 8;
/** A span is logged as a spike when longer than this many times the procedure's mean so far. */
export const DEFAULT_SPIKE_FACTOR = 8;
/** ...and only after this many spans (the mean must mean something). */
const SPIKE_MIN_COUNT = 64;
const EV_WORDS = 4;

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
  /** Timed spans, and spans only counted (sampling). */
  #count = new Float64Array(0);
  #untimed = new Float64Array(0);
  #sum = new Float64Array(0);
  #min = new Float64Array(0);
  #max = new Float64Array(0);
  #maxAt = new Float64Array(0);
  #hist = new Float64Array(0);
  /** Per procedure SPIKES_KEPT pairs (t0 ms, duration ns), and how many were seen. */
  #spikes = new Float64Array(0);
  #spikeN = new Float64Array(0);
  #ev: Float64Array | null = null;
  /** The latest clock reading of t() or span() (0 after an untimed one). */
  #last = 0;
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
    this.#since = performance.now();
    this.setSample(o.sample ?? 1);
    if (this.level === LEVEL_EVENTS) this.#ev = new Float64Array(n * EV_WORDS);
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

  /** Register (or find) a procedure; keep the id for the hot path. */
  proc(name: string): number {
    const known = this.#index.get(name);
    if (known !== undefined) return known;
    const id = this.#names.length;
    this.#names.push(name);
    this.#index.set(name, id);
    if (id >= this.#cap) this.#grow(Math.max(16, this.#cap * 2));
    return id;
  }

  get procedures(): readonly string[] {
    return this.#names;
  }

  #grow(cap: number): void {
    const g = (a: Float64Array<ArrayBuffer>, per: number, fill = 0): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(cap * per);
      if (fill !== 0) b.fill(fill);
      b.set(a);
      return b;
    };
    this.#count = g(this.#count, 1);
    this.#untimed = g(this.#untimed, 1);
    this.#sum = g(this.#sum, 1);
    this.#min = g(this.#min, 1, Infinity);
    this.#max = g(this.#max, 1);
    this.#maxAt = g(this.#maxAt, 1);
    this.#hist = g(this.#hist, BUCKETS);
    this.#spikes = g(this.#spikes, SPIKES_KEPT * 2);
    this.#spikeN = g(this.#spikeN, 1);
    this.#cap = cap;
  }

  /** Switch mode; `reset` also clears aggregates and events. Allocates the event ring on first use. */
  setMode(mode: TraceMode, reset = false): void {
    const l = modeLevel(mode);
    if (l === LEVEL_EVENTS && this.#ev === null) this.#ev = new Float64Array(this.ringEvents * EV_WORDS);
    if (reset) this.reset();
    this.level = l;
  }

  reset(): void {
    this.#count.fill(0);
    this.#untimed.fill(0);
    this.#sum.fill(0);
    this.#min.fill(Infinity);
    this.#max.fill(0);
    this.#maxAt.fill(0);
    this.#hist.fill(0);
    this.#spikes.fill(0);
    this.#spikeN.fill(0);
    this.#evPos = 0;
    this.#evTotal = 0;
    this.#since = performance.now();
  }

  // ---- hot path ---------------------------------------------------------------

  /** The start of a span: performance.now() in ms, or 0 when tracing is off. */
  t(): number {
    if (this.level === LEVEL_OFF) return 0;
    if (this.#mask !== 0) {
      // xorshift32: a sampling decision independent of the call pattern.
      let x = this.#rng;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#rng = x;
      if ((x & this.#mask) !== 0) return (this.#last = 0);
    }
    return (this.#last = performance.now());
  }

  /**
   * The latest reading of t() or span(), without reading the clock (0 when
   * off): the start of a span that begins where the previous one ended, e.g.
   * a packet handed over right after the session's get_packet tracepoint.
   */
  last(): number {
    return this.level !== LEVEL_OFF ? this.#last : 0;
  }

  /** Record the span [t0, now) of procedure `id`; returns now (0 when off) to start the next span. */
  span(id: number, t0: number): number {
    if (this.level === LEVEL_OFF) return 0;
    if (t0 === 0) {
      // Not timed (sampling, or tracing switched on since t()): count it only.
      this.#untimed[id]++;
      return (this.#last = 0);
    }
    const now = (this.#last = performance.now());
    this.#record(id, t0, (now - t0) * 1e6, 0);
    return now;
  }

  /** span() with an argument kept in the event (bytes, batch size, ...). */
  spanArg(id: number, t0: number, arg: number): number {
    if (this.level === LEVEL_OFF) return 0;
    if (t0 === 0) {
      this.#untimed[id]++;
      return (this.#last = 0);
    }
    const now = (this.#last = performance.now());
    this.#record(id, t0, (now - t0) * 1e6, arg);
    return now;
  }

  /** Record a span measured elsewhere (start in performance.now() ms, duration in ns), e.g. a GC pause. */
  record(id: number, t0: number, durNs: number, arg = 0): void {
    if (this.level !== LEVEL_OFF) this.#record(id, t0, durNs < 0 ? 0 : durNs, arg);
  }

  #record(id: number, t0: number, d: number, arg: number): void {
    const c = ++this.#count[id];
    const sum = (this.#sum[id] += d);
    if (d > this.#max[id]) {
      this.#max[id] = d;
      this.#maxAt[id] = t0;
    }
    if (d < this.#min[id]) this.#min[id] = d;
    this.#hist[id * BUCKETS + bucketOf(d)]++;
    if (c > SPIKE_MIN_COUNT && d * c > this.spikeFactor * sum) {
      const k = this.#spikeN[id]++;
      const s = (id * SPIKES_KEPT + (k % SPIKES_KEPT)) * 2;
      this.#spikes[s] = t0;
      this.#spikes[s + 1] = d;
    }
    if (this.level === LEVEL_EVENTS) {
      const ev = this.#ev!;
      let p = this.#evPos;
      const i = p * EV_WORDS;
      ev[i] = t0;
      ev[i + 1] = d;
      ev[i + 2] = id;
      ev[i + 3] = arg;
      if (++p === this.ringEvents) p = 0;
      this.#evPos = p;
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
    return id === undefined ? 0 : this.#count[id] + this.#untimed[id];
  }

  /** Events recorded since the last reset, and how many were overwritten. */
  eventStats(): { capacity: number; total: number; lost: number } {
    return { capacity: this.#ev === null ? 0 : this.ringEvents, total: this.#evTotal, lost: Math.max(0, this.#evTotal - this.ringEvents) };
  }

  snapshot(opts: { events?: boolean; maxEvents?: number } = {}): TracerSnapshot {
    const procs: ProcSnapshot[] = [];
    for (let id = 0; id < this.#names.length; id++) {
      const n = this.#count[id];
      const spikes: [number, number][] = [];
      const seen = this.#spikeN[id];
      const kept = Math.min(seen, SPIKES_KEPT);
      for (let k = seen - kept; k < seen; k++) {
        const s = (id * SPIKES_KEPT + (k % SPIKES_KEPT)) * 2;
        spikes.push([Math.round(this.toMonotonicNs(this.#spikes[s])), Math.round(this.#spikes[s + 1])]);
      }
      procs.push({
        name: this.#names[id],
        count: n + this.#untimed[id],
        timed: n,
        sumNs: Math.round(this.#sum[id]),
        minNs: n === 0 ? 0 : Math.round(this.#min[id]),
        maxNs: Math.round(this.#max[id]),
        maxAtNs: n === 0 ? 0 : Math.round(this.toMonotonicNs(this.#maxAt[id])),
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
      nowNs: Math.round(this.toMonotonicNs(performance.now())),
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
    const have = Math.min(total, this.#ev === null ? 0 : cap);
    const take = Math.min(have, Math.max(0, Math.floor(max)));
    const out: EventsSnapshot = { capacity: this.#ev === null ? 0 : cap, total, lost: Math.max(0, total - cap), t: [], dur: [], proc: [], arg: [] };
    const ev = this.#ev;
    if (ev === null || take === 0) return out;
    // The newest `take` events, oldest first.
    let p = (this.#evPos - take + cap) % cap;
    for (let k = 0; k < take; k++) {
      const i = p * EV_WORDS;
      out.t.push(Math.round(this.toMonotonicNs(ev[i])));
      out.dur.push(Math.round(ev[i + 1]));
      out.proc.push(ev[i + 2]);
      out.arg.push(ev[i + 3]);
      if (++p === cap) p = 0;
    }
    return out;
  }
}

/** A tracer that is always off: the default of every session end and router until one is attached. */
export const NO_TRACE = new Tracer({ component: '(none)', mode: 'off', ringEvents: 16 });
