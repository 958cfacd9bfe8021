// uid ranges of labs: allocated, never hashed. Each lab gets a block of
// LAB_UID_COUNT uids (its components at uid-base + index, the file gateway
// service at uid-base + 15) out of 67000-98999: above 65535 (so never 65534,
// nobody), above useradd's and systemd's ranges, below the usual subordinate
// uid ranges (/etc/subuid hands out blocks of 65536 from 100000). A block is
// taken by an exclusive-create claim file LABS_DIR/.uids/FIRST naming the lab
// (two labs coming up at once cannot take the same block), skipped when
// anything on the machine uses one of its uids (src/init/uid-check.ts:
// accounts, groups, subordinate ranges, running processes), and released by
// `lab down`. A claim whose lab has no state folder any more is stale and
// taken over. init checks the block again at start, as for any config.
import { mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { findFreeUidRange, type UidSources } from '../init/uid-check.ts';
import { LABS_DIR, labStateDir } from './lab-plan.ts';

export const LAB_UID_FIRST = 67000;
export const LAB_UID_LAST = 98999;
export const LAB_UID_COUNT = 32;

function claimsDir(): string {
  return join(LABS_DIR, '.uids');
}

/** The lab a claim file names ('' while it is being written). */
function claimOwner(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Claim a free block of uids for lab `name` (its state folder must exist: the lab's lock); returns its first uid. */
export function allocateLabUids(name: string, sources?: UidSources): number {
  mkdirSync(claimsDir(), { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 64; attempt++) {
    const taken = (first: number): boolean => {
      const file = join(claimsDir(), String(first));
      if (!existsSync(file)) return false;
      const owner = claimOwner(file);
      // Stale: its lab is gone without `lab down` (no state folder): take it over.
      if (owner !== undefined && owner !== '' && owner !== name && !existsSync(labStateDir(owner))) {
        rmSync(file, { force: true });
        return false;
      }
      return true;
    };
    const { first } = findFreeUidRange(LAB_UID_FIRST, LAB_UID_LAST, LAB_UID_COUNT, { sources, taken });
    let fd: number;
    try {
      fd = openSync(join(claimsDir(), String(first)), 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another lab got there first: look again
      throw e;
    }
    writeSync(fd, `${name}\n`);
    closeSync(fd);
    return first;
  }
  throw new Error(`lab ${name}: could not claim a uid range (${LAB_UID_FIRST}-${LAB_UID_LAST}) after 64 tries`);
}

/** Release every uid block lab `name` claimed. */
export function releaseLabUids(name: string): void {
  let files: string[];
  try {
    files = readdirSync(claimsDir());
  } catch {
    return;
  }
  for (const f of files) {
    const file = join(claimsDir(), f);
    if (claimOwner(file) === name) rmSync(file, { force: true });
  }
}
