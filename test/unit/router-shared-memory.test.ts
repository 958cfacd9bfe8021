// The attack of issue 13, finding 5, kept as a test: a hostile driver keeps
// writing the ingress slot while the router handles its frame. The router
// must decide on, and forward, the bytes as they were when it copied them out
// of the slot: the decision (counters, connections), the forwarded frame and
// the monitor's mirror copy all match a run with an honest driver.
//
// The hostile peer strikes at three moments: when the router first touches
// the frame (its mirror copy allocates a mirror slot), after parsing (the
// router's first tracepoint span), and when the router allocates the egress
// slot. Each time it either rewrites what matters (UDP -> TCP, port 53 -> 22,
// IHL 5 -> 6, another destination) or poisons the whole slot. The last test
// does it through the real component over in-process sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Mirror } from '../../src/components/router/mirror.ts';
import { copyFrame, words } from '../../src/components/router/packet.ts';
import { Router } from '../../src/components/router/router.ts';
import { formatMac } from '../../src/net/addr.ts';
import { decodeFrame, encodeFrame, type L4 } from '../../src/net/frame.ts';
import { Tracer } from '../../src/trace/tracer.ts';
import createRouter from '../../src/components/router/index.ts';
import type { ComponentEnv } from '../../src/runtime/component.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import { createLocalSession } from '../../src/session/local.ts';
import { FakePort } from './fixtures/router-rig.ts';

const LAN_HOST = '02:00:00:00:00:0a';
const WAN_GW = '02:00:00:00:00:fe';
const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', udp: [{ dst: '0.0.0.0/0', ports: [53], to: 'wan' }], icmp: [{ to: 'wan' }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', nat: { from: ['lan'] } },
  },
};

/** An egress port that calls a hook when the router allocates a slot. */
class HookedPort extends FakePort {
  onAlloc: (() => void) | undefined;
  override alloc(): number {
    this.onAlloc?.();
    return super.alloc();
  }
}

/** A tracer (off) that calls a hook at every span the router records. */
class HookedTracer extends Tracer {
  onSpan: (() => void) | undefined;
  override end(id: number, t0: number, arg = 0): number {
    this.onSpan?.();
    return super.end(id, t0, arg);
  }
}

type Moment = 'none' | 'first-touch' | 'after-parse' | 'egress-alloc';
type Tamper = 'rewrite' | 'poison';

interface Outcome {
  wan: Uint8Array[];
  lan: Uint8Array[];
  mirror: Uint8Array[];
  counters: Record<string, number>;
  connections: unknown;
}

const ETH = 12 + 14; // vnet header + Ethernet: the IP header's offset in a packet

function run(pkt: Uint8Array, moment: Moment, tamper: Tamper): Outcome {
  const cfg = parseRouterConfig(CONFIG, 'router', { file: 'test.yaml', path: 'components[0].config' });
  const counters = new Counters();
  const lan = new HookedPort();
  const wan = new HookedPort();
  const mirrorPort = new HookedPort();
  const mirror = new Mirror({ domains: ['lan'], rx: true, tx: false }, ['lan', 'wan'], mirrorPort, counters);
  const tracer = new HookedTracer({ component: 'router', mode: 'off' });
  const router = new Router(cfg, [lan, wan], counters, { clock: () => 1_000_000, tracer, mirror });
  const lanMac = formatMac(cfg.domains[0].mac);
  const wanMac = formatMac(cfg.domains[1].mac);
  const ingress = new Uint8Array(64 * 1024);
  const off = 4096;
  const send = (dom: number, frame: Uint8Array): void => {
    ingress.fill(0x55);
    ingress.set(frame, off);
    router.receive(dom, ingress, off, frame.length);
    router.flush();
  };
  // Neighbours first (honestly): the lan host, the wan gateway.
  send(0, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: LAN_HOST }, arp: { op: 'request', senderMac: LAN_HOST, senderIp: '198.18.0.23', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  send(1, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: WAN_GW }, arp: { op: 'reply', senderMac: WAN_GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
  lan.take();
  wan.take();
  mirrorPort.take();

  let armed = moment !== 'none';
  const strike = (): void => {
    if (!armed) return;
    armed = false;
    if (tamper === 'poison') {
      ingress.fill(0xaa, off, off + pkt.length);
      return;
    }
    ingress[off + ETH] = 0x46; // IHL 6
    ingress[off + ETH + 9] = 6; // TCP
    ingress[off + ETH + 19] ^= 1; // another destination
    ingress[off + ETH + 20 + 2] = 0; // destination port 22
    ingress[off + ETH + 20 + 3] = 22;
  };
  if (moment === 'first-touch') mirrorPort.onAlloc = strike;
  if (moment === 'after-parse') tracer.onSpan = strike;
  if (moment === 'egress-alloc') wan.onAlloc = lan.onAlloc = strike;
  const frame = pkt.slice();
  frame.set(macBytes(lanMac), 12); // to the router's lan MAC
  send(0, frame);
  assert.equal(armed, false, moment === 'none' ? 'never armed' : `the ${moment} hook ran`);
  const snap = counters.snapshot();
  const kept: Record<string, number> = {};
  for (const [k, v] of Object.entries(snap)) if (k.startsWith('drop.') || k.startsWith('conntrack.') || k === 'forwarded' || k.startsWith('icmp.')) kept[k] = v;
  return { wan: wan.take(), lan: lan.take(), mirror: mirrorPort.take(), counters: kept, connections: router.status().connections };
}

function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':'), (h) => parseInt(h, 16));
}

function packet(l4: L4, dst = '203.0.113.9'): Uint8Array {
  // Destination MAC is a placeholder: run() writes the router's lan MAC.
  return encodeFrame({ kind: 'ipv4', eth: { dst: '02:00:00:00:00:01', src: LAN_HOST }, ip: { src: '198.18.0.23', dst }, l4 });
}

const udp53 = packet({ proto: 'udp', udp: { srcPort: 5000, dstPort: 53, payload: new TextEncoder().encode('what is example.org?') } });
const echoToRouter = packet({ proto: 'icmp', icmp: { kind: 'echo-request', id: 0x1234, seq: 1, data: new TextEncoder().encode('ping') } }, '198.18.0.1');

test('a hostile driver rewriting its ingress slot mid-packet changes neither the decision nor the forwarded frame (UDP, NAT)', () => {
  // The honest run: accepted (UDP 53 to wan), masqueraded, forwarded once.
  const honest = run(udp53, 'none', 'rewrite');
  assert.equal(honest.wan.length, 1);
  assert.equal(honest.counters.forwarded, 1);
  const out = decodeFrame(honest.wan[0]);
  assert.ok(out.ok && out.value.kind === 'ipv4' && out.value.l4.proto === 'udp');
  assert.equal(out.value.l4.udp.dstPort, 53);
  assert.equal(out.value.ip.dst, '203.0.113.9');
  for (const moment of ['first-touch', 'after-parse', 'egress-alloc'] as const) {
    for (const tamper of ['rewrite', 'poison'] as const) {
      const hostile = run(udp53, moment, tamper);
      assert.deepEqual(hostile.wan, honest.wan, `forwarded frame, ${tamper} at ${moment}`);
      assert.deepEqual(hostile.lan, honest.lan, `nothing back to lan, ${tamper} at ${moment}`);
      assert.deepEqual(hostile.counters, honest.counters, `decision and drop counters, ${tamper} at ${moment}`);
      assert.deepEqual(hostile.connections, honest.connections, `the tracked connection, ${tamper} at ${moment}`);
      assert.deepEqual(hostile.mirror, honest.mirror, `the monitor's copy, ${tamper} at ${moment}`);
    }
  }
});

test('a hostile driver rewriting its ingress slot mid-packet cannot change what the router answers itself (echo to the router)', () => {
  const honest = run(echoToRouter, 'none', 'poison');
  assert.equal(honest.lan.length, 1);
  assert.equal(honest.counters['icmp.echo-reply-sent'], 1);
  for (const moment of ['first-touch', 'after-parse', 'egress-alloc'] as const) {
    for (const tamper of ['rewrite', 'poison'] as const) {
      const hostile = run(echoToRouter, moment, tamper);
      assert.deepEqual(hostile.lan, honest.lan, `echo reply, ${tamper} at ${moment}`);
      assert.deepEqual(hostile.counters, honest.counters, `counters, ${tamper} at ${moment}`);
    }
  }
});

test('copyFrame copies exactly the frame, word by word or natively, and nothing past it', () => {
  const src = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
  const src32 = words(src);
  for (const len of [1, 3, 4, 5, 60, 63, 256, 257, 1514]) {
    for (const [so, d] of [[0, 0], [512, 1024], [513, 1024], [512, 1026]]) {
      const dst = new Uint8Array(4096).fill(0xee);
      copyFrame(src, src32, so, dst, words(dst), d, len);
      assert.deepEqual(dst.subarray(d, d + len), src.subarray(so, so + len), `len ${len} from ${so} to ${d}`);
      assert.ok(dst.subarray(0, d).every((x) => x === 0xee) && dst.subarray(d + len).every((x) => x === 0xee), `nothing else written: len ${len} from ${so} to ${d}`);
    }
  }
});

test('a frame longer than the private buffer (the largest slot) is dropped before it is copied, and counted', () => {
  const cfg = parseRouterConfig(CONFIG, 'router', { file: 'test.yaml', path: 'components[0].config' });
  const counters = new Counters();
  const lan = new FakePort(8, 2048);
  const wan = new FakePort(8, 2048);
  const router = new Router(cfg, [lan, wan], counters, { clock: () => 1_000_000 });
  const ingress = new Uint8Array(8192).fill(0x45);
  router.receive(0, ingress, 0, 4096);
  router.flush();
  assert.equal(counters.snapshot()['drop.egress-too-big'], 1);
  assert.equal(counters.snapshot()['domain.lan.drop.egress-too-big'], 1);
  assert.equal(lan.take().length + wan.take().length, 0);
});

// The same attack through the real component: in-process sessions (the rings
// and slots of the shm transport), the lan driver's slot rewritten at the
// router's first tracepoint after it parsed the frame.
function componentRun(hostile: boolean): { wan: Uint8Array[]; counters: Record<string, number> } {
  const [dl, rl] = createLocalSession({ slots: 8, slotSize: 4096, names: ['nic', 'lan'] });
  const [dw, rw] = createLocalSession({ slots: 8, slotSize: 4096, names: ['nic', 'wan'] });
  const tracer = new HookedTracer({ component: 'router', mode: 'off' });
  const pollables: Pollable[] = [];
  const quiet = (): void => undefined;
  const counters = new Counters();
  const env: ComponentEnv = {
    name: 'router',
    config: CONFIG,
    configSource: { file: 'test.yaml', path: 'components[0].config' },
    sessions: new Map([['lan', rl], ['wan', rw]]),
    fds: {},
    ep: { add: (p: Pollable) => pollables.push(p), remove: quiet, kick: quiet } as unknown as Entrypoint,
    counters,
    log: { info: quiet, warn: quiet, error: quiet },
    trace: tracer,
  };
  const router = createRouter(env);
  router.start();
  try {
    const st = router.status() as { domains: { mac: string }[] };
    const [lanMac, wanMac] = [st.domains[0].mac, st.domains[1].mac];
    const pump = (): void => {
      for (let k = 0; k < 4; k++) for (const p of pollables) if (p.pending?.() === true) p.run(false);
    };
    const take = (e: typeof dl): Uint8Array[] => {
      const got: Uint8Array[] = [];
      e.in.receive((off, len) => got.push(e.in.buf.slice(off, off + len)), 64);
      e.in.flushAcks();
      return got;
    };
    const send = (e: typeof dl, pkt: Uint8Array): number => {
      const s = e.out.alloc();
      e.out.buf.set(pkt, s);
      e.out.submit(s, pkt.length);
      e.out.flush();
      return s;
    };
    send(dw, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: WAN_GW }, arp: { op: 'reply', senderMac: WAN_GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
    pump();
    take(dw);
    const frame = udp53.slice();
    frame.set(macBytes(lanMac), 12);
    let slot = -1;
    let struck = false;
    if (hostile) {
      tracer.onSpan = (): void => {
        if (struck || slot < 0) return;
        struck = true;
        const b = dl.out.buf; // the lan driver's view of the slot the router is handling
        b[slot + ETH + 9] = 6; // TCP
        b[slot + ETH + 20 + 2] = 0; // port 22
        b[slot + ETH + 20 + 3] = 22;
        b.fill(0xaa, slot + ETH + 28, slot + frame.length); // and the payload
      };
    }
    slot = send(dl, frame);
    pump();
    if (hostile) assert.ok(struck, 'the hostile driver struck');
    const kept: Record<string, number> = {};
    for (const [k, v] of Object.entries(counters.snapshot())) if (k.startsWith('drop.') || k.startsWith('conntrack.') || k === 'forwarded') kept[k] = v;
    return { wan: take(dw), counters: kept };
  } finally {
    router.stop?.();
    for (const e of [dl, rl, dw, rw]) e.close();
  }
}

test('the router component over in-process sessions: a lan driver rewriting its slot after the router parsed the frame changes nothing it forwards', () => {
  const honest = componentRun(false);
  assert.equal(honest.wan.length, 1);
  const d = decodeFrame(honest.wan[0]);
  assert.ok(d.ok && d.value.kind === 'ipv4' && d.value.l4.proto === 'udp' && d.value.l4.udp.dstPort === 53);
  const hostile = componentRun(true);
  assert.deepEqual(hostile.wan, honest.wan, 'the forwarded frame');
  assert.deepEqual(hostile.counters, honest.counters, 'the decision and drop counters');
});
