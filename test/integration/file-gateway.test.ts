// The file publication end to end, in one lab (`lab up --file-gateway`):
// curl on the wan host reaches the file gateway only through the gateway's
// port forward (https://198.19.0.1); the service runs sandboxed in the dmz
// namespace and reads the NAS (nginx WebDAV on the lan host) through the one
// rule dmz -> 198.18.0.2:8443. Users and publications are made with the
// `microgate users|publish --lab` commands, files put on the NAS with WebDAV
// PUT from the lan host. A headless Chromium (playwright-core driving the
// Debian chromium binary inside the wan namespace) logs in, sees the list,
// downloads and logs out. init supervises the service (the lab's gateway
// config declares it under `services`): the audit finds it within its grants,
// and after a SIGKILL init restarts it and the public URL works again. Login
// delays hit only the failing (account, source), once-links are used up when
// the download starts, TLS offers only ECDHE + AEAD on 1.2. Every
// response of the suite is checked for internal addresses and names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, createWriteStream, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { labControl, labDown, labUp, readLabState } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { parsePrometheus, value } from '../fixtures/prom-parse.ts';
import { initService } from '../../src/lab/file-gateway-lab.ts';
import type { FileGatewayLabPlan } from '../../src/lab/lab-plan.ts';
import { ROOT } from '../../src/init/sandbox.ts';
import { canRunLabs, nsExec, uniqueLabName } from './harness.ts';

const tools = ['nginx', 'curl', 'openssl'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const skip = !canRunLabs() ? 'needs root' : !tools ? 'needs nginx, curl and openssl (scripts/setup.sh)' : false;
const CHROMIUM = '/usr/bin/chromium';

const LAB = uniqueLabName();
const PW = 'correct horse battery';
const BIG_MB = 200;
let f: FileGatewayLabPlan;
let wan: string;
let lan: string;
let dmz: string;
let servicePid: number;
let control: ControlClient;
let stateDir: string;
let tmp: string;
let bigSha = '';
const responses: string[] = [];
const pub: Record<string, { id: string; link: string; publicLink: string | null }> = {};

function cli(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(ROOT, 'src/cli/main.ts'), ...args, '--lab', LAB], { input, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function publish(key: string, path: string, ...opts: string[]): void {
  const r = cli(['publish', 'add', path, '--json', ...opts]);
  assert.equal(r.code, 0, r.stderr);
  pub[key] = JSON.parse(r.stdout) as { id: string; link: string; publicLink: string | null };
}

interface Got { status: number; headers: string; body: string }

/** curl on the wan host; records everything it received. */
async function wanCurl(url: string, args: string[] = [], jar?: string): Promise<Got> {
  const hdr = join(tmp, `h-${randomBytes(4).toString('hex')}`);
  const r = await nsExec(wan, 'curl', ['-sk', '-m', '20', '-D', hdr, ...(jar === undefined ? [] : ['-c', jar, '-b', jar]), ...args, url]);
  const headers = existsSync(hdr) ? readFileSync(hdr, 'utf8') : '';
  rmSync(hdr, { force: true });
  responses.push(headers + r.stdout);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/m.exec(headers.split(/\r?\n\r?\n/).filter((b) => b.trim() !== '').at(-1) ?? '')?.[1] ?? 0);
  return { status, headers, body: r.stdout };
}

async function login(user: string, password: string): Promise<{ res: Got; jar: string }> {
  const jar = join(tmp, `jar-${randomBytes(4).toString('hex')}`);
  const page = await wanCurl(`${f.publicUrl}/login`, [], jar);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  const res = await wanCurl(`${f.publicUrl}/login`, ['--data-urlencode', `csrf=${csrf}`, '--data-urlencode', `user=${user}`, '--data-urlencode', `password=${password}`], jar);
  return { res, jar };
}

/** Wait until publication `key` has expired (its expiry from publications.json, plus a margin). */
async function waitExpired(key: string): Promise<void> {
  const file = JSON.parse(readFileSync(join(f.etcDir, 'publications.json'), 'utf8')) as { publications: { id: string; expires: string | null }[] };
  const exp = Date.parse(file.publications.find((p) => p.id === pub[key].id)!.expires!);
  await new Promise((r) => setTimeout(r, Math.max(0, exp + 150 - Date.now())));
}

function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'mg-fgw-it-'));
  chmodSync(tmp, 0o755);
  await labUp({ name: LAB, gateway: 'microgate', fileGateway: true });
  const st = (await readLabState(LAB))!;
  f = st.plan.fileGateway!;
  wan = st.plan.hosts.wan.netns;
  lan = st.plan.hosts.lan.netns;
  dmz = st.plan.hosts.dmz.netns;
  servicePid = st.processes.find((p) => p.name === 'file-gateway')!.pid;
  control = labControl(st);
  stateDir = st.plan.stateDir;
  // The wan host routes the inside prefixes at the gateway, so only the policy keeps it out.
  assert.equal((await nsExec(wan, 'ip', ['route', 'add', '198.18.0.0/16', 'via', st.plan.gatewayAddresses.wan])).code, 0);
  for (const [u, pw] of [['alice', PW], ['bob', PW]]) assert.equal(cli(['users', 'add', u, '--password-stdin'], `${pw}\n`).code, 0);
  // Files onto the network drive the way a lan user puts them there: WebDAV PUT.
  const writePw = readFileSync(f.nas.writePasswordFile, 'utf8').trim();
  for (const [name, text] of [['docs/report.txt', 'the quarterly report\n'], ['docs/secret.txt', 'never published\n'], ['docs/removed.txt', 'withdrawn\n']]) {
    writeFileSync(join(tmp, 'up'), text);
    const r = await nsExec(lan, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(f.nas.dir, 'nas.crt'), '-u', `${f.nas.writeUser}:${writePw}`, '-T', join(tmp, 'up'), `${f.nas.url}${name}`]);
    assert.equal(r.stdout, '201', `PUT ${name}`);
  }
  // The big file is written straight into the share (same bytes, faster than a PUT of 200 MB).
  const big = createWriteStream(join(f.nas.shareDir, 'big.bin'));
  const h = createHash('sha256');
  for (let i = 0; i < BIG_MB; i++) {
    const chunk = randomBytes(1 << 20);
    h.update(chunk);
    if (!big.write(chunk)) await once(big, 'drain');
  }
  big.end();
  await once(big, 'finish');
  bigSha = h.digest('hex');
  chownSync(join(f.nas.shareDir, 'big.bin'), Number(spawnSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).stdout.trim()), -1);
  symlinkSync('/etc/passwd', join(f.nas.shareDir, 'link-out.txt'));
  publish('report', 'docs/report.txt');
  publish('big', 'big.bin', '--users', 'alice');
  publish('bobs', 'docs/report.txt', '--users', 'bob');
  publish('removed', 'docs/removed.txt');
  publish('expiring', 'docs/report.txt', '--expires', '3s');
  publish('linkout', 'link-out.txt', '--no-check');
  assert.equal(cli(['publish', 'remove', pub.removed.id]).code, 0);
  await new Promise((r) => setTimeout(r, 1200)); // the service re-reads publications.json (500 ms)
});

after(async () => {
  if (skip) return;
  try {
    await labDown(LAB);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('the lab state and the NAS share are not world-readable: others may not even pass through', { skip }, () => {
  for (const d of [dirname(f.dir), f.dir, f.nas.dir, f.nas.shareDir]) assert.equal(statSync(d).mode & 0o007, 0, `${d}: mode ${(statSync(d).mode & 0o777).toString(8)}`);
});

test('placement: http redirects to https; without a session everything goes to /login; the dmz host is not reachable from the wan; the dmz reaches the NAS and nothing else of the lan', { skip }, async () => {
  const http = await wanCurl(`http://${f.publicIp}/f/${pub.report.id}`);
  assert.equal(http.status, 301);
  assert.match(http.headers, new RegExp(`^location: ${f.publicUrl}/f/${pub.report.id}\\r?$`, 'mi'));
  for (const path of ['/', `/f/${pub.report.id}`, '/f/AAAAAAAAAAAAAAAAAAAAAA']) {
    const r = await wanCurl(`${f.publicUrl}${path}`);
    assert.equal(r.status, 303, path);
    assert.match(r.headers, /^location: \/login\r?$/mi);
  }
  const direct = await nsExec(wan, 'curl', ['-sk', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `https://${f.service.ip}:${f.service.httpsPort}/`]);
  assert.equal(direct.stdout, '000', 'the dmz host itself is not reachable from the wan');
  const nas = await nsExec(wan, 'curl', ['-sk', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', f.nas.url]);
  assert.equal(nas.stdout, '000', 'nor is the NAS');
  const fromDmz = await nsExec(dmz, 'curl', ['-sk', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', f.nas.url]);
  assert.equal(fromDmz.stdout, '401', 'the dmz reaches the NAS (which wants its password)');
  const other = await nsExec(dmz, 'curl', ['-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${f.nas.ip}:22/`]);
  assert.equal(other.stdout, '000', 'and no other port of the lan');
});

test('login, the list, downloads with Range and If-None-Match; the service is sandboxed', { skip }, async () => {
  const { res, jar } = await login('alice', PW);
  assert.equal(res.status, 303);
  assert.match(res.headers, /^set-cookie: __Host-mgfs=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict\r?$/mi);
  const list = await wanCurl(`${f.publicUrl}/`, [], jar);
  assert.equal(list.status, 200);
  assert.ok(list.body.includes(pub.report.id) && list.body.includes(pub.big.id), 'her files are listed');
  assert.ok(!list.body.includes(pub.bobs.id), "bob's are not");
  assert.match(list.body, /200 MB|210 MB/);
  const doc = await wanCurl(`${f.publicUrl}/f/${pub.report.id}/report.txt`, [], jar);
  assert.equal(doc.status, 200);
  assert.equal(doc.body, 'the quarterly report\n');
  assert.match(doc.headers, /^content-disposition: attachment; filename="report.txt"/mi);
  assert.match(doc.headers, /^content-type: text\/plain; charset=utf-8/mi);
  const etag = /^etag: (".*")\r?$/mi.exec(doc.headers)![1];
  const part = await wanCurl(`${f.publicUrl}/f/${pub.report.id}`, ['-H', 'Range: bytes=4-12'], jar);
  assert.equal(part.status, 206);
  assert.equal(part.body, 'quarterly');
  assert.match(part.headers, /^content-range: bytes 4-12\/21\r?$/mi);
  assert.equal((await wanCurl(`${f.publicUrl}/f/${pub.report.id}`, ['-H', `If-None-Match: ${etag}`], jar)).status, 304);
  // The service: its own uid, no_new_privs, seccomp, Node's permission model, in the dmz namespace.
  const status = readFileSync(`/proc/${servicePid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${f.uid}\\s+${f.uid}\\s+${f.uid}\\s+${f.uid}$`, 'm'));
  assert.match(status, /^NoNewPrivs:\s+1$/m);
  assert.match(status, /^Seccomp:\s+2$/m);
  assert.match(status, /^CapEff:\s+0+$/m);
  const cmdline = readFileSync(`/proc/${servicePid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.includes('--permission') && cmdline.includes(`--allow-fs-write=${f.stateDir}/`));
  assert.ok(!cmdline.some((a) => a.startsWith('--allow-fs-write=') && a !== `--allow-fs-write=${f.stateDir}/`));
  const audit = readFileSync(join(f.stateDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(audit.some((e) => e.event === 'download' && e.user === 'alice' && e.result === 'ok' && e.bytes === 9 && e.from === '198.19.0.2' && e.range === '4-12'));
  // init counts the audit log's records for GET /metrics (issue 16), read here by the reference Prometheus parser.
  const m = await control.request('GET', '/metrics');
  assert.equal(m.status, 200);
  const fams = parsePrometheus(m.body.toString('utf8'));
  const ev = (event: string, result: string): number => value(fams, 'microgate_service_events_total', { service: 'file-gateway', event, result }) ?? 0;
  assert.ok(ev('download', 'ok') >= 2, 'two downloads');
  assert.ok(ev('download', 'not-modified') >= 1);
  assert.ok(ev('login', 'ok') >= 1);
  assert.equal(value(fams, 'microgate_service_events_rejected_total', { service: 'file-gateway' }), 0);
});

test(`a ${BIG_MB} MB file arrives byte-exact through wan -> gateway -> dmz -> NAS, streamed with bounded memory`, { skip }, async () => {
  const { jar } = await login('alice', PW);
  const before = rssKb(servicePid);
  let peak = before;
  const sampler = setInterval(() => { peak = Math.max(peak, rssKb(servicePid)); }, 50);
  const t0 = performance.now();
  const r = await nsExec(wan, 'sh', ['-c', `curl -sk -f -b '${jar}' '${f.publicUrl}/f/${pub.big.id}' | sha256sum`], { timeoutMs: 120_000 });
  const s = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split(' ')[0], bigSha);
  process.stderr.write(`# ${BIG_MB} MB in ${s.toFixed(1)} s (${(BIG_MB * 1.048576 / s).toFixed(0)} MB/s), service RSS ${Math.round(before / 1024)} -> peak ${Math.round(peak / 1024)} MiB\n`);
  // Streaming, not buffering: the service may grow by GC slack and socket buffers
  // (seen here: 38-69 MiB, depending on when V8 collects), never by the file.
  assert.ok(peak - before < (BIG_MB / 2) * 1024, `the service grew by ${Math.round((peak - before) / 1024)} MiB while streaming ${BIG_MB} MB`);
  const ranged = await nsExec(wan, 'sh', ['-c', `curl -sk -f -b '${jar}' -H 'Range: bytes=100000000-100000015' '${f.publicUrl}/f/${pub.big.id}' | od -An -tx1 | tr -d ' \\n'`]);
  const want = Buffer.alloc(16);
  const fd = openSync(join(f.nas.shareDir, 'big.bin'), 'r');
  readSync(fd, want, 0, 16, 100_000_000);
  closeSync(fd);
  assert.equal(ranged.stdout, want.toString('hex'));
});

test('unpublished, withdrawn, expired, another user\'s and symlinked-outside files answer exactly like never-existing ones', { skip }, async () => {
  const { jar } = await login('alice', PW);
  await waitExpired('expiring');
  const never = await wanCurl(`${f.publicUrl}/f/AAAAAAAAAAAAAAAAAAAAAA`, [], jar);
  assert.equal(never.status, 404);
  for (const key of ['removed', 'expiring', 'bobs', 'linkout']) {
    const r = await wanCurl(`${f.publicUrl}/f/${pub[key].id}/x`, [], jar);
    assert.equal(r.status, 404, key);
    assert.equal(r.body, never.body, key);
    assert.ok(!r.body.includes('root:'), key);
  }
});

test('traversal in every spelling never reaches a file outside the published set', { skip }, async () => {
  const { jar } = await login('alice', PW);
  const id = pub.report.id;
  for (const path of [
    '/f/../../etc/passwd', `/f/${id}/../../docs/secret.txt`, '/f/%2e%2e/%2e%2e/docs/secret.txt', `/f/${id}%2f..%2fdocs%2fsecret.txt`,
    '/f/..%5c..%5cdocs%5csecret.txt', '/f/..\\..\\docs\\secret.txt', '//etc/passwd', '/share/docs/secret.txt', '/docs/secret.txt',
    '/%2e%2e/%2e%2e/etc/passwd', '/f/link-out.txt', '/p/..%2f..%2fetc%2fpasswd',
  ]) {
    const r = await wanCurl(`${f.publicUrl}${path}`, ['--path-as-is'], jar);
    assert.ok(!r.body.includes('never published') && !r.body.includes('root:'), path);
    assert.ok(r.status === 404 || r.status === 400 || r.body === 'the quarterly report\n', `${path}: ${r.status}`);
  }
});

test('brute force: failures from the wan delay bob only from there (growing, Retry-After); bob from another source logs in at once', { skip }, async () => {
  // One POST per attempt, each with the form token of the previous answer, so
  // the right password comes right after the last failure (the first delay is 1 s).
  const jar = join(tmp, `jar-${randomBytes(4).toString('hex')}`);
  let page = await wanCurl(`${f.publicUrl}/login`, [], jar);
  const post = async (password: string): Promise<Got> => {
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    page = await wanCurl(`${f.publicUrl}/login`, ['--data-urlencode', `csrf=${csrf}`, '--data-urlencode', 'user=bob', '--data-urlencode', `password=${password}`], jar);
    return page;
  };
  for (let i = 0; i < 4; i++) assert.equal((await post('not the password')).status, 401, `failure ${i + 1}`);
  const r = await post(PW);
  assert.equal(r.status, 429, 'the wan source waits for bob, even with the right password');
  assert.match(r.headers, /^retry-after: \d+/mi);
  // bob from the lan (another source, straight to the service) is not affected.
  const lanJar = join(tmp, `jar-${randomBytes(4).toString('hex')}`);
  const lanUrl = `https://${f.service.ip}:${f.service.httpsPort}`;
  const lanPage = await nsExec(lan, 'curl', ['-sk', '-m', '20', '-c', lanJar, '-b', lanJar, `${lanUrl}/login`]);
  const csrf = /name="csrf" value="([^"]+)"/.exec(lanPage.stdout)?.[1] ?? '';
  const lanLogin = await nsExec(lan, 'curl', ['-sk', '-m', '20', '-o', '/dev/null', '-w', '%{http_code}', '-c', lanJar, '-b', lanJar,
    '--data-urlencode', `csrf=${csrf}`, '--data-urlencode', 'user=bob', '--data-urlencode', `password=${PW}`, `${lanUrl}/login`]);
  assert.equal(lanLogin.stdout, '303', 'bob logs in from the lan at once');
  assert.equal((await login('alice', PW)).res.status, 303, 'alice from the wan is not delayed');
  const audit = readFileSync(join(f.stateDir, 'audit.jsonl'), 'utf8');
  assert.match(audit, /"event":"login","result":"delayed-account-source","user":"bob","from":"198\.19\.0\.2"/);
});

test('once: a download broken off is used up; of two racing requests exactly one gets the file', { skip }, async () => {
  publish('onceBig', 'big.bin', '--once', '--users', 'alice');
  publish('onceRace', 'docs/report.txt', '--once', '--users', 'alice');
  await new Promise((r) => setTimeout(r, 1200)); // re-read by the service
  const { jar } = await login('alice', PW);
  // head closes the pipe after 1 MB: curl aborts the download.
  const cut = await nsExec(wan, 'sh', ['-c', `curl -sk -b '${jar}' '${f.publicUrl}/f/${pub.onceBig.id}' | head -c 1000000 | wc -c`]);
  assert.equal(cut.stdout.trim(), '1000000');
  assert.equal((await wanCurl(`${f.publicUrl}/f/${pub.onceBig.id}`, ['-o', '/dev/null'], jar)).status, 404, 'cannot be repeated');
  const [a, b] = await Promise.all([wanCurl(`${f.publicUrl}/f/${pub.onceRace.id}`, [], jar), wanCurl(`${f.publicUrl}/f/${pub.onceRace.id}`, [], jar)]);
  assert.deepEqual([a.status, b.status].sort(), [200, 404]);
  assert.equal((a.status === 200 ? a : b).body, 'the quarterly report\n');
});

test('TLS through the port forward: CBC-SHA1 and TLS 1.1 refused, ECDHE+AEAD on 1.2 and TLS 1.3 accepted', { skip }, async () => {
  const cipher = async (args: string[]): Promise<string | null> => {
    const r = await nsExec(wan, 'sh', ['-c', `openssl s_client -connect ${f.publicIp}:443 ${args.join(' ')} </dev/null 2>/dev/null`]);
    const m = /Cipher is (\S+)/.exec(r.stdout);
    return r.code === 0 && m !== null && m[1] !== '(NONE)' ? m[1] : null;
  };
  assert.equal(await cipher(['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA']), null);
  assert.equal(await cipher(['-tls1_1']), null);
  assert.equal(await cipher(['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256']), 'ECDHE-ECDSA-AES128-GCM-SHA256');
  assert.match(await cipher(['-tls1_3']) ?? '', /^TLS_/);
});

test('public link: downloads without an account, then expires', { skip }, async () => {
  publish('public', 'docs/report.txt', '--public-link', '--expires', '3s');
  await new Promise((r) => setTimeout(r, 1200)); // re-read by the service
  const url = pub.public.publicLink!;
  assert.match(url, new RegExp(`^${f.publicUrl}/p/[A-Za-z0-9_-]{43}/report.txt$`));
  const r = await wanCurl(url);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'the quarterly report\n');
  await waitExpired('public');
  assert.equal((await wanCurl(url)).status, 404);
});

test('a real browser: log in, see the list, download, log out', { skip: skip || (!existsSync(CHROMIUM) ? 'needs the Debian chromium package' : false) }, async () => {
  const { chromium } = await import('playwright-core');
  const wrapper = join(tmp, 'chromium-in-wan.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${wan} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  const browser = await chromium.launch({ executablePath: wrapper, headless: true, timeout: 60_000 });
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('response', async (resp) => {
      try { responses.push(JSON.stringify(await resp.allHeaders()) + (resp.request().resourceType() === 'document' ? await resp.text() : '')); } catch { /* a download's body */ }
    });
    await page.goto(`${f.publicUrl}/`);
    assert.equal(page.url(), `${f.publicUrl}/login`);
    await page.fill('#user', 'alice');
    await page.fill('#password', PW);
    await Promise.all([page.waitForURL(`${f.publicUrl}/`), page.click('button[type=submit]')]);
    const rows = page.locator('tbody tr');
    assert.ok(await rows.count() >= 2);
    const row = rows.filter({ hasText: 'report.txt' }).first();
    const [download] = await Promise.all([page.waitForEvent('download'), row.locator('a.button').click()]);
    assert.equal(download.suggestedFilename(), 'report.txt');
    assert.equal(readFileSync((await download.path())!, 'utf8'), 'the quarterly report\n');
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === '__Host-mgfs');
    assert.ok(session !== undefined && session.httpOnly && session.secure && session.sameSite === 'Strict');
    await Promise.all([page.waitForURL(`${f.publicUrl}/login`), page.click('header button')]);
    await page.goto(`${f.publicUrl}/`);
    assert.equal(page.url(), `${f.publicUrl}/login`, 'logged out');
  } finally {
    await browser.close();
  }
});

test('init supervises the service: the audit finds it within its grants; SIGKILL -> restarted, sessions gone, the public URL works again', { skip }, async () => {
  const audit = cli(['audit', '--json']);
  const body = JSON.parse(audit.stdout) as { ok: boolean; services: { service: string; uid: number; netns: { name: string; configured: boolean }; permission: string[]; sockets: { listening: number; stdio: number }; violations: string[] }[] };
  const a = body.services.find((x) => x.service === 'file-gateway');
  assert.ok(a !== undefined, `the audit lists the service: ${audit.stdout.slice(0, 500)}`);
  assert.deepEqual(a.violations, []);
  assert.equal(audit.code, 0);
  assert.equal(body.ok, true);
  assert.equal(a.uid, f.uid);
  assert.deepEqual(a.netns, { ...a.netns, name: dmz, configured: true });
  assert.ok(a.permission.includes(`--allow-fs-write=${f.stateDir}/`) && a.permission.includes('--allow-net'));
  assert.equal(a.sockets.listening, 2, 'https and the redirect');

  const { jar } = await login('alice', PW);
  const before = (await initService(control))!;
  assert.equal(before.state, 'running');
  assert.equal(before.pid, servicePid);
  assert.equal(before.memoryLimitMb, 512);
  assert.ok(before.memoryBytes !== undefined && before.memoryBytes > 0, 'its memory cgroup accounts for it');
  assert.match(readFileSync(`/proc/${before.pid}/cgroup`, 'utf8'), /microgate\.\d+\/svc-file-gateway/);
  process.kill(before.pid, 'SIGKILL');
  let after = before;
  const t0 = Date.now();
  while (Date.now() - t0 < 15_000 && !(after.state === 'running' && after.pid !== before.pid)) {
    await new Promise((r) => setTimeout(r, 100));
    after = (await initService(control)) ?? after;
  }
  assert.ok(after.state === 'running' && after.pid !== before.pid, `restarted: ${JSON.stringify(after)}`);
  assert.match(after.lastExit, /^signal SIGKILL at /);
  assert.equal(after.restarts, before.restarts + 1);
  process.stderr.write(`# file gateway back (healthy) ${Date.now() - t0} ms after SIGKILL\n`);
  // init writes its log itself (microgate run --log, rotating): the restart is in gateway.log.
  const gwLog = readFileSync(join(stateDir, 'gateway.log'), 'utf8');
  assert.match(gwLog, /init: ready: /);
  assert.match(gwLog, /\[file-gateway\] /);
  assert.match(gwLog, /init: service file-gateway \(pid \d+\) ended \(signal SIGKILL\); restarting/);
  servicePid = after.pid;
  assert.equal((await wanCurl(`${f.publicUrl}/`, [], jar)).status, 303, 'sessions live in the service: they ended with it');
  const again = await login('alice', PW);
  assert.equal(again.res.status, 303);
  const doc = await wanCurl(`${f.publicUrl}/f/${pub.report.id}/report.txt`, [], again.jar);
  assert.equal(doc.status, 200);
  assert.equal(doc.body, 'the quarterly report\n');
});

test('no response of the suite names an internal address, host, path or the software', { skip }, () => {
  assert.ok(responses.length > 30, `${responses.length} responses recorded`);
  const all = responses.join('\n');
  // (Only strings that cannot turn up by chance in the random base64url tokens.)
  const host = hostname();
  for (const bad of ['198.18.', f.nas.dir, 'share/', 'docs/', 'secret.txt', 'nginx', 'www-data', `mg-${LAB}`, ...(host.length >= 8 ? [host] : []), 'Node.js', 'node:', 'X-Powered-By', '\nServer:', '\nserver:']) {
    assert.ok(!all.includes(bad), `a response contains ${JSON.stringify(bad)}`);
  }
});
