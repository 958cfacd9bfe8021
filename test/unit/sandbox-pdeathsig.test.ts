// Nothing init starts outlives it: the sandbox's command line (components, and
// services, which use it with keepNetwork) has setpriv set the parent-death
// signal to SIGKILL, and setpriv's --pdeathsig does what it says (its parent
// exits, the child is killed). The same against a live gateway (init
// SIGKILLed): test/integration/compromised.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sandboxCommand } from '../../src/init/sandbox.ts';

const HOST = fileURLToPath(new URL('../../src/runtime/host.ts', import.meta.url));

test('the sandbox command sets pdeathsig SIGKILL in setpriv, for components and services', () => {
  for (const keepNetwork of [false, true]) {
    const { args } = sandboxCommand({ uid: 60000, maxOldSpaceMb: 64, script: HOST, keepNetwork });
    const inner = args[args.length - 1];
    assert.match(inner, /setpriv'? --reuid=60000 .* --pdeathsig=SIGKILL -- /, `keepNetwork ${keepNetwork}`);
  }
});

test('setpriv --pdeathsig=SIGKILL: the child dies with its parent', () => {
  // sh starts setpriv ... sleep in the background and exits at once: the sleep's parent is gone.
  const pid = Number(execFileSync('/bin/sh', ['-c', 'setpriv --pdeathsig=SIGKILL -- sleep 30 & echo $!; sleep 0.2'], { encoding: 'utf8' }).trim());
  assert.ok(pid > 0);
  let state = '';
  const deadline = Date.now() + 3000;
  do {
    try {
      state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0];
    } catch {
      state = 'gone';
    }
  } while (state !== 'gone' && state !== 'Z' && Date.now() < deadline);
  assert.ok(state === 'gone' || state === 'Z', `the child ${pid} is ${state}`);
});
