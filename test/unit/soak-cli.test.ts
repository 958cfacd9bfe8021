// `microgate soak` argument checks (the run itself: test/integration/soak.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/microgate', import.meta.url));

function soak(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(BIN, ['soak', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('soak: bad arguments are usage errors naming the option, --help describes the checks', () => {
  let r = soak();
  assert.equal(r.code, 2);
  assert.match(r.err, /--minutes must be a number of minutes above 0 \(got nothing\)/);
  r = soak('--minutes', 'abc');
  assert.equal(r.code, 2);
  assert.match(r.err, /got abc/);
  r = soak('--minutes', '1', '--kill-every', '0');
  assert.equal(r.code, 2);
  assert.match(r.err, /--kill-every must be 2 to 3600 seconds/);
  r = soak('--bogus');
  assert.equal(r.code, 2);
  r = soak('--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /conntrack back to 0/);
});
