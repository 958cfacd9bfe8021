// Real traffic between lab hosts: ping and iperf3, run inside the hosts'
// namespaces. Used by the demo, the tests and the benchmark.
import { spawn } from 'node:child_process';
import { nsExec, CommandError } from './netns.ts';

export interface PingResult {
  sent: number;
  received: number;
  /** Average round trip, ms (NaN when nothing came back). */
  avgMs: number;
  output: string;
}

/** ping from a namespace; never throws for lost packets (received says it). */
export async function ping(netns: string, target: string, opts: { count?: number; intervalS?: number; timeoutS?: number; ttl?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const args = ['-n', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.timeoutS ?? 1)];
  if (opts.ttl !== undefined) args.push('-t', String(opts.ttl));
  args.push(target);
  let output: string;
  try {
    output = (await nsExec(netns, 'ping', args, { timeoutMs: (count * 2 + 5) * 1000 })).stdout;
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    output = e.stdout + e.stderr;
  }
  const m = /(\d+) packets transmitted, (\d+) received/.exec(output);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(output);
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, avgMs: rtt ? Number(rtt[1]) : NaN, output };
}

export interface IperfResult {
  bitsPerSecond: number;
  retransmits: number;
  senderCpu: number;
  receiverCpu: number;
  json: unknown;
}

/**
 * iperf3 TCP from `client` to `server` (the server runs one test in its
 * namespace, started and stopped by PID here). `reverse` is iperf3 -R: the
 * server sends.
 */
export async function iperf3(opts: { serverNetns: string; serverIp: string; clientNetns: string; seconds?: number; reverse?: boolean; port?: number; extra?: string[] }): Promise<IperfResult> {
  const port = String(opts.port ?? 5201);
  const server = spawn('ip', ['netns', 'exec', opts.serverNetns, 'iperf3', '-s', '-1', '-B', opts.serverIp, '-p', port], { stdio: 'ignore' });
  const serverExit = new Promise<void>((r) => server.once('exit', () => r()));
  try {
    const args = ['-c', opts.serverIp, '-p', port, '-t', String(opts.seconds ?? 3), '--json', '--connect-timeout', '2000'];
    if (opts.reverse) args.push('-R');
    if (opts.extra) args.push(...opts.extra);
    let lastErr: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const { stdout } = await nsExec(opts.clientNetns, 'iperf3', args, { timeoutMs: ((opts.seconds ?? 3) + 15) * 1000 });
        const j = JSON.parse(stdout) as {
          error?: string;
          end: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } };
        };
        if (j.error !== undefined || j.end.sum_received === undefined) throw new Error(`iperf3: ${j.error ?? 'no result in its JSON'}`);
        const cpu = j.end.cpu_utilization_percent;
        return {
          bitsPerSecond: j.end.sum_received.bits_per_second,
          retransmits: j.end.sum_sent?.retransmits ?? 0,
          senderCpu: cpu ? (opts.reverse ? cpu.remote_total : cpu.host_total) : NaN,
          receiverCpu: cpu ? (opts.reverse ? cpu.host_total : cpu.remote_total) : NaN,
          json: j,
        };
      } catch (e) {
        lastErr = e;
        // The server may not listen yet: retry briefly on "connection refused".
        const msg = e instanceof Error ? e.message : String(e);
        if (!/refused|unable to connect|connect failed/i.test(msg) || server.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
    await serverExit;
  }
}
