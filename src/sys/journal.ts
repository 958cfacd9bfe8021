// Log lines for the systemd journal: when stdout is the journal's stream
// (JOURNAL_STREAM names its device:inode, systemd.exec(5)), each line gets
// the priority prefix "<N>" journald reads (sd-daemon(3)), so
// `journalctl -p warning -u microgate` shows what needs attention.
// Components log "info|warn|error NAME: ..." (src/runtime/runtime.ts) and
// init forwards them as "[unit] LEVEL ..."; init's own lines carry no level
// and are classed by what they report (the table below).
import { fstatSync } from 'node:fs';

export const LOG_ERR = 3;
export const LOG_WARNING = 4;
export const LOG_INFO = 6;

/** init's own lines that report trouble, by pattern. */
const INIT_ERRORS = [/failed to start/, /spawn failed/, /an unexpected error/, /cannot write/];
const INIT_WARNINGS = [/broke the control channel/, /missed \d+ heartbeats/, /died with/, /was killed/, /not restarted/, /refused/,
  /session reset failed/, /fault injection/, /ignored/, /degraded/, /warning/i];

/** The syslog priority of one log line. */
export function linePriority(line: string): number {
  const m = /^\[[^\]]+\] (info|warn|error) /.exec(line) ?? /^(info|warn|error) /.exec(line);
  if (m !== null) return m[1] === 'error' ? LOG_ERR : m[1] === 'warn' ? LOG_WARNING : LOG_INFO;
  if (INIT_ERRORS.some((r) => r.test(line))) return LOG_ERR;
  if (INIT_WARNINGS.some((r) => r.test(line))) return LOG_WARNING;
  return LOG_INFO;
}

/** Is file descriptor fd the journal's stream (JOURNAL_STREAM=dev:ino)? */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (js === undefined) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fstatSync(fd);
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}
