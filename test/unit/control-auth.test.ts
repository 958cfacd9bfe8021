// The control API's request checks (src/init/control-auth.ts), alone and on a
// real server (src/init/control.ts): peers on the Unix socket by SO_PEERCRED,
// the TCP listener's token, Host and Origin checks, JSON-only changes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkBearer, checkContentType, checkHost, checkOrigin, checkPeer, prepareSocketDir, procGroups, readTokenFile } from '../../src/init/control-auth.ts';
import { parseConfig } from '../../src/init/config.ts';
import { Init } from '../../src/init/init.ts';
import { startControl, type ControlServer } from '../../src/init/control.ts';
import { catalog } from '../../src/cli/catalog.ts';
import { ControlClient } from '../../src/sys/control-client.ts';

const root = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'mg-ctl-'));
// Others may pass through (not list) the test folder, so that each socket's own folder is what stops them.
chmodSync(dir, 0o711);
const TOKEN = 'c0ffee'.repeat(8);

after(() => rmSync(dir, { recursive: true, force: true }));

test('Host: loopback names with the listener port or none; anything else (DNS rebinding) gets 421', () => {
  for (const h of ['localhost:7460', '127.0.0.1:7460', '[::1]:7460', 'localhost', 'LOCALHOST:7460']) assert.equal(checkHost(h, 7460), null, h);
  for (const h of [undefined, '', 'evil.example:7460', 'localhost:7461', 'localhost.evil.example', '127.0.0.1.nip.io:7460', '127.0.0.2:7460', 'localhost:7460@evil', ' localhost:7460']) {
    assert.equal(checkHost(h, 7460)?.status, 421, String(h));
  }
});

test('Origin: any Origin (a web page) is refused', () => {
  assert.equal(checkOrigin(undefined), null);
  for (const o of ['null', 'http://localhost:7460', 'http://127.0.0.1']) assert.equal(checkOrigin(o)?.status, 403, o);
});

test('bearer token: missing, malformed, wrong or a prefix get 401; the right one passes', () => {
  const t = Buffer.from(TOKEN);
  for (const a of [undefined, '', 'Basic Zm9v', `bearer ${TOKEN}`, `Bearer  ${TOKEN}`, `Bearer ${TOKEN} `, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, 'Bearer ']) {
    const r = checkBearer(a, t);
    assert.equal(r?.status, 401, String(a));
    assert.equal(r?.code, 'MG_TOKEN');
  }
  assert.equal(checkBearer(`Bearer ${TOKEN}`, t), null);
});

test('changing requests need application/json; GET and HEAD need nothing', () => {
  assert.equal(checkContentType('GET', undefined), null);
  assert.equal(checkContentType('HEAD', 'text/plain'), null);
  assert.equal(checkContentType('POST', 'application/json'), null);
  assert.equal(checkContentType('POST', 'Application/JSON; charset=utf-8'), null);
  for (const t of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json-seq', 'text/plain; application/json']) {
    assert.equal(checkContentType('POST', t)?.status, 415, String(t));
  }
  assert.equal(checkContentType('PUT', 'text/plain')?.status, 415);
});

test('peers: root, or the admin group as gid or supplementary group; nobody else', () => {
  const nobody = { pid: 1, uid: 65534, gid: 65534 };
  assert.equal(checkPeer({ pid: 1, uid: 0, gid: 0 }, [], undefined), null);
  assert.equal(checkPeer(nobody, [], undefined)?.status, 403);
  assert.equal(checkPeer(nobody, [4242], undefined)?.status, 403, 'no admin group configured');
  assert.equal(checkPeer(nobody, [], 4242)?.status, 403);
  assert.equal(checkPeer(nobody, undefined, 4242)?.status, 403, 'its groups unknown (the process is gone)');
  assert.equal(checkPeer({ ...nobody, gid: 4242 }, [], 4242), null);
  assert.equal(checkPeer(nobody, [100, 4242], 4242), null);
  // The groups are read for the peer's uid only: a reused pid of another user gives nothing.
  assert.ok(Array.isArray(procGroups(process.pid, process.getuid?.() ?? 0)));
  assert.equal(procGroups(process.pid, 54321), undefined);
  assert.equal(procGroups(2 ** 22 + 7, 0), undefined);
});

test('the token file must be root-owned, 0600, no symlink, long enough', { skip: !root && 'needs root (file owners)' }, () => {
  const good = join(dir, 'token');
  writeFileSync(good, `${TOKEN}\n`, { mode: 0o600 });
  assert.deepEqual(readTokenFile(good), Buffer.from(TOKEN));
  const loose = join(dir, 'token-644');
  writeFileSync(loose, TOKEN, { mode: 0o644 });
  chmodSync(loose, 0o644);
  assert.throws(() => readTokenFile(loose), /mode 644; it must be readable by root only/);
  const link = join(dir, 'token-link');
  symlinkSync(good, link);
  assert.throws(() => readTokenFile(link), /not a symlink/);
  const short = join(dir, 'token-short');
  writeFileSync(short, 'abc', { mode: 0o600 });
  assert.throws(() => readTokenFile(short), /32 to 512 printable characters/);
  assert.throws(() => readTokenFile(join(dir, 'none')), /cannot open it \(ENOENT\)/);
});

test('the socket folder: created root-only; an existing one open to others is refused, never changed', { skip: !root && 'needs root' }, () => {
  const fresh = join(dir, 'fresh', 'sub', 'control.sock');
  prepareSocketDir(fresh, undefined);
  assert.equal(statSync(join(dir, 'fresh', 'sub')).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'fresh')).mode & 0o777, 0o755, 'a missing parent is not closed (labs share /run/microgate)');
  const open = join(dir, 'open');
  prepareSocketDir(join(open, 'x.sock'), undefined);
  chmodSync(open, 0o755);
  assert.throws(() => prepareSocketDir(join(open, 'x.sock'), undefined), /mode 755; it must be root-only/);
  assert.equal(statSync(open).mode & 0o777, 0o755, 'left as it was');
  prepareSocketDir(join(dir, 'adm', 'x.sock'), 4242);
  const st = statSync(join(dir, 'adm'));
  assert.deepEqual([st.mode & 0o777, st.gid], [0o750, 4242]);
});

// ---- a real server: an Init that was never started, serving its control API ----

const BASE = `devices:
  tap-lan: { ifname: mgtst0 }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24 }
sessions:
  - { between: [drv-lan.nic, router.lan] }
`;

let tcp: ControlServer;
let sock: ControlServer;
let admin: ControlServer;
const quiet = { log: (): void => undefined };

function newInit(): Init {
  return new Init(parseConfig(BASE, 'ctl.yaml', catalog), quiet);
}

before(async () => {
  if (!root) return;
  const tokenFile = join(dir, 'tcp-token');
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  tcp = await startControl(newInit(), { socket: join(dir, 'tcp', 'control.sock'), tcp: { host: '127.0.0.1', port: 0, tokenFile } }, quiet);
  sock = await startControl(newInit(), { socket: join(dir, 'sock', 'control.sock') }, quiet);
  admin = await startControl(newInit(), { socket: join(dir, 'admin', 'control.sock'), adminGroup: '4242' }, quiet);
});

after(async () => {
  await tcp?.close();
  await sock?.close();
  await admin?.close();
});

test('TCP listener: no token 401, wrong token 401, rebound Host 421, Origin 403, text/plain 415; the token opens it', { skip: !root && 'needs root' }, async () => {
  assert.ok(tcp.port !== undefined && tcp.port > 0);
  const url = `http://127.0.0.1:${tcp.port}`;
  const anon = new ControlClient({ url });
  const authed = new ControlClient({ url, token: TOKEN });
  const code = (r: { body: Buffer }): string => (JSON.parse(r.body.toString('utf8')) as { error: { code: string } }).error.code;
  let r = await anon.request('GET', '/status');
  assert.deepEqual([r.status, code(r)], [401, 'MG_TOKEN']);
  assert.match(String(r.headers['www-authenticate']), /^Bearer/);
  r = await new ControlClient({ url, token: 'x'.repeat(64) }).request('GET', '/trace/pcapng');
  assert.equal(r.status, 401);
  r = await anon.request('GET', '/metrics');
  assert.equal(r.status, 401);
  r = await authed.request('GET', '/status', undefined, { headers: { host: `rebind.example:${tcp.port}` } });
  assert.deepEqual([r.status, code(r)], [421, 'MG_HOST']);
  r = await authed.request('GET', '/status', undefined, { headers: { origin: 'http://rebind.example' } });
  assert.deepEqual([r.status, code(r)], [403, 'MG_ORIGIN']);
  r = await authed.request('POST', '/trace/start', undefined, { raw: '{"capture":"drv-lan.nic"}', headers: { 'content-type': 'text/plain' } });
  assert.deepEqual([r.status, code(r)], [415, 'MG_CONTENT_TYPE']);
  r = await authed.request('POST', '/reload', undefined, { raw: '', headers: { 'content-type': 'text/plain' } });
  assert.equal(r.status, 415);
  const st = await authed.get<{ pid: number; control: { tcp: string; denied: Record<string, number> } }>('/status');
  assert.equal(st.pid, process.pid);
  assert.equal(st.control.tcp, `127.0.0.1:${tcp.port}`);
  assert.deepEqual(st.control.denied, { peer: 0, token: 3, host: 1, origin: 1, 'content-type': 2 });
  const m = await authed.request('GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body.toString('utf8'), /\nmicrogate_control_denied_total\{reason="token"\} 3\n/);
  // The token's socket answers root as well.
  assert.equal((await new ControlClient({ socket: tcp.socket }).request('GET', '/status')).status, 200);
});

test('Unix socket: the folder 0700 and the socket 0600; root is answered; nothing answering is said plainly', { skip: !root && 'needs root' }, async () => {
  assert.equal(statSync(join(dir, 'sock')).mode & 0o777, 0o700);
  assert.equal(statSync(sock.socket).mode & 0o777, 0o600);
  const c = new ControlClient({ socket: sock.socket });
  assert.equal((await c.request('GET', '/status')).status, 200);
  // /reload needs a JSON object body: no body at all is 415, a non-object 400.
  assert.equal((await c.request('POST', '/reload')).status, 415);
  assert.equal((await c.request('POST', '/reload', [])).status, 400);
  await assert.rejects(new ControlClient({ socket: join(dir, 'sock', 'none.sock') }).get('/status'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'MG_UNREACHABLE');
    assert.equal(e.message, `no gateway answers on ${join(dir, 'sock', 'none.sock')}: is it running?`);
    return true;
  });
});

/** curl over the Unix socket as uid/gid 65534 with the given supplementary groups: [exit code, HTTP status, body]. */
function curlAs(socket: string, groups: string[], path = '/status'): Promise<[number, string]> {
  const cred = ['--reuid', '65534', '--regid', '65534', ...(groups.length === 0 ? ['--clear-groups'] : ['--groups', groups.join(',')])];
  return new Promise((resolveP) => {
    execFile('setpriv', [...cred, 'curl', '-s', '-m', '5', '-w', '\n%{http_code}', '--unix-socket', socket, `http://localhost${path}`], (e, out) => {
      resolveP([e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out]);
    });
  });
}

test('Unix socket: uid 65534 cannot connect; if the folder were opened, SO_PEERCRED still refuses it (403, counted)', { skip: !root && 'needs root' }, async () => {
  const [code] = await curlAs(sock.socket, []);
  assert.equal(code, 7, 'curl: could not connect (the folder is root-only)');
  // Open the folder and the socket to everyone: only the peer check is left.
  chmodSync(join(dir, 'sock'), 0o755);
  chmodSync(sock.socket, 0o666);
  try {
    const [c2, out] = await curlAs(sock.socket, []);
    assert.equal(c2, 0);
    assert.match(out, /"code": "MG_FORBIDDEN"[\s\S]*uid 65534 \(gid 65534\) may not use the control API[\s\S]*\n403$/);
    assert.equal(sock.denied.peer, 1);
    // GET /metrics is behind the same check (issue 16).
    const [c3, out3] = await curlAs(sock.socket, [], '/metrics');
    assert.equal(c3, 0);
    assert.match(out3, /"code": "MG_FORBIDDEN"[\s\S]*\n403$/);
    assert.equal(sock.denied.peer, 2);
  } finally {
    chmodSync(join(dir, 'sock'), 0o700);
    chmodSync(sock.socket, 0o600);
  }
});

test('admin group: its members are answered, others cannot connect', { skip: !root && 'needs root' }, async () => {
  assert.equal(statSync(admin.socket).mode & 0o777, 0o660);
  assert.equal(statSync(admin.socket).gid, 4242);
  const [code, out] = await curlAs(admin.socket, ['4242']);
  assert.equal(code, 0);
  assert.match(out, new RegExp(`"pid": ${process.pid},[\\s\\S]*\\n200$`));
  assert.equal((await curlAs(admin.socket, []))[0], 7);
  assert.equal((await curlAs(admin.socket, ['4243']))[0], 7);
  // An admin-group member reads GET /metrics (the Prometheus text), a stranger cannot connect.
  const [mc, mout] = await curlAs(admin.socket, ['4242'], '/metrics');
  assert.equal(mc, 0);
  assert.match(mout, /^# HELP microgate_component_up [\s\S]*\n200$/);
  assert.equal((await curlAs(admin.socket, [], '/metrics'))[0], 7);
  assert.equal(admin.denied.peer, 0);
});
