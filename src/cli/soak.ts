// `microgate soak --minutes N`: mixed traffic and periodic component kills in a
// fresh lab, then leak and loss checks (src/lab/soak.ts). Needs root.
import { parseArgs } from 'node:util';
import { runSoak } from '../lab/soak.ts';

export const SOAK_HELP = `Usage: microgate soak --minutes N [--kill-every S] [--name NAME] [--json]

Build a microgate lab and run mixed traffic through it for N minutes: iperf3
lan -> wan (2 s runs), ping lan -> wan, and a 4 MiB file fetched with curl from
the wan host through the router's port forward (wan:80 -> dmz:8080) and checked
by sha256. Every S seconds (default 10) one component is killed with SIGKILL
(drv-wan, router, drv-lan, drv-dmz in turn); init restarts it and the time until
a lan -> wan ping passes again is recorded. At the end: every component running,
restarts = kills, forwarding back within 1 s of each kill, no failed iperf3 run
or corrupted file, conntrack back to 0 after its (shortened) timeouts, ARP queue
buffers and session packet slots returned, component memory growth <= 48 MB,
file descriptors of every component (as /audit sees them) and of init stable,
audit clean. The lab is removed afterwards.

Options:
  --minutes N     how long to run traffic (decimal: 0.5 is 30 s)
  --kill-every S  seconds between component kills (default 10)
  --name NAME     lab name (default: sk + 6 random characters)
  --json          print the result as JSON
  -h, --help      this help

Exit codes: 0 every check passed, 1 a check failed, 2 bad usage.`;

export async function soakCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { minutes: { type: 'string' }, 'kill-every': { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    process.stderr.write(`soak: ${(e as Error).message}\n${SOAK_HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${SOAK_HELP}\n`);
    return 0;
  }
  const minutes = Number(values.minutes);
  const killEvery = values['kill-every'] === undefined ? 10 : Number(values['kill-every']);
  if (values.minutes === undefined || !(minutes > 0) || minutes > 24 * 60) {
    process.stderr.write(`soak: --minutes must be a number of minutes above 0 (got ${values.minutes ?? 'nothing'})\n`);
    return 2;
  }
  if (!(killEvery >= 2) || killEvery > 3600) {
    process.stderr.write(`soak: --kill-every must be 2 to 3600 seconds (got ${values['kill-every']})\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('soak: needs root (it builds a lab of network namespaces)\n');
    return 1;
  }
  const r = await runSoak({ minutes, killEveryS: killEvery, name: values.name, log: values.json ? undefined : (l) => process.stdout.write(`${l}\n`) });
  if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    const t = r.traffic;
    process.stdout.write(`soak: ${r.seconds} s, ${r.rounds} rounds, ${r.kills.length} kills; iperf3 ${t.iperf3Runs} runs ${(t.iperf3Bytes / 2 ** 30).toFixed(1)} GiB, `
      + `${t.fetches} files fetched, ping ${t.pingsReceived}/${t.pingsSent}: ${r.ok ? 'PASS' : 'FAIL'}\n`);
  }
  return r.ok ? 0 : 1;
}
