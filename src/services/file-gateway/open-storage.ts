// Opens the storage backend a file gateway config names: WebDAV (webdav.ts)
// or a local folder (directory.ts), each loaded only when used. Apart from
// storage.ts so the backends can import the shared types without a circle.
import type { StorageConfig } from './config.ts';
import type { Storage } from './storage.ts';

export async function openStorage(cfg: StorageConfig): Promise<Storage> {
  if (cfg.kind === 'webdav') return new (await import('./webdav.ts')).WebdavStorage(cfg);
  return new (await import('./directory.ts')).DirectoryStorage(cfg);
}
