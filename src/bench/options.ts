// `microgate bench` options: parsing and validation. Every bad value gets a
// message naming the option, what was given and what is expected.
import { parseArgs } from 'node:util';
import { DEFAULTS, MAX_SPIN_US } from '../init/config.ts';
import { ISOLATIONS, LINK_KINDS, TEST_KINDS, TRANSPORTS, type BenchOptions, type Isolation, type LinkKind, type SpinSetting, type TestKind, type TraceLevel, type Transport } from './plan.ts';

export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

export const BENCH_HELP = `Usage: microgate bench [options]

The paper's experiment on this machine: TCP throughput in both directions
over IPv4 and over IPv6, request/response latency, 64-byte UDP packet rate
and a write-size sweep,
through microgate and through Linux kernel forwarding (nftables NAT + stateful
filter) in labs built once and measured alternately, round-robin, so that
machine noise hits both. Prints the table of ratios microgate / Linux and
writes bench.json, report.md and SVG charts. Needs root, iperf3, sockperf and
trafgen (netsniff-ng; scripts/setup.sh installs them).

Variants (comma-separated lists; the first value of each is the base
configuration, the others are measured one change at a time, or all
combinations with --grid):
  --isolation LIST     process, thread, inline        (default process,thread,inline)
  --transport LIST     shm, socket                    (default shm,socket)
  --cores LIST         CPUs the experiment runs on    (default 2,1: two cores, then one)
  --slots LIST         session buffers x1, x8 (or any multiplier; x1 = 256 slots)  (default x1,x8)
  --spin LIST          polling budget of microgate's loops (config scheduling.spin-us):
                       microseconds, or auto (init measures a wake-up at start);
                       drivers:N: N µs for the nic-drivers' loops only
                       (default: the config's default, ${DEFAULTS.spinUs})
  --sync LIST          off, on: without / with conn-sync (the router exports every
                       connection's records; what sync costs an HA pair's active side,
                       less the pair link's frames)   (default off)
  --link LIST          tap, packet, packet-recvmmsg: microgate's links to the hosts,
                       TAP devices or veth pairs whose gateway ends are packet links
                       (AF_PACKET: received through a PACKET_MMAP ring, sent by
                       sendmmsg; packet-recvmmsg: received by recvmmsg, no ring)
                       (default tap)
  --trace LIST         off, on, events                (default off; on = per-procedure
                       aggregates, events = also every span into rings; a traced
                       configuration adds the Table-1 breakdown to the report)
  --grid               every combination of the lists

What to measure:
  --tests LIST         tcp, tcp6, latency, udp, small, sweep (default all; tcp6: TCP
                       over IPv6 both ways, routed by both gateways: no NAT66; small:
                       RFC 2544-style forwarding rate with trafgen, below)
  --repeat N           repetitions of every figure    (default 3)
  --seconds N          seconds per TCP, UDP and latency run (default 5)
  --sweep-seconds N    seconds per sweep size         (default 2)
  --sizes LIST         sweep write sizes, bytes       (default 64,256,1024,4096,16384,65536)
  --frames LIST        small-packet frame sizes, bytes with FCS (default 64,512)
  --trial-seconds N    seconds per small-packet trial (default 2)
  --steps N            binary-search trials per frame size after the overload
                       trial (default 4): the highest rate with < 0.1 % loss
  --quick              a smoke test under a minute: the base configuration and Linux,
                       one repetition of 1 s runs, sweep sizes 1024,65536,
                       small-packet search of 2 trials
                       (explicit options still apply)

Output:
  --out DIR            where the files go (default ./results/bench-TIMESTAMP)
  --json               print the JSON result on stdout instead of the table
  -q, --quiet          no progress on stderr
  -h, --help           this help

"N cores": the traffic tools and every thread of microgate's processes are
pinned to the first N CPUs (taskset); Linux forwards in the senders' softirq
context, so pinning the tools pins it too. Exit codes: 0 done, 1 a run failed
or the bench could not run, 2 bad usage, 130 interrupted.`;

export interface ParsedBench {
  options: BenchOptions;
  out: string | undefined;
  json: boolean;
  quiet: boolean;
  help: boolean;
  quick: boolean;
}

function list(opt: string, v: string): string[] {
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new BenchUsageError(`--${opt}: expected a comma-separated list, got "${v}"`);
  const dup = items.find((x, i) => items.indexOf(x) !== i);
  if (dup !== undefined) throw new BenchUsageError(`--${opt}: "${dup}" is listed twice`);
  return items;
}

function oneOf<T extends string>(opt: string, v: string, allowed: readonly T[]): T[] {
  return list(opt, v).map((x) => {
    if (!(allowed as readonly string[]).includes(x)) throw new BenchUsageError(`--${opt}: "${x}" is not one of ${allowed.join(', ')}`);
    return x as T;
  });
}

function int(opt: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < min || n > max) {
    throw new BenchUsageError(`--${opt}: expected a whole number from ${min} to ${max}, got "${v}"`);
  }
  return n;
}

function seconds(opt: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 1 || n > 600) throw new BenchUsageError(`--${opt}: expected whole seconds from 1 to 600, got "${v}"`);
  return n;
}

function slotsList(v: string): number[] {
  return list('slots', v).map((x) => {
    const m = /^x?(\d+)$/.exec(x);
    const k = m ? Number(m[1]) : NaN;
    // 256 slots x k must stay a power of two within the session limit (65536 slots).
    if (!m || !(k >= 1 && k <= 256) || (k & (k - 1)) !== 0) throw new BenchUsageError(`--slots: "${x}" is not a buffer multiplier x1, x2, x4 ... x256`);
    return k;
  });
}

function spinList(v: string): SpinSetting[] {
  return list('spin', v).map((x): SpinSetting => {
    if (x === 'auto') return 'auto';
    const drivers = x.startsWith('drivers:');
    const us = drivers ? x.slice(8) : x;
    const n = Number(us);
    if (!/^\d+$/.test(us) || n > MAX_SPIN_US) throw new BenchUsageError(`--spin: "${x}" is not a polling budget: auto, microseconds from 0 to ${MAX_SPIN_US}, or drivers:MICROSECONDS`);
    return drivers ? `drivers:${n}` as const : n;
  });
}

/** Parse argv. `maxCores`: CPUs this process may use. */
export function parseBenchArgs(argv: string[], maxCores: number): ParsedBench {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      isolation: { type: 'string' },
      transport: { type: 'string' },
      cores: { type: 'string' },
      slots: { type: 'string' },
      spin: { type: 'string' },
      sync: { type: 'string' },
      link: { type: 'string' },
      trace: { type: 'string' },
      grid: { type: 'boolean' },
      tests: { type: 'string' },
      repeat: { type: 'string' },
      seconds: { type: 'string' },
      'sweep-seconds': { type: 'string' },
      sizes: { type: 'string' },
      frames: { type: 'string' },
      'trial-seconds': { type: 'string' },
      steps: { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (positionals.length > 0) throw new BenchUsageError(`unexpected argument "${positionals[0]}" (see --help)`);
  const quick = values.quick === true;
  const two = Math.min(2, maxCores);
  const o: BenchOptions = {
    isolation: values.isolation !== undefined ? oneOf<Isolation>('isolation', values.isolation, ISOLATIONS) : quick ? ['process'] : [...ISOLATIONS],
    transport: values.transport !== undefined ? oneOf<Transport>('transport', values.transport, TRANSPORTS) : quick ? ['shm'] : [...TRANSPORTS],
    cores: values.cores !== undefined
      ? list('cores', values.cores).map((x) => int('cores', x, 1, maxCores))
      : quick || two === 1 ? [two] : [two, 1],
    slots: values.slots !== undefined ? slotsList(values.slots) : quick ? [1] : [1, 8],
    spin: values.spin !== undefined ? spinList(values.spin) : [DEFAULTS.spinUs],
    sync: values.sync !== undefined ? oneOf('sync', values.sync, ['off', 'on'] as const).map((x) => x === 'on') : [false],
    link: values.link !== undefined ? oneOf<LinkKind>('link', values.link, LINK_KINDS) : ['tap'],
    trace: values.trace !== undefined
      ? oneOf('trace', values.trace, ['off', 'on', 'aggregates', 'events'] as const).map((x): TraceLevel => (x === 'on' ? 'aggregates' : x))
      : ['off'],
    grid: values.grid === true,
    repeat: values.repeat !== undefined ? int('repeat', values.repeat, 1, 100) : quick ? 1 : 3,
    seconds: values.seconds !== undefined ? seconds('seconds', values.seconds) : quick ? 1 : 5,
    sweepSeconds: values['sweep-seconds'] !== undefined ? seconds('sweep-seconds', values['sweep-seconds']) : quick ? 1 : 2,
    sizes: values.sizes !== undefined ? list('sizes', values.sizes).map((x) => int('sizes', x, 16, 1 << 20)) : quick ? [1024, 65536] : [64, 256, 1024, 4096, 16384, 65536],
    tests: values.tests !== undefined ? oneOf<TestKind>('tests', values.tests, TEST_KINDS) : [...TEST_KINDS],
    udpSize: 64,
    latencySize: 64,
    frames: values.frames !== undefined ? list('frames', values.frames).map((x) => int('frames', x, 64, 1518)) : [64, 512],
    trialSeconds: values['trial-seconds'] !== undefined ? seconds('trial-seconds', values['trial-seconds']) : quick ? 1 : 2,
    steps: values.steps !== undefined ? int('steps', values.steps, 0, 20) : quick ? 2 : 4,
  };
  if (values.out !== undefined && values.out.trim() === '') throw new BenchUsageError('--out: expected a directory');
  return { options: o, out: values.out, json: values.json === true, quiet: values.quiet === true, help: values.help === true, quick };
}
