// What init asks of every component thread about tracing, and what comes
// back (JSON over the control channel; relayed to worker threads by the host).
import type { LoopStats } from './report.ts';
import type { TraceMode, TracerSnapshot } from './tracer.ts';

/** One packet a session capture recorded (src/session/capture.ts). */
export interface CapturedPacket {
  /** CLOCK_MONOTONIC ns. */
  tNs: number;
  dir: 'in' | 'out';
  /** Length of the Ethernet frame on the session (a GSO frame can be up to 64 KiB). */
  origLen: number;
  /** The first min(origLen, snaplen) bytes, base64. */
  data: string;
}

export interface CaptureSnapshot {
  component: string;
  session: string;
  snaplen: number;
  /** Packets recorded since the capture started, and how many were overwritten. */
  total: number;
  lost: number;
  /** ns to add to tNs for Unix time (a decimal string: it exceeds 2^53). */
  unixOffsetNs: string;
  packets: CapturedPacket[];
}


/** Tracing settings of a gateway (config `trace:`), handed to every component. */
export interface TraceSettings {
  /** Mode at start. */
  mode: TraceMode;
  /** Events per tracer ring. */
  ringEvents: number;
  /** Time 1 in `sample` spans (a power of two); all are counted. */
  sample: number;
}

// Always on: exact counts of every tracepoint, timing sampled 1 in 16 (measured
// +3.7% gateway CPU per GB, against +10-22% timing every span: docs/PROFILING.md).
// `trace start` times every span unless told --sample.
// Rings of 16384 events of 16 bytes (256 KiB: stays in L2; = DEFAULT_RING_EVENTS of tracer.ts, not imported
// here to keep config parsing free of the tracer's dependencies).
export const DEFAULT_TRACE_SETTINGS: TraceSettings = { mode: 'aggregates', ringEvents: 16384, sample: 16 };

export type TraceRequest =
  /** Set every tracer's mode (and sampling, when given); `reset` clears aggregates and events first. */
  | { op: 'mode'; mode: TraceMode; reset?: boolean; sample?: number }
  | { op: 'reset' }
  /** Aggregates of every tracer, with its events when `events`. */
  | { op: 'snapshot'; events?: boolean; maxEvents?: number }
  /** Start capturing session end `component`.`session` (replacing a capture already there). */
  | { op: 'capture-start'; component: string; session: string; snaplen?: number; packets?: number }
  /** Stop every capture (what was captured stays readable until the next start). */
  | { op: 'capture-stop' }
  | { op: 'captures' }
  | { op: 'status' };

export interface TracerStatus {
  component: string;
  thread: string;
  pid: number;
  mode: TraceMode;
  sample: number;
  procedures: number;
  events: { capacity: number; total: number; lost: number };
}

export interface CaptureStatus {
  component: string;
  session: string;
  active: boolean;
  snaplen: number;
  packets: number;
  total: number;
}

export interface TraceReply {
  tracers: (TracerSnapshot & { loop?: LoopStats })[];
  captures: CaptureSnapshot[];
  status: { tracers: TracerStatus[]; captures: CaptureStatus[] };
  /** For capture-start: session ends that matched here. */
  matched: number;
  errors: string[];
}

export function emptyReply(): TraceReply {
  return { tracers: [], captures: [], status: { tracers: [], captures: [] }, matched: 0, errors: [] };
}

/** Merge the replies of several threads or processes. */
export function mergeReplies(rs: readonly TraceReply[]): TraceReply {
  const out = emptyReply();
  for (const r of rs) {
    out.tracers.push(...r.tracers);
    out.captures.push(...r.captures);
    out.status.tracers.push(...r.status.tracers);
    out.status.captures.push(...r.status.captures);
    out.matched += r.matched;
    out.errors.push(...r.errors);
  }
  return out;
}
