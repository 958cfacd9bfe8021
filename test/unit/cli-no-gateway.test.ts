// Every command that talks to a gateway, table-driven: each finds it the same
// way (--control, $MICROGATE_CONTROL, --lab, the one control client) and, when
// no gateway answers, prints one clear line and exits 1: a missing socket, a
// stale one (the file left by a gateway that died), a loopback port nobody
// listens on, a lab that does not exist or has no control API. The file
// gateway's admin commands say plainly when a lab has no file gateway.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'mg-nogw-'));
const labs = join(dir, 'labs');
const missing = join(dir, 'missing.sock');
const stale = join(dir, 'stale.sock');
let closedPort = 0;

before(async () => {
  // A stale socket: a process listened on it and died without closing it (the file stays, connecting is refused).
  const r = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(existsSync(stale));
  // A loopback port nothing listens on: bound, then closed.
  const srv = createServer();
  await new Promise<void>((r2) => srv.listen(0, '127.0.0.1', r2));
  closedPort = (srv.address() as { port: number }).port;
  await new Promise<void>((r2) => srv.close(() => r2()));
  // Two labs' state (MICROGATE_LABS_DIR): a Linux lab (no control API), a microgate lab built without --file-gateway.
  for (const [name, gateway, socket] of [['linlab', 'linux', undefined], ['mglab', 'microgate', missing]] as const) {
    mkdirSync(join(labs, name), { recursive: true, mode: 0o700 });
    writeFileSync(join(labs, name, 'state.json'), JSON.stringify({ version: 1, name, gateway, status: 'up', controlSocket: socket, plan: { name, kind: gateway }, processes: [] }));
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every command that talks to a gateway, with the arguments it needs besides the target. */
const COMMANDS: { cmd: string[]; prefix: string }[] = [
  { cmd: ['status'], prefix: 'microgate status' },
  { cmd: ['policy'], prefix: 'microgate policy' },
  { cmd: ['metrics'], prefix: 'microgate metrics' },
  { cmd: ['dashboard'], prefix: 'microgate dashboard' },
  { cmd: ['drops'], prefix: 'microgate drops' },
  { cmd: ['conntrack'], prefix: 'microgate conntrack' },
  { cmd: ['leases'], prefix: 'microgate leases' },
  { cmd: ['reload'], prefix: 'microgate reload' },
  { cmd: ['audit'], prefix: 'microgate audit' },
  { cmd: ['alerts'], prefix: 'microgate alerts' },
  { cmd: ['alerts', '--follow'], prefix: 'microgate alerts' },
  { cmd: ['tunnel', 'status'], prefix: 'microgate tunnel' },
  { cmd: ['fault', '--component', 'router', '--kind', 'throw'], prefix: 'microgate fault' },
  { cmd: ['trace', 'start'], prefix: 'microgate trace start' },
  { cmd: ['trace', 'stop'], prefix: 'microgate trace stop' },
  { cmd: ['trace', 'status'], prefix: 'microgate trace status' },
  { cmd: ['trace', 'report'], prefix: 'microgate trace report' },
  { cmd: ['trace', 'counters'], prefix: 'microgate trace counters' },
  { cmd: ['trace', 'export', '--out', join(dir, 'trace.json')], prefix: 'microgate trace export' },
  { cmd: ['trace', 'mode', 'aggregates'], prefix: 'microgate trace mode' },
];

let main: (argv: string[]) => Promise<number>;
before(async () => {
  process.env.MICROGATE_LABS_DIR = labs; // read when src/lab/lab-plan.ts loads
  ({ main } = await import('../../src/cli/main.ts'));
});

/** One command line through the CLI's main() in this process (a Node start each would take minutes on a loaded machine). */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = { c: process.env.MICROGATE_CONTROL, t: process.env.MICROGATE_CONTROL_TOKEN_FILE };
  delete process.env.MICROGATE_CONTROL;
  delete process.env.MICROGATE_CONTROL_TOKEN_FILE;
  Object.assign(process.env, env);
  const out = { stdout: '', stderr: '' };
  const w = { o: process.stdout.write, e: process.stderr.write };
  // Strings are the command's; the test runner's own reports (serialized Buffers) go through.
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof s !== 'string') return (w.o as (...a: unknown[]) => boolean).call(process.stdout, s, ...rest);
    out.stdout += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => { out.stderr += String(s); return true; }) as typeof process.stderr.write;
  try {
    return { code: await main(args), ...out };
  } finally {
    process.stdout.write = w.o;
    process.stderr.write = w.e;
    for (const [k, v] of [['MICROGATE_CONTROL', saved.c], ['MICROGATE_CONTROL_TOKEN_FILE', saved.t]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function each<T>(items: T[], f: (x: T) => Promise<void>): Promise<void> {
  for (const x of items) await f(x);
}

const exactly = (prefix: string, msg: string): string => `${prefix}: ${msg}\n`;

test('$MICROGATE_CONTROL naming a missing socket: one line, exit 1, for every command', async () => {
  await each(COMMANDS, async ({ cmd, prefix }) => {
    const r = await cli(cmd, { MICROGATE_CONTROL: missing });
    assert.deepEqual([r.code, r.stderr, r.stdout], [1, exactly(prefix, `no gateway answers on ${missing}: is it running?`), ''], cmd.join(' '));
  });
});

test('--control naming a stale socket (its gateway died): one line, exit 1, for every command', async () => {
  await each(COMMANDS, async ({ cmd, prefix }) => {
    const r = await cli([...cmd, '--control', stale]);
    assert.deepEqual([r.code, r.stderr, r.stdout], [1, exactly(prefix, `no gateway answers on ${stale}: is it running?`), ''], cmd.join(' '));
  });
});

test('$MICROGATE_CONTROL naming a loopback URL nobody listens on: one line, exit 1, for every command', async () => {
  const url = `http://127.0.0.1:${closedPort}`;
  await each(COMMANDS, async ({ cmd, prefix }) => {
    const r = await cli(cmd, { MICROGATE_CONTROL: url });
    assert.deepEqual([r.code, r.stderr, r.stdout], [1, exactly(prefix, `no gateway answers on ${url}: is it running?`), ''], cmd.join(' '));
  });
});

test('--lab: a lab that does not exist, a Linux lab (no control API), a microgate lab whose init is gone', async () => {
  await each(COMMANDS, async ({ cmd, prefix }) => {
    const none = await cli([...cmd, '--lab', 'nosuch']);
    assert.deepEqual([none.code, none.stderr], [1, exactly(prefix, 'no lab "nosuch" (see microgate lab status; lab state is readable by root only)')], cmd.join(' '));
    if (cmd[0] === 'reload') return; // reload --lab of a Linux lab reloads its nftables; of a microgate lab: below
    const lin = await cli([...cmd, '--lab', 'linlab']);
    assert.deepEqual([lin.code, lin.stderr], [1, exactly(prefix, 'lab "linlab" runs the linux gateway, which has no control API')], cmd.join(' '));
    const dead = await cli([...cmd, '--lab', 'mglab']);
    assert.deepEqual([dead.code, dead.stderr], [1, exactly(prefix, `no gateway answers on ${missing}: is it running?`)], cmd.join(' '));
  });
  const r = await cli(['reload', '--lab', 'mglab']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^microgate reload: .*no gateway answers on ${missing.replaceAll('.', '\\.')}: is it running\\?\n$`));
});

test('users and publish --lab: a lab without the file gateway, or none, is said plainly (no raw ENOENT)', async () => {
  for (const cmd of [['users', 'list'], ['publish', 'list'], ['users', 'remove', 'alice']]) {
    const noFg = await cli([...cmd, '--lab', 'mglab']);
    assert.deepEqual([noFg.code, noFg.stderr], [1, `microgate ${cmd[0]}: lab "mglab" has no file gateway: it was built without --file-gateway (microgate lab up --name NAME --file-gateway)\n`]);
    const none = await cli([...cmd, '--lab', 'nosuch']);
    assert.deepEqual([none.code, none.stderr], [1, `microgate ${cmd[0]}: no lab "nosuch" (see microgate lab status; lab state is readable by root only)\n`]);
  }
  const cfg = join(dir, 'nope.yaml');
  const r = await cli(['users', 'list', '--config', cfg]);
  assert.deepEqual([r.code, r.stderr], [1, `microgate users: no file gateway config at ${cfg} (--config); give --config FILE, or --lab NAME for a lab built with --file-gateway\n`]);
});

test('the program itself (bin/microgate): the same line and exit code 1', async () => {
  const r = await new Promise<{ code: number; stderr: string }>((res) => {
    execFile(resolve(import.meta.dirname, '../../bin/microgate'), ['status', '--control', missing], (err, _o, stderr) => {
      res({ code: err === null ? 0 : Number(err.code), stderr });
    });
  });
  assert.deepEqual([r.code, r.stderr], [1, `microgate status: no gateway answers on ${missing}: is it running?\n`]);
});
