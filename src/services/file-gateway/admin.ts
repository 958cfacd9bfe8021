// The admin side of the data files: users.json and publications.json in the
// config's data folder, changed under a lock file and written atomically with
// the folder's group and mode 0640 (so the service, in that group, can read
// them and nothing else can). The running service picks changes up by itself.
import { closeSync, openSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { FileGatewayConfig } from './config.ts';
import { readJson, writeJsonAtomic } from './json-file.ts';
import { EMPTY_CONSUMED, EMPTY_PUBLICATIONS, parseConsumedFile, parsePublicationsFile, type ConsumedFile, type PublicationsFile } from './publications.ts';
import { CONSUMED_FILE, PUBLICATIONS_FILE, USERS_FILE } from './service.ts';
import { EMPTY_USERS, parseUsersFile, type UsersFile } from './users.ts';

const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

/** Run `fn` holding DATA_DIR/.lock (created exclusively; a lock older than 30 s is stale). */
export function withDataLock<T>(cfg: FileGatewayConfig, fn: () => T): T {
  const lock = join(cfg.dataDir, '.lock');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 30_000) unlinkSync(lock);
      } catch { /* gone meanwhile */ }
      if (Date.now() > deadline) throw new Error(`${lock} is held by another command; remove it if none runs`);
      sleepSync(50);
    }
  }
  try {
    return fn();
  } finally {
    try { unlinkSync(lock); } catch { /* gone */ }
  }
}

function owner(cfg: FileGatewayConfig): { gid: number } {
  return { gid: statSync(cfg.dataDir).gid };
}

function load<T>(file: string, parse: (raw: unknown) => T, empty: T): T {
  const raw = readJson(file);
  if (raw === undefined) return empty;
  try {
    return parse(raw);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

export function usersPath(cfg: FileGatewayConfig): string {
  return join(cfg.dataDir, USERS_FILE);
}

export function publicationsPath(cfg: FileGatewayConfig): string {
  return join(cfg.dataDir, PUBLICATIONS_FILE);
}

export function readUsers(cfg: FileGatewayConfig): UsersFile {
  return load(usersPath(cfg), parseUsersFile, EMPTY_USERS);
}

export function writeUsers(cfg: FileGatewayConfig, u: UsersFile): void {
  writeJsonAtomic(usersPath(cfg), u, { mode: 0o640, ...owner(cfg) });
}

export function readPublications(cfg: FileGatewayConfig): PublicationsFile {
  return load(publicationsPath(cfg), parsePublicationsFile, EMPTY_PUBLICATIONS);
}

export function writePublications(cfg: FileGatewayConfig, p: PublicationsFile): void {
  writeJsonAtomic(publicationsPath(cfg), p, { mode: 0o640, ...owner(cfg) });
}

/** What the service recorded about once-publications (read-only for the admin). */
export function readConsumed(cfg: FileGatewayConfig): ConsumedFile {
  try {
    return load(join(cfg.stateDir, CONSUMED_FILE), parseConsumedFile, EMPTY_CONSUMED);
  } catch {
    return EMPTY_CONSUMED;
  }
}
