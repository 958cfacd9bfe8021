// `microgate run CONFIG`: start init with a gateway config and keep it running
// until SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { DEFAULTS, loadConfig, ConfigFileError } from '../init/config.ts';
import { Init } from '../init/init.ts';
import { checkControlFree, startControl } from '../init/control.ts';
import { installCrashHandlers } from '../init/crash.ts';
import type { ControlServer } from '../init/control.ts';
import { catalog } from './catalog.ts';
import { RotatingFile } from '../sys/rotating-file.ts';
import { isJournalStream, linePriority } from '../sys/journal.ts';

/**
 * init's log lines: to stdout (with journald priorities when stdout is the
 * journal: src/sys/journal.ts), or to a rotating file (falling back to
 * stderr when it cannot be written).
 */
function logWriter(file: string | undefined): (line: string) => void {
  if (file === undefined) {
    if (isJournalStream(1)) return (l) => process.stdout.write(`<${linePriority(l)}>${l}\n`);
    return (l) => process.stdout.write(`${l}\n`);
  }
  const out = new RotatingFile(file, { mode: 0o600 });
  let failing = false;
  return (l) => {
    try {
      out.write(`${l}\n`);
      failing = false;
    } catch (e) {
      if (!failing) process.stderr.write(`init: cannot write ${file}: ${(e as Error).message}\n`);
      failing = true;
      process.stderr.write(`${l}\n`);
    }
  };
}

export const RUN_HELP = `Usage: microgate run CONFIG [--control-socket PATH] [--pid-file FILE] [--log FILE]

Start the gateway described by CONFIG (YAML; see docs/CONFIG.md): create its
devices and sessions, start every component sandboxed, serve the control API on
its Unix socket (control.socket, default ${DEFAULTS.controlSocket}; root and
control.admin-group only; a TCP listener only when control.listen is set, with
a bearer token), restart components that die; then start the services it lists (e.g.
the file gateway), health-check and restart them. Stops cleanly on SIGINT or SIGTERM.
SIGHUP (or "microgate reload") re-reads CONFIG and applies changed component
config sections; an invalid or unappliable config changes nothing.

Options:
  --control-socket PATH  override control.socket (its folder must be root-only)
  --pid-file FILE    write init's PID to FILE once ready
  --log FILE         write init's log (and its components' and services' output)
                     to FILE instead of stdout, rotated at 16 MiB with 4 old
                     files kept (FILE.1 ... FILE.4)
  --no-seccomp       do not install the seccomp filter in components (debugging)
  --start-timeout-s N  how long every component may take to start (default 20, or
                     the environment's MG_START_TIMEOUT_S: labs on a loaded machine)
  -h, --help         this help

On any start-up failure it stops what it started and exits with one line
saying why: the control socket or port of a running gateway (checked before
anything is created), a uid range in use, a device, a component that dies
before it ever ran (not restarted while init starts).

Exit codes: 0 stopped by a signal, 1 failed to start, 2 bad usage or config,
70 an unexpected error in init (it stopped every component and service first;
a supervisor such as contrib/systemd/microgate.service starts it again).`;

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'control-socket': { type: 'string' },
      'pid-file': { type: 'string' },
      log: { type: 'string' },
      'no-seccomp': { type: 'boolean' },
      'start-timeout-s': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${RUN_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`microgate run: expected one CONFIG file\n\n${RUN_HELP}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(positionals[0], catalog);
  } catch (e) {
    if (e instanceof ConfigFileError) {
      process.stderr.write(`microgate run: invalid config: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (values['control-socket'] !== undefined) {
    const p = values['control-socket'];
    if (!p.startsWith('/') || p.length > 100) {
      process.stderr.write(`microgate run: --control-socket: expected an absolute path of at most 100 characters\n`);
      return 2;
    }
    config.control.socket = p;
  }
  const startTimeoutS = Number(values['start-timeout-s'] ?? process.env.MG_START_TIMEOUT_S ?? '20');
  if (!Number.isInteger(startTimeoutS) || startTimeoutS < 1 || startTimeoutS > 3600) {
    process.stderr.write('microgate run: --start-timeout-s (or MG_START_TIMEOUT_S): expected whole seconds, 1-3600\n');
    return 2;
  }
  const say = logWriter(values.log);
  const init = new Init(config, { noSeccomp: values['no-seccomp'] === true, log: say });
  // An error of init's own that nothing caught: stop everything and exit non-zero (src/init/crash.ts).
  installCrashHandlers(() => init.stop(), say);
  let stopping: Promise<void> | undefined;
  let control: ControlServer | undefined;
  const stop = (sig: string): void => {
    if (stopping) return;
    say(`init: ${sig}: stopping`);
    stopping = (control?.close() ?? Promise.resolve()).then(() => init.stop()).then(() => {
      say('init: stopped');
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP: re-read the config file and apply changed component sections (fail closed).
  process.on('SIGHUP', () => {
    if (stopping) return;
    say('init: SIGHUP: reloading the config');
    void init.reload().then((r) => say(`init: reload ${r.ok ? 'done' : 'refused'}: ${r.message}`));
  });
  try {
    // Nothing is created or started while another gateway holds the control socket or port.
    await checkControlFree(config.control);
    await init.start(startTimeoutS * 1000);
  } catch (e) {
    const m = `microgate run: ${e instanceof Error ? e.message : String(e)}`;
    say(m);
    process.stderr.write(`${m}\n`);
    return 1;
  }
  try {
    control = await startControl(init, config.control, { log: say });
  } catch (e) {
    const m = `microgate run: control API: ${e instanceof Error ? e.message : String(e)}`;
    say(m);
    process.stderr.write(`${m}\n`);
    await init.stop();
    return 1;
  }
  if (values['pid-file'] !== undefined) writeFileSync(values['pid-file'], `${process.pid}\n`);
  const tcp = control.port === undefined ? '' : ` and http://${config.control.tcp?.host}:${control.port}`;
  say(`init: ready: ${config.components.length} components; control API on ${control.socket}${tcp}`);
  await new Promise<never>(() => {});
  return 0;
}
