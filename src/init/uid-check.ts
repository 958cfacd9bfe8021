// The sandbox's reserved uid range (config `sandbox: uid-base, uid-count`)
// must belong to nobody else: components and services run as uid = gid =
// a number of that range, and anything else with that uid could signal them,
// read their files, or (were they dumpable) their memory. So before init
// starts anything it looks for every use of the range on the machine:
//   /etc/passwd   a user's uid, or its primary gid
//   /etc/group    a group's gid
//   /etc/subuid   a subordinate uid range (user namespaces, rootless containers)
//   /etc/subgid   a subordinate gid range
//   /proc/*/status  a running process's real, effective, saved or fs uid or gid
// and refuses to start on the first one, naming the uid and where it was found.
// Labs allocate their ranges with findFreeUidRange (src/lab/uid-alloc.ts).
import { readFileSync, readdirSync } from 'node:fs';

/** Where the machine's uses of uids are read (tests point these at fixtures). */
export interface UidSources {
  passwd: string;
  group: string;
  subuid: string;
  subgid: string;
  /** A procfs mount, or undefined to skip running processes. */
  proc: string | undefined;
}

export const SYSTEM_UID_SOURCES: UidSources = {
  passwd: '/etc/passwd',
  group: '/etc/group',
  subuid: '/etc/subuid',
  subgid: '/etc/subgid',
  proc: '/proc',
};

/** uids no sandbox range may hold: 65534 (nobody/nogroup), 65535 ((uint16_t)-1), 4294967295 ((uid_t)-1). */
export const FORBIDDEN_UIDS: readonly number[] = [65534, 65535, 4294967295];

/** One use of a uid (or gid) found on the machine. */
export interface UidUse {
  uid: number;
  /** The last uid of a subordinate range's overlap with the range asked about (else uid). */
  last: number;
  /** Where, e.g. '/etc/passwd:23 (user "alice")' or 'process 1234 (sleep)'. */
  where: string;
}

function lines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${file} to check the sandbox's uids: ${(e as Error).message}`);
  }
}

const inRange = (n: number, first: number, last: number): boolean => Number.isInteger(n) && n >= first && n <= last;

/**
 * Every use of a uid or gid in [first, last] on the machine: accounts and
 * groups, subordinate ranges overlapping it, running processes (except the
 * pids in `exclude`). Sorted by uid.
 */
export function uidsInUse(first: number, last: number, sources: UidSources = SYSTEM_UID_SOURCES, exclude: ReadonlySet<number> = new Set()): UidUse[] {
  const out: UidUse[] = [];
  lines(sources.passwd).forEach((l, i) => {
    const f = l.split(':');
    if (f.length < 4 || l.startsWith('#')) return;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (inRange(uid, first, last)) out.push({ uid, last: uid, where: `${sources.passwd}:${i + 1} (user "${f[0]}" has uid ${uid})` });
    if (inRange(gid, first, last)) out.push({ uid: gid, last: gid, where: `${sources.passwd}:${i + 1} (user "${f[0]}" has primary gid ${gid})` });
  });
  lines(sources.group).forEach((l, i) => {
    const f = l.split(':');
    if (f.length < 3 || l.startsWith('#')) return;
    const gid = Number(f[2]);
    if (inRange(gid, first, last)) out.push({ uid: gid, last: gid, where: `${sources.group}:${i + 1} (group "${f[0]}" has gid ${gid})` });
  });
  for (const [file, what] of [[sources.subuid, 'uids'], [sources.subgid, 'gids']] as const) {
    lines(file).forEach((l, i) => {
      const f = l.trim().split(':');
      if (f.length !== 3 || l.startsWith('#')) return;
      const start = Number(f[1]);
      const count = Number(f[2]);
      if (!Number.isInteger(start) || !Number.isInteger(count) || count <= 0) return;
      const end = start + count - 1;
      if (end < first || start > last) return;
      out.push({ uid: Math.max(start, first), last: Math.min(end, last), where: `${file}:${i + 1} (gives "${f[0]}" the subordinate ${what} ${start}-${end})` });
    });
  }
  if (sources.proc !== undefined) {
    for (const name of readdirSync(sources.proc)) {
      if (!/^\d+$/.test(name) || exclude.has(Number(name))) continue;
      let text: string;
      try {
        text = readFileSync(`${sources.proc}/${name}/status`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // A zombie (exited, not yet reaped: e.g. a killed gateway's components until PID 1 reaps them) holds no
      // memory, fd or privilege: its uid can do nothing, and a restarted gateway must not wait for the reaper.
      if (/^State:\s*Z/m.test(text)) continue;
      const comm = /^Name:\s*(.*)$/m.exec(text)?.[1] ?? '?';
      for (const kind of ['Uid', 'Gid'] as const) {
        const ids = new RegExp(`^${kind}:\\s*(.*)$`, 'm').exec(text)?.[1].split(/\s+/).map(Number) ?? [];
        const hit = ids.find((n) => inRange(n, first, last));
        if (hit !== undefined) out.push({ uid: hit, last: hit, where: `process ${name} (${comm}) runs with ${kind === 'Uid' ? 'uid' : 'gid'} ${hit}` });
      }
    }
  }
  return out.sort((a, b) => a.uid - b.uid);
}

/** A problem with the range itself (a forbidden uid inside it), or undefined. */
export function rangeProblem(first: number, last: number): string | undefined {
  const bad = FORBIDDEN_UIDS.find((u) => u >= first && u <= last);
  if (bad !== undefined) return `the range ${first}-${last} holds ${bad}, which is ${bad === 65534 ? 'nobody/nogroup' : '(uid_t)-1 to some programs'}`;
  return undefined;
}

/**
 * Refuse a reserved range anything on the machine uses: the error names the
 * uid and where it was found (and how many more there are). undefined: free.
 */
export function checkUidRange(first: number, last: number, what: string, sources: UidSources = SYSTEM_UID_SOURCES): string | undefined {
  const bad = rangeProblem(first, last);
  if (bad !== undefined) return `${what}: ${bad}`;
  const uses = uidsInUse(first, last, sources, new Set([process.pid]));
  if (uses.length === 0) return undefined;
  const shown = uses.slice(0, 3).map((u) => u.where).join('; ');
  return `${what} (${first}-${last}) is not free: ${shown}${uses.length > 3 ? `; and ${uses.length - 3} more` : ''}`;
}

/**
 * The first range of `count` uids between `from` and `to`, aligned to `count`
 * from `from`, that holds no forbidden uid, no uid in use (uidsInUse) and none
 * `taken` says is taken. Throws when there is none.
 */
export function findFreeUidRange(from: number, to: number, count: number, opts: { sources?: UidSources; taken?: (first: number, last: number) => boolean } = {}): { first: number; last: number } {
  const uses = uidsInUse(from, to, opts.sources ?? SYSTEM_UID_SOURCES);
  for (let first = from; first + count - 1 <= to; first += count) {
    const last = first + count - 1;
    if (rangeProblem(first, last) !== undefined) continue;
    if (uses.some((u) => u.uid <= last && u.last >= first)) continue;
    if (opts.taken?.(first, last) === true) continue;
    return { first, last };
  }
  throw new Error(`no free range of ${count} uids between ${from} and ${to}`);
}
