// init's watch over packet links (src/init/link-watch.ts) with a scripted
// link: up -> no carrier -> up, deleted -> back home -> reattached, a refused
// reattach retried and logged once, a probe that throws; states, reasons,
// counts and log lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkWatch, type WatchedLink } from '../../src/init/link-watch.ts';
import type { LinkFlags } from '../../src/sys/netlink.ts';

function fake(): WatchedLink & { flags: LinkFlags | undefined | Error; home: boolean } {
  return {
    ifname: 'eth9',
    flags: { ifindex: 7, up: true, lowerUp: true } as LinkFlags | undefined | Error,
    home: false,
    probe() {
      if (this.flags instanceof Error) throw this.flags;
      return this.flags;
    },
    backHome() {
      return this.home;
    },
  };
}

test('carrier lost and back: degraded with the reason, counted, logged', () => {
  const log: string[] = [];
  const w = new LinkWatch({ log: (l) => log.push(l), reattach: () => assert.fail('nothing to reattach') });
  const l = fake();
  w.add('port', l);
  assert.equal(w.health('port')?.state, 'up');
  assert.equal(w.health('port')?.ifindex, 7);
  l.flags = { ifindex: 7, up: true, lowerUp: false };
  w.tick();
  w.tick();
  const h = w.health('port')!;
  assert.equal(h.state, 'down');
  assert.match(h.reason, /no carrier/);
  assert.deepEqual(h.counts, { down: 1, up: 0, reattached: 0, reattachFailed: 0 });
  l.flags = { ifindex: 7, up: true, lowerUp: true };
  w.tick();
  assert.equal(w.health('port')?.state, 'up');
  assert.deepEqual(w.health('port')?.counts, { down: 1, up: 1, reattached: 0, reattachFailed: 0 });
  assert.equal(log.length, 2);
  assert.match(log[0], /device port: interface eth9 is down: no carrier .*degraded/);
  assert.match(log[1], /eth9 is up again \(ifindex 7\)/);
});

test('deleted, then back home: reattached with the new ifindex; a refused reattach is retried and logged once', () => {
  const log: string[] = [];
  const l = fake();
  let refuse = 'it has the address 192.0.2.1/24';
  let calls = 0;
  const w = new LinkWatch({
    log: (x) => log.push(x),
    reattach: () => {
      calls++;
      if (refuse !== '') throw new Error(refuse);
      l.flags = { ifindex: 12, up: true, lowerUp: true };
    },
  });
  w.add('port', l);
  l.flags = undefined;
  w.tick();
  assert.equal(w.health('port')?.state, 'gone');
  assert.equal(calls, 0, 'not back home yet');
  w.tick();
  l.home = true;
  w.tick();
  w.tick();
  assert.equal(calls, 2);
  assert.equal(w.health('port')?.state, 'gone');
  assert.match(w.health('port')!.reason, /cannot be attached: it has the address/);
  assert.equal(log.filter((x) => x.includes('cannot be attached')).length, 1, 'a repeated failure is logged once');
  refuse = '';
  w.tick();
  const h = w.health('port')!;
  assert.equal(h.state, 'up');
  assert.equal(h.ifindex, 12);
  assert.deepEqual(h.counts, { down: 1, up: 1, reattached: 1, reattachFailed: 2 });
  assert.ok(log.some((x) => /eth9 is back \(ifindex 12\): reattached/.test(x)));
});

test('a link set down, and a probe that fails, are "down" with their reasons; a down link at start is degraded at once', () => {
  const log: string[] = [];
  const l = fake();
  l.flags = { ifindex: 3, up: false, lowerUp: false };
  const w = new LinkWatch({ log: (x) => log.push(x), reattach: () => undefined });
  w.add('port', l);
  assert.equal(w.health('port')?.state, 'down');
  assert.match(w.health('port')!.reason, /set down/);
  l.flags = new Error('EPERM');
  w.tick();
  assert.match(w.health('port')!.reason, /cannot read the link's state: EPERM/);
  assert.equal(w.health('port')?.counts.down, 1, 'one outage, however its reason changes');
  assert.deepEqual(w.all().map((x) => x.device), ['port']);
});
