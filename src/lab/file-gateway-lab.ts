// `lab up --file-gateway`: the paper's file publication, built in a lab.
//
//   wan host ── gateway ─┬─ lan: NAS = nginx (WebDAV, https 198.18.0.2:8443, share /share/)
//                        └─ dmz: file-gateway service (https 198.18.128.2:8443, http :8080 -> https)
//
//   policy  wan -> gateway 198.19.0.1:443 forwarded to dmz:8443, :80 to dmz:8080;
//           dmz -> lan only TCP 198.18.0.2:8443 (the NAS); nothing else of the lan.
//
// The NAS runs in the lan host's namespace on the lan host's address (the
// lab's lan segment is one host). Its nginx config, TLS key, htpasswd files
// and the share live in STATE/file-gateway/nas; two NAS accounts: `filegw`
// may only read (GET, HEAD, PROPFIND, OPTIONS), `lanuser` may also write
// (PUT, MKCOL, ...: how lan users put files on the drive). The file gateway's
// config, certificate, users and publications live in STATE/file-gateway/etc
// (root, group = the service's gid, 0750/0640: the service reads them,
// `microgate users|publish --lab NAME` writes them), its own state in
// STATE/file-gateway/state (the service's uid, 0700).
//
// With the microgate gateway the service is not started here: the lab's
// gateway config declares it (`services`, fileGatewayServiceYaml) and init
// starts, health-checks, restarts, audits and stops it; the lab only waits
// until init reports it healthy. With the Linux gateway (no init) the lab
// starts it itself, sandboxed the same way, and stops it by PID.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { CODE_DIR } from '../init/sandbox.ts';
import { loadFileGatewayConfig } from '../services/file-gateway/config.ts';
import { serviceCommand } from '../services/file-gateway/launch.ts';
import { writeJsonAtomic } from '../services/file-gateway/json-file.ts';
import { PUBLICATIONS_FILE, USERS_FILE } from '../services/file-gateway/service.ts';
import { nsExec } from './netns.ts';
import type { ControlClient } from '../sys/control-client.ts';
import type { FileGatewayLabPlan, LabPlan, RouterSection } from './lab-plan.ts';


export const NAS_PORT = 8443;
export const SERVICE_HTTPS_PORT = 8443;
export const SERVICE_HTTP_PORT = 8080;

export function fileGatewayPlan(plan: LabPlan): FileGatewayLabPlan {
  const dir = join(plan.stateDir, 'file-gateway');
  const nasDir = join(dir, 'nas');
  const nasIp = plan.hosts.lan.ip;
  return {
    dir,
    etcDir: join(dir, 'etc'),
    stateDir: join(dir, 'state'),
    configFile: join(dir, 'etc', 'file-gateway.yaml'),
    logFile: join(dir, 'file-gateway.log'),
    uid: plan.uidBase + 15,
    nas: {
      netns: plan.hosts.lan.netns, ip: nasIp, port: NAS_PORT, dir: nasDir, shareDir: join(nasDir, 'root', 'share'),
      url: `https://${nasIp}:${NAS_PORT}/share/`, readUser: 'filegw', writeUser: 'lanuser', writePasswordFile: join(nasDir, 'lanuser.password'),
    },
    service: { netns: plan.hosts.dmz.netns, ip: plan.hosts.dmz.ip, httpsPort: SERVICE_HTTPS_PORT, httpPort: SERVICE_HTTP_PORT },
    publicUrl: `https://${plan.gatewayAddresses.wan}`,
    publicIp: plan.gatewayAddresses.wan,
  };
}

type Rule = Record<string, unknown>;

/**
 * The lab policy with what the file gateway needs (each added only if the
 * policy does not say it already): the forwards wan:443 -> dmz:8443 and
 * wan:80 -> dmz:8080, and dmz -> the NAS's TCP port in the lan.
 */
export function withFileGatewayRouter(router: RouterSection, plan: LabPlan): RouterSection {
  const f = plan.fileGateway;
  if (f === undefined) return router;
  const domains = { ...(router.domains as Record<string, Rule>) };
  const wan = { ...(domains.wan ?? {}) };
  const fwd = [...((wan['tcp-forward'] as Rule[] | undefined) ?? [])];
  const want = [
    { port: 443, to: 'dmz', host: f.service.ip, 'host-port': f.service.httpsPort },
    { port: 80, to: 'dmz', host: f.service.ip, 'host-port': f.service.httpPort },
  ];
  for (const w of want) {
    const same = fwd.find((r) => r.port === w.port);
    if (same === undefined) fwd.push(w);
    else if (same.host !== w.host || (same['host-port'] ?? same.port) !== w['host-port']) {
      throw new Error(`the lab policy forwards wan port ${w.port} elsewhere (${JSON.stringify(same)}); the file gateway needs it to ${w.host}:${w['host-port']}`);
    }
  }
  wan['tcp-forward'] = fwd;
  domains.wan = wan;
  const dmz = { ...(domains.dmz ?? {}) };
  const tcp = [...((dmz.tcp as Rule[] | undefined) ?? [])];
  const nasDst = `${f.nas.ip}/32`;
  const has = tcp.some((r) => (r.dst === nasDst || r.dst === f.nas.ip) && r.to === 'lan' && Array.isArray(r.ports) && r.ports.includes(f.nas.port));
  if (!has) tcp.push({ dst: nasDst, ports: [f.nas.port], to: 'lan' });
  dmz.tcp = tcp;
  domains.dmz = dmz;
  return { ...router, domains };
}

// ---- building it -----------------------------------------------------------------

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A self-signed certificate (EC P-256, 30 days) for `ip`, written as crt/key. */
function selfSigned(crt: string, key: string, cn: string, ip: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-subj', `/CN=${cn}`, '-addext', `subjectAltName=IP:${ip}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-keyout', key, '-out', crt]);
}

function htpasswd(user: string, password: string): string {
  return `${user}:${openssl(['passwd', '-6', '-stdin'], `${password}\n`).trim()}\n`;
}

export function nginxConfig(f: FileGatewayLabPlan): string {
  const d = f.nas.dir;
  return `# The lab's NAS: a WebDAV share served by nginx (generated by microgate lab up --file-gateway).
user www-data www-data;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log;
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log ${d}/access.log;
  client_body_temp_path ${d}/tmp/body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  server {
    listen ${f.nas.ip}:${f.nas.port} ssl;
    ssl_certificate ${d}/nas.crt;
    ssl_certificate_key ${d}/nas.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${d}/root;
    location /share/ {
      auth_basic "share";
      auth_basic_user_file ${d}/readers.htpasswd;
      disable_symlinks on from=$document_root;
      autoindex off;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
      limit_except GET HEAD PROPFIND OPTIONS {
        auth_basic "share (write)";
        auth_basic_user_file ${d}/writers.htpasswd;
      }
    }
    location / { return 404; }
  }
}
`;
}

export function fileGatewayConfigYaml(f: FileGatewayLabPlan): string {
  return `# The lab's file gateway (generated by microgate lab up --file-gateway); see src/services/file-gateway/README.md.
listen: ${f.service.ip}:${f.service.httpsPort}
redirect-listen: ${f.service.ip}:${f.service.httpPort}
public-url: ${f.publicUrl}
tls: { cert: tls.crt, key: tls.key }
storage:
  kind: webdav
  url: ${f.nas.url}
  ca: nas-ca.crt
  user: ${f.nas.readUser}
  password-file: nas.password
data-dir: .
state-dir: ${f.stateDir}
`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(file: string, n = 8): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function startDetached(file: string, args: string[], logFile: string): number {
  const log = openSync(logFile, 'a');
  const child = spawn(file, args, { detached: true, stdio: ['ignore', log, log], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  return child.pid;
}

function wwwDataGid(): number {
  return Number(execFileSync('id', ['-g', 'www-data'], { encoding: 'utf8' }).trim());
}

/** Write the NAS's files (nginx config, certificate, accounts, share) and the file gateway's side of its account. */
function writeNasFiles(f: FileGatewayLabPlan): void {
  const d = f.nas.dir;
  for (const sub of ['', 'tmp', 'root']) mkdirSync(join(d, sub), { recursive: true, mode: 0o755 });
  mkdirSync(f.nas.shareDir, { recursive: true, mode: 0o750 });
  mkdirSync(join(d, 'tmp', 'body'), { recursive: true });
  const wwwData = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  const wwwGroup = wwwDataGid();
  // The NAS folder: root and nginx's workers (www-data) only; the share is www-data's, not world-readable.
  chownSync(d, 0, wwwGroup);
  chmodSync(d, 0o750);
  chownSync(f.nas.shareDir, wwwData, wwwGroup);
  chmodSync(f.nas.shareDir, 0o750);
  chownSync(join(d, 'tmp', 'body'), wwwData, wwwGroup);
  selfSigned(join(d, 'nas.crt'), join(d, 'nas.key'), 'nas', f.nas.ip);
  chmodSync(join(d, 'nas.key'), 0o600);
  const readPw = randomBytes(18).toString('base64url');
  const writePw = randomBytes(18).toString('base64url');
  writeFileSync(f.nas.writePasswordFile, `${writePw}\n`, { mode: 0o600 });
  writeFileSync(join(d, 'readers.htpasswd'), htpasswd(f.nas.readUser, readPw) + htpasswd(f.nas.writeUser, writePw), { mode: 0o640 });
  writeFileSync(join(d, 'writers.htpasswd'), htpasswd(f.nas.writeUser, writePw), { mode: 0o640 });
  for (const h of ['readers.htpasswd', 'writers.htpasswd']) chownSync(join(d, h), 0, wwwGroup);
  writeFileSync(join(d, 'nginx.conf'), nginxConfig(f));
  // The file gateway's side of the NAS account: the password and the NAS's certificate to pin.
  writeFileSync(join(f.etcDir, 'nas.password'), `${readPw}\n`, { mode: 0o640 });
  writeFileSync(join(f.etcDir, 'nas-ca.crt'), readFileSync(join(d, 'nas.crt')), { mode: 0o640 });
}

/** Start the NAS (nginx, files of writeNasFiles) in the lan namespace. Resolves when it answers. */
async function startNas(f: FileGatewayLabPlan): Promise<number> {
  const d = f.nas.dir;
  const log = join(d, 'nginx.out');
  const pid = startDetached('ip', ['netns', 'exec', f.nas.netns, 'nginx', '-p', `${d}/`, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log'), '-g', 'daemon off;'], log);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await nsExec(f.nas.netns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(d, 'nas.crt'), '-m', '2', f.nas.url], { timeoutMs: 4000 }).catch(() => undefined);
    if (r !== undefined && r.stdout.trim() === '401') return pid;
    if (!alive(pid) || Date.now() > deadline) {
      throw new Error(`the lab NAS (nginx) did not start: ${tail(join(d, 'error.log'))}\n${tail(log)}`);
    }
    await sleep(100);
  }
}

/** Linux gateway (no init): start the service sandboxed in the dmz namespace. Resolves once it listens. */
async function startService(f: FileGatewayLabPlan): Promise<number> {
  mkdirSync(CODE_DIR, { recursive: true, mode: 0o755 });
  const cfg = loadFileGatewayConfig(f.configFile);
  const { file, args } = serviceCommand({ config: cfg, uid: f.uid, netns: f.service.netns });
  writeFileSync(f.logFile, '');
  const pid = startDetached(file, args, f.logFile);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (readFileSync(f.logFile, 'utf8').includes('file-gateway: listening')) return pid;
    if (!alive(pid) || Date.now() > deadline) {
      throw new Error(`the file gateway did not start; last lines of ${f.logFile}:\n${tail(f.logFile)}`);
    }
    await sleep(100);
  }
}

/** The memory limit of the lab's file gateway under init (its peak is ~190 MiB: README, Throughput). */
export const SERVICE_MEMORY_MB = 512;

/** The `services` entry of the lab's gateway config: init runs the file gateway in the dmz namespace. */
export function fileGatewayServiceYaml(f: FileGatewayLabPlan): string {
  return `services:
  - name: file-gateway
    kind: file-gateway
    config: ${f.configFile}
    netns: ${f.service.netns}
    uid: ${f.uid}
    memory-mb: ${SERVICE_MEMORY_MB}
    restart: always
`;
}

/**
 * Before the gateway starts: folders, certificates, the NAS's files and the
 * service's config and data (init validates the config when it loads its own).
 */
export function prepareFileGatewayLab(plan: LabPlan): void {
  const f = plan.fileGateway;
  if (f === undefined) return;
  // The lab's state folder is root-only (0700); nginx's workers (www-data) must
  // still reach the NAS under it: traverse only (0710 root:www-data, no listing),
  // the files in it stay 0600. The file gateway reaches its folders through its
  // sandbox's bind mounts, made as root.
  const wwwGroup = wwwDataGid();
  chownSync(plan.stateDir, 0, wwwGroup);
  chmodSync(plan.stateDir, 0o710);
  mkdirSync(f.dir, { recursive: true, mode: 0o710 });
  chownSync(f.dir, 0, wwwGroup);
  chmodSync(f.dir, 0o710);
  mkdirSync(f.etcDir, { recursive: true, mode: 0o750 });
  chownSync(f.etcDir, 0, f.uid);
  chmodSync(f.etcDir, 0o750);
  mkdirSync(f.stateDir, { recursive: true, mode: 0o700 });
  chownSync(f.stateDir, f.uid, f.uid);
  writeNasFiles(f);
  selfSigned(join(f.etcDir, 'tls.crt'), join(f.etcDir, 'tls.key'), 'microgate files', f.publicIp);
  writeFileSync(f.configFile, fileGatewayConfigYaml(f), { mode: 0o640 });
  for (const name of [USERS_FILE, PUBLICATIONS_FILE]) {
    const p = join(f.etcDir, name);
    if (!existsSync(p)) writeJsonAtomic(p, name === USERS_FILE ? { version: 1, users: {} } : { version: 1, publications: [] }, { mode: 0o640, gid: f.uid });
  }
  for (const name of ['tls.crt', 'tls.key', 'nas.password', 'nas-ca.crt', 'file-gateway.yaml']) {
    chownSync(join(f.etcDir, name), 0, f.uid);
    chmodSync(join(f.etcDir, name), 0o640);
  }
}

/**
 * Once the hosts have their addresses: start the NAS, and the service itself
 * when `startService` (the Linux gateway; under microgate init runs it).
 * Returns the processes started (their PIDs are the programs': every wrapper
 * execs), for the lab to record and stop.
 */
export async function startFileGatewayLab(plan: LabPlan, opts: { startService: boolean }): Promise<{ name: string; pid: number }[]> {
  const f = plan.fileGateway;
  if (f === undefined) return [];
  const nas = await startNas(f);
  if (!opts.startService) return [{ name: 'nas-nginx', pid: nas }];
  const svc = await startService(f);
  return [{ name: 'nas-nginx', pid: nas }, { name: 'file-gateway', pid: svc }];
}

/** A row of init's GET /status `services` (src/init/service-supervisor.ts ServiceStatus). */
export interface ServiceRow {
  name: string; pid: number; state: string; restarts: number; memoryBytes?: number; memoryLimitMb?: number; lastExit: string; lastHealth: string;
}

/** The file gateway as init reports it (GET /status), or undefined when init does not answer. */
export async function initService(control: ControlClient, name = 'file-gateway'): Promise<ServiceRow | undefined> {
  try {
    const body = await control.get<{ services?: ServiceRow[] }>('/status', 2000);
    return body.services?.find((s) => s.name === name);
  } catch {
    return undefined;
  }
}

/** Under microgate: wait until init reports the file gateway healthy (running); returns its PID. */
export async function waitForInitService(control: ControlClient, timeoutMs = 30_000, signal?: AbortSignal): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: ServiceRow | undefined;
  for (;;) {
    if (signal?.aborted) throw new Error(`aborted while waiting for the file gateway: ${String(signal.reason ?? 'abort')}`);
    last = await initService(control);
    if (last?.state === 'running' && last.pid > 0) return last.pid;
    if (Date.now() > deadline) {
      throw new Error(`init did not report the file gateway healthy within ${timeoutMs} ms: ${last === undefined ? 'no answer' : `state ${last.state}, last exit "${last.lastExit}", last health check "${last.lastHealth}"`} (see gateway.log)`);
    }
    await sleep(100);
  }
}

/** Where `microgate users|publish --lab NAME` finds the lab's file-gateway config. */
export function labFileGatewayConfig(stateDir: string): string {
  return join(stateDir, 'file-gateway', 'etc', 'file-gateway.yaml');
}
