// The router component wired to real in-process sessions (the `local`
// transport: the same rings as shm): what index.ts adds to the logic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ComponentEnv } from '../../src/runtime/component.ts';
import { ConfigFileError } from '../../src/config/reader.ts';
import { Counters } from '../../src/runtime/counters.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import create from '../../src/components/router/index.ts';
import { configHash } from '../../src/components/router/config-hash.ts';
import { HOLD_MAX_MS } from '../../src/components/router/egress-hold.ts';
import { createLocalSession } from '../../src/session/local.ts';
import type { SessionEnd } from '../../src/session/types.ts';
import { decodeFrame, encodeFrame } from '../../src/net/frame.ts';

const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' },
  },
};

function setup(sessions: string[] = ['lan', 'wan'], config: Record<string, unknown> = CONFIG) {
  const drivers = new Map<string, SessionEnd>();
  const granted = new Map<string, SessionEnd>();
  for (const name of sessions) {
    const [drv, rtr] = createLocalSession({ slots: 16, slotSize: 2048, names: ['nic', name] });
    drivers.set(name, drv);
    granted.set(name, rtr);
  }
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: (p: Pollable) => pollables.splice(pollables.indexOf(p), 1), kick() {} } as unknown as Entrypoint;
  const counters = new Counters();
  const logs: string[] = [];
  const env: ComponentEnv = {
    name: 'router',
    config,
    configSource: { file: 'gateway.yaml', path: 'components[1].config' },
    sessions: granted,
    fds: {},
    ep,
    counters,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(`warn: ${m}`), error: (m) => logs.push(`error: ${m}`) },
  };
  /** Run the pollables until nothing is left to do. */
  const pump = (): void => {
    for (let round = 0; round < 10; round++) {
      let work = 0;
      for (const p of pollables) if (p.pending?.() === true) work += p.run(false);
      if (work === 0) return;
    }
  };
  const send = (name: string, pkt: Uint8Array): void => {
    const out = (drivers.get(name) as SessionEnd).out;
    const slot = out.alloc();
    assert.ok(slot >= 0);
    out.buf.set(pkt, slot);
    out.submit(slot, pkt.length);
    out.flush();
  };
  const recv = (name: string): Uint8Array[] => {
    const sink = (drivers.get(name) as SessionEnd).in;
    const got: Uint8Array[] = [];
    sink.receive((off, len) => got.push(sink.buf.slice(off, off + len)), 64);
    sink.flushAcks();
    return got;
  };
  return { env, pollables, counters, logs, pump, send, recv, drivers, granted };
}

test('router component: ARP, NAT out through resolution, reply back, over local sessions', () => {
  const s = setup();
  const comp = create(s.env);
  comp.start();
  try {
    assert.equal(s.pollables.length, 4, 'per domain: its sink, and the wait for its egress slots');
    const st = comp.status() as { domains: { name: string; mac: string }[]; configHash: string };
    assert.equal(st.configHash, configHash(s.env.config), 'the config section\'s hash is in status');
    const lanMac = st.domains[0].mac;
    const wanMac = st.domains[1].mac;
    const HOST = '02:00:00:00:00:0a';
    const GW = '02:00:00:00:00:fe';
    s.send('lan', encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST },
      arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
    s.pump();
    const [arpReply] = s.recv('lan');
    const ar = decodeFrame(arpReply);
    assert.ok(ar.ok && ar.value.kind === 'arp' && ar.value.arp.op === 'reply');
    assert.equal(ar.value.arp.senderMac, lanMac);

    const udp = (src: string, dst: string, sp: number, dp: number, from: string, to: string) => encodeFrame({
      kind: 'ipv4', eth: { dst: to, src: from }, ip: { src, dst },
      l4: { proto: 'udp', udp: { srcPort: sp, dstPort: dp, payload: new TextEncoder().encode('hello') } },
    });
    s.send('lan', udp('198.18.0.10', '203.0.113.9', 5000, 53, HOST, lanMac));
    s.pump();
    const [who] = s.recv('wan');
    const w = decodeFrame(who);
    assert.ok(w.ok && w.value.kind === 'arp' && w.value.arp.op === 'request' && w.value.arp.targetIp === '198.19.0.254');
    s.send('wan', encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: GW },
      arp: { op: 'reply', senderMac: GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
    s.pump();
    const [fwd] = s.recv('wan');
    const f = decodeFrame(fwd);
    assert.ok(f.ok && f.value.kind === 'ipv4' && f.value.l4.proto === 'udp');
    assert.equal(f.value.ip.src, '198.19.0.1');
    assert.equal(f.value.eth.dst, GW);
    const nat = f.value.l4.udp.srcPort;
    s.send('wan', udp('203.0.113.9', '198.19.0.1', 53, nat, GW, wanMac));
    s.pump();
    const [back] = s.recv('lan');
    const b = decodeFrame(back);
    assert.ok(b.ok && b.value.kind === 'ipv4' && b.value.l4.proto === 'udp');
    assert.equal(b.value.ip.dst, '198.18.0.10');
    assert.equal(b.value.l4.udp.dstPort, 5000);
    assert.equal(b.value.eth.dst, HOST);
    assert.equal(s.counters.get('rx.lan'), 2);
    assert.equal(s.counters.get('tx.wan'), 2);
    assert.equal(s.counters.get('forwarded'), 2);
    const status = comp.status() as { connections: unknown[]; conntrack: { count: number } };
    assert.equal(status.conntrack.count, 1);
    assert.equal(status.connections.length, 1);
    // A session reset forgets that domain's ARP state.
    comp.sessionReset?.('wan');
    const arp = (comp.status() as { arp: { domain: string }[] }).arp;
    assert.deepEqual(arp.map((e) => e.domain), ['lan']);
  } finally {
    comp.stop?.();
    for (const e of [...s.drivers.values(), ...s.granted.values()]) e.close();
  }
  assert.equal(s.pollables.length, 0, 'stop() removes the pollables');
});

test('router component: a domain without its session is a ConfigFileError naming the domain', () => {
  const s = setup(['lan']);
  assert.throws(() => create(s.env), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError);
    assert.equal(e.path, 'components[1].config.domains.wan');
    assert.match(e.message, /session named "wan"/);
    return true;
  });
  for (const e of [...s.drivers.values(), ...s.granted.values()]) e.close();
});

const HOST = '02:00:00:00:00:0a';
const GW = '02:00:00:00:00:fe';
const udpFrame = (n: number, lanMac: string): Uint8Array => encodeFrame({
  kind: 'ipv4', eth: { dst: lanMac, src: HOST }, ip: { src: '198.18.0.10', dst: '203.0.113.9' },
  l4: { proto: 'udp', udp: { srcPort: 5000, dstPort: 53, payload: new TextEncoder().encode(`frame ${n}`) } },
});

/** A started router whose wan next hop is resolved (one lan -> wan frame went through); the wan "driver" then takes nothing. */
function resolved(config: Record<string, unknown> = CONFIG) {
  const s = setup(['lan', 'wan'], config);
  const comp = create(s.env);
  comp.start();
  const st = comp.status() as { domains: { name: string; mac: string }[] };
  const lanMac = st.domains[0].mac;
  const wanMac = st.domains[1].mac;
  s.send('lan', udpFrame(0, lanMac));
  s.pump();
  assert.equal(s.recv('wan').length, 1, 'the ARP request for the wan gateway');
  s.send('wan', encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: GW },
    arp: { op: 'reply', senderMac: GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
  s.pump();
  assert.equal(s.recv('wan').length, 1, 'the first frame, sent once the gateway answered');
  /** Fill lan's ring with n frames (the lan "driver" is honest: it stops when no slot is free). */
  const offer = (n: number): void => {
    for (let i = 0; i < n; i++) s.send('lan', udpFrame(i + 1, lanMac));
  };
  const close = (): void => {
    comp.stop?.();
    for (const e of [...s.drivers.values(), ...s.granted.values()]) e.close();
  };
  return { ...s, comp, offer, close, lanFree: () => (s.drivers.get('lan') as SessionEnd).out.available() };
}

test('backpressure: an egress with no free slot holds the ingress sending to it; its frames wait in their ring, none dropped; slots back: all forwarded', () => {
  const s = resolved();
  try {
    s.offer(16); // the wan egress has 16 slots: all taken, none acknowledged
    s.pump();
    assert.equal(s.counters.get('forwarded'), 17);
    s.offer(10);
    s.pump();
    assert.equal(s.counters.get('forwarded'), 17, 'nothing more was routed into the full egress');
    assert.equal(s.counters.get('drop.egress-full'), 0, 'and nothing dropped there');
    assert.equal(s.counters.get('egress-hold.wan'), 1, 'one hold began');
    assert.equal(s.lanFree(), 6, 'the 10 frames wait in the lan ring, unacknowledged (the lan driver would stop reading its link)');
    assert.equal(s.recv('wan').length, 16, 'the wan driver takes its frames and acknowledges them');
    s.pump();
    assert.equal(s.counters.get('forwarded'), 27, 'the held frames went out');
    assert.equal(s.recv('wan').length, 10);
    assert.equal(s.lanFree(), 16);
    assert.equal(s.counters.get('drop.egress-full'), 0);
  } finally {
    s.close();
  }
});

test('backpressure: an egress that frees no slot for HOLD_MAX_MS stops holding (a hung or hostile peer): its frames are dropped, counted, logged', async () => {
  const s = resolved();
  try {
    s.offer(16);
    s.pump();
    s.offer(10);
    s.pump();
    assert.equal(s.lanFree(), 6, 'held');
    await new Promise((r) => setTimeout(r, HOLD_MAX_MS + 10));
    s.pump();
    assert.equal(s.lanFree(), 16, 'the lan ring was emptied: the peer that stopped cannot hold the lan');
    assert.equal(s.counters.get('drop.egress-full'), 10);
    assert.equal(s.counters.get('egress-stall.wan'), 1);
    assert.match(s.logs.join('\n'), /egress wan freed no slot for \d+ ms: not holding ingresses for it for 10 s/);
    assert.ok((s.comp.status() as { backpressureOffMs?: Record<string, number> }).backpressureOffMs?.wan! > 9000, 'status says for how long');
    // Frames to other egresses flow meanwhile: an ARP request to the router from the lan is answered.
    s.send('lan', encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST },
      arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.10', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
    s.pump();
    assert.equal(s.recv('lan').length, 1);
  } finally {
    s.close();
  }
});

test('backpressure: false on a domain: its full egress never holds an ingress (frames dropped as egress-full, as a peer slow by nature wants)', () => {
  const s = resolved({ domains: { ...CONFIG.domains, wan: { ...CONFIG.domains.wan, backpressure: false } } });
  try {
    s.offer(16);
    s.pump();
    s.offer(10);
    s.pump();
    assert.equal(s.lanFree(), 16);
    assert.equal(s.counters.get('drop.egress-full'), 10);
    assert.equal(s.counters.get('egress-hold.wan'), 0);
    // A reload turns it back on: the next frames wait for the wan's slots.
    assert.equal(s.comp.reconfigure?.(CONFIG), undefined);
    s.offer(5);
    s.pump();
    assert.equal(s.lanFree(), 11, 'held after the reload');
    assert.equal(s.counters.get('drop.egress-full'), 10);
  } finally {
    s.close();
  }
});
