// The bounded log files (issue 13, finding 8): the shared rotating writer, and
// its users: the file gateway's audit.jsonl and init's EVE collector
// (eve.json); init's own log (gateway.log) uses the same writer through
// `microgate run --log`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOG_KEEP, LOG_MAX_BYTES, RotatingFile } from '../../src/sys/rotating-file.ts';
import { AuditLog } from '../../src/services/file-gateway/audit.ts';
import { EveCollector } from '../../src/init/eve-collector.ts';

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-rot-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('rotating file: never past maxBytes, whole lines only, keep old files, the oldest dropped; appends to an existing file', withDir((dir) => {
  assert.equal(LOG_MAX_BYTES, 16 * 1024 * 1024);
  assert.equal(LOG_KEEP, 4);
  const path = join(dir, 'x.log');
  writeFileSync(path, 'old line\n');
  const f = new RotatingFile(path, { maxBytes: 100, keep: 2 });
  assert.equal(f.size, 9, 'continues the existing file');
  const lines: string[] = [];
  for (let i = 0; i < 100; i++) {
    const l = `line ${String(i).padStart(3, '0')} ${'x'.repeat(i % 20)}\n`;
    lines.push(l);
    f.write(l);
  }
  f.close();
  const files = readdirSync(dir).sort();
  assert.deepEqual(files, ['x.log', 'x.log.1', 'x.log.2'], 'the current file and keep=2 old ones, no more');
  for (const n of files) {
    const st = statSync(join(dir, n));
    assert.ok(st.size <= 100, `${n}: ${st.size} bytes`);
    assert.ok(readFileSync(join(dir, n), 'utf8').endsWith('\n'), `${n} ends with a whole line`);
  }
  // Newest last, in order, across the files; nothing lost within what is kept.
  const kept = ['x.log.2', 'x.log.1', 'x.log'].map((n) => readFileSync(join(dir, n), 'utf8')).join('');
  assert.ok(lines.join('').endsWith(kept), 'the kept files are the most recent lines, in order');
  assert.ok(f.counters.rotations > 10);
  // A record larger than the whole file is cut, marked.
  const g = new RotatingFile(join(dir, 'y.log'), { maxBytes: 64, keep: 1 });
  g.write(`${'z'.repeat(500)}\n`);
  g.close();
  const y = readFileSync(join(dir, 'y.log'), 'utf8');
  assert.ok(y.length <= 64 && y.endsWith(' [truncated]\n'));
  assert.throws(() => new RotatingFile(join(dir, 'z.log'), { maxBytes: 10 }), RangeError);
}));

test('audit.jsonl rotates at its bound', withDir((dir) => {
  const file = join(dir, 'audit.jsonl');
  const a = new AuditLog({ file, rotate: { maxBytes: 1000, keep: 3 } });
  for (let i = 0; i < 200; i++) a.write({ event: 'login', result: 'failed', user: `u${i}`, from: '192.0.2.1', status: 401 });
  void a.close();
  assert.ok(statSync(file).size <= 1000);
  assert.ok(existsSync(`${file}.3`) && !existsSync(`${file}.4`));
  for (const l of readFileSync(file, 'utf8').trim().split('\n')) assert.equal((JSON.parse(l) as { event: string }).event, 'login');
}));

test("init's EVE collector writes eve.json through the rotating writer", withDir(async (dir) => {
  const file = join(dir, 'eve', 'eve.json');
  let seq = 0;
  const query = (): Promise<{ result: unknown }> => {
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ event_type: 'alert', n: seq + i }));
    seq += 20;
    return Promise.resolve({ result: { seq, lines, missed: 0 } });
  };
  const c = new EveCollector(query, [{ component: 'monitor', file }], { intervalMs: 3_600_000, rotate: { maxBytes: 2000, keep: 2 } });
  for (let i = 0; i < 20; i++) await c.collect();
  await c.stop();
  assert.ok(statSync(file).size <= 2000);
  assert.ok(existsSync(`${file}.2`) && !existsSync(`${file}.3`));
  assert.equal((c.status()[0] as { errors: number }).errors, 0);
  const last = readFileSync(file, 'utf8').trim().split('\n').at(-1)!;
  assert.equal((JSON.parse(last) as { n: number }).n, seq - 1, 'the newest record is in eve.json');
}));
