// Password hashing: Argon2id (RFC 9106) from node:crypto (OpenSSL's
// implementation, stable in Node 26), stored as a PHC string
//   $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
// which other Argon2 libraries read too. Defaults: RFC 9106's second
// recommended option (64 MiB, 3 passes, 4 lanes), ~0.3 s here.
import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';

export interface KdfParams {
  /** Memory, KiB. */
  m: number;
  /** Passes. */
  t: number;
  /** Lanes. */
  p: number;
}

export const DEFAULT_KDF: KdfParams = { m: 65536, t: 3, p: 4 };
const TAG_BYTES = 32;
const SALT_BYTES = 16;
// What verify accepts from a stored hash (a bigger cost would be a denial of service).
const LIMITS = { mMin: 8192, mMax: 1 << 20, tMax: 16, pMax: 16 };

function derive(password: string, salt: Buffer, k: KdfParams, tagLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2('argon2id', { message: Buffer.from(password, 'utf8'), nonce: salt, parallelism: k.p, tagLength, memory: k.m, passes: k.t }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

/** Hash a password into a PHC string. */
export async function hashPassword(password: string, k: KdfParams = DEFAULT_KDF): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const tag = await derive(password, salt, k, TAG_BYTES);
  return `$argon2id$v=19$m=${k.m},t=${k.t},p=${k.p}$${b64(salt)}$${b64(tag)}`;
}

interface Parsed { k: KdfParams; salt: Buffer; tag: Buffer }

const PHC_RE = /^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]{11,64})\$([A-Za-z0-9+/]{22,128})$/;

/** Parse a stored hash; undefined when it is not an Argon2id PHC string within the accepted limits. */
export function parseHash(phc: string): Parsed | undefined {
  const m = PHC_RE.exec(phc);
  if (m === null) return undefined;
  const k = { m: Number(m[1]), t: Number(m[2]), p: Number(m[3]) };
  if (k.m < LIMITS.mMin || k.m > LIMITS.mMax || k.t < 1 || k.t > LIMITS.tMax || k.p < 1 || k.p > LIMITS.pMax || k.m < 8 * k.p) return undefined;
  return { k, salt: Buffer.from(m[4], 'base64'), tag: Buffer.from(m[5], 'base64') };
}

export function isValidHash(phc: string): boolean {
  return parseHash(phc) !== undefined;
}

/** Constant-time check of `password` against a stored PHC string. False for malformed hashes. */
export async function verifyPassword(password: string, phc: string): Promise<boolean> {
  const p = parseHash(phc);
  if (p === undefined) return false;
  const tag = await derive(password, p.salt, p.k, p.tag.length);
  return tag.length === p.tag.length && timingSafeEqual(tag, p.tag);
}

/** Whether a stored hash uses weaker parameters than `k` (re-hash it on the next password change). */
export function needsRehash(phc: string, k: KdfParams = DEFAULT_KDF): boolean {
  const p = parseHash(phc);
  return p === undefined || p.k.m < k.m || p.k.t < k.t;
}
