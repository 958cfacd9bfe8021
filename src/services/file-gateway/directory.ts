// The local-folder backend: a share mounted on the host. A path is served
// only if it resolves (symlinks followed) to a regular file inside the
// share's root; the file is opened with O_NOFOLLOW and must be the same inode
// that was checked, and the path must still resolve to it after opening, so a
// symlink swapped in between (a share's writer racing us) is not followed
// outside. The service's Node permission model allows reading only the share.
import { constants, realpathSync } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { DirectoryStorageConfig } from './config.ts';
import { pathSegments } from './paths.ts';
import type { FileInfo, Storage } from './storage.ts';

export class DirectoryStorage implements Storage {
  #root: string;

  constructor(cfg: DirectoryStorageConfig) {
    this.#root = realpathSync(cfg.root);
  }

  async #resolve(path: string): Promise<string | undefined> {
    try {
      const real = await realpath(join(this.#root, ...pathSegments(path)));
      return real.startsWith(this.#root + sep) ? real : undefined;
    } catch {
      return undefined;
    }
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const real = await this.#resolve(path);
    if (real === undefined) return undefined;
    try {
      const st = await stat(real);
      if (!st.isFile()) return undefined;
      return { size: st.size, mtime: st.mtime, validator: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` };
    } catch {
      return undefined;
    }
  }

  async open(path: string, info: FileInfo, range?: { start: number; end: number }): Promise<Readable | undefined> {
    const real = await this.#resolve(path);
    if (real === undefined) return undefined;
    let fh;
    try {
      fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
    try {
      const st = await fh.stat();
      const again = await this.#resolve(path);
      if (!st.isFile() || `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` !== info.validator || again !== real) {
        await fh.close();
        return undefined;
      }
    } catch {
      await fh.close();
      return undefined;
    }
    return fh.createReadStream({ start: range?.start ?? 0, end: range?.end ?? Math.max(0, info.size - 1), highWaterMark: 256 * 1024, autoClose: true });
  }

  close(): void {}
}
