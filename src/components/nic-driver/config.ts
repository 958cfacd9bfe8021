// The nic-driver's config section. Its link is the device granted as "tap"
// and its peer the session on port "nic"; its one setting is how it receives
// from a packet link. Anything else is an error, so a misplaced setting is
// never silently ignored.
import { SectionReader } from '../../runtime/component.ts';

export interface NicDriverConfig {
  /**
   * On a packet link (`kind: packet`): receive through a PACKET_MMAP ring
   * (true, the default) or by recvmmsg(2) alone (false). Ignored on a TAP.
   */
  rxRing: boolean;
}

export function parseNicDriverConfig(raw: unknown, source: { file: string; path: string }): NicDriverConfig {
  const r: SectionReader = new SectionReader(source);
  const base = r.base;
  const root = r.obj(raw ?? {}, base, ['rx-ring']);
  return { rxRing: r.bool(root['rx-ring'], [...base, 'rx-ring'], true) };
}
