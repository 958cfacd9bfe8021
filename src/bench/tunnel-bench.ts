// `microgate tunnel-bench`: TCP throughput through microgate's tunnel
// against wireguard-go <-> wireguard-go, in the same lab, in the same run,
// alternating round by round, both directions. A benchmark, not a test: it
// reports numbers and asserts nothing about them.
//
//   ours       lan host 198.18.0.2 -> microgate (router, tunnel, router) -> wan segment
//              -> rsite (wireguard-go) -> rhost 198.18.64.2
//   reference  wan host 198.19.0.2: wireguard-go mgNAMEx (198.18.65.1) -> wan segment
//              -> rsite: wireguard-go mgNAMEy -> rhost 198.18.64.2
//
// Both paths end in the same remote site (its second wireguard-go instance
// for the reference), so the difference is the sending side: microgate's
// isolated router + tunnel + keystore against one wireguard-go process.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../components/keystore/keys.ts';
import { labDown, labUp } from '../lab/lab.ts';
import { ip, nsExec, stopProcesses, type ProcIdentity } from '../lab/netns.ts';
import { RHOST, RSITE_ENDPOINT, startWireguardGo } from '../lab/remote-site.ts';
import { iperf3 } from '../lab/traffic.ts';
import { median } from './stats.ts';

export const TUNNEL_BENCH_HELP = `Usage: microgate tunnel-bench [--seconds N] [--rounds N] [--name LAB] [--json]

Build a lab with a remote site (microgate lab up --remote-site), add a
wireguard-go <-> wireguard-go pair between the wan host and the remote site,
and measure iperf3 TCP throughput to the remote host through each, in both
directions, alternating, then remove the lab. Needs root.

Options:
  --seconds N    iperf3 duration per measurement (default 5)
  --rounds N     rounds; each measures all four cells once (default 3)
  --name LAB     the lab's name (default tbench; it must not exist)
  --json         the results as JSON
  -h, --help     this help`;

const REF_WAN_IP = '198.18.65.1';
const REF_PREFIX = '198.18.65.0/24';
const REF_WAN_PORT = 51821;
const REF_RSITE_PORT = 51822;

interface Cell {
  path: 'microgate-tunnel' | 'wireguard-go';
  direction: 'to-remote' | 'from-remote';
  gbps: number[];
  retransmits: number[];
}

export async function tunnelBenchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' }, rounds: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${TUNNEL_BENCH_HELP}\n`);
    return 0;
  }
  const seconds = Number(values.seconds ?? 5);
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600 || !Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    process.stderr.write(`microgate tunnel-bench: --seconds 1..600 and --rounds 1..100 (integers)\n\n${TUNNEL_BENCH_HELP}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('microgate tunnel-bench: needs root (it builds a lab of network namespaces)\n');
    return 1;
  }
  const name = values.name ?? 'tbench';
  const log = (s: string): void => {
    if (!values.json) process.stderr.write(`${s}\n`);
  };
  log(`building lab ${name} with a remote site...`);
  const lab = await labUp({ name, gateway: 'microgate', remoteSite: {} });
  const started: ProcIdentity[] = [];
  const cells: Cell[] = [];
  try {
    const wan = lab.hosts.wan.netns;
    const lan = lab.hosts.lan.netns;
    const rsite = `mg-${name}-rsite`;
    const rhost = `mg-${name}-rhost`;
    const stateDir = `/run/microgate/labs/${name}`;
    // The reference pair: wireguard-go on the wan host and a second one on rsite.
    const wanIf = `mg${name}x`;
    const rsIf = `mg${name}y`;
    const kWan = generatePrivateKey();
    const kRs = generatePrivateKey();
    const pubWan = encodeKey(publicKeyOf(kWan));
    const pubRs = encodeKey(publicKeyOf(kRs));
    const fWan = join(stateDir, 'ref-wan.key');
    const fRs = join(stateDir, 'ref-rsite.key');
    writeFileSync(fWan, `${encodeKey(kWan)}\n`, { mode: 0o400 });
    writeFileSync(fRs, `${encodeKey(kRs)}\n`, { mode: 0o400 });
    started.push(await startWireguardGo(wan, wanIf, join(stateDir, 'ref-wan-wireguard-go.log')));
    started.push(await startWireguardGo(rsite, rsIf, join(stateDir, 'ref-rsite-wireguard-go.log')));
    await nsExec(wan, 'wg', ['set', wanIf, 'listen-port', String(REF_WAN_PORT), 'private-key', fWan,
      'peer', pubRs, 'endpoint', `${RSITE_ENDPOINT}:${REF_RSITE_PORT}`, 'allowed-ips', '198.18.64.0/24']);
    await nsExec(rsite, 'wg', ['set', rsIf, 'listen-port', String(REF_RSITE_PORT), 'private-key', fRs,
      'peer', pubWan, 'endpoint', `${lab.hosts.wan.ip}:${REF_WAN_PORT}`, 'allowed-ips', REF_PREFIX]);
    await ip(['addr', 'add', `${REF_WAN_IP}/32`, 'dev', wanIf], wan);
    await ip(['link', 'set', wanIf, 'up'], wan);
    await ip(['route', 'add', '198.18.64.0/24', 'dev', wanIf, 'src', REF_WAN_IP], wan);
    await ip(['link', 'set', rsIf, 'up'], rsite);
    await ip(['route', 'add', REF_PREFIX, 'dev', rsIf], rsite);
    // Warm both up (handshakes).
    await nsExec(lan, 'ping', ['-c', '2', '-W', '3', RHOST]);
    await nsExec(wan, 'ping', ['-c', '2', '-W', '3', RHOST]);
    const paths = [
      { path: 'microgate-tunnel' as const, client: lan },
      { path: 'wireguard-go' as const, client: wan },
    ];
    for (const p of paths) {
      for (const direction of ['to-remote', 'from-remote'] as const) cells.push({ path: p.path, direction, gbps: [], retransmits: [] });
    }
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round, so neither path always runs first.
      const order = r % 2 === 0 ? paths : [...paths].reverse();
      for (const p of order) {
        for (const direction of ['to-remote', 'from-remote'] as const) {
          const res = await iperf3({ serverNetns: rhost, serverIp: RHOST, clientNetns: p.client, seconds, reverse: direction === 'from-remote' });
          const cell = cells.find((c) => c.path === p.path && c.direction === direction)!;
          cell.gbps.push(res.bitsPerSecond / 1e9);
          cell.retransmits.push(res.retransmits);
          log(`round ${r + 1}/${rounds} ${p.path.padEnd(16)} ${direction.padEnd(11)} ${(res.bitsPerSecond / 1e9).toFixed(3)} Gbit/s, ${res.retransmits} retransmits`);
        }
      }
    }
  } finally {
    await stopProcesses(started);
    await labDown(name);
  }
  const summary = cells.map((c) => ({
    path: c.path,
    direction: c.direction,
    medianGbps: median(c.gbps),
    minGbps: Math.min(...c.gbps),
    maxGbps: Math.max(...c.gbps),
    retransmits: c.retransmits,
    gbps: c.gbps,
  }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ seconds, rounds, results: summary }, null, 2)}\n`);
    return 0;
  }
  const rows = [['path', 'direction', 'median Gbit/s', 'min', 'max', 'retransmits (per run)']];
  for (const s of summary) {
    rows.push([s.path, s.direction, s.medianGbps.toFixed(3), s.minGbps.toFixed(3), s.maxGbps.toFixed(3), s.retransmits.join(' ')]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  process.stdout.write(`${rows.map((row) => row.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}\n`);
  for (const dir of ['to-remote', 'from-remote'] as const) {
    const ours = summary.find((s) => s.path === 'microgate-tunnel' && s.direction === dir)!;
    const ref = summary.find((s) => s.path === 'wireguard-go' && s.direction === dir)!;
    process.stdout.write(`${dir}: microgate / wireguard-go = ${(ours.medianGbps / ref.medianGbps).toFixed(2)}\n`);
  }
  return 0;
}
