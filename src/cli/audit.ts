// `microgate audit`: what every component process of a running gateway holds
// (uid, capabilities, namespaces, permission grants, open fds, sessions),
// checked against its config. Exit 1 when anything exceeds a grant.
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';

export const AUDIT_HELP = `Usage: microgate audit [--lab NAME | --control SOCKET|URL] [--json]

Read every running component's process (as init sees it in /proc) and check it
against the config: its own non-root uid and gid, no groups, no capabilities,
no_new_privs, not dumpable (PR_SET_DUMPABLE 0: no process of its uid can
read its memory), a seccomp filter, its own network namespace with only lo, its own
mount namespace, Node's permission model with no extra grants, no open fd
beyond its granted TAP devices and sessions, and for each packet device a
network namespace of its own holding only lo and its interface. Every running service (config
\`services\`, e.g. the file gateway) likewise: its uid, no groups or
capabilities, no_new_privs, not dumpable, seccomp, the configured network namespace, exactly
its config's permission grants, and no fd beyond stdio, its listening and
accepted sockets, connections to its storage and files under its grants.

Options:
${CONTROL_HELP}
  --json          print the full report as JSON
  -h, --help      this help

Exit codes: 0 nothing exceeds its grants, 1 violations (or the gateway is unreachable), 2 bad usage.`;

interface Unit {
  unit: string;
  components: string[];
  pid: number;
  uid: number;
  dumpable: number;
  netns: { own: boolean; interfaces: string[] };
  permission: string[];
  fds: { fd: number; target: string }[];
  sessions: { shm: number; socket: number; tap: number };
  links?: { device: string; ifname: string; netnsInterfaces: string[] }[];
  violations: string[];
  channel?: { violations: number; lastViolation: string };
}

interface Service {
  service: string;
  kind: string;
  pid: number;
  uid: number;
  dumpable: number;
  netns: { name: string; configured: boolean; interfaces: string[] };
  permission: string[];
  fds: { fd: number; target: string }[];
  sockets: { listening: number; accepted: number; upstream: number; stdio: number };
  violations: string[];
}

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { lab: { type: 'string' }, control: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${AUDIT_HELP}\n`);
    return 0;
  }
  const body = await (await controlClient(values)).get<{ ok: boolean; units: Unit[]; services?: Service[] }>('/audit', 5000);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return body.ok ? 0 : 1;
  }
  for (const u of body.units) {
    process.stdout.write(`${u.unit} (${u.components.join(', ')}): pid ${u.pid}, uid ${u.uid}, dumpable=${u.dumpable}, netns ${u.netns.own ? 'own' : 'SHARED'} [${u.netns.interfaces.join(' ')}], `
      + `${u.fds.length} fds (${u.sessions.tap} TAP, ${u.sessions.shm} shm sessions, ${u.sessions.socket} socket sessions), ${u.permission.join(' ')}\n`);
    for (const l of u.links ?? []) process.stdout.write(`  packet device ${l.device}: ${l.ifname}, its socket's network namespace holds [${l.netnsInterfaces.join(' ')}]\n`);
    for (const v of u.violations) process.stdout.write(`  VIOLATION: ${v}\n`);
    if ((u.channel?.violations ?? 0) > 0) process.stdout.write(`  control channel: ${u.channel?.violations} processes killed for protocol violations (last: ${u.channel?.lastViolation})\n`);
  }
  for (const s of body.services ?? []) {
    process.stdout.write(`service ${s.service} (${s.kind}): pid ${s.pid}, uid ${s.uid}, dumpable=${s.dumpable}, netns ${s.netns.configured ? s.netns.name : `NOT ${s.netns.name}`} [${s.netns.interfaces.join(' ')}], `
      + `${s.fds.length} fds (${s.sockets.listening} listening, ${s.sockets.accepted} accepted, ${s.sockets.upstream} to its storage), ${s.permission.join(' ')}\n`);
    for (const v of s.violations) process.stdout.write(`  VIOLATION: ${v}\n`);
  }
  process.stdout.write(body.ok ? 'audit: every component and service within its grants\n' : 'audit: violations found\n');
  return body.ok ? 0 : 1;
}
