// CPU placement for the one-core / two-core variants, and the gateway's
// processes as init's control API lists them.
//
// "N cores" means the whole experiment runs on the first N CPUs this process
// may use: the traffic tools of both hosts (taskset -c when they start) and,
// for microgate, every thread of init and of each component process
// (taskset -a -p, applied again before every run, so a restarted component
// is pinned too). For the Linux reference the kernel forwards in softirq
// context on the CPU that sends, so pinning the tools pins the forwarding.
import { readFileSync } from 'node:fs';
import { run } from '../lab/netns.ts';
import { ControlClient } from '../sys/control-client.ts';

/** "0-2,5" -> [0, 1, 2, 5] */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`bad CPU list "${list}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/** The CPUs this process may run on (Cpus_allowed_list of /proc/self/status). */
export function allowedCpus(): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? parseCpuList(m[1]) : [0];
}

/** The taskset list of the first `cores` allowed CPUs ("0", "0,1"). */
export function cpuListFor(cores: number, allowed: readonly number[] = allowedCpus()): string {
  if (!Number.isInteger(cores) || cores < 1 || cores > allowed.length) {
    throw new Error(`cannot use ${cores} core(s): this process may run on ${allowed.length} CPU(s) (${allowed.join(',')})`);
  }
  return allowed.slice(0, cores).join(',');
}

/** Pin every thread of `pid` to the CPUs in `list`. */
export async function pinProcess(pid: number, list: string): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', list, String(pid)], { timeoutMs: 5000 });
}

export interface GatewayUnit {
  /** init, a process component's name, or "host" (the shared host of thread/inline components). */
  name: string;
  pid: number;
  /** The components it runs. */
  components: string[];
}

interface StatusBody {
  ready: boolean;
  pid: number;
  components: { name: string; unit: string; pid: number; state: string }[];
}

/** init and its component processes, from GET /status on the lab's control socket. */
export async function gatewayUnits(controlSocket: string): Promise<GatewayUnit[]> {
  const body = await new ControlClient({ socket: controlSocket }).get<StatusBody>('/status', 3000);
  if (!body.ready) {
    const bad = body.components.filter((c) => c.state !== 'running').map((c) => `${c.name} ${c.state}`);
    throw new Error(`microgate is not ready (${bad.join(', ') || 'stopping'})`);
  }
  const units = new Map<number, GatewayUnit>();
  units.set(body.pid, { name: 'init', pid: body.pid, components: [] });
  for (const c of body.components) {
    if (!(c.pid > 0)) continue;
    const u = units.get(c.pid);
    if (u) u.components.push(c.name);
    else units.set(c.pid, { name: c.unit, pid: c.pid, components: [c.name] });
  }
  return [...units.values()];
}
