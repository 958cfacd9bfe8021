// Helpers for integration tests that run real programs in lab namespaces.
// Every process started here is tracked by PID and killed in a finally; every
// lab built through withLab is torn down in a finally, whatever the test did.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { labDown, labUp, type LabInfo } from '../../src/lab/lab.ts';
import { findLinks, listNetns } from '../../src/lab/netns.ts';
import { linkPattern, netnsPrefix, type GatewayKind } from '../../src/lab/lab-plan.ts';

/** A fresh lab name: 't' and 7 base-36 characters (8 in all, the longest allowed). */
export function uniqueLabName(): string {
  const n = randomBytes(8).readBigUInt64BE() % (36n ** 7n);
  return 't' + n.toString(36).padStart(7, '0');
}

/** True when the process may build labs (root, with the tools scripts/setup.sh installs). */
export function canRunLabs(): boolean {
  return process.getuid?.() === 0;
}

/** Build a lab, run `fn` with it, and always tear it down (also when `fn` or labUp throws). */
export async function withLab<T>(opts: { name?: string; gateway: GatewayKind; readyTimeoutMs?: number },
                                 fn: (lab: LabInfo) => Promise<T>): Promise<T> {
  const name = opts.name ?? uniqueLabName();
  activeLabs.add(name);
  installSignalCleanup();
  try {
    const lab = await labUp({ name, gateway: opts.gateway, readyTimeoutMs: opts.readyTimeoutMs });
    return await fn(lab);
  } finally {
    try {
      await labDown(name);
    } finally {
      activeLabs.delete(name);
    }
  }
}

// A test run interrupted (Ctrl-C, or the runner's SIGTERM) still removes its labs.
const activeLabs = new Set<string>();
let signalCleanupInstalled = false;
function installSignalCleanup(): void {
  if (signalCleanupInstalled) return;
  signalCleanupInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const c of live) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
      void Promise.allSettled([...activeLabs].map(n => labDown(n))).finally(() => process.exit(130));
    });
  }
}

/** What is left of lab `name`: namespaces and root-namespace links with its names. */
export async function labLeftovers(name: string): Promise<{ namespaces: string[]; links: string[] }> {
  return { namespaces: (await listNetns(netnsPrefix(name))).sort(), links: (await findLinks(linkPattern(name))).sort() };
}

export interface ExecResult {
  /** Exit status; null if killed by a signal (e.g. the timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
});

/** Start `cmd` in `netns` (`ip netns exec` execs it, so the child's PID is the program's). */
export function spawnInNetns(netns: string, cmd: string, args: readonly string[]): ChildProcess {
  const c = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(c);
  c.on('exit', () => live.delete(c));
  return c;
}

/** Stop a child started here: SIGTERM, SIGKILL after `graceMs`; resolves when it has exited. */
export async function killChild(c: ChildProcess, graceMs = 2000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>(r => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

function collect(c: ChildProcess): { out: () => string; err: () => string; done: Promise<void> } {
  let out = '';
  let err = '';
  c.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  c.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const done = new Promise<void>(r => c.once('close', () => r()));
  return { out: () => out, err: () => err, done };
}

/** Run `cmd args` in `netns` to completion. Never throws for a non-zero exit: look at `code`. */
export async function nsExec(netns: string, cmd: string, args: readonly string[],
                             opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  const c = spawnInNetns(netns, cmd, args);
  const io = collect(c);
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; void killChild(c, 1000); }, opts.timeoutMs ?? 30_000);
  const spawnError = new Promise<Error>(r => c.once('error', r));
  const r = await Promise.race([io.done.then(() => null), spawnError]);
  clearTimeout(timer);
  if (r instanceof Error) throw r;
  return { code: c.exitCode, signal: c.signalCode, stdout: io.out(), stderr: io.err(), timedOut };
}

export interface PingResult extends ExecResult {
  transmitted: number;
  received: number;
  /** "From 198.18.0.1 icmp_seq=1 Time to live exceeded" and the like. */
  errors: string[];
}

/** ping from `netns`; `ok` when every echo was answered. */
export async function ping(netns: string, ip: string,
                           opts: { count?: number; timeoutS?: number; ttl?: number; intervalS?: number } = {}): Promise<PingResult & { ok: boolean }> {
  const count = opts.count ?? 1;
  const timeoutS = opts.timeoutS ?? 2;
  const args = ['-n', '-c', String(count), '-W', String(timeoutS), '-i', String(opts.intervalS ?? 0.2)];
  if (opts.ttl !== undefined) args.push('-t', String(opts.ttl));
  args.push(ip);
  const r = await nsExec(netns, 'ping', args, { timeoutMs: (count * ((opts.intervalS ?? 0.2) + timeoutS) + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const transmitted = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  const errors = r.stdout.split('\n').filter(l => l.startsWith('From '));
  return { ...r, transmitted, received, errors, ok: r.code === 0 && received === count };
}

/**
 * Frames a host's interface has sent and those its queue dropped (kernel counters). On a lab host
 * the interface is the TAP the gateway's driver reads: a drop there is input overload, before microgate.
 */
export async function txQueue(netns: string, ifname: string): Promise<{ sent: number; dropped: number }> {
  const r = await nsExec(netns, 'ip', ['-s', '-j', 'link', 'show', ifname]);
  if (r.code !== 0) throw new Error(`ip -s link show ${ifname} in ${netns}: ${r.stderr}`);
  const tx = (JSON.parse(r.stdout) as { stats64: { tx: { packets: number; dropped: number } } }[])[0].stats64.tx;
  return { sent: tx.packets, dropped: tx.dropped };
}

/** Wait until something listens on TCP `port` in `netns`. */
export async function waitForListen(netns: string, port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await nsExec(netns, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 3000 });
    if (r.code === 0 && r.stdout.trim() !== '') return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${netns} port ${port} after ${timeoutMs} ms`);
    await new Promise(res => setTimeout(res, 50));
  }
}

export interface Iperf3Result {
  /** end.sum_received.bits_per_second of the client's report. */
  bitsPerSecond: number;
  /** TCP retransmits of the sending side (the server's with reverse). */
  retransmits: number;
  /** The peer address the server saw (start.connected[0].remote_host). */
  serverSawPeer: string | undefined;
  client: any;
  server: any;
}

/**
 * One iperf3 test: `iperf3 -s -1` in `serverNetns` (killed in a finally), the
 * client with --json in `clientNetns` towards `serverIp`.
 */
export async function iperf3Pair(opts: {
  serverNetns: string;
  serverIp: string;
  clientNetns: string;
  seconds?: number;
  reverse?: boolean;
  port?: number;
  udp?: boolean;
  extraClientArgs?: string[];
}): Promise<Iperf3Result> {
  const port = opts.port ?? 5201;
  const seconds = opts.seconds ?? 2;
  const server = spawnInNetns(opts.serverNetns, 'iperf3', ['-s', '-1', '--json', '-p', String(port), '-B', opts.serverIp]);
  const sio = collect(server);
  try {
    await waitForListen(opts.serverNetns, port);
    const args = ['-c', opts.serverIp, '-p', String(port), '-t', String(seconds), '--json'];
    if (opts.reverse) args.push('-R');
    if (opts.udp) args.push('-u');
    args.push(...(opts.extraClientArgs ?? []));
    const r = await nsExec(opts.clientNetns, 'iperf3', args, { timeoutMs: (seconds + 20) * 1000 });
    let client: any;
    try { client = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 client printed no JSON (exit ${r.code}): ${r.stderr || r.stdout}`); }
    if (r.code !== 0 || client.error) throw new Error(`iperf3 client failed (exit ${r.code}): ${client.error ?? r.stderr}`);
    // The server exits after its one test (-1) and then prints its JSON.
    await Promise.race([sio.done, new Promise(res => setTimeout(res, 5000))]);
    let srv: any;
    try { srv = JSON.parse(sio.out()); } catch { srv = undefined; }
    const sender = opts.reverse ? srv : client;
    return {
      bitsPerSecond: Number(client.end?.sum_received?.bits_per_second ?? client.end?.sum?.bits_per_second ?? 0),
      retransmits: Number(sender?.end?.sum_sent?.retransmits ?? 0),
      serverSawPeer: srv?.start?.connected?.[0]?.remote_host,
      client,
      server: srv,
    };
  } finally {
    await killChild(server);
  }
}

/**
 * A TCP echo server for one connection on port 7777 of the address in argv[1],
 * IPv4 or IPv6 (python3 -c ECHO_SERVER IP): the long-lived session of the restart and HA tests.
 */
export const ECHO_SERVER = `
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(1)
c, _ = s.accept()
while True:
    d = c.recv(4096)
    if not d: break
    c.sendall(d)
`;

/**
 * Its client (python3 -c ECHO_CLIENT IP SECONDS INTERVAL): prints "connected",
 * sends a numbered line every INTERVAL seconds, prints "echo N TIME" for every
 * line echoed back, and "closed" if the connection ends or fails.
 */
export const ECHO_CLIENT = `
import socket, sys, time, select
s = socket.create_connection((sys.argv[1], 7777), timeout=5); s.setblocking(False)
end = time.time() + float(sys.argv[2]); every = float(sys.argv[3]); n = 0; nxt = 0; buf = b''
print('connected', flush=True)
while time.time() < end:
    now = time.time()
    if now >= nxt:
        n += 1; nxt = now + every
        try: s.send(b'%d\\n' % n)
        except BlockingIOError: pass
        except OSError as e: print('closed', e, flush=True); break
    r, _, _ = select.select([s], [], [], 0.02)
    if r:
        try: d = s.recv(4096)
        except OSError as e: print('closed', e, flush=True); break
        if not d: print('closed', flush=True); break
        buf += d
        while b'\\n' in buf:
            line, buf = buf.split(b'\\n', 1)
            print('echo', line.decode(), '%.3f' % time.time(), flush=True)
`;
