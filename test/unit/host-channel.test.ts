// The component host's end of the control channel, without a sandbox or
// root: src/runtime/host.ts started as init starts it (fd 3 a socket pair,
// framed messages), with no components. It says hello, answers the
// bootstrap with ready and a ping with a pong, stops on "stop", and exits
// when init's end of the channel closes (init is gone: so is the host).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { FrameDecoder, MAX_HOST_FRAME, encodeFrame } from '../../src/runtime/channel.ts';
import { isViolation, parseHostMessage } from '../../src/init/host-messages.ts';
import type { HostToInit } from '../../src/runtime/messages.ts';

const HOST = fileURLToPath(new URL('../../src/runtime/host.ts', import.meta.url));

function startHost(): { proc: ChildProcess; ch: Socket; next: () => Promise<HostToInit>; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [HOST], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: { ...process.env, MG_NO_SECCOMP: '1', MG_COMPONENT: 'test' } });
  const ch = proc.stdio[3] as Socket;
  const queue: HostToInit[] = [];
  const waiting: ((m: HostToInit) => void)[] = [];
  const dec = new FrameDecoder(MAX_HOST_FRAME, (p) => {
    const m = parseHostMessage(p);
    assert.ok(!isViolation(m), `the host sent a valid message: ${JSON.stringify(m)}`);
    const w = waiting.shift();
    if (w !== undefined) w(m);
    else queue.push(m);
  });
  ch.on('data', (d: Buffer) => assert.equal(dec.push(d), undefined));
  ch.on('error', () => undefined);
  const next = (): Promise<HostToInit> => {
    const m = queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    return new Promise((r, j) => {
      const t = setTimeout(() => j(new Error('no message from the host within 10 s')), 10000);
      waiting.push((x) => {
        clearTimeout(t);
        r(x);
      });
    });
  };
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, ch, next, exited };
}

test('host: hello, bootstrap -> ready, ping -> pong, stop -> exit 0, all framed', async () => {
  const h = startHost();
  try {
    assert.deepEqual(await h.next(), { type: 'hello', pid: h.proc.pid });
    h.ch.write(encodeFrame({ type: 'bootstrap', components: [] }));
    assert.deepEqual(await h.next(), { type: 'ready' });
    h.ch.write(encodeFrame({ type: 'ping' }));
    assert.deepEqual(await h.next(), { type: 'pong' });
    h.ch.write(encodeFrame({ type: 'status', id: 7 }));
    assert.deepEqual(await h.next(), { type: 'status', id: 7, components: [] });
    h.ch.write(encodeFrame({ type: 'stop' }));
    assert.equal(await h.exited, 0);
  } finally {
    if (h.proc.exitCode === null) h.proc.kill('SIGKILL');
  }
});

test('host: exits when init\'s end of the channel closes', async () => {
  const h = startHost();
  try {
    await h.next();
    h.ch.destroy();
    assert.equal(await h.exited, 0);
  } finally {
    if (h.proc.exitCode === null) h.proc.kill('SIGKILL');
  }
});
