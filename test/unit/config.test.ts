import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, parsePath, ConfigFileError, DEFAULTS } from '../../src/init/config.ts';
import { catalog } from '../../src/cli/catalog.ts';

const GOOD = `devices:
  tap-lan: { ifname: mgxl }
  tap-wan: { ifname: mgxw, offload: false }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - { name: drv-wan, type: nic-driver, devices: { tap: tap-wan }, isolation: thread }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24, forward: [{ to: wan, nat: true }] }
        wan: { address: 198.19.0.1/24 }
sessions:
  - { between: [drv-lan.nic, router.lan] }
  - { between: [drv-wan.nic, router.wan], transport: socket, slots: 64 }
`;

test('a good config gets its defaults', () => {
  const c = parseConfig(GOOD, 'gw.yaml', catalog);
  assert.deepEqual(c.control, { socket: DEFAULTS.controlSocket });
  assert.equal(c.sandbox.uidBase, DEFAULTS.uidBase);
  assert.equal(c.sandbox.uidCount, DEFAULTS.uidCount);
  assert.equal(c.devices.get('tap-lan')?.offload, true);
  assert.equal(c.devices.get('tap-wan')?.offload, false);
  assert.deepEqual(c.components.map((x) => x.isolation), ['process', 'thread', 'process']);
  assert.equal(c.sessions[0].transport, 'shm');
  assert.equal(c.sessions[0].slots, DEFAULTS.slots);
  assert.equal(c.sessions[1].transport, 'socket');
  assert.equal(c.sessions[1].slots, 64);
});

function rejects(text: string, re: RegExp): void {
  assert.throws(() => parseConfig(text, 'gw.yaml', catalog), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

test('errors name the file, the line, the path and what was expected', () => {
  rejects(GOOD.replace('isolation: thread', 'isolation: proces'), /^gw\.yaml:6: components\[1\]\.isolation: expected one of process, thread, inline \(got "proces"\)/);
  rejects(GOOD.replace('type: router', 'type: ruoter'), /^gw\.yaml:8: components\[2\]\.type: expected one of .*\brouter\b.* \(got "ruoter"\)/);
  rejects(GOOD.replace('198.19.0.1/24', '198.19.0.300/24'), /^gw\.yaml:12: components\[2\]\.config\.domains\.wan\.address: /);
  rejects(GOOD.replace('slots: 64', 'slots: 65'), /^gw\.yaml:15: sessions\[1\]\.slots: a power of two/);
  rejects(GOOD.replace('{ ifname: mgxl }', '{ ifname: averyveryverylongname }'), /^gw\.yaml:2: devices\.tap-lan\.ifname: expected a Linux interface name/);
  rejects(GOOD.replace('tap: tap-wan }', 'tap: tap-lan }'), /components\[1\]\.devices\.tap: a device no other component holds/);
  rejects(GOOD.replace('router.wan]', 'router.lan]'), /sessions\[1\]\.between\[1\]: a port used by one session only/);
  rejects(GOOD.replace('  - { between: [drv-wan.nic, router.wan], transport: socket, slots: 64 }\n', ''), /sessions: a session for drv-wan\.nic/);
  rejects(GOOD.replace('drv-lan.nic, router.lan', 'drv-lan.nic, nobody.lan'), /sessions\[0\]\.between\[1\]: the name of a component \(no component "nobody"\)/);
  rejects(GOOD + 'extra: 1\n', /^gw\.yaml:16: extra: unknown key/);
  rejects('components: [', /^gw\.yaml:1: \(top level\): YAML syntax error/);
  rejects('control: { listen: 10.0.0.1:80 }\ncomponents: []\n', /control\.listen: expected a loopback address/);
  // The reserved uid range: never nobody (65534), room for every component and the shared host.
  rejects('sandbox: { uid-base: 65500, uid-count: 64 }\n' + GOOD, /^gw\.yaml:1: sandbox\.uid-count: a uid range of its own \(the range 65500-65563 holds 65534, which is nobody\/nogroup\)/);
  rejects('sandbox: { uid-base: 65534 }\n' + GOOD, /sandbox\.uid-base: a uid range of its own \(the range 65534-65597 holds 65534/);
  rejects('sandbox: { uid-base: 70000, uid-count: 3 }\n' + GOOD, /sandbox\.uid-count: at least 4 \(a uid for each of the 3 components and one for the shared host; got 3\)/);
});

test('control: a socket path, an admin group, TCP only with a token file', () => {
  const c = parseConfig(`control:\n  socket: /run/mg/ctl.sock\n  admin-group: mgadmin\n  listen: 127.0.0.1:7460\n  token-file: /etc/microgate/token\n${GOOD}`, 'gw.yaml', catalog);
  assert.deepEqual(c.control, { socket: '/run/mg/ctl.sock', adminGroup: 'mgadmin', tcp: { host: '127.0.0.1', port: 7460, tokenFile: '/etc/microgate/token' } });
  assert.equal(parseConfig(`control: { admin-group: 1500 }\n${GOOD}`, 'gw.yaml', catalog).control.adminGroup, '1500');
  rejects(`control: { listen: 127.0.0.1:7460 }\n${GOOD}`, /^gw\.yaml:1: control\.token-file: expected a root-only file \(0600\) holding the bearer token/);
  rejects(`control: { token-file: /etc/t }\n${GOOD}`, /control\.token-file: expected absent: a token file is used only with a TCP listener/);
  rejects(`control: { socket: control.sock }\n${GOOD}`, /control\.socket: expected an absolute path of a socket in a folder of its own/);
  rejects(`control: { socket: /ctl.sock }\n${GOOD}`, /control\.socket: expected an absolute path of a socket in a folder of its own/);
  rejects(`control: { socket: /run/../etc/ctl.sock }\n${GOOD}`, /control\.socket: expected an absolute path without "\.\."/);
  rejects(`control: { socket: /run/${'x'.repeat(100)}/c.sock }\n${GOOD}`, /at most 100 characters/);
  rejects(`control: { admin-group: 0 }\n${GOOD}`, /control\.admin-group: expected a group name or a numeric gid \(not 0/);
  rejects(`control: { admin-group: "wheel; rm" }\n${GOOD}`, /control\.admin-group: expected a group name/);
  rejects(`control: { port: 1 }\n${GOOD}`, /control\.port: unknown key; expected one of socket, admin-group, listen, token-file/);
});

test('parsePath splits config paths', () => {
  assert.deepEqual(parsePath('components[2].config.domains.lan'), ['components', 2, 'config', 'domains', 'lan']);
  assert.deepEqual(parsePath('a["x.y"][0]'), ['a', 'x.y', 0]);
});

test('a component section\'s errors (its own validator, one error class) get their line from init', () => {
  const withComponent = (yaml: string): string => GOOD.replace('sessions:\n', `${yaml}sessions:\n`);
  rejects(withComponent('  - name: ids\n    type: monitor\n    config:\n      flow:\n        max: 1\n'),
    /^gw\.yaml:17: components\[3\]\.config\.flow\.max: expected an integer from 16 to 4194304 \(got 1\)$/);
  rejects(withComponent('  - name: tun\n    type: tunnel\n    config:\n      peers: []\n      plain: 5\n'),
    /^gw\.yaml:17: components\[3\]\.config\.plain: expected a mapping like \{ address: 198\.18\.255\.2\/30, gateway: 198\.18\.255\.1 \}.* \(got 5\)$/);
  rejects(`devices:\n  key: { kind: file, path: /etc/hostname }\n${withComponent('  - name: ks\n    type: keystore\n    devices: { private-key: key }\n    config:\n      secret: 1\n').replace('devices:\n', '')}`,
    /^gw\.yaml:18: components\[3\]\.config\.secret: unknown key; the keystore has no settings/);
  rejects(GOOD.replace('devices: { tap: tap-lan } }', 'devices: { tap: tap-lan }, config: { mtu: 9000 } }'),
    /^gw\.yaml:5: components\[0\]\.config\.mtu: unknown key; expected one of rx-ring$/);
  rejects(GOOD.replace('devices: { tap: tap-lan } }', 'devices: { tap: tap-lan }, config: { rx-ring: 1 } }'),
    /^gw\.yaml:5: components\[0\]\.config\.rx-ring: expected true or false \(got 1\)$/);
  rejects(GOOD.replace('devices: { tap: tap-lan } }', 'devices: { tap: tap-lan }, config: [1] }'),
    /^gw\.yaml:5: components\[0\]\.config: expected a mapping \(got \[1\]\)$/);
});

test('packet devices: host-addresses is refuse by default, warn or refuse when given, and only on a packet device', () => {
  const withDev = (dev: string): string => GOOD.replace('tap-lan: { ifname: mgxl }', `tap-lan: ${dev}`);
  assert.equal(parseConfig(withDev('{ kind: packet, ifname: eth1 }'), 'gw.yaml', catalog).devices.get('tap-lan')?.hostAddresses, 'refuse');
  assert.equal(parseConfig(withDev('{ kind: packet, ifname: eth1, host-addresses: warn }'), 'gw.yaml', catalog).devices.get('tap-lan')?.hostAddresses, 'warn');
  rejects(withDev('{ kind: packet, ifname: eth1, host-addresses: ignore }'), /gw\.yaml:2: devices\.tap-lan\.host-addresses: expected one of warn, refuse/);
  rejects(withDev('{ ifname: mgxl, host-addresses: warn }'), /devices\.tap-lan\.host-addresses: no host-addresses on a TAP device/);
});

test('the two-NIC example of docs/DEPLOY.md is a valid config', async () => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../../docs/DEPLOY.md', import.meta.url), 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(yaml !== undefined, 'a yaml block in docs/DEPLOY.md');
  const c = parseConfig(yaml, 'DEPLOY.md', catalog);
  assert.deepEqual([...c.devices.values()].map((d) => [d.kind, d.ifname, d.hostAddresses]), [['packet', 'enp1s0', 'refuse'], ['packet', 'enp2s0', 'refuse']]);
});

test('scheduling.spin-us: microseconds or auto, checked', () => {
  assert.equal(parseConfig(GOOD, 'gw.yaml', catalog).scheduling?.spinUs, DEFAULTS.spinUs);
  assert.equal(parseConfig('scheduling: { spin-us: 50 }\n' + GOOD, 'gw.yaml', catalog).scheduling?.spinUs, 50);
  assert.equal(parseConfig('scheduling: { spin-us: auto }\n' + GOOD, 'gw.yaml', catalog).scheduling?.spinUs, 'auto');
  rejects('scheduling: { spin-us: -1 }\n' + GOOD, /^gw\.yaml:1: scheduling\.spin-us: expected auto or an integer from 0 to 10000 \(microseconds\)/);
  rejects('scheduling: { spin-us: fast }\n' + GOOD, /scheduling\.spin-us: expected auto or an integer from 0 to 10000/);
  rejects('scheduling: { spin-us: 20000 }\n' + GOOD, /scheduling\.spin-us: expected auto or an integer/);
  rejects('scheduling: { spin: 5 }\n' + GOOD, /scheduling\.spin: unknown key/);
  // A component's own budget (e.g. the drivers only) instead of the scheduling one.
  const own = parseConfig(GOOD.replace('devices: { tap: tap-lan } }', 'devices: { tap: tap-lan }, spin-us: 200 }'), 'gw.yaml', catalog);
  assert.deepEqual(own.components.map((c) => c.spinUs), [200, undefined, undefined]);
  rejects(GOOD.replace('devices: { tap: tap-lan } }', 'devices: { tap: tap-lan }, spin-us: 20000 }'), /^gw\.yaml:5: components\[0\]\.spin-us: /);
});

test('conn-sync: `pair` needs the pair-key device and a `pair` session; without it neither', () => {
  const base = GOOD.replace('  tap-wan:', '  tap-sync: { ifname: mgxs }\n  key: { kind: file, path: /etc/hostname }\n  tap-wan:');
  const cs = (devices: string, config: string, sessions: string): string => base
    .replace('sessions:\n', `  - { name: drv-sync, type: nic-driver, devices: { tap: tap-sync } }\n  - { name: cs, type: conn-sync${devices}${config} }\nsessions:\n`)
    + `  - { between: [router.sync, cs.router] }\n${sessions}`;
  const pairSession = '  - { between: [drv-sync.nic, cs.pair] }\n';
  const ok = parseConfig(cs(', devices: { pair-key: key }', ', config: { pair: { self: 1, peer: 2 } }', pairSession), 'gw.yaml', catalog);
  assert.deepEqual(ok.components.find((c) => c.name === 'cs')?.devices, { 'pair-key': 'key' });
  rejects(cs('', ', config: { pair: { self: 1, peer: 2 } }', pairSession), /components\[4\]\.devices\.pair-key: a device for capability "pair-key", which a conn-sync needs/);
  rejects(cs(', devices: { pair-key: key }', ', config: { pair: { self: 1, peer: 2 } }', '').replace(/  - \{ name: drv-sync.*\n/, ''), /a session for cs\.pair/);
  rejects(cs(', devices: { pair-key: key }', ', config: { pair: { self: 1, peer: 1 } }', pairSession), /components\[4\]\.config\.pair\.peer: an id different from self/);
  rejects(cs(', devices: { tap: key }', '', pairSession), /components\[4\]\.devices\.tap: unknown key/);
});

test('tap devices: bridge names an interface, only on a tap', () => {
  const c = parseConfig(GOOD.replace('tap-lan: { ifname: mgxl }', 'tap-lan: { ifname: mgxl, netns: mg-x-lan, bridge: mgbr }'), 'gw.yaml', catalog);
  assert.equal(c.devices.get('tap-lan')?.bridge, 'mgbr');
  rejects(GOOD.replace('tap-lan: { ifname: mgxl }', 'tap-lan: { ifname: mgxl, bridge: "a b" }'), /devices\.tap-lan\.bridge: expected the name of an existing bridge/);
  rejects(GOOD.replace('tap-lan: { ifname: mgxl }', 'tap-lan: { kind: packet, ifname: eth1, bridge: br0 }'), /devices\.tap-lan\.bridge: no bridge on a packet device/);
});
