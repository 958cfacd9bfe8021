// init's HA role (src/init/ha.ts) with fake components: becoming master is
// refused on a config hash mismatch with the peer unless forced; the router
// is told before conn-sync; a component's refusal is reported, not hidden;
// a restarted router gets the role init holds. And `lab up --ha`'s gateway
// config (labGatewayConfig with `ha`) is one init accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HaControl } from '../../src/init/ha.ts';
import { parseConfig } from '../../src/init/config.ts';
import { catalog } from '../../src/cli/catalog.ts';
import { makePlan } from '../../src/lab/lab-plan.ts';
import { haGatewayPlan, haLabPlan } from '../../src/lab/ha-lab.ts';
import { labGatewayConfig } from '../../src/lab/microgate-gateway.ts';

const OWN = `sha256:${'ab'.repeat(32)}`;

function fake(peerHash: string, fail?: string) {
  const calls: string[] = [];
  const logs: string[] = [];
  const ha = new HaControl('router', 'conn-sync', {
    command: async (c, what, args) => {
      calls.push(`${c} ${what} ${JSON.stringify(args)}`);
      return c === fail ? { error: 'refused by the component' } : { result: {} };
    },
    statuses: async () => new Map<string, Record<string, unknown>>([
      ['router', { configHash: OWN, ha: { role: 'backup' } }],
      ['conn-sync', { entries: 3, pair: { link: 'up', peerStatus: { role: 'master', configHash: peerHash } } }],
    ]),
    log: (l) => logs.push(l),
  });
  return { ha, calls, logs };
}

test('HA role: master refused on a config mismatch unless forced; router first, then conn-sync with the hash', async () => {
  const f = fake('cd'.repeat(24));
  const r = await f.ha.setRole('master');
  assert.equal(r.status, 409);
  assert.equal(r.code, 'MG_HA_CONFIG_MISMATCH');
  assert.equal(f.calls.length, 0, 'nothing was changed');
  assert.equal(f.ha.role, 'backup');
  assert.ok(f.logs.some((l) => l.includes('refused')));
  assert.equal((await f.ha.status()).configMatch, false);
  const forced = await f.ha.setRole('master', true);
  assert.equal(forced.status, 200);
  assert.deepEqual(f.calls, ['router role {"role":"master"}', `conn-sync role {"role":"master","configHash":"${OWN}"}`]);
  const st = await f.ha.status();
  assert.equal(st.role, 'master');
  assert.equal((st.lastTakeover as { forced: boolean; from: string }).forced, true);
  // Backup needs no match.
  assert.equal((await f.ha.setRole('backup')).status, 200);
});

test('HA role: a matching peer (or one not heard yet) is taken over without force; a component refusing is reported; reapply after a restart', async () => {
  const f = fake('ab'.repeat(24));
  assert.equal((await f.ha.setRole('master')).status, 200);
  assert.equal((await f.ha.status()).configMatch, true);
  const unheard = fake('');
  assert.equal((await unheard.ha.setRole('master')).status, 200);
  const broken = fake('ab'.repeat(24), 'router');
  const r = await broken.ha.setRole('master');
  assert.equal(r.status, 502);
  assert.match(r.message, /router: refused by the component/);
  assert.equal(broken.ha.role, 'backup', 'the role did not change');
  f.calls.length = 0;
  await f.ha.reapply('router');
  assert.deepEqual(f.calls, ['router role {"role":"master"}']);
  await f.ha.reapply('monitor');
  assert.equal(f.calls.length, 1, 'another component is not told');
});

test('lab up --ha: each gateway\'s config is one init accepts, with the pair, the bridges and the liveness TAP', async () => {
  const plan = await makePlan('hatest', 'microgate', 67000);
  plan.ha = haLabPlan(plan, 67032);
  for (const g of plan.ha.gateways) {
    const gp = haGatewayPlan(plan, g);
    const cfg = parseConfig(labGatewayConfig(gp.plan, gp.opts), 'gw.yaml', catalog);
    assert.equal(cfg.devices.get('tap-lan')?.bridge, plan.hosts.lan.ifname);
    assert.equal(cfg.devices.get('tap-lan')?.ifname, g.taps.lan);
    assert.equal(cfg.devices.get('tap-alive')?.netns, g.kaNetns);
    assert.equal(cfg.files?.get('pair-key')?.filePath, plan.ha.keyFile);
    const cs = cfg.components.find((c) => c.name === 'conn-sync');
    assert.deepEqual((cs?.config as { pair: unknown }).pair, { self: g.n, peer: 3 - g.n });
    assert.equal((cfg.components.find((c) => c.name === 'router')?.config as { ha?: boolean }).ha, true);
    assert.equal(cfg.sandbox.uidBase, g.uidBase);
    assert.equal(cfg.control.socket, g.controlSocket);
  }
});
