// Journal priorities of log lines (src/sys/journal.ts) and the journal stream check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync } from 'node:fs';
import { isJournalStream, linePriority, LOG_ERR, LOG_INFO, LOG_WARNING } from '../../src/sys/journal.ts';

test('priorities: components\' levels as they log them, init\'s lines by what they report', () => {
  assert.equal(linePriority('[router] error router: config rejected'), LOG_ERR);
  assert.equal(linePriority('[drv-wan] warn nic-driver: link down'), LOG_WARNING);
  assert.equal(linePriority('[monitor] info monitor: monitor started {"rules":12}'), LOG_INFO);
  assert.equal(linePriority('init: router failed to start: exit 1'), LOG_ERR);
  assert.equal(linePriority('init: router (pid 42) missed 5 heartbeats (5000 ms): killing it'), LOG_WARNING);
  assert.equal(linePriority('init: router (pid 42) died with SIGKILL; restarting in 100 ms'), LOG_WARNING);
  assert.equal(linePriority('init: ready: 3 components; control API on /run/microgate/init/control.sock'), LOG_INFO);
  // A component cannot raise its own line's priority by writing "error" in the middle of an info line.
  assert.equal(linePriority('[router] info router: the word error in a message'), LOG_INFO);
});

test('the journal stream is recognised by device and inode only', () => {
  const st = fstatSync(1);
  assert.equal(isJournalStream(1, { JOURNAL_STREAM: `${st.dev}:${st.ino}` }), true);
  assert.equal(isJournalStream(1, { JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }), false);
  assert.equal(isJournalStream(1, {}), false);
});
