// bin/microgate runs only with the pinned Node (node_modules/.bin/node at the
// version package.json pins): missing or another version, it says how to
// install it and exits 1, and never falls back to a `node` on the PATH.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const pinned = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies.node;
const dir = mkdtempSync(join(tmpdir(), 'mg-bin-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of bin/ and package.json in a fresh folder, and a PATH whose `node` leaves a mark if it is ever run. */
function copy(name: string): { top: string; path: string; mark: string } {
  const top = join(dir, name);
  mkdirSync(join(top, 'bin'), { recursive: true });
  copyFileSync(join(root, 'bin/microgate'), join(top, 'bin/microgate'));
  chmodSync(join(top, 'bin/microgate'), 0o755);
  copyFileSync(join(root, 'package.json'), join(top, 'package.json'));
  const path = join(top, 'path');
  mkdirSync(path);
  const mark = join(top, 'system-node-ran');
  script(join(path, 'node'), `touch ${mark}; echo v20.19.2`);
  return { top, path, mark };
}

function script(file: string, body: string): void {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
}

function run(c: { top: string; path: string }): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(c.top, 'bin/microgate'), ['--help'], { env: { PATH: `${c.path}:/usr/bin:/bin` }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('no node_modules/.bin/node: exit 1, says the pinned version and the setup command, never runs the PATH node', () => {
  const c = copy('missing');
  const r = run(c);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`the pinned Node ${pinned.replaceAll('.', '\\.')} is not installed`));
  assert.match(r.stderr, /bash scripts\/setup\.sh/);
  assert.equal(r.stdout, '');
  assert.equal(existsSync(c.mark), false, 'the system node must never run');
});

test('node_modules/.bin/node of another version: exit 1 naming both versions', () => {
  const c = copy('other');
  mkdirSync(join(c.top, 'node_modules/.bin'), { recursive: true });
  script(join(c.top, 'node_modules/.bin/node'), 'echo v20.19.2');
  const r = run(c);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`is v20\\.19\\.2, not the pinned Node v${pinned.replaceAll('.', '\\.')}`));
  assert.match(r.stderr, /bash scripts\/setup\.sh/);
  assert.equal(existsSync(c.mark), false);
});

test('the pinned version: runs src/cli/main.ts with it, passing the arguments', () => {
  const c = copy('pinned');
  mkdirSync(join(c.top, 'node_modules/.bin'), { recursive: true });
  script(join(c.top, 'node_modules/.bin/node'), `if [ "$1" = --version ]; then echo v${pinned}; else echo "ran $*"; fi`);
  const r = run(c);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `ran ${join(c.top, 'src/cli/main.ts')} --help\n`);
  assert.equal(existsSync(c.mark), false);
});

test('the real checkout runs with its pinned Node', () => {
  const r = spawnSync(join(root, 'bin/microgate'), ['--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: microgate COMMAND/);
});
