// keystore: the only process that holds the tunnel's static private key. init
// opens the key file (as root, without reading it) and grants the fd as the
// device "private-key"; the keystore reads it once, turns it into an OpenSSL
// key object, zeroes every buffer that carried it and closes the fd. Then it
// answers requests from its sessions (any port name: each is one client,
// e.g. a tunnel): X25519 with the static key, and the public key. It never
// sends, logs or reports the private key.
import { closeSync, readSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { Component, ComponentEnv } from '../../runtime/component.ts';
import { parseKeystoreConfig } from './config.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import type { SessionEnd } from '../../session/types.ts';
import { decodeKey, encodeKey, privateKeyObject, rawPublicKey, x25519 } from './keys.ts';
import {
  KS_ARG, KS_BAD_REQUEST, KS_ID, KS_MSG_LEN, KS_OK, KS_OP, KS_OP_DH, KS_OP_PUBLIC_KEY, KS_REFUSED, KS_STATUS,
} from './protocol.ts';

/** Read the key file through its fd: base64 of 32 bytes, as `wg genkey` writes. Every buffer is zeroed. */
export function readPrivateKey(fd: number): KeyObject {
  const buf = Buffer.alloc(256);
  let n = 0;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
    let text = '';
    for (let i = 0; i < n; i++) text += String.fromCharCode(buf[i]);
    const raw = decodeKey(text);
    text = '';
    if (raw === undefined) {
      throw new Error(`the private-key file does not hold one base64 key of 32 bytes (as \`wg genkey\` writes; ${n} bytes read)`);
    }
    try {
      return privateKeyObject(raw);
    } finally {
      raw.fill(0);
    }
  } finally {
    buf.fill(0);
  }
}

export default function create(env: ComponentEnv): Component {
  parseKeystoreConfig(env.config, env.configSource);
  const fd = env.fds['private-key'];
  if (fd === undefined) throw new Error('keystore needs the device "private-key" (a file device holding the key)');
  const key = readPrivateKey(fd);
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to give up
  }
  const publicKey = rawPublicKey(key);
  const c = env.counters;
  const cDh = c.define('requests.dh');
  const cPub = c.define('requests.public-key');
  const cRefused = c.define('refused.low-order');
  const dBad = c.dropReason('bad-request');
  const dNoSlot = c.dropReason('reply-no-slot');
  const pollables: Pollable[] = [];
  const req = new Uint8Array(KS_MSG_LEN);

  const serve = (end: SessionEnd): Pollable => {
    const sink = end.in;
    const out = end.out;
    let dirty = false;
    return sinkPollable(sink, (off, len) => {
      // Copy first: the peer may write its buffer while we read.
      if (len !== KS_MSG_LEN) {
        c.add(dBad);
        return reply(end, sink.buf, off, len >= 5 ? sink.buf[off + KS_OP] : 0, KS_BAD_REQUEST, undefined);
      }
      req.set(sink.buf.subarray(off, off + KS_MSG_LEN));
      const op = req[KS_OP];
      if (req[5] !== 0 || req[6] !== 0 || req[7] !== 0) {
        c.add(dBad);
        return reply(end, req, 0, op, KS_BAD_REQUEST, undefined);
      }
      if (op === KS_OP_DH) {
        c.add(cDh);
        const r = x25519(key, req.slice(KS_ARG, KS_ARG + 32));
        if (r === undefined) c.add(cRefused);
        reply(end, req, 0, op, r === undefined ? KS_REFUSED : KS_OK, r);
        r?.fill(0);
      } else if (op === KS_OP_PUBLIC_KEY) {
        c.add(cPub);
        reply(end, req, 0, op, KS_OK, publicKey);
      } else {
        c.add(dBad);
        reply(end, req, 0, op, KS_BAD_REQUEST, undefined);
      }
      dirty = true;
    }, () => {
      if (dirty) out.flush();
      dirty = false;
    });
  };

  function reply(end: SessionEnd, src: Uint8Array, srcOff: number, op: number, status: number, result: Uint8Array | undefined): void {
    const out = end.out;
    const slot = out.alloc();
    if (slot < 0) {
      c.add(dNoSlot);
      return;
    }
    const b = out.buf;
    b.fill(0, slot, slot + KS_MSG_LEN);
    for (let i = 0; i < 4; i++) b[slot + KS_ID + i] = src[srcOff + KS_ID + i] ?? 0;
    b[slot + KS_OP] = op;
    b[slot + KS_STATUS] = status;
    if (result !== undefined) b.set(result, slot + KS_ARG);
    out.submit(slot, KS_MSG_LEN);
    // Errors for short messages are flushed at once (the batch hook runs only after counted packets).
    if (status !== KS_OK) out.flush();
  }

  // The answers are shared secrets: no packet capture of these sessions (the
  // tracer skips an end without a capture method; timing traces stay possible).
  for (const end of env.sessions.values()) Object.defineProperty(end, 'capture', { value: undefined });

  return {
    start(): void {
      for (const end of env.sessions.values()) {
        const p = serve(end);
        pollables.push(p);
        env.ep.add(p);
      }
      env.log.info('keystore ready', { publicKey: encodeKey(publicKey), clients: [...env.sessions.keys()] });
    },
    status(): Record<string, unknown> {
      return { publicKey: encodeKey(publicKey), clients: [...env.sessions.keys()] };
    },
    stop(): void {
      for (const p of pollables) env.ep.remove(p);
      pollables.length = 0;
    },
  };
}
