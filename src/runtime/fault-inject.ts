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
//   escape-link  what an intruder in a nic-driver on a packet link would try:
//             with its AF_PACKET socket, send a frame (ethertype 0x88b5, local
//             experimental) to every interface index 1-65535 and set each
//             promiscuous (PACKET_ADD_MEMBERSHIP); its own interface first, as
//             the control. It logs one line, `fault injection: escape-link:
//             {...}`: what worked where, and the errors. The component runs on.
//   hostile   attacker code writing garbage into the fds the component holds
//             (its control channel to init, its session rings and eventfds),
//             one named attack per request (hostile.ts)
import type { Logger } from './component.ts';
import { getsockname, sendTo, setsockopt, SysError, syscallPtr } from '../sys/libc.ts';
import { SYSCALLS_X86_64 } from '../sys/syscalls.ts';
import { runHostile, type HostileAttack, type HostileTarget } from './hostile.ts';

export { HOSTILE_ATTACKS, isHostileAttack, type HostileAttack } from './hostile.ts';

/** The faults a test may inject (config `debug: { fault-injection: true }`; init's checks: src/init/fault.ts). */
export const FAULT_KINDS = ['throw', 'allocate', 'hang', 'forbidden-call', 'escape-link', 'hostile'] as const;
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

/** The link device a component holds (its `tap` fd), for `escape-link`. */
export interface FaultLink {
  fd: number;
  /** virtio-net header length on the fd (a packet socket with PACKET_VNET_HDR wants one before each frame). */
  vnetHdrLen: number;
}

const ERRNO: Record<number, string> = { 1: 'EPERM', 6: 'ENXIO', 11: 'EAGAIN', 19: 'ENODEV', 22: 'EINVAL', 88: 'ENOTSOCK', 100: 'ENETDOWN', 105: 'ENOBUFS' };
const errName = (e: number): string => ERRNO[e] ?? `errno ${e}`;

/** What escape-link found: the control on its own interface, and every other index where something worked. */
export interface EscapeReport {
  own: number;
  ownSend: string;
  ownPromisc: string;
  tried: number;
  sentOn: number[];
  promiscOn: number[];
  errors: Record<string, number>;
}

/** Try to send on, and set promiscuous, every interface index but its own (and its own, the control). */
export function escapeLink(link: FaultLink, maxIndex = 65535): EscapeReport {
  const AF_PACKET = 17;
  const SOL_PACKET = 263;
  const PACKET_ADD_MEMBERSHIP = 1;
  const PACKET_MR_PROMISC = 1;
  const ETHERTYPE = 0x88b5;
  const name = new Uint8Array(20);
  getsockname(link.fd, name);
  const own = new DataView(name.buffer).getInt32(4, true);
  const frame = new Uint8Array(link.vnetHdrLen + 60); // zeroed virtio-net header: no offload
  frame.fill(0xff, link.vnetHdrLen, link.vnetHdrLen + 6);
  frame.set([0x02, 0, 0, 0, 0x0e, 0x5c], link.vnetHdrLen + 6);
  frame[link.vnetHdrLen + 12] = ETHERTYPE >> 8;
  frame[link.vnetHdrLen + 13] = ETHERTYPE & 0xff;
  const sll = new Uint8Array(20); // struct sockaddr_ll
  const s = new DataView(sll.buffer);
  s.setUint16(0, AF_PACKET, true);
  s.setUint16(2, ((ETHERTYPE & 0xff) << 8) | (ETHERTYPE >> 8), true);
  sll[11] = 6;
  sll.fill(0xff, 12, 18);
  const mreq = new Uint8Array(16); // struct packet_mreq
  const m = new DataView(mreq.buffer);
  m.setUint16(4, PACKET_MR_PROMISC, true);
  const send = (i: number): string => {
    s.setInt32(4, i, true);
    const r = sendTo(link.fd, frame, sll);
    return r >= 0 ? 'ok' : errName(-r);
  };
  const promisc = (i: number): string => {
    m.setInt32(0, i, true);
    try {
      setsockopt(link.fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
      return 'ok';
    } catch (e) {
      return e instanceof SysError ? errName(e.errno) : String(e);
    }
  };
  const r: EscapeReport = { own, ownSend: send(own), ownPromisc: promisc(own), tried: 0, sentOn: [], promiscOn: [], errors: {} };
  for (let i = 1; i <= maxIndex; i++) {
    if (i === own) continue;
    r.tried++;
    for (const [what, out] of [[send(i), r.sentOn], [promisc(i), r.promiscOn]] as const) {
      if (what === 'ok') out.push(i);
      else r.errors[what] = (r.errors[what] ?? 0) + 1;
    }
  }
  return r;
}

/** Schedule `kind` on this thread for component `name` (returns at once); `escape-link` uses the link, `hostile` needs its attack and target. */
export function injectFault(kind: FaultKind, name: string, log: Logger, link?: FaultLink, hostile?: { attack: HostileAttack; target: HostileTarget }): void {
  log.warn(`fault injection: ${kind}${hostile ? ` ${hostile.attack}` : ''}`, { component: name });
  setTimeout(() => {
    switch (kind) {
      case 'hostile':
        if (hostile !== undefined) runHostile(hostile.attack, name, hostile.target);
        break;
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
      case 'escape-link':
        setImmediate(() => {
          if (link === undefined) {
            log.error('fault injection: escape-link: this component holds no link device');
            return;
          }
          const r = escapeLink(link);
          const escaped = r.sentOn.length > 0 || r.promiscOn.length > 0;
          (escaped ? log.error : log.warn)(`fault injection: escape-link: ${JSON.stringify(r)}`);
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
