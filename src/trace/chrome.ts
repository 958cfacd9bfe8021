// Chrome trace-event JSON (the "JSON Object Format" Perfetto and
// chrome://tracing open): every span as a complete event ("ph": "X"), one
// process per OS process (a component's own, or the shared host of thread and
// inline components) and one track (thread) per tracer: a component, or an
// entrypoint shared by several components. Times are microseconds since the
// earliest event (CLOCK_MONOTONIC of that instant is in otherData).
import type { TracerSnapshot } from './tracer.ts';

export interface ChromeEvent {
  name: string;
  ph: 'X' | 'M' | 'i';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  s?: 't' | 'p' | 'g';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeEvent[];
  displayTimeUnit: 'ns';
  otherData: Record<string, string | number>;
}

/** Category of a procedure: the part before the first dot ("lan.submit_packet" -> "lan"). */
function category(proc: string): string {
  const i = proc.indexOf('.');
  return i < 0 ? proc : proc.slice(0, i);
}

export function toChromeTrace(snaps: readonly TracerSnapshot[]): ChromeTrace {
  const events: ChromeEvent[] = [];
  let t0 = Infinity;
  for (const s of snaps) if (s.events !== undefined && s.events.t.length > 0) t0 = Math.min(t0, s.events.t[0]);
  if (t0 === Infinity) t0 = 0;
  // Process names: the components sharing each pid.
  const byPid = new Map<number, string[]>();
  for (const s of snaps) {
    const l = byPid.get(s.pid) ?? [];
    if (!l.includes(s.component)) l.push(s.component);
    byPid.set(s.pid, l);
  }
  for (const [pid, comps] of byPid) {
    const name = comps.length === 1 ? comps[0] : `host: ${comps.join(', ')}`;
    events.push({ name: 'process_name', ph: 'M', pid, tid: 0, args: { name } });
  }
  // One track per tracer; tids unique within their pid.
  const nextTid = new Map<number, number>();
  let lost = 0;
  for (const s of snaps) {
    const tid = (nextTid.get(s.pid) ?? 0) + 1;
    nextTid.set(s.pid, tid);
    const label = `${s.component} (${s.thread} thread${s.tid !== 0 ? ` ${s.tid}` : ''})`;
    events.push({ name: 'thread_name', ph: 'M', pid: s.pid, tid, args: { name: label } });
    events.push({ name: 'thread_sort_index', ph: 'M', pid: s.pid, tid, args: { sort_index: tid } });
    const ev = s.events;
    if (ev === undefined) continue;
    lost += ev.lost;
    for (let i = 0; i < ev.t.length; i++) {
      const name = s.procs[ev.proc[i]]?.name ?? `proc${ev.proc[i]}`;
      const e: ChromeEvent = {
        name,
        cat: category(name),
        ph: 'X',
        pid: s.pid,
        tid,
        ts: (ev.t[i] - t0) / 1000,
        dur: ev.dur[i] / 1000,
      };
      if (ev.arg[i] !== 0) e.args = { arg: ev.arg[i] };
      events.push(e);
    }
  }
  return {
    traceEvents: events,
    displayTimeUnit: 'ns',
    otherData: { generator: 'microgate', clock: 'CLOCK_MONOTONIC', originNs: t0, lostEvents: lost },
  };
}
