// Connection-state sync (issue 19): the 40-byte record codec and its checks,
// the router's export (new / changed / expired) and import (a restarted
// router gets its connections back and forwards the next packet of a NAT'd
// flow without a new handshake), the attacks on import (every record the
// router receives is checked against its own config, policy and table), the
// bounded export queue, and conn-sync's warm table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig, type RouterConfig } from '../../src/components/router/config.ts';
import { Router, SYNC_RESTORE_MS } from '../../src/components/router/router.ts';
import { Conn } from '../../src/components/router/conn-index.ts';
import {
  ConnRecord, decodeRecord, encodeRecord, REC_CHANGED, REC_EXPIRED, REC_NEW, REC_OK, RECORD_ERRORS, RECORD_LEN,
} from '../../src/components/router/conn-record.ts';
import { CT_NEW, CT_REPLIED, CT_TCP_ESTABLISHED, CT_TCP_SYN_SENT } from '../../src/components/router/conntrack.ts';
import { ConnSync, SYNC_QUEUE } from '../../src/components/router/sync.ts';
import { APPLY_ADDED, APPLY_FULL, APPLY_REMOVED, APPLY_UNKNOWN, APPLY_UPDATED, WarmTable } from '../../src/components/conn-sync/table.ts';
import { formatMac, parseIpv4 } from '../../src/net/addr.ts';
import { decodeFrame, encodeFrame, type Frame, type L4 } from '../../src/net/frame.ts';
import { TCP_ACK_FLAG, TCP_SYN } from '../../src/net/tcp.ts';
import { takeRecords } from './fixtures/sync-records.ts';
import { FakePort } from './fixtures/router-rig.ts';
import { configHash } from '../../src/components/router/config-hash.ts';

const LAN_HOST = '02:00:00:00:00:0a';
const WAN_GW = '02:00:00:00:00:fe';
const REMOTE = '203.0.113.9';
const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', tcp: [{ dst: '0.0.0.0/0', ports: [80, 443], to: 'wan' }], udp: [{ dst: '0.0.0.0/0', ports: [53], to: 'wan' }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', nat: { from: ['lan'] } },
  },
  'nat-ports': '50000-50999',
};

interface R {
  router: Router;
  cfg: RouterConfig;
  counters: Counters;
  lan: FakePort;
  wan: FakePort;
  sync: FakePort;
  clock: { t: number };
  send(dom: number, pkt: Uint8Array): void;
  count(name: string): number;
}

function mk(config: Record<string, unknown> = CONFIG, syncSlots = 64): R {
  const cfg = parseRouterConfig(config, 'router', { file: 'test.yaml', path: 'components[0].config' });
  const counters = new Counters();
  const lan = new FakePort();
  const wan = new FakePort();
  const sync = new FakePort(syncSlots);
  const clock = { t: 1_000_000 };
  const router = new Router(cfg, [lan, wan], counters, { clock: () => clock.t, sync: { out: sync, inSlotSize: 2048 } });
  const ingress = new Uint8Array(8192);
  return {
    router, cfg, counters, lan, wan, sync, clock,
    send(dom, pkt) {
      ingress.set(pkt, 1000);
      router.receive(dom, ingress, 1000, pkt.length);
      router.flush();
    },
    count: (name) => counters.snapshot()[name] ?? 0,
  };
}

const tcp = (srcPort: number, dstPort: number, flags: number): L4 => ({ proto: 'tcp', tcp: { srcPort, dstPort, seq: 1000, ack: 0, flags, window: 65535, payload: new Uint8Array(0) } });
const udp = (srcPort: number, dstPort: number): L4 => ({ proto: 'udp', udp: { srcPort, dstPort, payload: new TextEncoder().encode('q') } });

function ip(r: R, dom: number, src: string, dst: string, l4: L4): Uint8Array {
  const mac = formatMac(r.cfg.domains[dom].mac);
  return encodeFrame({ kind: 'ipv4', eth: { dst: mac, src: dom === 0 ? LAN_HOST : WAN_GW }, ip: { src, dst }, l4 });
}

function learn(r: R): void {
  r.send(0, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: LAN_HOST }, arp: { op: 'request', senderMac: LAN_HOST, senderIp: '198.18.0.23', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  const wanMac = formatMac(r.cfg.domains[1].mac);
  r.send(1, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: WAN_GW }, arp: { op: 'reply', senderMac: WAN_GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
  r.lan.take();
  r.wan.take();
}

function v4(pkt: Uint8Array): Extract<Frame, { kind: 'ipv4' }> {
  const d = decodeFrame(pkt);
  assert.ok(d.ok && d.value.kind === 'ipv4');
  return d.value as Extract<Frame, { kind: 'ipv4' }>;
}

/** Every record the router exported so far, concatenated. */
function exported(r: R): Uint8Array {
  return takeRecords(r.sync);
}

function kinds(recs: Uint8Array): number[] {
  const k: number[] = [];
  for (let o = 0; o < recs.length; o += RECORD_LEN) k.push(recs[o]);
  return k;
}

/** Open a NAT'd TCP connection lan 198.18.0.23:40000 -> REMOTE:80 and have it answered; returns the NAT port. */
function openTcp(r: R): number {
  r.send(0, ip(r, 0, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_SYN)));
  const out = r.wan.take();
  assert.equal(out.length, 1);
  const f = v4(out[0]);
  assert.equal(f.ip.src, '198.19.0.1');
  const natPort = (f.l4 as Extract<L4, { proto: 'tcp' }>).tcp.srcPort;
  r.send(1, ip(r, 1, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_SYN | TCP_ACK_FLAG)));
  assert.equal(r.lan.take().length, 1);
  return natPort;
}

function ipn(text: string): number {
  const a = parseIpv4(text);
  assert.ok(a !== undefined);
  return a | 0;
}

// ---- the record ------------------------------------------------------------------------

function sampleConn(): Conn {
  const c = new Conn();
  c.proto = 6; c.state = CT_TCP_ESTABLISHED; c.inDom = 0; c.outDom = 1;
  c.oSrc = ipn('198.18.0.23'); c.oSport = 40000; c.oDst = ipn(REMOTE); c.oDport = 80;
  c.rSrc = c.oDst; c.rSport = 80; c.rDst = ipn('198.19.0.1'); c.rDport = 50007;
  c.nat = true; c.finOrig = true; c.expires = 5000;
  return c;
}

test('record: every field survives encode / decode', () => {
  const b = new Uint8Array(RECORD_LEN);
  const c = sampleConn();
  encodeRecord(b, 0, REC_CHANGED, c, 1000);
  const r = new ConnRecord();
  assert.equal(decodeRecord(b, 0, 2, r), REC_OK);
  assert.deepEqual({ ...r }, {
    kind: REC_CHANGED, proto: 6, state: CT_TCP_ESTABLISHED, nat: true, finOrig: true, finReply: false, inDom: 0, outDom: 1,
    oSrc: c.oSrc, oDst: c.oDst, oSport: 40000, oDport: 80, rSrc: c.rSrc, rDst: c.rDst, rSport: 80, rDport: 50007, remainingMs: 4000,
  });
});

test('record: a hostile record is refused with its reason', () => {
  const good = new Uint8Array(RECORD_LEN);
  encodeRecord(good, 0, REC_NEW, sampleConn(), 1000);
  const r = new ConnRecord();
  const bad = (mutate: (b: Uint8Array) => void, why: string): void => {
    const b = good.slice();
    mutate(b);
    assert.equal(RECORD_ERRORS[decodeRecord(b, 0, 2, r)], why);
  };
  bad((b) => { b[0] = 9; }, 'bad-kind');
  bad((b) => { b[1] = 47; }, 'bad-protocol');
  bad((b) => { b[2] = CT_NEW; }, 'bad-state'); // a UDP state on TCP
  bad((b) => { b[2] = 0; }, 'bad-state');
  bad((b) => { b[3] = 0x80; }, 'bad-flags');
  bad((b) => { b[1] = 17; b[2] = CT_REPLIED; }, 'bad-flags'); // FIN flags on UDP
  bad((b) => { b[7] = 1; }, 'bad-reserved');
  bad((b) => { b[39] = 1; }, 'bad-reserved');
  bad((b) => { b[4] = 2; }, 'bad-domain'); // only 2 domains
  bad((b) => { b[5] = 0; }, 'bad-domain'); // in = out
  bad((b) => { b[1] = 1; b[2] = CT_NEW; b[3] = 1; }, 'bad-icmp-id'); // ports differ
  bad((b) => { b[32] = 0xff; }, 'bad-timeout');
});

// ---- export and import ------------------------------------------------------------

test('export: a connection is sent new, changed (established) and expired', () => {
  const r = mk();
  learn(r);
  openTcp(r);
  assert.deepEqual(kinds(exported(r)), [REC_NEW, REC_CHANGED]);
  r.clock.t += 3_600_000 * 3; // past tcp-established-s
  r.router.tick();
  r.router.flush();
  assert.deepEqual(kinds(exported(r)), [REC_EXPIRED]);
  assert.equal(r.count('sync.exported'), 3);
});

test('import: a restarted router forwards the next packet of a NAT flow without a handshake, and confirms it', () => {
  const a = mk();
  learn(a);
  const natPort = openTcp(a);
  const recs = exported(a);
  // Without the records, the restarted router drops the flow's next packets.
  const cold = mk();
  learn(cold);
  cold.send(1, ip(cold, 1, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_ACK_FLAG)));
  assert.equal(cold.lan.take().length, 0, 'a cold router has no connection for the reply');
  cold.send(0, ip(cold, 0, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_ACK_FLAG)));
  assert.equal(cold.wan.take().length, 0);
  assert.equal(cold.counters.snapshot()['drop.tcp-new-not-syn'], 1);

  const b = mk();
  learn(b);
  b.router.importSync(recs, 0, recs.length);
  assert.equal(b.count('sync.imported'), 1);
  assert.equal(b.count('sync.import-updated'), 1, 'the changed record updated the connection the new one installed');
  // The reply direction reaches the lan host, back-translated.
  b.send(1, ip(b, 1, REMOTE, '198.19.0.1', tcp(80, natPort, TCP_ACK_FLAG)));
  const back = b.lan.take();
  assert.equal(back.length, 1);
  const fb = v4(back[0]);
  assert.equal(fb.ip.dst, '198.18.0.23');
  assert.equal((fb.l4 as Extract<L4, { proto: 'tcp' }>).tcp.dstPort, 40000);
  // The original direction leaves with the same NAT port.
  b.send(0, ip(b, 0, '198.18.0.23', REMOTE, tcp(40000, 80, TCP_ACK_FLAG)));
  const fwd = b.wan.take();
  assert.equal(fwd.length, 1);
  assert.equal((v4(fwd[0]).l4 as Extract<L4, { proto: 'tcp' }>).tcp.srcPort, natPort);
  // Confirmations went back to the peer (one per record applied).
  assert.deepEqual(kinds(exported(b)), [REC_CHANGED, REC_CHANGED]);
  // A new connection on b cannot take the restored NAT port.
  b.send(0, ip(b, 0, '198.18.0.23', REMOTE, tcp(40001, 80, TCP_SYN)));
  const n = b.wan.take();
  assert.equal(n.length, 1);
  assert.notEqual((v4(n[0]).l4 as Extract<L4, { proto: 'tcp' }>).tcp.srcPort, natPort);
});

/** A record built from a conn a router of CONFIG could have made, mutated by `edit`. */
function rec(edit: (c: Conn) => void, kind = REC_NEW): Uint8Array {
  const c = sampleConn();
  c.state = CT_TCP_SYN_SENT;
  c.finOrig = false;
  c.expires = 2_000_000;
  edit(c);
  const b = new Uint8Array(RECORD_LEN);
  encodeRecord(b, 0, kind, c, 1_000_000);
  return b;
}

test('import attacks: every record is checked against the router before it is installed', () => {
  const r = mk();
  learn(r);
  const refused = (b: Uint8Array, why: string): void => {
    const before = r.count(`sync.import-refused.${why}`);
    r.router.importSync(b, 0, b.length);
    assert.equal(r.count(`sync.import-refused.${why}`), before + 1, why);
  };
  refused(rec(() => {}, REC_EXPIRED), 'expired-kind'); // a peer cannot remove connections
  refused(rec((c) => { c.oDport = 22; c.rSport = 22; }), 'policy'); // the policy allows 80 and 443 only
  refused(rec((c) => { c.oSrc = ipn('10.9.9.9'); }), 'bad-address'); // spoofed: lan has no gateway
  refused(rec((c) => { c.oSrc = ipn('127.0.0.1'); }), 'bad-address');
  refused(rec((c) => { c.oDst = ipn('198.18.0.99'); c.rSrc = c.oDst; }), 'not-routed'); // a lan address is not in wan
  refused(rec((c) => { c.rDst = ipn('198.19.0.77'); }), 'bad-reply'); // NAT to an address not the router's
  refused(rec((c) => { c.rSrc = ipn('198.51.100.1'); }), 'bad-reply'); // the reply from elsewhere than the destination
  refused(rec((c) => { c.rDport = 40000; }), 'nat-port-range'); // outside nat-ports
  refused(rec((c) => { c.nat = false; c.rDst = c.oSrc; c.rDport = c.oSport; }), 'policy'); // wan masquerades lan: no plain route
  refused(rec((c) => { c.proto = 17; c.state = CT_NEW; c.oDport = 80; }), 'policy'); // UDP 80 not allowed
  refused(rec(() => {}).subarray(0, 39), 'truncated');
  assert.equal(r.count('sync.imported'), 0);
  // An acceptable one is installed; a second one on its NAT port with another tuple is refused.
  const ok = rec(() => {});
  r.router.importSync(ok, 0, ok.length);
  assert.equal(r.count('sync.imported'), 1);
  refused(rec((c) => { c.oSport = 40001; }), 'collision'); // its reply key is the installed one's
  refused(rec((c) => { c.oSport = 40001; c.oDst = ipn('203.0.113.10'); c.rSrc = c.oDst; }), 'nat-port-taken'); // another remote, the same NAT port
  refused(rec((c) => { c.rDport = 50008; }), 'collision'); // same original tuple, another reply tuple
  // A flow the policy forbids stays forbidden: no connection means its packets are new traffic.
  r.send(1, ip(r, 1, REMOTE, '198.19.0.1', tcp(22, 50009, TCP_ACK_FLAG)));
  assert.equal(r.lan.take().length, 0);
});

test('import attack on a running router: a record that would change a live connection (established -> closed, expiring it 10 s after its last packet) or add one is refused after the restore window', () => {
  const r = mk();
  learn(r);
  const natPort = openTcp(r);
  r.sync.take();
  const state = (): string => (r.router.status().connections as { state: string }[])[0].state;
  assert.equal(state(), 'established');
  // The same tuples as the live connection, state closed (4): what a compromised conn-sync would send.
  const downgrade = (): Uint8Array => {
    const c = sampleConn();
    c.state = 4; // CT_TCP_CLOSED
    c.rDport = natPort;
    c.finOrig = false;
    const b = new Uint8Array(RECORD_LEN);
    encodeRecord(b, 0, REC_CHANGED, c, r.clock.t);
    return b;
  };
  r.clock.t += SYNC_RESTORE_MS; // the router has run past its restore window
  r.router.flush();
  const d = downgrade();
  r.router.importSync(d, 0, d.length);
  assert.equal(r.count('sync.import-refused.not-restoring'), 1);
  assert.equal(r.count('sync.import-updated'), 0);
  assert.equal(state(), 'established', 'the live connection keeps its state and its 2 h timeout');
  const add = rec((c) => { c.oSport = 41000; c.rDport = 50100; });
  r.router.importSync(add, 0, add.length);
  assert.equal(r.count('sync.import-refused.not-restoring'), 2);
  assert.equal(r.count('sync.imported'), 0);
  assert.equal((r.router.status().connections as unknown[]).length, 1, 'nothing added to a running router');
  // Inside the window (a restarting router) the same record would be applied: that is what the window bounds.
  const fresh = mk();
  learn(fresh);
  const p2 = openTcp(fresh);
  assert.equal(p2, natPort);
  const d2 = downgrade();
  fresh.router.importSync(d2, 0, d2.length);
  assert.equal(fresh.count('sync.import-updated'), 1);
});

test('export: the queue is bounded; a full one drops and counts, forwarding never waits', () => {
  const counters = new Counters();
  const port = new FakePort(0); // the peer takes nothing
  const s = new ConnSync(port, 2048, counters);
  const c = sampleConn();
  for (let i = 0; i < SYNC_QUEUE + 5; i++) s.record(REC_NEW, c, 0);
  s.flush(0);
  assert.equal(s.queued, SYNC_QUEUE);
  assert.equal(counters.snapshot()['sync.export-dropped'], 5);
  assert.equal(counters.snapshot()['sync.exported'] ?? 0, 0);
});

test('export: a UDP connection is sent new, then changed when it is replied to', () => {
  const r = mk();
  learn(r);
  r.send(0, ip(r, 0, '198.18.0.23', REMOTE, udp(5353, 53)));
  const out = r.wan.take();
  const natPort = (v4(out[0]).l4 as Extract<L4, { proto: 'udp' }>).udp.srcPort;
  r.send(1, ip(r, 1, REMOTE, '198.19.0.1', udp(53, natPort)));
  const recs = exported(r);
  assert.deepEqual(kinds(recs), [REC_NEW, REC_CHANGED]);
  const d = new ConnRecord();
  assert.equal(decodeRecord(recs, RECORD_LEN, 2, d), REC_OK);
  assert.equal(d.state, CT_REPLIED);
  assert.equal(d.rDport, natPort);
});

// ---- conn-sync's warm table ---------------------------------------------------------

test('warm table: add, update, remove, full, hostile records, unconfirmed ones forgotten after a restore', () => {
  const t = new WarmTable(2);
  const a = rec(() => {});
  const b = rec((c) => { c.oSport = 40001; c.rDport = 50008; });
  const x = rec((c) => { c.oSport = 40002; c.rDport = 50009; });
  assert.equal(t.apply(a, 0), APPLY_ADDED);
  assert.equal(t.apply(rec(() => {}, REC_CHANGED), 0), APPLY_UPDATED);
  assert.equal(t.apply(b, 0), APPLY_ADDED);
  assert.equal(t.apply(x, 0), APPLY_FULL);
  assert.equal(t.size, 2);
  const hostile = a.slice();
  hostile[1] = 99;
  assert.equal(RECORD_ERRORS[-t.apply(hostile, 0)], 'bad-protocol');
  assert.equal(t.apply(rec(() => {}, REC_EXPIRED), 0), APPLY_REMOVED);
  assert.equal(t.apply(rec(() => {}, REC_EXPIRED), 0), APPLY_UNKNOWN);
  assert.equal(t.size, 1);
  t.apply(a, 0);
  // A restore: the router confirms a (it exports it again), not b.
  t.beginRestore();
  t.apply(rec(() => {}, REC_CHANGED), 0);
  assert.equal(t.forgetUnconfirmed(), 1);
  assert.equal(t.size, 1);
  const out = new Uint8Array(RECORD_LEN);
  let found = 0;
  for (let i = 0; i < t.max; i++) if (t.used(i)) { t.copy(i, out, 0); found++; }
  assert.equal(found, 1);
  const d = new ConnRecord();
  assert.equal(decodeRecord(out, 0, 2, d), REC_OK);
  assert.equal(d.oSport, 40000);
});

test('export: after conn-sync restarted (empty table), the router exports every live connection again', () => {
  const r = mk();
  learn(r);
  openTcp(r);
  r.send(0, ip(r, 0, '198.18.0.23', REMOTE, udp(5353, 53)));
  exported(r);
  r.router.resyncPeer();
  r.router.flush();
  const recs = exported(r);
  assert.deepEqual(kinds(recs), [REC_NEW, REC_NEW]);
  const d = new ConnRecord();
  assert.equal(decodeRecord(recs, 0, 2, d), REC_OK);
  assert.equal(d.state, CT_TCP_ESTABLISHED);
  // Into an empty router: both come back.
  const b = mk();
  learn(b);
  b.router.importSync(recs, 0, recs.length);
  assert.equal(b.count('sync.imported'), 2);
});

test('config hash: the same section hashes the same whatever its key order; a changed rule changes it', () => {
  const a = configHash({ domains: { lan: { address: '198.18.0.1/24', ip: [{ to: 'wan' }] }, wan: { address: '198.19.0.1/24' } }, 'nat-ports': '50000-50999' });
  const b = configHash({ 'nat-ports': '50000-50999', domains: { wan: { address: '198.19.0.1/24' }, lan: { ip: [{ to: 'wan' }], address: '198.18.0.1/24' } } });
  const c = configHash({ 'nat-ports': '50000-50999', domains: { wan: { address: '198.19.0.1/24' }, lan: { ip: [{ to: 'dmz' }], address: '198.18.0.1/24' } } });
  assert.match(a, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.notEqual(configHash([1, 2]), configHash([2, 1]), 'list order counts (rule order decides ties)');
});

test('HA backup router: imports at any time (past the restore window), an expired record removes exactly its connection; as master it refuses again', () => {
  const r = mk({ ...CONFIG, ha: true });
  assert.equal(r.router.role, 'backup');
  r.clock.t += 10 * SYNC_RESTORE_MS; // long past the restore window
  r.router.flush();
  const add = rec((c) => { c.oSport = 41000; c.rDport = 50100; });
  r.router.importSync(add, 0, add.length);
  assert.equal(r.count('sync.imported'), 1, 'a backup takes the active peer\'s connections at any time');
  assert.equal(r.count('sync.import-refused.not-restoring'), 0);
  // An expired record with other reply tuples: refused; with its own: removed.
  const wrong = rec((c) => { c.oSport = 41000; c.rDport = 50101; }, REC_EXPIRED);
  r.router.importSync(wrong, 0, wrong.length);
  assert.equal(r.count('sync.import-refused.collision'), 1);
  const unknown = rec((c) => { c.oSport = 41001; c.rDport = 50102; }, REC_EXPIRED);
  r.router.importSync(unknown, 0, unknown.length);
  assert.equal(r.count('sync.import-refused.expired-unknown'), 1);
  assert.equal((r.router.status().connections as unknown[]).length, 1);
  const gone = rec((c) => { c.oSport = 41000; c.rDport = 50100; }, REC_EXPIRED);
  r.router.importSync(gone, 0, gone.length);
  assert.equal(r.count('sync.import-removed'), 1);
  assert.equal((r.router.status().connections as unknown[]).length, 0);
  // A backup drops every domain frame, counted.
  r.send(0, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: LAN_HOST },
    arp: { op: 'request', senderMac: LAN_HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  assert.equal(r.count('drop.ha-backup'), 1);
  assert.equal(r.lan.take().length, 0);
  // Master: gratuitous ARP in each domain, and imports are a restart's business again.
  assert.equal(r.router.setRole('master'), true);
  assert.equal(r.router.setRole('master'), false);
  assert.equal(r.lan.take().length + r.wan.take().length, 2);
  r.router.importSync(add, 0, add.length);
  assert.equal(r.count('sync.import-refused.not-restoring'), 1);
  assert.equal(r.count('ha.became-master'), 1);
});
