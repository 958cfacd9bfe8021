// `microgate run` on a start-up failure: exits at once with a clear message
// (1; a config error 2, as documented) and leaves nothing running: no process
// of its uid range, no control socket, no memory cgroup. Each failure a user
// meets: the control socket of a running instance, a uid range a running
// instance uses, a config error, a component that fails to start.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { allocateLabUids, releaseLabUids } from '../../src/lab/uid-alloc.ts';
import { labStateDir } from '../../src/lab/lab-plan.ts';
import { ControlClient } from '../../src/sys/control-client.ts';
import { encodeKey, generatePrivateKey } from '../../src/components/keystore/keys.ts';
import { canRunLabs, uniqueLabName } from './harness.ts';

const skip = !canRunLabs() && 'needs root';
const MAIN = resolve(import.meta.dirname, '../../src/cli/main.ts');
const dir = mkdtempSync(join(tmpdir(), 'mg-run-'));
// Two uid blocks claimed like labs' (src/lab/uid-alloc.ts), so no lab running meanwhile gets them.
const claims = [uniqueLabName(), uniqueLabName()];
const uidBases: number[] = [];
const children = new Set<ChildProcess>();

before(() => {
  if (skip) return;
  for (const c of claims) {
    mkdirSync(labStateDir(c), { recursive: true, mode: 0o700 });
    uidBases.push(allocateLabUids(c));
  }
});
after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('close', r));
    }
  }
  for (const c of claims) {
    releaseLabUids(c);
    rmSync(labStateDir(c), { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function run(args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const t0 = Date.now();
  const child = spawn(process.execPath, [MAIN, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<Run>((r) => child.once('close', (code) => { children.delete(child); r({ code, stdout, stderr, ms: Date.now() - t0 }); }));
  return { child, done };
}

/** A gateway of one keystore (no network devices: nothing to clash with other tests). */
function config(name: string, o: { socket: string; uidBase: number; key: string; extra?: string }): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `control:
  socket: ${o.socket}
sandbox:
  uid-base: ${o.uidBase}
  uid-count: 32
devices:
  wg-key: { kind: file, path: ${o.key} }
components:
  - { name: keystore, type: keystore, devices: { private-key: wg-key }, memory-mb: 64, restart: always${o.extra ?? ''} }
`, { mode: 0o600 });
  return file;
}

function keyFile(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
}

/** Processes running as a uid of [base, base + 31]. */
function uidProcesses(base: number): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${e}/status`, 'utf8'))?.[1].split(/\s+/).map(Number) ?? [];
      if (uids.some((u) => u >= base && u < base + 32)) out.push(`${e} (${readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()})`);
    } catch { /* gone */ }
  }
  return out;
}

/** microgate.PID memory cgroups of `pid` (src/init/cgroup.ts). */
function cgroupsOf(pid: number | undefined): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number): void => {
    if (depth > 4) return;
    let es: string[];
    try { es = readdirSync(d); } catch { return; }
    for (const e of es) {
      if (e === `microgate.${pid}`) found.push(join(d, e));
      else if (!e.includes('.') || e.endsWith('.slice') || e.endsWith('.scope') || e.endsWith('.service')) {
        try { if (readdirSync(join(d, e)).length) walk(join(d, e), depth + 1); } catch { /* a file */ }
      }
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

function nothingLeft(r: { child: ChildProcess }, base: number, socket: string | undefined): void {
  assert.deepEqual(uidProcesses(base), [], 'no process of its uid range');
  if (socket !== undefined) assert.equal(existsSync(socket), false, `no control socket ${socket}`);
  assert.deepEqual(cgroupsOf(r.child.pid), [], 'no memory cgroup');
}

let goodKey = '';
let first: { child: ChildProcess; done: Promise<Run> } | undefined;
let firstSocket = '';

test('a first instance starts (the others are measured against it)', { skip }, async () => {
  goodKey = keyFile('good.key', `${encodeKey(generatePrivateKey())}\n`);
  firstSocket = join(mkdtempSync(join(dir, 'a-')), 'control.sock');
  first = run([config('a', { socket: firstSocket, uidBase: uidBases[0], key: goodKey })]);
  const c = new ControlClient({ socket: firstSocket }, 2000);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await c.get<{ ready: boolean }>('/status').then((s) => s.ready, () => false);
    if (ready) break;
    if (first.child.exitCode !== null || Date.now() > deadline) assert.fail(`first instance did not start: ${(await first.done).stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.notDeepEqual(uidProcesses(uidBases[0]), [], 'its keystore runs as a uid of its range');
  assert.notDeepEqual(cgroupsOf(first.child.pid), [], 'its memory cgroup exists (so the checks below can see one)');
});

test('the control socket of a running instance: exit 1 before starting anything', { skip }, async () => {
  const r = run([config('b', { socket: firstSocket, uidBase: uidBases[1], key: goodKey })]);
  const res = await r.done;
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, new RegExp(`microgate run: control\\.socket ${firstSocket.replaceAll('.', '\\.')}: another gateway answers there; stop it or choose another path`));
  assert.doesNotMatch(res.stdout, /keystore running/, 'no component was started');
  nothingLeft(r, uidBases[1], undefined);
  assert.equal(existsSync(firstSocket), true, "the first instance's socket is untouched");
});

test('the control port in use, a token file others can read, a file where the socket goes: exit 1 before starting anything', { skip }, async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as { port: number }).port;
  const token = keyFile('token', `${'a'.repeat(40)}\n`);
  const loose = keyFile('loose-token', `${'b'.repeat(40)}\n`);
  chmodSync(loose, 0o644);
  const notSocket = join(mkdtempSync(join(dir, 'f-')), 'control.sock');
  writeFileSync(notSocket, 'x');
  try {
    const cases: [string, { socket: string; extra: string }, RegExp][] = [
      ['port', { socket: join(mkdtempSync(join(dir, 'g-')), 'control.sock'), extra: `  listen: 127.0.0.1:${port}\n  token-file: ${token}\n` },
        new RegExp(`^microgate run: control\\.listen 127\\.0\\.0\\.1:${port}: the port is in use \\(another gateway\\?\\); stop it or choose another port\n$`)],
      ['token', { socket: join(mkdtempSync(join(dir, 'h-')), 'control.sock'), extra: `  listen: 127.0.0.1:0\n  token-file: ${loose}\n` },
        /^microgate run: control\.token-file .*: mode 644; it must be readable by root only \(chmod 600\)\n$/],
      ['file', { socket: notSocket, extra: '' }, /^microgate run: control\.socket .*: exists and is not a socket; remove it or choose another path\n$/],
    ];
    for (const [what, c, expect] of cases) {
      const file = config(`p-${what}`, { socket: c.socket, uidBase: uidBases[1], key: goodKey });
      writeFileSync(file, readFileSync(file, 'utf8').replace(`  socket: ${c.socket}\n`, `  socket: ${c.socket}\n${c.extra}`), { mode: 0o600 });
      const r = run([file]);
      const res = await r.done;
      assert.equal(res.code, 1, `${what}: ${res.stderr}`);
      assert.match(res.stderr, expect, what);
      assert.doesNotMatch(res.stdout, /keystore running|device wg-key/, `${what}: nothing was created or started`);
      nothingLeft(r, uidBases[1], what === 'file' ? undefined : c.socket);
    }
  } finally {
    await new Promise<void>((r) => busy.close(() => r()));
  }
});

test('a uid range a running instance uses: exit 1 naming the process', { skip }, async () => {
  const socket = join(mkdtempSync(join(dir, 'c-')), 'control.sock');
  const r = run([config('c', { socket, uidBase: uidBases[0], key: goodKey })]);
  const res = await r.done;
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, new RegExp(`sandbox\\.uid-base, uid-count: the reserved uid range .*process \\d+ .*refusing to start`));
  assert.equal(existsSync(socket), false);
  assert.equal(existsSync(firstSocket), true);
});

test('a config error: exit 2 naming the file, the path and what was expected; nothing started', { skip }, async () => {
  const socket = join(mkdtempSync(join(dir, 'd-')), 'control.sock');
  const file = config('d', { socket, uidBase: uidBases[1], key: goodKey, extra: ', isolation: sideways' });
  const r = run([file]);
  const res = await r.done;
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, new RegExp(`^microgate run: invalid config: ${file.replaceAll('.', '\\.')}:\\d+: components\\[0\\]\\.isolation: `));
  nothingLeft(r, uidBases[1], socket);
});

test('a component that fails to start: exit 1 at once with its error; no process, socket or cgroup left', { skip }, async () => {
  const socket = join(mkdtempSync(join(dir, 'e-')), 'control.sock');
  // A start timeout of 60 s: restarting it until then (the old behaviour) would fail the bound below.
  const r = run([config('e', { socket, uidBase: uidBases[1], key: keyFile('bad.key', 'not a key\n') }), '--start-timeout-s', '60']);
  const res = await r.done;
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, /microgate run: keystore failed to start: .*the private-key file does not hold one base64 key of 32 bytes/);
  assert.ok(res.ms < 30_000, `gave up after ${res.ms} ms (restarts during start-up would wait for the start timeout)`);
  nothingLeft(r, uidBases[1], socket);
});

test('the first instance still runs and stops cleanly', { skip }, async () => {
  assert.ok(first !== undefined);
  assert.equal(first.child.exitCode, null);
  first.child.kill('SIGTERM');
  const res = await first.done;
  assert.equal(res.code, 0, res.stderr);
  nothingLeft(first, uidBases[0], firstSocket);
});
