// `microgate tunnel status`: the tunnel components of a running gateway, in
// the shape of `wg show` (interface, then each peer: endpoint, allowed ips,
// latest handshake, transfer, keepalive), from the control API.
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';

export const TUNNEL_HELP = `Usage: microgate tunnel status [--lab NAME | --control SOCKET|URL] [--json]

Show every tunnel component of a running gateway like \`wg show\`: its public
key and port, then per peer the endpoint, allowed ips, latest handshake,
transfer and persistent keepalive.

Options:
${CONTROL_HELP}
  --json           the components' status as JSON
  -h, --help       this help`;

interface PeerStatus {
  publicKey: string;
  presharedKey: boolean;
  endpoint: string | null;
  allowedIps: string[];
  latestHandshake: number | null;
  transferRx: number;
  transferTx: number;
  persistentKeepalive: number;
}

interface TunnelStatus {
  publicKey: string | null;
  listenPort: number;
  ready: boolean;
  peers: PeerStatus[];
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(2)} ${units[i]}`;
}

function ago(unixS: number, nowS: number): string {
  let s = Math.max(0, Math.round(nowS - unixS));
  const parts: string[] = [];
  for (const [n, unit] of [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']] as const) {
    const k = Math.floor(s / n);
    if (k > 0) parts.push(`${k} ${unit}${k === 1 ? '' : 's'}`);
    s -= k * n;
  }
  return parts.length === 0 ? 'Now' : `${parts.join(', ')} ago`;
}

/** One tunnel as `wg show` prints an interface. */
export function formatTunnel(name: string, t: TunnelStatus, nowS = Date.now() / 1000): string {
  const lines = [`interface: ${name}`, `  public key: ${t.publicKey ?? '(waiting for the keystore)'}`, '  private key: (in the keystore)', `  listening port: ${t.listenPort}`];
  for (const p of t.peers) {
    lines.push('', `peer: ${p.publicKey}`);
    if (p.presharedKey) lines.push('  preshared key: (hidden)');
    if (p.endpoint !== null) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIps.join(', ')}`);
    if (p.latestHandshake !== null) lines.push(`  latest handshake: ${ago(p.latestHandshake, nowS)}`);
    if (p.transferRx > 0 || p.transferTx > 0) lines.push(`  transfer: ${bytes(p.transferRx)} received, ${bytes(p.transferTx)} sent`);
    if (p.persistentKeepalive > 0) lines.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return lines.join('\n');
}

export async function tunnelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { lab: { type: 'string' }, control: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${TUNNEL_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'status') {
    process.stderr.write(`microgate tunnel: expected the command "status"\n\n${TUNNEL_HELP}\n`);
    return 2;
  }
  const control = await controlClient(values, 5000);
  const get = (path: string): Promise<unknown> => control.get(path);
  const st = (await get('/status')) as { components: { name: string; type: string; state: string }[] };
  const tunnels = st.components.filter((c) => c.type === 'tunnel');
  if (tunnels.length === 0) {
    process.stderr.write(`microgate tunnel: the gateway at ${control.where} has no tunnel component\n`);
    return 1;
  }
  const reports = (await get('/components')) as { components: { name: string; status: TunnelStatus }[] };
  const out: Record<string, TunnelStatus | null> = {};
  for (const t of tunnels) out[t.name] = reports.components.find((r) => r.name === t.name)?.status ?? null;
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const blocks = Object.entries(out).map(([name, s]) => s === null ? `interface: ${name}\n  (not running)` : formatTunnel(name, s));
  process.stdout.write(`${blocks.join('\n\n')}\n`);
  return 0;
}
