// The layer check (scripts/check-layers.ts) over the real tree: every import
// in src/ points down the layers of docs/ARCHITECTURE.md and no files import
// each other in a circle. And proof that the check can fail: a small tree
// under the temp folder with an upward import, a circle, an unknown folder
// and an import from outside src/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers, importsOf, LAYERS } from '../../scripts/check-layers.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('layers: every import in src/ goes down the layers, and there is no import circle', () => {
  const v = checkLayers(ROOT);
  assert.deepEqual(v, [], `layer violations:\n${v.map((x) => `  ${x.file}: ${x.why}${x.target ? `: ${x.target}` : ''}`).join('\n')}`);
});

test('layers: every folder of src/ is in the table, and the table only points down', () => {
  const order = ['sys', 'net', 'config', 'trace', 'session', 'runtime', 'components', 'init', 'services', 'lab', 'bench', 'cli'];
  assert.deepEqual(Object.keys(LAYERS).sort(), [...order].sort());
  for (const [layer, allowed] of Object.entries(LAYERS)) {
    for (const a of allowed) assert.ok(order.indexOf(a) < order.indexOf(layer), `${layer} may import ${a}, which is not below it`);
  }
  // init is handed its component types: it and the components never import each other.
  assert.ok(!LAYERS.init.includes('components') && !LAYERS.components.includes('init'));
});

test('layers: the import scanner sees static, type, re-export and dynamic imports, and ignores packages', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from '../b/b.ts';",
    "export { c } from './c.ts';",
    "export * from './d.ts';",
    "const e = await import('./e.ts');",
    "import {\n  f,\n  g,\n} from './fg.ts';",
    "import { readFileSync } from 'node:fs';",
    "import { parse } from 'yaml';",
  ].join('\n');
  assert.deepEqual(importsOf(text), ['./a.ts', '../b/b.ts', './c.ts', './d.ts', './e.ts', './fg.ts']);
});

test('layers: the check catches an upward import, a circle, an unknown folder and an import from outside src/', () => {
  const root = mkdtempSync(join(tmpdir(), 'mg-layers-'));
  try {
    const put = (path: string, text: string): void => {
      mkdirSync(dirname(join(root, 'src', path)), { recursive: true });
      writeFileSync(join(root, 'src', path), text);
    };
    put('net/ok.ts', 'export const ok = 1;\n');
    put('runtime/fine.ts', "import { ok } from '../net/ok.ts';\nexport const fine = ok;\n");
    // upward: the runtime may not import init
    put('runtime/up.ts', "import type { X } from '../init/x.ts';\nexport type Y = X;\n");
    put('init/x.ts', 'export type X = number;\n');
    // a circle of three in one folder (allowed edges, one circle)
    put('components/a.ts', "import { b } from './b.ts';\nexport const a = () => b;\n");
    put('components/b.ts', "import { c } from './c.ts';\nexport const b = () => c;\n");
    put('components/c.ts', "export { a as c } from './a.ts';\n");
    put('weird/w.ts', 'export const w = 1;\n');
    put('config/out.ts', "import { x } from '../../scripts/x.ts';\nexport const y = x;\n");
    const v = checkLayers(root);
    const lines = v.map((x) => `${x.file}: ${x.why}: ${x.target}`).sort();
    assert.deepEqual(lines, [
      'components/a.ts: import circle: components/a.ts -> components/b.ts -> components/c.ts',
      'config/out.ts: imports from outside src/: ../../scripts/x.ts',
      'runtime/up.ts: src/runtime may import only src/session, src/trace, src/sys, src/net, src/config: init/x.ts',
      'weird/w.ts: folder src/weird is not in the layer table (scripts/check-layers.ts): ',
    ]);
    // Fixing the upward import and breaking the circle leaves only the planted folder and outside import.
    put('runtime/up.ts', "import type { X } from './x.ts';\nexport type Y = X;\n");
    put('runtime/x.ts', 'export type X = number;\n');
    put('components/c.ts', 'export const c = 3;\n');
    assert.deepEqual(checkLayers(root).map((x) => x.file).sort(), ['config/out.ts', 'weird/w.ts']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
