// `microgate metrics`: a running gateway's GET /metrics, the Prometheus text
// exposition (docs/METRICS.md), printed as served, through the control API
// every command uses (src/cli/control-url.ts).
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';

export const METRICS_HELP = `Usage: microgate metrics [--lab NAME | --control SOCKET|URL]

Print a running gateway's metrics in the Prometheus text exposition format
(GET /metrics on its control API): per-domain packets and bytes, drops by
reason, connections by state, NAT ports in use, component and service health
and restarts, session ring occupancy, alerts by signature, tunnel peers and
handshake age. The names, labels and meanings: docs/METRICS.md. The control
API answers root and its admin group only (and, when configured, its loopback
TCP listener with the bearer token: docs/METRICS.md says how Prometheus can
scrape it, and what the token then grants).

Options:
${CONTROL_HELP}
  -h, --help         this help`;

export async function metricsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { lab: { type: 'string' }, control: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(`${METRICS_HELP}\n`);
    return 0;
  }
  const text = await (await controlClient(values)).bytes('/metrics');
  process.stdout.write(text);
  return 0;
}
