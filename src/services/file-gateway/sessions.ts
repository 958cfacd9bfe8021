// Login sessions: a random 256-bit session ID in a cookie
// (__Host-mgfs; HttpOnly, Secure, SameSite=Strict, Path=/), kept in memory
// only by its SHA-256 digest, with a per-session CSRF token that every
// state-changing form carries. A session ends on logout, after `idleMs`
// without a request, after `maxMs` in all, or when its user is removed or
// changes password (the stored hash's fingerprint no longer matches).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = '__Host-mgfs';
/** The login form's double-submit CSRF cookie (there is no session yet). */
export const LOGIN_COOKIE = '__Host-mgfs-login';

export interface Session {
  user: string;
  /** hashFingerprint() of the user's password hash at login. */
  fingerprint: string;
  csrf: string;
  created: number;
  lastSeen: number;
}

const digest = (id: string): string => createHash('sha256').update(id).digest('base64url');

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time string equality (false for different lengths). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class SessionTable {
  #byDigest = new Map<string, Session>();
  #idleMs: number;
  #maxMs: number;
  #max: number;

  constructor(opts: { idleMs: number; maxMs: number; maxSessions: number }) {
    this.#idleMs = opts.idleMs;
    this.#maxMs = opts.maxMs;
    this.#max = opts.maxSessions;
  }

  get size(): number {
    return this.#byDigest.size;
  }

  /** A new session for `user`; returns the cookie value (the only copy of the ID) and the session. */
  create(user: string, fingerprint: string, now: number): { id: string; session: Session } {
    if (this.#byDigest.size >= this.#max) this.prune(now);
    while (this.#byDigest.size >= this.#max) {
      // Full: the oldest session goes (Map keeps insertion order).
      const first = this.#byDigest.keys().next().value;
      if (first === undefined) break;
      this.#byDigest.delete(first);
    }
    const id = randomToken();
    const session: Session = { user, fingerprint, csrf: randomToken(), created: now, lastSeen: now };
    this.#byDigest.set(digest(id), session);
    return { id, session };
  }

  /**
   * The live session for cookie value `id`, touched; undefined if there is
   * none, it expired, or `fingerprintOf(user)` no longer matches (then it is removed).
   */
  get(id: string | undefined, now: number, fingerprintOf: (user: string) => string | undefined): Session | undefined {
    if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const key = digest(id);
    const s = this.#byDigest.get(key);
    if (s === undefined) return undefined;
    if (now - s.lastSeen > this.#idleMs || now - s.created > this.#maxMs || fingerprintOf(s.user) !== s.fingerprint) {
      this.#byDigest.delete(key);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  destroy(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const key = digest(id);
    const s = this.#byDigest.get(key);
    this.#byDigest.delete(key);
    return s;
  }

  /** Remove expired sessions and those whose user or password changed. */
  prune(now: number, fingerprintOf?: (user: string) => string | undefined): void {
    for (const [k, s] of this.#byDigest) {
      if (now - s.lastSeen > this.#idleMs || now - s.created > this.#maxMs || (fingerprintOf !== undefined && fingerprintOf(s.user) !== s.fingerprint)) {
        this.#byDigest.delete(k);
      }
    }
  }
}

/** Parse a Cookie header into name -> value (first occurrence wins; malformed pairs are skipped). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (header === undefined || header.length > 8192) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (!out.has(name) && /^[A-Za-z0-9_-]{1,128}$/.test(value)) out.set(name, value);
  }
  return out;
}

/** A Set-Cookie value for one of our cookies. maxAgeS 0 deletes it. */
export function cookie(name: string, value: string, maxAgeS?: number): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict${maxAgeS === undefined ? '' : `; Max-Age=${maxAgeS}`}`;
}
