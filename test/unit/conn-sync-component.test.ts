// The router and conn-sync components wired to each other over a real
// in-process session (the `local` transport: the same rings as shm): a UDP
// flow masqueraded by router 1 is held by conn-sync; router 1 goes, the
// session is reset as init resets it (conn-sync's sessionReset sends the
// table back), router 2 starts, imports it, and forwards the flow's next
// packet with the same NAT port; the remote's reply comes through at once.
// The same for an established IPv6 TCP connection: its next segment (no SYN)
// is forwarded by router 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Component, ComponentEnv } from '../../src/runtime/component.ts';
import { Counters } from '../../src/runtime/counters.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import createRouter from '../../src/components/router/index.ts';
import createConnSync from '../../src/components/conn-sync/index.ts';
import { createLocalSession } from '../../src/session/local.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { decodeFrame, encodeFrame } from '../../src/net/frame.ts';
import { CONFIG6, frame, GW_MAC6, HOST6, HOST_MAC6, ip6, REMOTE6, tcpSeg } from './fixtures/ipv6-frames.ts';

const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' },
  },
};
const HOST = '02:00:00:00:00:0a';
const GW = '02:00:00:00:00:fe';

/** Both components over local sessions: the router's config, conn-sync, and the driver ends of lan and wan. */
function rig(config: Record<string, unknown>) {
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: (p: Pollable) => pollables.splice(pollables.indexOf(p), 1), kick() {} } as unknown as Entrypoint;
  const log = { info() {}, warn() {}, error() {} };
  const pump = (): void => {
    for (let round = 0; round < 20; round++) {
      let work = 0;
      for (const p of [...pollables]) if (p.pending?.() === true) work += p.run(false);
      if (work === 0) return;
    }
  };
  const [drvLan, rLan] = createLocalSession({ slots: 16, slotSize: 2048, names: ['nic', 'lan'] });
  const [drvWan, rWan] = createLocalSession({ slots: 16, slotSize: 2048, names: ['nic', 'wan'] });
  const [rSync, csEnd] = createLocalSession({ slots: 16, slotSize: 2048, names: ['sync', 'router'] });
  const routerEnv = (counters: Counters): ComponentEnv => ({
    name: 'router', config, configSource: { file: 'gateway.yaml', path: 'components[2].config' },
    sessions: new Map<string, SessionEnd>([['lan', rLan], ['wan', rWan], ['sync', rSync]]), fds: {}, ep, counters, log,
  });
  const csCounters = new Counters();
  const cs = createConnSync({
    name: 'conn-sync', config: {}, configSource: { file: 'gateway.yaml', path: 'components[3].config' },
    sessions: new Map([['router', csEnd]]), fds: {}, ep, counters: csCounters, log,
  });
  const send = (drv: SessionEnd, pkt: Uint8Array): void => {
    const slot = drv.out.alloc();
    assert.ok(slot >= 0);
    drv.out.buf.set(pkt, slot);
    drv.out.submit(slot, pkt.length);
    drv.out.flush();
  };
  const recv = (drv: SessionEnd): Uint8Array[] => {
    const got: Uint8Array[] = [];
    drv.in.receive((off, len) => got.push(drv.in.buf.slice(off, off + len)), 64);
    drv.in.flushAcks();
    return got;
  };
  const udp = (src: string, dst: string, sp: number, dp: number, from: string, to: string) => encodeFrame({
    kind: 'ipv4', eth: { dst: to, src: from }, ip: { src, dst },
    l4: { proto: 'udp', udp: { srcPort: sp, dstPort: dp, payload: new TextEncoder().encode('hello') } },
  });
  /** Neighbours for a (new) router: the lan host asks for it, it asks for the wan gateway and gets the answer. */
  const neighbours = (r: Component): { lanMac: string; wanMac: string } => {
    const st = r.status() as { domains: { mac: string }[] };
    const lanMac = st.domains[0].mac;
    const wanMac = st.domains[1].mac;
    send(drvLan, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST },
      arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
    pump();
    recv(drvLan);
    return { lanMac, wanMac };
  };
  const resolveGw = (wanMac: string): void => {
    recv(drvWan); // the ARP request
    send(drvWan, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: GW },
      arp: { op: 'reply', senderMac: GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
    pump();
  };

  return { pollables, pump, drvLan, rLan, drvWan, rWan, rSync, csEnd, routerEnv, csCounters, cs, send, recv, udp, neighbours, resolveGw };
}

test('router + conn-sync components: a masqueraded flow survives the router being replaced', () => {
  const { pump, drvLan, rLan, drvWan, rWan, rSync, csEnd, routerEnv, cs, send, recv, udp, neighbours, resolveGw } = rig(CONFIG);
  cs.start();
  const c1 = new Counters();
  const r1 = createRouter(routerEnv(c1));
  r1.start();
  let r2: Component | undefined;
  try {
    const m1 = neighbours(r1);
    send(drvLan, udp('198.18.0.10', '203.0.113.9', 5000, 53, HOST, m1.lanMac));
    pump();
    resolveGw(m1.wanMac);
    const [out1] = recv(drvWan);
    const f1 = decodeFrame(out1);
    assert.ok(f1.ok && f1.value.kind === 'ipv4' && f1.value.l4.proto === 'udp');
    const natPort = f1.value.l4.udp.srcPort;
    send(drvWan, udp('203.0.113.9', '198.19.0.1', 53, natPort, GW, m1.wanMac)); // the reply: state "replied"
    pump();
    assert.equal(recv(drvLan).length, 1);
    pump();
    assert.equal((cs.status() as { entries: number }).entries, 1, 'conn-sync holds the flow');

    // Router 1 dies; init resets the survivors' ends of its sessions, then router 2 starts.
    r1.stop?.();
    csEnd.reset();
    rSync.reset(); // the new router's end starts clean, as a new process's mapping would
    cs.sessionReset?.('router'); // conn-sync sends its table into the session
    const c2 = new Counters();
    r2 = createRouter(routerEnv(c2));
    r2.start();
    pump();
    assert.equal(c2.get('sync.imported'), 1, 'the flow came back');
    const st2 = r2.status() as { connections: { nat: string; state: string }[] };
    assert.equal(st2.connections[0].nat, `198.19.0.1:${natPort}`);
    assert.equal(st2.connections[0].state, 'replied');
    assert.equal((cs.status() as { lastRestore: { sent: number } }).lastRestore.sent, 1);
    // The reply direction works at once (the wan gateway still to be resolved for the other one).
    const m2 = neighbours(r2);
    send(drvWan, udp('203.0.113.9', '198.19.0.1', 53, natPort, GW, m2.wanMac));
    pump();
    const back = recv(drvLan);
    assert.equal(back.length, 1, 'the remote reaches the lan host through the imported mapping');
    const b = decodeFrame(back[0]);
    assert.ok(b.ok && b.value.kind === 'ipv4' && b.value.l4.proto === 'udp' && b.value.l4.udp.dstPort === 5000);
    send(drvLan, udp('198.18.0.10', '203.0.113.9', 5000, 53, HOST, m2.lanMac));
    pump();
    resolveGw(m2.wanMac);
    const [out2] = recv(drvWan);
    const f2 = decodeFrame(out2);
    assert.ok(f2.ok && f2.value.kind === 'ipv4' && f2.value.l4.proto === 'udp');
    assert.equal(f2.value.l4.udp.srcPort, natPort, 'the same NAT port');
  } finally {
    r2?.stop?.();
    cs.stop?.();
    for (const e of [drvLan, rLan, drvWan, rWan, rSync, csEnd]) e.close();
  }
});

test('router + conn-sync components: an established IPv6 TCP connection survives the router being replaced', () => {
  const { pump, drvLan, rLan, drvWan, rWan, rSync, csEnd, routerEnv, cs, send, recv } = rig(CONFIG6);
  const macOf = (r: Component, dom: number): number[] => (r.status() as { domains: { mac: string }[] }).domains[dom].mac.split(':').map((h) => parseInt(h, 16));
  cs.start();
  const r1 = createRouter(routerEnv(new Counters()));
  r1.start();
  let r2: Component | undefined;
  try {
    // The handshake through router 1 (its neighbors unresolved: each segment waits in the pending pool, tracked all the same).
    send(drvLan, frame(HOST_MAC6, macOf(r1, 0), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x02)));
    pump();
    send(drvWan, frame(GW_MAC6, macOf(r1, 1), REMOTE6, HOST6, 6, tcpSeg(443, 40000, 0x12)));
    pump();
    send(drvLan, frame(HOST_MAC6, macOf(r1, 0), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x10)));
    pump();
    assert.deepEqual((r1.status() as { connections6: { state: string }[] }).connections6.map((c) => c.state), ['established']);
    assert.equal((cs.status() as { entries: number }).entries, 1, 'conn-sync holds the IPv6 connection');
    recv(drvLan);
    recv(drvWan);

    r1.stop?.();
    csEnd.reset();
    rSync.reset();
    cs.sessionReset?.('router');
    const c2 = new Counters();
    r2 = createRouter(routerEnv(c2));
    r2.start();
    pump();
    assert.equal(c2.get('sync.imported'), 1, 'the connection came back');
    assert.deepEqual((r2.status() as { connections6: { state: string }[] }).connections6.map((c) => c.state), ['established']);
    // The next segment (no SYN) is forwarded: the router asks for the gateway, which answers, and the segment leaves.
    const mac2 = macOf(r2, 1);
    send(drvLan, frame(HOST_MAC6, macOf(r2, 0), HOST6, REMOTE6, 6, tcpSeg(40000, 443, 0x10)));
    pump();
    assert.equal(recv(drvWan).length, 1, 'a neighbor solicitation for the gateway');
    // The neighbor advertisement, to CONFIG6's wan address6.
    send(drvWan, frame(GW_MAC6, mac2, 'fe80::fe', '2001:db8:ff::1', 58, [136, 0, 0, 0, 0x60, 0, 0, 0, ...ip6('fe80::fe'), 2, 1, ...GW_MAC6], 255));
    pump();
    const out = recv(drvWan);
    assert.equal(out.length, 1, 'the established connection\'s segment is forwarded');
    assert.deepEqual([...out[0].subarray(26 + 8, 26 + 40)], [...ip6(HOST6), ...ip6(REMOTE6)]);
    assert.equal(c2.get('drop.tcp-new-not-syn'), 0);
  } finally {
    r2?.stop?.();
    cs.stop?.();
    for (const e of [drvLan, rLan, drvWan, rWan, rSync, csEnd]) e.close();
  }
});
