// A seccomp filter that takes away a component's ability to start programs or
// processes: execve/execveat/fork/vfork fail with EPERM, clone is allowed only
// for threads (CLONE_THREAD), clone3 answers ENOSYS (glibc then falls back to
// clone for its threads). Installed with TSYNC so every thread of the process
// is covered, after no_new_privs. x86-64 only; other architectures are killed
// by the filter's first check, so a mismatch cannot pass silently.
import { mapAnonymous, prctl, syscallPtr } from '../sys/libc.ts';

const PR_SET_NO_NEW_PRIVS = 38;
const SYS_seccomp = 317;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const RET_KILL_PROCESS = 0x80000000;
const EPERM = 1;
const ENOSYS = 38;
const CLONE_THREAD = 0x00010000;

const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const RET_K = 0x06;

export const DENIED_SYSCALLS = { execve: 59, execveat: 322, fork: 57, vfork: 58 } as const;
const SYS_clone = 56;
const SYS_clone3 = 435;

type Insn = [code: number, jt: number, jf: number, k: number];

function program(): Insn[] {
  const denied = Object.values(DENIED_SYSCALLS);
  const p: Insn[] = [];
  p.push([LD_W_ABS, 0, 0, 4]); // seccomp_data.arch
  p.push([JEQ_K, 1, 0, AUDIT_ARCH_X86_64]);
  p.push([RET_K, 0, 0, RET_KILL_PROCESS]);
  p.push([LD_W_ABS, 0, 0, 0]); // seccomp_data.nr
  // Layout after this point: denied checks, clone3 check, clone check, allow,
  // deny-EPERM, enosys, clone-flags block.
  const n = denied.length;
  const idxAllow = n + 2; // relative to first check
  const idxEperm = idxAllow + 1;
  const idxEnosys = idxEperm + 1;
  const idxClone = idxEnosys + 1;
  for (let i = 0; i < n; i++) p.push([JEQ_K, idxEperm - i - 1, 0, denied[i]]);
  p.push([JEQ_K, idxEnosys - n - 1, 0, SYS_clone3]);
  p.push([JEQ_K, idxClone - n - 2, 0, SYS_clone]);
  p.push([RET_K, 0, 0, RET_ALLOW]);
  p.push([RET_K, 0, 0, RET_ERRNO | EPERM]);
  p.push([RET_K, 0, 0, RET_ERRNO | ENOSYS]);
  p.push([LD_W_ABS, 0, 0, 16]); // args[0], low 32 bits: clone flags
  p.push([JSET_K, 0, 1, CLONE_THREAD]);
  p.push([RET_K, 0, 0, RET_ALLOW]);
  p.push([RET_K, 0, 0, RET_ERRNO | EPERM]);
  return p;
}

/** Install the no-new-processes filter on every thread of this process. */
export function denyProcessCreation(): void {
  if (process.arch !== 'x64') throw new Error(`seccomp filter is written for x86-64, not ${process.arch}`);
  const insns = program();
  const mem = mapAnonymous(4096);
  const dv = new DataView(mem.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    dv.setUint16(i * 8, code, true);
    dv.setUint8(i * 8 + 2, jt);
    dv.setUint8(i * 8 + 3, jf);
    dv.setUint32(i * 8 + 4, k >>> 0, true);
  });
  const fprog = new Uint8Array(16);
  const fv = new DataView(fprog.buffer);
  fv.setUint16(0, insns.length, true);
  fv.setBigUint64(8, BigInt(mem.address), true);
  prctl(PR_SET_NO_NEW_PRIVS, 1);
  syscallPtr(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, fprog);
}
