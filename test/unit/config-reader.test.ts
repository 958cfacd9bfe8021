// The one config reader (src/config/reader.ts, yaml.ts): the helpers every
// component and service reads its config with, the one error class, and the
// line init adds to an error a component's validator raised without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigFileError, fmtPath, got, parsePath, readConfigText, Reader } from '../../src/config/reader.ts';
import { parseYaml } from '../../src/config/yaml.ts';

function failure(f: () => unknown): ConfigFileError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigFileError, String(e));
    return e;
  }
  assert.fail('expected a ConfigFileError');
}

test('reader: a section reader has no lines; its errors name file, path and expectation', () => {
  const r: Reader = new Reader('gw.yaml');
  const base = parsePath('components[3].config');
  const e = failure(() => r.int(1, [...base, 'flow', 'max'], 16, 1024, 64));
  assert.equal(e.message, 'gw.yaml: components[3].config.flow.max: expected an integer from 16 to 1024 (got 1)');
  assert.equal(e.line, undefined);
  assert.equal(e.path, 'components[3].config.flow.max');
  assert.equal(e.expected, 'expected an integer from 16 to 1024 (got 1)');
  assert.equal(e.code, 'MG_CONFIG_INVALID');
  // withLine: the same error with the line; an error that has one keeps it.
  const lined = e.withLine(31);
  assert.equal(lined.message, 'gw.yaml:31: components[3].config.flow.max: expected an integer from 16 to 1024 (got 1)');
  assert.equal(lined.withLine(7).line, 31);
  assert.equal(e.withLine(undefined), e);
});

test('reader: defaults for missing values, never for wrong ones', () => {
  const r: Reader = new Reader('f.yaml');
  assert.equal(r.int(undefined, ['a'], 1, 9, 5), 5);
  assert.equal(r.bool(undefined, ['b'], true), true);
  assert.deepEqual(r.optObj(undefined, ['c'], ['x']), {});
  assert.deepEqual(r.strList(undefined, ['d']), []);
  assert.equal(r.seconds(undefined, ['e'], 2500, 0.1, 60), 2500);
  assert.equal(r.seconds(0.25, ['e'], 2500, 0.1, 60), 250);
  assert.match(failure(() => r.int(null, ['a'], 1, 9, 5)).message, /^f\.yaml: a: expected an integer from 1 to 9 \(got null\)$/);
  assert.match(failure(() => r.int(undefined, ['a'], 1, 9)).message, /a: expected an integer from 1 to 9 \(missing\)$/);
  assert.match(failure(() => r.bool('yes', ['b'], true)).message, /b: expected true or false \(got "yes"\)$/);
  assert.match(failure(() => r.optObj([], ['c'], ['x'], 'a mapping like { x: 1 }')).message, /c: expected a mapping like \{ x: 1 \} \(got \[\]\)$/);
  assert.match(failure(() => r.optObj({ y: 1 }, ['c'], ['x'])).message, /c\.y: unknown key; expected one of x$/);
  assert.match(failure(() => r.strList(['a', 2], ['d'])).message, /d: expected a list of strings \(got \["a",2\]\)$/);
  for (const bad of [0.05, 61, Infinity, NaN, '5']) {
    assert.match(failure(() => r.seconds(bad, ['e'], 1, 0.1, 60)).message, /e: expected a number of seconds from 0\.1 to 60 \(got/);
  }
});

test('reader: got() clips long values; fmtPath and parsePath agree', () => {
  assert.equal(got(undefined), ' (missing)');
  assert.equal(got('x'.repeat(100)), ` (got "${'x'.repeat(56)}...)`);
  const path = ['components', 2, 'config', 'domains', 'lan'];
  assert.equal(fmtPath(path), 'components[2].config.domains.lan');
  assert.deepEqual(parsePath(fmtPath(path)), path);
});

test('reader: a YAML file: lines of paths, syntax errors and unreadable files are ConfigFileErrors naming the file', () => {
  const { value, r } = parseYaml('a:\n  b:\n    c: 1\n', 'x.yaml');
  assert.deepEqual(value, { a: { b: { c: 1 } } });
  assert.equal(r.line(['a', 'b', 'c']), 3);
  assert.equal(failure(() => r.int(1, ['a', 'b', 'c'], 2, 3)).message, 'x.yaml:3: a.b.c: expected an integer from 2 to 3 (got 1)');
  assert.match(failure(() => parseYaml('a: [', 'x.yaml')).message, /^x\.yaml:1: \(top level\): YAML syntax error/);
  assert.match(failure(() => readConfigText('/nonexistent/mg-reader.yaml')).message, /^\/nonexistent\/mg-reader\.yaml: \(top level\): cannot read the file: ENOENT/);
});
