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
    'meta l4proto tcp tcp dport 25 counter drop comment "policy-denied"',
    'meta l4proto tcp tcp dport 465-587 counter drop comment "policy-denied"',
    'meta l4proto tcp oifname "vW" accept comment "lan.tcp[0]"',
    'meta l4proto udp udp dport 53 oifname "vW" accept comment "lan.udp[0]"',
    'meta l4proto { tcp, udp, icmp } oifname "vD" accept comment "lan.ip[0]"',
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
  assert.deepEqual(chain(text, 'prerouting_filter').slice(1), ['iifname "vW" ip saddr @block_wan counter drop comment "blocklisted"']);
  assert.deepEqual(chain(text, 'postrouting').slice(1), ['iifname "vL" oifname "vW" counter masquerade comment "masquerade"']);
  const input = chain(text, 'input');
  assert.ok(input.includes('icmp type echo-request iifname "vL" ip daddr { 198.18.0.1, 198.18.128.1 } accept'), 'lan reaches dmz (ip rule), not wan (tcp/udp only)');
  assert.ok(input.includes('icmp type echo-request iifname "vD" ip daddr { 198.18.128.1, 198.18.0.1 } accept'));
  assert.ok(input.includes('iifname "vL" udp dport 67 accept'));
  assert.throws(() => nftRuleset(cfg, { table: 'mg', ifnames: { lan: 'a', wan: 'b' } }), /domain "dmz" has no interface/);
});
