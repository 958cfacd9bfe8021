// The gateway config's `trace:` section.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/init/config.ts';
import { catalog } from '../../src/cli/catalog.ts';

const BODY = `devices:
  tap-lan: { ifname: mgxl }
  tap-wan: { ifname: mgxw }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - { name: drv-wan, type: nic-driver, devices: { tap: tap-wan } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24, forward: [{ to: wan, nat: true }] }
        wan: { address: 198.19.0.1/24 }
sessions:
  - { between: [drv-lan.nic, router.lan] }
  - { between: [drv-wan.nic, router.wan] }
`;

test('trace: defaults to always-on aggregates; mode, ring size and sampling are read', () => {
  assert.deepEqual(parseConfig(BODY, 'gw.yaml', catalog).trace, { mode: 'aggregates', ringEvents: 16384, sample: 16 });
  const c = parseConfig(`trace: { mode: events, ring-events: 1024, sample: 8 }\n${BODY}`, 'gw.yaml', catalog);
  assert.deepEqual(c.trace, { mode: 'events', ringEvents: 1024, sample: 8 });
});

test('trace: bad values name the line, the path and what was expected', () => {
  const bad = (section: string, re: RegExp): void => {
    assert.throws(() => parseConfig(`${section}\n${BODY}`, 'gw.yaml', catalog), (e: Error) => {
      assert.match(e.message, re);
      return true;
    });
  };
  bad('trace: { mode: verbose }', /^gw\.yaml:1: trace\.mode: expected one of off, aggregates, events \(got "verbose"\)/);
  bad('trace: { ring-events: 8 }', /^gw\.yaml:1: trace\.ring-events: expected an integer from 16 to 16777216 \(got 8\)/);
  bad('trace: { sample: 3 }', /^gw\.yaml:1: trace\.sample: a power of two/);
  bad('trace: { colour: blue }', /^gw\.yaml:1: trace\.colour: unknown key; expected one of mode, ring-events, sample/);
});
