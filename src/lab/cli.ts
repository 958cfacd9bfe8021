// `microgate lab up|down|status`: build, remove and list lab topologies.
// Exit codes: 0 success, 1 failure, 2 usage error. Errors go to stderr as
// "microgate lab: <message>".
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { LabInterrupted, labDown, labStatus, labUp, type LabInfo, type LabStatus } from './lab.ts';
import { GATEWAY_KINDS, LAB_NAME_RE, LABS_DIR, type GatewayKind } from './lab-plan.ts';
import type { MicrogateLabOptions } from './microgate-gateway.ts';

export const LAB_HELP = `Usage: microgate lab COMMAND [options]

Build network-namespace labs: a lan host and a wan host joined by a gateway,
either microgate or the Linux reference (kernel forwarding + nftables). Needs root.

Commands:
  up --name NAME [--gateway microgate|linux] [--json]   build a lab
  down --name NAME                                      remove a lab (also a half-built one)
  status [--json]                                       list labs and whether they are alive

Run "microgate lab COMMAND --help" for details.`;

const UP_HELP = `Usage: microgate lab up --name NAME [--gateway microgate|linux] [--json] [variants]

Build lab NAME (1-8 characters: a lower-case letter, then lower-case letters or digits):
  namespaces  mg-NAME-lan (host 198.18.0.2/24, default via 198.18.0.1)
              mg-NAME-wan (host 198.19.0.2/24, connected route only)
              mg-NAME-dmz (host 198.18.128.2/24, default via 198.18.128.1)
              mg-NAME-gw  (Linux gateway only: 198.18.0.1, 198.19.0.1, 198.18.128.1, nftables table "microgate")
  interfaces  mgNAMEl, mgNAMEw, mgNAMEd (the hosts' NICs); mgNAMEL, mgNAMEW, mgNAMED (the Linux gateway's veth ends)
  policy      the lab policy (src/lab/lab-policy.ts), on microgate's router or translated to nftables;
              change it in the lab's gateway.yaml (microgate) or router.yaml (linux), then "microgate reload --lab NAME"
  state       ${LABS_DIR}/NAME/state.json and lab.log
Returns once the lan host can ping its gateway. On failure, everything built is removed;
on Ctrl-C (SIGINT) or SIGTERM too, and it then exits 130 (SIGINT) or 143 (SIGTERM).

Options:
  --name NAME        the lab's name (required)
  --gateway KIND     microgate (default) or linux
  --json             print the lab's description as JSON
microgate variants (the benchmark compares them):
  --isolation MODE   process (default: each component its own process), thread, inline
  --transport T      shm (default: shared-memory sessions) or socket (every packet copied)
  --slots N          packet slots per session direction (default 256)
  --no-offload       no TSO/GSO or checksum offload on the TAP devices
  --link KIND        tap (default: init makes a TAP per host), packet (a veth pair per
                     host; the driver attaches to the gateway's end by AF_PACKET and
                     receives through a PACKET_MMAP ring) or packet-recvmmsg (the same,
                     received by recvmmsg: the drivers' rx-ring: false)
  --fault-injection  let "microgate fault --lab NAME" make components fail (config debug.fault-injection)
  --conn-sync        add conn-sync: the router's connections survive a router restart (issue 19)
  --ha               two gateways between the same hosts, active/standby (issue 19): each host's NIC is a
                     bridge with both gateways' TAPs, a sync link (mg-NAME-sync), keepalived per gateway
                     (mg-NAME-ka1, -ka2); see "microgate ha status --lab NAME" and src/lab/ha-lab.ts
  --monitor          add the IDS: the router mirrors every domain to a monitor (EVE log: state dir/eve.json)
  --monitor-rules F  a rule file for the monitor (implies --monitor; repeatable)
  --remote-site      add a remote site across the wan: mg-NAME-rsite (wireguard-go, 198.19.0.3)
                     with its host mg-NAME-rhost (198.18.64.2), joined to the lan by microgate's
                     tunnel + keystore (see src/lab/remote-site.ts)
  --rekey-s N        the tunnel's rekey-after-time in seconds (implies --remote-site; default 120)
  --file-gateway     add the file publication: a WebDAV NAS (nginx) on the lan host, 198.18.0.2:8443,
                     and the file gateway in the dmz, reached from the wan at https://198.19.0.1
                     (forward 443 -> dmz:8443, 80 -> dmz:8080); manage it with "microgate users|publish
                     --lab NAME" (see src/services/file-gateway/README.md)
  -h, --help         this help`;

const DOWN_HELP = `Usage: microgate lab down --name NAME

Remove lab NAME: stop its gateway processes (checked by PID and command line),
stop anything still running in its namespaces, delete its namespaces and links,
remove ${LABS_DIR}/NAME. Safe to repeat; works on half-built labs.

Options:
  --name NAME        the lab's name (required)
  -h, --help         this help`;

const STATUS_HELP = `Usage: microgate lab status [--json]

List the labs in ${LABS_DIR}, and namespaces named like a lab's without state
(orphaned: remove them with "microgate lab down --name NAME").

Options:
  --json             print the list as JSON
  -h, --help         this help`;

class UsageError extends Error {}

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

function fail(msg: string): void {
  process.stderr.write(`microgate lab: ${msg}\n`);
}

function parse<T extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function requireName(v: string | boolean | undefined): string {
  if (typeof v !== 'string' || v === '') throw new UsageError('--name NAME is required');
  if (!LAB_NAME_RE.test(v)) {
    throw new UsageError(`invalid lab name ${JSON.stringify(v)}: use 1 to 8 characters, a lower-case letter first, then lower-case letters or digits`);
  }
  return v;
}

/** What `lab up` prints without --json. */
export function describeLab(info: LabInfo): string {
  const { hosts, gatewayAddresses: gw } = info;
  const lines = [
    `lab ${info.name} is up (gateway: ${info.gateway})`,
    `  lan host  ${hosts.lan.netns.padEnd(14)} ${hosts.lan.ip}/24, default via ${gw.lan}`,
    `  wan host  ${hosts.wan.netns.padEnd(14)} ${hosts.wan.ip}/24`,
    `  dmz host  ${hosts.dmz.netns.padEnd(14)} ${hosts.dmz.ip}/24, default via ${gw.dmz}`,
  ];
  if (hosts.rsite && hosts.rhost) {
    lines.push(`  remote    ${hosts.rsite.netns.padEnd(14)} ${hosts.rsite.ip} (wireguard-go), its host ${hosts.rhost.netns} ${hosts.rhost.ip}, through microgate's tunnel`);
  }
  if (hosts.nas) lines.push(`  NAS       ${hosts.nas.netns.padEnd(14)} ${hosts.nas.url} (on the lan host)`);
  lines.push(
    `  gateway   lan ${gw.lan}, wan ${gw.wan}, dmz ${gw.dmz}`,
    `  policy    lan -> wan (masqueraded), dmz; dmz -> wan (masqueraded), lan TCP 8443; wan -> only the forwards`,
  );
  for (const f of info.forwards) lines.push(`            ${f.from}/${f.proto} -> ${f.to}`);
  if (info.control) lines.push(`  control   ${info.control.socket} (microgate status|policy|drops|... --lab ${info.name})`);
  if (info.components.length) {
    lines.push(`  processes ${info.components.map(c => `${c.name}:${c.pid}`).join(' ')}`);
  }
  if (info.fileGateway) {
    lines.push(`  files     ${info.fileGateway.url} (wan :443 -> dmz :8443, :80 -> :8080), NAS ${info.fileGateway.nas} on the lan host`);
    lines.push(`            microgate users add NAME --lab ${info.name}; microgate publish add PATH --lab ${info.name}`);
  }
  lines.push(`  try       ip netns exec ${hosts.lan.netns} ping -c 3 ${hosts.wan.ip}`);
  lines.push(`  remove    microgate lab down --name ${info.name}`);
  return lines.join('\n');
}

function statusTable(labs: LabStatus[]): string {
  if (labs.length === 0) return 'no labs';
  const rows = [['NAME', 'GATEWAY', 'STATUS', 'CREATED', 'NAMESPACES', 'PROCESSES']];
  for (const l of labs) {
    const nsUp = l.namespaces.filter(n => n.present).length;
    const pUp = l.processes.filter(p => p.alive).length;
    rows.push([
      l.name, l.gateway, l.status, l.createdAt ?? '-',
      `${nsUp}/${l.namespaces.length}`,
      l.processes.length ? `${pUp}/${l.processes.length}` : '-',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)));
  return rows.map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

async function up(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    name: { type: 'string' }, gateway: { type: 'string' }, json: { type: 'boolean' },
    isolation: { type: 'string' }, transport: { type: 'string' }, slots: { type: 'string' }, 'no-offload': { type: 'boolean' },
    link: { type: 'string' },
    monitor: { type: 'boolean' }, 'monitor-rules': { type: 'string', multiple: true },
    'remote-site': { type: 'boolean' }, 'rekey-s': { type: 'string' },
    'file-gateway': { type: 'boolean' },
    'fault-injection': { type: 'boolean' },
    'conn-sync': { type: 'boolean' },
    ha: { type: 'boolean' },
  });
  if (values.help) { out(UP_HELP); return 0; }
  const name = requireName(values.name);
  const gateway = (values.gateway ?? 'microgate') as string;
  if (!(GATEWAY_KINDS as readonly string[]).includes(gateway)) {
    throw new UsageError(`invalid --gateway ${JSON.stringify(gateway)}: use ${GATEWAY_KINDS.join(' or ')}`);
  }
  const mg: MicrogateLabOptions = {};
  if (values.isolation !== undefined) {
    if (!['process', 'thread', 'inline'].includes(values.isolation as string)) throw new UsageError('invalid --isolation: use process, thread or inline');
    mg.isolation = values.isolation as MicrogateLabOptions['isolation'];
  }
  if (values.transport !== undefined) {
    if (!['shm', 'socket'].includes(values.transport as string)) throw new UsageError('invalid --transport: use shm or socket');
    mg.transport = values.transport as MicrogateLabOptions['transport'];
  }
  if (values.slots !== undefined) {
    const n = Number(values.slots);
    if (!Number.isInteger(n) || n < 2 || n > 65536 || (n & (n - 1)) !== 0) throw new UsageError('invalid --slots: use a power of two from 2 to 65536');
    mg.slots = n;
  }
  if (values['no-offload']) mg.offload = false;
  if (values.link !== undefined) {
    if (!['tap', 'packet', 'packet-recvmmsg'].includes(values.link as string)) throw new UsageError('invalid --link: use tap, packet or packet-recvmmsg');
    mg.link = values.link as MicrogateLabOptions['link'];
  }
  if (values['fault-injection']) mg.faultInjection = true;
  if (values['conn-sync']) mg.connSync = true;
  if (values.monitor || values['monitor-rules'] !== undefined) {
    mg.monitor = { ruleFiles: ((values['monitor-rules'] ?? []) as string[]).map((f) => resolvePath(f)) };
  }
  if (gateway === 'linux' && Object.keys(mg).length > 0) throw new UsageError('--isolation, --transport, --slots, --no-offload, --link, --monitor, --fault-injection and --conn-sync apply to --gateway microgate only');
  if (values.ha && (gateway === 'linux' || values['remote-site'] || values['rekey-s'] !== undefined || values['file-gateway'])) {
    throw new UsageError('--ha builds two microgate gateways: not with --gateway linux, --remote-site or --file-gateway');
  }
  if (values.ha && mg.link !== undefined && mg.link !== 'tap') {
    throw new UsageError('--ha joins the gateways to the hosts by TAP devices on bridges: not with packet links');
  }
  if ((values['remote-site'] || values['rekey-s'] !== undefined) && gateway === 'linux') throw new UsageError('--remote-site needs --gateway microgate (the tunnel is a microgate component)');
  let remoteSite: { rekeyAfterTimeS?: number } | undefined;
  if (values['remote-site'] || values['rekey-s'] !== undefined) {
    remoteSite = {};
    if (values['rekey-s'] !== undefined) {
      const s = Number(values['rekey-s']);
      if (!Number.isFinite(s) || s < 1 || s > 86400) throw new UsageError('invalid --rekey-s: seconds from 1 to 86400');
      remoteSite.rekeyAfterTimeS = s;
    }
  }
  // Ctrl-C / SIGTERM: stop building, remove everything built so far, exit 130 / 143.
  // A second signal while that runs is ignored (leaving then would orphan the rest).
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      process.stderr.write(`microgate lab: ${sig}: still removing what lab up ${name} built, please wait\n`);
      return;
    }
    process.stderr.write(`microgate lab: ${sig}: stopping lab up ${name}; removing everything it built...\n`);
    ac.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const info = await labUp({ name, gateway: gateway as GatewayKind, microgate: mg, remoteSite, fileGateway: values['file-gateway'] === true, ha: values.ha === true, signal: ac.signal });
    out(values.json ? JSON.stringify(info) : describeLab(info));
    return 0;
  } catch (e) {
    if (!(e instanceof LabInterrupted)) throw e;
    fail(e.message);
    return e.reason === 'SIGTERM' ? 143 : 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function down(argv: string[]): Promise<number> {
  const { values } = parse(argv, { name: { type: 'string' } });
  if (values.help) { out(DOWN_HELP); return 0; }
  const name = requireName(values.name);
  const r = await labDown(name);
  const what = [...r.namespaces, ...r.links];
  out(what.length || r.stoppedPids.length
    ? `lab ${name} removed (${[...what, ...r.stoppedPids.map(p => `pid ${p}`)].join(', ')})`
    : `lab ${name}: nothing to remove`);
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } });
  if (values.help) { out(STATUS_HELP); return 0; }
  const labs = await labStatus();
  out(values.json ? JSON.stringify(labs) : statusTable(labs));
  return 0;
}

/** `microgate lab ARGS...` (argv without the "lab"). Returns the exit code. */
export async function labCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'up': return await up(rest);
      case 'down': return await down(rest);
      case 'status': return await status(rest);
      case '-h': case '--help': case 'help':
        out(LAB_HELP);
        return 0;
      case undefined:
        process.stderr.write(`${LAB_HELP}\n`);
        return 2;
      default:
        throw new UsageError(`unknown command "${sub}" (use up, down or status)`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      fail(`${e.message}\n\n${sub === 'up' ? UP_HELP : sub === 'down' ? DOWN_HELP : sub === 'status' ? STATUS_HELP : LAB_HELP}`);
      return 2;
    }
    fail((e as Error).message);
    return 1;
  }
}
