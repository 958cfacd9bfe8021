// Tracing in one component thread: a Tracer per component (attached to its
// session ends too), one for the entrypoint (the component's own when it is
// alone on the thread), the captures of session ends, and the answers to
// init's trace requests. Used by src/runtime/runtime.ts.
import { PerformanceObserver } from 'node:perf_hooks';
import type { Entrypoint } from './entrypoint.ts';
import type { SessionEnd } from '../session/types.ts';
import { PacketCapture } from '../session/capture.ts';
import type { CaptureStatus, TraceReply, TraceRequest, TraceSettings, TracerStatus } from '../trace/protocol.ts';
import { DEFAULT_TRACE_SETTINGS, emptyReply } from '../trace/protocol.ts';
import type { LoopStats } from '../trace/report.ts';
import { Tracer, TRACE_MODES, MAX_SAMPLE, validSample } from '../trace/tracer.ts';

interface TracedEnd {
  component: string;
  /** The port the component knows the session by. */
  port: string;
  end: SessionEnd;
}

export class ThreadTrace {
  readonly settings: TraceSettings;
  /** Name for an entrypoint shared by several components (the host unit). */
  readonly unit: string;
  readonly thread: string;
  #tracers: Tracer[] = [];
  #ends: TracedEnd[] = [];
  #ep: Entrypoint | undefined;
  #epTracer: Tracer | undefined;
  #gcProc = -1;
  #gc: PerformanceObserver | undefined;
  #captures: PacketCapture[] = [];
  #capturing = new Set<PacketCapture>();
  #loopBase: LoopStats = { turns: 0, sleeps: 0, busyNs: 0, idleNs: 0 };

  constructor(unit: string, thread: string, settings: TraceSettings = DEFAULT_TRACE_SETTINGS) {
    this.unit = unit;
    this.thread = thread;
    this.settings = settings;
  }

  /** A new tracer for component `name`. */
  componentTracer(name: string): Tracer {
    const tr = new Tracer({ component: name, thread: this.thread, mode: this.settings.mode, ringEvents: this.settings.ringEvents, sample: this.settings.sample ?? 1 });
    this.#tracers.push(tr);
    return tr;
  }

  /** Trace a component's session end with its tracer (procedures "<port>.<operation>"). */
  addEnd(component: string, port: string, end: SessionEnd, tracer: Tracer): void {
    end.attachTrace?.(tracer, port);
    this.#ends.push({ component, port, end });
  }

  /** Give the entrypoint its tracer: the component's own when it is alone here, else one named after the unit. */
  bindEntrypoint(ep: Entrypoint): void {
    this.#ep = ep;
    let tr = this.#tracers.length === 1 ? this.#tracers[0] : undefined;
    if (tr === undefined) {
      tr = new Tracer({ component: this.unit, thread: this.thread, mode: this.settings.mode, ringEvents: this.settings.ringEvents, sample: this.settings.sample ?? 1 });
      this.#tracers.push(tr);
    }
    this.#epTracer = tr;
    ep.setTracer(tr);
    this.#gcProc = tr.proc('v8.gc');
    this.#loopBase = this.#loopNow();
    this.#observeGc();
  }

  /** GC pauses go to the entrypoint's tracer (a PerformanceObserver: only while tracing is on). */
  #observeGc(): void {
    const tr = this.#epTracer;
    if (tr === undefined) return;
    if (tr.level !== 0 && this.#gc === undefined) {
      const id = this.#gcProc;
      this.#gc = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) tr.record(id, e.startTime, e.duration * 1e6);
      });
      this.#gc.observe({ entryTypes: ['gc'] });
    } else if (tr.level === 0 && this.#gc !== undefined) {
      this.#gc.disconnect();
      this.#gc = undefined;
    }
  }

  #loopNow(): LoopStats {
    const s = this.#ep?.stats;
    if (s === undefined) return { turns: 0, sleeps: 0, busyNs: 0, idleNs: 0 };
    return { turns: s.turns, sleeps: s.sleeps, busyNs: Number(s.busyNs), idleNs: Number(s.idleNs) };
  }

  #loopDelta(): LoopStats {
    const n = this.#loopNow();
    const b = this.#loopBase;
    return { turns: n.turns - b.turns, sleeps: n.sleeps - b.sleeps, busyNs: n.busyNs - b.busyNs, idleNs: n.idleNs - b.idleNs };
  }

  #reset(): void {
    for (const t of this.#tracers) t.reset();
    this.#loopBase = this.#loopNow();
  }

  handle(req: TraceRequest): TraceReply {
    const r = emptyReply();
    switch (req.op) {
      case 'mode':
        if (!TRACE_MODES.includes(req.mode)) {
          r.errors.push(`unknown trace mode ${JSON.stringify(req.mode)}; expected one of ${TRACE_MODES.join(', ')}`);
          break;
        }
        if (req.sample !== undefined && !validSample(req.sample)) {
          r.errors.push(`sample must be a power of two from 1 to ${MAX_SAMPLE} (got ${JSON.stringify(req.sample)})`);
          break;
        }
        for (const t of this.#tracers) {
          t.setMode(req.mode, false);
          if (req.sample !== undefined) t.setSample(req.sample);
        }
        if (req.reset === true) this.#reset();
        this.#observeGc();
        break;
      case 'reset':
        this.#reset();
        break;
      case 'snapshot':
        for (const t of this.#tracers) {
          const s = t.snapshot({ events: req.events === true, maxEvents: req.maxEvents });
          r.tracers.push(t === this.#epTracer ? { ...s, loop: this.#loopDelta() } : s);
        }
        break;
      case 'capture-start': {
        for (const e of this.#ends) {
          if (e.component !== req.component || e.port !== req.session || e.end.capture === undefined) continue;
          try {
            const c = new PacketCapture(e.component, e.port, req.snaplen, req.packets);
            // A new capture of the same end replaces the old one (and its packets).
            this.#captures = this.#captures.filter((x) => !(x.component === c.component && x.session === c.session));
            this.#captures.push(c);
            this.#capturing.add(c);
            e.end.capture(c);
            r.matched++;
          } catch (err) {
            r.errors.push(err instanceof Error ? err.message : String(err));
          }
        }
        break;
      }
      case 'capture-stop':
        for (const e of this.#ends) e.end.capture?.(null);
        this.#capturing.clear();
        break;
      case 'captures':
        for (const c of this.#captures) r.captures.push(c.snapshot());
        break;
      case 'status':
        break;
      default:
        r.errors.push(`unknown trace request ${JSON.stringify((req as { op?: unknown }).op)}`);
    }
    r.status = this.status();
    return r;
  }

  status(): { tracers: TracerStatus[]; captures: CaptureStatus[] } {
    return {
      tracers: this.#tracers.map((t) => ({ component: t.component, thread: t.thread, pid: process.pid, mode: t.mode, sample: t.sample, procedures: t.procedures.length, events: t.eventStats() })),
      captures: this.#captures.map((c) => ({ component: c.component, session: c.session, active: this.#capturing.has(c), snaplen: c.snaplen, packets: c.slots, total: c.total })),
    };
  }
}
