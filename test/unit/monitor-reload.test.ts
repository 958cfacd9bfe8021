// A rule reload of the monitor (issue 16, like `suricatasc reload-rules`):
// the monitor component over a real in-process session, given a new config
// section with new rule text as init hands it over. Flows and their
// flowbits are kept, the new rules match the next packets, unchanged rules
// keep their hit counters, a rule that fails refuses the reload with file,
// line, sid and reason and the old rules keep running, and a change outside
// the rules is refused. Also init's side: an edited rule file is a change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ComponentEnv } from '../../src/runtime/component.ts';
import { Counters } from '../../src/runtime/counters.ts';
import type { Entrypoint, Pollable } from '../../src/runtime/entrypoint.ts';
import create from '../../src/components/monitor/index.ts';
import { prepareMonitorConfig } from '../../src/components/monitor/config.ts';
import { createLocalSession } from '../../src/session/local.ts';
import { changedComponents } from '../../src/init/reload.ts';
import { parseConfig } from '../../src/init/config.ts';
import { catalog } from '../../src/cli/catalog.ts';

const FILE = '/etc/microgate/local.rules';

function config(rules: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { 'builtin-rules': false, 'rule-files': [FILE], 'rule-texts': [{ name: FILE, text: rules }], eve: { types: ['alert'] }, ...extra };
}

function ipv6Tcp(src: number, dst: number, sport: number, dport: number, flags: number, seq: number, data: string, tag = 0): Uint8Array {
  const payload = [...Buffer.from(data, 'latin1')];
  const tcp = [sport >> 8, sport & 255, dport >> 8, dport & 255, seq >>> 24, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255,
    0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0, ...payload];
  const addr = (last: number): number[] => [0x20, 0x01, 0x0d, 0xb8, 0, 1, ...new Array<number>(9).fill(0), last];
  const ip = [0x60, 0, 0, 0, tcp.length >> 8, tcp.length & 255, 6, 64, ...addr(src), ...addr(dst)];
  // 12-byte virtio_net_hdr (num_buffers: domain 0, received), then Ethernet.
  return Uint8Array.from([...new Array<number>(10).fill(0), tag & 255, tag >> 8, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, ...ip, ...tcp]);
}

function setup(rules: string) {
  const [router, monitor] = createLocalSession({ slots: 64, slotSize: 2048, names: ['router', 'monitor'] });
  const pollables: Pollable[] = [];
  const ep = { add: (p: Pollable) => pollables.push(p), remove: (p: Pollable) => pollables.splice(pollables.indexOf(p), 1), kick() {} } as unknown as Entrypoint;
  const logs: string[] = [];
  const env = {
    name: 'monitor',
    config: config(rules),
    configSource: { file: 'gateway.yaml', path: 'components[4].config' },
    sessions: new Map([['mirror', monitor]]),
    fds: {},
    ep,
    counters: new Counters(),
    log: { info: (m: string, f?: unknown) => logs.push(`${m} ${JSON.stringify(f ?? {})}`), warn: (m: string) => logs.push(`warn: ${m}`), error: (m: string) => logs.push(`error: ${m}`) },
  } as unknown as ComponentEnv;
  const c = create(env);
  c.start?.();
  let since = 0;
  let seq = 1000;
  /** Send one client -> server data segment of the flow; the sids that alerted on it. */
  const send = (data: string, secondCopy = false): number[] => {
    // A second copy: the router's sent copy of a frame it mirrored on receive (tag bits 14 and 15, domain 1),
    // here with another source address (as after NAT), so it is a flow of its own.
    const f = secondCopy ? ipv6Tcp(0x11, 0x80, 40000, 80, 0x18, 5000, data, 0xc001) : ipv6Tcp(0x10, 0x80, 40000, 80, 0x18, seq, data);
    if (!secondCopy) seq += data.length;
    const slot = router.out.alloc();
    router.out.buf.set(f, slot);
    router.out.submit(slot, f.length);
    router.out.flush();
    for (let i = 0; i < 5; i++) for (const p of pollables) if (p.pending?.() === true) p.run(false);
    const r = c.query!('eve', { since }) as { seq: number; lines: string[] };
    since = r.seq;
    return r.lines.map((l) => JSON.parse(l) as { event_type: string; alert?: { signature_id: number } })
      .filter((e) => e.event_type === 'alert').map((e) => e.alert!.signature_id).sort((a, b) => a - b);
  };
  const hits = (): Record<number, number> => Object.fromEntries((c.query!('rules', {}) as { sid: number; hits: number }[]).map((r) => [r.sid, r.hits]));
  return { c, send, hits, logs, stop: () => c.stop?.() };
}

const V1 = [
  'alert tcp 2001:db8:1::/48 any -> any 80 (msg:"marks the flow"; content:"EVIL"; flowbits:set,seen; sid:1; rev:1;)',
  'alert tcp any any -> [2001:db8:1::80,10.0.0.1] 80 (msg:"kept"; content:"GET"; sid:2; rev:1;)',
  'alert tcp any any -> any 80 (msg:"goes away"; content:"EVIL"; sid:3; rev:1;)',
].join('\n');

const V2 = [
  'alert tcp 2001:db8:1::/48 any -> any 80 (msg:"marks the flow"; content:"EVIL"; flowbits:set,seen; sid:1; rev:2;)',
  'alert tcp any any -> [2001:db8:1::80,10.0.0.1] 80 (msg:"kept"; content:"GET"; sid:2; rev:1;)',
  'alert tcp 2001:db8:1::10-2001:db8:1::20 any -> any 80 (msg:"new, needs the bit set before the reload"; flowbits:isset,seen; content:"MORE"; sid:4; rev:1;)',
].join('\n');

test('monitor reload: flows and flowbits kept, new rules match the next packets, unchanged rules keep their hits', () => {
  const m = setup(V1);
  try {
    assert.deepEqual(m.send('GET EVIL'), [1, 2, 3]);
    assert.deepEqual(m.hits(), { 1: 1, 2: 1, 3: 1 });
    // Its second copy: no alert, and not counted again.
    assert.deepEqual(m.send('GET EVIL', true), []);
    assert.deepEqual(m.hits(), { 1: 1, 2: 1, 3: 1 });
    const flows = (m.c.status() as { flows: { active: number } }).flows.active;
    assert.equal(flows, 2, 'the flow and the second copy\'s (another address space)');
    // Before the reload the new rule does not exist.
    assert.deepEqual(m.send('GET MORE'), [2]);
    assert.equal(m.c.reconfigure!(config(V2), true), undefined, 'dry run accepts');
    assert.deepEqual(m.hits(), { 1: 1, 2: 2, 3: 1 }, 'a dry run changes nothing');
    assert.equal(m.c.reconfigure!(config(V2), false), undefined);
    // sid 2 unchanged: its count goes on; sid 1 changed (rev): from zero; sid 3 gone; sid 4 new.
    assert.deepEqual(m.hits(), { 1: 0, 2: 2, 4: 0 });
    const st = m.c.status() as { flows: { active: number }; rules: { loaded: number; reloads: number } };
    assert.equal(st.flows.active, flows, 'the flow is kept');
    assert.deepEqual([st.rules.loaded, st.rules.reloads], [3, 1]);
    // The next packet of the same flow: the new rule matches, on the flowbit set before the reload.
    assert.deepEqual(m.send('GET MORE'), [2, 4]);
    assert.deepEqual(m.hits(), { 1: 0, 2: 3, 4: 1 });
    assert.ok(m.logs.some((l) => l.startsWith('rules reloaded') && l.includes('"added":1') && l.includes('"removed":1') && l.includes('"changed":1') && l.includes('"unchanged":1')), m.logs.join('\n'));
  } finally {
    m.stop();
  }
});

test('monitor reload: a rule that fails refuses the reload with file, line, sid and reason; the old rules keep running', () => {
  const m = setup(V2);
  try {
    assert.deepEqual(m.send('GET EVIL'), [1, 2]);
    const broken = V2.replace('content:"MORE";', 'content:"MORE"; frobnicate;') + '\nalert tcp 2001:db8::1::2 any -> any any (msg:"bad address"; sid:5; rev:1;)';
    const err = m.c.reconfigure!(config(broken), true);
    assert.match(err ?? '', /^2 rules failed, the running rules stay: /);
    assert.match(err ?? '', /\/etc\/microgate\/local\.rules:3: sid 4: unsupported keyword "frobnicate"/);
    assert.match(err ?? '', /\/etc\/microgate\/local\.rules:4: sid 5: .*bad IPv6 address "2001:db8::1::2"/);
    // Applied without a dry run: refused the same way.
    assert.equal(m.c.reconfigure!(config(broken), false), err);
    assert.deepEqual(Object.keys(m.hits()), ['1', '2', '4']);
    assert.deepEqual(m.send('GET MORE'), [2, 4], 'the old rules still run');
    // A change outside the rules is refused, naming the key.
    assert.match(m.c.reconfigure!(config(V2, { flow: { max: 1024 } }), true) ?? '', /^flow changed: a reload changes only the monitor's rules/);
    assert.match(m.c.reconfigure!({ ...config(V2), 'eve-log': '/var/log/x.json' }, true) ?? '', /^eve-log changed/);
    assert.match(m.c.reconfigure!(config(V2, { flow: { max: 1 } }), true) ?? '', /flow\.max: expected an integer/);
    // A rule we cannot load (no SMB parser) is an error like any other when it is new...
    const withSmb = `${V2}\nalert smb any any -> any any (msg:"needs the smb parser"; content:"x"; sid:9; rev:1;)`;
    assert.match(m.c.reconfigure!(config(withSmb), false) ?? '', /local\.rules:4: sid 9: protocol "smb" is not supported/);
  } finally {
    m.stop();
  }
});

test('monitor reload: an error the running set already had does not block a reload', () => {
  const withSmb = `${V2}\nalert smb any any -> any any (msg:"needs the smb parser"; content:"x"; sid:9; rev:1;)`;
  const m = setup(withSmb);
  try {
    assert.deepEqual(m.send('GET EVIL'), [1, 2]);
    assert.equal(m.c.reconfigure!(config(withSmb.replace('sid:2; rev:1;', 'sid:2; rev:3;')), false), undefined);
    assert.equal(m.hits()[2], 0, 'a changed rev is a new rule: its count starts at zero');
    assert.equal(m.hits()[1], 1);
  } finally {
    m.stop();
  }
});

test('init: an edited rule file is a change of the monitor section though the config file is the same', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-reload-'));
  try {
    const rules = join(dir, 'local.rules');
    writeFileSync(rules, V1);
    const yaml = `
devices:
  tap-lan: { kind: tap, ifname: mgxl, netns: mg-x-lan }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24 }
      mirror: { domains: [lan] }
  - name: monitor
    type: monitor
    config: { rule-files: [${rules}] }
sessions:
  - { between: [drv-lan.nic, router.lan] }
  - { between: [router.mirror, monitor.mirror] }
`;
    const cur = parseConfig(yaml, 'g.yaml', catalog);
    const inForce = cur.components.map((c) => catalog.componentTypes[c.type].prepare?.(c.config) ?? c.config);
    const prep = (): unknown[] => parseConfig(yaml, 'g.yaml', catalog).components.map((c) => catalog.componentTypes[c.type].prepare?.(c.config) ?? c.config);
    assert.deepEqual(changedComponents(cur, parseConfig(yaml, 'g.yaml', catalog), { inForce: (i) => inForce[i], next: prep() }), []);
    writeFileSync(rules, V2);
    assert.deepEqual(changedComponents(cur, parseConfig(yaml, 'g.yaml', catalog)), [], 'the config file alone did not change');
    assert.deepEqual(changedComponents(cur, parseConfig(yaml, 'g.yaml', catalog), { inForce: (i) => inForce[i], next: prep() }), [2]);
    assert.equal((prepareMonitorConfig(cur.components[2].config) as { 'rule-texts': { text: string }[] })['rule-texts'][0].text, V2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
