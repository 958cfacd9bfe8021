// The traffic tools of the benchmark, run inside lab namespaces: iperf3 (TCP
// bulk, UDP small packets, write-size sweep) and sockperf (TCP ping-pong
// latency). Each run starts its own server in the server's namespace, waits
// until it listens, runs the client, and stops the server by PID. Optionally
// both ends are pinned to CPUs (taskset -c LIST).
//
// The parsers are pure and exported for the unit tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { nsExec, CommandError } from '../lab/netns.ts';

/** A tool failed or printed something the parser does not understand. */
export class BenchToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchToolError';
  }
}

// ---- iperf3 --------------------------------------------------------------------

export interface IperfTcpValues {
  /** end.sum_received.bits_per_second, in Gbit/s. */
  gbps: number;
  /** end.sum_sent.retransmits. */
  retransmits: number;
  /** CPU of the sending and receiving iperf3 (percent of one CPU, iperf3's own accounting). */
  senderCpu: number;
  receiverCpu: number;
}

export interface IperfUdpValues {
  /** Datagrams per second that reached the receiver. */
  pps: number;
  /** Datagrams per second the sender wrote. */
  sentPps: number;
  /** Lost datagrams, percent of those sent. */
  lossPct: number;
  /** Received payload rate, Gbit/s. */
  gbps: number;
  senderCpu: number;
  receiverCpu: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number; packets?: number; lost_packets?: number };
    sum_sent?: { retransmits?: number; packets?: number; seconds?: number };
    sum?: { packets?: number; lost_packets?: number; lost_percent?: number; seconds?: number; bytes?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

function parseJson(text: string): IperfJson {
  let j: IperfJson;
  try {
    j = JSON.parse(text) as IperfJson;
  } catch {
    throw new BenchToolError(`iperf3 printed no JSON: ${text.trim().slice(0, 200) || '(nothing)'}`);
  }
  if (typeof j !== 'object' || j === null) throw new BenchToolError('iperf3 printed JSON that is not an object');
  if (typeof j.error === 'string') throw new BenchToolError(`iperf3: ${j.error}`);
  if (j.end === undefined) throw new BenchToolError('iperf3 JSON has no "end" section');
  return j;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : NaN;
}

function cpuOf(j: IperfJson, reverse: boolean): { senderCpu: number; receiverCpu: number } {
  // host = the client; with -R the server sends.
  const c = j.end?.cpu_utilization_percent;
  const host = num(c?.host_total);
  const remote = num(c?.remote_total);
  return reverse ? { senderCpu: remote, receiverCpu: host } : { senderCpu: host, receiverCpu: remote };
}

/** iperf3 --json of a TCP test. `reverse`: the run used -R (the server sent). */
export function parseIperfTcp(text: string, reverse: boolean): IperfTcpValues {
  const j = parseJson(text);
  const bps = num(j.end?.sum_received?.bits_per_second);
  if (!Number.isFinite(bps)) throw new BenchToolError('iperf3 JSON has no end.sum_received.bits_per_second');
  return { gbps: bps / 1e9, retransmits: num(j.end?.sum_sent?.retransmits ?? 0), ...cpuOf(j, reverse) };
}

/**
 * iperf3 --json of a UDP test. iperf3 3.12 puts the receiver's view in
 * end.sum_received (packets = datagrams sent as numbered, lost_packets = gaps)
 * and also in end.sum; older versions only in end.sum.
 */
export function parseIperfUdp(text: string, reverse: boolean): IperfUdpValues {
  const j = parseJson(text);
  const r = j.end?.sum_received?.packets !== undefined ? j.end.sum_received : j.end?.sum;
  const packets = num(r?.packets);
  const lost = num(r?.lost_packets);
  const seconds = num(r?.seconds);
  if (!Number.isFinite(packets) || !Number.isFinite(lost) || !(seconds > 0)) {
    throw new BenchToolError('iperf3 UDP JSON has no packets / lost_packets / seconds in end.sum_received or end.sum');
  }
  const sent = num(j.end?.sum_sent?.packets);
  const sentSeconds = num(j.end?.sum_sent?.seconds);
  const delivered = Math.max(0, packets - lost);
  return {
    pps: delivered / seconds,
    sentPps: Number.isFinite(sent) && sentSeconds > 0 ? sent / sentSeconds : packets / seconds,
    lossPct: packets > 0 ? (100 * lost) / packets : NaN,
    gbps: num(r?.bytes) * 8 / seconds / 1e9,
    ...cpuOf(j, reverse),
  };
}

// ---- sockperf ------------------------------------------------------------------

export interface LatencyValues {
  /** Round-trip times in microseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  p9999: number;
  max: number;
  min: number;
  avg: number;
  /** Round trips per second over the valid duration. */
  rtps: number;
  observations: number;
}

const ANSI = /\x1b\[[0-9;]*m/g;

/** The summary sockperf ping-pong prints (run with --full-rtt: values are round trips, in usec). */
export function parseSockperf(text: string): LatencyValues {
  const t = text.replace(ANSI, '');
  const pct = (p: string): number => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(t);
    return m ? Number(m[1]) : NaN;
  };
  const one = (re: RegExp): number => {
    const m = re.exec(t);
    return m ? Number(m[1]) : NaN;
  };
  const v: LatencyValues = {
    p50: pct('50.000'),
    p90: pct('90.000'),
    p99: pct('99.000'),
    p999: pct('99.900'),
    p9999: pct('99.990'),
    max: one(/<MAX> observation =\s*([\d.]+)/),
    min: one(/<MIN> observation =\s*([\d.]+)/),
    avg: one(/avg-(?:rtt|lat)=\s*([\d.]+)/),
    observations: one(/Total (\d+) observations/),
    rtps: NaN,
  };
  const valid = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(t);
  if (valid) v.rtps = Number(valid[3]) / Number(valid[1]);
  if (!Number.isFinite(v.p50) || !Number.isFinite(v.p99)) {
    const err = /sockperf: ERROR: (.*)/.exec(t);
    throw new BenchToolError(`sockperf printed no percentiles${err ? `: ${err[1]}` : ''}: ${t.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`);
  }
  return v;
}

// ---- running ---------------------------------------------------------------------

/** Every server started here, so an interrupted benchmark can stop them by PID. */
const servers = new Set<ChildProcess>();

/** SIGKILL every server still running (for an interrupt handler). */
export function killServers(): void {
  for (const c of servers) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/** `[taskset -c LIST] cmd args` as argv. */
function pinned(cpus: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpus === undefined ? [cmd, args] : ['taskset', ['-c', cpus, cmd, ...args]];
}

interface Server {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Start `cmd` in `netns` and resolve once its output matches `ready`.
 * `ip netns exec` and `taskset` both exec, so the child's PID is the tool's.
 */
function startServer(netns: string, cpus: string | undefined, cmd: string, args: string[], ready: RegExp, timeoutMs = 5000): Promise<Server> {
  const [c, a] = pinned(cpus, cmd, args);
  const child = spawn('ip', ['netns', 'exec', netns, c, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.add(child);
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => {
    servers.delete(child);
    r();
  }));
  const server: Server = {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) void server.stop().then(() => reject(err));
      else resolve(server);
    };
    const onData = (d: Buffer): void => {
      out += d.toString('utf8');
      if (out.length > 65536) out = out.slice(-32768);
      if (ready.test(out.replace(ANSI, ''))) finish();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (e) => finish(new BenchToolError(`${cmd} could not start: ${e.message}`)));
    child.once('exit', (code, sig) => finish(new BenchToolError(`${cmd} server in ${netns} exited (${sig ?? `code ${code}`}) before listening: ${out.trim().slice(-300)}`)));
    const timer = setTimeout(() => finish(new BenchToolError(`${cmd} server in ${netns} did not listen within ${timeoutMs} ms: ${out.trim().slice(-300)}`)), timeoutMs);
  });
}

async function client(netns: string, cpus: string | undefined, cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const [c, a] = pinned(cpus, cmd, args);
  try {
    return (await nsExec(netns, c, a, { timeoutMs })).stdout;
  } catch (e) {
    // iperf3 --json reports its errors as JSON on stdout with exit 1: let the parser say what.
    if (e instanceof CommandError && e.stdout.trim().startsWith('{')) return e.stdout;
    throw e;
  }
}

export interface Endpoints {
  serverNetns: string;
  serverIp: string;
  clientNetns: string;
  /** taskset CPU list for both tools (e.g. "0"); undefined: not pinned. */
  cpus?: string;
  port?: number;
}

export interface IperfOptions extends Endpoints {
  seconds: number;
  /** -R: the server (wan host) sends. */
  reverse: boolean;
  udp?: boolean;
  /** -l: write size (TCP) or datagram payload (UDP). */
  length?: number;
  /** -b (UDP); default 0 = as fast as the sender can. */
  bandwidth?: string;
}

async function iperf3Raw(o: IperfOptions): Promise<string> {
  const port = String(o.port ?? 5201);
  const server = await startServer(o.serverNetns, o.cpus, 'iperf3', ['-s', '-1', '-B', o.serverIp, '-p', port, '--forceflush'], /Server listening/);
  try {
    const args = ['-c', o.serverIp, '-p', port, '-t', String(o.seconds), '--json', '--connect-timeout', '3000'];
    if (o.reverse) args.push('-R');
    if (o.udp) args.push('-u', '-b', o.bandwidth ?? '0');
    if (o.length !== undefined) args.push('-l', String(o.length));
    return await client(o.clientNetns, o.cpus, 'iperf3', args, (o.seconds + 20) * 1000);
  } finally {
    await server.stop();
  }
}

export async function iperf3Tcp(o: IperfOptions): Promise<IperfTcpValues> {
  return parseIperfTcp(await iperf3Raw({ ...o, udp: false }), o.reverse);
}

export async function iperf3Udp(o: IperfOptions): Promise<IperfUdpValues> {
  return parseIperfUdp(await iperf3Raw({ ...o, udp: true }), o.reverse);
}

export interface SockperfOptions extends Endpoints {
  seconds: number;
  /** Message size in bytes (default 64). */
  size?: number;
}

/** sockperf TCP ping-pong, lan -> wan, round-trip percentiles. */
export async function sockperfPingPong(o: SockperfOptions): Promise<LatencyValues> {
  const port = String(o.port ?? 11111);
  const server = await startServer(o.serverNetns, o.cpus, 'sockperf', ['sr', '--tcp', '-i', o.serverIp, '-p', port], /block on socket/);
  try {
    const args = ['pp', '--tcp', '-i', o.serverIp, '-p', port, '-t', String(o.seconds), '-m', String(o.size ?? 64), '--full-rtt'];
    return parseSockperf(await client(o.clientNetns, o.cpus, 'sockperf', args, (o.seconds + 20) * 1000));
  } finally {
    await server.stop();
  }
}
