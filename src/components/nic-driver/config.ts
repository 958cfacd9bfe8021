// The nic-driver's config section: it has no settings of its own (its link is
// the device granted as "tap", its peer the session on port "nic"); anything
// else is an error, so a misplaced setting is never silently ignored.
import { got } from '../../config/reader.ts';
import { SectionReader } from '../../runtime/component.ts';

export function parseNicDriverConfig(raw: unknown, source: { file: string; path: string }): Record<string, never> {
  const r: SectionReader = new SectionReader(source);
  const base = r.base;
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    r.fail(base, `expected an empty mapping (the nic-driver has no settings; its link is the device "tap")${got(raw)}`);
  }
  const keys = Object.keys(raw);
  if (keys.length > 0) r.fail([...base, keys[0]], 'unknown key; the nic-driver has no settings (its link is the device "tap", e.g. its offload is set on the device)');
  return {};
}
