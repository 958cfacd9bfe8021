// The keystore's config section: it has no settings of its own (its key file
// is the `file` device granted as "private-key"); anything else is an error.
import { SectionReader } from '../../runtime/component.ts';

export function parseKeystoreConfig(raw: unknown, source: { file: string; path: string }): Record<string, never> {
  const r: SectionReader = new SectionReader(source);
  const base = r.base;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    r.fail(base, 'expected an empty mapping (the keystore has no settings; its key file is the device "private-key")');
  }
  const keys = Object.keys(raw);
  if (keys.length > 0) r.fail([...base, keys[0]], 'unknown key; the keystore has no settings (its key file is the device "private-key")');
  return {};
}
