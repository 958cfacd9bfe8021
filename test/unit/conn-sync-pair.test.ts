// Two conn-sync components of an HA pair (issue 19) over real in-process
// sessions: each has its `router` session (the test plays the router) and its
// `pair` session (the test plays both sync-link drivers and the segment
// between them, relaying frames). The master's router records reach the
// backup's table and its router; heartbeats carry roles and the config hash;
// forged, foreign, replayed and reflected frames are dropped and counted; a
// full send queue is counted and repaired by a full resync; a silent peer
// makes the pair degraded (counted) and its return brings it back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Component } from '../../src/runtime/component.ts';
import { Counters } from '../../src/runtime/counters.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import createConnSync from '../../src/components/conn-sync/index.ts';
import { createLocalSession } from '../../src/session/local.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { Conn } from '../../src/components/router/conn-index.ts';
import { encodeRecord, REC_EXPIRED, REC_NEW, RECORD_LEN } from '../../src/components/router/conn-record.ts';
import { CT_TCP_ESTABLISHED } from '../../src/components/router/conntrack.ts';
import { PAIR_MAX_DATAGRAM, PairSealer } from '../../src/components/conn-sync/pair-wire.ts';
import { ETHERTYPE_PAIR } from '../../src/components/conn-sync/pair-link.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const HASH = `sha256:${'ab'.repeat(32)}`;

function conn(i: number): Conn {
  const c = new Conn();
  c.proto = 6;
  c.state = CT_TCP_ESTABLISHED;
  c.inDom = 0;
  c.outDom = 1;
  c.oSrc = (198 << 24) | (18 << 16) | 2;
  c.oSport = 10000 + i;
  c.oDst = (203 << 24) | (113 << 8) | 9;
  c.oDport = 443;
  c.rSrc = c.oDst;
  c.rSport = 443;
  c.rDst = (198 << 24) | (19 << 16) | 1;
  c.rDport = 20000 + i;
  c.nat = true;
  c.expires = 1_000_000;
  return c;
}

interface Side {
  cs: Component;
  counters: Counters;
  router: SessionEnd;
  pair: SessionEnd;
  ends: SessionEnd[];
  warns: string[];
}

function setup(t: { after(fn: () => void): void }, pairExtra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-pair-'));
  const keyFile = join(dir, 'pair.key');
  writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: (p: Pollable) => pollables.splice(pollables.indexOf(p), 1), kick() {} } as unknown as Entrypoint;
  const side = (self: number, peer: number): Side => {
    const [router, csRouter] = createLocalSession({ slots: 16, slotSize: 2048, names: ['sync', 'router'] });
    const [drv, csPair] = createLocalSession({ slots: 32, slotSize: 2048, names: ['nic', 'pair'] });
    const counters = new Counters();
    const warns: string[] = [];
    const log = { info() {}, warn: (m: string, f?: Record<string, unknown>) => warns.push(`${m} ${JSON.stringify(f)}`), error() {} };
    const cs = createConnSync({
      name: `cs${self}`, config: { pair: { self, peer, 'batch-ms': 1, 'heartbeat-ms': 50, 'dead-ms': 200, 'resync-ms': 0, ...pairExtra } },
      configSource: { file: 'gateway.yaml', path: 'components[4].config' },
      sessions: new Map([['router', csRouter], ['pair', csPair]]), fds: { 'pair-key': openSync(keyFile, 'r') }, ep, counters, log,
    });
    return { cs, counters, router, pair: drv, ends: [router, csRouter, drv, csPair], warns };
  };
  const a = side(1, 2);
  const b = side(2, 1);
  t.after(() => {
    for (const s of [a, b]) {
      s.cs.stop?.();
      for (const e of s.ends) e.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  let linkUp = true;
  /** Frames each side's driver took from conn-sync (for replays). */
  const wire: Uint8Array[] = [];
  const relay = (from: Side, to: Side): number => {
    let n = 0;
    from.pair.in.receive((off, len) => {
      const f = from.pair.in.buf.slice(off, off + len);
      wire.push(f);
      if (linkUp) inject(to, f);
      n++;
    }, 64);
    from.pair.in.flushAcks();
    return n;
  };
  const inject = (to: Side, f: Uint8Array): void => {
    const slot = to.pair.out.alloc();
    assert.ok(slot >= 0, 'a free slot on the pair session');
    to.pair.out.buf.set(f, slot);
    to.pair.out.submit(slot, f.length);
    to.pair.out.flush();
  };
  const pump = (): void => {
    for (let round = 0; round < 50; round++) {
      let work = relay(a, b) + relay(b, a);
      for (const p of [...pollables]) if (p.pending?.() === true) work += p.run(false);
      if (work === 0) return;
    }
  };
  const fromRouter = (s: Side, recs: Uint8Array): void => {
    const slot = s.router.out.alloc();
    assert.ok(slot >= 0);
    s.router.out.buf.set(recs, slot);
    s.router.out.submit(slot, recs.length);
    s.router.out.flush();
  };
  const toRouter = (s: Side): number => {
    let n = 0;
    s.router.in.receive((_off, len) => {
      n += len / RECORD_LEN;
    }, 64);
    s.router.in.flushAcks();
    return n;
  };
  const recs = (from: number, count: number, kind = REC_NEW): Uint8Array => {
    const b = new Uint8Array(count * RECORD_LEN);
    for (let i = 0; i < count; i++) encodeRecord(b, i * RECORD_LEN, kind, conn(from + i), 0);
    return b;
  };
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  a.cs.start();
  b.cs.start();
  return { a, b, pump, fromRouter, toRouter, recs, wait, wire, inject, setLink: (up: boolean) => { linkUp = up; } };
}

type PairSt = { pair: { role: string; link: string; peerStatus: { role: string; configHash: string; entries: number } | null; queueDrops: number } ; entries: number };

test('conn-sync pair: the master\'s records reach the backup\'s table and router; roles and the config hash in heartbeats', async (t) => {
  const { a, b, pump, fromRouter, toRouter, recs, wait } = setup(t);
  a.cs.command?.('role', { role: 'master', configHash: HASH });
  b.cs.command?.('role', { role: 'backup', configHash: HASH });
  assert.throws(() => a.cs.command?.('role', { role: 'leader' }), /master or backup/);
  fromRouter(a, recs(0, 40));
  pump();
  await wait(20);
  pump();
  // 40 live, and the table again: the backup started empty and asked for a full resync.
  const sent = a.counters.get('pair.records-sent');
  assert.ok(sent >= 40 && sent <= 80, `${sent} records sent`);
  assert.equal(b.counters.get('pair.records-received'), sent);
  assert.equal((b.cs.status() as PairSt).entries, 40, 'the backup holds the master\'s connections');
  assert.equal(toRouter(b), sent, 'and handed them to its router');
  // The backup's router confirms them (changed records): applied, not sent back to the master.
  fromRouter(b, recs(0, 40));
  pump();
  await wait(20);
  pump();
  assert.equal(b.counters.get('pair.records-sent'), 0, 'a backup sends no records');
  // Expired on the master: gone on the backup.
  fromRouter(a, recs(0, 10, REC_EXPIRED));
  pump();
  await wait(10);
  pump();
  assert.equal(a.counters.get('records.removed'), 10);
  assert.equal((b.cs.status() as PairSt).entries, 30);
  await wait(60);
  pump();
  const sb = b.cs.status() as PairSt;
  assert.equal(sb.pair.link, 'up');
  assert.equal(sb.pair.peerStatus?.role, 'master');
  assert.equal(sb.pair.peerStatus?.configHash, 'ab'.repeat(24), 'the peer\'s config hash (24 bytes) is known');
  assert.equal((a.cs.status() as PairSt).pair.peerStatus?.role, 'backup');
  // Takeover: b becomes master and sends its whole table to a (now backup).
  b.cs.command?.('role', { role: 'master' });
  a.cs.command?.('role', { role: 'backup' });
  pump();
  await wait(20);
  pump();
  assert.ok(a.counters.get('pair.records-received') >= 30, 'the new master resyncs the new backup');
});

test('conn-sync pair attacks: forged, foreign EtherType, replayed, reflected and wrong-peer frames are dropped and counted', async (t) => {
  const { a, b, pump, fromRouter, recs, wait, wire, inject, toRouter } = setup(t);
  a.cs.command?.('role', { role: 'master' });
  b.cs.command?.('role', { role: 'backup' });
  fromRouter(a, recs(0, 5));
  pump();
  await wait(10);
  pump();
  assert.ok(toRouter(b) >= 5);
  const genuine = wire.find((f) => f.length > 26 + 200)!;
  assert.ok(genuine !== undefined);
  // Replayed.
  inject(b, genuine);
  pump();
  assert.equal(b.counters.get('drop.pair-replayed'), 1);
  // Forged: sealed with another key.
  const other = new PairSealer(Buffer.alloc(32, 9), { self: 1, peer: 2 });
  const body = recs(100, 3);
  const msg = new Uint8Array(PAIR_MAX_DATAGRAM);
  const mlen = other.seal(body, 3, msg);
  const forged = new Uint8Array(26 + mlen);
  forged.set(genuine.subarray(0, 26));
  forged.set(msg.subarray(0, mlen), 26);
  inject(b, forged);
  pump();
  assert.equal(b.counters.get('drop.pair-forged'), 1);
  // Altered record bytes of a genuine frame.
  const altered = genuine.slice();
  altered[26 + 40 + 8] ^= 1;
  inject(b, altered);
  pump();
  assert.equal(b.counters.get('drop.pair-forged'), 2);
  // Another EtherType (IPv4), a runt, a frame for another MAC, a GSO header.
  const ip = genuine.slice();
  ip[26 - 2] = 0x08;
  ip[26 - 1] = 0x00;
  inject(b, ip);
  inject(b, genuine.slice(0, 20));
  const foreign = genuine.slice();
  foreign.set([2, 0, 0, 0, 0, 1], 12);
  inject(b, foreign);
  const gso = genuine.slice();
  gso[1] = 1;
  inject(b, gso);
  pump();
  assert.equal(b.counters.get('drop.pair-not-sync'), 1);
  assert.equal(b.counters.get('drop.pair-runt'), 1);
  assert.equal(b.counters.get('drop.pair-not-for-us'), 1);
  assert.equal(b.counters.get('drop.pair-bad-vnet'), 1);
  // Reflected: b's own (genuine, same key) frame back to b.
  const own = wire.filter((f) => f[12 + 6 + 5] === 2 && f.length > 26).at(-1)!; // source MAC 02:6d:..:02
  assert.ok(own !== undefined, 'b sent a heartbeat');
  inject(b, own);
  pump();
  assert.equal(b.counters.get('drop.pair-wrong-peer'), 1);
  assert.equal(toRouter(b), 0, 'nothing of it reached the router');
  assert.equal((b.cs.status() as PairSt).entries, 5);
  assert.ok(b.warns.some((w) => w.includes('"reason":"forged"')), 'a forged frame is logged');
});

test('conn-sync pair: a full send queue is counted and repaired by a full resync; a silent peer makes the pair degraded', async (t) => {
  const { a, b, pump, fromRouter, recs, wait, setLink } = setup(t, { queue: 64 });
  a.cs.command?.('role', { role: 'master' });
  b.cs.command?.('role', { role: 'backup' });
  // 100 records in one go: the queue (64) overflows before a batch leaves.
  fromRouter(a, recs(0, 50));
  fromRouter(a, recs(50, 50));
  for (let i = 0; i < 20; i++) {
    pump();
    await wait(5);
  }
  assert.ok(a.counters.get('pair.queue-full') > 0, 'overflow counted');
  assert.ok(a.counters.get('pair.resyncs') >= 1, 'a resync started');
  assert.equal((b.cs.status() as PairSt).entries, 100, 'the resync repaired the backup\'s table');
  assert.ok((a.cs.status() as PairSt).pair.queueDrops > 0);
  // The sync link goes down: both sides degraded, counted and logged, roles unchanged.
  pump();
  await wait(30);
  pump();
  assert.equal((b.cs.status() as PairSt).pair.link, 'up');
  setLink(false);
  for (let i = 0; i < 10; i++) {
    await wait(40);
    pump();
  }
  assert.equal((b.cs.status() as PairSt).pair.link, 'down');
  assert.equal(b.counters.get('pair.down'), 1);
  assert.equal(a.counters.get('pair.down'), 1);
  assert.ok(b.warns.some((w) => w.startsWith('pair degraded')));
  assert.equal((a.cs.status() as PairSt).pair.role, 'master', 'the link decides no role');
  setLink(true);
  for (let i = 0; i < 5; i++) {
    await wait(40);
    pump();
  }
  assert.equal((b.cs.status() as PairSt).pair.link, 'up');
  assert.equal(b.counters.get('pair.up'), 2);
});

test('conn-sync pair config: errors name the path; pair needs the key device and the pair session', () => {
  const ep = { add() {}, remove() {}, kick() {} } as unknown as Entrypoint;
  const log = { info() {}, warn() {}, error() {} };
  const [r1, r2] = createLocalSession({ slots: 4, slotSize: 2048, names: ['sync', 'router'] });
  const env = (config: unknown, fds: Record<string, number> = {}, pair = false) => ({
    name: 'cs', config, configSource: { file: 'gw.yaml', path: 'components[4].config' },
    sessions: new Map<string, SessionEnd>(pair ? [['router', r2], ['pair', r1]] : [['router', r2]]), fds, ep, counters: new Counters(), log,
  });
  try {
    assert.throws(() => createConnSync(env({ pair: { self: 1, peer: 1 } })), /gw.yaml.*components\[4\]\.config\.pair\.peer.*different from self/s);
    assert.throws(() => createConnSync(env({ pair: { self: 1, peer: 2, 'peer-mac': 'nope' } })), /pair\.peer-mac/);
    assert.throws(() => createConnSync(env({ pair: { self: 1, peer: 2, 'heartbeat-ms': 500, 'dead-ms': 600 } })), /dead-ms.*twice heartbeat-ms/);
    assert.throws(() => createConnSync(env({ pair: { self: 1, peer: 2 } })), /port "pair"/);
    assert.throws(() => createConnSync(env({ pair: { self: 1, peer: 2 } }, {}, true)), /device "pair-key"/);
  } finally {
    r1.close();
    r2.close();
  }
});

test('pair key file: base64 of at least 32 bytes; anything else refused with what is wrong, never the content', async () => {
  const { readPairKey } = await import('../../src/components/conn-sync/pair-key.ts');
  const dir = mkdtempSync(join(tmpdir(), 'mg-pairkey-'));
  try {
    const fd = (text: string): number => {
      const f = join(dir, `k${Math.random().toString(36).slice(2)}`);
      writeFileSync(f, text, { mode: 0o600 });
      return openSync(f, 'r');
    };
    assert.equal(readPairKey(fd(`${Buffer.alloc(48, 1).toString('base64')}\n`)).length, 48);
    assert.throws(() => readPairKey(fd(Buffer.alloc(16, 1).toString('base64'))), /16 bytes of key; at least 32/);
    assert.throws(() => readPairKey(fd('secret key with spaces in it, long enough to pass\n')), /not one line of base64 \(byte 6/);
    assert.throws(() => readPairKey(fd('A'.repeat(2000))), /longer than 1024 bytes/);
    assert.throws(() => readPairKey(fd('')), /0 bytes of key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
