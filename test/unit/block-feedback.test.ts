// Block feedback: the monitor's `block` / `block-exempt` config (every mistake
// a ConfigFileError naming its path), the matcher init holds EVE records against,
// init's BlockFeedback (exempt, refresh, refusals), the router's `block`
// command arguments and its run-time blocklist with expiry, kept across a
// reload, never taking the router's own addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigFileError as ConfigFileError } from '../../src/config/reader.ts';
import { BlockFeedback, type BlockRequest } from '../../src/init/block-feedback.ts';
import { monitorBlockMatcher, parseMonitorConfig, validateMonitorConfig } from '../../src/components/monitor/config.ts';
import { parseBlockCommand } from '../../src/components/router/block-command.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { parseIpv4 } from '../../src/net/addr.ts';
import { TCP_SYN } from '../../src/net/tcp.ts';
import { arpReply, echo, ipFrame, rig, tcp, type Rig } from './fixtures/router-rig.ts';

const SRC = { file: 'gateway.yaml', path: 'components[4].config' };

function errorOf(raw: unknown, validate = false): ConfigFileError {
  try {
    if (validate) validateMonitorConfig(raw, SRC.file, SRC.path);
    else parseMonitorConfig(raw, SRC);
  } catch (e) {
    assert.ok(e instanceof ConfigFileError, String(e));
    return e;
  }
  assert.fail('expected a ConfigFileError');
}

// ---- config ------------------------------------------------------------------------

test('config: block entries by sid, classtype, event (or prefix) and anomaly class; exempt prefixes', () => {
  const c = parseMonitorConfig({
    block: [
      { sid: 8000003, seconds: 300 },
      { classtype: 'attempted-dos', seconds: 60 },
      { event: 'ipv4.frag_overlap', seconds: 600 },
      { event: 'decoder.tcp.*', seconds: 30 },
      { anomaly: 'detector', seconds: 10 },
    ],
    'block-exempt': ['198.18.0.0/24', '203.0.113.7'],
  }, SRC);
  assert.deepEqual(c.block.map((b) => [b.match, b.seconds]), [
    [{ kind: 'sid', sid: 8000003 }, 300],
    [{ kind: 'classtype', classtype: 'attempted-dos' }, 60],
    [{ kind: 'event', event: 'ipv4.frag_overlap', prefix: false }, 600],
    [{ kind: 'event', event: 'tcp.', prefix: true }, 30],
    [{ kind: 'anomaly', anomaly: 'detector' }, 10],
  ]);
  assert.equal(c.block[2].path, 'components[4].config.block[2]');
  assert.deepEqual(c.blockExempt.map((e) => [e.network, e.prefix]), [[parseIpv4('198.18.0.0'), 24], [parseIpv4('203.0.113.7'), 32]]);
  assert.deepEqual(parseMonitorConfig({}, SRC).block, []);
  validateMonitorConfig({ block: [{ classtype: 'attempted-recon', seconds: 5 }] }, SRC.file, SRC.path);
});

test('config: every mistake in block / block-exempt names its path and what was expected', () => {
  const P = 'components[4].config';
  const cases: [unknown, string, RegExp, boolean?][] = [
    [{ block: { sid: 1, seconds: 5 } }, `${P}.block`, /expected a list of/],
    [{ block: [5] }, `${P}.block[0]`, /expected a mapping like/],
    [{ block: [{ seconds: 5 }] }, `${P}.block[0]`, /expected one of sid, classtype, event, anomaly/],
    [{ block: [{ sid: 1, event: 'ipv4.frag_overlap', seconds: 5 }] }, `${P}.block[0]`, /only one of .* \(got sid and event\)/],
    [{ block: [{ sid: 1, seconds: 5, for: 3 }] }, `${P}.block[0].for`, /unknown key/],
    [{ block: [{ sid: 1 }] }, `${P}.block[0].seconds`, /integer from 1 to 604800 seconds \(missing\)/],
    [{ block: [{ sid: 1, seconds: 0 }] }, `${P}.block[0].seconds`, /got 0/],
    [{ block: [{ sid: 1, seconds: 1.5 }] }, `${P}.block[0].seconds`, /got 1.5/],
    [{ block: [{ sid: 0, seconds: 5 }] }, `${P}.block[0].sid`, /sid, an integer/],
    [{ block: [{ sid: '8000003', seconds: 5 }] }, `${P}.block[0].sid`, /got "8000003"/],
    [{ block: [{ classtype: 'no such', seconds: 5 }] }, `${P}.block[0].classtype`, /classtype name/],
    [{ block: [{ event: 'ipv4.frag_overlapp', seconds: 5 }] }, `${P}.block[0].event`, /known event name \(like ipv4\.pkt_too_small/],
    [{ block: [{ event: 'zzz.*', seconds: 5 }] }, `${P}.block[0].event`, /known event name prefix/],
    [{ block: [{ anomaly: 'stream', seconds: 5 }] }, `${P}.block[0].anomaly`, /decode .* or detector/],
    [{ block: [{ event: 'mg.port_scan', seconds: 5 }], eve: { types: ['alert'] } }, `${P}.eve.types`, /anomaly among the EVE types: .*block\[0\]/],
    [{ block: [{ sid: 5, seconds: 5 }], eve: { types: ['anomaly'] } }, `${P}.eve.types`, /alert among the EVE types/],
    [{ 'block-exempt': '198.18.0.0/24' }, `${P}.block-exempt`, /list of IPv4 addresses or prefixes/],
    [{ 'block-exempt': ['198.18.0.0/33'] }, `${P}.block-exempt[0]`, /IPv4 address or prefix/],
    [{ block: [{ classtype: 'attempted-doss', seconds: 5 }] }, `${P}.block[0].classtype`, /classification table \(built-in; e\.g\. attempted-/, true],
  ];
  for (const [raw, path, re, validate] of cases) {
    const e = errorOf(raw, validate);
    assert.equal(e.path, path, `${JSON.stringify(raw)}: ${e.message}`);
    assert.match(e.expected, re, e.message);
    assert.equal(e.file, 'gateway.yaml');
  }
});

// ---- the matcher -------------------------------------------------------------------

const alert = (sid: number, category: string, src = '198.19.0.2'): Record<string, unknown> => ({
  event_type: 'alert', src_ip: src, dest_ip: '198.19.0.1', alert: { signature_id: sid, signature: `sig ${sid}`, category },
});
const anomaly = (event: string, type = 'decode', src = '198.19.0.2'): Record<string, unknown> => ({
  event_type: 'anomaly', src_ip: src, anomaly: { type, event },
});

test('matcher: the first matching entry decides; classtype by the alert category; IPv6 and exempt sources', () => {
  const m = monitorBlockMatcher({
    block: [
      { sid: 8000003, seconds: 300 },
      { classtype: 'attempted-dos', seconds: 60 },
      { event: 'ipv4.frag_overlap', seconds: 600 },
      { event: 'tcp.*', seconds: 30 },
      { anomaly: 'detector', seconds: 10 },
    ],
    'block-exempt': ['198.18.0.0/24'],
  })!;
  assert.ok(m !== undefined);
  assert.deepEqual(m.match(alert(8000003, 'Attempted Information Leak')), { ip: '198.19.0.2', seconds: 300, reason: 'sid 8000003 "sig 8000003"' });
  assert.equal(m.match(alert(8000001, 'Attempted Denial of Service'))?.seconds, 60);
  assert.equal(m.match(alert(8000004, 'Attempted Information Leak')), undefined);
  assert.deepEqual(m.match(anomaly('decoder.ipv4.frag_overlap')), { ip: '198.19.0.2', seconds: 600, reason: 'anomaly decoder.ipv4.frag_overlap' });
  assert.equal(m.match(anomaly('decoder.tcp.pkt_too_small'))?.seconds, 30);
  assert.equal(m.match(anomaly('mg.port_scan', 'detector'))?.seconds, 10);
  assert.equal(m.match(anomaly('decoder.ipv4.trunc_pkt')), undefined);
  assert.equal(m.match(alert(8000003, '', '2001:db8::1')), undefined, 'the router blocklists IPv4 only');
  assert.equal(m.match({ event_type: 'flow', src_ip: '198.19.0.2' }), undefined);
  assert.equal(m.match(null), undefined);
  assert.equal(m.exempt('198.18.0.77'), true);
  assert.equal(m.exempt('198.19.0.2'), false);
  assert.equal(monitorBlockMatcher({}), undefined, 'no block entries: no matcher');
});

// ---- init's side ---------------------------------------------------------------------

test('BlockFeedback: sends block commands, skips exempt sources, refreshes only past half time, retries after a refusal', async () => {
  const m = monitorBlockMatcher({ block: [{ sid: 8000003, seconds: 10 }, { sid: 8000002, seconds: 100 }], 'block-exempt': ['198.18.0.0/24'] })!;
  const sent: [string, string, BlockRequest][] = [];
  let refuse = false;
  let now = 1_000_000;
  const fb = new BlockFeedback('router', m, async (c, what, args) => {
    sent.push([c, what, args as BlockRequest]);
    return refuse ? { error: 'router: will not block 198.19.0.1: it is the router\'s own address on domain wan' } : { result: {} };
  }, { clock: () => now });
  const line = (o: Record<string, unknown>): string => JSON.stringify(o);
  fb.lines([line(alert(8000003, '')), line(alert(8000003, '')), line(alert(8000002, '')), line(alert(8000003, '', '198.18.0.9')), '{"event_type":"alert",']);
  await fb.settled();
  // One command per address per round, the longest block wins; the exempt source is not sent.
  assert.deepEqual(sent, [['router', 'block', { ip: '198.19.0.2', seconds: 100, reason: 'sid 8000002 "sig 8000002"' }]]);
  assert.deepEqual([fb.stats.matched, fb.stats.exempt, fb.stats.sent, fb.stats.badLines], [4, 1, 1, 1]);
  now += 40_000; // 60 s of 100 left: more than half of a 10 s or 100 s block
  fb.lines([line(alert(8000002, ''))]);
  await fb.settled();
  assert.equal(sent.length, 1);
  assert.equal(fb.stats.refreshSkipped, 1);
  now += 20_000; // 40 s left: less than half of 100 s
  fb.lines([line(alert(8000002, ''))]);
  await fb.settled();
  assert.equal(sent.length, 2);
  refuse = true;
  fb.lines([line(alert(8000003, '', '198.19.0.1'))]);
  await fb.settled();
  assert.deepEqual([fb.stats.refused, sent.length], [1, 3]);
  assert.match(fb.stats.lastError, /own address/);
  refuse = false;
  fb.lines([line(alert(8000003, '', '198.19.0.1'))]);
  await fb.settled();
  assert.equal(sent.length, 4, 'a refused block is not remembered: the next match tries again');
});

// ---- the router ----------------------------------------------------------------------

test('router block command: arguments are checked whole', () => {
  assert.deepEqual(parseBlockCommand({ ip: '198.19.0.2', seconds: 3, reason: 'x' }), { ip: parseIpv4('198.19.0.2'), seconds: 3, reason: 'x' });
  assert.throws(() => parseBlockCommand(null), /expected arguments/);
  assert.throws(() => parseBlockCommand({ ip: '198.19.0', seconds: 3 }), /ip: expected an IPv4 address/);
  assert.throws(() => parseBlockCommand({ ip: '198.19.0.2', seconds: 0 }), /seconds: expected an integer from 1/);
  assert.throws(() => parseBlockCommand({ ip: '198.19.0.2', seconds: 3, reason: 5 }), /reason: expected a string/);
  assert.throws(() => parseBlockCommand({ ip: '198.19.0.2', seconds: 3, prefix: 24 }), /unknown argument "prefix"/);
  assert.equal(parseBlockCommand({ ip: '198.19.0.2', seconds: 3, reason: 'r'.repeat(500) }).reason.length, 200);
});

const CFG = {
  domains: {
    lan: { address: '198.18.0.1/24', ip: [{ to: 'wan' }] },
    wan: { address: '198.19.0.1/24', gateway: '198.19.0.254', nat: { from: ['lan'] }, icmp: [{ dst: '198.18.0.0/24', to: 'lan' }] },
  },
};
const ATTACKER = '203.0.113.9';
const GW_MAC = '02:00:00:00:00:fe';

function ready(r: Rig): void {
  arpReply(r, 'wan', '198.19.0.254', GW_MAC, '198.19.0.1');
  arpReply(r, 'lan', '198.18.0.2', '02:00:00:00:00:0a', '198.18.0.1');
}

interface RtBlock { ip: string; reason: string; expiresInS: number; active: boolean; drops: number; times: number }
const rtBlocks = (r: Rig): RtBlock[] => (r.router.status() as { policy: { runtimeBlocks: RtBlock[] } }).policy.runtimeBlocks;

test('router: a run-time block drops the source on every domain (counted as blocklisted) until it expires; a reload keeps it', () => {
  const r = rig(CFG);
  ready(r);
  // Before: the attacker's ping of the router's wan address is answered.
  r.send('wan', ipFrame(r, 'wan', ATTACKER, '198.19.0.1', echo(7), GW_MAC));
  assert.equal(r.ports.wan.take().length, 1);
  // A tracked connection from lan to the attacker: removed by the block.
  r.send('lan', ipFrame(r, 'lan', '198.18.0.2', ATTACKER, tcp(40000, 80, TCP_SYN)));
  assert.equal(r.ports.wan.take().length, 1);
  const res = r.router.block(parseIpv4(ATTACKER)!, 3, 'sid 8000003 "XMAS scan"');
  assert.deepEqual(res, { ip: ATTACKER, seconds: 3, connectionsRemoved: 1 });
  r.send('wan', ipFrame(r, 'wan', ATTACKER, '198.19.0.1', echo(7, 2), GW_MAC));
  r.send('wan', ipFrame(r, 'wan', ATTACKER, '198.18.0.2', echo(8), GW_MAC));
  assert.equal(r.ports.wan.take().length + r.ports.lan.take().length, 0);
  assert.equal(r.drops().blocklisted, 2);
  assert.equal(r.counters.get('domain.wan.drop.blocklisted'), 2);
  assert.deepEqual(rtBlocks(r), [{ ip: ATTACKER, reason: 'sid 8000003 "XMAS scan"', expiresInS: 3, active: true, drops: 2, times: 1 }]);
  // Another source is not affected.
  r.send('wan', ipFrame(r, 'wan', '203.0.113.10', '198.19.0.1', echo(9), GW_MAC));
  assert.equal(r.ports.wan.take().length, 1);
  // A reload (new policy) keeps the run-time block.
  const next = parseRouterConfig({ ...CFG, domains: { ...CFG.domains, lan: { ...CFG.domains.lan, default: 'reject' } } }, 'router', { file: 'g.yaml', path: 'components[2].config' });
  assert.equal(r.router.reconfigure(next), undefined);
  r.clock.t += 2000;
  r.router.flush();
  r.send('wan', ipFrame(r, 'wan', ATTACKER, '198.19.0.1', echo(7, 3), GW_MAC));
  assert.equal(r.ports.wan.take().length, 0);
  assert.equal(r.drops().blocklisted, 3);
  // Expired: it passes again, and the timer forgets the entry.
  r.clock.t += 1001;
  r.router.flush();
  r.send('wan', ipFrame(r, 'wan', ATTACKER, '198.19.0.1', echo(7, 4), GW_MAC));
  assert.equal(r.ports.wan.take().length, 1);
  r.router.tick();
  assert.deepEqual(rtBlocks(r), []);
  assert.deepEqual([r.counters.get('block.added'), r.counters.get('block.expired'), r.counters.get('block.conns-removed')], [1, 1, 1]);
});

test('router: blocking again replaces expiry and reason; its own, network, broadcast and non-unicast addresses are refused', () => {
  const r = rig(CFG);
  ready(r);
  r.router.block(parseIpv4(ATTACKER)!, 3, 'first');
  r.clock.t += 2000;
  r.router.block(parseIpv4(ATTACKER)!, 10, 'second');
  assert.deepEqual(rtBlocks(r).map((b) => [b.reason, b.expiresInS, b.times]), [['second', 10, 2]]);
  for (const [a, why] of [
    ['198.19.0.1', /router's own address on domain wan/], ['198.18.0.1', /own address on domain lan/],
    ['198.18.0.0', /network address of domain lan/], ['198.19.0.255', /broadcast address of domain wan/],
    ['127.0.0.1', /not a unicast host/], ['224.0.0.1', /not a unicast host/], ['0.0.0.0', /not a unicast host/],
  ] as const) {
    assert.throws(() => r.router.block(parseIpv4(a)!, 5, 'x'), why, a);
  }
  assert.equal(r.counters.get('block.refused'), 7);
  assert.equal(rtBlocks(r).length, 1);
});
