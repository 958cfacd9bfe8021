// Connection-state sync of IPv6 connections (issue 19): the IPv6 record
// codec (conn-record6.ts) and its attacks, the router's export (new /
// changed / expired, the whole table again after conn-sync restarted), its
// import (a replaced router forwards the next segment of an established
// IPv6 TCP connection without a handshake) with every record checked against
// its own config, policy and table (sync6.ts), the HA backup's expired
// records, and conn-sync's warm table holding both families.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Router, SYNC_RESTORE_MS } from '../../src/components/router/router.ts';
import { ConnRecord, decodeRecord, REC_CHANGED, REC_EXPIRED, REC_NEW, REC_OK, RECORD_ERRORS, RECORD_LEN } from '../../src/components/router/conn-record.ts';
import { ConnRecord6, decodeRecord6, encodeRecord6, isRecord6 } from '../../src/components/router/conn-record6.ts';
import { Conn6 } from '../../src/components/router/conntrack6.ts';
import { CT_NEW, CT_REPLIED, CT_TCP_ESTABLISHED, CT_TCP_SYN_SENT } from '../../src/components/router/conntrack.ts';
import { APPLY_ADDED, APPLY_FULL, APPLY_REMOVED, APPLY_UPDATED, WarmTable } from '../../src/components/conn-sync/table.ts';
import { getI32 } from '../../src/net/bytes.ts';
import { takeRecords } from './fixtures/sync-records.ts';
import { FakePort, type IndexRig } from './fixtures/router-rig.ts';
import { CONFIG6, frame, GW_MAC6, HOST6, HOST_MAC6, ip6, neighbors6, REMOTE6, tcpSeg } from './fixtures/ipv6-frames.ts';

const SYN = 0x02, SYNACK = 0x12, ACK = 0x10;
/** CONFIG6, a blocklisted lan address, and a wan rule into lan for port 40000 (so a mirrored record passes the policy and meets the table). */
const CONFIG = structuredClone(CONFIG6) as { domains: Record<string, Record<string, unknown>> } & Record<string, unknown>;
CONFIG.domains.lan.blocklist = ['2001:db8:0:1::bad'];
CONFIG.domains.wan.tcp = [{ ports: [40000], to: 'lan' }];
CONFIG.domains.dmz = { address: '198.20.0.1/24' }; // no address6: no IPv6 connection can name it

type R6 = IndexRig & { sync: FakePort; count(name: string): number };

function mk(config: Record<string, unknown> = CONFIG, neighbors = true): R6 {
  const cfg = parseRouterConfig(config, 'router', { file: 'test.yaml', path: 'components[0].config' });
  const counters = new Counters();
  const ports = cfg.domains.map(() => new FakePort());
  const sync = new FakePort(64);
  const clock = { t: 1_000_000 };
  const router = new Router(cfg, ports, counters, { clock: () => clock.t, sync: { out: sync, inSlotSize: 2048 } });
  const ingress = new Uint8Array(8192);
  const r: R6 = {
    router, cfg, counters, ports, clock, sync,
    macOf: (dom) => [...cfg.domains[dom].mac],
    send(dom, pkt) {
      ingress.set(pkt, 1000);
      router.receive(dom, ingress, 1000, pkt.length);
      router.flush();
    },
    drops() {
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(counters.snapshot())) if (k.startsWith('drop.')) out[k.slice(5)] = v;
      return out;
    },
    count: (name) => counters.snapshot()[name] ?? 0,
  };
  if (neighbors) neighbors6(r);
  return r;
}

function exported(r: R6): Uint8Array {
  return takeRecords(r.sync);
}

/** Each record's kind and family: 'v6:1' for an IPv6 new record. */
function kinds(recs: Uint8Array): string[] {
  const k: string[] = [];
  for (let o = 0; o < recs.length; o += RECORD_LEN) k.push(isRecord6(recs, o) ? `v6:${recs[o] & 3}` : `v4:${recs[o]}`);
  return k;
}

const fromHost = (r: R6, sport: number, dport: number, flags: number): Uint8Array => frame(HOST_MAC6, r.macOf(0), HOST6, REMOTE6, 6, tcpSeg(sport, dport, flags));
const fromRemote = (r: R6, sport: number, dport: number, flags: number): Uint8Array => frame(GW_MAC6, r.macOf(1), REMOTE6, HOST6, 6, tcpSeg(sport, dport, flags));

/** HOST6:40000 -> REMOTE6:443 through the handshake (SYN, SYN-ACK, ACK). */
function openTcp6(r: R6): void {
  r.send(0, fromHost(r, 40000, 443, SYN));
  assert.equal(r.ports[1].take().length, 1);
  r.send(1, fromRemote(r, 443, 40000, SYNACK));
  assert.equal(r.ports[0].take().length, 1);
  r.send(0, fromHost(r, 40000, 443, ACK));
  assert.equal(r.ports[1].take().length, 1);
}

function words(s: string): Int32Array {
  const a = ip6(s);
  return Int32Array.from([0, 4, 8, 12], (o) => getI32(a, o));
}

function conn6(edit: (c: Conn6) => void = () => {}): Conn6 {
  const c = new Conn6();
  c.proto = 6; c.state = CT_TCP_SYN_SENT; c.inDom = 0; c.outDom = 1; c.oSport = 40000; c.oDport = 443;
  c.src6.set(words(HOST6)); c.dst6.set(words(REMOTE6));
  edit(c);
  return c;
}

function rec6(edit: (c: Conn6) => void = () => {}, kind = REC_NEW): Uint8Array {
  const b = new Uint8Array(RECORD_LEN);
  encodeRecord6(b, 0, kind, conn6(edit));
  return b;
}

// ---- the record ------------------------------------------------------------------------

test('record6: every field survives encode / decode; an IPv4-only reader refuses it as bad-kind', () => {
  const b = rec6((c) => { c.state = CT_TCP_ESTABLISHED; c.finReply = true; c.inDom = 2; c.outDom = 1; }, REC_CHANGED);
  assert.equal(b[0], 0x66, 'head: IPv6, TCP, changed');
  const r = new ConnRecord6();
  assert.equal(decodeRecord6(b, 0, 3, r), REC_OK);
  assert.deepEqual([r.kind, r.proto, r.state, r.finOrig, r.finReply, r.inDom, r.outDom, r.oSport, r.oDport],
    [REC_CHANGED, 6, CT_TCP_ESTABLISHED, false, true, 2, 1, 40000, 443]);
  assert.deepEqual([...r.buf.subarray(r.srcOff, r.srcOff + 16)], [...ip6(HOST6)]);
  assert.deepEqual([...r.buf.subarray(r.dstOff, r.dstOff + 16)], [...ip6(REMOTE6)]);
  const icmp = rec6((c) => { c.proto = 58; c.state = CT_REPLIED; c.oSport = c.oDport = 7; }, REC_EXPIRED);
  assert.equal(decodeRecord6(icmp, 0, 2, r), REC_OK);
  assert.deepEqual([r.kind, r.proto, r.state], [REC_EXPIRED, 58, CT_REPLIED]);
  // The version mix: an IPv4 decoder (an older conn-sync or router) refuses every IPv6 head.
  for (const head of [0x65, 0x66, 0x67, 0x69, 0x6a, 0x6b, 0x6d, 0x6e, 0x6f]) {
    const v = b.slice();
    v[0] = head;
    assert.ok(isRecord6(v, 0));
    assert.equal(RECORD_ERRORS[decodeRecord(v, 0, 3, new ConnRecord())], 'bad-kind', head.toString(16));
  }
});

test('record6: a hostile record is refused with its reason', () => {
  const good = rec6((c) => { c.state = CT_TCP_ESTABLISHED; });
  const r = new ConnRecord6();
  const bad = (mutate: (b: Uint8Array) => void, why: string): void => {
    const b = good.slice();
    mutate(b);
    assert.equal(RECORD_ERRORS[decodeRecord6(b, 0, 2, r)], why);
  };
  bad((b) => { b[0] = 0x64; }, 'bad-kind'); // kind 0
  bad((b) => { b[0] = 0x75; }, 'bad-kind'); // not the IPv6 nibble
  bad((b) => { b[0] = 0x61; }, 'bad-protocol'); // protocol code 0
  bad((b) => { b[1] = CT_NEW; }, 'bad-state'); // a UDP state on TCP
  bad((b) => { b[1] = 0; }, 'bad-state');
  bad((b) => { b[1] = 0x0f; }, 'bad-state');
  bad((b) => { b[1] |= 0x40; }, 'bad-flags');
  bad((b) => { b[1] |= 0x80; }, 'bad-flags');
  bad((b) => { b[0] = 0x69; b[1] = CT_REPLIED | 0x10; }, 'bad-flags'); // FIN on UDP
  bad((b) => { b[2] = 2; }, 'bad-domain'); // only 2 domains
  bad((b) => { b[3] = 0; }, 'bad-domain'); // in = out
  bad((b) => { b[0] = 0x6d; b[1] = CT_NEW; }, 'bad-icmp-id'); // ICMPv6 with ports 40000 / 443
});

// ---- export and import ------------------------------------------------------------

test('export6: an IPv6 TCP connection is sent new, changed (established) and expired', () => {
  const r = mk();
  exported(r); // the echo of neighbors6
  openTcp6(r);
  assert.deepEqual(kinds(exported(r)), ['v6:1', 'v6:2']);
  r.clock.t += 3_600_000 * 3; // past tcp-established-s (and the echo's timeout)
  r.router.tick();
  r.router.flush();
  assert.deepEqual(kinds(exported(r)), ['v6:3', 'v6:3']);
});

test('import6: a replaced router forwards the next segments of an established IPv6 TCP connection without a handshake', () => {
  const a = mk();
  exported(a);
  openTcp6(a);
  const recs = exported(a);
  // Without the records the new router drops the flow as not-SYN.
  const cold = mk();
  cold.send(0, fromHost(cold, 40000, 443, ACK));
  assert.equal(cold.ports[1].take().length, 0);
  assert.equal(cold.drops()['tcp-new-not-syn'], 1);

  const b = mk();
  exported(b);
  b.router.importSync(recs, 0, recs.length);
  assert.equal(b.count('sync.imported'), 1);
  assert.equal(b.count('sync.import-updated'), 1, 'the changed record updated what the new one installed');
  b.send(0, fromHost(b, 40000, 443, ACK));
  const out = b.ports[1].take();
  assert.equal(out.length, 1, 'the original direction is forwarded');
  assert.deepEqual([...out[0].subarray(26 + 8, 26 + 40)], [...ip6(HOST6), ...ip6(REMOTE6)]);
  b.send(1, fromRemote(b, 443, 40000, ACK));
  assert.equal(b.ports[0].take().length, 1, 'and the reply');
  assert.equal(b.drops()['tcp-new-not-syn'], undefined);
  const conns = (b.router.status() as { connections6: { proto: string; state: string }[] }).connections6;
  assert.deepEqual(conns.filter((c) => c.proto === 'tcp').map((c) => c.state), ['established']);
  // Confirmed to the peer: one IPv6 changed record per record applied.
  assert.deepEqual(kinds(exported(b)), ['v6:2', 'v6:2']);
});

test('import6 attacks: every record is checked against the router\'s config, policy and table before it is installed', () => {
  const r = mk();
  const refused = (edit: (c: Conn6) => void, why: string, kind = REC_NEW): void => {
    const before = r.count(`sync.import-refused.${why}`);
    const b = rec6(edit, kind);
    r.router.importSync(b, 0, b.length);
    assert.equal(r.count(`sync.import-refused.${why}`), before + 1, why);
  };
  refused(() => {}, 'expired-kind', REC_EXPIRED); // a peer cannot remove a router's connection
  refused((c) => { c.src6.set(words('2001:db8:5::a')); }, 'bad-address'); // not lan's prefix (lan has no default route)
  refused((c) => { c.src6.set(words('fe80::a')); }, 'bad-address');
  refused((c) => { c.src6.set(words('::1')); }, 'bad-address');
  refused((c) => { c.src6.set(words('ff02::1')); }, 'bad-address');
  refused((c) => { c.src6.set(words('2001:db8:0:1::1')); }, 'bad-address'); // the router's own
  refused((c) => { c.dst6.set(words('2001:db8:ff::1')); }, 'bad-address'); // the router's wan address
  refused((c) => { c.dst6.set(words('ff0e::1')); }, 'bad-address');
  refused((c) => { c.dst6.set(words('fe80::fe')); }, 'bad-address');
  refused((c) => { c.outDom = 2; }, 'bad-address'); // dmz speaks no IPv6
  refused((c) => { c.dst6.set(words('2001:db8:0:1::b')); }, 'not-routed'); // a lan address, said to go to wan
  refused((c) => { c.oDport = 8080; }, 'policy'); // no rule
  refused((c) => { c.oDport = 25; c.dst6.set(words('2001:db8:66::5')); }, 'policy'); // a reject rule
  refused((c) => { c.inDom = 1; c.outDom = 0; c.src6.set(words(REMOTE6)); c.dst6.set(words(HOST6)); c.oSport = 443; c.oDport = 40001; }, 'policy');
  refused((c) => { c.src6.set(words('2001:db8:0:1::bad')); }, 'blocked');
  assert.equal(r.count('sync.imported'), 0);
  assert.equal((r.router.status() as { conntrack6: { count: number } }).conntrack6.count, 1, 'only the echo of neighbors6');
  // Collisions: a record whose original key is a live connection's reply key.
  openTcp6(r);
  refused((c) => { c.inDom = 1; c.outDom = 0; c.src6.set(words(REMOTE6)); c.dst6.set(words(HOST6)); c.oSport = 443; c.oDport = 40000; }, 'collision');
  // Its own record updates it (a restore sent twice); the state in the record wins.
  const same = rec6((c) => { c.state = CT_TCP_ESTABLISHED; }, REC_CHANGED);
  r.router.importSync(same, 0, same.length);
  assert.equal(r.count('sync.import-updated'), 1);
  // After the restore window a running router looks at none of them.
  r.clock.t += SYNC_RESTORE_MS;
  r.router.flush();
  const late = rec6((c) => { c.oSport = 40100; });
  r.router.importSync(late, 0, late.length);
  assert.equal(r.count('sync.import-refused.not-restoring'), 1);
  assert.equal(r.count('sync.imported'), 0);
});

test('import6 bounds: the per-source (/64) limit and the table size hold for imports as for packets', () => {
  const r = mk({ ...CONFIG, conntrack: { max: 4, 'per-source': 2 } });
  exported(r);
  // neighbors6's echo holds one of the host /64's two.
  const a = rec6((c) => { c.oSport = 41000; });
  const b = rec6((c) => { c.oSport = 41001; c.src6.set(words('2001:db8:0:1::77')); });
  r.router.importSync(a, 0, a.length);
  r.router.importSync(b, 0, b.length);
  assert.equal(r.count('sync.imported'), 1);
  assert.equal(r.count('sync.import-refused.source-limit'), 1);
  // From wan (its rule lets port 40000 in), three sources in three /64s: two fill the table, the third finds it full.
  const fromWan = (n: number): Uint8Array => rec6((c) => {
    c.inDom = 1; c.outDom = 0; c.src6.set(words(`2001:db8:77:${n}::9`)); c.dst6.set(words(HOST6)); c.oSport = 443; c.oDport = 40000;
  });
  const full = Uint8Array.from([...fromWan(1), ...fromWan(2), ...fromWan(3)]);
  assert.equal(full.length, 3 * RECORD_LEN);
  r.router.importSync(full, 0, full.length);
  assert.equal(r.count('sync.imported'), 3);
  assert.equal(r.count('sync.import-refused.table-full'), 1);
  assert.equal((r.router.status() as { conntrack6: { count: number } }).conntrack6.count, 4);
});

test('export6: after conn-sync restarted (empty table), the router exports its IPv6 connections again', () => {
  const r = mk();
  openTcp6(r);
  exported(r);
  r.router.resyncPeer();
  r.router.flush();
  const again = exported(r);
  assert.deepEqual(kinds(again).sort(), ['v6:1', 'v6:1'], 'the echo and the TCP connection');
  const d = new ConnRecord6();
  const states: number[] = [];
  for (let o = 0; o < again.length; o += RECORD_LEN) {
    assert.equal(decodeRecord6(again, o, 3, d), REC_OK);
    states.push(d.state);
  }
  assert.ok(states.includes(CT_TCP_ESTABLISHED));
});

test('HA backup router: an expired IPv6 record removes exactly its connection', () => {
  const r = mk({ ...CONFIG, ha: true }, false);
  r.clock.t += 10 * SYNC_RESTORE_MS;
  r.router.flush();
  const add = rec6((c) => { c.state = CT_TCP_ESTABLISHED; });
  r.router.importSync(add, 0, add.length);
  assert.equal(r.count('sync.imported'), 1, 'a backup takes them at any time');
  const other = rec6((c) => { c.oSport = 40001; }, REC_EXPIRED);
  r.router.importSync(other, 0, other.length);
  assert.equal(r.count('sync.import-refused.expired-unknown'), 1);
  const gone = rec6(() => {}, REC_EXPIRED);
  r.router.importSync(gone, 0, gone.length);
  assert.equal(r.count('sync.import-removed'), 1);
  assert.equal((r.router.status() as { conntrack6: { count: number } }).conntrack6.count, 0);
  // A master refuses expired records: a peer cannot remove its connections.
  r.router.setRole('master');
  r.router.importSync(add, 0, add.length);
  assert.equal(r.count('sync.import-refused.not-restoring'), 1);
});

test('warm table: IPv6 records beside IPv4 ones in the same bounded slots; hostile ones refused', () => {
  const t = new WarmTable(2);
  const a = rec6();
  assert.equal(t.apply(a, 0), APPLY_ADDED);
  assert.equal(t.apply(rec6((c) => { c.state = CT_TCP_ESTABLISHED; }, REC_CHANGED), 0), APPLY_UPDATED);
  const v4 = new Uint8Array(RECORD_LEN);
  v4.set([REC_NEW, 17, CT_NEW, 0, 0, 1]);
  assert.equal(t.apply(v4, 0), APPLY_ADDED);
  assert.equal(t.size, 2);
  assert.equal(t.apply(rec6((c) => { c.oSport = 40001; }), 0), APPLY_FULL);
  const hostile = a.slice();
  hostile[1] = 0x0f;
  assert.equal(RECORD_ERRORS[-t.apply(hostile, 0)], 'bad-state');
  assert.equal(t.apply(rec6(() => {}, REC_EXPIRED), 0), APPLY_REMOVED);
  assert.equal(t.size, 1);
  // The one left is the IPv4 one, given back whole.
  const out = new Uint8Array(RECORD_LEN);
  for (let i = 0; i < t.max; i++) if (t.used(i)) t.copy(i, out, 0);
  assert.deepEqual(out, v4);
});
