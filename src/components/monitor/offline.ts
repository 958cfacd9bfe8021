// Offline mode, like `suricata -r`: run the engine over a capture with rule
// files and write EVE lines. Used by `microgate monitor --pcap` and by the
// suricata-verify tests.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Engine, DEFAULT_EVE_TYPES, type EveType } from './engine.ts';
import { readCapture } from './pcap.ts';
import { builtinClassifications, parseClassifications, type ClassType } from './rules/classification.ts';
import { loadRules, type LoadResult, type RuleSource } from './rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from './rules/vars.ts';

export interface OfflineOptions {
  pcap: string;
  ruleFiles: string[];
  /** Inline rules (after the files). */
  rules?: string;
  classificationFile?: string;
  vars?: Record<string, string>;
  midstream?: boolean;
  eveTypes?: readonly EveType[];
  /** Bytes of each alert's packet put in EVE (default 65535). */
  packetBytes?: number;
  emit: (line: string) => void;
}

export interface OfflineResult {
  packets: number;
  alerts: number;
  rules: LoadResult;
  engine: Engine;
  error?: string;
}

export function loadRuleSet(ruleFiles: string[], inline: string | undefined, vars: Record<string, string> | undefined,
  classifications: Map<string, ClassType>): LoadResult {
  const sources: RuleSource[] = ruleFiles.map((f) => ({ name: f, text: readFileSync(f, 'utf8') }));
  if (inline !== undefined) sources.push({ name: '(inline)', text: inline });
  return loadRules(sources, { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS, ...(vars ?? {}) }, classifications });
}

export function loadClassifications(file: string | undefined): Map<string, ClassType> {
  if (file === undefined) return builtinClassifications();
  const { map, errors } = parseClassifications(readFileSync(file, 'utf8'));
  if (errors.length > 0) throw new Error(`${file}: ${errors[0]}`);
  return map;
}

export function runOffline(o: OfflineOptions): OfflineResult {
  const classifications = loadClassifications(o.classificationFile);
  const rules = loadRuleSet(o.ruleFiles, o.rules, o.vars, classifications);
  const engine = new Engine({
    rules,
    classifications,
    midstream: o.midstream ?? false,
    eveTypes: o.eveTypes ?? DEFAULT_EVE_TYPES,
    eve: { pktSrc: 'wire/pcap', pcapFilename: o.pcap, domains: [], packetBytes: o.packetBytes ?? 65535 },
    emit: (line) => o.emit(line),
  });
  const data = readFileSync(o.pcap);
  let n = 0;
  let error: string | undefined;
  try {
    for (const pkt of readCapture(data, basename(o.pcap))) {
      n++;
      engine.process(pkt.data, 0, pkt.data.length, pkt.linktype, pkt.tsSec, pkt.tsUsec, n);
    }
  } catch (e) {
    error = (e as Error).message;
  }
  engine.finish('shutdown');
  return { packets: n, alerts: engine.stats.alerts, rules, engine, error };
}
