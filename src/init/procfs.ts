import { readFileSync } from 'node:fs';
// What init reads about its children from /proc (components cannot: once
// loaded they look up no path at all, not even /proc/self).

/** Resident set size of a process in bytes (VmRSS), or undefined if it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}
