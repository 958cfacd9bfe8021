// Helpers around the Linux tools the lab drives: ip(8), sysctl(8), nft(8).
// Every call goes through execFile (no shell), and every failure throws a
// CommandError whose message carries the command line, the exit status and the
// tool's stderr, so a failed `lab up` says exactly what the kernel refused.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command that could not run, ran into its timeout, or exited non-zero. */
export class CommandError extends Error {
  readonly cmd: string;
  readonly args: readonly string[];
  /** Exit status, or null when killed by a signal or not started. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(cmd: string, args: readonly string[], code: number | null, signal: string | null,
              stdout: string, stderr: string, reason?: string) {
    const line = [cmd, ...args].map(quoteArg).join(' ');
    const how = reason ?? (signal ? `killed by ${signal}` : `exit ${code}`);
    const detail = stderr.trim() || stdout.trim();
    super(`${line} failed (${how})${detail ? `: ${detail}` : ''}`);
    this.name = 'CommandError';
    this.cmd = cmd;
    this.args = args;
    this.code = code;
    this.signal = signal;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Observer of every command the helpers run (the lab logs them to its state folder). */
export type CommandObserver = (cmd: string, args: readonly string[], error?: Error) => void;
let observer: CommandObserver | undefined;
/** Install (or remove, with undefined) the observer; returns the previous one. */
export function setCommandObserver(o: CommandObserver | undefined): CommandObserver | undefined {
  const prev = observer;
  observer = o;
  return prev;
}

/** Run a command without a shell; resolves with its output, throws CommandError on failure. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) {
          observer?.(cmd, args);
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: string | null; killed?: boolean };
        let ce: CommandError;
        if (typeof e.code === 'string') { // spawn failure: ENOENT, EACCES, ...
          ce = new CommandError(cmd, args, null, null, stdout, stderr,
            e.code === 'ENOENT' ? `${cmd} not found: run scripts/setup.sh` : e.code);
        } else if (e.killed && e.signal) {
          ce = new CommandError(cmd, args, null, e.signal, stdout, stderr, `timed out after ${timeout} ms`);
        } else {
          ce = new CommandError(cmd, args, typeof e.code === 'number' ? e.code : null, e.signal ?? null, stdout, stderr);
        }
        observer?.(cmd, args, ce);
        reject(ce);
      });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => { /* the command may exit before reading: reported by the callback */ });
      child.stdin?.end(opts.input);
    } else {
      child.stdin?.end();
    }
  });
}

/** `ip ARGS...` in the current (root) namespace, or in `netns` via `ip -n`. */
export function ip(args: readonly string[], netns?: string, opts?: RunOptions): Promise<RunResult> {
  return run('ip', netns ? ['-n', netns, ...args] : [...args], opts);
}

/** Run `cmd args...` inside a named network namespace (`ip netns exec`). Throws on non-zero exit. */
export function nsExec(netns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

// ---- namespaces ------------------------------------------------------------

/** Names of the named network namespaces (`ip netns list`), optionally only those starting with `prefix`. */
export async function listNetns(prefix = ''): Promise<string[]> {
  const { stdout } = await ip(['netns', 'list']);
  const names = stdout.split('\n').map(l => l.trim().split(/\s+/)[0]).filter((n): n is string => !!n);
  return names.filter(n => n.startsWith(prefix)).sort();
}

export async function netnsExists(name: string): Promise<boolean> {
  return (await listNetns()).includes(name);
}

/** Create a named namespace with `lo` up. Throws if it exists. */
export async function createNetns(name: string): Promise<void> {
  await ip(['netns', 'add', name]);
  await ip(['link', 'set', 'lo', 'up'], name);
}

/** Delete a named namespace; no error if it does not exist. */
export async function deleteNetns(name: string): Promise<void> {
  try {
    await ip(['netns', 'delete', name]);
  } catch (e) {
    if (!(await netnsExists(name))) return;
    throw e;
  }
}

/** PIDs of the processes whose network namespace is `name` (`ip netns pids`). */
export async function netnsPids(name: string): Promise<number[]> {
  try {
    const { stdout } = await ip(['netns', 'pids', name]);
    return stdout.split(/\s+/).filter(Boolean).map(Number).filter(n => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

// ---- sysctl, nft -------------------------------------------------------------

/** `sysctl -w key=value`, inside `netns` when given. */
export async function sysctl(netns: string | undefined, key: string, value: string | number): Promise<void> {
  const args = ['-q', '-w', `${key}=${value}`];
  if (netns) await nsExec(netns, 'sysctl', args);
  else await run('sysctl', args);
}

/** Read a sysctl, inside `netns` when given. */
export async function sysctlGet(netns: string | undefined, key: string): Promise<string> {
  const args = ['-n', key];
  const { stdout } = netns ? await nsExec(netns, 'sysctl', args) : await run('sysctl', args);
  return stdout.trim();
}

/** Load an nftables ruleset (the text of an `nft -f` file) inside `netns`, atomically. */
export async function nftLoad(netns: string, ruleset: string): Promise<void> {
  await nsExec(netns, 'nft', ['-f', '-'], { input: ruleset });
}

/** `nft ARGS...` inside `netns`; returns stdout. */
export async function nft(netns: string, args: readonly string[]): Promise<string> {
  return (await nsExec(netns, 'nft', args)).stdout;
}

// ---- links -------------------------------------------------------------------

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  /** "UP", "DOWN", "UNKNOWN", ... */
  operstate: string;
  flags: string[];
  /** veth, tun, ... (from `ip -d`), when known. */
  kind?: string;
  address?: string;
  mtu?: number;
}

/** The links of the root namespace, or of `netns`. */
export async function listLinks(netns?: string): Promise<LinkInfo[]> {
  const { stdout } = await ip(['-j', '-d', 'link', 'show'], netns);
  const raw = JSON.parse(stdout || '[]') as Array<Record<string, unknown>>;
  return raw.map(l => ({
    ifname: String(l.ifname),
    ifindex: Number(l.ifindex),
    operstate: String(l.operstate ?? ''),
    flags: Array.isArray(l.flags) ? l.flags.map(String) : [],
    kind: (l.linkinfo as { info_kind?: string } | undefined)?.info_kind,
    address: typeof l.address === 'string' ? l.address : undefined,
    mtu: typeof l.mtu === 'number' ? l.mtu : undefined,
  }));
}

/** A link-name selector: a prefix, a regular expression, or a predicate. */
export type LinkMatch = string | RegExp | ((ifname: string) => boolean);

function matcher(m: LinkMatch): (n: string) => boolean {
  if (typeof m === 'string') return n => n.startsWith(m);
  if (m instanceof RegExp) return n => m.test(n);
  return m;
}

/** Names of the links matching `match` in the root namespace (or `netns`). */
export async function findLinks(match: LinkMatch, netns?: string): Promise<string[]> {
  const f = matcher(match);
  return (await listLinks(netns)).map(l => l.ifname).filter(f);
}

/** Delete every link matching `match` (a prefix, RegExp or predicate); returns the names deleted. */
export async function deleteLinks(match: LinkMatch, netns?: string): Promise<string[]> {
  const names = await findLinks(match, netns);
  const deleted: string[] = [];
  for (const n of names) {
    try {
      await ip(['link', 'delete', 'dev', n], netns);
      deleted.push(n);
    } catch (e) {
      // A veth disappears with its peer: gone is as good as deleted.
      if ((await findLinks(x => x === n, netns)).length === 0) continue;
      throw e;
    }
  }
  return deleted;
}

// ---- processes ---------------------------------------------------------------

/** A process's command line (/proc/PID/cmdline, NULs as spaces), or null if it does not exist. */
export async function procCmdline(pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.replace(/\0+$/, '').split('\0').join(' ');
  } catch {
    return null;
  }
}

/** A process's start time in clock ticks since boot (/proc/PID/stat field 22), or null. */
export async function procStartTime(pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The comm field (2) may contain spaces and parentheses: split after the last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 3 is rest[0], so field 22 is rest[19]
  } catch {
    return null;
  }
}

/** What identifies a process we started, so a recycled PID is never signalled. */
export interface ProcIdentity {
  pid: number;
  cmdline: string;
  startTime: string | null;
}

export async function procIdentity(pid: number): Promise<ProcIdentity | null> {
  const cmdline = await procCmdline(pid);
  if (cmdline === null) return null;
  return { pid, cmdline, startTime: await procStartTime(pid) };
}

/** True while the process recorded in `id` is alive and is still the same process. */
export async function procMatches(id: ProcIdentity): Promise<boolean> {
  if (!Number.isInteger(id.pid) || id.pid <= 1) return false;
  const cmdline = await procCmdline(id.pid);
  if (cmdline === null || cmdline !== id.cmdline) return false;
  if (id.startTime !== null) {
    const st = await procStartTime(id.pid);
    if (st !== id.startTime) return false;
  }
  // A zombie still has /proc/PID; it is as good as gone.
  try {
    const status = await readFile(`/proc/${id.pid}/status`, 'utf8');
    if (/^State:\s+Z/m.test(status)) return false;
  } catch {
    return false;
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));

/**
 * Stop processes: SIGTERM to each that still matches its identity, wait up to
 * `graceMs`, then SIGKILL what is left. Returns the PIDs that were signalled.
 */
export async function stopProcesses(ids: readonly ProcIdentity[], graceMs = 2000): Promise<number[]> {
  const live: ProcIdentity[] = [];
  for (const id of ids) if (await procMatches(id)) live.push(id);
  for (const id of live) {
    try { process.kill(id.pid, 'SIGTERM'); } catch { /* gone */ }
  }
  const deadline = Date.now() + graceMs;
  let left = live;
  while (left.length && Date.now() < deadline) {
    await sleep(50);
    const next: ProcIdentity[] = [];
    for (const id of left) if (await procMatches(id)) next.push(id);
    left = next;
  }
  for (const id of left) {
    try { process.kill(id.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  return live.map(id => id.pid);
}
