// `microgate demo`: the lab demo. Builds a lab with microgate between a
// trusted host (lan) and an untrusted one (wan), sends ping and iperf3
// through it, prints a short summary, then keeps the lab up until Ctrl-C
// (or exits at once with --once). Everything it made is removed on exit.
import { parseArgs } from 'node:util';
import { labControl, labUp, labDown, readLabState } from '../lab/lab.ts';
import { ping, iperf3 } from '../lab/traffic.ts';
import { nsExec } from '../lab/netns.ts';

export const DEMO_HELP = `Usage: microgate demo [--once] [--name NAME] [--seconds N]

Build a lab (namespaces mg-NAME-wan and mg-NAME-lan, microgate between them),
ping through it, run iperf3 TCP lan->wan in both directions, and print a summary.
Then keep running until Ctrl-C; the lab is removed on exit.

Options:
  --once         exit after the summary
  --name NAME    lab name (default "demo")
  --seconds N    iperf3 duration per direction (default 3)
  -h, --help     this help`;

function gbit(bps: number): string {
  return `${(bps / 1e9).toFixed(2)} Gbit/s`;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      once: { type: 'boolean' },
      name: { type: 'string', default: 'demo' },
      seconds: { type: 'string', default: '3' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${DEMO_HELP}\n`);
    return 0;
  }
  const name = values.name;
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 60) {
    process.stderr.write('microgate demo: --seconds: expected a number from 1 to 60\n');
    return 2;
  }
  if ((await readLabState(name)) !== null) {
    process.stdout.write(`A lab "${name}" exists from an earlier run: removing it first.\n`);
    await labDown(name);
  }
  let down = false;
  const cleanup = async (): Promise<void> => {
    if (down) return;
    down = true;
    await labDown(name);
  };
  const onSignal = (): void => {
    process.stdout.write('\nStopping: removing the lab...\n');
    cleanup().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    process.stdout.write(`Building lab "${name}": wan host, lan host, microgate between them...\n`);
    const info = await labUp({ name, gateway: 'microgate' });
    const lan = info.hosts.lan;
    const wan = info.hosts.wan;
    process.stdout.write(`  lan ${lan.ip} (netns ${lan.netns})  <->  microgate [lan ${info.gatewayAddresses.lan} | wan ${info.gatewayAddresses.wan}]  <->  wan ${wan.ip} (netns ${wan.netns})\n`);
    for (const c of info.components) process.stdout.write(`  component ${c.name.padEnd(8)} pid ${c.pid}\n`);
    const p1 = await ping(lan.netns, info.gatewayAddresses.lan, { count: 3 });
    const p2 = await ping(lan.netns, wan.ip, { count: 5 });
    // An attacker on the wan segment would route the lan prefix at the gateway: so does the wan host
    // here, so that it is the gateway's policy, not a missing route, that keeps it out.
    await nsExec(wan.netns, 'ip', ['route', 'replace', `${lan.ip.split('.').slice(0, 3).join('.')}.0/24`, 'via', info.gatewayAddresses.wan]);
    const p3 = await ping(wan.netns, lan.ip, { count: 2, timeoutS: 1 });
    process.stdout.write(`ping lan -> gateway ${info.gatewayAddresses.lan}: ${p1.received}/${p1.sent} replies, avg ${p1.avgMs} ms\n`);
    process.stdout.write(`ping lan -> wan host ${wan.ip}: ${p2.received}/${p2.sent} replies, avg ${p2.avgMs} ms (through microgate, NAT)\n`);
    process.stdout.write(`ping wan -> lan host ${lan.ip}: ${p3.received}/${p3.sent} replies (untrusted side, routed at the gateway: expected 0)\n`);
    const up = await iperf3({ serverNetns: wan.netns, serverIp: wan.ip, clientNetns: lan.netns, seconds });
    const downR = await iperf3({ serverNetns: wan.netns, serverIp: wan.ip, clientNetns: lan.netns, seconds, reverse: true });
    process.stdout.write(`iperf3 TCP lan -> wan: ${gbit(up.bitsPerSecond)} (${up.retransmits} retransmits)\n`);
    process.stdout.write(`iperf3 TCP wan -> lan: ${gbit(downR.bitsPerSecond)} (${downR.retransmits} retransmits)\n`);
    const state = await readLabState(name);
    if (state !== null) {
      try {
        const counters = await labControl(state, 3000).get<Record<string, Record<string, number>>>('/counters');
        for (const [comp, cs] of Object.entries(counters)) {
          const drops = Object.entries(cs).filter(([k]) => k.startsWith('drop.'));
          const dropText = drops.length ? drops.map(([k, v]) => `${k.slice(5)}=${v}`).join(' ') : 'none';
          process.stdout.write(`  ${comp.padEnd(8)} drops: ${dropText}\n`);
        }
        process.stdout.write(`Control API: ${state.controlSocket ?? '?'} (root only): microgate trace|audit|conntrack --lab ${name}\n`);
      } catch (e) {
        process.stdout.write(`  (counters unavailable: ${(e as Error).message})\n`);
      }
    }
    const ok = p2.received > 0 && p3.received === 0 && up.bitsPerSecond > 0 && downR.bitsPerSecond > 0;
    process.stdout.write(ok ? 'Demo OK: traffic crossed microgate, the untrusted side was kept out.\n' : 'Demo FAILED: see above.\n');
    if (values.once) {
      await cleanup();
      return ok ? 0 : 1;
    }
    process.stdout.write(`The lab stays up: try \`ip netns exec ${lan.netns} ping ${wan.ip}\`. Ctrl-C to stop.\n`);
    await new Promise<never>(() => {});
    return 0;
  } catch (e) {
    await cleanup();
    throw e;
  }
}
