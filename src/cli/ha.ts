// `microgate ha`: an HA pair's role and health through init's control API
// (src/init/ha.ts): `status` (role, last takeover, the pair link: peer role,
// sync lag, queue, drops, config hash match), `role master|backup [--force]`
// (what keepalived's notify scripts call), `check` (exit 0 when the gateway
// is ready and every component runs: keepalived's vrrp_script).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';
import { readLabState } from '../lab/lab.ts';
import { ControlClient } from '../sys/control-client.ts';

export const HA_HELP = `Usage: microgate ha status [--lab NAME | --control SOCKET|URL] [--json]
       microgate ha role master|backup [--force] [--lab NAME | --control SOCKET|URL] [--json]
       microgate ha check [--lab NAME | --control SOCKET|URL]
       microgate ha bench [--takeovers N] [--kind kill|link] [--rate N] [--seconds S] [--json]  (see ha bench --help)

An HA pair's gateway (a conn-sync with \`pair\`; docs/RELIABILITY.md, "HA pair"):
  status   its role and since when, the last takeover, its router's config hash
           and whether the peer's matches, the sync link (up / down, last heard,
           the peer's role and table, send queue, lag, queue drops)
  role     set the role (keepalived's notify scripts call this). Becoming master
           is refused when the peer runs another router config, unless --force
  check    exit 0 when init answers, is ready and every component runs; else 1
           (keepalived's vrrp_script: a failing gateway lowers its priority)
  bench    an HA lab's failover times over N takeovers and its sync traffic per 1,000 new
           connections per second (src/bench/ha-bench.ts)

Options:
${CONTROL_HELP}
  --gateway N        with --lab of an HA lab (lab up --ha): gateway 1 or 2 (status: both by default)
  --force            take over even though the peer's config hash differs
  --json             print JSON
  -h, --help         this help

Exit codes: 0 done, 1 refused / not healthy / unreachable, 2 bad usage.`;

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

interface HaStatus {
  role: string;
  sinceMs: number;
  transitions: number;
  lastTakeover: { at: string; from: string; to: string; forced: boolean; ms: number } | null;
  lastError: string | null;
  router: { name: string; role: string | null; configHash: string | null };
  connSync: { name: string; entries: number | null; pair: Record<string, unknown> | null };
  configMatch: boolean | null;
}

/** The status as lines of text. */
export function formatHaStatus(s: HaStatus): string {
  const p = (s.connSync.pair ?? {}) as {
    self?: number; peer?: number; link?: string; lastHeardMs?: number | null; peerDelayMs?: number | null;
    peerStatus?: { role: string; entries: number; queued: number; queueDrops: number } | null;
    queued?: number; queueMax?: number; lagMs?: number; queueDrops?: number; resyncing?: boolean;
  };
  const lines = [
    `role: ${s.role} for ${(s.sinceMs / 1000).toFixed(1)} s (router ${s.router.name}: ${s.router.role ?? '?'}), ${s.transitions} role change(s)`,
    `last takeover: ${s.lastTakeover === null ? 'none' : `${s.lastTakeover.at} ${s.lastTakeover.from} -> ${s.lastTakeover.to}${s.lastTakeover.forced ? ' (forced)' : ''}, ${s.lastTakeover.ms} ms`}`,
    `config: ${s.router.configHash ?? '?'}; peer's ${s.configMatch === null ? 'not known yet' : s.configMatch ? 'matches' : 'DIFFERS (takeover refused unless forced)'}`,
    `sync link: ${p.link ?? '?'} (id ${p.self} -> peer ${p.peer}), last heard ${p.lastHeardMs === null || p.lastHeardMs === undefined ? 'never' : `${p.lastHeardMs} ms ago`}, peer delay ${p.peerDelayMs ?? '-'} ms`,
    `peer: ${p.peerStatus === null || p.peerStatus === undefined ? 'no status heard' : `${p.peerStatus.role}, ${p.peerStatus.entries} records, queue ${p.peerStatus.queued}, queue drops ${p.peerStatus.queueDrops}`}`,
    `this side: ${s.connSync.entries ?? '?'} records, queue ${p.queued ?? '?'} of ${p.queueMax ?? '?'}, lag ${p.lagMs ?? '?'} ms, queue drops ${p.queueDrops ?? '?'}${p.resyncing ? ', resyncing' : ''}`,
  ];
  if (s.lastError !== null) lines.push(`last error: ${s.lastError}`);
  return lines.join('\n');
}

/** An HA lab's keepalived: its last state, as its notify script logged it (`<epoch s> <STATE>` lines). */
function lastVrrp(file: string | undefined): { state: string; at: string } | undefined {
  if (file === undefined) return undefined;
  try {
    const [t, state] = readFileSync(file, 'utf8').trim().split('\n').at(-1)?.split(' ') ?? [];
    const ms = Number(t) * 1000;
    return state === undefined || !Number.isFinite(ms) ? undefined : { state, at: new Date(ms).toISOString() };
  } catch {
    return undefined;
  }
}

export async function haCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'bench') return (await import('../bench/ha-bench.ts')).haBenchCommand(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      lab: { type: 'string' }, control: { type: 'string' }, gateway: { type: 'string' }, json: { type: 'boolean' }, force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(HA_HELP);
    return 0;
  }
  const [sub, arg, ...rest] = positionals;
  const usage = (why: string): number => {
    process.stderr.write(`microgate ha: ${why}\n${HA_HELP.split('\n\n')[0]}\n`);
    return 2;
  };
  // An HA lab: its gateways' sockets (gateway 1's is the lab's).
  let clients: { label: string; client: ControlClient; vrrpEvents?: string }[] | undefined;
  if (values.lab !== undefined && values.control === undefined) {
    const st = await readLabState(values.lab);
    const gws = st?.plan.ha?.gateways;
    if (gws !== undefined) {
      const want = values.gateway === undefined ? undefined : Number(values.gateway);
      if (want !== undefined && !gws.some((g) => g.n === want)) return usage(`--gateway: 1 or 2 (got ${values.gateway})`);
      clients = gws.filter((g) => want === undefined || g.n === want).map((g) => ({
        label: `gateway ${g.n}`, client: new ControlClient({ socket: g.controlSocket }, 5000), vrrpEvents: join(g.stateDir, 'vrrp-events'),
      }));
    }
  }
  if (values.gateway !== undefined && clients === undefined) return usage('--gateway needs --lab of an HA lab (lab up --ha)');
  clients ??= [{ label: '', client: await controlClient(values, 5000) }];
  if (sub === 'status' && arg === undefined) {
    const all = await Promise.all(clients.map(async (c) => ({ label: c.label, s: await c.client.get<HaStatus>('/ha'), vrrp: lastVrrp(c.vrrpEvents) })));
    if (values.json === true) out(JSON.stringify(clients.length === 1 ? all[0].s : Object.fromEntries(all.map((a) => [a.label, { ...a.s, keepalived: a.vrrp ?? null }]))));
    else {
      out(all.map((a) => (a.label === '' ? formatHaStatus(a.s)
        : `${a.label}:\n${formatHaStatus(a.s).replace(/^/gm, '  ')}${a.vrrp === undefined ? '' : `\n  keepalived: ${a.vrrp.state} since ${a.vrrp.at}`}`)).join('\n'));
    }
    return 0;
  }
  if (clients.length !== 1) return usage('role: which gateway? (--gateway 1|2)');
  if (sub === 'role' && (arg === 'master' || arg === 'backup') && rest.length === 0) {
    const s = await clients[0].client.post<HaStatus>('/ha/role', { role: arg, ...(values.force === true ? { force: true } : {}) });
    out(values.json === true ? JSON.stringify(s) : `role: ${s.role}`);
    return 0;
  }
  if (sub === 'check' && arg === undefined) {
    try {
      const st = await clients[0].client.get<{ ready: boolean; components: { name: string; state: string }[] }>('/status');
      const bad = st.components.filter((c) => c.state !== 'running');
      if (st.ready && bad.length === 0) return 0;
      process.stderr.write(`microgate ha check: ${st.ready ? '' : 'not ready; '}${bad.map((c) => `${c.name} ${c.state}`).join(', ')}\n`);
    } catch (e) {
      process.stderr.write(`microgate ha check: ${(e as Error).message}\n`);
    }
    return 1;
  }
  return usage(sub === undefined ? 'which: status, role or check?' : `unknown arguments: ${positionals.join(' ')}`);
}
