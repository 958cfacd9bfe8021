// Lines a child (component host or service) writes on stdout/stderr, for
// init's log: split at newlines with a bounded buffer (a line longer than
// `max` bytes is cut there, the rest of it dropped up to its newline, so a
// child that never writes a newline costs init at most `max` bytes), and each
// line escaped (escapeText: no control characters, so a child cannot forge a
// line of init's own or move a terminal's cursor).
import type { Readable } from 'node:stream';
import { escapeText } from './host-messages.ts';

/** Longest line kept from a child's output, in bytes. */
export const MAX_LOG_LINE = 4096;

export function logLines(stream: Readable, onLine: (line: string) => void, max = MAX_LOG_LINE): void {
  const buf = Buffer.alloc(max);
  let have = 0;
  /** Inside a line that was already cut: drop bytes until its newline. */
  let skipping = false;
  const emit = (cut: boolean): void => {
    const line = buf.toString('utf8', 0, have);
    have = 0;
    onLine(escapeText(line, max) + (cut ? ' [cut]' : ''));
  };
  stream.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl < 0 ? chunk.length : nl;
      if (!skipping) {
        const n = Math.min(end - at, max - have);
        chunk.copy(buf, have, at, at + n);
        have += n;
        if (have === max && end - at > n) {
          emit(true);
          skipping = true;
        }
      }
      if (nl < 0) break;
      if (!skipping) emit(false);
      skipping = false;
      at = nl + 1;
    }
  });
  stream.on('end', () => {
    if (have > 0) emit(false);
  });
}
