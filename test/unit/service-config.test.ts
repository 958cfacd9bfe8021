// The gateway config's `services` section (src/init/service-config.ts): defaults,
// and every error naming the file, the line, the path and what was expected,
// including errors in the service's own config file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigFileError } from '../../src/init/config.ts';
import { SERVICE_DEFAULTS } from '../../src/init/service-config.ts';
import { topologyChange } from '../../src/init/reload.ts';
import { serviceKinds } from '../../src/services/index.ts';
import { servicePermissions } from '../../src/services/file-gateway/launch.ts';
import type { FileGatewayConfig } from '../../src/services/file-gateway/config.ts';
import { catalog } from '../../src/cli/catalog.ts';

const dir = mkdtempSync(join(tmpdir(), 'mg-svc-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const FG = `listen: 198.18.128.2:8443
redirect-listen: 198.18.128.2:8080
tls: { cert: tls.crt, key: tls.key }
storage: { kind: webdav, url: "https://198.18.0.2:8443/share/", ca: nas-ca.crt, user: filegw, password-file: nas.password }
data-dir: .
state-dir: ${dir}/state
`;
writeFileSync(join(dir, 'fg.yaml'), FG);
// The sandbox binds every granted path into the service's root: they must exist.
mkdirSync(join(dir, 'state'));
for (const f of ['tls.crt', 'tls.key', 'nas-ca.crt', 'nas.password']) writeFileSync(join(dir, f), '');
writeFileSync(join(dir, 'fg-any-port.yaml'), FG.replace('198.18.128.2:8443', '0.0.0.0:0'));
writeFileSync(join(dir, 'fg-bad.yaml'), FG.replace('kind: webdav', 'kind: smb'));

const BASE = `sandbox: { uid-base: 61000 }
devices:
  tap-lan: { ifname: mgsvl }
components:
  - { name: drv-lan, type: nic-driver, devices: { tap: tap-lan } }
  - name: router
    type: router
    config:
      domains:
        lan: { address: 198.18.0.1/24 }
sessions:
  - { between: [drv-lan.nic, router.lan] }
`;

const SERVICE = `services:
  - name: file-gateway
    kind: file-gateway
    config: fg.yaml
    netns: mg-x-dmz
    uid: 61015
`;

const GW = join(dir, 'gw.yaml');

function rejects(text: string, re: RegExp): void {
  assert.throws(() => parseConfig(text, GW, catalog), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

test('a service gets its defaults; its config path is relative to the gateway config', () => {
  const c = parseConfig(BASE + SERVICE, GW, catalog);
  assert.equal(c.services?.length, 1);
  const s = c.services![0];
  assert.deepEqual(s, {
    name: 'file-gateway', kind: 'file-gateway', configFile: join(dir, 'fg.yaml'), netns: 'mg-x-dmz', uid: 61015,
    memoryMb: undefined, restart: 'always', heartbeatMs: SERVICE_DEFAULTS.heartbeatMs, path: 'services[0]',
  });
  assert.deepEqual(parseConfig(BASE, GW, catalog).services, [], 'no section: no services');
  const full = parseConfig(BASE + SERVICE + '    memory-mb: 384\n    restart: on-failure\n    heartbeat-ms: 0\n', GW, catalog).services![0];
  assert.equal(full.memoryMb, 384);
  assert.equal(full.restart, 'on-failure');
  assert.equal(full.heartbeatMs, 0);
});

test('a reload cannot change services (they hold a running process): refused with the reason', () => {
  const cur = parseConfig(BASE + SERVICE, GW, catalog);
  assert.equal(topologyChange(cur, parseConfig(BASE + SERVICE, GW, catalog)), undefined);
  assert.match(topologyChange(cur, parseConfig(BASE + SERVICE + '    memory-mb: 384\n', GW, catalog)) ?? '', /^services changed: .*restart the gateway/);
  assert.match(topologyChange(cur, parseConfig(BASE, GW, catalog)) ?? '', /^services changed/);
});

test('services: errors name the file, the line, the path and what was expected', () => {
  const F = `^${GW.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`;
  rejects(BASE + 'services: { name: x }\n', new RegExp(`${F}:13: services: expected a list of services`));
  rejects(BASE + SERVICE.replace('kind: file-gateway', 'kind: samba'), new RegExp(`${F}:15: services\\[0\\]\\.kind: expected one of file-gateway \\(got "samba"\\)`));
  rejects(BASE + SERVICE.replace('name: file-gateway', 'name: router'), /:14: services\[0\]\.name: a name no component has \("router" is a component\)/);
  rejects(BASE + SERVICE.replace('name: file-gateway', 'name: File_GW'), /:14: services\[0\]\.name: expected a service name of lower-case letters/);
  rejects(BASE + SERVICE + SERVICE.replace('services:\n', '').replace('uid: 61015', 'uid: 61016'), /:19: services\[1\]\.name: a unique name \("file-gateway" is used twice\)/);
  rejects(BASE + SERVICE + SERVICE.replace('services:\n', '').replace('name: file-gateway', 'name: fg2'), /:23: services\[1\]\.uid: a uid of its own \(61015 is also services\[0\]\.uid\)/);
  rejects(BASE + SERVICE.replace('uid: 61015', 'uid: 61001'), /:18: services\[0\]\.uid: a uid no component runs as \(components use 61000-61002: sandbox\.uid-base \+ their index\)/);
  rejects(BASE + SERVICE.replace('uid: 61015', 'uid: 61064'), /:18: services\[0\]\.uid: a uid of the sandbox's reserved range 61000-61063 \(sandbox\.uid-base, uid-count; got 61064\)/);
  rejects(BASE + SERVICE.replace('uid: 61015', 'uid: 0'), /:18: services\[0\]\.uid: expected an integer from 1000 to /);
  rejects(BASE + SERVICE.replace('    uid: 61015\n', ''), /services\[0\]\.uid: expected an integer from 1000 to \d+ \(missing\)/);
  rejects(BASE + SERVICE.replace('netns: mg-x-dmz', 'netns: "../x"'), /:17: services\[0\]\.netns: expected the name of the network namespace it serves in \(got "\.\.\/x"\)/);
  rejects(BASE + SERVICE.replace('    netns: mg-x-dmz\n', ''), /services\[0\]\.netns: expected the name of the network namespace it serves in \(missing\)/);
  rejects(BASE + SERVICE + '    memory-mb: 16\n', /:19: services\[0\]\.memory-mb: expected an integer from 64 to 65536 \(got 16\)/);
  rejects(BASE + SERVICE + '    restart: sometimes\n', /:19: services\[0\]\.restart: expected one of always, on-failure, never \(got "sometimes"\)/);
  rejects(BASE + SERVICE + '    heartbeat-ms: 50\n', /:19: services\[0\]\.heartbeat-ms: 0 \(off\) or at least 100 \(got 50\)/);
  rejects(BASE + SERVICE + '    user: root\n', /:19: services\[0\]\.user: unknown key; expected one of name, kind, config, netns, uid, memory-mb, restart, heartbeat-ms/);
});

test("the service's own config file: missing, invalid, or not supervisable", () => {
  rejects(BASE + SERVICE.replace('config: fg.yaml', 'config: nowhere.yaml'),
    /:16: services\[0\]\.config: a readable file-gateway config file: .*nowhere\.yaml: ENOENT/);
  rejects(BASE + SERVICE.replace('config: fg.yaml', 'config: /dev/zero'), /:16: services\[0\]\.config: a regular file \(\/dev\/zero is not one\)/);
  // The inner error keeps its own file, line and path.
  rejects(BASE + SERVICE.replace('config: fg.yaml', 'config: fg-bad.yaml'),
    /:16: services\[0\]\.config: a valid file-gateway config: .*fg-bad\.yaml:4: storage\.kind: expected one of webdav, directory \(got "smb"\)/);
  rejects(BASE + SERVICE.replace('config: fg.yaml', 'config: fg-any-port.yaml'),
    /:16: services\[0\]\.config: a file-gateway config init can supervise: .*fg-any-port\.yaml: listen: a fixed port/);
});

test("the file gateway's plan: the sandboxed command in its netns, exactly its config's grants, health endpoint, sockets", () => {
  const kind = serviceKinds['file-gateway'];
  const cfg = kind.load(join(dir, 'fg.yaml')) as FileGatewayConfig;
  const plan = kind.plan(cfg, { uid: 61015, netns: 'mg-x-dmz', cgroupProcs: '/sys/fs/cgroup/x/cgroup.procs' });
  // Joins its memory cgroup first (inside, \`ip netns exec\` mounts a /sys without the cgroup tree), then enters the namespace.
  assert.equal(plan.command.file, '/bin/sh');
  assert.deepEqual(plan.command.args.slice(0, 6), ['-c', 'echo $$ > "$0" && exec ip "$@"', '/sys/fs/cgroup/x/cgroup.procs', 'netns', 'exec', 'mg-x-dmz']);
  const script = plan.command.args.at(-1)!;
  assert.ok(!script.includes('cgroup.procs'));
  assert.deepEqual(kind.plan(cfg, { uid: 61015, netns: 'mg-x-dmz', cgroupProcs: undefined }).command.args.slice(0, 3), ['netns', 'exec', 'mg-x-dmz']);
  assert.match(script, /--reuid=61015/);
  const perms = servicePermissions(cfg);
  assert.deepEqual(plan.grants, { read: perms.read, write: perms.write, net: true });
  for (const p of perms.read) assert.ok(script.includes(`--allow-fs-read=${p}`), p);
  assert.deepEqual(plan.health, { host: '198.18.128.2', port: 8443, path: '/healthz', tls: true });
  assert.deepEqual(plan.listen, [{ host: '198.18.128.2', port: 8443 }, { host: '198.18.128.2', port: 8080 }]);
  assert.deepEqual(plan.upstream, [{ host: '198.18.0.2', port: 8443 }]);
});
