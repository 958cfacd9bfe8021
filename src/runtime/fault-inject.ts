// Fault injection, the host's side: carry out a fault init accepted (see
// src/init/fault.ts) on the thread that runs the component, shortly after the
// answer went out, so the failure is the component's own and not the control
// channel's:
//   throw     an exception thrown from a setImmediate callback: nothing catches
//             it (on the main thread Node exits with code 1; in a worker thread
//             the host sees the worker's error and exits, src/runtime/host.ts)
//   allocate  memory outside the V8 heap (Buffer chunks, every page written)
//             and a little inside it (arrays), all kept, step by step, until
//             the kernel's OOM killer ends the process at its cgroup's limit
//   hang      a busy loop: the thread never yields again (the heartbeat finds it)
//   forbidden-call  what an intruder would try: ptrace(PTRACE_ATTACH) of its
//             parent (init) straight through syscall(2), around Node; the
//             seccomp allow-list kills the whole process with SIGSYS
import type { Logger } from './component.ts';
import { syscallPtr } from '../sys/libc.ts';
import { SYSCALLS_X86_64 } from '../sys/syscalls.ts';

/** The faults a test may inject (config `debug: { fault-injection: true }`; init's checks: src/init/fault.ts). */
export const FAULT_KINDS = ['throw', 'allocate', 'hang', 'forbidden-call'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export function isFaultKind(v: unknown): v is FaultKind {
  return typeof v === 'string' && (FAULT_KINDS as readonly string[]).includes(v);
}

const PTRACE_ATTACH = 16;

/** Outside the V8 heap per step (Buffer memory). */
const EXTERNAL_CHUNK = 8 * 1024 * 1024;
const EXTERNAL_PER_STEP = 4;
/** Inside the V8 heap per step: numbers in arrays (1/128 of the external part, so the cgroup limit comes first). */
const HEAP_ELEMENTS_PER_STEP = 32 * 1024;
/** Time for the answer to reach init before the fault. */
const DELAY_MS = 50;

/** Kept forever: what `allocate` took. */
const kept: unknown[] = [];

function allocateStep(log: Logger, step: number): void {
  for (let i = 0; i < EXTERNAL_PER_STEP; i++) {
    // Buffer.alloc may hand out untouched zero pages; writing them makes them resident.
    kept.push(Buffer.alloc(EXTERNAL_CHUNK).fill(0x5a + step + i));
  }
  kept.push(new Array<number>(HEAP_ELEMENTS_PER_STEP).fill(step + 0.5));
  if (step % 32 === 0) log.warn('fault injection: still allocating', { mb: ((step + 1) * EXTERNAL_PER_STEP * EXTERNAL_CHUNK) / 2 ** 20 });
  setImmediate(() => allocateStep(log, step + 1));
}

/** Schedule `kind` on this thread for component `name` (returns at once). */
export function injectFault(kind: FaultKind, name: string, log: Logger): void {
  log.warn(`fault injection: ${kind}`, { component: name });
  setTimeout(() => {
    switch (kind) {
      case 'throw':
        setImmediate(() => {
          throw new Error(`fault injection: an uncaught exception in component ${name}`);
        });
        break;
      case 'allocate':
        allocateStep(log, 0);
        break;
      case 'forbidden-call':
        setImmediate(() => {
          try {
            syscallPtr(SYSCALLS_X86_64.ptrace, PTRACE_ATTACH, process.ppid, null);
            log.error('fault injection: ptrace of init was NOT stopped by the sandbox');
          } catch (e) {
            // Only reached when the filter did not kill the process: the call failed some other way.
            log.error(`fault injection: ptrace of init was not killed by the seccomp filter: ${(e as Error).message}`);
          }
        });
        break;
      case 'hang':
        setImmediate(() => {
          for (;;) {
            // never yields
          }
        });
        break;
    }
  }, DELAY_MS);
}
