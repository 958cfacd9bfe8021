// Fault injection, init's side: which faults exist and whether a request for
// one may be carried out. Off unless the config says `debug: { fault-injection:
// true }`; then `POST /components/NAME/fault {"kind": K}` (src/init/control.ts)
// has init forward it to the component's host, which carries it out on the
// component's own thread (src/runtime/fault-inject.ts). It exists to prove fault
// isolation honestly: a real uncaught exception, a real memory-limit breach the
// kernel answers with an OOM kill, a real hang, a real forbidden system call
// (ptrace of init, which the seccomp allow-list answers by killing the process),
// a real attempt of a packet driver to send on other interfaces (escape-link),
// and a compromised component (`hostile` with an `attack`: garbage into every
// fd it holds, src/runtime/hostile.ts), which init answers by killing it.

import { FAULT_KINDS, HOSTILE_ATTACKS, isFaultKind, isHostileAttack, type FaultKind, type HostileAttack } from '../runtime/fault-inject.ts';

export { FAULT_KINDS, HOSTILE_ATTACKS, isFaultKind, isHostileAttack, type FaultKind, type HostileAttack };

/** What a fault request got: an HTTP status, a stable code and a message. */
export interface FaultOutcome {
  status: number;
  code: string;
  message: string;
  /** On success: the unit (process) that will fail, and its pid now. */
  unit?: string;
  pid?: number;
}

/** What init knows about the target when it checks a request. */
export interface FaultTarget {
  /** The config has a component of that name. */
  known: boolean;
  /** The unit's state (running, restarting, ...); undefined when it was never started. */
  state: string | undefined;
  /** The unit has a memory cgroup limit (needed for `allocate`). */
  memoryLimited: boolean;
  /** The unit has a heartbeat (needed for `hang` to end). */
  heartbeat: boolean;
  /** The component holds a `kind: packet` device (needed for `escape-link`). */
  packetLink: boolean;
}

/** The refusal when the config does not enable fault injection. */
export const FAULT_DISABLED: FaultOutcome = {
  status: 403,
  code: 'MG_FAULT_DISABLED',
  message: 'fault injection is off in this gateway\'s config; set `debug: { fault-injection: true }` (testing only) and restart the gateway',
};

/**
 * Check a fault request against the config and the target; undefined when it
 * may be carried out, else the refusal (403 not enabled, 404 unknown
 * component, 400 unknown kind, 409 not possible now: not running, `allocate`
 * without a memory limit, `hang` without a heartbeat, `escape-link` without a
 * packet device).
 */
export function checkFault(enabled: boolean, component: string, kind: unknown, target: FaultTarget, attack?: unknown): FaultOutcome | undefined {
  if (!enabled) return FAULT_DISABLED;
  if (!target.known) return { status: 404, code: 'MG_NO_COMPONENT', message: `no component "${component}" in this gateway` };
  if (!isFaultKind(kind)) {
    return { status: 400, code: 'MG_BAD_FAULT', message: `kind must be one of ${FAULT_KINDS.join(', ')} (got ${kind === undefined ? 'nothing' : JSON.stringify(kind)})` };
  }
  if (kind === 'hostile' && !isHostileAttack(attack)) {
    return { status: 400, code: 'MG_BAD_FAULT', message: `kind "hostile" needs an attack, one of ${HOSTILE_ATTACKS.join(', ')} (got ${attack === undefined ? 'nothing' : JSON.stringify(attack)})` };
  }
  if (kind !== 'hostile' && attack !== undefined) return { status: 400, code: 'MG_BAD_FAULT', message: `only kind "hostile" takes an attack` };
  if (target.state !== 'running') return { status: 409, code: 'MG_NOT_RUNNING', message: `${component} is ${target.state ?? 'not started'}; try again when it runs` };
  if (kind === 'allocate' && !target.memoryLimited) {
    return {
      status: 409,
      code: 'MG_NO_MEMORY_LIMIT',
      message: `${component} has no memory limit (memory-mb): "allocate" would take the machine's memory, not its own; refused`,
    };
  }
  if (kind === 'escape-link' && !target.packetLink) {
    return { status: 409, code: 'MG_NO_PACKET_LINK', message: `${component} holds no packet device (kind: packet): "escape-link" tries to leave one; refused` };
  }
  if (kind === 'hang' && !target.heartbeat) {
    return { status: 409, code: 'MG_NO_HEARTBEAT', message: `${component} has no heartbeat (heartbeat-ms: 0): nothing would end a hang; refused` };
  }
  return undefined;
}
