// `microgate monitor`: the monitor's engine offline, like `suricata -r`, and
// the suricata-verify runner; `microgate alerts`: a running gateway's EVE
// records (from init's control API), optionally following new ones.
import { createWriteStream, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runOffline } from '../components/monitor/offline.ts';
import { builtinRulesText } from '../components/monitor/index.ts';
import { runVerifyTest } from './monitor-verify.ts';
import { EVE_TYPES } from '../components/monitor/config.ts';
import type { EveType } from '../components/monitor/engine.ts';
import { CONTROL_HELP, controlClient } from './control-url.ts';

export const MONITOR_HELP = `Usage: microgate monitor --pcap FILE [--rules FILE]... [--eve OUT] [options]
       microgate monitor --verify DIR [--classification FILE] [--json]

Run the monitor's engine over a capture (pcap or pcapng), like "suricata -r":
decode, defragment, track flows, reassemble TCP, match the rules, and write
Suricata EVE JSON lines to OUT (default: standard output). Rules that do not
load are listed on standard error with their reason.

Options:
  --pcap FILE              the capture to read
  --rules FILE             a Suricata/Snort rule file (repeatable)
  --builtin-rules          also load microgate's built-in rules
  --classification FILE    classification.config for alert.category (default: built-in table)
  --var NAME=VALUE         an address or port variable (repeatable), e.g. HOME_NET=[10.0.0.0/8]
  --midstream              pick up TCP connections without their handshake
  --types LIST             EVE record types (default alert,anomaly,flow,stats,http; also arp)
  --eve OUT                where to write the EVE lines
  --verify DIR             run suricata-verify tests (a test directory, or a directory of them)
  --json                   with --verify: print the results as JSON
  -h, --help               this help

Exit codes: 0 done (or every verify test passed or skipped), 1 failure, 2 bad usage.`;

export async function monitorCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      pcap: { type: 'string' },
      rules: { type: 'string', multiple: true },
      'builtin-rules': { type: 'boolean' },
      classification: { type: 'string' },
      var: { type: 'string', multiple: true },
      midstream: { type: 'boolean' },
      types: { type: 'string' },
      eve: { type: 'string' },
      verify: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${MONITOR_HELP}\n`);
    return 0;
  }
  if (values.verify !== undefined) return verify(resolve(values.verify), values.classification, values.json === true);
  if (values.pcap === undefined) {
    process.stderr.write(`microgate monitor: --pcap FILE is required\n\n${MONITOR_HELP}\n`);
    return 2;
  }
  const vars: Record<string, string> = {};
  for (const v of values.var ?? []) {
    const i = v.indexOf('=');
    if (i <= 0) {
      process.stderr.write(`microgate monitor: --var expects NAME=VALUE (got "${v}")\n`);
      return 2;
    }
    vars[v.slice(0, i)] = v.slice(i + 1);
  }
  let types: EveType[] | undefined;
  if (values.types !== undefined) {
    types = values.types.split(',').map((t) => t.trim()) as EveType[];
    const bad = types.find((t) => !EVE_TYPES.includes(t));
    if (bad !== undefined) {
      process.stderr.write(`microgate monitor: unknown EVE type "${bad}" (expected ${EVE_TYPES.join(', ')})\n`);
      return 2;
    }
  }
  const out = values.eve === undefined ? process.stdout : createWriteStream(values.eve);
  const t0 = performance.now();
  const r = runOffline({
    pcap: values.pcap,
    ruleFiles: values.rules ?? [],
    rules: values['builtin-rules'] === true ? builtinRulesText() : undefined,
    classificationFile: values.classification,
    vars,
    midstream: values.midstream === true,
    eveTypes: types,
    emit: (line) => out.write(`${line}\n`),
  });
  const ms = performance.now() - t0;
  for (const e of r.rules.errors) process.stderr.write(`rule not loaded: ${e.file}:${e.line}${e.sid !== null ? ` sid ${e.sid}` : ''}: ${e.reason}\n`);
  for (const e of r.rules.skipped) process.stderr.write(`rule skipped: ${e.file}:${e.line}${e.sid !== null ? ` sid ${e.sid}` : ''}: ${e.reason}\n`);
  process.stderr.write(`${r.rules.rules.length} rules loaded, ${r.rules.errors.length} failed, ${r.rules.skipped.length} skipped; ` +
    `${r.packets} packets, ${r.alerts} alerts in ${ms.toFixed(0)} ms\n`);
  if (out !== process.stdout) await new Promise<void>((res) => (out as NodeJS.WritableStream).end(() => res()));
  if (r.error !== undefined) {
    process.stderr.write(`microgate monitor: ${r.error}\n`);
    return 1;
  }
  return 0;
}

function verify(dir: string, classification: string | undefined, json: boolean): number {
  const dirs = statSync(join(dir, 'test.yaml'), { throwIfNoEntry: false }) !== undefined ? [dir]
    : readdirSync(dir).map((d) => join(dir, d)).filter((d) => statSync(join(d, 'test.yaml'), { throwIfNoEntry: false }) !== undefined).sort();
  const cls = classification ?? (statSync(join(dir, 'classification.config'), { throwIfNoEntry: false }) !== undefined ? join(dir, 'classification.config') : undefined);
  const results = dirs.map((d) => runVerifyTest(d, cls));
  if (json) process.stdout.write(`${JSON.stringify(results.map(({ events, ...r }) => r), null, 2)}\n`);
  else {
    for (const r of results) {
      process.stdout.write(`${r.status.toUpperCase().padEnd(4)} ${r.name}${r.reason ? `: ${r.reason}` : ''}\n`);
      for (const c of r.checks) if (c.status !== 'pass') process.stdout.write(`       check ${c.index} ${c.status}: ${c.detail}\n`);
    }
    const n = (s: string): number => results.filter((r) => r.status === s).length;
    process.stdout.write(`${n('pass')} passed, ${n('fail')} failed, ${n('skip')} skipped\n`);
  }
  void writeFileSync;
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

export const ALERTS_HELP = `Usage: microgate alerts [--lab NAME | --control SOCKET|URL] [--follow] [--all] [--json]

Print the EVE records (alerts and anomalies) the gateway's monitor produced,
one JSON object per line, as init collected them (they are also appended to
the monitor's eve-log file, in a lab /run/microgate/labs/NAME/eve.json).

Options:
${CONTROL_HELP}
  --follow         keep printing new records until interrupted
  --all            every record type (default: alerts only)
  -h, --help       this help`;

export async function alertsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      lab: { type: 'string' },
      control: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${ALERTS_HELP}\n`);
    return 0;
  }
  const control = await controlClient(values, 5000);
  let since = 0;
  let stop = false;
  process.once('SIGINT', () => { stop = true; });
  for (;;) {
    const body = await control.get<{ seq: number; events: Record<string, unknown>[]; missed: number }>(`/alerts?since=${since}&fresh=1`);
    if (body.missed > 0) process.stderr.write(`microgate alerts: ${body.missed} older records are no longer kept\n`);
    for (const e of body.events) if (values.all === true || e.event_type === 'alert') process.stdout.write(`${JSON.stringify(e)}\n`);
    since = body.seq;
    if (!values.follow || stop) return 0;
    await new Promise((res) => setTimeout(res, 500));
    if (stop) return 0;
  }
}
