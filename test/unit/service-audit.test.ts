// The privilege audit of a service (src/init/service-audit.ts), held against a
// plain, unsandboxed child process: everything it holds beyond what the
// expectation grants is a violation, and granting it makes that violation go.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditService, decodeProcAddress, type ServiceAuditExpectation } from '../../src/init/service-audit.ts';
import { CODE_DIR } from '../../src/init/sandbox.ts';

let dir: string;
let child: ChildProcess;
let port = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-svc-audit-'));
  writeFileSync(join(dir, 'held.txt'), 'x');
  // Holds a file open and listens on a loopback port, then says which.
  const code = `const fs = require('node:fs'); globalThis.fd = fs.openSync(${JSON.stringify(join(dir, 'held.txt'))}, 'r');
    const s = require('node:net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port));`;
  child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  port = Number(line.toString().trim());
});

after(() => {
  child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function expectation(over: Partial<ServiceAuditExpectation> = {}): ServiceAuditExpectation {
  return {
    service: 'svc', kind: 'file-gateway', pid: child.pid!, uid: 61099, netns: 'mg-no-such-netns',
    grants: { read: [], write: [], net: true }, listen: [], upstream: [], ...over,
  };
}

test('an unsandboxed process: every missing restriction and every extra fd is a violation', () => {
  const r = auditService(expectation());
  const v = r.violations.join('\n');
  for (const want of [
    'runs as root', 'uid 0, config grants 61099', 'no_new_privs is not set', 'seccomp mode 0, expected 2',
    'the configured network namespace mg-no-such-netns does not exist', "shares init's network namespace",
    "shares init's mount namespace", "Node's permission model is off",
    `permission grant --allow-fs-read=${CODE_DIR}/ of the config is missing`,
  ]) assert.ok(v.includes(want), `missing violation "${want}" in:\n${v}`);
  assert.match(v, new RegExp(`fd \\d+ -> TCP listening on 127\\.0\\.0\\.1:${port}: neither its listeners nor its storage`));
  assert.match(v, new RegExp(`fd \\d+ -> ${join(dir, 'held.txt').replace(/[.]/g, '\\.')}: not under a granted path`));
  assert.equal(r.sockets.stdio, 2, 'stdout and stderr (socket pairs made by init) are stdio');
  assert.equal(r.netns.configured, false);
});

test('granting the listener and the file makes those violations go', () => {
  const r = auditService(expectation({ listen: [{ host: '0.0.0.0', port }], grants: { read: [`${dir}/`], write: [], net: true } }));
  const v = r.violations.join('\n');
  assert.ok(!v.includes('TCP listening'), v);
  assert.ok(!v.includes('held.txt'), v);
  assert.equal(r.sockets.listening, 1);
  assert.ok(v.includes(`permission grant --allow-fs-read=${dir}/ of the config is missing`), 'a grant of the config must be on its command line');
});

test('addresses of /proc/net/tcp and tcp6', () => {
  assert.deepEqual(decodeProcAddress('028012C6:20FB'), { host: '198.18.128.2', port: 8443 });
  assert.deepEqual(decodeProcAddress('0000000000000000FFFF0000028012C6:01BB'), { host: '198.18.128.2', port: 443 });
  assert.deepEqual(decodeProcAddress('00000000000000000000000001000000:1F90'), { host: '::1', port: 8080 });
  assert.deepEqual(decodeProcAddress('B80D0120000000000000000001000000:0050'), { host: '2001:db8::1', port: 80 });
});
