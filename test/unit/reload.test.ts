// What init's reload may apply: only components' config sections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/init/config.ts';
import { changedComponents, topologyChange } from '../../src/init/reload.ts';
import { catalog } from '../../src/cli/catalog.ts';

const BASE = `
devices:
  tap-wan: { kind: tap, ifname: mgxw, netns: mg-x-wan }
  tap-lan: { kind: tap, ifname: mgxl, netns: mg-x-lan }
components:
  - { name: drv-wan, type: nic-driver, devices: { tap: tap-wan } }
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24, ip: [{ to: wan }] }
        wan: { address: 198.19.0.1/24, nat: { from: [lan] } }
sessions:
  - { between: [drv-wan.nic, router.wan] }
  - { between: [drv-lan.nic, router.lan] }
`;

test('reload: a changed router section is applicable; devices, sessions and components are not', () => {
  const cur = parseConfig(BASE, 'g.yaml', catalog);
  assert.equal(topologyChange(cur, parseConfig(BASE, 'g.yaml', catalog)), undefined);
  assert.deepEqual(changedComponents(cur, parseConfig(BASE, 'g.yaml', catalog)), []);
  const policy = parseConfig(BASE.replace('ip: [{ to: wan }]', 'ip: [{ to: wan }], default: reject'), 'g.yaml', catalog);
  assert.equal(topologyChange(cur, policy), undefined);
  assert.deepEqual(changedComponents(cur, policy), [2]);
  assert.match(topologyChange(cur, parseConfig(BASE.replace('netns: mg-x-lan', 'netns: mg-y-lan'), 'g.yaml', catalog)) ?? '', /^devices changed/);
  assert.match(topologyChange(cur, parseConfig(BASE.replace('between: [drv-lan.nic, router.lan] }', 'between: [drv-lan.nic, router.lan], slots: 64 }'), 'g.yaml', catalog)) ?? '', /^sessions changed/);
  assert.match(topologyChange(cur, parseConfig(BASE.replace('type: router\n', 'type: router\n    isolation: thread\n'), 'g.yaml', catalog)) ?? '', /components\[2\] changed outside its config section/);
  assert.match(topologyChange(cur, parseConfig(`control: { socket: /run/mg-x/control.sock }\n${BASE}`, 'g.yaml', catalog)) ?? '', /^control changed/);
});
