// What the benchmark ran on, for the report, and the tools it needs.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { BenchResult } from './results.ts';

function firstLine(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  if (r.error !== undefined) return undefined;
  return `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).find((l) => l !== '');
}

export function machineInfo(cpus: number): BenchResult['machine'] {
  let cpuModel = 'unknown CPU';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    /* not Linux */
  }
  const sp = firstLine('sockperf', ['--version']) ?? 'not installed';
  return {
    cpus,
    cpuModel,
    kernel: release(),
    node: process.versions.node,
    iperf3: firstLine('iperf3', ['--version']) ?? 'iperf3 not installed',
    sockperf: /version\s*#?\s*([\w.-]+)/.exec(sp)?.[1] ?? sp,
  };
}

/** The tools a plan needs that are missing, as a message, or undefined. */
export function missingTools(needLatency: boolean, needTrafgen = false): string | undefined {
  const need = ['ip', 'iperf3', 'taskset', ...(needLatency ? ['sockperf'] : []), ...(needTrafgen ? ['trafgen'] : [])];
  const missing = need.filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore', timeout: 5000 }).error !== undefined);
  if (missing.length === 0) return undefined;
  return `missing tool${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}; run scripts/setup.sh${missing.includes('sockperf') && missing.length === 1 ? ' (or leave latency out: --tests tcp,udp,sweep)' : ''}${missing.includes('trafgen') ? ' (trafgen is in netsniff-ng; or leave small packets out of --tests)' : ''}`;
}
