// CPU used during a run, from /proc: per gateway process and per thread
// (/proc/PID/task/TID/stat utime+stime), and for the whole machine
// (/proc/stat: user, system, softirq, idle). The evidence for "what limits the
// throughput": a component at 100 % of one CPU is the bottleneck; softirq is
// where the kernel forwards (the Linux reference) and moves TAP frames.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface TaskTimes {
  comm: string;
  ticks: number;
}

/** utime + stime of one /proc/.../stat line; undefined if unreadable. */
export function parseStatTicks(line: string): TaskTimes | undefined {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const f = line.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, stime field 15.
  const ticks = Number(f[11]) + Number(f[12]);
  return Number.isFinite(ticks) ? { comm: line.slice(open + 1, close), ticks } : undefined;
}

function readTasks(pid: number): Map<number, TaskTimes> {
  const out = new Map<number, TaskTimes>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const v = parseStatTicks(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
      if (v) out.set(Number(t), v);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

export interface SystemTimes {
  user: number;
  system: number;
  softirq: number;
  irq: number;
  idle: number;
  total: number;
}

/** The aggregate "cpu" line of /proc/stat. */
export function parseProcStat(text: string): SystemTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu ')) ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  return { user: user + nice, system, softirq, irq, idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

export interface UnitCpu {
  /** The unit's name (a component, "host" for the shared host of thread/inline components, "init"). */
  name: string;
  pid: number;
  /** Percent of one CPU over the run (100 = one core busy all the time). */
  cpuPct: number;
  /** Threads that used at least 1 % of a CPU, busiest first. */
  threads: { tid: number; comm: string; cpuPct: number }[];
}

export interface SystemCpu {
  cpus: number;
  /** Percent of the whole machine (100 = every CPU busy). */
  busyPct: number;
  userPct: number;
  systemPct: number;
  softirqPct: number;
}

export interface CpuUsage {
  seconds: number;
  units: UnitCpu[];
  system: SystemCpu;
}

/** Start sampling; the returned function ends it and reports the usage since the start. */
export function sampleCpu(units: readonly { name: string; pid: number }[]): () => CpuUsage {
  const t0 = process.hrtime.bigint();
  const sys0 = parseProcStat(readFileSync('/proc/stat', 'utf8'));
  const before = units.map((u) => ({ ...u, tasks: readTasks(u.pid) }));
  return () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sys1 = parseProcStat(readFileSync('/proc/stat', 'utf8'));
    const hz = ticksPerSecond();
    const pct = (ticks: number): number => (seconds > 0 ? (100 * ticks) / hz / seconds : NaN);
    const out: UnitCpu[] = [];
    for (const u of before) {
      const after = readTasks(u.pid);
      const threads: UnitCpu['threads'] = [];
      let total = 0;
      for (const [tid, t] of after) {
        const d = t.ticks - (u.tasks.get(tid)?.ticks ?? 0);
        total += d;
        if (pct(d) >= 1) threads.push({ tid, comm: t.comm, cpuPct: pct(d) });
      }
      threads.sort((a, b) => b.cpuPct - a.cpuPct);
      out.push({ name: u.name, pid: u.pid, cpuPct: pct(total), threads });
    }
    const dt = sys1.total - sys0.total;
    const share = (a: number, b: number): number => (dt > 0 ? (100 * (a - b)) / dt : NaN);
    const cpus = (() => {
      try {
        return readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l)).length;
      } catch {
        return 0;
      }
    })();
    return {
      seconds,
      units: out,
      system: {
        cpus,
        busyPct: share(sys1.total - sys1.idle, sys0.total - sys0.idle),
        userPct: share(sys1.user, sys0.user),
        systemPct: share(sys1.system, sys0.system),
        softirqPct: share(sys1.softirq + sys1.irq, sys0.softirq + sys0.irq),
      },
    };
  };
}
