// Fault injection's `hostile` kind (test-only, config `debug: { fault-injection:
// true }`): attacker code run inside a component's own sandbox, on its own
// thread, doing what a compromised component could do with the fds it holds.
// Each attack reproduces one way to hurt init or a neighbour; the red-team
// tests (test/integration/compromised.test.ts) check that nothing but the
// attacker is hurt. Writes go straight to the fds with write(2), around the
// host's own channel code, as an intruder's would.
//   control channel (fd 3, CONTROL_FD): bytes that are no frame (`null-line`,
//     `unterminated-flood`, `oversize`, `empty-frame`), frames that are no
//     message (`null-message`, `invalid-json`, `unknown-type`, `wrong-shape`),
//     messages that fit no request (`reply-to-nothing`, `message-flood`,
//     `forged-hello` naming init's pid, `fatal-newlines` forging log lines)
//   `eve-no-lines`: the component's next answer to init's EVE query lacks `lines`
//   `all-fds`: forged descriptors into every session's rings (offsets and
//     lengths out of range, misaligned, jumped indices, double and unknown
//     acks), the session header overwritten, garbage into every eventfd and
//     fd it holds, text with control characters on stderr; then a bad frame
import type { SessionEnd } from '../session/types.ts';
import { writeBuf } from '../sys/libc.ts';
import { ringWords } from '../session/ring.ts';
import type { Layout } from '../session/ring.ts';

export const HOSTILE_ATTACKS = [
  'null-line', 'unterminated-flood', 'oversize', 'empty-frame',
  'null-message', 'invalid-json', 'unknown-type', 'wrong-shape',
  'reply-to-nothing', 'message-flood', 'forged-hello', 'fatal-newlines',
  'eve-no-lines', 'all-fds',
] as const;
export type HostileAttack = (typeof HOSTILE_ATTACKS)[number];

export function isHostileAttack(v: unknown): v is HostileAttack {
  return typeof v === 'string' && (HOSTILE_ATTACKS as readonly string[]).includes(v);
}

/** What the attacker holds: its control channel, the fds of its grant (devices; each session's), its open session ends. */
export interface HostileTarget {
  controlFd: number;
  deviceFds: number[];
  sessionFds: number[][];
  sessions: Map<string, SessionEnd>;
}

/** Answers the component gives in place of its own (query name -> result): `eve-no-lines`. */
export const forgedAnswers = new Map<string, unknown>();

function frame(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Write all of `b` to fd (non-blocking fds: retry on EAGAIN for up to ~2 s; give up on other errors). */
function writeAll(fd: number, b: Buffer): number {
  let at = 0;
  const deadline = Date.now() + 2000;
  while (at < b.length && Date.now() < deadline) {
    const n = writeBuf(fd, b.subarray(at));
    if (n > 0) at += n;
    else if (n !== -11) break; // EAGAIN: init reads on
  }
  return at;
}

let controlFd = -1;

function control(b: Buffer): void {
  writeAll(controlFd, b);
}

type RingEndish = SessionEnd & { ctl?: Int32Array; layout?: Layout };

/** Forged descriptors and acks straight into the shared rings (shm and local sessions), published. */
function forgeDescriptors(end: RingEndish): void {
  const ctl = end.ctl;
  const l = end.layout;
  if (ctl === undefined || l === undefined) return;
  const bulk = l.bulkBytes;
  const forged: [number, number][] = [
    [bulk + l.slotSize, 64], // beyond the bulk buffer
    [0x7fffffff, 64],
    [l.slotSize + 1, 64], // misaligned
    [0, 0], // empty
    [0, l.slotSize + 1], // longer than a slot
    [0, -1],
  ];
  const mask = l.ringCap - 1;
  for (let ring = 0; ring < 4; ring++) {
    const w = ringWords(l, ring);
    let head = Atomics.load(ctl, w.head) | 0;
    // Ack rings (1, 3): also the same slot twice (a double ack) and a slot never sent.
    const entries: [number, number][] = ring % 2 === 1 ? [[0, 64], [0, 64], [l.slotSize, 64], ...forged] : forged;
    for (const [off, len] of entries) {
      const i = w.entries + ((head & mask) << 1);
      ctl[i] = off | 0;
      ctl[i + 1] = len | 0;
      head = (head + 1) | 0;
    }
    Atomics.store(ctl, w.head, head);
  }
}

/** Ring indices far beyond the rings, and the header's geometry overwritten (a restarted peer must still attach). */
function forgeIndices(end: RingEndish): void {
  const ctl = end.ctl;
  const l = end.layout;
  if (ctl === undefined || l === undefined) return;
  for (let ring = 0; ring < 4; ring++) {
    const w = ringWords(l, ring);
    Atomics.store(ctl, w.head, (Atomics.load(ctl, w.head) + l.ringCap * 3) | 0);
    Atomics.store(ctl, w.tail, (Atomics.load(ctl, w.tail) - l.ringCap * 5) | 0);
  }
  for (let i = 0; i < 10; i++) if (i !== 5) ctl[i] = 0x41414141;
}

/** Every fd the component was granted (TAP / packet devices, session memory, eventfds, sockets). */
function grantedFds(t: HostileTarget): number[] {
  return [...new Set<number>([...t.deviceFds, ...t.sessionFds.flat()])];
}

function signalAll(t: HostileTarget): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n, 0);
  for (const fds of t.sessionFds) for (const fd of fds.slice(1)) writeBuf(fd, one);
}

function allFds(t: HostileTarget): void {
  // 1: forged descriptors and acks, published and signalled.
  for (const end of t.sessions.values()) forgeDescriptors(end);
  signalAll(t);
  setTimeout(() => {
    // 2: indices beyond the rings, the header overwritten.
    for (const end of t.sessions.values()) forgeIndices(end);
    signalAll(t);
    setTimeout(() => {
      // 3: garbage into every fd: an eventfd's largest count (the peer's next signal cannot add), short and long writes.
      const junk = Buffer.alloc(1500, 0xff);
      const max = Buffer.alloc(8);
      max.writeBigUInt64LE(0xfffffffffffffffen, 0);
      for (const fd of grantedFds(t)) {
        writeBuf(fd, max);
        writeBuf(fd, junk.subarray(0, 4));
        writeBuf(fd, junk);
      }
      process.stderr.write('hostile: stderr \u001b[2J\u001b[H\rinit: FORGED stderr line\u0000\u0007\n');
      // 4: and a bad frame: init ends this process.
      setTimeout(() => control(frame('{"type":"exec"}')), 300);
    }, 300);
  }, 300);
}

/** Carry out `attack` now (the caller scheduled it on the component's thread). */
export function runHostile(attack: HostileAttack, name: string, t: HostileTarget): void {
  controlFd = t.controlFd;
  switch (attack) {
    case 'null-line':
      return control(Buffer.from('null\n'));
    case 'unterminated-flood': {
      // 32 MiB of JSON text without a newline, as one would have fed the old line reader.
      const chunk = Buffer.alloc(1 << 20, 0x61);
      Buffer.from('{"type":"pong","x":"').copy(chunk);
      control(chunk);
      const rest = Buffer.alloc(1 << 20, 0x61);
      for (let i = 1; i < 32; i++) if (writeAll(controlFd, rest) < rest.length) break;
      return;
    }
    case 'oversize': {
      const b = Buffer.alloc(64 * 1024, 0x20);
      b.writeUInt32BE(0xffffffff, 0);
      return control(b);
    }
    case 'empty-frame':
      return control(Buffer.alloc(4));
    case 'null-message':
      return control(frame('null'));
    case 'invalid-json':
      return control(frame('{"type":"pong",'));
    case 'unknown-type':
      return control(frame('{"type":"exec","cmd":"/bin/sh"}'));
    case 'wrong-shape':
      return control(frame('{"type":"status","id":"1","components":{}}'));
    case 'reply-to-nothing':
      return control(frame('{"type":"query-result","id":987654321,"result":{}}'));
    case 'message-flood': {
      const one = frame('{"type":"pong"}');
      return control(Buffer.concat(new Array<Buffer>(100000).fill(one)));
    }
    case 'forged-hello':
      return control(frame(JSON.stringify({ type: 'hello', pid: process.ppid })));
    case 'fatal-newlines':
      process.stderr.write('hostile: \ninit: FORGED by stderr\n');
      return control(frame(JSON.stringify({ type: 'fatal', message: `${name} exploded\ninit: FORGED router (pid 1) running\n\u001b[2J` })));
    case 'eve-no-lines':
      forgedAnswers.set('eve', { seq: 5 });
      return;
    case 'all-fds':
      return allFds(t);
  }
}
