// `microgate fault`: inject a fault into one component of a running gateway
// (POST /components/NAME/fault), to see fault isolation at work. The gateway's
// config must enable it (`debug: { fault-injection: true }`; a lab: `lab up
// --fault-injection`).
import { parseArgs } from 'node:util';
import { CONTROL_HELP, controlClient } from './control-url.ts';
import { FAULT_KINDS, HOSTILE_ATTACKS } from '../init/fault.ts';

export const FAULT_HELP = `Usage: microgate fault --component NAME --kind KIND [--attack A] [--lab NAME | --control SOCKET|URL] [--json]

Make one component of a running gateway fail, on its own thread, for testing
fault isolation (docs/RELIABILITY.md). Only when the gateway's config enables
it: \`debug: { fault-injection: true }\` (\`microgate lab up --fault-injection\`);
otherwise the gateway refuses (403).

Kinds:
  throw      an uncaught exception (thrown from a setImmediate callback): the
             component's process dies (a thread component takes its host with it)
  allocate   memory outside and inside the V8 heap, kept, until the kernel's OOM
             killer ends the process at its memory limit (needs memory-mb)
  hang       a busy loop: the heartbeat finds it (5 missed) and init kills it
             (needs heartbeat-ms above 0)
  forbidden-call  ptrace of init through a raw system call, around Node: the
             seccomp filter kills the process (lastExit "signal SIGSYS ...")
  escape-link  in a nic-driver on a packet link: send a frame on, and set
             promiscuous, every interface index but its own (its own first, the
             control); logs "fault injection: escape-link: {...}" (init's log)
             with what worked where; the driver runs on (needs a packet device)
  hostile    a compromised component: --attack A writes garbage into the fds it
             holds (its control channel to init, its session rings, eventfds);
             init kills it (lastExit "killed by init: control channel
             violation ...", counted in /status channel.violations);
             docs/SECURITY.md. Attacks: ${HOSTILE_ATTACKS.join(', ')}

init restarts the failed unit by its restart policy; the control API's GET
/status shows its restarts, hangs, oomKills and lastExit ("killed: memory limit
..." after an OOM kill).

Options:
  --component NAME  the component (as in the config's components list)
  --kind KIND       ${FAULT_KINDS.join(', ')}
  --attack A        with --kind hostile: which attack
${CONTROL_HELP}
  --json            print the answer as JSON
  -h, --help        this help

Exit codes: 0 injected, 1 refused or unreachable, 2 bad usage.`;

function usage(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
}

export async function faultCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      component: { type: 'string' }, kind: { type: 'string' }, attack: { type: 'string' }, lab: { type: 'string' }, control: { type: 'string' },
      json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${FAULT_HELP}\n`);
    return 0;
  }
  if (values.component === undefined) throw usage('--component NAME is required');
  if (values.kind === undefined) throw usage(`--kind is required: one of ${FAULT_KINDS.join(', ')}`);
  if (!(FAULT_KINDS as readonly string[]).includes(values.kind)) throw usage(`--kind must be one of ${FAULT_KINDS.join(', ')} (got ${JSON.stringify(values.kind)})`);
  if (values.kind === 'hostile' && values.attack === undefined) throw usage(`--kind hostile needs --attack: one of ${HOSTILE_ATTACKS.join(', ')}`);
  if (values.attack !== undefined && values.kind !== 'hostile') throw usage('--attack goes with --kind hostile only');
  const control = await controlClient(values, 5000);
  const r = await control.request('POST', `/components/${encodeURIComponent(values.component)}/fault`, { kind: values.kind, ...(values.attack !== undefined ? { attack: values.attack } : {}) });
  let body: { ok?: boolean; message?: string; error?: { code: string; message: string } };
  try {
    body = JSON.parse(r.body.toString('utf8')) as typeof body;
  } catch {
    body = {};
  }
  if (values.json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  else if (r.status === 202) process.stdout.write(`${body.message ?? 'injected'}\n`);
  else process.stderr.write(`microgate fault: ${body.error?.message ?? `HTTP ${r.status}`}\n`);
  return r.status === 202 ? 0 : 1;
}
