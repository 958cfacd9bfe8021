// What init reads about its children from /proc (components cannot: once
// loaded they look up no path at all, not even /proc/self): memory, and for
// the privilege audits (audit.ts, service-audit.ts) the open fds, the network
// interfaces in view and Node's permission flags.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Resident set size of a process in bytes (VmRSS), or undefined if it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Every open fd of a process and what it points to (readlink of /proc/PID/fd/N), by fd number; fds closed meanwhile are left out. */
export function openFds(pid: number): { fd: number; target: string }[] {
  const out: { fd: number; target: string }[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push({ fd: Number(name), target: readlinkSync(`/proc/${pid}/fd/${name}`) });
    } catch {
      // closed meanwhile
    }
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** Interfaces of the network namespace a process is in (from its /proc/PID/net/dev). */
export function netInterfaces(pid: number): string[] {
  return readFileSync(`/proc/${pid}/net/dev`, 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0].trim())
    .filter((n) => n !== '');
}

/** Node's permission-model flags on a process's command line (--permission, --allow-*). */
export function permissionFlags(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a === '--permission' || a.startsWith('--allow-'));
}
