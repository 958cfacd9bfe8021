// init's last line of defence (src/init/crash.ts), in a child process: an
// uncaught exception and an unhandled rejection are logged (escaped, one
// line), the stop runs, and the process exits 70 for its supervisor; a stop
// that never ends does not keep it alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CRASH = fileURLToPath(new URL('../../src/init/crash.ts', import.meta.url));

function runChild(body: string): { code: number | null; out: string } {
  const script = `import { installCrashHandlers } from ${JSON.stringify(CRASH)};\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

test('an uncaught exception: logged on one line, everything stopped, exit 70', () => {
  const r = runChild(`installCrashHandlers(async () => { console.log('STOPPED'); }, (l) => console.log(l));
setTimeout(() => { throw new Error('boom\\ninit: FORGED'); }, 10);`);
  assert.equal(r.code, 70);
  assert.match(r.out, /init: FATAL: uncaught exception: Error: boom\\ninit: FORGED/);
  assert.doesNotMatch(r.out, /^init: FORGED/m);
  assert.match(r.out, /STOPPED/);
});

test('an unhandled rejection: exit 70, even when the stop hangs', () => {
  const r = runChild(`installCrashHandlers(() => new Promise(() => {}), (l) => console.log(l));
setInterval(() => {}, 1000);
void Promise.reject(new Error('lost'));`);
  assert.equal(r.code, 70);
  assert.match(r.out, /init: FATAL: unhandled promise rejection: Error: lost/);
});
