// The router's DHCP server, driven with crafted client messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { formatIpv4, parseIpv4 } from '../../src/net/addr.ts';
import { encodeFrame } from '../../src/net/frame.ts';
import { decode, rig, type Rig } from './fixtures/router-rig.ts';

const CFG = {
  domains: {
    lan: {
      address: '198.18.0.1/24',
      ip: [{ to: 'wan' }],
      'dhcp-server': {
        range: '198.18.0.100-198.18.0.101', 'lease-s': 600, dns: ['198.18.0.1'],
        static: [{ mac: '02:00:00:00:00:5a', ip: '198.18.0.50' }],
      },
    },
    wan: { address: '198.19.0.1/24' },
  },
};

interface Msg { type: number; mac: string; xid?: number; ciaddr?: string; requested?: string; serverId?: string; broadcast?: boolean; hostname?: string }

function request(r: Rig, m: Msg): Uint8Array {
  const b = new Uint8Array(300);
  const v = new DataView(b.buffer);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  v.setUint32(4, m.xid ?? 0x1234);
  v.setUint16(10, m.broadcast ? 0x8000 : 0);
  if (m.ciaddr) v.setUint32(12, parseIpv4(m.ciaddr)!);
  m.mac.split(':').forEach((h, i) => { b[28 + i] = parseInt(h, 16); });
  v.setUint32(236, 0x63825363);
  let p = 240;
  const opt = (code: number, data: number[]): void => {
    b[p] = code;
    b[p + 1] = data.length;
    b.set(data, p + 2);
    p += 2 + data.length;
  };
  const addr = (s: string): number[] => s.split('.').map(Number);
  opt(53, [m.type]);
  if (m.requested) opt(50, addr(m.requested));
  if (m.serverId) opt(54, addr(m.serverId));
  if (m.hostname) opt(12, [...new TextEncoder().encode(m.hostname)]);
  b[p] = 255;
  const unicast = m.ciaddr !== undefined;
  return encodeFrame({
    kind: 'ipv4',
    eth: { dst: unicast ? r.macs.lan : 'ff:ff:ff:ff:ff:ff', src: m.mac },
    ip: { src: m.ciaddr ?? '0.0.0.0', dst: unicast ? '198.18.0.1' : '255.255.255.255' },
    l4: { proto: 'udp', udp: { srcPort: 68, dstPort: 67, payload: b } },
  });
}

interface Reply { type: number; yiaddr: string; ethDst: string; ipDst: string; lease: number; router: string; mask: string; dns: string }

function reply(r: Rig): Reply | undefined {
  const out = r.ports.lan.take();
  if (out.length === 0) return undefined;
  assert.equal(out.length, 1);
  const f = decode(out[0]);
  assert.ok(f.l4.proto === 'udp');
  assert.deepEqual([f.l4.udp.srcPort, f.l4.udp.dstPort], [67, 68]);
  const b = f.l4.udp.payload;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(b[0], 2, 'BOOTREPLY');
  assert.equal(v.getUint32(236), 0x63825363);
  const opts = new Map<number, Uint8Array>();
  for (let p = 240; p < b.length && b[p] !== 255;) {
    if (b[p] === 0) { p++; continue; }
    opts.set(b[p], b.subarray(p + 2, p + 2 + b[p + 1]));
    p += 2 + b[p + 1];
  }
  const u32 = (x: Uint8Array | undefined): number => (x === undefined ? 0 : new DataView(x.buffer, x.byteOffset, 4).getUint32(0));
  assert.equal(formatIpv4(u32(opts.get(54))), '198.18.0.1', 'server identifier');
  return {
    type: opts.get(53)![0],
    yiaddr: formatIpv4(v.getUint32(16)),
    ethDst: f.eth.dst,
    ipDst: f.ip.dst,
    lease: u32(opts.get(51)),
    router: formatIpv4(u32(opts.get(3))),
    mask: formatIpv4(u32(opts.get(1))),
    dns: formatIpv4(u32(opts.get(6))),
  };
}

const A = '02:00:00:00:00:a1';
const B = '02:00:00:00:00:b2';
const C = '02:00:00:00:00:c3';
const STATIC = '02:00:00:00:00:5a';

test('DISCOVER -> OFFER, REQUEST -> ACK: a lease from the pool with mask, router, DNS and lease time; visible in status', () => {
  const r = rig(CFG);
  r.send('lan', request(r, { type: 1, mac: A, broadcast: true }));
  const offer = reply(r);
  assert.ok(offer, JSON.stringify(r.drops()));
  assert.equal(offer.type, 2);
  assert.equal(offer.yiaddr, '198.18.0.100');
  assert.equal(offer.ethDst, 'ff:ff:ff:ff:ff:ff', 'broadcast flag set');
  assert.equal(offer.ipDst, '255.255.255.255');
  assert.deepEqual([offer.router, offer.mask, offer.dns, offer.lease], ['198.18.0.1', '255.255.255.0', '198.18.0.1', 600]);
  r.send('lan', request(r, { type: 3, mac: A, requested: '198.18.0.100', serverId: '198.18.0.1', hostname: 'alpha' }));
  const ack = reply(r);
  assert.equal(ack?.type, 5);
  assert.equal(ack?.yiaddr, '198.18.0.100');
  assert.equal(ack?.ethDst, A, 'no broadcast flag: to the client MAC');
  const st = r.router.status() as { dhcp: { domain: string; leases: { mac: string; ip: string; state: string; hostname: string }[] }[] };
  assert.deepEqual(st.dhcp[0].leases.map((l) => [l.mac, l.ip, l.state, l.hostname]), [[A, '198.18.0.100', 'bound', 'alpha']]);
  assert.deepEqual([r.counters.get('dhcp.discover'), r.counters.get('dhcp.offer'), r.counters.get('dhcp.request'), r.counters.get('dhcp.ack')], [1, 1, 1, 1]);
  // Renewal by unicast from the leased address.
  r.send('lan', request(r, { type: 3, mac: A, ciaddr: '198.18.0.100' }));
  const renew = reply(r);
  assert.deepEqual([renew?.type, renew?.ipDst, renew?.ethDst], [5, '198.18.0.100', A]);
});

test('static leases by MAC, the pool running out, NAK for a wrong address, release, offers expire', () => {
  const r = rig(CFG);
  r.send('lan', request(r, { type: 1, mac: STATIC }));
  assert.equal(reply(r)?.yiaddr, '198.18.0.50');
  r.send('lan', request(r, { type: 1, mac: A }));
  assert.equal(reply(r)?.yiaddr, '198.18.0.100');
  r.send('lan', request(r, { type: 1, mac: B }));
  assert.equal(reply(r)?.yiaddr, '198.18.0.101');
  r.send('lan', request(r, { type: 1, mac: C }));
  assert.equal(reply(r), undefined, 'pool of two, both offered');
  assert.equal(r.drops()['dhcp-pool-exhausted'], 1);
  r.send('lan', request(r, { type: 3, mac: B, requested: '198.18.0.100', serverId: '198.18.0.1' }));
  assert.equal(reply(r)?.type, 6, 'NAK: that address is offered to someone else');
  r.send('lan', request(r, { type: 3, mac: A, requested: '198.18.0.100', serverId: '198.18.0.1' }));
  assert.equal(reply(r)?.type, 5);
  r.send('lan', request(r, { type: 7, mac: A, ciaddr: '198.18.0.100' }));
  assert.equal(reply(r), undefined, 'no answer to a release');
  r.send('lan', request(r, { type: 1, mac: C }));
  assert.equal(reply(r)?.yiaddr, '198.18.0.100', 'released: free again');
  // B's offer times out (offer-s 10 by default); then C... gets .101 too once the sweep ran.
  r.clock.t += 11_000;
  r.router.tick();
  r.send('lan', request(r, { type: 1, mac: '02:00:00:00:00:d4' }));
  assert.equal(reply(r)?.yiaddr, '198.18.0.101');
  // A request for another server's offer: silence.
  r.send('lan', request(r, { type: 3, mac: B, requested: '198.18.0.7', serverId: '198.18.0.254' }));
  assert.equal(reply(r), undefined);
  assert.equal(r.drops()['dhcp-not-ours'], 1);
});

test('malformed DHCP is a counted drop; DHCP on a domain without a server is not answered', () => {
  const r = rig(CFG);
  const bad = request(r, { type: 1, mac: A });
  bad[bad.length - 300 + 236] = 0; // break the magic cookie
  // The UDP checksum is now wrong too: both are malformed.
  r.send('lan', bad);
  assert.equal(reply(r), undefined);
  assert.equal(r.drops()['dhcp-malformed'], 1);
  const plain = rig({ domains: { lan: { address: '198.18.0.1/24' }, wan: { address: '198.19.0.1/24' } } });
  plain.send('lan', request(plain, { type: 1, mac: A }));
  assert.equal(plain.ports.lan.take().length, 0);
  assert.equal(plain.drops()['ip-broadcast'], 1, 'a broadcast, dropped as on any domain without a server');
});

test('reconfigure keeps leases that still fit, drops those outside the new pool', () => {
  const r = rig(CFG);
  r.send('lan', request(r, { type: 1, mac: A }));
  reply(r);
  r.send('lan', request(r, { type: 3, mac: A, requested: '198.18.0.100', serverId: '198.18.0.1' }));
  reply(r);
  const same = parseRouterConfig(CFG, 'router', { file: 't.yaml', path: '' });
  assert.equal(r.router.reconfigure(same), undefined);
  assert.equal((r.router.status() as { dhcp: { leases: unknown[] }[] }).dhcp[0].leases.length, 1);
  const moved = parseRouterConfig({ ...CFG, domains: { ...CFG.domains, lan: { ...CFG.domains.lan, 'dhcp-server': { range: '198.18.0.150-198.18.0.160' } } } },
    'router', { file: 't.yaml', path: '' });
  assert.equal(r.router.reconfigure(moved), undefined);
  assert.equal((r.router.status() as { dhcp: { leases: unknown[] }[] }).dhcp[0].leases.length, 0);
});
