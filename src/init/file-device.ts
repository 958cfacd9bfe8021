// Devices of kind `file`: init opens the file read-only as root and grants
// the fd to one component, which reads it through the fd without any right
// to the path (its uid cannot open it, and its sandbox sees no such path).
// init never reads the content. The file must be a regular file (not a
// symlink) that neither group nor others may read, as a key file should be.
import { constants, fstatSync, openSync, closeSync } from 'node:fs';
import type { FileDeviceSpec } from './config.ts';

export function openFileDevice(dev: FileDeviceSpec, configFile: string): number {
  const where = `${configFile}: ${dev.path}.path`;
  let fd: number;
  try {
    fd = openSync(dev.filePath, constants.O_RDONLY | constants.O_NOFOLLOW | 0o2000000 /* O_CLOEXEC */);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${where}: cannot open ${dev.filePath} (${code === 'ELOOP' ? 'a symbolic link: name the file itself' : code ?? (e as Error).message})`);
  }
  const st = fstatSync(fd);
  const problem = !st.isFile() ? 'is not a regular file'
    : (st.mode & 0o077) !== 0 ? `is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 (or 400) it`
    : undefined;
  if (problem !== undefined) {
    closeSync(fd);
    throw new Error(`${where}: ${dev.filePath} ${problem}`);
  }
  return fd;
}
