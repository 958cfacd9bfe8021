// Memory limits for component processes through cgroups (v1 "memory"
// hierarchy or the v2 unified hierarchy). init makes one group per unit under
// its own group (v1) or under microgate.<pid> at the root (v2, whose rule of no
// processes in inner groups forbids nesting under init's own); the sandbox
// moves the component into it before node starts. A component over its limit
// is killed by the kernel's OOM killer, and init restarts it like any crash;
// the group's oom_kill count tells init that this SIGKILL was the kernel's
// verdict on the limit ("killed: memory limit" in /status).
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupUnit {
  /** Files the sandbox writes the component's pid to (cgroup.procs). */
  procsFile: string;
  /** Read the current memory use, bytes (or NaN). */
  usage(): number;
  /** Times the limit was hit (v1 failcnt / v2 events.max), or NaN. */
  limitHits(): number;
  /** Processes of the group the kernel's OOM killer ended (v1 oom_control / v2 events `oom_kill`), or NaN. */
  oomKills(): number;
}

export class MemoryCgroups {
  readonly kind: 'v1' | 'v2' | 'none';
  readonly base: string;
  readonly problem: string | undefined;
  #units: string[] = [];

  constructor() {
    let kind: 'v1' | 'v2' | 'none' = 'none';
    let base = '';
    let problem: string | undefined;
    try {
      const self = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
      if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
        kind = 'v2';
        base = join('/sys/fs/cgroup', `microgate.${process.pid}`);
        mkdirSync(base, { recursive: true });
        const controllers = readFileSync(join(base, 'cgroup.controllers'), 'utf8');
        if (!controllers.split(/\s+/).includes('memory')) throw new Error('the memory controller is not enabled at the cgroup root');
        writeFileSync(join(base, 'cgroup.subtree_control'), '+memory');
      } else if (existsSync('/sys/fs/cgroup/memory')) {
        kind = 'v1';
        const line = self.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
        const own = line === undefined ? '/' : line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
        base = join('/sys/fs/cgroup/memory', own, `microgate.${process.pid}`);
        mkdirSync(base, { recursive: true });
      } else {
        problem = 'no memory cgroup hierarchy on this machine';
      }
    } catch (e) {
      problem = `cannot set up memory cgroups: ${(e as Error).message}`;
      kind = 'none';
    }
    this.kind = problem === undefined ? kind : 'none';
    this.base = base;
    this.problem = problem;
  }

  /** A group for one unit with a memory limit; undefined when limits are unavailable. */
  unit(name: string, limitMb: number): CgroupUnit | undefined {
    if (this.kind === 'none') return undefined;
    const dir = join(this.base, name);
    if (!existsSync(dir)) mkdirSync(dir);
    const bytes = String(limitMb * 1024 * 1024);
    if (this.kind === 'v1') {
      writeFileSync(join(dir, 'memory.limit_in_bytes'), bytes);
      try {
        writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), bytes); // no escape into swap, where supported
      } catch {
        // swap accounting off: the plain limit holds
      }
    } else {
      writeFileSync(join(dir, 'memory.max'), bytes);
      try {
        writeFileSync(join(dir, 'memory.swap.max'), '0');
      } catch {
        // no swap controller
      }
    }
    if (!this.#units.includes(dir)) this.#units.push(dir);
    const read = (f: string): string => {
      try {
        return readFileSync(join(dir, f), 'utf8');
      } catch {
        return '';
      }
    };
    return {
      procsFile: join(dir, 'cgroup.procs'),
      usage: () => Number(read(this.kind === 'v1' ? 'memory.usage_in_bytes' : 'memory.current').trim() || NaN),
      limitHits: () => {
        if (this.kind === 'v1') return Number(read('memory.failcnt').trim() || NaN);
        const m = /^max (\d+)$/m.exec(read('memory.events'));
        return m ? Number(m[1]) : NaN;
      },
      oomKills: () => {
        const m = /^oom_kill (\d+)$/m.exec(read(this.kind === 'v1' ? 'memory.oom_control' : 'memory.events'));
        return m ? Number(m[1]) : NaN;
      },
    };
  }

  /** Remove the groups (they must be empty: call after every component exited). */
  cleanup(): void {
    for (const dir of this.#units) {
      try {
        rmdirSync(dir);
      } catch {
        // still busy or gone
      }
    }
    try {
      if (this.base !== '') rmdirSync(this.base);
    } catch {
      // not ours or not empty
    }
  }
}
