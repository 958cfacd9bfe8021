// `microgate status`: a running gateway at a glance, from its control API's
// GET /status: ready or not, init's PID, uptime and config, each component's
// and service's state, PID, restarts and last exit. Exit 1 when it is not ready
// or something is not running (or no gateway answers), so scripts can use it.
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';

export const STATUS_HELP = `Usage: microgate status [--lab NAME | --control SOCKET|URL] [--json]

Ask a running gateway how it is: ready, init's PID, uptime and config file;
for every component and service its state, PID, restarts and last exit.

Options:
${CONTROL_HELP}
  --json          print GET /status as it came
  -h, --help      this help

Exit codes: 0 ready and everything running, 1 not (or no gateway answers), 2 bad usage.`;

interface Row { name: string; pid: number; state: string; restarts: number; lastExit: string }
interface StatusBody {
  ready: boolean;
  pid: number;
  uptimeS: number;
  config: string;
  components: (Row & { type: string; unit: string })[];
  services?: (Row & { kind: string })[];
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { lab: { type: 'string' }, control: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${STATUS_HELP}\n`);
    return 0;
  }
  const control = await controlClient(values, 5000);
  const s = await control.get<StatusBody>('/status');
  const rows = [...s.components, ...(s.services ?? [])];
  const healthy = s.ready && rows.every((r) => r.state === 'running');
  if (values.json) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return healthy ? 0 : 1;
  }
  process.stdout.write(`gateway on ${control.where}: ${s.ready ? 'ready' : 'NOT READY'}, init pid ${s.pid}, up ${s.uptimeS} s, config ${s.config}\n`);
  const lines = [['NAME', 'WHAT', 'STATE', 'PID', 'RESTARTS', 'LAST EXIT']];
  for (const c of s.components) lines.push([c.name, c.type, c.state, String(c.pid), String(c.restarts), c.lastExit || '-']);
  for (const v of s.services ?? []) lines.push([v.name, `service ${v.kind}`, v.state, String(v.pid), String(v.restarts), v.lastExit || '-']);
  process.stdout.write(`${table(lines)}\n`);
  return healthy ? 0 : 1;
}
