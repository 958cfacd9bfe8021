// `microgate trace start|stop|status|report|export|counters|mode|bench`:
// drive the tracing of a running gateway through its control API.
// Exit codes: 0 success, 1 failure, 2 usage error.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { TraceClient, TraceClientError } from '../trace/client.ts';
import { CONTROL_HELP, resolveControl } from './control-url.ts';
import type { TraceStatusView } from '../trace/client.ts';
import { formatReport } from '../trace/report.ts';
import { TRACE_MODES } from '../trace/tracer.ts';
import type { TraceMode } from '../trace/tracer.ts';

export const TRACE_HELP = `Usage: microgate trace COMMAND [--lab NAME | --control SOCKET|URL] [options]

Profile a running gateway: tracepoints on every stage of the data path record
into per-component rings in RAM; init collects them over HTTP on request.

Commands:
  start      record every span into the event rings (aggregates always run unless off)
               --aggregates        aggregates only (no event rings)
               --no-reset          keep what was recorded so far
               --sample N          time 1 in N spans (a power of two; counts stay exact; default 1 for start)
               --capture C.PORT    also capture the packets of session end C.PORT (e.g. drv-lan.nic, router.lan)
               --snaplen N         bytes kept per captured packet (default 2048)
               --packets N         packets kept, the oldest overwritten (default 2048)
  stop       stop the event rings and captures (what they hold stays for export)
               --off               stop the aggregates too (tracepoints cost nothing)
  status     mode and ring fill of every tracer; captures
  report     Table 1: count, mean, p50, p99, p99.9, max (ns) per component and procedure;
             spikes (p99.9 > N x p50, and when); busy vs idle per entrypoint thread
               --json              the rows as a JSON array of
                                   {component, procedure, count, mean_ns, p50_ns, p99_ns, p999_ns, max_ns}
               --full-json         the whole report (rows, spikes, loops, events) as JSON
               --spike N           spike factor (default 10)
               --all               also procedures with a zero count
               --component NAME    one component only
  export     write the raw data
               --format F          chrome (trace-event JSON for Perfetto / chrome://tracing),
                                   pcapng (the captures), json (aggregates and raw events)
               --out FILE          default microgate-trace.json / microgate.pcapng / microgate-events.json; - for stdout
               --component NAME    one component only
               --max N             newest N events per tracer
  counters   per component: drops by reason, queue depths, wake-ups, busy/idle time   [--json]
  mode M     set the mode: off, aggregates or events   [--reset] [--sample N]
  bench      tracepoint cost and forwarding throughput with tracing off / aggregates / events
             (see microgate trace bench --help)

Target:
${CONTROL_HELP}`;

const COMMON = {
  lab: { type: 'string' },
  control: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positiveInt(v: string | undefined, name: string, max = 2 ** 31): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new TraceClientError(0, 'MG_USAGE', `--${name}: expected an integer from 1 to ${max} (got "${v}")`);
  return n;
}

function sampleArg(v: string | undefined): number | undefined {
  const n = positiveInt(v, 'sample', 1024);
  if (n !== undefined && (n & (n - 1)) !== 0) throw new TraceClientError(0, 'MG_USAGE', `--sample: expected a power of two from 1 to 1024 (got ${n})`);
  return n;
}

function printStatus(s: TraceStatusView): void {
  for (const t of s.tracers) {
    const ev = t.events.capacity === 0 ? 'no event ring' : `events ${Math.min(t.events.total, t.events.capacity)}/${t.events.capacity}${t.events.lost > 0 ? ` (${t.events.lost} overwritten)` : ''}`;
    const sample = t.sample > 1 ? `, timing 1 in ${t.sample}` : '';
    process.stdout.write(`${t.component.padEnd(12)} ${t.thread.padEnd(6)} pid ${String(t.pid).padEnd(7)} ${t.mode.padEnd(10)} ${String(t.procedures).padStart(3)} procedures, ${ev}${sample}\n`);
  }
  for (const c of s.captures) {
    process.stdout.write(`capture ${c.component}.${c.session}: ${c.active ? 'running' : 'stopped'}, ${c.total} packets seen, keeps ${c.packets} x ${c.snaplen} B\n`);
  }
  for (const e of s.errors) process.stderr.write(`warning: ${e}\n`);
}

export async function traceCommand(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${TRACE_HELP}\n`);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'bench') return (await import('../bench/trace-bench.ts')).traceBenchCommand(rest);
  try {
    return await run(cmd, rest);
  } catch (e) {
    if (e instanceof TraceClientError) {
      process.stderr.write(`microgate trace ${cmd}: ${e.message}${e.code.startsWith('MG_') && e.status !== 0 ? ` (${e.code})` : ''}\n`);
      return e.code === 'MG_USAGE' ? 2 : 1;
    }
    throw e;
  }
}

async function run(cmd: string, argv: string[]): Promise<number> {
  const client = async (v: { lab?: string; control?: string }): Promise<TraceClient> => new TraceClient(await resolveControl(v));
  switch (cmd) {
    case 'start': {
      const { values: v } = parseArgs({ args: argv, options: { ...COMMON, aggregates: { type: 'boolean' }, 'no-reset': { type: 'boolean' }, sample: { type: 'string' }, capture: { type: 'string' }, snaplen: { type: 'string' }, packets: { type: 'string' } } });
      if (v.help) return help();
      const c = await client(v);
      const s = await c.start({
        mode: v.aggregates ? 'aggregates' : 'events',
        reset: v['no-reset'] !== true,
        sample: sampleArg(v.sample) ?? 1, // a profiling run times every span unless told otherwise
        capture: v.capture,
        snaplen: positiveInt(v.snaplen, 'snaplen', 65536),
        packets: positiveInt(v.packets, 'packets', 1 << 20),
      });
      process.stdout.write(`tracing ${v.aggregates ? 'aggregates' : 'events'} on ${c.control.where}${v.capture ? `, capturing ${v.capture}` : ''}\n`);
      printStatus(s);
      return 0;
    }
    case 'stop': {
      const { values: v } = parseArgs({ args: argv, options: { ...COMMON, off: { type: 'boolean' } } });
      if (v.help) return help();
      const s = await (await client(v)).stop(v.off ? 'off' : 'aggregates');
      printStatus(s);
      return 0;
    }
    case 'status': {
      const { values: v } = parseArgs({ args: argv, options: { ...COMMON, json: { type: 'boolean' } } });
      if (v.help) return help();
      const s = await (await client(v)).status();
      if (v.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      else printStatus(s);
      return 0;
    }
    case 'mode': {
      const { values: v, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...COMMON, reset: { type: 'boolean' }, sample: { type: 'string' } } });
      if (v.help) return help();
      const m = positionals[0];
      if (positionals.length !== 1 || !(TRACE_MODES as readonly string[]).includes(m)) {
        throw new TraceClientError(0, 'MG_USAGE', `expected one mode: ${TRACE_MODES.join(', ')}`);
      }
      printStatus(await (await client(v)).mode(m as TraceMode, v.reset === true, sampleArg(v.sample)));
      return 0;
    }
    case 'report': {
      const { values: v } = parseArgs({
        args: argv,
        options: { ...COMMON, json: { type: 'boolean' }, 'full-json': { type: 'boolean' }, spike: { type: 'string' }, all: { type: 'boolean' }, component: { type: 'string' } },
      });
      if (v.help) return help();
      let spike: number | undefined;
      if (v.spike !== undefined) {
        spike = Number(v.spike);
        if (!Number.isFinite(spike) || spike < 1) throw new TraceClientError(0, 'MG_USAGE', `--spike: expected a number >= 1 (got "${v.spike}")`);
      }
      const r = await (await client(v)).report({ spike, all: v.all === true, component: v.component });
      if (v.json) process.stdout.write(`${JSON.stringify(r.rows, null, 2)}\n`);
      else if (v['full-json']) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else process.stdout.write(`${formatReport(r)}\n`);
      for (const e of r.errors) process.stderr.write(`warning: ${e}\n`);
      return 0;
    }
    case 'export': {
      const { values: v } = parseArgs({ args: argv, options: { ...COMMON, format: { type: 'string' }, out: { type: 'string' }, component: { type: 'string' }, max: { type: 'string' } } });
      if (v.help) return help();
      const format = v.format ?? 'chrome';
      const c = await client(v);
      const max = positiveInt(v.max, 'max', 1 << 24);
      let data: Buffer;
      let file: string;
      if (format === 'chrome') {
        data = await c.chrome({ component: v.component, max });
        file = 'microgate-trace.json';
      } else if (format === 'pcapng') {
        data = await c.pcapng({ component: v.component });
        file = 'microgate.pcapng';
      } else if (format === 'json') {
        data = Buffer.from(JSON.stringify(await c.events({ component: v.component, max })));
        file = 'microgate-events.json';
      } else throw new TraceClientError(0, 'MG_USAGE', `--format: expected chrome, pcapng or json (got "${format}")`);
      const out = v.out ?? file;
      if (out === '-') process.stdout.write(data);
      else {
        writeFileSync(out, data);
        process.stderr.write(`wrote ${out} (${data.length} bytes)${format === 'chrome' ? '; open it in https://ui.perfetto.dev or chrome://tracing' : format === 'pcapng' ? '; read it with tshark -r or Wireshark' : ''}\n`);
      }
      return 0;
    }
    case 'counters': {
      const { values: v } = parseArgs({ args: argv, options: { ...COMMON, json: { type: 'boolean' } } });
      if (v.help) return help();
      const r = await (await client(v)).counters();
      if (v.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else printCounters(r.components as Record<string, CountersView>);
      return 0;
    }
    default:
      process.stderr.write(`microgate trace: unknown command "${cmd}"\n\n${TRACE_HELP}\n`);
      return 2;
  }
}

interface CountersView {
  drops: Record<string, number>;
  counters: Record<string, number>;
  sessions: Record<string, { queued: number; busySlots: number; freeSlots: number; wakeupsSent: number; packetsIn: number; packetsOut: number; drops: Record<string, number> }>;
  loop: { turns: number; sleeps: number; busyNs: number; idleNs: number; idlePct: number };
}

function printCounters(cs: Record<string, CountersView>): void {
  for (const [name, c] of Object.entries(cs)) {
    process.stdout.write(`${name}: busy ${(c.loop.busyNs / 1e9).toFixed(2)} s, idle ${(c.loop.idleNs / 1e9).toFixed(2)} s (${c.loop.idlePct}% idle), ${c.loop.turns} turns, ${c.loop.sleeps} sleeps\n`);
    const drops = Object.entries(c.drops);
    process.stdout.write(`  drops: ${drops.length === 0 ? 'none' : drops.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
    for (const [port, s] of Object.entries(c.sessions)) {
      const sd = Object.entries(s.drops);
      process.stdout.write(`  session ${port}: in ${s.packetsIn}, out ${s.packetsOut}, queued ${s.queued}, slots busy ${s.busySlots} free ${s.freeSlots}, wake-ups sent ${s.wakeupsSent}${sd.length > 0 ? `, drops ${sd.map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}\n`);
    }
  }
}

function help(): number {
  process.stdout.write(`${TRACE_HELP}\n`);
  return 0;
}
