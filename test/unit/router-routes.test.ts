// Static routes of a router domain (routes.ts): a remote site's prefix reached
// through a next hop in the domain (the tunnel), its sources accepted there,
// and the config errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/runtime/counters.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { Router, type EgressPort } from '../../src/components/router/router.ts';
import { formatMac } from '../../src/net/addr.ts';
import { decodeFrame, encodeFrame } from '../../src/net/frame.ts';

class Port implements EgressPort {
  readonly slotSize = 2048;
  readonly buf = new Uint8Array(32 * 2048);
  readonly sent: Uint8Array[] = [];
  #free = Array.from({ length: 32 }, (_, i) => i * 2048);
  alloc(): number {
    return this.#free.pop() ?? -1;
  }
  submit(off: number, len: number): void {
    this.sent.push(this.buf.slice(off, off + len));
    this.#free.push(off);
  }
  flush(): void {}
}

const CONFIG = {
  domains: {
    lan: { address: '198.18.0.1/24', forward: [{ to: 'tun' }] },
    tun: { address: '198.18.255.1/30', routes: [{ prefix: '198.18.64.0/24', via: '198.18.255.2' }], forward: [{ to: 'lan' }] },
  },
};
const HOST = '02:00:00:00:00:0a';
const TUNNEL = '02:00:00:00:00:0b';
const src = { file: 't.yaml', path: 'components[0].config' };

function rig() {
  const cfg = parseRouterConfig(CONFIG, 'router', src);
  const counters = new Counters();
  const ports = [new Port(), new Port()];
  const router = new Router(cfg, ports, counters, { clock: () => 1000 });
  const ingress = new Uint8Array(4096);
  const send = (dom: number, frame: Uint8Array): void => {
    ingress.set(frame, 100);
    router.receive(dom, ingress, 100, frame.length);
    router.flush();
  };
  const mac = (i: number): string => formatMac(cfg.domains[i].mac);
  return { router, counters, ports, send, mac };
}

const udp = { proto: 'udp' as const, udp: { srcPort: 1000, dstPort: 2000, payload: new Uint8Array([1, 2, 3]) } };

test('a packet to a routed prefix goes to the route\'s next hop in its domain', () => {
  const r = rig();
  r.send(0, encodeFrame({ kind: 'arp', eth: { dst: 'ff:ff:ff:ff:ff:ff', src: HOST }, arp: { op: 'request', senderMac: HOST, senderIp: '198.18.0.2', targetMac: '00:00:00:00:00:00', targetIp: '198.18.0.1' } }));
  r.ports[0].sent.length = 0;
  r.send(0, encodeFrame({ kind: 'ipv4', eth: { dst: r.mac(0), src: HOST }, ip: { src: '198.18.0.2', dst: '198.18.64.2' }, l4: udp }));
  // The router asks for the next hop, not for the destination.
  const arp = decodeFrame(r.ports[1].sent.shift()!);
  assert.ok(arp.ok && arp.value.kind === 'arp');
  assert.equal(arp.value.arp.targetIp, '198.18.255.2');
  r.send(1, encodeFrame({ kind: 'arp', eth: { dst: r.mac(1), src: TUNNEL }, arp: { op: 'reply', senderMac: TUNNEL, senderIp: '198.18.255.2', targetMac: r.mac(1), targetIp: '198.18.255.1' } }));
  const out = decodeFrame(r.ports[1].sent.shift()!);
  assert.ok(out.ok && out.value.kind === 'ipv4');
  assert.equal(out.value.eth.dst, TUNNEL);
  assert.equal(out.value.ip.dst, '198.18.64.2');
  assert.equal(out.value.ip.src, '198.18.0.2', 'no NAT');
  // The reply comes from the routed prefix through the tun domain: not a spoofed source.
  r.send(1, encodeFrame({ kind: 'ipv4', eth: { dst: r.mac(1), src: TUNNEL }, ip: { src: '198.18.64.2', dst: '198.18.0.2' }, l4: { proto: 'udp', udp: { srcPort: 2000, dstPort: 1000, payload: new Uint8Array([4]) } } }));
  const back = decodeFrame(r.ports[0].sent.shift()!);
  assert.ok(back.ok && back.value.kind === 'ipv4');
  assert.equal(back.value.ip.src, '198.18.64.2');
  assert.equal(back.value.eth.dst, HOST);
  // A source neither in the domain nor in its routes is.
  r.send(1, encodeFrame({ kind: 'ipv4', eth: { dst: r.mac(1), src: TUNNEL }, ip: { src: '203.0.113.5', dst: '198.18.0.2' }, l4: udp }));
  assert.equal(r.counters.get('drop.ip-spoofed-source'), 1);
  assert.deepEqual((r.router.status().domains as { routes: string[] }[])[1].routes, ['198.18.64.0/24 via 198.18.255.2']);
});

test('routes config errors name the path and what is expected', () => {
  const bad = (routes: unknown, re: RegExp) => {
    assert.throws(() => parseRouterConfig({ domains: { lan: { address: '198.18.0.1/24' }, tun: { address: '198.18.255.1/30', routes } } }, 'r', src), re);
  };
  bad('x', /domains\.tun\.routes: expected a list/);
  bad([{ prefix: '198.18.64.0/24', via: '198.18.0.5' }], /routes\[0\]\.via: expected a next hop inside 198\.18\.255\.0\/30/);
  bad([{ prefix: '198.18.0.0/16', via: '198.18.255.2' }], /routes\[0\]\.prefix: expected a prefix that does not overlap domain "lan"/);
  bad([{ prefix: '198.18.64.1/24', via: '198.18.255.2' }], /routes\[0\]\.prefix: expected a network address \(198\.18\.64\.0\/24\)/);
  bad([{ prefix: '198.18.64.0/24', via: '198.18.255.2' }, { prefix: '198.18.64.128/25', via: '198.18.255.2' }], /routes\[1\]\.prefix: expected a prefix that does not overlap the route 198\.18\.64\.0\/24/);
  bad([{ prefix: '198.18.64.0/24', via: '198.18.255.2', metric: 1 }], /routes\[0\]\.metric: unknown key/);
});
