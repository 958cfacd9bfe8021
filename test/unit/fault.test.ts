// Fault injection's gate: the config key `debug.fault-injection`, the checks
// init makes (checkFault), and the control endpoint POST /components/NAME/fault
// with every refusal (on an Init that was never started: no root needed), and
// the `microgate fault` command's usage errors. The faults themselves:
// test/integration/faults.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigFileError, parseConfig } from '../../src/init/config.ts';
import { topologyChange } from '../../src/init/reload.ts';
import { checkFault, FAULT_KINDS } from '../../src/init/fault.ts';
import { Init } from '../../src/init/init.ts';
import { startControl, type ControlServer } from '../../src/init/control.ts';
import { catalog } from '../../src/cli/catalog.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../src/sys/control-client.ts';

const BIN = fileURLToPath(new URL('../../bin/microgate', import.meta.url));

const BASE = `
devices:
  tap-wan: { kind: tap, ifname: mgxw, netns: mg-x-wan }
  tap-lan: { kind: tap, ifname: mgxl, netns: mg-x-lan }
components:
  - { name: drv-wan, type: nic-driver, devices: { tap: tap-wan } }
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
sessions:
  - { between: [drv-wan.nic, drv-lan.nic] }
`;

function withDebug(debug: string): string {
  return `debug:\n${debug}\n${BASE}`;
}

test('config: debug.fault-injection is off by default, a boolean, and the only key of debug', () => {
  assert.equal(parseConfig(BASE, 'g.yaml', catalog).debug?.faultInjection, false);
  assert.equal(parseConfig(withDebug('  fault-injection: true'), 'g.yaml', catalog).debug?.faultInjection, true);
  assert.equal(parseConfig(withDebug('  fault-injection: false'), 'g.yaml', catalog).debug?.faultInjection, false);
  assert.throws(() => parseConfig(withDebug('  fault-injection: yes please'), 'g.yaml', catalog), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError);
    assert.equal(e.message, 'g.yaml:2: debug.fault-injection: expected true or false (got "yes please")');
    return true;
  });
  assert.throws(() => parseConfig(withDebug('  fault-injections: true'), 'g.yaml', catalog), /^ConfigFileError: g\.yaml:2: debug\.fault-injections: unknown key; expected one of fault-injection$/);
  assert.throws(() => parseConfig('debug: true\n' + BASE, 'g.yaml', catalog), /g\.yaml:1: debug: expected a mapping \(got true\)/);
  assert.throws(() => parseConfig('debugging: {}\n' + BASE, 'g.yaml', catalog), /debugging: unknown key; expected one of .*debug/);
});

test('config: a reload cannot switch fault injection on or off', () => {
  const why = topologyChange(parseConfig(BASE, 'g.yaml', catalog), parseConfig(withDebug('  fault-injection: true'), 'g.yaml', catalog));
  assert.match(why ?? '', /^debug changed: .*restart the gateway/);
});

test('checkFault: 403 when off, 404 unknown component, 400 unknown kind, 409 not running, allocate without a memory limit, hang without a heartbeat, escape-link without a packet device', () => {
  const running = { known: true, state: 'running', memoryLimited: true, heartbeat: true, packetLink: true };
  assert.equal(checkFault(false, 'router', 'throw', running)?.status, 403);
  assert.match(checkFault(false, 'router', 'throw', running)?.message ?? '', /debug: \{ fault-injection: true \}/);
  assert.equal(checkFault(true, 'nope', 'throw', { known: false, state: undefined, memoryLimited: false, heartbeat: false, packetLink: false })?.status, 404);
  for (const bad of ['explode', undefined, 3, ['throw']]) {
    const r = checkFault(true, 'router', bad, running);
    assert.equal(r?.status, 400, String(bad));
    assert.match(r?.message ?? '', /kind must be one of throw, allocate, hang, forbidden-call, escape-link/);
  }
  assert.equal(checkFault(true, 'router', 'throw', { ...running, state: 'restarting' })?.status, 409);
  const noLimit = checkFault(true, 'router', 'allocate', { ...running, memoryLimited: false });
  assert.equal(noLimit?.status, 409);
  assert.equal(noLimit?.code, 'MG_NO_MEMORY_LIMIT');
  const noHeartbeat = checkFault(true, 'router', 'hang', { ...running, heartbeat: false });
  assert.deepEqual([noHeartbeat?.status, noHeartbeat?.code], [409, 'MG_NO_HEARTBEAT']);
  const noLink = checkFault(true, 'router', 'escape-link', { ...running, packetLink: false });
  assert.deepEqual([noLink?.status, noLink?.code], [409, 'MG_NO_PACKET_LINK']);
  assert.equal(checkFault(true, 'router', 'throw', { ...running, heartbeat: false }), undefined);
  for (const kind of FAULT_KINDS) assert.equal(checkFault(true, 'router', kind, running, kind === 'hostile' ? 'null-line' : undefined), undefined);
  assert.equal(checkFault(true, 'router', 'throw', { ...running, memoryLimited: false }), undefined);
});

// The endpoint, on two gateways that were never started (their components are "not started").
let off: ControlServer;
let on: ControlServer;

// mkdtemp's folder is root-only (0700), as the control socket's folder must be.
const dir = mkdtempSync(join(tmpdir(), 'mg-fault-'));

before(async () => {
  off = await startControl(new Init(parseConfig(BASE, 'off.yaml', catalog), { log: () => undefined }), { socket: join(dir, 'off.sock') }, { log: () => undefined });
  on = await startControl(new Init(parseConfig(withDebug('  fault-injection: true'), 'on.yaml', catalog), { log: () => undefined }), { socket: join(dir, 'on.sock') }, { log: () => undefined });
});

after(async () => {
  await off?.close();
  await on?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(s: ControlServer, path: string, body: string, type = 'application/json', method = 'POST'): Promise<{ status: number; body: any }> {
  const r = await new ControlClient({ socket: s.socket }, 3000).request(method, path, undefined, { raw: method === 'GET' ? undefined : body, headers: { 'content-type': type } });
  return { status: r.status, body: JSON.parse(r.body.toString('utf8')) };
}

test('POST /components/NAME/fault: refused with a specific error for every bad request', async () => {
  let r = await post(off, '/components/drv-wan/fault', '{"kind":"throw"}');
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'MG_FAULT_DISABLED');
  assert.match(r.body.error.message, /fault injection is off in this gateway's config/);
  // Off: refused before the body is even looked at.
  assert.equal((await post(off, '/components/drv-wan/fault', 'not json')).status, 403);

  r = await post(on, '/components/drv-wan/fault', '', 'application/json', 'GET');
  assert.equal(r.status, 405);
  assert.match(r.body.error.message, /use POST/);
  r = await post(on, '/components/drv-wan/fault', '{"kind":"throw"}', 'text/plain');
  assert.equal(r.status, 415);
  r = await post(on, '/components/drv-wan/fault', '{"kind":');
  assert.deepEqual([r.status, r.body.error.message], [400, 'the body is not JSON']);
  r = await post(on, '/components/drv-wan/fault', '["throw"]');
  assert.equal(r.status, 400);
  r = await post(on, '/components/drv-wan/fault', '{"kind":"throw","delay":5}');
  assert.deepEqual([r.status, r.body.error.message], [400, 'unknown key "delay" in the body; expected "kind" (and "attack" for kind "hostile")']);
  r = await post(on, '/components/drv-wan/fault', JSON.stringify({ kind: 'x'.repeat(2000) }));
  assert.deepEqual([r.status, r.body.error.message], [400, 'the body is larger than 1024 bytes']);
  r = await post(on, '/components/nope/fault', '{"kind":"throw"}');
  assert.deepEqual([r.status, r.body.error.code], [404, 'MG_NO_COMPONENT']);
  r = await post(on, '/components/%ZZ/fault', '{"kind":"throw"}');
  assert.equal(r.status, 404);
  r = await post(on, '/components/drv-wan/fault', '{"kind":"explode"}');
  assert.deepEqual([r.status, r.body.error.code], [400, 'MG_BAD_FAULT']);
  r = await post(on, '/components/drv-wan/fault', '{}');
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /got nothing/);
  // Known and well-formed, but this gateway never started its components.
  r = await post(on, '/components/drv-wan/fault', '{"kind":"throw"}');
  assert.deepEqual([r.status, r.body.error.code], [409, 'MG_NOT_RUNNING']);
});

/** Run the command without blocking this process (it serves the control API the command talks to). */
function fault(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(BIN, ['fault', ...args], { encoding: 'utf8', timeout: 20_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, out, err });
    });
  });
}

test('microgate fault: usage errors exit 2, a refusal exits 1 with the gateway\'s reason', async () => {
  let r = await fault('--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /fault-injection: true/);
  r = await fault('--kind', 'throw');
  assert.equal(r.code, 2);
  assert.match(r.err, /--component NAME is required/);
  r = await fault('--component', 'router');
  assert.equal(r.code, 2);
  r = await fault('--component', 'router', '--kind', 'boom');
  assert.equal(r.code, 2);
  assert.match(r.err, /--kind must be one of throw, allocate, hang, forbidden-call, escape-link, hostile \(got "boom"\)/);
  r = await fault('--component', 'router', '--kind', 'throw', '--control', off.socket);
  assert.equal(r.code, 1);
  assert.match(r.err, /microgate fault: fault injection is off/);
  // Nothing listening: said plainly (issue 16), not "fetch failed".
  r = await fault('--component', 'router', '--kind', 'throw', '--control', join(dir, 'none.sock'));
  assert.equal(r.code, 1);
  assert.equal(r.err, `microgate fault: no gateway answers on ${join(dir, 'none.sock')}: is it running?\n`);
});
