// The reserved uid range (src/init/uid-check.ts) against fixture copies of
// /etc/passwd, /etc/group, /etc/subuid, /etc/subgid and a live process; and
// the labs' allocation (src/lab/uid-alloc.ts): blocks clear of 65534, of the
// subordinate ranges and of each other.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkUidRange, findFreeUidRange, uidsInUse, type UidSources } from '../../src/init/uid-check.ts';

const dir = mkdtempSync(join(tmpdir(), 'mg-uid-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sources(files: Partial<Record<'passwd' | 'group' | 'subuid' | 'subgid', string>>, proc?: string): UidSources {
  const s: UidSources = { passwd: '', group: '', subuid: '', subgid: '', proc };
  for (const k of ['passwd', 'group', 'subuid', 'subgid'] as const) {
    s[k] = join(dir, `${k}-${Math.random().toString(36).slice(2)}`);
    writeFileSync(s[k], files[k] ?? '');
  }
  return s;
}

test('each kind of use is found and named with its file and line', () => {
  const s = sources({
    passwd: 'root:x:0:0:root:/root:/bin/bash\nalice:x:66003:1000::/home/alice:/bin/sh\nbob:x:1001:66010::/home/bob:/bin/sh\n',
    group: 'root:x:0:\nsvc:x:66020:\n',
    subuid: 'carol:66030:5\n',
    subgid: 'dave:60000:6001\n',
  });
  const uses = uidsInUse(66000, 66063, s);
  const where = uses.map((u) => `${u.uid} ${u.where}`);
  assert.deepEqual(where, [
    `66000 ${s.subgid}:1 (gives "dave" the subordinate gids 60000-66000)`,
    `66003 ${s.passwd}:2 (user "alice" has uid 66003)`,
    `66010 ${s.passwd}:3 (user "bob" has primary gid 66010)`,
    `66020 ${s.group}:2 (group "svc" has gid 66020)`,
    `66030 ${s.subuid}:1 (gives "carol" the subordinate uids 66030-66034)`,
  ]);
  const err = checkUidRange(66000, 66063, 'gw.yaml: sandbox', s);
  assert.match(err ?? '', /^gw\.yaml: sandbox \(66000-66063\) is not free: \S*subgid\S*:1 \(gives "dave" the subordinate gids 60000-66000\); \S*passwd\S*:2 \(user "alice" has uid 66003\); \S*passwd\S*:3 \(user "bob" has primary gid 66010\); and 2 more$/);
  assert.equal(checkUidRange(66100, 66163, 'x', s), undefined, 'a range nobody uses is free');
  assert.match(checkUidRange(65500, 65599, 'x', s) ?? '', /holds 65534, which is nobody/);
});

test('a running process with a uid of the range is found', { skip: process.getuid?.() !== 0 ? 'needs root (setpriv)' : false }, async () => {
  const uid = findFreeUidRange(70000, 99999, 1).first;
  const c = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sleep', '30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const err = checkUidRange(uid, uid, 'sandbox', sources({}, '/proc'));
    assert.ok((err ?? '').includes(`process ${c.pid} (sleep) runs with uid ${uid}`), String(err));
  } finally {
    c.kill('SIGKILL');
    await once(c, 'exit');
  }
});

test('init refuses to start when its range is in use, naming the uid and the process, before it creates anything', { skip: process.getuid?.() !== 0 ? 'needs root (init)' : false }, async () => {
  const { parseConfig } = await import('../../src/init/config.ts');
  const { Init } = await import('../../src/init/init.ts');
  const { catalog } = await import('../../src/cli/catalog.ts');
  const base = findFreeUidRange(99000, 99999, 64).first;
  const c = spawn('setpriv', [`--reuid=${base + 1}`, `--regid=${base + 1}`, '--clear-groups', 'sleep', '30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const cfg = parseConfig(`sandbox: { uid-base: ${base} }
devices:
  tap-lan: { ifname: mguidx0 }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - name: router
    type: router
    config: { domains: { lan: { address: 198.18.0.1/24 } } }
sessions:
  - { between: [drv-lan.nic, router.lan] }
`, 'gw.yaml', catalog);
    const lines: string[] = [];
    await assert.rejects(new Init(cfg, { log: (l) => lines.push(l) }).start(), (e: Error) => {
      assert.ok(e.message.startsWith(`gw.yaml: sandbox.uid-base, uid-count: the reserved uid range (${base}-${base + 63}) is not free: process ${c.pid} (sleep) runs with uid ${base + 1}`), e.message);
      assert.ok(e.message.endsWith('refusing to start: choose another sandbox.uid-base, or free these uids'), e.message);
      return true;
    });
    assert.equal(lines.filter((l) => l.includes('device')).length, 0, 'no device was created');
  } finally {
    c.kill('SIGKILL');
    await once(c, 'exit');
  }
});

test('findFreeUidRange skips used blocks, subordinate ranges and 65534', () => {
  const s = sources({ passwd: 'u:x:67005:67005::/:/bin/sh\n', subuid: 'v:67032:100\n' });
  // 67000-67031 has a user, 67032-67131 is a subordinate range: the first free block of 32 (aligned from 67000) is 67160.
  assert.deepEqual(findFreeUidRange(67000, 98999, 32, { sources: s }), { first: 67160, last: 67191 });
  assert.deepEqual(findFreeUidRange(65504, 70000, 32, { sources: sources({}) }), { first: 65536, last: 65567 }, 'the block holding 65534 and 65535 is skipped');
  assert.deepEqual(findFreeUidRange(67000, 98999, 32, { sources: sources({}), taken: (f) => f < 67100 }), { first: 67128, last: 67159 });
  assert.throws(() => findFreeUidRange(67000, 67031, 32, { sources: s }), /no free range of 32 uids between 67000 and 67031/);
});

test('labs: each gets its own block, released by lab down; a stale claim is taken over', async () => {
  const labs = join(dir, 'labs');
  mkdirSync(labs);
  process.env.MICROGATE_LABS_DIR = labs;
  // LABS_DIR is read when plan.ts loads: import after setting it.
  const { allocateLabUids, releaseLabUids, LAB_UID_FIRST, LAB_UID_COUNT } = await import('../../src/lab/uid-alloc.ts');
  const none = sources({});
  for (const n of ['a', 'b', 'c']) mkdirSync(join(labs, n));
  const a = allocateLabUids('a', none);
  const b = allocateLabUids('b', none);
  assert.equal(a, LAB_UID_FIRST);
  assert.equal(b, LAB_UID_FIRST + LAB_UID_COUNT, 'two labs at once never share a block');
  assert.ok(a + LAB_UID_COUNT <= b && (b > 65535 || b + LAB_UID_COUNT <= 65534) && b + LAB_UID_COUNT <= 100000);
  releaseLabUids('a');
  assert.equal(allocateLabUids('c', none), a, 'a released block is reused');
  // Lab b disappears without lab down: its claim is stale and another lab may take it.
  rmSync(join(labs, 'b'), { recursive: true });
  mkdirSync(join(labs, 'd'));
  assert.equal(allocateLabUids('d', none), b);
});

test('a zombie with a uid of the range is not a use (it holds nothing); a live one is', () => {
  const proc = join(dir, `proc-${Math.random().toString(36).slice(2)}`);
  for (const [pid, state] of [[101, 'Z (zombie)'], [102, 'S (sleeping)']] as const) {
    mkdirSync(join(proc, String(pid)), { recursive: true });
    writeFileSync(join(proc, String(pid), 'status'), `Name:\tnode-MainThread\nState:\t${state}\nUid:\t66040\t66040\t66040\t66040\nGid:\t66040\t66040\t66040\t66040\n`);
  }
  const uses = uidsInUse(66000, 66063, sources({}, proc)).map((u) => u.where);
  assert.deepEqual(uses, ['process 102 (node-MainThread) runs with uid 66040', 'process 102 (node-MainThread) runs with gid 66040']);
});
