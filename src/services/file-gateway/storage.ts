// Where published files are read from. Two backends: WebDAV over HTTP(S) (a
// network drive such as the lab's NAS; webdav.ts) and a local folder (a share
// mounted on the host; directory.ts). Both stream: nothing reads a whole file
// into memory. This module holds what both backends share (the interface,
// FileInfo, StorageUnavailable); open-storage.ts picks the backend.
import type { Readable } from 'node:stream';

export interface FileInfo {
  size: number;
  /** Last modification time, when the storage tells it. */
  mtime: Date | undefined;
  /** The storage's own validator of this version of the file (kept internal). */
  validator: string;
}

/** The storage cannot be reached or answered with an error: the request fails with a generic 503. */
export class StorageUnavailable extends Error {
  readonly code = 'MG_FILEGW_STORAGE_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'StorageUnavailable';
  }
}

export interface Storage {
  /** What the file at `path` is now; undefined when there is no regular file there that may be served. */
  stat(path: string): Promise<FileInfo | undefined>;
  /**
   * A stream of bytes [start, end] (inclusive; the whole file without a range)
   * of the version `info` describes; undefined when the file changed or vanished.
   */
  open(path: string, info: FileInfo, range?: { start: number; end: number }): Promise<Readable | undefined>;
  close(): void;
}
