// Micro-benchmark of the Nic session transports (not a test): two processes,
// the parent producing, a child consuming, over shm and over socket, for each
// packet size; prints packets/s, GB/s and the shm/socket ratio side by side.
//
//   npx node src/bench/session-bench.ts [--seconds 3] [--sizes 1514,65536] [--mode touch|copy|both] [--verify]
//
// The producer copies a prepared packet into each slot (as a driver's read(2)
// or a router's copy would fill it) and stamps a sequence number; the consumer
// checks the stamp and the last byte ("touch"), and in "copy" mode also copies
// the whole packet out into private memory, as a router forwarding it would
// (--verify: checks every byte, slow). Both sleep on the transport's wake-up
// when they run dry, as a component's entrypoint does.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { POLLIN, POLLOUT, poll } from '../sys/libc.ts';
import { createSessionResources } from '../session/create.ts';
import { openSessionEnd } from '../session/open.ts';
import type { SessionEnd, SessionGrant, TransportKind } from '../session/types.ts';

const BATCH = 32;
const CHILD_FIRST_FD = 3;

interface Result {
  transport: TransportKind;
  size: number;
  packets: number;
  seconds: number;
  pps: number;
  gbps: number;
  bad: number;
  producer: Record<string, number>;
  consumer: Record<string, number>;
}

const pfd = new Uint8Array(8);
const pview = new DataView(pfd.buffer);
function waitFd(fd: number, events: number, ms: number): boolean {
  pview.setInt32(0, fd, true);
  pview.setInt16(4, events, true);
  pview.setInt16(6, 0, true);
  return poll(pfd, 1, ms) > 0;
}

function stamp(i: number, j: number): number {
  return (i * 7 + j) & 255;
}

// ---- consumer (child) ----------------------------------------------------------

function consume(grant: SessionGrant, verify: boolean, copy: number): void {
  const end = openSessionEnd(grant);
  const sink = end.in;
  const buf = sink.buf;
  // copy > 0: copy every packet (all `copy` bytes) out of its slot; views made up front, none per packet.
  const slotSize = grant.slotSize;
  const nviews = grant.transport === 'shm' ? grant.slots : 1;
  const views: Uint8Array[] = [];
  if (copy > 0) for (let i = 0; i < nviews; i++) views.push(buf.subarray(i * slotSize, i * slotSize + copy));
  const dst = new Uint8Array(Math.max(copy, 1));
  let packets = 0;
  let bytes = 0;
  let bad = 0;
  let stop = false;
  let t0 = 0;
  let seq = 0;
  const onPacket = (off: number, len: number): void => {
    if (len === 1) {
      stop = true;
      return;
    }
    if (packets === 0) t0 = performance.now();
    if (copy > 0) dst.set(views[(off / slotSize) | 0]);
    const s = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24);
    if (s !== seq || buf[off + len - 1] !== stamp(s, len - 1)) bad++;
    else if (verify) {
      for (let j = 4; j < len; j++) {
        if (buf[off + j] !== stamp(s, j)) {
          bad++;
          break;
        }
      }
    }
    seq = (s + 1) | 0;
    packets++;
    bytes += len;
  };
  while (!stop) {
    const n = sink.receive(onPacket, 256);
    sink.flushAcks();
    if (n === 0 && !stop) {
      if (!sink.arm()) waitFd(sink.fd, POLLIN, 100);
      sink.disarm();
      sink.clearWakeup();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ packets, bytes, seconds, bad, stats: end.stats() }) + '\n');
  end.close();
}

// ---- producer (parent) -------------------------------------------------------------

function produce(end: SessionEnd, transport: TransportKind, fd: number, size: number, seconds: number): void {
  const src = end.out;
  const buf = src.buf;
  const payload = new Uint8Array(size);
  for (let j = 0; j < size; j++) payload[j] = stamp(0, j);
  const deadline = performance.now() + seconds * 1000;
  const space = src.spacePollable;
  let seq = 0;
  for (let round = 0; ; round++) {
    let k = 0;
    while (k < BATCH) {
      const off = src.alloc();
      if (off < 0) break;
      // The payload pattern depends on the sequence number only through the stamp: refresh
      // the first 4 bytes and the last byte, copy the rest as prepared.
      buf.set(payload, off);
      buf[off] = seq & 255;
      buf[off + 1] = (seq >>> 8) & 255;
      buf[off + 2] = (seq >>> 16) & 255;
      buf[off + 3] = (seq >>> 24) & 255;
      buf[off + size - 1] = stamp(seq, size - 1);
      src.submit(off, size);
      seq++;
      k++;
    }
    if (k > 0) src.flush();
    else if (transport === 'shm') {
      const armed = space.arm?.() ?? false;
      const ready = armed ? false : waitFd(space.fd, POLLIN, 10);
      space.disarm?.();
      space.run(ready);
    } else {
      // The socket is full: wait until it takes messages again, then retry the queue.
      waitFd(fd, POLLOUT, 10);
      space.run(false);
    }
    if ((round & 15) === 0 && performance.now() >= deadline) break;
  }
  // Stop marker: a 1-byte packet.
  for (;;) {
    const off = src.alloc();
    if (off >= 0) {
      src.submit(off, 1);
      src.flush();
      break;
    }
    if (transport === 'socket') waitFd(fd, POLLOUT, 10);
    else waitFd(space.fd, POLLIN, 1);
    space.run(false);
  }
  // Make sure a queued marker leaves (socket) before we stop driving the source.
  for (let i = 0; i < 1000 && end.stats()['out.queued'] > 0; i++) {
    waitFd(fd, POLLOUT, 10);
    space.run(false);
  }
}

function runOne(transport: TransportKind, size: number, seconds: number, verify: boolean, copy: boolean): Promise<Result> {
  const slots = size > 4096 ? 64 : 256;
  const res = createSessionResources(transport, { slots, slotSize: size });
  const mine: SessionGrant = { ...res.grants[0], name: 'bench' };
  const theirs = res.grants[1];
  const childGrant: SessionGrant = { ...theirs, name: 'bench', fds: theirs.fds.map((_, i) => CHILD_FIRST_FD + i) };
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--consumer', JSON.stringify(childGrant), '--copy', String(copy ? size : 0), ...(verify ? ['--verify'] : [])], {
    stdio: ['ignore', 'pipe', 'inherit', ...theirs.fds],
  });
  let out = '';
  const stdout = child.stdout;
  if (stdout === null) throw new Error('no stdout pipe to the child');
  stdout.setEncoding('utf8');
  stdout.on('data', (d: string) => (out += d));
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
  const end = openSessionEnd(mine);
  // Let the child start and attach before the clock runs.
  return new Promise<void>((r) => setTimeout(r, 300)).then(async () => {
    produce(end, transport, mine.fds[0], size, seconds);
    const code = await exited;
    const producer = end.stats();
    end.close();
    res.close();
    if (code !== 0) throw new Error(`consumer exited with ${code}`);
    const c = JSON.parse(out) as { packets: number; bytes: number; seconds: number; bad: number; stats: Record<string, number> };
    return {
      transport,
      size,
      packets: c.packets,
      seconds: c.seconds,
      pps: c.packets / c.seconds,
      gbps: c.bytes / c.seconds / 1e9,
      bad: c.bad,
      producer,
      consumer: c.stats,
    };
  });
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const verify = process.argv.includes('--verify');
  const grantJson = arg('--consumer');
  if (grantJson !== undefined) {
    consume(JSON.parse(grantJson) as SessionGrant, verify, Number(arg('--copy') ?? 0));
    return;
  }
  const seconds = Number(arg('--seconds') ?? 3);
  const sizes = (arg('--sizes') ?? '1514,65536').split(',').map(Number);
  const mode = arg('--mode') ?? 'both';
  const modes = mode === 'both' ? [false, true] : [mode === 'copy'];
  const rows: string[] = [];
  const fmt = (n: number, d = 2): string => n.toFixed(d);
  console.log(`session transports, producer -> consumer in two processes, ${seconds} s each${verify ? ', every byte verified' : ''}`);
  console.log('consumer "touch": checks a stamp at each end of the packet; "copy": also copies the whole packet out');
  for (const copy of modes) for (const size of sizes) {
    const shm = await runOne('shm', size, seconds, verify, copy);
    const sock = await runOne('socket', size, seconds, verify, copy);
    for (const r of [shm, sock]) {
      if (r.bad > 0) console.log(`WARNING: ${r.transport} ${r.size} B: ${r.bad} packets failed the content check`);
    }
    const wake = (s: Record<string, number>, k: string): number => s[k] ?? 0;
    rows.push(
      `${copy ? 'copy ' : 'touch'} ${String(size).padStart(6)} B | shm ${fmt(shm.pps / 1e6, 3).padStart(6)} Mpps ${fmt(shm.gbps).padStart(6)} GB/s | ` +
        `socket ${fmt(sock.pps / 1e6, 3).padStart(6)} Mpps ${fmt(sock.gbps).padStart(6)} GB/s | shm/socket ${fmt(shm.pps / sock.pps, 1)}x` +
        ` | shm wake-ups: to consumer ${wake(shm.producer, 'out.wakeups')}, to producer ${wake(shm.consumer, 'in.wakeups')}, batches ${wake(shm.producer, 'out.batches')}`,
    );
    console.log(rows[rows.length - 1]);
  }
}

await main();
