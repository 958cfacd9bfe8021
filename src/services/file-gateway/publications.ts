// Publications (publications.json in the data folder): the only files the
// gateway serves. Each has an unguessable ID (128 random bits), a share path
// (never shown outside), the users it is published to, an optional expiry, a
// "once" flag and an optional public link whose token is stored only as a
// SHA-256 digest. Managed by `microgate publish`, read by the service.
// "Once" publications that have been downloaded are recorded by the service
// in consumed.json in its state folder (it may not write the data folder).
import { createHash, randomBytes } from 'node:crypto';
import { baseName, normalizeSharePath } from './paths.ts';
import { usernameProblem } from './users.ts';

export interface Publication {
  id: string;
  /** Normalised share path (paths.ts). Internal: never in a response. */
  path: string;
  /** The file name downloads carry (the path's last segment unless given). */
  name: string;
  /** Users it is published to; empty: every account. */
  users: string[];
  created: string;
  /** ISO time; null: never. */
  expires: string | null;
  /** Served to one download (used up when it starts), then gone. */
  once: boolean;
  /** SHA-256 (base64url) of the public link's token; null: no public link. */
  publicTokenHash: string | null;
}

export interface PublicationsFile {
  version: 1;
  publications: Publication[];
}

export interface ConsumedFile {
  version: 1;
  /** Publication ID -> when its one download completed. */
  consumed: Record<string, string>;
}

export const EMPTY_PUBLICATIONS: PublicationsFile = { version: 1, publications: [] };
export const EMPTY_CONSUMED: ConsumedFile = { version: 1, consumed: {} };

export const ID_RE = /^[A-Za-z0-9_-]{22}$/;
export const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** A new publication ID: 16 random bytes, base64url (22 characters). */
export function newId(): string {
  return randomBytes(16).toString('base64url');
}

/** A new public-link token: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
export const MAX_DURATION_MS = 366 * 86_400_000;

/** "90s", "30m", "12h", "7d", "2w" -> milliseconds. Throws for anything else or more than 366 days. */
export function parseDuration(s: string): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(s);
  if (m === null) throw new Error(`invalid duration ${JSON.stringify(s)}: a number and a unit, s m h d or w (e.g. 7d, 12h)`);
  const ms = Number(m[1]) * UNITS[m[2]];
  if (ms <= 0 || ms > MAX_DURATION_MS) throw new Error(`invalid duration ${JSON.stringify(s)}: from 1s to 366d`);
  return ms;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate a parsed publications.json. Throws an Error naming the first problem. */
export function parsePublicationsFile(raw: unknown): PublicationsFile {
  if (!isObj(raw) || raw.version !== 1 || !Array.isArray(raw.publications)) throw new Error('expected {"version": 1, "publications": [...]}');
  const seen = new Set<string>();
  const publications = raw.publications.map((p: unknown, i: number): Publication => {
    const at = `publications[${i}]`;
    if (!isObj(p)) throw new Error(`${at}: expected an object`);
    if (typeof p.id !== 'string' || !ID_RE.test(p.id)) throw new Error(`${at}.id: expected 22 base64url characters`);
    if (seen.has(p.id)) throw new Error(`${at}.id: duplicate ${p.id}`);
    seen.add(p.id);
    if (typeof p.path !== 'string') throw new Error(`${at}.path: expected a string`);
    let path: string;
    try {
      path = normalizeSharePath(p.path);
    } catch (e) {
      throw new Error(`${at}.path: ${(e as Error).message}`);
    }
    if (path !== p.path) throw new Error(`${at}.path: not normalised (expected ${JSON.stringify(path)})`);
    if (typeof p.name !== 'string' || p.name === '' || /[/\\\u0000-\u001f\u007f]/.test(p.name)) throw new Error(`${at}.name: expected a file name`);
    if (!Array.isArray(p.users) || p.users.some((u) => typeof u !== 'string' || usernameProblem(u) !== undefined)) throw new Error(`${at}.users: expected a list of user names`);
    if (p.expires !== null && (typeof p.expires !== 'string' || Number.isNaN(Date.parse(p.expires)))) throw new Error(`${at}.expires: expected an ISO time or null`);
    if (typeof p.once !== 'boolean') throw new Error(`${at}.once: expected true or false`);
    if (p.publicTokenHash !== null && (typeof p.publicTokenHash !== 'string' || !TOKEN_RE.test(p.publicTokenHash))) throw new Error(`${at}.publicTokenHash: expected a SHA-256 digest (base64url) or null`);
    if (p.publicTokenHash !== null && p.expires === null) throw new Error(`${at}: a public link needs an expiry`);
    return {
      id: p.id, path, name: p.name, users: [...(p.users as string[])], created: String(p.created ?? ''),
      expires: p.expires as string | null, once: p.once, publicTokenHash: p.publicTokenHash as string | null,
    };
  });
  return { version: 1, publications };
}

export function parseConsumedFile(raw: unknown): ConsumedFile {
  if (!isObj(raw) || raw.version !== 1 || !isObj(raw.consumed)) throw new Error('expected {"version": 1, "consumed": {...}}');
  const consumed: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [id, t] of Object.entries(raw.consumed)) {
    if (ID_RE.test(id) && typeof t === 'string') consumed[id] = t;
  }
  return { version: 1, consumed };
}

export interface NewPublication {
  path: string;
  name?: string;
  users?: string[];
  /** Lifetime in ms from now. */
  expiresInMs?: number;
  once?: boolean;
  publicLink?: boolean;
}

/** Default lifetime of a public link when no expiry is given. */
export const PUBLIC_LINK_DEFAULT_MS = 7 * 86_400_000;

/** Build a publication (and its public token, shown once) from the admin's request. Throws on bad input. */
export function createPublication(req: NewPublication, now: Date = new Date()): { publication: Publication; token: string | null } {
  const path = normalizeSharePath(req.path);
  const name = req.name ?? baseName(path);
  if (name === '' || /[/\\\u0000-\u001f\u007f]/.test(name)) throw new Error(`invalid download name ${JSON.stringify(name)}`);
  const users = [...new Set(req.users ?? [])];
  for (const u of users) {
    const p = usernameProblem(u);
    if (p !== undefined) throw new Error(p);
  }
  let expiresInMs = req.expiresInMs;
  if (req.publicLink && expiresInMs === undefined) expiresInMs = PUBLIC_LINK_DEFAULT_MS;
  const token = req.publicLink ? newToken() : null;
  return {
    publication: {
      id: newId(),
      path,
      name,
      users,
      created: now.toISOString(),
      expires: expiresInMs === undefined ? null : new Date(now.getTime() + expiresInMs).toISOString(),
      once: req.once ?? false,
      publicTokenHash: token === null ? null : tokenHash(token),
    },
    token,
  };
}

/** Why a publication is not served right now, or undefined when it is live. */
export function inactiveReason(p: Publication, now: number, consumed: ConsumedFile): 'expired' | 'consumed' | undefined {
  if (p.expires !== null && Date.parse(p.expires) <= now) return 'expired';
  if (p.once && consumed.consumed[p.id] !== undefined) return 'consumed';
  return undefined;
}

/** May `user` (logged in) download `p` now? */
export function userMayRead(p: Publication, user: string, now: number, consumed: ConsumedFile): boolean {
  if (inactiveReason(p, now, consumed) !== undefined) return false;
  return p.users.length === 0 || p.users.includes(user);
}

/** Lookup tables the service builds whenever publications.json changes. */
export class PublicationIndex {
  readonly byId = new Map<string, Publication>();
  readonly byTokenHash = new Map<string, Publication>();
  constructor(file: PublicationsFile) {
    for (const p of file.publications) {
      this.byId.set(p.id, p);
      if (p.publicTokenHash !== null) this.byTokenHash.set(p.publicTokenHash, p);
    }
  }
  /** The live publications `user` may see, newest first. */
  listFor(user: string, now: number, consumed: ConsumedFile): Publication[] {
    return [...this.byId.values()].filter((p) => userMayRead(p, user, now, consumed)).sort((a, b) => b.created.localeCompare(a.created));
  }
}
