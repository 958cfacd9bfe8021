// The router's WAN DHCP client (address: dhcp, src/components/router/dhcp-client.ts)
// against a second router acting as the ISP (its DHCP server on its lan
// domain), frames carried between their fake ports: a lease, NAT through the
// leased address, the default gateway from the lease, renewal, a changed
// address after the ISP's pool changed (NAT follows, old connections go),
// release on stop; and answers that must be refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, ipFrame, rig, udp, type Rig } from './fixtures/router-rig.ts';
import { decodeFrame } from '../../src/net/frame.ts';

const GW = {
  domains: {
    lan: { address: '10.1.0.1/24', ip: [{ to: 'wan' }] },
    wan: { address: 'dhcp', nat: { from: ['lan'] } },
  },
};
const isp = (range: string, prefix = '198.19.0.1/24'): Record<string, unknown> => ({
  domains: {
    lan: { address: prefix, 'dhcp-server': { range, 'lease-s': 60, dns: ['198.19.0.53'] } },
    core: { address: '203.0.113.1/24' },
  },
});

/** Carry frames both ways until both sides are quiet; returns what the gateway sent on its wan. */
function pump(gw: Rig, up: Rig): Uint8Array[] {
  const seen: Uint8Array[] = [];
  for (let i = 0; i < 50; i++) {
    const a = gw.ports.wan.take();
    const b = up.ports.lan.take();
    if (a.length === 0 && b.length === 0) break;
    for (const f of a) {
      seen.push(f);
      up.send('lan', f);
    }
    for (const f of b) gw.send('wan', f);
  }
  return seen;
}

function advance(gw: Rig, up: Rig, ms: number): Uint8Array[] {
  const seen: Uint8Array[] = [];
  for (let t = 0; t < ms; t += 100) {
    gw.clock.t += 100;
    up.clock.t += 100;
    gw.router.tick();
    gw.router.flush();
    up.router.tick();
    up.router.flush();
    seen.push(...pump(gw, up));
  }
  return seen;
}

interface ClientStatus { state: string; address: string | null; gateway: string | null; server: string | null; dns: string[] }
const client = (gw: Rig): ClientStatus => (gw.router.status() as { dhcpClient: { wan: ClientStatus } }).dhcpClient.wan;

/** Send a UDP datagram from the lan host to 8.8.8.8 and return the source the gateway gave it on the wan. */
function natSource(gw: Rig, up: Rig, sport: number): string | undefined {
  gw.send('lan', ipFrame(gw, 'lan', '10.1.0.2', '8.8.8.8', udp(sport, 53)));
  const seen = [...pump(gw, up), ...advance(gw, up, 200)];
  for (const f of seen) {
    const d = decodeFrame(f);
    if (d.ok && d.value.kind === 'ipv4' && d.value.l4.proto === 'udp' && d.value.l4.udp.dstPort === 53) return d.value.ip.src;
  }
  return undefined;
}

test('a lease from the ISP: address, prefix, gateway and DNS applied; NAT uses it; renewed at T1', () => {
  const gw = rig(GW);
  const up = rig(isp('198.19.0.100-198.19.0.101'));
  assert.equal(client(gw).state, 'init');
  // Before the lease nothing goes out to the wan but DHCP.
  gw.send('lan', ipFrame(gw, 'lan', '10.1.0.2', '8.8.8.8', udp(1000, 53)));
  assert.equal(gw.drops()['dhcp-unbound'], 1);
  advance(gw, up, 300);
  const st = client(gw);
  assert.deepEqual([st.state, st.address, st.gateway, st.server, st.dns], ['bound', '198.19.0.100/24', '198.19.0.1', '198.19.0.1', ['198.19.0.53']]);
  assert.deepEqual([gw.counters.get('dhcpc.discover'), gw.counters.get('dhcpc.offer'), gw.counters.get('dhcpc.request'), gw.counters.get('dhcpc.ack'), gw.counters.get('dhcpc.leased')], [1, 1, 1, 1, 1]);
  assert.ok(gw.log.some((l) => /domain wan: address none -> 198\.19\.0\.100\/24 \(leased/.test(l)), gw.log.join('\n'));
  assert.equal(natSource(gw, up, 1001), '198.19.0.100', 'masqueraded behind the leased address, sent via the leased gateway');
  // T1 = 30 s: a unicast REQUEST to the server, ACKed: same address, nothing changes.
  const seen = advance(gw, up, 31_000);
  const renew = seen.map((f) => decode(f)).find((f) => f.l4.proto === 'udp' && f.l4.udp.dstPort === 67);
  assert.ok(renew !== undefined, 'a renewal went out');
  assert.deepEqual([renew.ip.src, renew.ip.dst, renew.eth.dst], ['198.19.0.100', '198.19.0.1', up.macs.lan], 'unicast to the server');
  assert.equal(client(gw).state, 'bound');
  assert.equal(gw.counters.get('dhcpc.ack'), 2);
  assert.equal(gw.counters.get('dhcpc.changed') ?? 0, 0);
});

test('the ISP changes its pool: the renewal goes unanswered, the lease ends, a new address is leased and NAT follows; old connections go', () => {
  const gw = rig(GW);
  let up = rig(isp('198.19.0.100-198.19.0.101'));
  advance(gw, up, 300);
  assert.equal(client(gw).address, '198.19.0.100/24');
  assert.equal(natSource(gw, up, 2001), '198.19.0.100');
  const conns = (): number => (gw.router.status() as { conntrack: { count: number } }).conntrack.count;
  assert.equal(conns(), 1);
  // A new ISP server (restarted with another pool, its leases forgotten), same address and MAC.
  const t = up.clock.t;
  up = rig(isp('198.19.0.200-198.19.0.201'));
  up.clock.t = t;
  advance(gw, up, 61_000);
  const st = client(gw);
  assert.equal(st.address, '198.19.0.200/24', JSON.stringify(st));
  assert.equal(gw.counters.get('dhcpc.lost'), 1, 'the old lease ended');
  assert.equal(gw.counters.get('dhcpc.leased'), 2);
  assert.equal(gw.counters.get('dhcpc.conns-removed'), 1, 'the connection masqueraded behind the old address');
  assert.equal(conns(), 0);
  assert.equal(natSource(gw, up, 2002), '198.19.0.200', 'NAT uses the new address');
  assert.ok(gw.log.some((l) => /198\.19\.0\.100 -> 198\.19\.0\.200|none -> 198\.19\.0\.200/.test(l)), gw.log.join('\n'));
});

test('a NAK on renewal drops the lease at once and starts over', () => {
  const gw = rig(GW);
  const up = rig(isp('198.19.0.100-198.19.0.101'));
  advance(gw, up, 300);
  // The same server now refuses .100 (a static lease for someone else).
  const why = up.router.reconfigure(rig({ domains: { lan: { address: '198.19.0.1/24', 'dhcp-server': { range: '198.19.0.100-198.19.0.102', 'lease-s': 60, static: [{ mac: '02:00:00:00:00:99', ip: '198.19.0.100' }] } }, core: { address: '203.0.113.1/24' } } }).cfg);
  assert.equal(why, undefined);
  advance(gw, up, 30_500);
  assert.equal(gw.counters.get('dhcpc.nak'), 1, JSON.stringify(client(gw)));
  assert.equal(gw.counters.get('dhcpc.lost'), 1);
  assert.equal(client(gw).address, '198.19.0.101/24', 'at once a new lease, long before the old one would have ended');
});

test('refused: an offer overlapping another domain, answers for another transaction; release on stop', () => {
  const gw = rig(GW);
  // An ISP whose pool lies inside the gateway's own lan prefix.
  const bad = rig(isp('10.1.0.100-10.1.0.101', '10.1.0.254/16'));
  advance(gw, bad, 300);
  assert.equal(client(gw).state, 'selecting');
  assert.ok((gw.drops()['dhcpc-refused'] ?? 0) >= 1);
  assert.ok(gw.log.some((l) => /refused offer of 10\.1\.0\.100 .*overlaps domain lan/.test(l)), gw.log.join('\n'));
  // A good server: bound; an ACK replayed later (old xid) is ignored.
  const up = rig(isp('198.19.0.100-198.19.0.101'));
  up.clock.t = gw.clock.t;
  let ack: Uint8Array | undefined;
  for (let i = 0; i < 700 && client(gw).state !== 'bound'; i++) {
    gw.clock.t += 100;
    up.clock.t += 100;
    gw.router.tick();
    gw.router.flush();
    for (const f of gw.ports.wan.take()) up.send('lan', f);
    for (const f of up.ports.lan.take()) {
      const d = decode(f);
      if (d.l4.proto === 'udp' && d.l4.udp.payload[242] === 5) ack = f;
      gw.send('wan', f);
    }
  }
  assert.equal(client(gw).state, 'bound');
  assert.ok(ack !== undefined);
  advance(gw, up, 31_000); // renewed: a new transaction
  const before = gw.drops()['dhcpc-ignored'] ?? 0;
  gw.send('wan', ack);
  assert.equal(gw.drops()['dhcpc-ignored'], before + 1);
  // Stop: a RELEASE to the server, and the domain has no address.
  assert.equal(gw.router.releaseLeases(), 1);
  const rel = gw.ports.wan.take().map((f) => decode(f));
  assert.equal(rel.length, 1);
  assert.equal(rel[0].l4.proto === 'udp' && rel[0].l4.udp.payload[242], 7, 'DHCPRELEASE');
  assert.deepEqual([rel[0].ip.src, rel[0].ip.dst], ['198.19.0.100', '198.19.0.1']);
  assert.equal(client(gw).address, null);
  gw.send('lan', ipFrame(gw, 'lan', '10.1.0.2', '8.8.8.8', udp(3000, 53)));
  assert.ok((gw.drops()['dhcp-unbound'] ?? 0) >= 1);
});

test('fuzz: mutated and truncated DHCP answers never throw, never bind a bad lease', () => {
  const gw = rig(GW);
  const up = rig(isp('198.19.0.100-198.19.0.101'));
  // Capture a real OFFER and ACK to mutate.
  const answers: Uint8Array[] = [];
  for (let i = 0; i < 20 && client(gw).state !== 'bound'; i++) {
    gw.clock.t += 100;
    up.clock.t += 100;
    gw.router.tick();
    gw.router.flush();
    for (const f of gw.ports.wan.take()) up.send('lan', f);
    for (const f of up.ports.lan.take()) {
      answers.push(f);
      gw.send('wan', f);
    }
  }
  assert.equal(client(gw).state, 'bound');
  assert.ok(answers.length >= 2);
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const udpStart = 12 + 14 + 20;
  for (let i = 0; i < 3000; i++) {
    const f = answers[i % answers.length].slice();
    const len = rnd(4) === 0 ? udpStart + 8 + rnd(f.length - udpStart - 8) : f.length;
    for (let k = rnd(6); k >= 0; k--) f[udpStart + 8 + rnd(len - udpStart - 8)] = rnd(256);
    f[udpStart + 6] = 0; // no UDP checksum (allowed in IPv4): the mutation reaches the DHCP parser
    f[udpStart + 7] = 0;
    assert.doesNotThrow(() => gw.send('wan', f.subarray(0, len)));
  }
  const st = client(gw);
  assert.ok(st.address === null || /^198\.19\.0\.10[01]\/24$/.test(st.address), JSON.stringify(st));
  const d = gw.drops();
  // The mutations reach the DHCP parser (not only the checksum): malformed, ignored (xid, MAC, state) and refused answers.
  assert.ok((d['dhcpc-malformed'] ?? 0) > 0 && (d['dhcpc-ignored'] ?? 0) > 0, JSON.stringify(d));
});
