// The router policy translated for the Linux reference: the same order of
// evaluation, forwards as DNAT, NAT, blocklists, limits, reject.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouterConfig } from '../../src/components/router/config.ts';
import { nftRuleset } from '../../src/lab/nft-policy.ts';

const CFG = {
  domains: {
    lan: {
      address: '198.18.0.1/24',
      tcp: [
        { dst: '0.0.0.0/0', ports: 'any', to: 'wan' },
        { dst: '0.0.0.0/0', ports: [25, '465-587'], action: 'drop' },
        { dst: '203.0.113.0/24', ports: [25], to: 'wan' },
      ],
      udp: [{ ports: [53], to: 'wan' }],
      ip: [{ to: 'dmz' }],
      default: 'reject',
      'dhcp-server': { range: '198.18.0.100-198.18.0.199' },
    },
    dmz: { address: '198.18.128.1/24', icmp: [{ to: 'lan' }] },
    wan: {
      address: '198.19.0.1/24',
      gateway: '198.19.0.254',
      nat: { from: ['lan'], 'ports-per-source': 100 },
      'tcp-forward': [{ port: 80, to: 'dmz', host: '198.18.128.2', 'host-port': 8080 }],
      blocklist: ['203.0.113.7', { prefix: '198.51.100.0/24', 'for-s': 30 }],
      limits: { 'new-per-source': 10, 'new-total': 1000 },
    },
  },
};

const IF = { lan: 'vL', dmz: 'vD', wan: 'vW' };

function chain(text: string, name: string): string[] {
  const m = new RegExp(`\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text);
  assert.ok(m, `chain ${name}`);
  return m[1].split('\n').map((l) => l.trim());
}

test('nft translation: rules in microgate\'s evaluation order, then the default', () => {
  const cfg = parseRouterConfig(CFG, 'router', { file: 't.yaml', path: '' });
  const text = nftRuleset(cfg, { table: 'mg', ifnames: IF, now: 0 });
  const lan = chain(text, 'from_lan').filter((l) => !/tcp-new-not-syn|icmp-new-not-echo|unsupported|nat-quota|conntrack-source-limit/.test(l));
  assert.deepEqual(lan, [
    'meta l4proto tcp ip daddr 203.0.113.0/24 tcp dport 25 oifname "vW" accept comment "lan.tcp[2]"',
    // dst 0.0.0.0/0: IPv4 only (a rule without dst would be both families)
    'meta l4proto tcp meta nfproto ipv4 tcp dport 25 counter drop comment "policy-denied"',
    'meta l4proto tcp meta nfproto ipv4 tcp dport 465-587 counter drop comment "policy-denied"',
    'meta l4proto tcp meta nfproto ipv4 oifname "vW" accept comment "lan.tcp[0]"',
    'meta l4proto udp udp dport 53 oifname "vW" accept comment "lan.udp[0]"',
    'meta l4proto { tcp, udp, icmp, ipv6-icmp } oifname "vD" accept comment "lan.ip[0]"',
    'meta l4proto tcp counter reject with tcp reset comment "rejected"',
    'meta l4proto udp counter reject with icmp type port-unreachable comment "rejected"',
    'meta l4proto icmp counter reject with icmp type admin-prohibited comment "rejected"',
  ]);
  assert.ok(chain(text, 'from_lan').includes('add @ctsrc_lan { ip saddr ct count over 4096 } counter drop comment "conntrack-source-limit"'));
  assert.ok(!nftRuleset(parseRouterConfig({ ...CFG, conntrack: { 'per-source': 0 } }, 'router', { file: 't.yaml', path: '' }), { table: 'mg', ifnames: IF, now: 0 }).includes('ctsrc_'));
  assert.ok(chain(text, 'from_lan').includes('oifname "vW" meta l4proto tcp add @natq_wan_tcp { ip saddr ct count over 100 } counter drop comment "nat-quota-exceeded"'));
  const wan = chain(text, 'from_wan');
  assert.deepEqual(wan.slice(0, 2), [
    'ct state new add @rate_wan { ip saddr limit rate over 10/second burst 20 packets } counter drop comment "rate-limited"',
    'ct state new limit rate over 1000/second burst 2000 packets counter drop comment "rate-limited"',
  ]);
  assert.ok(wan.includes('ct status dnat ip daddr 198.18.128.2 tcp dport 8080 oifname "vD" accept comment "wan.tcp-forward[0]"'));
  assert.equal(wan.at(-1), 'counter drop comment "forward-wan-drop"');
  assert.deepEqual(chain(text, 'prerouting_nat').slice(1), ['iifname "vW" ip daddr 198.19.0.1 tcp dport 80 dnat ip to 198.18.128.2:8080']);
  assert.match(text, /set block_wan \{[\s\S]*elements = \{ 203\.0\.113\.7, 198\.51\.100\.0\/24 timeout 30s \}/);
  assert.deepEqual(chain(text, 'prerouting_filter').slice(1).filter((l) => !/ip6-off/.test(l)), ['iifname "vW" ip saddr @block_wan counter drop comment "blocklisted"']);
  assert.deepEqual(chain(text, 'postrouting').slice(1), ['iifname "vL" oifname "vW" meta nfproto ipv4 counter masquerade comment "masquerade"']);
  const input = chain(text, 'input');
  assert.ok(input.includes('icmp type echo-request iifname "vL" ip daddr { 198.18.0.1, 198.18.128.1 } accept'), 'lan reaches dmz (ip rule), not wan (tcp/udp only)');
  assert.ok(input.includes('icmp type echo-request iifname "vD" ip daddr { 198.18.128.1, 198.18.0.1 } accept'));
  assert.ok(input.includes('iifname "vL" meta nfproto ipv4 udp dport 67 accept'));
  // No domain has address6: microgate takes no IPv6 on them, nor does the reference.
  assert.deepEqual(chain(text, 'prerouting_filter').filter((l) => /ip6-off/.test(l)).length, 3);
  assert.throws(() => nftRuleset(cfg, { table: 'mg', ifnames: { lan: 'a', wan: 'b' } }), /domain "dmz" has no interface/);
});

const CFG6 = {
  conntrack: { 'per-source': 100 },
  domains: {
    lan: {
      address: '198.18.0.1/24',
      address6: '2001:db8:0:1::1/64',
      tcp: [
        { ports: [22], action: 'reject' },
        { dst: '2001:db8:ff::/64', ports: 'any', to: 'wan' },
        { dst: '198.19.0.0/24', ports: [80], to: 'wan' },
        { dst: '::/0', ports: [443], action: 'drop' },
      ],
      udp: [{ ports: [53], to: 'wan' }, { dst: '2001:db8:ff::2', ports: '500-600', action: 'reject' }],
      icmp: [{ to: 'wan' }, { dst: '2001:db8:0:80::/64', to: 'dmz', action: 'reject' }],
      ip: [{ dst: '2001:db8:0:80::/64', to: 'dmz' }],
      default: 'reject',
    },
    dmz: { address: '198.18.128.1/24', address6: '2001:db8:0:80::1/64' },
    wan: {
      address: '198.19.0.1/24',
      address6: '2001:db8:ff::1/64',
      nat: { from: ['lan'] },
      blocklist: ['2001:db8:bad::/48', { prefix: '2001:db8:ff::66', 'for-s': 30 }, '203.0.113.7'],
      limits: { 'new-per-source': 10 },
    },
  },
};

test('nft translation, IPv6: inet rules per family in microgate\'s order, icmpv6, rejects, blocklists, limits per /64, no NAT66', () => {
  const cfg = parseRouterConfig(CFG6, 'router', { file: 't.yaml', path: '' });
  const text = nftRuleset(cfg, { table: 'mg', ifnames: IF, now: 0 });
  const lan = chain(text, 'from_lan').filter((l) => !/tcp-new-not-syn|icmp-new-not-echo|unsupported|nat-quota|conntrack-source-limit/.test(l));
  assert.deepEqual(lan, [
    // IPv6 /64 (the longest prefix of IPv6), IPv4 /24 (of IPv4): the two families never meet
    'meta l4proto tcp ip6 daddr 2001:db8:ff::/64 oifname "vW" accept comment "lan.tcp[1]"',
    'meta l4proto tcp ip daddr 198.19.0.0/24 tcp dport 80 oifname "vW" accept comment "lan.tcp[2]"',
    // no dst: both families (a reset serves both); ::/0: IPv6 only
    'meta l4proto tcp tcp dport 22 counter reject with tcp reset comment "rejected"',
    'meta l4proto tcp meta nfproto ipv6 tcp dport 443 counter drop comment "policy-denied"',
    'meta l4proto udp ip6 daddr 2001:db8:ff::2/128 udp dport 500-600 counter reject with icmpv6 type port-unreachable comment "rejected"',
    'meta l4proto udp udp dport 53 oifname "vW" accept comment "lan.udp[0]"',
    'icmpv6 type echo-request ip6 daddr 2001:db8:0:80::/64 oifname "vD" counter reject with icmpv6 type admin-prohibited comment "rejected"',
    'icmp type echo-request oifname "vW" accept comment "lan.icmp[0]"',
    'icmpv6 type echo-request oifname "vW" accept comment "lan.icmp[0]"',
    'meta l4proto { tcp, udp, ipv6-icmp } ip6 daddr 2001:db8:0:80::/64 oifname "vD" accept comment "lan.ip[0]"',
    'meta l4proto tcp counter reject with tcp reset comment "rejected"',
    'meta l4proto udp counter reject with icmp type port-unreachable comment "rejected"',
    'meta l4proto icmp counter reject with icmp type admin-prohibited comment "rejected"',
    'meta l4proto udp counter reject with icmpv6 type port-unreachable comment "rejected"',
    'meta l4proto ipv6-icmp counter reject with icmpv6 type admin-prohibited comment "rejected"',
  ]);
  const all = chain(text, 'from_lan');
  assert.ok(all.includes('meta l4proto ipv6-icmp icmpv6 type != echo-request counter drop comment "icmp-new-not-echo"'));
  assert.ok(all.includes('meta nfproto ipv6 meta l4proto != { tcp, udp, ipv6-icmp } counter drop comment "ip-unsupported-protocol"'));
  assert.ok(all.includes('add @ctsrc6_lan { ip6 saddr & ffff:ffff:ffff:ffff:: ct count over 100 } counter drop comment "conntrack-source-limit"'));
  const wan = chain(text, 'from_wan');
  assert.ok(wan.includes('ct state new add @rate6_wan { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 10/second burst 20 packets } counter drop comment "rate-limited"'));
  assert.match(text, /set block6_wan \{\n\t\ttype ipv6_addr[\s\S]*elements = \{ 2001:db8:bad::\/48, 2001:db8:ff::66\/128 timeout 30s \}/);
  const pre = chain(text, 'prerouting_filter');
  assert.ok(pre.includes('iifname "vW" ip6 saddr @block6_wan counter drop comment "blocklisted"'));
  assert.ok(pre.includes('iifname "vL" ip6 saddr != { ::, fe80::/10, 2001:db8:0:1::/64 } counter drop comment "ip6-spoofed-source"'));
  assert.ok(!pre.some((l) => /ip6-off/.test(l)));
  const input = chain(text, 'input');
  assert.ok(input.includes('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept'));
  assert.ok(input.indexOf('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept') < input.findIndex((l) => /ct state invalid/.test(l)));
  // The lan's icmp rule permits echo into the wan (both families); into the dmz's /64 its icmp reject comes before
  // the ip accept, so the router's dmz address does not answer from the lan; the dmz may echo nowhere.
  assert.ok(input.includes('icmpv6 type echo-request iifname "vL" ip6 daddr { 2001:db8:0:1::1, fe80::/64, 2001:db8:ff::1 } accept'), input.join('\n'));
  assert.ok(input.includes('icmpv6 type echo-request iifname "vD" ip6 daddr { 2001:db8:0:80::1, fe80::/64 } accept'));
  // No NAT66: masquerade is IPv4 only; the NAT quotas key on ip saddr (nft adds the family).
  assert.deepEqual(chain(text, 'postrouting').slice(1), ['iifname "vL" oifname "vW" meta nfproto ipv4 counter masquerade comment "masquerade"']);
  assert.ok(!/masquerade.*ip6|snat ip6|dnat ip6/.test(text));
});
