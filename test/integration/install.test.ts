// `microgate install` into a scratch root, then the service started from its
// own unit file in namespaces that emulate the host (issue 16): a private
// mount namespace shows the scratch root's /opt/microgate, /etc/microgate and
// /var/lib/microgate at their real paths (overlays, so the host's /etc and
// /var/lib are untouched) and a fresh /run; a private network namespace holds
// the gateway's TAP devices. ExecStartPre and ExecStart run exactly as the
// unit writes them; the control API answers; SIGTERM (systemd's KillSignal)
// stops it with exit 0. Then `uninstall` removes the program and keeps the
// config unless --purge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labStateDir } from '../../src/lab/lab-plan.ts';
import { allocateLabUids, releaseLabUids } from '../../src/lab/uid-alloc.ts';
import { serviceUnit } from '../../src/cli/service-unit.ts';
import { canRunLabs, uniqueLabName } from './harness.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(REPO, 'bin', 'microgate');
const skip = !canRunLabs() && 'needs root';

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(CLI, args, { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A two-domain gateway on TAP devices (created in the service's own network namespace). */
function gatewayYaml(uidBase: number, tag: string): string {
  return `sandbox:
  uid-base: ${uidBase}
  uid-count: 32
devices:
  tap-a: { kind: tap, ifname: mg${tag}a }
  tap-b: { kind: tap, ifname: mg${tag}b }
components:
  - { name: drv-a, type: nic-driver, devices: { tap: tap-a } }
  - { name: drv-b, type: nic-driver, devices: { tap: tap-b } }
  - name: router
    type: router
    config:
      domains:
        a: { address: 198.18.0.1/24, ip: [ { to: b } ] }
        b: { address: 198.19.0.1/24 }
sessions:
  - { between: [drv-a.nic, router.a], transport: shm }
  - { between: [drv-b.nic, router.b], transport: shm }
`;
}

test('check: a valid config passes, a broken one names file, path and what was expected (exit 2)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-check-'));
  try {
    writeFileSync(join(dir, 'ok.yaml'), gatewayYaml(67000, 'x'));
    assert.equal(cli(['check', join(dir, 'ok.yaml')]).code, 0);
    writeFileSync(join(dir, 'bad.yaml'), gatewayYaml(67000, 'x').replace('type: router', 'type: ruoter'));
    const r = cli(['check', join(dir, 'bad.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad\.yaml:\d+: components\[2\]\.type/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unit in contrib/ is the one install writes for /opt/microgate; systemd-analyze verify accepts it', () => {
  assert.equal(readFileSync(join(REPO, 'contrib', 'systemd', 'microgate.service'), 'utf8'),
    serviceUnit({ prefix: '/opt/microgate', config: '/etc/microgate/gateway.yaml' }));
  const v = spawnSync('which', ['systemd-analyze'], { encoding: 'utf8' });
  if (v.status !== 0) return; // no systemd tools on this machine: the text check above stands
  const dir = mkdtempSync(join(tmpdir(), 'mg-unit-'));
  try {
    // The same unit pointing at this checkout (so its commands exist), checked by systemd's own parser.
    writeFileSync(join(dir, 'gateway.yaml'), '');
    writeFileSync(join(dir, 'microgate.service'), serviceUnit({ prefix: REPO, config: join(dir, 'gateway.yaml') }));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'microgate.service')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('install into a scratch root, start from the unit file in namespaces emulating the host, stop, uninstall', { skip, timeout: 300_000 }, () => {
  const name = uniqueLabName();
  const tag = name.slice(-5);
  const work = mkdtempSync(join(tmpdir(), 'mg-install-'));
  const root = join(work, 'root');
  mkdirSync(labStateDir(name), { recursive: true });
  try {
    const uidBase = allocateLabUids(name);
    writeFileSync(join(work, 'gateway.yaml'), gatewayYaml(uidBase, tag));
    const inst = cli(['install', '--root', root, '--config', join(work, 'gateway.yaml')]);
    assert.equal(inst.code, 0, inst.err + inst.out);
    // The layout.
    assert.ok(existsSync(join(root, 'opt/microgate/bin/microgate')));
    assert.ok(existsSync(join(root, 'opt/microgate/node_modules/.bin/node')));
    assert.ok(!existsSync(join(root, 'opt/microgate/test')), 'no tests in an installed copy');
    assert.equal(statSync(join(root, 'etc/microgate')).mode & 0o777, 0o750);
    assert.equal(statSync(join(root, 'etc/microgate/gateway.yaml')).mode & 0o777, 0o640);
    assert.equal(statSync(join(root, 'var/lib/microgate')).mode & 0o777, 0o750);
    assert.equal(readlinkSync(join(root, 'usr/local/bin/microgate')), '/opt/microgate/bin/microgate');
    const unit = readFileSync(join(root, 'etc/systemd/system/microgate.service'), 'utf8');
    assert.equal(unit, serviceUnit({ prefix: '/opt/microgate', config: '/etc/microgate/gateway.yaml' }));
    // A second install keeps the config and the program before it (rollback).
    writeFileSync(join(work, 'other.yaml'), gatewayYaml(uidBase, tag).replace('198.19.0.1', '198.19.0.2'));
    const again = cli(['install', '--root', root, '--config', join(work, 'other.yaml')]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /exists, kept/);
    assert.ok(readFileSync(join(root, 'etc/microgate/gateway.yaml'), 'utf8').includes('198.19.0.1'));
    assert.ok(existsSync(join(root, 'opt/microgate.previous/bin/microgate')));

    // Start as systemd would: ExecStartPre, ExecStart (in WorkingDirectory), SIGTERM.
    const line = (k: string): string => (new RegExp(`^${k}=(.*)$`, 'm').exec(unit) as RegExpExecArray)[1];
    const script = `
set -u
R=${JSON.stringify(root)}; W=${JSON.stringify(work)}
mount -t tmpfs tmpfs /run && mkdir -p /run/microgate
mount -t tmpfs tmpfs /opt && mkdir /opt/microgate && mount --bind "$R/opt/microgate" /opt/microgate
for d in etc var/lib; do
  n=$(echo $d | tr / _); mkdir -p "$W/ov-$n/up" "$W/ov-$n/work"
  mount -t overlay overlay -o lowerdir=/$d,upperdir="$W/ov-$n/up",workdir="$W/ov-$n/work" /$d
done
mkdir -p /etc/microgate /var/lib/microgate
mount --bind "$R/etc/microgate" /etc/microgate && mount --bind "$R/var/lib/microgate" /var/lib/microgate
ip link set lo up
cd ${line('WorkingDirectory')}
${line('ExecStartPre')} || { echo "PRE-FAILED $?"; exit 1; }
echo PRE-OK
${line('ExecStart')} > "$W/service.log" 2>&1 &
pid=$!
for i in $(seq 1 240); do [ -S /run/microgate/init/control.sock ] && grep -q 'init: ready' "$W/service.log" && break; sleep 0.5; done
/opt/microgate/bin/microgate policy --json > "$W/policy.json" 2>&1 && echo POLICY-OK
ip -br link | grep -c "mg${tag}" | sed 's/^/TAPS /'
kill -TERM $pid; wait $pid; echo "EXIT $?"
`;
    const r = spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 240_000 });
    const log = existsSync(join(work, 'service.log')) ? readFileSync(join(work, 'service.log'), 'utf8') : '';
    const detail = `${r.stdout}\n${r.stderr}\n--- service log ---\n${log.slice(-3000)}`;
    assert.match(r.stdout, /PRE-OK/, detail);
    assert.match(r.stdout, /POLICY-OK/, detail);
    assert.match(r.stdout, /TAPS 2/, detail);
    assert.match(r.stdout, /EXIT 0/, detail);
    const pol = readFileSync(join(work, "policy.json"), "utf8");
    assert.match(pol, /"a"/, pol.slice(0, 2000));
    assert.match(log, /init: ready: 3 components/);
    // Nothing of it outlives the namespaces: the host's /etc and /var/lib have no microgate folder from us.
    assert.ok(!existsSync(join(work, 'ov-etc', 'up', 'microgate', 'gateway.yaml')), 'the config came through the bind mount, not the overlay');

    const un = cli(['uninstall', '--root', root]);
    assert.equal(un.code, 0, un.err);
    assert.ok(!existsSync(join(root, 'opt/microgate')) && !existsSync(join(root, 'opt/microgate.previous')));
    assert.ok(!existsSync(join(root, 'etc/systemd/system/microgate.service')));
    assert.throws(() => lstatSync(join(root, 'usr/local/bin/microgate')));
    assert.ok(existsSync(join(root, 'etc/microgate/gateway.yaml')), 'config kept without --purge');
    assert.equal(cli(['uninstall', '--root', root, '--purge']).code, 0);
    assert.ok(!existsSync(join(root, 'etc/microgate')) && !existsSync(join(root, 'var/lib/microgate')));
  } finally {
    releaseLabUids(name);
    rmSync(labStateDir(name), { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
