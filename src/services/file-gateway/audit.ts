// The audit log: one JSON object per line in STATE_DIR/audit.jsonl, appended
// as things happen: who (user, or null), what (event, publication, file),
// when, from where (source address), how many bytes, and the result.
// Internal: it may name share paths; it is never served.
import { createWriteStream, type WriteStream } from 'node:fs';

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
  #out: WriteStream | undefined;
  #sink: ((line: string) => void) | undefined;

  /** Append to `file`, or hand each line to `sink` (tests). */
  constructor(target: { file: string } | { sink: (line: string) => void }) {
    if ('file' in target) {
      this.#out = createWriteStream(target.file, { flags: 'a', mode: 0o600 });
      this.#out.on('error', (e) => process.stderr.write(`file-gateway: audit log: ${e.message}\n`));
    } else {
      this.#sink = target.sink;
    }
  }

  write(e: AuditEvent, now: number = Date.now()): void {
    const line = JSON.stringify({ time: new Date(now).toISOString(), ...e }) + '\n';
    if (this.#sink !== undefined) this.#sink(line);
    else this.#out?.write(line);
  }

  close(): Promise<void> {
    return new Promise((r) => (this.#out === undefined ? r() : this.#out.end(r)));
  }
}
