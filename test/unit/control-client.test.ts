// The one control API client (src/sys/control-client.ts) and how every command
// finds its target (src/cli/control-url.ts): sockets, loopback URLs only,
// $MICROGATE_CONTROL and the token file, and a plain message when nothing answers.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ControlError, parseControlTarget } from '../../src/sys/control-client.ts';
import { resolveControl } from '../../src/cli/control-url.ts';
import { DEFAULTS } from '../../src/init/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'mg-cc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function usage(f: () => unknown): void {
  assert.throws(f, (e: unknown) => e instanceof ControlError && e.code === 'MG_USAGE');
}

test('targets: an absolute socket path, or an http URL on a loopback host; nothing else', () => {
  assert.deepEqual(parseControlTarget('/run/x/control.sock'), { socket: '/run/x/control.sock' });
  assert.deepEqual(parseControlTarget('http://127.0.0.1:7460/'), { url: 'http://127.0.0.1:7460' });
  assert.deepEqual(parseControlTarget('http://localhost:7460', 'tok'), { url: 'http://localhost:7460', token: 'tok' });
  for (const bad of ['control.sock', 'http://10.0.0.1:7460', 'http://evil.example', 'https://127.0.0.1:7460', 'ftp://localhost', 'unix:/x', '']) usage(() => parseControlTarget(bad));
});

test('resolveControl: --control, else $MICROGATE_CONTROL, else the default socket; a URL takes its token from $MICROGATE_CONTROL_TOKEN_FILE', async () => {
  const saved = { c: process.env.MICROGATE_CONTROL, t: process.env.MICROGATE_CONTROL_TOKEN_FILE };
  try {
    delete process.env.MICROGATE_CONTROL;
    delete process.env.MICROGATE_CONTROL_TOKEN_FILE;
    assert.deepEqual(await resolveControl({}), { socket: DEFAULTS.controlSocket });
    process.env.MICROGATE_CONTROL = '/run/other/control.sock';
    assert.deepEqual(await resolveControl({}), { socket: '/run/other/control.sock' });
    assert.deepEqual(await resolveControl({ control: '/run/given.sock' }), { socket: '/run/given.sock' });
    process.env.MICROGATE_CONTROL = 'http://127.0.0.1:7460';
    assert.deepEqual(await resolveControl({}), { url: 'http://127.0.0.1:7460' });
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'abc123\n', { mode: 0o600 });
    process.env.MICROGATE_CONTROL_TOKEN_FILE = tokenFile;
    assert.deepEqual(await resolveControl({}), { url: 'http://127.0.0.1:7460', token: 'abc123' });
    await assert.rejects(resolveControl({ lab: 'x', control: '/a.sock' }), { code: 'MG_USAGE' });
  } finally {
    if (saved.c === undefined) delete process.env.MICROGATE_CONTROL;
    else process.env.MICROGATE_CONTROL = saved.c;
    if (saved.t === undefined) delete process.env.MICROGATE_CONTROL_TOKEN_FILE;
    else process.env.MICROGATE_CONTROL_TOKEN_FILE = saved.t;
  }
});

function cli(args: string[], env: Record<string, string>): Promise<[number, string]> {
  const root = resolve(import.meta.dirname, '../..');
  return new Promise((resolveP) => {
    execFile(process.execPath, [join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, ...env } }, (e, _out, err) => {
      resolveP([e === null ? 0 : Number(e.code), err]);
    });
  });
}

test('every command honours $MICROGATE_CONTROL and says plainly when no gateway answers; a bad target is a usage error', async () => {
  const none = join(dir, 'none.sock');
  assert.deepEqual(await cli(['drops'], { MICROGATE_CONTROL: none }), [1, `microgate drops: no gateway answers on ${none}: is it running?\n`]);
  assert.deepEqual(await cli(['audit', '--control', 'http://192.0.2.1:80'], {}), [2, 'microgate audit: control: the URL must name a loopback host (got http://192.0.2.1:80)\n']);
});
