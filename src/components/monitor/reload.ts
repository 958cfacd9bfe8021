// The monitor's rule set from its config, and what a reload may change.
// `microgate reload` (init re-reads the rule files: prepareMonitorConfig)
// hands the monitor its new config section; only the rules may change
// (rule files and their text, inline rules, builtin-rules, vars, the
// classification file). Everything else (flow, defrag, stream, detector
// limits, EVE, block feedback, domains) sizes live state or is held by init:
// a change there is refused, naming the key, and needs a restart.
import type { MonitorConfig } from './config.ts';
import { builtinClassifications, parseClassifications, type ClassType } from './rules/classification.ts';
import { loadRules, type LoadResult, type RuleSource } from './rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from './rules/vars.ts';

/** The config keys (as written in the config) a reload may change, by MonitorConfig field. */
const RELOADABLE: Partial<Record<keyof MonitorConfig, string>> = {
  ruleFiles: 'rule-files', ruleTexts: 'rule-files', rules: 'rules', builtinRules: 'builtin-rules',
  classificationFile: 'classification-file', classificationText: 'classification-file', vars: 'vars',
};

/** Config keys of the other fields, for the refusal. */
const FIXED_KEYS: Partial<Record<keyof MonitorConfig, string>> = {
  statsIntervalS: 'stats-interval-s', blockExempt: 'block-exempt',
};

/** The first key outside the rules whose value differs between cur and next (undefined: none). */
export function fixedChange(cur: MonitorConfig, next: MonitorConfig, curRaw: unknown, nextRaw: unknown): string | undefined {
  for (const k of Object.keys(cur) as (keyof MonitorConfig)[]) {
    if (RELOADABLE[k] !== undefined) continue;
    if (JSON.stringify(cur[k]) !== JSON.stringify(next[k])) return FIXED_KEYS[k] ?? k;
  }
  // init's own key: where the EVE log goes.
  const log = (r: unknown): unknown => (r as Record<string, unknown> | null)?.['eve-log'];
  if (log(curRaw) !== log(nextRaw)) return 'eve-log';
  return undefined;
}

export interface RuleSet {
  rules: LoadResult;
  classifications: Map<string, ClassType>;
}

/**
 * Load the rule set a config names: built-in rules (when on), the rule files'
 * text (init put it in the config), inline rules. `flowbits`: the names of
 * the set this one replaces, so flows' bits keep their meaning.
 */
export function buildRuleSet(cfg: MonitorConfig, builtinText: () => string, flowbits?: readonly string[]): RuleSet {
  let classifications = builtinClassifications();
  if (cfg.classificationText !== undefined) classifications = parseClassifications(cfg.classificationText).map;
  const sources: RuleSource[] = [];
  if (cfg.builtinRules) sources.push({ name: 'builtin.rules', text: builtinText() });
  sources.push(...cfg.ruleTexts);
  if (cfg.rules !== '') sources.push({ name: '(config rules)', text: cfg.rules });
  const rules = loadRules(sources, { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS, ...cfg.vars }, classifications, flowbits });
  return { rules, classifications };
}
