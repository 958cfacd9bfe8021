// Block feedback, the monitor's config part: `block` entries say which alerts
// or anomalies make the router blocklist the record's source address, and for
// how long; `block-exempt` lists prefixes that are never blocked. The monitor
// itself sends nothing: init reads its EVE records and matches them here
// (blockMatcher, through the registry), then commands the router
// (src/init/block-feedback.ts).
import { parseIpv4, parseIpv4Cidr, prefixMask } from '../../net/addr.ts';
import { fmtPath, got, type Path, type Reader } from '../../config/reader.ts';
import type { BlockRequest, EveBlockMatcher } from '../../runtime/component.ts';
import { DECODER_EVENTS } from './events.ts';
import { MAX_BLOCK_SECONDS } from '../router/block-command.ts';
import type { ClassType } from './rules/classification.ts';

export type BlockMatch =
  | { kind: 'sid'; sid: number }
  | { kind: 'classtype'; classtype: string }
  /** A decoder or detector event name (`ipv4.frag_overlap`, `mg.port_scan`), or a prefix of names (`ipv4.*`). */
  | { kind: 'event'; event: string; prefix: boolean }
  | { kind: 'anomaly'; anomaly: 'decode' | 'detector' };

export interface BlockRule {
  match: BlockMatch;
  seconds: number;
  /** Where it is in the config, for errors. */
  path: string;
}

export interface BlockExempt {
  network: number;
  prefix: number;
  text: string;
}

/** Longest block: a week (what the router accepts). */
export { MAX_BLOCK_SECONDS };
export const ANOMALY_CLASSES = ['decode', 'detector'] as const;
const MATCH_KEYS = ['sid', 'classtype', 'event', 'anomaly'] as const;

const ENTRY_HINT = 'a mapping like { sid: 8000003, seconds: 300 }, { classtype: attempted-dos, seconds: 60 }, '
  + '{ event: ipv4.frag_overlap, seconds: 300 } or { anomaly: detector, seconds: 60 }';

/** The `block` list of the monitor's config. */
export function parseBlockRules(r: Reader, raw: unknown, path: Path): BlockRule[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) r.fail(path, `expected a list of ${ENTRY_HINT}${got(raw)}`);
  return raw.map((e: unknown, i: number): BlockRule => {
    const ep = [...path, i];
    if (e === null || typeof e !== 'object' || Array.isArray(e)) r.fail(ep, `expected ${ENTRY_HINT}${got(e)}`);
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (k !== 'seconds' && !(MATCH_KEYS as readonly string[]).includes(k)) r.fail([...ep, k], `unknown key; expected one of ${[...MATCH_KEYS, 'seconds'].join(', ')}`);
    }
    const keys = MATCH_KEYS.filter((k) => o[k] !== undefined);
    if (keys.length !== 1) {
      r.fail(ep, keys.length === 0
        ? `expected one of ${MATCH_KEYS.join(', ')} to say which records block (${ENTRY_HINT})`
        : `expected only one of ${MATCH_KEYS.join(', ')} per entry (got ${keys.join(' and ')}); use one entry each`);
    }
    const s = o.seconds;
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > MAX_BLOCK_SECONDS) {
      r.fail([...ep, 'seconds'], `expected how long to block the source, an integer from 1 to ${MAX_BLOCK_SECONDS} seconds${got(s)}`);
    }
    const k = keys[0];
    const v = o[k];
    const kp = [...ep, k];
    let match: BlockMatch;
    if (k === 'sid') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffffffff) r.fail(kp, `expected a rule's sid, an integer from 1 to 4294967295${got(v)}`);
      match = { kind: 'sid', sid: v };
    } else if (k === 'classtype') {
      if (typeof v !== 'string' || !/^[A-Za-z0-9_-]+$/.test(v)) r.fail(kp, `expected a classtype name like attempted-dos${got(v)}`);
      match = { kind: 'classtype', classtype: v };
    } else if (k === 'event') {
      if (typeof v !== 'string') r.fail(kp, `expected a decoder or detector event name like ipv4.frag_overlap or mg.port_scan, or a prefix like ipv4.*${got(v)}`);
      const name = v.startsWith('decoder.') ? v.slice('decoder.'.length) : v;
      const prefix = name.endsWith('.*');
      const stem = prefix ? name.slice(0, -1) : name;
      const known = (DECODER_EVENTS as readonly string[]).some((n) => (prefix ? n.startsWith(stem) : n === name));
      if (!known) {
        const near = (DECODER_EVENTS as readonly string[]).filter((n) => n.startsWith(name.split('.')[0] + '.')).slice(0, 6);
        r.fail(kp, `expected a known event name${prefix ? ' prefix' : ''} (like ${near.length > 0 ? near.join(', ') : 'ipv4.frag_overlap, tcp.pkt_too_small, mg.port_scan'}; all are in src/components/monitor/events.ts)${got(v)}`);
      }
      match = { kind: 'event', event: prefix ? stem : name, prefix };
    } else {
      if (typeof v !== 'string' || !(ANOMALY_CLASSES as readonly string[]).includes(v)) {
        r.fail(kp, `expected an anomaly class: decode (decoder events) or detector (port scan, SYN flood, ARP spoofing)${got(v)}`);
      }
      match = { kind: 'anomaly', anomaly: v as 'decode' | 'detector' };
    }
    return { match, seconds: s, path: fmtPath(ep) };
  });
}

/** The `block-exempt` list: addresses or prefixes never blocked. */
export function parseBlockExempt(r: Reader, raw: unknown, path: Path): BlockExempt[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) r.fail(path, `expected a list of IPv4 addresses or prefixes like [198.18.0.0/24, 203.0.113.7]${got(raw)}`);
  return raw.map((v: unknown, i: number) => {
    const ep = [...path, i];
    const cidr = typeof v !== 'string' ? undefined : v.includes('/') ? parseIpv4Cidr(v) : (() => {
      const a = parseIpv4(v);
      return a === undefined ? undefined : { address: a, prefix: 32 };
    })();
    if (cidr === undefined) r.fail(ep, `expected an IPv4 address or prefix like 198.18.0.0/24 or 203.0.113.7${got(v)}`);
    const network = (cidr.address & prefixMask(cidr.prefix)) >>> 0;
    return { network, prefix: cidr.prefix, text: String(v) };
  });
}

/** Which EVE record types the block entries need (anomaly entries need `anomaly` records, the others `alert`). */
export function blockNeedsTypes(rules: readonly BlockRule[]): { alert: BlockRule | undefined; anomaly: BlockRule | undefined } {
  return {
    alert: rules.find((r) => r.match.kind === 'sid' || r.match.kind === 'classtype'),
    anomaly: rules.find((r) => r.match.kind === 'event' || r.match.kind === 'anomaly'),
  };
}

interface EveRec {
  event_type?: unknown;
  src_ip?: unknown;
  alert?: { signature_id?: unknown; signature?: unknown; category?: unknown };
  anomaly?: { type?: unknown; event?: unknown };
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}

/**
 * The matcher init uses: the first entry (config order) that matches an
 * `alert` or `anomaly` record decides how long its IPv4 source is blocked.
 * A classtype matches by the alert's `category` (the classtype's description
 * in `classifications`, as EVE carries it).
 */
export function blockMatcher(rules: readonly BlockRule[], exempt: readonly BlockExempt[], classifications: ReadonlyMap<string, ClassType>): EveBlockMatcher {
  const category = new Map<string, string>();
  for (const r of rules) {
    if (r.match.kind === 'classtype') category.set(r.match.classtype, classifications.get(r.match.classtype)?.description ?? '');
  }
  return {
    match(record: unknown): BlockRequest | undefined {
      if (record === null || typeof record !== 'object') return undefined;
      const rec = record as EveRec;
      const ip = typeof rec.src_ip === 'string' ? rec.src_ip : '';
      if (parseIpv4(ip) === undefined) return undefined; // IPv6 sources: the router's blocklist is IPv4
      if (rec.event_type === 'alert' && rec.alert !== undefined && rec.alert !== null) {
        const sid = rec.alert.signature_id;
        const cat = rec.alert.category;
        for (const r of rules) {
          const m = r.match;
          if ((m.kind === 'sid' && m.sid === sid) || (m.kind === 'classtype' && category.get(m.classtype) !== '' && category.get(m.classtype) === cat)) {
            return { ip, seconds: r.seconds, reason: clip(`sid ${String(sid)} "${String(rec.alert.signature ?? '')}"`, 160) };
          }
        }
        return undefined;
      }
      if (rec.event_type === 'anomaly' && rec.anomaly !== undefined && rec.anomaly !== null) {
        const type = rec.anomaly.type;
        const full = typeof rec.anomaly.event === 'string' ? rec.anomaly.event : '';
        const name = full.startsWith('decoder.') ? full.slice('decoder.'.length) : full;
        for (const r of rules) {
          const m = r.match;
          if ((m.kind === 'anomaly' && m.anomaly === type) || (m.kind === 'event' && (m.prefix ? name.startsWith(m.event) : name === m.event))) {
            return { ip, seconds: r.seconds, reason: clip(`anomaly ${full}`, 160) };
          }
        }
      }
      return undefined;
    },
    exempt(ip: string): boolean {
      const a = parseIpv4(ip);
      if (a === undefined) return true;
      return exempt.some((e) => ((a & prefixMask(e.prefix)) >>> 0) === e.network);
    },
  };
}
