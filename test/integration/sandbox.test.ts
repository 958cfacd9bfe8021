// The sandbox, tried from inside: the probe (src/init/sandbox-probe.ts) runs
// in exactly the sandbox init builds for a component (or the file gateway
// service), with the same seccomp filters, and tries what an intruder would:
// open files, write its code, open sockets, exec, fork, signal init, ptrace,
// mount, setuid, unshare. Every try must be stopped by the layer named in
// src/init/sandbox-probe-run.ts, with that layer's error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProbe } from '../../src/init/sandbox-probe-run.ts';
import type { ProbeReport } from '../../src/init/sandbox-probe-run.ts';
import { findFreeUidRange } from '../../src/init/uid-check.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (builds namespaces and drops privileges)' : false;
const uid = skip ? 0 : findFreeUidRange(99000, 99999, 1).first;

function verdicts(r: ProbeReport): Record<string, string> {
  return Object.fromEntries(r.checks.map((c) => [c.try, c.got]));
}

test('a loaded component: Node, the path filter and the allow-list stop every try; ptrace, mount, setuid, unshare kill it', { skip }, async () => {
  const r = await runProbe({ uid, profile: 'component', stage: 'loaded' });
  const v = verdicts(r);
  assert.equal(v['read-file (Node fs)'], 'ERR_ACCESS_DENIED');
  assert.equal(v['open /etc/passwd'], 'EPERM', 'no open by path once loaded, even through FFI');
  assert.equal(v['open own code'], 'EPERM');
  assert.equal(v['socket AF_INET'], 'EPERM');
  assert.equal(v['execve /bin/true'], 'EPERM');
  assert.equal(v['fork'], 'EPERM');
  assert.equal(v['kill pid 1'], 'EPERM');
  assert.equal(v['io_uring_setup'], 'ENOSYS');
  assert.equal(v['prctl PR_SET_DUMPABLE 1'], 'EPERM', 'non-dumpable for good: the allow-list refuses PR_SET_DUMPABLE');
  assert.equal(v['ptrace attach to init'], 'SIGSYS');
  assert.equal(v['mount a tmpfs'], 'SIGSYS');
  assert.equal(v['setuid 0'], 'SIGSYS');
  assert.equal(v['unshare a user namespace'], 'SIGSYS');
  assert.ok(r.pass, JSON.stringify(r.checks.filter((c) => !c.pass)));
});

test('while loading: its root holds no /etc/passwd and no other process in /proc; its code reads but does not write', { skip }, async () => {
  const r = await runProbe({ uid, profile: 'component', stage: 'allow-list' });
  const v = verdicts(r);
  assert.equal(v['open /etc/passwd'], 'ENOENT', 'the mount namespace: not in its root');
  assert.equal(v['open /proc/1/status'], 'ENOENT', 'procfs with hidepid=invisible');
  assert.equal(v['open own code'], 'allowed', 'its code is readable (the probe can tell allowed from stopped)');
  assert.equal(v['open own code for writing'], 'EPERM');
  assert.ok(r.pass, JSON.stringify(r.checks.filter((c) => !c.pass)));
});

test('the service profile (file gateway): Internet sockets yes, packet sockets, exec and ptrace no', { skip }, async () => {
  const r = await runProbe({ uid, profile: 'service', stage: 'allow-list' });
  const v = verdicts(r);
  assert.equal(v['socket AF_INET'], 'allowed');
  assert.equal(v['socket AF_PACKET'], 'EPERM');
  assert.equal(v['execve /bin/true'], 'EPERM');
  assert.equal(v['ptrace attach to init'], 'SIGSYS');
  assert.ok(r.pass, JSON.stringify(r.checks.filter((c) => !c.pass)));
});
