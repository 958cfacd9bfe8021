// The layer check: every import in src/ must point down the layers drawn in
// docs/ARCHITECTURE.md (or stay in its own folder), and no two files may import
// each other in a circle. Run by test/unit/layers.test.ts (so by `npm test`
// and CI), or by hand: node scripts/check-layers.ts
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Folder of src/ -> the folders it may import (besides itself). */
export const LAYERS: Record<string, readonly string[]> = {
  net: [],
  sys: [],
  config: [],
  trace: ['sys', 'net'],
  session: ['trace', 'sys', 'net'],
  runtime: ['session', 'trace', 'sys', 'net', 'config'],
  components: ['runtime', 'session', 'trace', 'sys', 'net', 'config'],
  init: ['runtime', 'session', 'trace', 'sys', 'net', 'config'],
  services: ['init', 'sys', 'net', 'config'],
  lab: ['services', 'init', 'components', 'runtime', 'session', 'trace', 'sys', 'net', 'config'],
  bench: ['lab', 'services', 'init', 'components', 'runtime', 'session', 'trace', 'sys', 'net', 'config'],
  cli: ['bench', 'lab', 'services', 'init', 'components', 'runtime', 'session', 'trace', 'sys', 'net', 'config'],
};

const IMPORT_RE = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/gm;

export interface Violation {
  file: string;
  target: string;
  why: string;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of one source text (static, re-exports and dynamic with a literal path). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) out.push(m[1] ?? m[2]);
  return out;
}

export function checkLayers(root: string): Violation[] {
  const src = resolve(root, 'src');
  const violations: Violation[] = [];
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(src)) {
    const rel = relative(src, file);
    const layer = rel.split('/')[0];
    const allowed = LAYERS[layer];
    const edges: string[] = [];
    graph.set(rel, edges);
    if (allowed === undefined) {
      violations.push({ file: rel, target: '', why: `folder src/${layer} is not in the layer table (scripts/check-layers.ts)` });
      continue;
    }
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = relative(src, resolve(dirname(file), spec));
      if (target.startsWith('..')) {
        violations.push({ file: rel, target: spec, why: 'imports from outside src/' });
        continue;
      }
      edges.push(target);
      const tl = target.split('/')[0];
      if (tl !== layer && !allowed.includes(tl)) {
        violations.push({ file: rel, target, why: `src/${layer} may import only ${allowed.length ? allowed.map((l) => `src/${l}`).join(', ') : 'itself'}` });
      }
    }
  }
  for (const cycle of cycles(graph)) {
    violations.push({ file: cycle[0], target: cycle.join(' -> '), why: 'import circle' });
  }
  return violations;
}

/** Elementary circles, each reported once (Tarjan's strongly connected components). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (import.meta.main) {
  const v = checkLayers(resolve(dirname(new URL(import.meta.url).pathname), '..'));
  for (const x of v) console.log(`${x.file}: ${x.why}${x.target ? `: ${x.target}` : ''}`);
  console.log(v.length === 0 ? 'layers: ok' : `layers: ${v.length} violation(s)`);
  process.exit(v.length === 0 ? 0 : 1);
}
