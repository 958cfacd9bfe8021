// The gateway's own accounts (users.json in the data folder): names and
// Argon2id hashes, managed by `microgate users`, read by the service.
import { createHash } from 'node:crypto';
import { isValidHash } from './kdf.ts';

export const USERNAME_RE = /^[a-z][a-z0-9._-]{0,31}$/;
export const PASSWORD_MIN = 10;
export const PASSWORD_MAX_BYTES = 1024;

export interface UserRecord {
  hash: string;
  created: string;
  updated: string;
}

export interface UsersFile {
  version: 1;
  users: Record<string, UserRecord>;
}

export const EMPTY_USERS: UsersFile = { version: 1, users: {} };

export function usernameProblem(name: string): string | undefined {
  return USERNAME_RE.test(name) ? undefined : `invalid user name ${JSON.stringify(name)}: 1 to 32 characters, a lower-case letter first, then lower-case letters, digits, ".", "_" or "-"`;
}

export function passwordProblem(pw: string): string | undefined {
  if ([...pw].length < PASSWORD_MIN) return `the password is shorter than ${PASSWORD_MIN} characters`;
  if (Buffer.byteLength(pw) > PASSWORD_MAX_BYTES) return `the password is longer than ${PASSWORD_MAX_BYTES} bytes`;
  return undefined;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate a parsed users.json. Throws an Error naming the first problem. */
export function parseUsersFile(raw: unknown): UsersFile {
  if (!isObj(raw) || raw.version !== 1 || !isObj(raw.users)) throw new Error('expected {"version": 1, "users": {...}}');
  const users: Record<string, UserRecord> = Object.create(null) as Record<string, UserRecord>;
  for (const [name, u] of Object.entries(raw.users)) {
    const p = usernameProblem(name);
    if (p !== undefined) throw new Error(`users.${name}: ${p}`);
    if (!isObj(u) || typeof u.hash !== 'string' || !isValidHash(u.hash)) throw new Error(`users.${name}.hash: expected an Argon2id PHC string`);
    users[name] = { hash: u.hash, created: String(u.created ?? ''), updated: String(u.updated ?? '') };
  }
  return { version: 1, users };
}

/** A short digest of a stored hash: sessions remember it and end when the password changes. */
export function hashFingerprint(hash: string): string {
  return createHash('sha256').update(hash).digest('base64url').slice(0, 16);
}
