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

/** A node process as `uid` that says "ready" and waits; with notDumpable it calls setNotDumpable() first. */
async function startAs(uid: number, notDumpable: boolean): Promise<ChildProcess> {
  const code = `${notDumpable ? `const { setNotDumpable } = await import(${JSON.stringify(LIBC)}); setNotDumpable();` : ''}
    globalThis.secret = 'secret-' + 'marker'; console.log('ready'); setInterval(() => {}, 1000);`;
  const c = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', process.execPath, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  await once(c.stdout!, 'data');
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
