// Tracing during the benchmark, through the gateway's control API
// (src/trace/client.ts): before every microgate run the tracepoints are set to
// the configuration's mode (off for untraced configurations, so "trace off"
// really is off), with the aggregates reset; after a traced run the report in
// the shape of the paper's Table 1 (per component and procedure: count, mean,
// p50, p99, p99.9, max), its spikes and the busy / idle time of every
// entrypoint thread are kept.
import { TraceClient, TraceClientError } from '../trace/client.ts';
import type { LoopRow, ReportRow, SpikeRow } from '../trace/report.ts';

import type { TraceLevel } from './plan.ts';

export interface TraceSummary {
  /** The test the trace was taken during. */
  test: string;
  rep: number;
  mode: TraceLevel;
  windowS: number;
  rows: ReportRow[];
  spikes: SpikeRow[];
  loops: LoopRow[];
}

function client(controlSocket: string): TraceClient {
  return new TraceClient({ socket: controlSocket }, 10_000);
}

/**
 * Set the tracepoints of the gateway at `controlSocket` to `mode`, clearing what
 * was recorded. Resolves with a problem description when the gateway has no
 * tracing (an older build) or refused, undefined when done.
 */
export async function setTraceMode(controlSocket: string, mode: TraceLevel): Promise<string | undefined> {
  try {
    await client(controlSocket).mode(mode, true);
    return undefined;
  } catch (e) {
    if (e instanceof TraceClientError && e.status === 404) return "the gateway's control API has no tracing endpoints";
    return `setting the trace mode failed: ${(e as Error).message}`;
  }
}

/** The report of what was traced since the last setTraceMode. */
export async function traceReport(controlSocket: string, test: string, rep: number, mode: TraceLevel): Promise<TraceSummary> {
  const r = await client(controlSocket).report({ spike: 10 });
  return { test, rep, mode, windowS: r.windowS, rows: r.rows, spikes: r.spikes, loops: r.loops };
}

/** ns as the trace report prints them: 850, 12.3k, 4.1M. */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1e3) return ns.toFixed(0);
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)}k`;
  return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)}M`;
}
