// The hash of the router's config section, shown in its status (`configHash`)
// so that two gateways of an HA pair (issue 19) can tell whether they run the
// same policy: SHA-256 over a canonical JSON text of the section (mapping
// keys sorted at every level, lists in order), so the same config hashes the
// same whatever the key order or YAML layout. Computed at start and after a
// reload, never per packet.
import { createHash } from 'node:crypto';

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** "sha256:" and the hex digest of the canonical text of `raw` (the component's `config` section). */
export function configHash(raw: unknown): string {
  return `sha256:${createHash('sha256').update(canonical(raw)).digest('hex')}`;
}
