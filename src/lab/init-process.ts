// init's process as the lab sees it: alive or not, and stopping it. Apart
// from the rest of microgate-gateway.ts so that `lab down` loads only what it
// needs (every module is parsed at each command's start: seconds on a loaded
// machine).
import { readFileSync } from 'node:fs';
import type { LabPlan } from './lab-plan.ts';

/**
 * Is init still running? A zombie is not: once `lab up` has exited, init's
 * parent is the machine's PID 1 (or a subreaper), which may reap it late
 * (seconds, in some containers); waiting for the reaping made `lab down` slow.
 */
export function initAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function stopMicrogate(plan: LabPlan, initPid: number): Promise<void> {
  void plan;
  if (!initAlive(initPid)) return;
  process.kill(initPid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (initAlive(initPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (initAlive(initPid)) process.kill(initPid, 'SIGKILL');
}
