// Runs the sandbox probe (sandbox-probe.ts) in the sandbox init gives a
// component (or the file gateway service) and holds every try against what
// the sandbox must do with it: which layer stops it, with which error.
//
//   layer                  stops
//   Node permission model  fs and child_process calls outside the grant (ERR_ACCESS_DENIED)
//   mount namespace/root   paths outside the sandbox root (ENOENT), other users' /proc (ENOENT)
//   seccomp allow-list     sockets, exec, fork, writes (EPERM), io_uring (ENOSYS),
//                          ptrace/mount/setuid/unshare (the process is killed: SIGSYS)
//   path-lookup filter     every open by path once the component is loaded (EPERM)
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { ROOT, sandboxCommand } from './sandbox.ts';
import type { Profile } from '../sys/seccomp.ts';
import { FATAL_TRIES, TRIES } from './sandbox-probe.ts';
import type { TryResult } from './sandbox-probe.ts';

export const PROBE_SCRIPT = resolve(ROOT, 'src/init/sandbox-probe.ts');
export type Stage = 'allow-list' | 'loaded';

/** What each try must get: 'allowed', or the error codes that count as stopped, or 'SIGSYS'. */
export function expectations(profile: Profile, stage: Stage): Record<string, string[]> {
  const component = profile === 'component';
  const loaded = stage === 'loaded' && component;
  const e: Record<string, string[]> = {
    'read-file (Node fs)': ['ERR_ACCESS_DENIED'],
    'write-code (Node fs)': ['ERR_ACCESS_DENIED'],
    'spawn (Node child_process)': ['ERR_ACCESS_DENIED'],
    'open /etc/passwd': [loaded ? 'EPERM' : 'ENOENT'],
    'open own code': [loaded ? 'EPERM' : 'allowed'],
    // The component profile refuses write flags; a service's code is still a read-only bind it does not own.
    'open own code for writing': component ? ['EPERM'] : ['EROFS', 'EACCES'],
    'open /proc/1/status': [loaded ? 'EPERM' : 'ENOENT'],
    'socket AF_INET': [component ? 'EPERM' : 'allowed'],
    'socket AF_PACKET': ['EPERM'],
    'execve /bin/true': ['EPERM'],
    fork: ['EPERM'],
    'clone a process': ['EPERM'],
    'kill pid 1': ['EPERM'],
    io_uring_setup: ['ENOSYS'],
    'prctl PR_SET_DUMPABLE 1': ['EPERM'],
  };
  for (const t of Object.keys(FATAL_TRIES)) e[t] = ['SIGSYS'];
  return e;
}

export interface ProbeCheck extends TryResult {
  expected: string[];
  got: string;
  pass: boolean;
}

export interface ProbeReport {
  profile: Profile;
  stage: Stage;
  uid: number;
  checks: ProbeCheck[];
  pass: boolean;
}

interface Run {
  lines: TryResult[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runOnce(uid: number, profile: Profile, stage: Stage, tryName: string | undefined): Promise<Run> {
  const { file, args } = sandboxCommand({
    uid,
    maxOldSpaceMb: 64,
    script: PROBE_SCRIPT,
    args: ['--profile', profile, '--stage', stage, ...(tryName !== undefined ? ['--try', tryName] : [])],
  });
  return new Promise((resolveRun, reject) => {
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      if (p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
    }, 20000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines: TryResult[] = [];
      for (const l of out.split('\n')) {
        if (l.startsWith('{')) lines.push(JSON.parse(l) as TryResult);
      }
      resolveRun({ lines, code, signal, stderr: err });
    });
  });
}

/** Run every try of the probe as uid `uid` (init must be root). */
export async function runProbe(o: { uid: number; profile: Profile; stage: Stage }): Promise<ProbeReport> {
  if (process.getuid?.() !== 0) throw new Error('the sandbox probe builds the sandbox init builds: run it as root');
  const want = expectations(o.profile, o.stage);
  const checks: ProbeCheck[] = [];
  const check = (r: TryResult): void => {
    const got = r.ok ? 'allowed' : (r.code ?? '?');
    const expected = want[r.try] ?? ['?'];
    checks.push({ ...r, expected, got, pass: expected.includes(got) });
  };
  const main = await runOnce(o.uid, o.profile, o.stage, undefined);
  if (main.code !== 0) throw new Error(`sandbox probe failed (exit ${main.code ?? main.signal}): ${main.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  for (const r of main.lines) check(r);
  for (const t of Object.keys(TRIES)) {
    if (!main.lines.some((r) => r.try === t)) check({ try: t, ok: false, code: 'no answer' });
  }
  for (const t of Object.keys(FATAL_TRIES)) {
    const r = await runOnce(o.uid, o.profile, o.stage, t);
    if (r.signal === 'SIGSYS') check({ try: t, ok: false, code: 'SIGSYS', detail: 'killed by the seccomp filter' });
    else if (r.lines.length > 0) check(r.lines[0]);
    else check({ try: t, ok: false, code: `exit ${r.code ?? r.signal}`, detail: r.stderr.trim().split('\n').at(-1) });
  }
  return { profile: o.profile, stage: o.stage, uid: o.uid, checks, pass: checks.every((c) => c.pass) };
}

/** A readable table of a probe report. */
export function formatProbe(r: ProbeReport): string {
  const lines = [`sandbox probe: profile ${r.profile}, ${r.stage === 'loaded' ? 'after the components are loaded' : 'allow-list only (during loading)'}, uid ${r.uid}`];
  for (const c of r.checks) {
    lines.push(`  ${c.pass ? 'ok  ' : 'FAIL'}  ${c.try.padEnd(28)} ${c.got.padEnd(18)} ${c.pass ? '' : `expected ${c.expected.join(' or ')}`}${c.detail !== undefined && c.pass ? c.detail : ''}`);
  }
  lines.push(r.pass ? 'sandbox probe: every try was stopped as it must be' : 'sandbox probe: the sandbox let something through');
  return lines.join('\n');
}
