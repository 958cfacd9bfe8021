// A rule reload (like `suricatasc reload-rules`): what a new rule set takes
// over from the one it replaces, and whether it may replace it at all.
//
// - A rule whose gid, sid, rev and text are unchanged is the same rule: it
//   keeps its identity (Rule.uid, which keys its threshold state), its hit
//   counter and its pcre counters. Any other rule starts from zero.
// - A reload is refused when the new set has a rule error the running set
//   does not have (same file and rule text): an edit that breaks a rule must
//   not silently drop it. Errors the running set already had (rules needing
//   parsers we lack, say) do not block a reload.
import type { LoadResult, RuleError } from './parse.ts';
import type { Rule } from './rule.ts';

function identity(r: Rule): string {
  return `${r.gid}:${r.sid}:${r.rev}\n${r.text}`;
}

/** Carry the state of unchanged rules of `old` over to `next`; how many were carried. */
export function carryOver(old: LoadResult, next: LoadResult): number {
  const byId = new Map<string, Rule>();
  for (const r of old.rules) byId.set(identity(r), r);
  let kept = 0;
  for (const r of next.rules) {
    const o = byId.get(identity(r));
    if (o === undefined) continue;
    r.uid = o.uid;
    r.hits = o.hits;
    // Same text: the same items in the same order.
    for (const [buf, items] of r.buffers) {
      const oldItems = o.buffers.get(buf);
      if (oldItems === undefined) continue;
      items.forEach((it, i) => {
        const oi = oldItems[i];
        if (it.k === 'pcre' && oi?.k === 'pcre' && oi.spec.source === it.spec.source) Object.assign(it.spec.stats, oi.spec.stats);
      });
    }
    kept++;
  }
  return kept;
}

/** The errors of `next` the running set `old` does not have (a reload with any is refused). */
export function newErrors(old: LoadResult, next: LoadResult): RuleError[] {
  const known = new Set(old.errors.map((e) => `${e.file}\n${e.text}`));
  return next.errors.filter((e) => !known.has(`${e.file}\n${e.text}`));
}

/** One line naming each error: "file:line: sid N: reason". */
export function describeErrors(errors: readonly RuleError[], max = 5): string {
  const parts = errors.slice(0, max).map((e) => `${e.file}:${e.line}: ${e.sid === null ? 'rule' : `sid ${e.sid}`}: ${e.reason}`);
  if (errors.length > max) parts.push(`and ${errors.length - max} more`);
  return parts.join('; ');
}

/** Differences between two rule sets, for the reload's log line. */
export function ruleSetDiff(old: LoadResult, next: LoadResult): { added: number; removed: number; changed: number; unchanged: number } {
  const oldBySid = new Map<string, Rule>();
  for (const r of old.rules) oldBySid.set(`${r.gid}:${r.sid}`, r);
  let added = 0;
  let changed = 0;
  let unchanged = 0;
  const seen = new Set<string>();
  for (const r of next.rules) {
    const k = `${r.gid}:${r.sid}`;
    seen.add(k);
    const o = oldBySid.get(k);
    if (o === undefined) added++;
    else if (identity(o) === identity(r)) unchanged++;
    else changed++;
  }
  let removed = 0;
  for (const k of oldBySid.keys()) if (!seen.has(k)) removed++;
  return { added, removed, changed, unchanged };
}
