// An HA pair in one process (issue 19): two routers with `ha: true` and the
// same config, each with its conn-sync, the two conn-syncs joined by their
// `pair` sessions (the test relays the frames: the sync link). A masqueraded
// UDP flow through the master is installed on the backup router at once; the
// backup takes no frame from its domains and sends none; at takeover it
// announces its addresses (gratuitous ARP) and forwards the flow's reply with
// the same NAT port, without a new first packet; an established IPv6 TCP
// connection the same way (its next segment is no SYN). A record its policy would
// refuse, offered by its conn-sync, is refused; a router without `ha`
// refuses the role command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Component, ComponentEnv } from '../../src/runtime/component.ts';
import { Counters } from '../../src/runtime/counters.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import createRouter from '../../src/components/router/index.ts';
import createConnSync from '../../src/components/conn-sync/index.ts';
import { createLocalSession } from '../../src/session/local.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { decodeFrame, encodeFrame } from '../../src/net/frame.ts';
import { Conn } from '../../src/components/router/conn-index.ts';
import { encodeRecord, REC_NEW, RECORD_LEN } from '../../src/components/router/conn-record.ts';
import { CT_TCP_ESTABLISHED } from '../../src/components/router/conntrack.ts';
import { frame, GW_MAC6, HOST6, HOST_MAC6, ip6, REMOTE6, tcpSeg } from './fixtures/ipv6-frames.ts';
import { encodeRecord6 } from '../../src/components/router/conn-record6.ts';
import { Conn6 } from '../../src/components/router/conntrack6.ts';
import { getI32 } from '../../src/net/bytes.ts';

const CONFIG = {
  ha: true,
  domains: {
    lan: { address: '198.18.0.1/24', address6: '2001:db8:0:1::1/64', forward: [{ to: 'wan', nat: true }], tcp: [{ ports: [443], to: 'wan' }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', address6: '2001:db8:ff::1/64', gateway6: 'fe80::fe' },
  },
};
const HOST = '02:00:00:00:00:0a';
const GW = '02:00:00:00:00:fe';

interface Gw {
  router: Component;
  rc: Counters;
  cs: Component;
  csc: Counters;
  lan: SessionEnd;
  wan: SessionEnd;
  pair: SessionEnd;
  /** The router's sync session end (to inject records as a compromised conn-sync would). */
  csRouterEnd: SessionEnd;
  ends: SessionEnd[];
}

test('HA pair: the backup router holds the master\'s flow, forwards nothing, and after takeover forwards it with the same NAT port', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-ha-'));
  const keyFile = join(dir, 'pair.key');
  writeFileSync(keyFile, Buffer.alloc(32, 3).toString('base64'), { mode: 0o600 });
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: (p: Pollable) => pollables.splice(pollables.indexOf(p), 1), kick() {} } as unknown as Entrypoint;
  const log = { info() {}, warn() {}, error() {} };
  const gw = (self: number, peer: number): Gw => {
    const [lan, rLan] = createLocalSession({ slots: 16, slotSize: 2048, names: ['nic', 'lan'] });
    const [wan, rWan] = createLocalSession({ slots: 16, slotSize: 2048, names: ['nic', 'wan'] });
    const [rSync, csRouter] = createLocalSession({ slots: 16, slotSize: 2048, names: ['sync', 'router'] });
    const [pair, csPair] = createLocalSession({ slots: 32, slotSize: 2048, names: ['nic', 'pair'] });
    const rc = new Counters();
    const env: ComponentEnv = {
      name: 'router', config: CONFIG, configSource: { file: 'gateway.yaml', path: 'components[2].config' },
      sessions: new Map<string, SessionEnd>([['lan', rLan], ['wan', rWan], ['sync', rSync]]), fds: {}, ep, counters: rc, log,
    };
    const csc = new Counters();
    const cs = createConnSync({
      name: 'conn-sync', config: { pair: { self, peer, 'batch-ms': 1, 'heartbeat-ms': 50 } }, configSource: { file: 'gateway.yaml', path: 'components[3].config' },
      sessions: new Map([['router', csRouter], ['pair', csPair]]), fds: { 'pair-key': openSync(keyFile, 'r') }, ep, counters: csc, log,
    });
    return { router: createRouter(env), rc, cs, csc, lan, wan, pair, csRouterEnd: csRouter, ends: [lan, rLan, wan, rWan, rSync, csRouter, pair, csPair] };
  };
  const a = gw(1, 2);
  const b = gw(2, 1);
  t.after(() => {
    for (const g of [a, b]) {
      g.router.stop?.();
      g.cs.stop?.();
      for (const e of g.ends) e.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const recv = (end: SessionEnd): Uint8Array[] => {
    const got: Uint8Array[] = [];
    end.in.receive((off, len) => got.push(end.in.buf.slice(off, off + len)), 64);
    end.in.flushAcks();
    return got;
  };
  const send = (end: SessionEnd, pkt: Uint8Array): void => {
    const slot = end.out.alloc();
    assert.ok(slot >= 0);
    end.out.buf.set(pkt, slot);
    end.out.submit(slot, pkt.length);
    end.out.flush();
  };
  const relay = (from: Gw, to: Gw): number => {
    const frames = recv(from.pair);
    for (const f of frames) send(to.pair, f);
    return frames.length;
  };
  const pump = (): void => {
    for (let round = 0; round < 50; round++) {
      let work = relay(a, b) + relay(b, a);
      for (const p of [...pollables]) if (p.pending?.() === true) work += p.run(false);
      if (work === 0) return;
    }
  };
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 4; i++) {
      pump();
      await new Promise((r) => setTimeout(r, 15));
    }
    pump();
  };
  const udp = (src: string, dst: string, sp: number, dp: number, from: string, to: string) => encodeFrame({
    kind: 'ipv4', eth: { dst: to, src: from }, ip: { src, dst },
    l4: { proto: 'udp', udp: { srcPort: sp, dstPort: dp, payload: new TextEncoder().encode('hello') } },
  });
  const macs = (r: Component): { lanMac: string; wanMac: string } => {
    const st = r.status() as { domains: { mac: string }[] };
    return { lanMac: st.domains[0].mac, wanMac: st.domains[1].mac };
  };
  for (const g of [a, b]) {
    g.cs.start();
    g.router.start();
  }
  assert.deepEqual((a.router.status() as { ha: { role: string } }).ha.role, 'backup', 'an ha router starts as backup');
  assert.deepEqual(macs(a.router), macs(b.router), 'the same config gives the same MACs (a virtual MAC per domain)');
  const { lanMac, wanMac } = macs(a.router);
  // init makes a master.
  a.router.command?.('role', { role: 'master' });
  a.cs.command?.('role', { role: 'master' });
  b.cs.command?.('role', { role: 'backup' });
  const garp = recv(a.lan).map((f) => decodeFrame(f));
  assert.ok(garp.some((f) => f.ok && f.value.kind === 'arp' && f.value.arp.senderIp === '198.18.0.1' && f.value.arp.targetIp === '198.18.0.1'), 'gratuitous ARP on the lan');
  recv(a.wan);
  assert.equal(a.rc.get('arp.gratuitous-sent'), 2);
  // A flow through the master.
  send(a.lan, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST },
    arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  send(a.lan, udp('198.18.0.10', '203.0.113.9', 5000, 53, HOST, lanMac));
  pump();
  recv(a.lan);
  recv(a.wan); // the ARP request for the wan gateway
  send(a.wan, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: GW },
    arp: { op: 'reply', senderMac: GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
  pump();
  const [out1] = recv(a.wan);
  const f1 = decodeFrame(out1);
  assert.ok(f1.ok && f1.value.kind === 'ipv4' && f1.value.l4.proto === 'udp');
  const natPort = f1.value.l4.udp.srcPort;
  send(a.wan, udp('203.0.113.9', '198.19.0.1', 53, natPort, GW, wanMac));
  pump();
  assert.equal(recv(a.lan).length, 1);
  // An IPv6 TCP connection through the master (its neighbors unresolved: the segments wait, tracked all the same).
  const mac6 = (m: string): number[] => m.split(':').map((h) => parseInt(h, 16));
  send(a.lan, frame(HOST_MAC6, mac6(lanMac), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x02)));
  send(a.wan, frame(GW_MAC6, mac6(wanMac), REMOTE6, HOST6, 6, tcpSeg(443, 40000, 0x12)));
  send(a.lan, frame(HOST_MAC6, mac6(lanMac), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x10)));
  pump();
  recv(a.lan);
  recv(a.wan);
  await settle();
  // The backup's router has them, and sends and forwards nothing.
  assert.ok(b.rc.get('sync.imported') >= 2, 'the backup router imported the flows');
  assert.deepEqual((b.router.status() as { connections6: { state: string }[] }).connections6.map((x) => x.state), ['established']);
  const bConns = (b.router.status() as { connections: { nat: string; state: string }[] }).connections;
  assert.equal(bConns.length, 1);
  assert.equal(bConns[0].nat, `198.19.0.1:${natPort}`);
  send(b.wan, udp('203.0.113.9', '198.19.0.1', 53, natPort, GW, wanMac));
  send(b.lan, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST },
    arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  await settle();
  assert.equal(recv(b.lan).length, 0, 'a backup answers no ARP and forwards nothing');
  assert.equal(recv(b.wan).length, 0);
  assert.equal(b.rc.get('drop.ha-backup'), 2);
  b.router.stop?.(); // stop and start its timers again: a tick must send nothing either
  b.router.start();
  await settle();
  assert.equal(recv(b.lan).length + recv(b.wan).length, 0);
  // A compromised conn-sync offers the backup a wan -> lan connection its policy refuses.
  const c = new Conn();
  Object.assign(c, { proto: 6, state: CT_TCP_ESTABLISHED, inDom: 1, outDom: 0, oSrc: (203 << 24) | (113 << 8) | 9, oSport: 4444,
    oDst: (198 << 24) | (18 << 16) | 10, oDport: 22, rSrc: (198 << 24) | (18 << 16) | 10, rSport: 22, rDst: (203 << 24) | (113 << 8) | 9, rDport: 4444, expires: 100_000 });
  // And the same over IPv6 (wan -> lan port 22), in the same packet.
  const c6 = new Conn6();
  Object.assign(c6, { proto: 6, state: CT_TCP_ESTABLISHED, inDom: 1, outDom: 0, oSport: 4444, oDport: 22 });
  const words = (addr: string): Int32Array => Int32Array.from([0, 4, 8, 12], (o) => getI32(ip6(addr), o));
  c6.src6.set(words(REMOTE6));
  c6.dst6.set(words(HOST6));
  const rec = new Uint8Array(2 * RECORD_LEN);
  encodeRecord(rec, 0, REC_NEW, c, 0);
  encodeRecord6(rec, RECORD_LEN, REC_NEW, c6);
  send(b.csRouterEnd, rec);
  pump();
  assert.equal(b.rc.get('sync.import-refused.policy'), 2, 'the backup router still checks its policy, IPv4 and IPv6');
  assert.equal((b.router.status() as { connections6: unknown[] }).connections6.length, 1, 'only the master\'s IPv6 connection');
  // Takeover: the master dies (its frames stop); init makes b master.
  a.router.command?.('role', { role: 'backup' });
  b.router.command?.('role', { role: 'master' });
  b.cs.command?.('role', { role: 'master' });
  assert.equal(b.rc.get('arp.gratuitous-sent'), 2);
  recv(b.lan);
  recv(b.wan);
  send(b.wan, udp('203.0.113.9', '198.19.0.1', 53, natPort, GW, wanMac));
  pump();
  const back = recv(b.lan);
  // The lan host is not resolved on b yet: the reply waits for ARP, which b now sends.
  const arpReq = back.map((f) => decodeFrame(f)).find((f) => f.ok && f.value.kind === 'arp');
  assert.ok(arpReq !== undefined, 'the new master resolves the lan host');
  send(b.lan, encodeFrame({ kind: 'arp', eth: { dst: lanMac, src: HOST },
    arp: { op: 'reply', senderMac: HOST, senderIp: '198.18.0.10', targetMac: lanMac, targetIp: '198.18.0.1' } }));
  pump();
  const got = recv(b.lan).map((f) => decodeFrame(f)).filter((f) => f.ok && f.value.kind === 'ipv4');
  assert.equal(got.length, 1, 'the remote\'s reply reaches the lan host through the new master');
  const g0 = got[0];
  assert.ok(g0.ok && g0.value.kind === 'ipv4' && g0.value.l4.proto === 'udp' && g0.value.l4.udp.dstPort === 5000);
  assert.equal(b.rc.get('conntrack.new'), 0, 'no new connection: the imported one carried it');
  // The IPv6 connection's next segment: taken by the new master (it solicits the gateway for it), not dropped as not-SYN.
  send(b.lan, frame(HOST_MAC6, mac6(lanMac), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x10)));
  pump();
  assert.equal(b.rc.get('nd6.queued'), 1);
  assert.equal(b.rc.get('drop.tcp-new-not-syn'), 0);
  assert.equal(b.rc.get('conntrack6.new'), 0, 'the imported IPv6 connection carried it');
});

test('HA role: a router without `ha` refuses the role command; bad arguments are refused whole', () => {
  const ep = { add() {}, remove() {}, kick() {} } as unknown as Entrypoint;
  const [l1, l2] = createLocalSession({ slots: 4, slotSize: 2048, names: ['nic', 'lan'] });
  const [w1, w2] = createLocalSession({ slots: 4, slotSize: 2048, names: ['nic', 'wan'] });
  try {
    const mk = (cfg: unknown) => createRouter({
      name: 'router', config: cfg, configSource: { file: 'gw.yaml', path: 'components[2].config' },
      sessions: new Map<string, SessionEnd>([['lan', l2], ['wan', w2]]), fds: {}, ep, counters: new Counters(), log: { info() {}, warn() {}, error() {} },
    });
    const plain = mk({ domains: CONFIG.domains });
    assert.throws(() => plain.command?.('role', { role: 'master' }), /not one of an HA pair/);
    const ha = mk(CONFIG);
    assert.throws(() => ha.command?.('role', { role: 'boss' }), /master or backup/);
    assert.throws(() => ha.command?.('role', { role: 'master', extra: 1 }), /unknown argument "extra"/);
    assert.deepEqual((ha.command?.('role', { role: 'master' }) as { role: string }).role, 'master');
    assert.throws(() => mk({ ...CONFIG, ha: 'yes' }), /components\[2\]\.config\.ha: /);
  } finally {
    for (const e of [l1, l2, w1, w2]) e.close();
  }
});
