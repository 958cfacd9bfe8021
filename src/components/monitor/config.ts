// The monitor's config section: validated once into a plain object, defaults
// stated here and in README.md. Rule and classification files are named by
// path; the component cannot read them (it has no file access): init reads
// them when it starts the component (prepareMonitorConfig) and hands their
// text over in the config under `rule-texts` / `classification-text`.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../runtime/component.ts';
import { DEFRAG_DEFAULTS, type DefragLimits } from './defrag.ts';
import { DETECTOR_DEFAULTS, type DetectorConfig } from './detectors.ts';
import type { EveType } from './engine.ts';
import { FLOW_DEFAULTS, type FlowLimits } from './flow.ts';
import { STREAM_DEFAULTS, type StreamLimits } from './stream.ts';
import { blockMatcher, blockNeedsTypes, parseBlockExempt, parseBlockRules, type BlockExempt, type BlockRule } from './block.ts';
import { builtinClassifications, parseClassifications, type ClassType } from './rules/classification.ts';
import type { EveBlockMatcher } from '../../runtime/component.ts';

export const EVE_TYPES: readonly EveType[] = ['alert', 'anomaly', 'flow', 'stats', 'http', 'arp'];

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
  /** Scheduling niceness of the monitor's thread (0..19): forwarding gets the CPU first. */
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
  nice: 10,
};

type Obj = Record<string, unknown>;

function got(v: unknown): string {
  if (v === undefined) return ' (missing)';
  const s = JSON.stringify(v);
  return ` (got ${s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s})`;
}

class Checker {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  fail(path: string, expected: string): never {
    throw new ConfigError(this.file, path, expected);
  }
  obj(v: unknown, path: string, known: readonly string[]): Obj {
    if (v === undefined) return {};
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, `expected a mapping${got(v)}`);
    for (const k of Object.keys(v as Obj)) if (!known.includes(k)) this.fail(`${path}.${k}`, `unknown key; expected one of ${known.join(', ')}`);
    return v as Obj;
  }
  int(v: unknown, path: string, def: number, min: number, max: number): number {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(path, `expected an integer from ${min} to ${max}${got(v)}`);
    return v;
  }
  bool(v: unknown, path: string, def: boolean): boolean {
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false${got(v)}`);
    return v;
  }
  strList(v: unknown, path: string): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(path, `expected a list of strings${got(v)}`);
    return v as string[];
  }
}

export function parseMonitorConfig(raw: unknown, source: { file: string; path: string }): MonitorConfig {
  const c = new Checker(source.file);
  const at = (...k: string[]): string => [source.path, ...k].filter((x) => x !== '').join('.');
  const root = c.obj(raw ?? {}, source.path, [
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
    if (!f.startsWith('/')) c.fail(`${at('rule-files')}[${i}]`, `expected an absolute path${got(f)}`);
  });
  if (root.rules !== undefined && typeof root.rules !== 'string') c.fail(at('rules'), `expected rule text (a string, one rule per line)${got(root.rules)}`);
  const cf = root['classification-file'];
  if (cf !== undefined && (typeof cf !== 'string' || !cf.startsWith('/'))) c.fail(at('classification-file'), `expected an absolute path${got(cf)}`);
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.obj(root.vars, at('vars'), Object.keys((root.vars ?? {}) as Obj)))) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) c.fail(at('vars', k), 'expected a variable name of capitals, digits and _ (like HOME_NET)');
    if (typeof v !== 'string' && typeof v !== 'number') c.fail(at('vars', k), `expected an address or port spec like "[198.18.0.0/24]"${got(v)}`);
    vars[k] = String(v);
  }
  const domains = c.strList(root.domains, at('domains'));
  const fl = c.obj(root.flow, at('flow'), ['max', 'max-per-source', 'new-timeout-s', 'established-timeout-s', 'closed-timeout-s']);
  const flowMax = c.int(fl.max, at('flow', 'max'), FLOW_DEFAULTS.max, 16, 1 << 22);
  const flow: FlowLimits = {
    max: flowMax,
    // Default: a quarter of max (the documented default 16384 of 65536).
    maxPerSource: c.int(fl['max-per-source'], at('flow', 'max-per-source'), Math.max(1, flowMax >> 2), 1, flowMax),
    newMs: c.int(fl['new-timeout-s'], at('flow', 'new-timeout-s'), FLOW_DEFAULTS.newMs / 1000, 1, 86400) * 1000,
    establishedMs: c.int(fl['established-timeout-s'], at('flow', 'established-timeout-s'), FLOW_DEFAULTS.establishedMs / 1000, 1, 86400) * 1000,
    closedMs: c.int(fl['closed-timeout-s'], at('flow', 'closed-timeout-s'), FLOW_DEFAULTS.closedMs / 1000, 1, 86400) * 1000,
  };
  const df = c.obj(root.defrag, at('defrag'), ['max-trackers', 'max-trackers-per-source', 'max-bytes', 'max-fragments', 'timeout-s']);
  const defrag: DefragLimits = {
    maxTrackers: c.int(df['max-trackers'], at('defrag', 'max-trackers'), DEFRAG_DEFAULTS.maxTrackers, 1, 1 << 20),
    maxTrackersPerSource: c.int(df['max-trackers-per-source'], at('defrag', 'max-trackers-per-source'), DEFRAG_DEFAULTS.maxTrackersPerSource, 1, 1 << 20),
    maxBytes: c.int(df['max-bytes'], at('defrag', 'max-bytes'), DEFRAG_DEFAULTS.maxBytes, 65536, 1 << 30),
    maxFragments: c.int(df['max-fragments'], at('defrag', 'max-fragments'), DEFRAG_DEFAULTS.maxFragments, 2, 8192),
    timeoutMs: c.int(df['timeout-s'], at('defrag', 'timeout-s'), DEFRAG_DEFAULTS.timeoutMs / 1000, 1, 3600) * 1000,
  };
  const sr = c.obj(root.stream, at('stream'), ['depth', 'overlap', 'max-segments', 'memcap']);
  const stream: StreamLimits = {
    depth: c.int(sr.depth, at('stream', 'depth'), STREAM_DEFAULTS.depth, 0, 1 << 30),
    overlap: c.int(sr.overlap, at('stream', 'overlap'), STREAM_DEFAULTS.overlap, 64, 1 << 20),
    maxSegments: c.int(sr['max-segments'], at('stream', 'max-segments'), STREAM_DEFAULTS.maxSegments, 1, 65536),
    memcap: c.int(sr.memcap, at('stream', 'memcap'), STREAM_DEFAULTS.memcap, 1 << 20, 1 << 30),
  };
  const dt = c.obj(root.detectors, at('detectors'), ['port-scan', 'syn-flood', 'arp-spoof', 'max-tracked', 'max-tracked-per-source']);
  const ps = c.obj(dt['port-scan'], at('detectors', 'port-scan'), ['enabled', 'ports', 'seconds']);
  const sf = c.obj(dt['syn-flood'], at('detectors', 'syn-flood'), ['enabled', 'rate', 'seconds']);
  const as = c.obj(dt['arp-spoof'], at('detectors', 'arp-spoof'), ['enabled', 'binding-s']);
  const D = DETECTOR_DEFAULTS;
  const detectors: DetectorConfig = {
    portScan: {
      enabled: c.bool(ps.enabled, at('detectors', 'port-scan', 'enabled'), D.portScan.enabled),
      ports: c.int(ps.ports, at('detectors', 'port-scan', 'ports'), D.portScan.ports, 2, 65536),
      seconds: c.int(ps.seconds, at('detectors', 'port-scan', 'seconds'), D.portScan.seconds, 1, 3600),
    },
    synFlood: {
      enabled: c.bool(sf.enabled, at('detectors', 'syn-flood', 'enabled'), D.synFlood.enabled),
      rate: c.int(sf.rate, at('detectors', 'syn-flood', 'rate'), D.synFlood.rate, 1, 1e9),
      seconds: c.int(sf.seconds, at('detectors', 'syn-flood', 'seconds'), D.synFlood.seconds, 1, 3600),
    },
    arpSpoof: {
      enabled: c.bool(as.enabled, at('detectors', 'arp-spoof', 'enabled'), D.arpSpoof.enabled),
      bindingS: c.int(as['binding-s'], at('detectors', 'arp-spoof', 'binding-s'), D.arpSpoof.bindingS, 1, 86400 * 7),
    },
    maxTracked: c.int(dt['max-tracked'], at('detectors', 'max-tracked'), D.maxTracked, 16, 1 << 22),
    maxTrackedPerSource: c.int(dt['max-tracked-per-source'], at('detectors', 'max-tracked-per-source'), D.maxTrackedPerSource, 1, 1 << 22),
  };
  const ev = c.obj(root.eve, at('eve'), ['ring', 'types', 'packet-bytes']);
  const types = ev.types === undefined ? [...DEFAULTS.eveTypes] : c.strList(ev.types, at('eve', 'types'));
  types.forEach((t, i) => {
    if (!(EVE_TYPES as readonly string[]).includes(t)) c.fail(`${at('eve', 'types')}[${i}]`, `expected one of ${EVE_TYPES.join(', ')}${got(t)}`);
  });
  const fail = (path: string, expected: string): never => c.fail(path, expected);
  const block = parseBlockRules(root.block, at('block'), fail);
  const blockExempt = parseBlockExempt(root['block-exempt'], at('block-exempt'), fail);
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
      ring: c.int(ev.ring, at('eve', 'ring'), DEFAULTS.eveRing, 16, 1 << 20),
      types: types as EveType[],
      packetBytes: c.int(ev['packet-bytes'], at('eve', 'packet-bytes'), DEFAULTS.packetBytes, 0, 65535),
    },
    statsIntervalS: c.int(root['stats-interval-s'], at('stats-interval-s'), DEFAULTS.statsIntervalS, 0, 86400),
    nice: c.int(root.nice, at('nice'), DEFAULTS.nice, 0, 19),
    block,
    blockExempt,
  };
}

/** init's side: the classtype table the monitor will use (built-in, or the classification file's). */
function classificationsOf(cfg: MonitorConfig, file: string, path: string): Map<string, ClassType> {
  if (cfg.classificationFile === undefined) return builtinClassifications();
  let text: string;
  try {
    text = readFileSync(cfg.classificationFile, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `${path}.classification-file`, `a readable classification file (${(e as Error).message})`);
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
  cfg.ruleFiles.forEach((f, i) => {
    try {
      readFileSync(f, { flag: 'r' }).length;
    } catch (e) {
      throw new ConfigError(file, `${path}.rule-files[${i}]`, `a readable rule file (${(e as Error).message})`);
    }
  });
  const classes = cfg.classificationFile !== undefined || cfg.block.length > 0 ? classificationsOf(cfg, file, path) : undefined;
  for (const r of cfg.block) {
    if (r.match.kind === 'classtype' && !classes!.has(r.match.classtype)) {
      const near = [...classes!.keys()].filter((k) => k.split('-')[0] === (r.match as { classtype: string }).classtype.split('-')[0]).slice(0, 6);
      throw new ConfigError(file, `${r.path}.classtype`,
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
