// The policy commands: reload a gateway's config, and read what its routers
// track (connections with states, timeouts and NAT mappings; DHCP leases;
// drops by reason and domain; the rules in force with their hits), all
// through init's control API.
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';
import { labReload, reloadControl } from '../lab/lab-reload.ts';

const TARGET = `${CONTROL_HELP}
  --json             print JSON
  -h, --help         this help`;

export const RELOAD_HELP = `Usage: microgate reload [--lab NAME | --control SOCKET|URL] [--json]

Make a running gateway re-read its config file and apply it, as SIGHUP to init
does. The whole file is validated first; a reload may change components' config
sections (the router's policy: rules, forwards, NAT, blocklists, limits, DHCP,
timeouts), nothing else. Connections the new policy still permits keep flowing,
the others are removed. An invalid or unappliable config changes nothing and
the reason is printed. For a Linux reference lab, router.yaml in the lab's
folder is translated to nftables again and loaded atomically.

Options:
${TARGET}

Exit codes: 0 applied (or nothing changed), 1 refused (nothing changed) or unreachable, 2 bad usage.`;

export const CONNTRACK_HELP = `Usage: microgate conntrack [--lab NAME | --control SOCKET|URL] [--json]

The routers' connection tables: per connection its protocol, state, domains,
original source and destination, NAT mapping (masquerade address:port) or port
forward target, packets each way, age and time to expiry; the table's use and
the configured timeouts; then the IPv6 connections (their own table: no NAT).
At most 200 connections per router and family are listed.

Options:
${TARGET}`;

export const LEASES_HELP = `Usage: microgate leases [--lab NAME | --control SOCKET|URL] [--json]

The DHCP leases of every router domain that runs a DHCP server.

Options:
${TARGET}`;

export const DROPS_HELP = `Usage: microgate drops [--lab NAME | --control SOCKET|URL] [--json]

Dropped packets of every component by reason, and the routers' drops by
reason and ingress domain (counters drop.<reason>, domain.<d>.drop.<reason>).

Options:
${TARGET}`;

export const POLICY_HELP = `Usage: microgate policy [--lab NAME | --control SOCKET|URL] [--json]

The routers' policy in force: per domain its rules in config order with how
many new connections each decided, the default action, port forwards, NAT,
blocklist entries with their time left, rate limits; then the sources blocked
at run time (the monitor's block feedback) with their reason, time left and drops.

Options:
${TARGET}`;

interface Report {
  name: string;
  status: Record<string, unknown>;
  counters: Record<string, number>;
}

function parse(argv: string[]): { lab?: string; control?: string; json?: boolean; help?: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: { lab: { type: 'string' }, control: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  return values;
}

async function routers(argv: string[]): Promise<{ json: boolean; reports: Report[] }> {
  const v = parse(argv);
  const body = await (await controlClient(v)).get<{ components: Report[] }>('/components', 5000);
  return { json: v.json === true, reports: body.components };
}

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n');
}

function helped(argv: string[], help: string): boolean {
  if (argv.includes('-h') || argv.includes('--help')) {
    out(help);
    return true;
  }
  return false;
}

export async function reloadCommand(argv: string[]): Promise<number> {
  if (helped(argv, RELOAD_HELP)) return 0;
  const v = parse(argv);
  const r = v.lab !== undefined && v.control === undefined ? await labReload(v.lab) : await reloadControl(await controlClient(v));
  if (v.json) out(JSON.stringify(r));
  else if (r.ok) out(`reload: ${r.message}`);
  else process.stderr.write(`microgate reload: refused: ${r.message}\n`);
  return r.ok ? 0 : 1;
}

export async function conntrackCommand(argv: string[]): Promise<number> {
  if (helped(argv, CONNTRACK_HELP)) return 0;
  const { json, reports } = await routers(argv);
  const rs = reports.filter((r) => r.status.conntrack !== undefined);
  if (json) {
    out(JSON.stringify(rs.map((r) => ({
      component: r.name, conntrack: r.status.conntrack, connections: r.status.connections,
      conntrack6: r.status.conntrack6, connections6: r.status.connections6,
    }))));
    return 0;
  }
  for (const r of rs) {
    const ct = r.status.conntrack as { count: number; max: number; byProto: Record<string, Record<string, number>>; timeoutsS?: Record<string, number> };
    const conns = r.status.connections as Record<string, unknown>[];
    const by = Object.entries(ct.byProto).map(([p, st]) => `${p} ${Object.entries(st).map(([s, n]) => `${s} ${n}`).join(', ')}`).join('; ');
    out(`${r.name}: ${ct.count} of ${ct.max} connections${by ? ` (${by})` : ''}`);
    if (ct.timeoutsS) out(`  timeouts (s): ${Object.entries(ct.timeoutsS).map(([k, s]) => `${k} ${s}`).join(', ')}`);
    const rows = [['PROTO', 'STATE', 'FROM', 'TO', 'SOURCE', 'DESTINATION', 'NAT', 'FORWARDED TO', 'PACKETS', 'AGE', 'EXPIRES']];
    for (const c of conns) {
      const pk = c.packets as number[];
      rows.push([String(c.proto), String(c.state), String(c.from), String(c.to), String(c.src), String(c.dst),
        String(c.nat ?? '-'), String(c.dnat ?? '-'), `${pk[0]}/${pk[1]}`, `${c.ageS}s`, `${c.expiresInS}s`]);
    }
    if (conns.length > 0) out(table(rows).split('\n').map((l) => `  ${l}`).join('\n'));
    if (conns.length < ct.count) out(`  (${ct.count - conns.length} more not listed)`);
    // IPv6 (routers with address6 domains): its own table, no NAT.
    const ct6 = r.status.conntrack6 as { count: number; max: number; byProto: Record<string, Record<string, number>> } | undefined;
    const conns6 = (r.status.connections6 as Record<string, unknown>[] | undefined) ?? [];
    if (ct6 === undefined) continue;
    const by6 = Object.entries(ct6.byProto).map(([p, st]) => `${p} ${Object.entries(st).map(([s, n]) => `${s} ${n}`).join(', ')}`).join('; ');
    out(`${r.name}: ${ct6.count} of ${ct6.max} IPv6 connections${by6 ? ` (${by6})` : ''}`);
    const rows6 = [['PROTO', 'STATE', 'FROM', 'TO', 'SOURCE', 'DESTINATION', 'PACKETS', 'AGE', 'EXPIRES']];
    for (const c of conns6) {
      const pk = c.packets as number[];
      rows6.push([String(c.proto), String(c.state), String(c.from), String(c.to), String(c.src), String(c.dst), `${pk[0]}/${pk[1]}`, `${c.ageS}s`, `${c.expiresInS}s`]);
    }
    if (conns6.length > 0) out(table(rows6).split('\n').map((l) => `  ${l}`).join('\n'));
    if (conns6.length < ct6.count) out(`  (${ct6.count - conns6.length} more not listed)`);
  }
  if (rs.length === 0) out('no router');
  return 0;
}

export async function leasesCommand(argv: string[]): Promise<number> {
  if (helped(argv, LEASES_HELP)) return 0;
  const { json, reports } = await routers(argv);
  const servers: Record<string, unknown>[] = reports.flatMap((r) => ((r.status.dhcp as Record<string, unknown>[] | undefined) ?? []).map((d) => ({ component: r.name, ...d })));
  if (json) {
    out(JSON.stringify(servers));
    return 0;
  }
  if (servers.length === 0) out('no DHCP server');
  for (const s of servers) {
    const leases = s.leases as Record<string, unknown>[];
    out(`${s.component} domain ${String(s.domain)}: pool ${String(s.range)}, lease ${String(s.leaseS)} s, ${leases.length} lease(s)`);
    const rows = [['IP', 'MAC', 'STATE', 'STATIC', 'HOSTNAME', 'EXPIRES']];
    for (const l of leases) rows.push([String(l.ip), String(l.mac ?? '-'), String(l.state), l.static ? 'yes' : 'no', String(l.hostname ?? '-'), `${l.expiresInS}s`]);
    if (leases.length > 0) out(table(rows).split('\n').map((l) => `  ${l}`).join('\n'));
  }
  return 0;
}

export async function dropsCommand(argv: string[]): Promise<number> {
  if (helped(argv, DROPS_HELP)) return 0;
  const { json, reports } = await routers(argv);
  const res = reports.map((r) => {
    const total: Record<string, number> = {};
    const byDomain: Record<string, Record<string, number>> = {};
    for (const [k, v] of Object.entries(r.counters)) {
      if (k.startsWith('drop.')) total[k.slice(5)] = v;
      const m = /^domain\.([^.]+)\.drop\.(.+)$/.exec(k);
      if (m !== null) (byDomain[m[1]] ??= {})[m[2]] = v;
    }
    return { component: r.name, drops: total, byDomain };
  });
  if (json) {
    out(JSON.stringify(res));
    return 0;
  }
  for (const r of res) {
    const reasons = Object.entries(r.drops).sort((a, b) => b[1] - a[1]);
    out(`${r.component}: ${reasons.reduce((a, [, n]) => a + n, 0)} dropped`);
    const domains = Object.keys(r.byDomain).sort();
    if (reasons.length === 0) continue;
    const rows = [['REASON', 'TOTAL', ...domains.map((d) => d.toUpperCase())]];
    for (const [reason, n] of reasons) rows.push([reason, String(n), ...domains.map((d) => String(r.byDomain[d][reason] ?? 0))]);
    out(table(rows).split('\n').map((l) => `  ${l}`).join('\n'));
  }
  return 0;
}

export async function policyCommand(argv: string[]): Promise<number> {
  if (helped(argv, POLICY_HELP)) return 0;
  const { json, reports } = await routers(argv);
  const rs = reports.filter((r) => r.status.policy !== undefined);
  if (json) {
    out(JSON.stringify(rs.map((r) => ({ component: r.name, policy: r.status.policy }))));
    return 0;
  }
  for (const r of rs) {
    const p = r.status.policy as { domains: Record<string, unknown>[] };
    out(`${r.name}:`);
    for (const d of p.domains) {
      const def = d.default as { action: string; hits: number };
      out(`  domain ${String(d.domain)} (default ${def.action}, ${def.hits} hits)`);
      for (const rule of d.rules as { rule: string; path: string; hits: number }[]) out(`    ${rule.rule}  [${rule.hits} hits]  ${rule.path}`);
      for (const f of d.forwards as { proto: string; port: number; to: string; host: string }[]) out(`    ${f.proto}-forward port ${f.port} -> ${f.to} ${f.host}`);
      const nat = d.nat as { from: string[]; portsPerSource: number } | null;
      if (nat !== null) out(`    nat from ${nat.from.join(', ')} (${nat.portsPerSource || 'unlimited'} ports per source)`);
      for (const b of d.blocklist as { prefix: string; expiresInS: number | null; active: boolean }[]) {
        out(`    blocked ${b.prefix}${b.expiresInS === null ? '' : b.active ? ` for ${b.expiresInS} s more` : ' (expired)'}`);
      }
      const l = d.limits as { newPerSource: number; newTotal: number };
      if (l.newPerSource > 0 || l.newTotal > 0) out(`    limits: ${l.newPerSource || '-'} new/s per source, ${l.newTotal || '-'} new/s in all`);
    }
    const rt = (r.status.policy as { runtimeBlocks?: { ip: string; reason: string; expiresInS: number; active: boolean; drops: number }[] }).runtimeBlocks ?? [];
    if (rt.length > 0) out('  blocked at run time (every domain):');
    for (const b of rt) out(`    ${b.ip} ${b.active ? `for ${b.expiresInS} s more` : '(expired)'}, ${b.drops} dropped: ${b.reason}`);
  }
  if (rs.length === 0) out('no router');
  return 0;
}
