// `lab up --ha` (issue 19): two microgate gateways between the same hosts,
// active/standby, with keepalived as the VRRP engine.
//
//   lan host ── bridge mg<n>l (in mg-<n>-lan) ──┬── gw1's lan TAP    gw2's lan TAP ──┐
//                                               ├── veth ── keepalived 1 (mg-<n>-ka1) │
//                                               └── veth ── keepalived 2 (mg-<n>-ka2) ┘
//   (the same bridge for the wan and dmz hosts, without keepalived)
//   sync link: bridge mg<n>s in mg-<n>-sync, one TAP of each gateway (conn-sync's pair frames)
//
// Each host's NIC is a bridge in its namespace carrying the host's address;
// both gateways' TAPs are its ports (init enslaves them, config `bridge`, at
// every start). Both routers run the same section with `ha: true`: the same
// addresses and MACs (a virtual MAC per domain), backup until init makes one
// master. keepalived runs per gateway in a namespace of its own, its VRRP
// interface a veth into the lan bridge: the adverts cross the segment the
// hosts depend on, not the sync link, so the sync link down degrades the
// pair (counted, logged) but elects no second master. It decides with:
// - track_interface on the gateway's liveness TAP (no component holds it; it
//   exists while that gateway's init runs, in keepalived's namespace): a dead
//   init takes it along, and keepalived faults at once (netlink);
// - track_file on a file a small watcher (ha-links.sh: ip monitor in the
//   hosts' namespaces) rewrites on every link event: 1 when one of the
//   gateway's lan, wan, dmz TAPs lost carrier (a link down on the active
//   faults it at once);
// - a vrrp_script every second: init answers and is ready, no component
//   failed / stopped / degraded, and the TAPs have carrier (the same again,
//   should the watcher miss an event).
// notify: the state to init's control API (POST /ha/role; curl over the
// socket: a `microgate ha role` start costs ~0.5-1 s of node start-up on
// this machine, curl ~10 ms). Both start BACKUP with `nopreempt`
// (priorities 150, 100): a gateway that comes back stays backup.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaGatewayPlan, HaLabPlan, LabPlan } from './lab-plan.ts';
import { netnsName } from './lab-plan.ts';
import { createNetns, ip, sysctl } from './netns.ts';
import type { MicrogateLabOptions } from './microgate-gateway.ts';
import { ControlClient } from '../sys/control-client.ts';

/** keepalived's addresses on the lan segment (the lab's lan is a /24 with the host at .2, the router at .1). */
const KA_IPS = ['198.18.0.251', '198.18.0.252'];
const VRID = 51;

/** The HA part of a lab's plan; the second gateway's uid range is `uidBase2`. */
export function haLabPlan(plan: LabPlan, uidBase2: number): HaLabPlan {
  const n = plan.name;
  const gw = (i: 1 | 2): HaGatewayPlan => {
    const dir = join(plan.stateDir, `gw${i}`);
    return {
      n: i,
      stateDir: dir,
      // gw1 keeps the lab's socket: `--lab NAME` reaches it.
      controlSocket: i === 1 ? plan.controlSocket : join(dir, 'control', 'control.sock'),
      uidBase: i === 1 ? plan.uidBase : uidBase2,
      taps: { wan: `mg${n}w${i}`, lan: `mg${n}l${i}`, dmz: `mg${n}d${i}`, sync: `mg${n}s${i}`, alive: `mg${n}h${i}` },
      kaNetns: netnsName(n, i === 1 ? 'ka1' : 'ka2'),
      kaIf: `mg${n}K${i}`,
      kaPeer: `mg${n}k${i}`,
      kaIp: KA_IPS[i - 1],
      aliveBridge: 'alive',
      priority: i === 1 ? 150 : 100,
    };
  };
  return { syncNetns: netnsName(n, 'sync'), syncBridge: `mg${n}s`, keyFile: join(plan.stateDir, 'pair.key'), vrid: VRID, gateways: [gw(1), gw(2)] };
}

/** The namespaces the HA part adds. */
export function haNamespaces(ha: HaLabPlan): string[] {
  return [ha.syncNetns, ...ha.gateways.map((g) => g.kaNetns)];
}

/** gateway g's plan as startMicrogate sees it (its folder, socket, uids) and its options. */
export function haGatewayPlan(plan: LabPlan, g: HaGatewayPlan, base: MicrogateLabOptions = {}): { plan: LabPlan; opts: MicrogateLabOptions } {
  const ha = plan.ha!;
  const other = ha.gateways.find((x) => x.n !== g.n)!;
  return {
    plan: { ...plan, stateDir: g.stateDir, controlSocket: g.controlSocket, uidBase: g.uidBase },
    opts: {
      ...base,
      ha: {
        self: g.n, peer: other.n, taps: g.taps, syncNetns: ha.syncNetns, syncBridge: ha.syncBridge,
        aliveNetns: g.kaNetns, aliveBridge: g.aliveBridge, keyFile: ha.keyFile,
      },
    },
  };
}

/**
 * Before the gateways start (the host namespaces exist): the hosts' bridges,
 * the sync namespace and bridge, keepalived's namespaces with their veths
 * into the lan bridge and the liveness bridges, the pair key.
 */
export async function prepareHaLab(plan: LabPlan): Promise<void> {
  const ha = plan.ha!;
  for (const h of [plan.hosts.wan, plan.hosts.lan, plan.hosts.dmz]) {
    await ip(['link', 'add', h.ifname, 'type', 'bridge', 'forward_delay', '0'], h.netns);
    // No IPv6 on the bridge until the lab configures the host (configureHost turns it on where wanted).
    await ip(['link', 'set', h.ifname, 'up'], h.netns);
  }
  await createNetns(ha.syncNetns);
  await ip(['link', 'add', ha.syncBridge, 'type', 'bridge', 'forward_delay', '0'], ha.syncNetns);
  await sysctl(ha.syncNetns, `net.ipv6.conf.${ha.syncBridge}.disable_ipv6`, 1);
  await ip(['link', 'set', ha.syncBridge, 'up'], ha.syncNetns);
  for (const g of ha.gateways) {
    mkdirSync(g.stateDir, { recursive: true, mode: 0o700 });
    await createNetns(g.kaNetns);
    await sysctl(g.kaNetns, 'net.ipv4.ip_forward', 0);
    await ip(['link', 'set', 'lo', 'up'], g.kaNetns);
    await ip(['link', 'add', g.aliveBridge, 'type', 'bridge'], g.kaNetns);
    await ip(['link', 'set', g.aliveBridge, 'up'], g.kaNetns);
    await ip(['link', 'add', g.kaPeer, 'type', 'veth', 'peer', 'name', g.kaIf]);
    await ip(['link', 'set', g.kaIf, 'netns', g.kaNetns]);
    await ip(['link', 'set', g.kaPeer, 'netns', plan.hosts.lan.netns]);
    await ip(['link', 'set', g.kaPeer, 'master', plan.hosts.lan.ifname, 'up'], plan.hosts.lan.netns);
    await ip(['addr', 'add', `${g.kaIp}/${plan.hosts.lan.prefixLen}`, 'dev', g.kaIf], g.kaNetns);
    await ip(['link', 'set', g.kaIf, 'up'], g.kaNetns);
  }
  writeFileSync(ha.keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
}

/** keepalived's config for gateway g (and the two scripts it runs), written into g's folder. */
export function writeKeepalivedFiles(plan: LabPlan, g: HaGatewayPlan): string {
  const ha = plan.ha!;
  const other = ha.gateways.find((x) => x.n !== g.n)!;
  const sock = g.controlSocket;
  const check = join(g.stateDir, 'ha-check.sh');
  writeFileSync(check, `#!/bin/sh
# keepalived's health check of gateway ${g.n} (generated by lab up --ha): init answers and is ready,
# no component failed, stopped or degraded, its lan, wan and dmz TAPs have carrier (checked first: cheapest).
ip -n ${plan.hosts.lan.netns} -o link show dev ${g.taps.lan} 2>/dev/null | grep -q LOWER_UP || exit 1
ip -n ${plan.hosts.wan.netns} -o link show dev ${g.taps.wan} 2>/dev/null | grep -q LOWER_UP || exit 1
ip -n ${plan.hosts.dmz.netns} -o link show dev ${g.taps.dmz} 2>/dev/null | grep -q LOWER_UP || exit 1
out=$(curl -s -m 0.8 --unix-socket ${sock} http://gateway/status) || exit 1
printf '%s' "$out" | grep -Eq '"ready": ?true' || exit 1
printf '%s' "$out" | grep -Eq '"state": ?"(failed|stopped|degraded)"' && exit 1
exit 0
`, { mode: 0o700 });
  const notify = join(g.stateDir, 'ha-notify.sh');
  writeFileSync(notify, `#!/bin/sh
# keepalived's notify of gateway ${g.n} (generated by lab up --ha): $1 INSTANCE, $2 name, $3 MASTER|BACKUP|FAULT|STOP.
# The state goes to init's control API (what \`microgate ha role\` does, without node's start-up).
case "$3" in MASTER) role=master ;; *) role=backup ;; esac
echo "$(date +%s.%N) $3" >> ${join(g.stateDir, 'vrrp-events')}
curl -s -m 3 --unix-socket ${sock} -H 'content-type: application/json' -d "{\\"role\\":\\"$role\\"}" http://gateway/ha/role >> ${join(g.stateDir, 'ha-notify.log')} 2>&1
echo >> ${join(g.stateDir, 'ha-notify.log')}
`, { mode: 0o700 });
  const conf = join(g.stateDir, 'keepalived.conf');
  const links = join(g.stateDir, 'links-down');
  writeFileSync(conf, `# keepalived of gateway ${g.n} of lab ${plan.name} (generated by lab up --ha; see src/lab/ha-lab.ts)
global_defs {
  router_id mg-${plan.name}-${g.n}
  script_user root
  enable_script_security
  vrrp_version 3
}
# 0 while the gateway's lan, wan and dmz TAPs have carrier, else 1 (a nonzero value with weight 0
# faults the instance): written by ha-links.sh on every link change (ip monitor), read through inotify.
track_file mg_links {
  file "${links}"
  weight 0
}
vrrp_script mg_health {
  script "${check}"
  interval 1
  timeout 1
  fall 1
  rise 1
}
vrrp_instance mg_${plan.name} {
  state BACKUP
  nopreempt
  interface ${g.kaIf}
  virtual_router_id ${ha.vrid}
  priority ${g.priority}
  advert_int 0.1
  unicast_src_ip ${g.kaIp}
  unicast_peer {
    ${other.kaIp}
  }
  # keepalived needs an address to own, the same in both adverts: one on its own loopback (the gateway's addresses are the routers').
  virtual_ipaddress {
    192.0.2.1/32 dev lo
  }
  track_interface {
    ${g.taps.alive}
  }
  track_script {
    mg_health
  }
  track_file {
    mg_links
  }
  notify "${notify}"
}
`, { mode: 0o600 });
  return conf;
}

/**
 * Gateway g's link watcher (ha-links.sh in its folder, run in its keepalived
 * namespace): writes 0 or 1 to `links-down` at start and on every link event
 * of the hosts' namespaces (ip monitor), 1 when one of g's lan, wan, dmz TAPs
 * has no carrier. keepalived's track_file sees the change at once (inotify),
 * where its health script looks only every second. Returns its PID.
 */
export function startLinkWatch(plan: LabPlan, g: HaGatewayPlan): number {
  const file = join(g.stateDir, 'links-down');
  const script = join(g.stateDir, 'ha-links.sh');
  const carrier = (ns: string, dev: string): string => `ip -n ${ns} -o link show dev ${dev} 2>/dev/null | grep -q LOWER_UP`;
  writeFileSync(script, `#!/bin/sh
# gateway ${g.n}'s link watcher (generated by lab up --ha): ${file} is 0 while its TAPs have carrier, else 1.
last=
check() {
  if ${carrier(plan.hosts.lan.netns, g.taps.lan)} && ${carrier(plan.hosts.wan.netns, g.taps.wan)} && ${carrier(plan.hosts.dmz.netns, g.taps.dmz)}; then v=0; else v=1; fi
  if [ "$v" != "$last" ]; then echo "$v" > ${file}.tmp && mv ${file}.tmp ${file}; last=$v; fi
}
check
{ ip -n ${plan.hosts.lan.netns} monitor link & ip -n ${plan.hosts.wan.netns} monitor link & ip -n ${plan.hosts.dmz.netns} monitor link & wait; } | while read -r _; do check; done
`, { mode: 0o700 });
  writeFileSync(file, '1\n', { mode: 0o600 });
  const out = openSync(join(g.stateDir, 'ha-links.log'), 'a', 0o600);
  const child = spawn('ip', ['netns', 'exec', g.kaNetns, '/bin/sh', script], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start the link watcher of gateway ${g.n}`);
  return child.pid;
}

/** Start gateway g's keepalived in its namespace; resolves with its PID. */
export function startKeepalived(plan: LabPlan, g: HaGatewayPlan): number {
  const conf = writeKeepalivedFiles(plan, g);
  const out = openSync(join(g.stateDir, 'keepalived.log'), 'a', 0o600);
  const child = spawn('ip', ['netns', 'exec', g.kaNetns, 'keepalived', '-n', '-l', '-D', '-f', conf,
    '-p', join(g.stateDir, 'keepalived.pid'), '-r', join(g.stateDir, 'keepalived-vrrp.pid')], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start keepalived for gateway ${g.n}`);
  return child.pid;
}

/** One gateway's HA status (GET /ha), or undefined when its init does not answer. */
export async function haStatusOf(g: HaGatewayPlan, timeoutMs = 1000): Promise<Record<string, unknown> | undefined> {
  try {
    return await new ControlClient({ socket: g.controlSocket }, timeoutMs).get<Record<string, unknown>>('/ha');
  } catch {
    return undefined;
  }
}

/** Wait until exactly one gateway is master; returns its id. */
export async function waitForMaster(plan: LabPlan, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Error(`aborted: ${String(signal.reason ?? 'abort')}`);
    const roles = await Promise.all(plan.ha!.gateways.map(async (g) => (await haStatusOf(g))?.role));
    const masters = plan.ha!.gateways.filter((_, i) => roles[i] === 'master');
    if (masters.length === 1) return masters[0].n;
    if (Date.now() > deadline) throw new Error(`not ready: no single HA master after ${timeoutMs} ms (roles: ${roles.map((r) => r ?? 'unreachable').join(', ')})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Start gateway n's init again (after it died: a test's SIGKILL, a bench's
 * takeover); it comes up as backup, its TAPs join the bridges again (config
 * `bridge`), its keepalived sees its liveness TAP back and stays BACKUP
 * (nopreempt). Returns the new init's PID and its components'.
 */
export async function restartHaGateway(plan: LabPlan, n: number, base: MicrogateLabOptions = {}, router?: Record<string, unknown>): Promise<{ initPid: number; components: { name: string; pid: number }[] }> {
  const { startMicrogate } = await import('./microgate-gateway.ts');
  const g = plan.ha!.gateways.find((x) => x.n === n);
  if (g === undefined) throw new Error(`no gateway ${n} in lab ${plan.name}`);
  const gp = haGatewayPlan(plan, g, base);
  return startMicrogate(gp.plan, gp.opts, router);
}
