// The init <-> component channel without a lab: the frame reader (bounded,
// refuses empty and oversize frames, reassembles frames split anywhere), the
// check of every host message (each sub-finding of issue 13 as an input), the
// escaping of text init logs, the bounded line reader of a child's output, the
// check of the monitor's EVE answers, and the gate of the `hostile` fault kind.
// The same attacks against a live gateway: test/integration/compromised.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { FrameDecoder, MAX_HOST_FRAME, encodeFrame } from '../../src/runtime/channel.ts';
import { escapeText, isViolation, parseHostMessage } from '../../src/init/host-messages.ts';
import { logLines } from '../../src/init/log-lines.ts';
import { checkEveAnswer } from '../../src/init/eve-collector.ts';
import { checkFault, HOSTILE_ATTACKS } from '../../src/init/fault.ts';

function frames(max = 1024): { dec: FrameDecoder; got: string[] } {
  const got: string[] = [];
  const dec = new FrameDecoder(max, (p) => got.push(p.toString('utf8')));
  return { dec, got };
}

test('frames: reassembled however the stream is cut, in order', () => {
  const { dec, got } = frames();
  const all = Buffer.concat([encodeFrame({ type: 'pong' }), encodeFrame({ type: 'ready' }), encodeFrame({ a: 'x'.repeat(300) })]);
  for (let i = 0; i < all.length; i++) assert.equal(dec.push(all.subarray(i, i + 1)), undefined);
  assert.deepEqual(got.map((g) => JSON.parse(g)), [{ type: 'pong' }, { type: 'ready' }, { a: 'x'.repeat(300) }]);
  assert.equal(dec.buffered, 0);
});

test('frames: an oversize or empty frame ends the stream before anything is buffered; later input is ignored', () => {
  const a = frames(100);
  const big = Buffer.alloc(8);
  big.writeUInt32BE(101, 0);
  assert.equal(a.dec.push(big)?.code, 'frame-oversize');
  assert.equal(a.dec.buffered, 0);
  assert.equal(a.dec.push(encodeFrame({ type: 'pong' })), undefined);
  assert.deepEqual(a.got, []);
  const b = frames(100);
  assert.equal(b.dec.push(Buffer.alloc(4))?.code, 'frame-empty');
  // The original finding: "null\n" on the old line channel is a length of 0x6e756c6c here.
  const c = frames(MAX_HOST_FRAME);
  assert.equal(c.dec.push(Buffer.from('null\n'))?.code, 'frame-oversize');
  // A flood without a newline: refused at its first four bytes, never buffered.
  const d = frames(MAX_HOST_FRAME);
  assert.equal(d.dec.push(Buffer.from(`{"type":"pong","x":"${'a'.repeat(1 << 16)}`))?.code, 'frame-oversize');
  assert.equal(d.dec.buffered, 0);
});

test('frames: a partial frame holds at most its announced length; stop() takes nothing more', () => {
  const { dec, got } = frames(1000);
  const f = encodeFrame({ x: 'y'.repeat(900) });
  dec.push(f.subarray(0, 500));
  assert.equal(dec.buffered, 496);
  dec.stop();
  dec.push(f.subarray(500));
  assert.deepEqual(got, []);
  assert.equal(dec.buffered, 0);
});

function verdict(text: string): string {
  const m = parseHostMessage(Buffer.from(text));
  return isViolation(m) ? m.code : `ok:${m.type}`;
}

test('host messages: each sub-finding is refused with its own code', () => {
  assert.equal(verdict('null'), 'bad-shape');
  assert.equal(verdict('{"type":"pong",'), 'bad-json');
  assert.equal(verdict('[1,2]'), 'bad-shape');
  assert.equal(verdict('"pong"'), 'bad-shape');
  assert.equal(verdict('{"type":"exec","cmd":"sh"}'), 'unknown-type');
  assert.equal(verdict('{"cmd":"sh"}'), 'unknown-type');
  assert.equal(verdict('{"type":"hello"}'), 'bad-shape');
  assert.equal(verdict('{"type":"hello","pid":"1"}'), 'bad-shape');
  assert.equal(verdict('{"type":"pong","extra":1}'), 'bad-shape');
  assert.equal(verdict('{"type":"status","id":"1","components":{}}'), 'bad-shape');
  assert.equal(verdict('{"type":"status","id":1,"components":[{"name":"r"}]}'), 'bad-shape');
  assert.equal(verdict('{"type":"query-result","id":0}'), 'bad-shape');
  assert.equal(verdict('{"type":"query-result","id":3,"error":5}'), 'bad-shape');
  assert.equal(verdict('{"type":"fatal","message":7}'), 'bad-shape');
  assert.equal(verdict(`{"type":"fatal","message":"${'x'.repeat(70000)}"}`), 'bad-shape');
  assert.equal(verdict('{"type":"trace","id":2,"reply":{"tracers":[],"captures":[]}}'), 'bad-shape');
  // Not UTF-8.
  const m = parseHostMessage(Buffer.from([0x7b, 0xff, 0x7d]));
  assert.ok(isViolation(m) && m.code === 'bad-json');
});

test('host messages: the honest ones pass', () => {
  assert.equal(verdict('{"type":"hello","pid":42}'), 'ok:hello');
  assert.equal(verdict('{"type":"pong"}'), 'ok:pong');
  assert.equal(verdict('{"type":"ready"}'), 'ok:ready');
  assert.equal(verdict('{"type":"fatal","message":"no such module"}'), 'ok:fatal');
  assert.equal(verdict('{"type":"query-result","id":3,"result":{"seq":1,"lines":[],"missed":0}}'), 'ok:query-result');
  assert.equal(verdict('{"type":"fault-done","id":3}'), 'ok:fault-done');
  assert.equal(verdict('{"type":"session-reset-done","id":3,"error":"x"}'), 'ok:session-reset-done');
  const report = { name: 'router', status: { a: 1 }, counters: { forwarded: 3 }, sessions: { lan: { 'in.packets': 1 } }, loop: { turns: 1, sleeps: 2, idleNs: '123', busyNs: '45', yields: 0 } };
  assert.equal(verdict(JSON.stringify({ type: 'status', id: 9, components: [report] })), 'ok:status');
  const reply = { tracers: [{ component: 'router' }], captures: [], status: { tracers: [], captures: [] }, matched: 0, errors: [] };
  assert.equal(verdict(JSON.stringify({ type: 'trace', id: 9, reply })), 'ok:trace');
});

test('escapeText: no line breaks or control characters survive; long text is cut and says so', () => {
  const e = escapeText('boom\ninit: FORGED\r\u001b[2J\u0000\u2028\\');
  assert.equal(e, 'boom\\ninit: FORGED\\r\\u001b[2J\\u0000\\u2028\\\\');
  assert.doesNotMatch(e, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
  const long = escapeText('x'.repeat(1000), 100);
  assert.ok(long.startsWith('x'.repeat(100)) && long.endsWith('... (1000 characters)'));
});

test('logLines: a line without a newline costs at most the cap; lines are cut and escaped', async () => {
  const s = new PassThrough();
  const got: string[] = [];
  logLines(s, (l) => got.push(l), 64);
  s.write('first\nsec');
  s.write('ond \u001b[2J\n');
  for (let i = 0; i < 100; i++) s.write('z'.repeat(1000));
  s.write('\nlast');
  s.end();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['first', 'second \\u001b[2J', `${'z'.repeat(64)} [cut]`, 'last']);
});

test('checkEveAnswer: the monitor reply without lines and other wrong shapes are refused', () => {
  assert.deepEqual(checkEveAnswer({ seq: 2, lines: ['{"a":1}'], missed: 0 }), { seq: 2, lines: ['{"a":1}'], missed: 0 });
  assert.equal(typeof checkEveAnswer({ seq: 5 }), 'string');
  assert.equal(typeof checkEveAnswer(null), 'string');
  assert.equal(typeof checkEveAnswer({ seq: -1, lines: [], missed: 0 }), 'string');
  assert.equal(typeof checkEveAnswer({ seq: 1, lines: [3], missed: 0 }), 'string');
  assert.equal(typeof checkEveAnswer({ seq: 1, lines: ['{"a":1}\n{"forged":1}'], missed: 0 }), 'string');
  assert.equal(typeof checkEveAnswer({ seq: 1, lines: ['not json'], missed: 0 }), 'string');
  assert.equal(typeof checkEveAnswer({ seq: 1, lines: ['[1]'], missed: 0 }), 'string');
  assert.equal(typeof checkEveAnswer({ seq: 1, lines: [], missed: 0, more: 1 }), 'string');
});

test('fault kind hostile: needs a known attack; other kinds take none', () => {
  const target = { known: true, state: 'running', memoryLimited: false, heartbeat: true, packetLink: false };
  assert.equal(checkFault(true, 'router', 'hostile', target, 'null-line'), undefined);
  for (const a of HOSTILE_ATTACKS) assert.equal(checkFault(true, 'router', 'hostile', target, a), undefined);
  assert.equal(checkFault(true, 'router', 'hostile', target)?.status, 400);
  assert.equal(checkFault(true, 'router', 'hostile', target, 'rm -rf')?.status, 400);
  assert.equal(checkFault(true, 'router', 'throw', target, 'null-line')?.status, 400);
  assert.equal(checkFault(false, 'router', 'hostile', target, 'null-line')?.status, 403);
});
