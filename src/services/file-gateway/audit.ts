// The audit log: one JSON object per line in STATE_DIR/audit.jsonl, appended
// as things happen: who (user, or null), what (event, publication, file),
// when, from where (source address), how many bytes, and the result.
// Internal: it may name share paths; it is never served. Bounded: the file
// rotates at LOG_MAX_BYTES (16 MiB) keeping LOG_KEEP (4) old files
// (audit.jsonl.1 ... .4), see src/sys/rotating-file.ts.
import { RotatingFile, type RotatingFileOptions } from '../../sys/rotating-file.ts';

/** The audit log's name in the service's state folder. */
export const AUDIT_FILE = 'audit.jsonl';

export interface AuditEvent {
  event: 'login' | 'logout' | 'download' | 'public-download' | 'rate-limited' | 'csrf' | 'list';
  result: string;
  user?: string | null;
  publication?: string | null;
  path?: string | null;
  from: string;
  status?: number;
  bytes?: number;
  range?: string | null;
  detail?: string;
}

export class AuditLog {
  #out: RotatingFile | undefined;
  #sink: ((line: string) => void) | undefined;
  #failed = false;

  /** Append to `file` (rotating), or hand each line to `sink` (tests). */
  constructor(target: { file: string; rotate?: RotatingFileOptions } | { sink: (line: string) => void }) {
    if ('file' in target) {
      this.#out = new RotatingFile(target.file, { mode: 0o600, ...target.rotate });
    } else {
      this.#sink = target.sink;
    }
  }

  write(e: AuditEvent, now: number = Date.now()): void {
    const line = JSON.stringify({ time: new Date(now).toISOString(), ...e }) + '\n';
    if (this.#sink !== undefined) {
      this.#sink(line);
      return;
    }
    try {
      this.#out?.write(line);
      this.#failed = false;
    } catch (err) {
      // Reported once per run of failures, never fatal to the request.
      if (!this.#failed) process.stderr.write(`file-gateway: audit log: ${(err as Error).message}\n`);
      this.#failed = true;
    }
  }

  close(): Promise<void> {
    this.#out?.close();
    this.#out = undefined;
    return Promise.resolve();
  }
}
