// PR_SET_DUMPABLE 0 (src/sys/libc.ts setNotDumpable, called first thing by
// every component host and service): another process of the same uid can no
// longer open /proc/PID/mem, and the audit (src/init/audit.ts dumpable) tells
// a dumpable process from a non-dumpable one from outside. The control: the
// same uid *can* read the memory of a dumpable process, so the test can fail.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { auditIdentity, dumpable } from '../../src/init/audit.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';
import { readMemAs } from '../integration/mem-read.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (runs processes as another uid)' : false;
const LIBC = resolve(import.meta.dirname, '../../src/sys/libc.ts');
const children: ChildProcess[] = [];

after(() => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
});

/**
 * A node process as `uid` that says "ready" and waits. With notDumpable it
 * starts as root, loads the libc bindings (the checkout may be readable by
 * root only, as a CI clone under a 0700 temp folder is), drops to `uid`, makes
 * itself dumpable again (a uid change resets the flag) and then calls
 * setNotDumpable(), so the flag the test sees is the one that call set.
 */
async function startAs(uid: number, notDumpable: boolean): Promise<ChildProcess> {
  const code = notDumpable
    ? `const { prctl, setNotDumpable } = await import(${JSON.stringify(LIBC)});
       process.setgroups([]); process.setgid(${uid}); process.setuid(${uid});
       prctl(4, 1); setNotDumpable();
       globalThis.secret = 'secret-' + 'marker'; console.log('ready'); setInterval(() => {}, 1000);`
    : `globalThis.secret = 'secret-' + 'marker'; console.log('ready'); setInterval(() => {}, 1000);`;
  const args = ['--input-type=module', '-e', code];
  const c = notDumpable
    ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let err = '';
  c.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  // Ready, or an exit / 10 s without it: a clear failure, never a hang.
  const ready = once(c.stdout!, 'data').then(() => true);
  const gone = once(c, 'exit').then(() => false);
  const late = new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref());
  if (!(await Promise.race([ready, gone, late]))) throw new Error(`the test process (uid ${uid}) did not start: ${err.trim() || 'no output in 10 s'}`);
  assert.equal(process.getuid?.() === 0 && c.pid !== undefined, true);
  return c;
}

test('same uid: the memory of a dumpable process reads, of a non-dumpable one does not; the audit tells them apart', { skip }, async () => {
  const uid = findFreeUidRange(70000, 99999, 1).first;
  const open = await startAs(uid, false);
  const closed = await startAs(uid, true);
  const control = await readMemAs(uid, open.pid!);
  assert.equal(control.ok, true, `the control: uid ${uid} reads a dumpable process's memory (${control.error})`);
  assert.ok(control.bytes > 0);
  const r = await readMemAs(uid, closed.pid!);
  assert.equal(r.ok, false, 'a non-dumpable process: its memory must not read');
  assert.equal(r.error, 'EACCES');
  assert.equal(dumpable(open.pid!, uid), 1);
  assert.equal(dumpable(closed.pid!, uid), 0);
  const v1: string[] = [];
  const v0: string[] = [];
  assert.equal(auditIdentity(open.pid!, uid, 0, [], v1).dumpable, 1);
  assert.equal(auditIdentity(closed.pid!, uid, 0, [], v0).dumpable, 0);
  assert.ok(v1.some((v) => v.startsWith('dumpable')), v1.join('\n'));
  assert.ok(!v0.some((v) => v.startsWith('dumpable')), v0.join('\n'));
});
