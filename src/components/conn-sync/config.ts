// conn-sync's config section: `max` (records the warm table holds, like the
// router's conntrack.max) and `confirm-ms` (how long after a restore's last
// record the router has to confirm what it kept). Read with the project's
// config reader: errors name the file and the path.
import { SectionReader } from '../../runtime/component.ts';

export interface ConnSyncConfig {
  max: number;
  confirmMs: number;
}

export const CONN_SYNC_DEFAULTS: ConnSyncConfig = { max: 16384, confirmMs: 2000 };

export function parseConnSyncConfig(raw: unknown, source: { file: string; path: string }): ConnSyncConfig {
  const r = new SectionReader(source);
  const o = r.optObj(raw ?? undefined, r.base, ['max', 'confirm-ms'], 'a mapping like { max: 16384 }');
  return {
    max: r.int(o.max, [...r.base, 'max'], 1, 1 << 20, CONN_SYNC_DEFAULTS.max),
    confirmMs: r.int(o['confirm-ms'], [...r.base, 'confirm-ms'], 100, 60000, CONN_SYNC_DEFAULTS.confirmMs),
  };
}
