// Who may talk to init's control API, and the checks every request passes
// (src/init/control.ts applies them; test/unit/control-auth.test.ts attacks them).
//
//   Unix socket: the kernel's SO_PEERCRED of the connection (uid, gid, pid at
//   connect): root, or a process whose gid or supplementary groups contain the
//   configured admin group. The socket lives in a root-only folder (0700;
//   0750 root:ADMIN with an admin group), itself 0600 (0660 root:ADMIN).
//   TCP (only when configured): Host must be a loopback name (DNS rebinding),
//   no Origin at all (no browser page may drive the API), and a bearer token
//   read from a root-only file, compared in constant time.
//   Every changing request (anything but GET and HEAD) carries a JSON body with
//   content-type application/json (text/plain, which a page can send without a
//   CORS preflight, gets 415).
import { createHash, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import type { PeerCred } from '../sys/libc.ts';

/** A refusal: the HTTP status, a stable code and what is wrong. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  /** Which denial counter it counts under. */
  counter: 'peer' | 'token' | 'host' | 'origin' | 'content-type';
}

/** The supplementary groups of process `pid` (/proc/PID/status "Groups:"), or undefined when it is gone or not `uid`'s. */
export function procGroups(pid: number, uid: number): number[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  // The process may have exited and its pid been reused: its real uid must still be the peer's.
  const u = /^Uid:\s+(\d+)/m.exec(text);
  if (u === null || Number(u[1]) !== uid) return undefined;
  const g = /^Groups:[ \t]*([0-9 \t]*)$/m.exec(text);
  if (g === null) return [];
  return g[1].trim() === '' ? [] : g[1].trim().split(/\s+/).map(Number);
}

/** Root, or a member of the admin group (its gid or one of its supplementary groups); else a 403. */
export function checkPeer(cred: PeerCred, groups: readonly number[] | undefined, adminGid: number | undefined): Refusal | null {
  if (cred.uid === 0) return null;
  if (adminGid !== undefined && (cred.gid === adminGid || (groups ?? []).includes(adminGid))) return null;
  return {
    status: 403,
    code: 'MG_FORBIDDEN',
    message: `uid ${cred.uid} (gid ${cred.gid}) may not use the control API: only root${adminGid === undefined ? '' : ` and members of group ${adminGid}`} may`,
    counter: 'peer',
  };
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** Host must be a loopback name, with the listener's port or none (a DNS-rebound name gets 421). */
export function checkHost(host: string | undefined, port: number): Refusal | null {
  const h = (host ?? '').toLowerCase();
  const m = /^(localhost|127\.0\.0\.1|\[::1\])(?::(\d+))?$/.exec(h);
  if (m !== null && LOOPBACK_NAMES.includes(m[1]) && (m[2] === undefined || Number(m[2]) === port)) return null;
  return { status: 421, code: 'MG_HOST', message: `Host ${JSON.stringify(host ?? '')} is not this control API: use localhost:${port} or 127.0.0.1:${port}`, counter: 'host' };
}

/** Any Origin header means a browser page sent it: refused. */
export function checkOrigin(origin: string | undefined): Refusal | null {
  if (origin === undefined) return null;
  return { status: 403, code: 'MG_ORIGIN', message: 'requests from web pages (with an Origin header) are refused', counter: 'origin' };
}

function digest(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

/** "Authorization: Bearer TOKEN" against the configured token, compared in constant time (both hashed to 32 bytes). */
export function checkBearer(authorization: string | undefined, token: Buffer): Refusal | null {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(authorization ?? '');
  if (m === null) return { status: 401, code: 'MG_TOKEN', message: 'this control API needs "Authorization: Bearer TOKEN" (the token file named by control.token-file)', counter: 'token' };
  if (!timingSafeEqual(digest(m[1]), digest(token))) return { status: 401, code: 'MG_TOKEN', message: 'wrong bearer token', counter: 'token' };
  return null;
}

/** A changing request (not GET/HEAD) must say content-type application/json. */
export function checkContentType(method: string | undefined, type: string | undefined): Refusal | null {
  if (method === 'GET' || method === 'HEAD') return null;
  const t = (type ?? '').split(';')[0].trim().toLowerCase();
  if (t === 'application/json') return null;
  return { status: 415, code: 'MG_CONTENT_TYPE', message: `${method ?? 'this'} requests need a JSON body sent as content-type application/json (got ${JSON.stringify(type ?? '')})`, counter: 'content-type' };
}

/** The minimum token length: 32 characters (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_TOKEN_CHARS = 32;

/**
 * The bearer token from `file`: a regular file (no symlink) owned by root with
 * no group or other access, holding one line of at least MIN_TOKEN_CHARS
 * printable characters. Throws with what is wrong.
 */
export function readTokenFile(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    throw new Error(`control.token-file ${file}: cannot open it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); it must be a regular file, not a symlink`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`control.token-file ${file}: not a regular file`);
    if (st.uid !== 0) throw new Error(`control.token-file ${file}: owned by uid ${st.uid}; it must be owned by root`);
    if ((st.mode & 0o077) !== 0) throw new Error(`control.token-file ${file}: mode ${(st.mode & 0o777).toString(8)}; it must be readable by root only (chmod 600)`);
    const text = readFileSync(fd, 'utf8').trim();
    if (!/^[\x21-\x7e]+$/.test(text) || text.length < MIN_TOKEN_CHARS || text.length > 512) {
      throw new Error(`control.token-file ${file}: expected one line of ${MIN_TOKEN_CHARS} to 512 printable characters without spaces (e.g. openssl rand -hex 32 > ${file})`);
    }
    return Buffer.from(text);
  } finally {
    closeSync(fd);
  }
}

/** A group name or number -> its gid (getent, so NSS groups count too). Throws when unknown. */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let out: string;
  try {
    out = execFileSync('getent', ['group', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    throw new Error(`control.admin-group: no group ${JSON.stringify(group)} on this machine (getent group ${group})`);
  }
  const gid = Number(out.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`control.admin-group: getent group ${group} answered ${JSON.stringify(out.trim())}`);
  return gid;
}

/**
 * The socket's folder must be root-only: created 0700 (0750 root:ADMIN) when
 * missing; when it exists it must be a real folder owned by root with no access
 * for others (and with an admin group: group ADMIN, no group write). It is
 * never changed (a path like /run/control.sock must not make init chmod /run).
 * Throws with what is wrong.
 */
export function prepareSocketDir(socket: string, adminGid: number | undefined): void {
  const dir = dirname(socket);
  const want = adminGid === undefined ? 0o700 : 0o750;
  let created = false;
  try {
    lstatSync(dir);
  } catch {
    // Missing parents get the usual 0755 (e.g. /run/microgate, which labs share); only the socket's own folder is closed.
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 0, adminGid ?? 0);
    chmodSync(dir, want);
    created = true;
  }
  const st = lstatSync(dir);
  const where = `control.socket ${socket}: its folder ${dir}`;
  if (!st.isDirectory()) throw new Error(`${where} is not a folder (a symlink?)`);
  if (st.uid !== 0) throw new Error(`${where} is owned by uid ${st.uid}; it must be owned by root`);
  const mode = st.mode & 0o777;
  const fix = adminGid === undefined ? `chmod 700 ${dir}` : `chown root:${adminGid} ${dir}; chmod 750 ${dir}`;
  if (adminGid === undefined && (mode & 0o077) !== 0) throw new Error(`${where} is mode ${mode.toString(8)}; it must be root-only (${fix}), or give control.socket a folder of its own`);
  if (adminGid !== undefined && ((mode & 0o027) !== 0 || st.gid !== adminGid || (mode & 0o050) !== 0o050)) {
    throw new Error(`${where} is mode ${mode.toString(8)} group ${st.gid}; with an admin group it must be 750 root:${adminGid} (${fix})${created ? '' : ', or give control.socket a folder of its own'}`);
  }
}
