// The monitor's config section: validated once into a plain object, defaults
// stated here and in README.md. Rule and classification files are named by
// path; the component cannot read them (it has no file access): init reads
// them when it starts the component (prepareMonitorConfig) and hands their
// text over in the config under `rule-texts` / `classification-text`.
import { readFileSync } from 'node:fs';
import { got, parsePath, type Obj, type Path, type Reader } from '../../config/reader.ts';
import { formatMac, parseIpv4, parseMac } from '../../net/addr.ts';
import { ARP_DEFAULTS, type ArpConfig } from './arp-watch.ts';
import { FLOOD_DEFAULTS, type FloodConfig, type FloodLimits } from './floods.ts';
import { SectionReader } from '../../runtime/component.ts';
import { DEFRAG_DEFAULTS, type DefragLimits } from './defrag.ts';
import { DETECTOR_DEFAULTS, type DetectorConfig } from './detectors.ts';
import type { EveType } from './engine.ts';
import { FLOW_DEFAULTS, type FlowLimits } from './flow.ts';
import { OVERLAP_POLICIES } from './overlap.ts';
import { STREAM_DEFAULTS, type StreamLimits } from './stream.ts';
import { blockMatcher, blockNeedsTypes, parseBlockExempt, parseBlockRules, type BlockExempt, type BlockRule } from './block.ts';
import { builtinClassifications, parseClassifications, type ClassType } from './rules/classification.ts';
import type { EveBlockMatcher } from '../../runtime/component.ts';

export const EVE_TYPES: readonly EveType[] = ['alert', 'anomaly', 'flow', 'stats', 'http', 'arp', 'dns', 'tls'];

export interface MonitorConfig {
  ruleFiles: string[];
  /** File name -> text, filled in by init (prepareMonitorConfig). */
  ruleTexts: { name: string; text: string }[];
  rules: string;
  builtinRules: boolean;
  classificationFile: string | undefined;
  classificationText: string | undefined;
  vars: Record<string, string>;
  /** Names of the router's domains by index (the mirror tags frames with the index). */
  domains: string[];
  midstream: boolean;
  flow: FlowLimits;
  defrag: DefragLimits;
  stream: StreamLimits;
  detectors: DetectorConfig;
  eve: { ring: number; types: EveType[]; packetBytes: number };
  /** Periodic stats records into the EVE ring, seconds (0: off). */
  statsIntervalS: number;
  /** Scheduling niceness of the monitor's thread (0..19; above 0 forwarding gets the CPU first). */
  nice: number;
  /** Block feedback (block.ts): records that make the router blocklist their source (init acts on them). */
  block: BlockRule[];
  /** Prefixes never blocked. */
  blockExempt: BlockExempt[];
}

export const DEFAULTS = {
  builtinRules: true,
  midstream: true,
  eveRing: 4096,
  eveTypes: ['alert', 'anomaly'] as EveType[],
  packetBytes: 1600,
  statsIntervalS: 0,
  nice: 0,
};

export function parseMonitorConfig(raw: unknown, source: { file: string; path: string }): MonitorConfig {
  const c: SectionReader = new SectionReader(source);
  const base = c.base;
  const at = (...k: (string | number)[]): Path => [...base, ...k];
  const root = c.obj(raw ?? {}, base, [
    'rule-files', 'rules', 'builtin-rules', 'classification-file', 'vars', 'domains', 'midstream', 'flow', 'defrag',
    'stream', 'detectors', 'eve', 'stats-interval-s', 'rule-texts', 'classification-text', 'eve-log', 'nice',
    'block', 'block-exempt',
  ]);
  const eveLog = root['eve-log'];
  if (eveLog !== undefined && (typeof eveLog !== 'string' || !eveLog.startsWith('/'))) {
    c.fail(at('eve-log'), `expected an absolute file path (init appends the EVE records to it)${got(eveLog)}`);
  }
  const ruleFiles = c.strList(root['rule-files'], at('rule-files'));
  ruleFiles.forEach((f, i) => {
    if (!f.startsWith('/')) c.fail(at('rule-files', i), `expected an absolute path${got(f)}`);
  });
  if (root.rules !== undefined && typeof root.rules !== 'string') c.fail(at('rules'), `expected rule text (a string, one rule per line)${got(root.rules)}`);
  const cf = root['classification-file'];
  if (cf !== undefined && (typeof cf !== 'string' || !cf.startsWith('/'))) c.fail(at('classification-file'), `expected an absolute path${got(cf)}`);
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.optObj(root.vars, at('vars'), Object.keys((root.vars ?? {}) as Obj)))) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) c.fail(at('vars', k), 'expected a variable name of capitals, digits and _ (like HOME_NET)');
    if (typeof v !== 'string' && typeof v !== 'number') c.fail(at('vars', k), `expected an address or port spec like "[198.18.0.0/24]"${got(v)}`);
    vars[k] = String(v);
  }
  const domains = c.strList(root.domains, at('domains'));
  const fl = c.optObj(root.flow, at('flow'), ['max', 'max-per-source', 'new-timeout-s', 'established-timeout-s', 'closed-timeout-s']);
  const flowMax = c.int(fl.max, at('flow', 'max'), 16, 1 << 22, FLOW_DEFAULTS.max);
  const flow: FlowLimits = {
    max: flowMax,
    // Default: a quarter of max (the documented default 16384 of 65536).
    maxPerSource: c.int(fl['max-per-source'], at('flow', 'max-per-source'), 1, flowMax, Math.max(1, flowMax >> 2)),
    newMs: c.int(fl['new-timeout-s'], at('flow', 'new-timeout-s'), 1, 86400, FLOW_DEFAULTS.newMs / 1000) * 1000,
    establishedMs: c.int(fl['established-timeout-s'], at('flow', 'established-timeout-s'), 1, 86400, FLOW_DEFAULTS.establishedMs / 1000) * 1000,
    closedMs: c.int(fl['closed-timeout-s'], at('flow', 'closed-timeout-s'), 1, 86400, FLOW_DEFAULTS.closedMs / 1000) * 1000,
  };
  const df = c.optObj(root.defrag, at('defrag'), ['max-trackers', 'max-trackers-per-source', 'max-bytes', 'max-fragments', 'timeout-s', 'policy']);
  const defrag: DefragLimits = {
    maxTrackers: c.int(df['max-trackers'], at('defrag', 'max-trackers'), 1, 1 << 20, DEFRAG_DEFAULTS.maxTrackers),
    maxTrackersPerSource: c.int(df['max-trackers-per-source'], at('defrag', 'max-trackers-per-source'), 1, 1 << 20, DEFRAG_DEFAULTS.maxTrackersPerSource),
    maxBytes: c.int(df['max-bytes'], at('defrag', 'max-bytes'), 65536, 1 << 30, DEFRAG_DEFAULTS.maxBytes),
    maxFragments: c.int(df['max-fragments'], at('defrag', 'max-fragments'), 2, 8192, DEFRAG_DEFAULTS.maxFragments),
    timeoutMs: c.int(df['timeout-s'], at('defrag', 'timeout-s'), 1, 3600, DEFRAG_DEFAULTS.timeoutMs / 1000) * 1000,
    policy: df.policy === undefined ? DEFRAG_DEFAULTS.policy : c.oneOf(df.policy, at('defrag', 'policy'), OVERLAP_POLICIES),
  };
  const sr = c.optObj(root.stream, at('stream'), ['depth', 'overlap', 'max-segments', 'memcap', 'policy']);
  const stream: StreamLimits = {
    depth: c.int(sr.depth, at('stream', 'depth'), 0, 1 << 30, STREAM_DEFAULTS.depth),
    overlap: c.int(sr.overlap, at('stream', 'overlap'), 64, 1 << 20, STREAM_DEFAULTS.overlap),
    maxSegments: c.int(sr['max-segments'], at('stream', 'max-segments'), 1, 65536, STREAM_DEFAULTS.maxSegments),
    memcap: c.int(sr.memcap, at('stream', 'memcap'), 1 << 20, 1 << 30, STREAM_DEFAULTS.memcap),
    policy: sr.policy === undefined ? STREAM_DEFAULTS.policy : c.oneOf(sr.policy, at('stream', 'policy'), OVERLAP_POLICIES),
  };
  const dt = c.optObj(root.detectors, at('detectors'), ['port-scan', 'syn-flood', 'flood', 'arp-spoof', 'max-tracked', 'max-tracked-per-source']);
  const ps = c.optObj(dt['port-scan'], at('detectors', 'port-scan'), ['enabled', 'ports', 'seconds']);
  const sf = c.optObj(dt['syn-flood'], at('detectors', 'syn-flood'), ['enabled', 'rate', 'seconds']);
  const as = c.optObj(dt['arp-spoof'], at('detectors', 'arp-spoof'), ['enabled', 'binding-s', 'addresses-per-mac', 'static', 'multi-address-macs', 'gratuitous']);
  const D = DETECTOR_DEFAULTS;
  const detectors: DetectorConfig = {
    portScan: {
      enabled: c.bool(ps.enabled, at('detectors', 'port-scan', 'enabled'), D.portScan.enabled),
      ports: c.int(ps.ports, at('detectors', 'port-scan', 'ports'), 2, 65536, D.portScan.ports),
      seconds: c.int(ps.seconds, at('detectors', 'port-scan', 'seconds'), 1, 3600, D.portScan.seconds),
    },
    synFlood: {
      enabled: c.bool(sf.enabled, at('detectors', 'syn-flood', 'enabled'), D.synFlood.enabled),
      rate: c.int(sf.rate, at('detectors', 'syn-flood', 'rate'), 1, 1e9, D.synFlood.rate),
      seconds: c.int(sf.seconds, at('detectors', 'syn-flood', 'seconds'), 1, 3600, D.synFlood.seconds),
    },
    flood: parseFlood(c, dt.flood, at('detectors', 'flood')),
    arpSpoof: {
      enabled: c.bool(as.enabled, at('detectors', 'arp-spoof', 'enabled'), D.arpSpoof.enabled),
      bindingS: c.int(as['binding-s'], at('detectors', 'arp-spoof', 'binding-s'), 1, 86400 * 7, D.arpSpoof.bindingS),
      addressesPerMac: c.int(as['addresses-per-mac'], at('detectors', 'arp-spoof', 'addresses-per-mac'), 0, 65536, D.arpSpoof.addressesPerMac),
      staticBindings: parseStaticArp(c, as.static, at('detectors', 'arp-spoof', 'static')),
      multiAddressMacs: new Set((as['multi-address-macs'] === undefined ? [] : c.strList(as['multi-address-macs'], at('detectors', 'arp-spoof', 'multi-address-macs')))
        .map((m, i) => macText(c, m, at('detectors', 'arp-spoof', 'multi-address-macs', i)))),
      gratuitous: parseGratuitous(c, as.gratuitous, at('detectors', 'arp-spoof', 'gratuitous')),
    },
    maxTracked: c.int(dt['max-tracked'], at('detectors', 'max-tracked'), 16, 1 << 22, D.maxTracked),
    maxTrackedPerSource: c.int(dt['max-tracked-per-source'], at('detectors', 'max-tracked-per-source'), 1, 1 << 22, D.maxTrackedPerSource),
  };
  const ev = c.optObj(root.eve, at('eve'), ['ring', 'types', 'packet-bytes']);
  const types = ev.types === undefined ? [...DEFAULTS.eveTypes] : c.strList(ev.types, at('eve', 'types'));
  types.forEach((t, i) => {
    if (!(EVE_TYPES as readonly string[]).includes(t)) c.fail(at('eve', 'types', i), `expected one of ${EVE_TYPES.join(', ')}${got(t)}`);
  });
  const block = parseBlockRules(c, root.block, at('block'));
  const blockExempt = parseBlockExempt(c, root['block-exempt'], at('block-exempt'));
  const needs = blockNeedsTypes(block);
  for (const t of ['alert', 'anomaly'] as const) {
    const r = needs[t];
    if (r !== undefined && !types.includes(t)) {
      c.fail(at('eve', 'types'), `expected ${t} among the EVE types: ${r.path} blocks on ${t} records (got ${JSON.stringify(types)})`);
    }
  }
  const ruleTexts: { name: string; text: string }[] = [];
  if (root['rule-texts'] !== undefined) {
    if (!Array.isArray(root['rule-texts'])) c.fail(at('rule-texts'), 'is set by init only');
    for (const x of root['rule-texts'] as { name: string; text: string }[]) ruleTexts.push({ name: String(x.name), text: String(x.text) });
  }
  return {
    ruleFiles,
    ruleTexts,
    rules: (root.rules as string | undefined) ?? '',
    builtinRules: c.bool(root['builtin-rules'], at('builtin-rules'), DEFAULTS.builtinRules),
    classificationFile: cf as string | undefined,
    classificationText: typeof root['classification-text'] === 'string' ? root['classification-text'] : undefined,
    vars,
    domains,
    midstream: c.bool(root.midstream, at('midstream'), DEFAULTS.midstream),
    flow,
    defrag,
    stream,
    detectors,
    eve: {
      ring: c.int(ev.ring, at('eve', 'ring'), 16, 1 << 20, DEFAULTS.eveRing),
      types: types as EveType[],
      packetBytes: c.int(ev['packet-bytes'], at('eve', 'packet-bytes'), 0, 65535, DEFAULTS.packetBytes),
    },
    statsIntervalS: c.int(root['stats-interval-s'], at('stats-interval-s'), 0, 86400, DEFAULTS.statsIntervalS),
    nice: c.int(root.nice, at('nice'), 0, 19, DEFAULTS.nice),
    block,
    blockExempt,
  };
}

/** init's side: the classtype table the monitor will use (built-in, or the classification file's). */
function classificationsOf(cfg: MonitorConfig, file: string, path: string): Map<string, ClassType> {
  if (cfg.classificationFile === undefined) return builtinClassifications();
  const c: SectionReader = new SectionReader({ file, path });
  let text: string;
  try {
    text = readFileSync(cfg.classificationFile, 'utf8');
  } catch (e) {
    c.fail([...c.base, 'classification-file'], `a readable classification file (${(e as Error).message})`);
  }
  return parseClassifications(text).map;
}

/** init's side: the block-feedback matcher of a monitor's config section, or undefined when it has no `block` entries. */
export function monitorBlockMatcher(raw: unknown): EveBlockMatcher | undefined {
  const cfg = parseMonitorConfig(raw, { file: '', path: '' });
  if (cfg.block.length === 0) return undefined;
  return blockMatcher(cfg.block, cfg.blockExempt, classificationsOf(cfg, '', ''));
}

/** init's side: validate, and check the named files are readable (init runs as root; the component cannot read). */
export function validateMonitorConfig(raw: unknown, file: string, path: string): void {
  const cfg = parseMonitorConfig(raw, { file, path });
  const c: SectionReader = new SectionReader({ file, path });
  cfg.ruleFiles.forEach((f, i) => {
    try {
      readFileSync(f, { flag: 'r' }).length;
    } catch (e) {
      c.fail([...c.base, 'rule-files', i], `a readable rule file (${(e as Error).message})`);
    }
  });
  const classes = cfg.classificationFile !== undefined || cfg.block.length > 0 ? classificationsOf(cfg, file, path) : undefined;
  for (const r of cfg.block) {
    if (r.match.kind === 'classtype' && !classes!.has(r.match.classtype)) {
      const near = [...classes!.keys()].filter((k) => k.split('-')[0] === (r.match as { classtype: string }).classtype.split('-')[0]).slice(0, 6);
      c.fail([...parsePath(r.path), 'classtype'],
        `a classtype of the monitor's classification table (${cfg.classificationFile ?? 'built-in'}; e.g. ${near.length > 0 ? near.join(', ') : 'attempted-dos, attempted-recon, bad-unknown'}) (got "${r.match.classtype}")`);
    }
  }
}

/** init's side, at start: the config the component receives, with the files' text in it. */
export function prepareMonitorConfig(raw: unknown): unknown {
  const r = (raw ?? {}) as Obj;
  const files = Array.isArray(r['rule-files']) ? (r['rule-files'] as string[]) : [];
  const out: Obj = { ...r, 'rule-texts': files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') })) };
  if (typeof r['classification-file'] === 'string') out['classification-text'] = readFileSync(r['classification-file'], 'utf8');
  return out;
}

/** A MAC address in the canonical lower-case colon form the ARP detector compares. */
function macText(c: Reader, v: unknown, path: Path): string {
  const m = typeof v === 'string' ? parseMac(v) : undefined;
  if (m === undefined) c.fail(path, `expected a MAC address like 02:00:00:00:00:01${got(v)}`);
  return formatMac(m);
}

/** detectors.arp-spoof.static: a mapping of IPv4 address -> MAC (the gateway's own bindings, say). */
function parseStaticArp(c: Reader, v: unknown, path: Path): Map<number, string> {
  const out = new Map<number, string>();
  if (v === undefined) return out;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) c.fail(path, `expected a mapping of IPv4 address to MAC address${got(v)}`);
  const o = v as Record<string, unknown>;
  for (const [ip, mac] of Object.entries(o)) {
    const a = parseIpv4(ip);
    if (a === undefined) c.fail([...path, ip], `expected an IPv4 address as the key${got(ip)}`);
    out.set(a >>> 0, macText(c, mac, [...path, ip]));
  }
  return out;
}

function parseGratuitous(c: Reader, v: unknown, path: Path): ArpConfig['gratuitous'] {
  const o = c.optObj(v, path, ['count', 'seconds']);
  const D = ARP_DEFAULTS.gratuitous;
  return {
    count: c.int(o.count, [...path, 'count'], 0, 1e9, D.count),
    seconds: c.int(o.seconds, [...path, 'seconds'], 1, 3600, D.seconds),
  };
}

/** detectors.flood: windows, the IPv4 network prefix, and per protocol thresholds. */
function parseFlood(c: Reader, v: unknown, path: Path): FloodConfig {
  const o = c.optObj(v, path, ['burst-ms', 'seconds', 'network-prefix', 'tcp', 'udp', 'icmp']);
  const D = FLOOD_DEFAULTS;
  const limits = (k: 'tcp' | 'udp' | 'icmp'): FloodLimits => {
    const p = [...path, k];
    const l = c.optObj(o[k], p, ['enabled', 'burst', 'rate', 'network-burst', 'network-rate']);
    return {
      enabled: c.bool(l.enabled, [...p, 'enabled'], D[k].enabled),
      burst: c.int(l.burst, [...p, 'burst'], 1, 1e9, D[k].burst),
      rate: c.int(l.rate, [...p, 'rate'], 1, 1e9, D[k].rate),
      networkBurst: c.int(l['network-burst'], [...p, 'network-burst'], 1, 1e9, D[k].networkBurst),
      networkRate: c.int(l['network-rate'], [...p, 'network-rate'], 1, 1e9, D[k].networkRate),
    };
  };
  return {
    burstMs: c.int(o['burst-ms'], [...path, 'burst-ms'], 1, 10_000, D.burstMs),
    seconds: c.int(o.seconds, [...path, 'seconds'], 1, 3600, D.seconds),
    networkPrefix: c.int(o['network-prefix'], [...path, 'network-prefix'], 0, 32, D.networkPrefix),
    tcp: limits('tcp'),
    udp: limits('udp'),
    icmp: limits('icmp'),
  };
}
