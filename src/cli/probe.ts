// `microgate probe`: try, from inside the sandbox init builds for a
// component, what an intruder would (src/init/sandbox-probe.ts), and check
// that each try is stopped by the layer that must stop it. Exit 1 if anything
// gets through: run it once on a new machine or kernel.
import { parseArgs } from 'node:util';
import { formatProbe, runProbe } from '../init/sandbox-probe-run.ts';
import type { ProbeReport, Stage } from '../init/sandbox-probe-run.ts';
import type { Profile } from '../sys/seccomp.ts';
import { findFreeUidRange } from '../init/uid-check.ts';

export const PROBE_HELP = `Usage: microgate probe [--profile component|service|all] [--stage loaded|allow-list|all] [--uid UID] [--json]

Start the sandbox probe in the sandbox init gives a component (own uid, empty
network namespace, private root with only its code and libraries, no
capabilities, no_new_privs, Node's permission model, the seccomp allow-list,
and once loaded the filter that forbids every path lookup) and try: read and
write files through Node and through raw system calls, open /proc of other
processes, open Internet and packet sockets, exec, fork, clone a process,
signal pid 1, io_uring, make itself dumpable again (it is made non-dumpable
first, as a component is), ptrace init, mount, setuid 0, unshare. Each must be
stopped by its layer (ERR_ACCESS_DENIED, ENOENT, EPERM, ENOSYS, or the
process killed with SIGSYS). Needs root, as init does.

Options:
  --profile P   component (default), service (the file gateway's), or all
  --stage S     loaded (default: as a running component), allow-list (while its
                code loads: shows the root filesystem layer), or all
  --uid UID     the unprivileged uid to run as (default: the first uid of
                99000-99999 nothing on the machine uses, src/init/uid-check.ts)
  --json        print the reports as JSON
  -h, --help    this help

Exit codes: 0 every try stopped as it must be, 1 something got through, 2 bad usage.`;

export async function probeCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string', default: 'component' },
      stage: { type: 'string', default: 'loaded' },
      uid: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${PROBE_HELP}\n`);
    return 0;
  }
  const profiles: Profile[] = values.profile === 'all' ? ['component', 'service'] : [values.profile as Profile];
  const stages: Stage[] = values.stage === 'all' ? ['loaded', 'allow-list'] : [values.stage as Stage];
  const usage = (m: string): number => {
    process.stderr.write(`microgate probe: ${m}\n`);
    return 2;
  };
  if (profiles.some((p) => p !== 'component' && p !== 'service')) return usage(`--profile: component, service or all, not "${values.profile}"`);
  if (stages.some((s) => s !== 'loaded' && s !== 'allow-list')) return usage(`--stage: loaded, allow-list or all, not "${values.stage}"`);
  const uid = values.uid === undefined ? findFreeUidRange(99000, 99999, 1).first : Number(values.uid);
  if (!Number.isInteger(uid) || uid < 1 || uid > 0xfffffffe) return usage(`--uid: a non-root uid, not "${values.uid}"`);
  const reports: ProbeReport[] = [];
  for (const profile of profiles) {
    for (const stage of stages) {
      // The service profile has no "loaded" stage of its own (it keeps its files).
      if (profile === 'service' && stage === 'loaded' && stages.length > 1) continue;
      reports.push(await runProbe({ uid, profile, stage }));
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  else process.stdout.write(`${reports.map(formatProbe).join('\n\n')}\n`);
  return reports.every((r) => r.pass) ? 0 : 1;
}
