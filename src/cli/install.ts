// `microgate install` / `microgate uninstall` / `microgate check`: put the
// gateway on a machine as a systemd service, the layout a packaged daemon
// has:
//   PREFIX (default /opt/microgate)      the program (this checkout, copied;
//                                        an upgrade keeps the one before as
//                                        PREFIX.previous for rollback)
//   /etc/microgate/gateway.yaml          the config (never overwritten)
//   /var/lib/microgate                   state
//   /run/microgate                       runtime files (the control socket)
//   /etc/systemd/system/microgate.service the unit (service-unit.ts)
//   /usr/local/bin/microgate             the command
// `--root DIR` installs under DIR instead of / (a scratch root: nothing
// outside it is touched and systemctl is not called).
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigFileError, loadConfig } from '../init/config.ts';
import { catalog } from './catalog.ts';
import { serviceUnit } from './service-unit.ts';

/** The checkout this command runs from. */
const SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** What an installed copy holds (no tests, no git). */
const PROGRAM = ['bin', 'src', 'scripts', 'contrib', 'docs', 'node_modules', 'README.md', 'package.json', 'package-lock.json', 'tsconfig.json'];

export const INSTALL_HELP = `Usage: microgate install [--config FILE] [--prefix DIR] [--root DIR] [--now]
       microgate uninstall [--prefix DIR] [--root DIR] [--purge]
       microgate check CONFIG

install: copy this checkout (with its pinned Node) to PREFIX (default
/opt/microgate; an existing one is kept as PREFIX.previous), the config FILE to
/etc/microgate/gateway.yaml (only when none is there: an installed config is
never overwritten), make /var/lib/microgate, write the systemd unit
/etc/systemd/system/microgate.service and link /usr/local/bin/microgate. With
systemd running: daemon-reload and enable the unit (--now: start it too).
uninstall: stop and disable the unit, remove the program, the unit and the
link; the config and the state stay unless --purge.
check: validate CONFIG as \`run\` would, start nothing (exit 0 valid, 2 not).

Options:
  --config FILE  the gateway config to install (see docs/CONFIG.md, docs/DEPLOY.md)
  --prefix DIR   where the program goes (default /opt/microgate)
  --root DIR     install under DIR instead of / (a scratch root; no systemctl)
  --now          start the service after enabling it
  --purge        uninstall: remove /etc/microgate and /var/lib/microgate too`;

interface Layout {
  root: string;
  prefix: string;
  etc: string;
  config: string;
  state: string;
  unit: string;
  link: string;
}

function layout(root: string, prefix: string): Layout {
  const at = (p: string): string => join(root, p);
  return {
    root,
    prefix: at(prefix),
    etc: at('/etc/microgate'),
    config: at('/etc/microgate/gateway.yaml'),
    state: at('/var/lib/microgate'),
    unit: at('/etc/systemd/system/microgate.service'),
    link: at('/usr/local/bin/microgate'),
  };
}

/** systemd is the running service manager (not just installed). */
function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

function systemctl(args: string[]): boolean {
  const r = spawnSync('systemctl', args, { stdio: 'inherit' });
  return r.status === 0;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Validate a config as `run` does; returns an error text or undefined. */
export function checkConfig(file: string): string | undefined {
  try {
    loadConfig(file, catalog);
    return undefined;
  } catch (e) {
    if (e instanceof ConfigFileError) return e.message;
    return `${file}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

export async function checkCommand(argv: string[]): Promise<number> {
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    process.stderr.write(`${argv[0] === '--help' || argv[0] === '-h' ? '' : 'microgate check: expected one CONFIG file\n\n'}${INSTALL_HELP}\n`);
    return argv[0] === '--help' || argv[0] === '-h' ? 0 : 2;
  }
  const err = checkConfig(argv[0]);
  if (err !== undefined) {
    process.stderr.write(`microgate check: invalid config: ${err}\n`);
    return 2;
  }
  process.stdout.write(`microgate check: ${argv[0]}: valid\n`);
  return 0;
}

function options(argv: string[]): { values: Record<string, string | boolean | undefined> } | number {
  try {
    return parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        prefix: { type: 'string' },
        root: { type: 'string' },
        now: { type: 'boolean' },
        purge: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    process.stderr.write(`microgate: ${(e as Error).message}\n\n${INSTALL_HELP}\n`);
    return 2;
  }
}

function paths(v: Record<string, string | boolean | undefined>): Layout | string {
  const root = resolve(typeof v.root === 'string' ? v.root : '/');
  const prefix = typeof v.prefix === 'string' ? v.prefix : '/opt/microgate';
  if (!prefix.startsWith('/') || prefix === '/' || /\s/.test(prefix)) return `--prefix: expected an absolute folder without spaces, not / (got "${prefix}")`;
  return layout(root, prefix);
}

/** The options, the layout and the root check both commands share; a number is the exit code to return. */
function prepare(argv: string[], verb: string): { v: Record<string, string | boolean | undefined>; L: Layout; scratch: boolean } | number {
  const o = options(argv);
  if (typeof o === 'number') return o;
  const v = o.values;
  if (v.help) {
    process.stdout.write(`${INSTALL_HELP}\n`);
    return 0;
  }
  const L = paths(v);
  if (typeof L === 'string') {
    process.stderr.write(`microgate ${verb}: ${L}\n`);
    return 2;
  }
  const scratch = L.root !== '/';
  if (!scratch && process.getuid?.() !== 0) {
    process.stderr.write(`microgate ${verb}: run as root (or work under a scratch root with --root DIR)\n`);
    return 1;
  }
  return { v, L, scratch };
}

export async function installCommand(argv: string[]): Promise<number> {
  const p = prepare(argv, 'install');
  if (typeof p === 'number') return p;
  const { v, L, scratch } = p;
  if (!existsSync(join(SOURCE, 'node_modules', '.bin', 'node'))) {
    process.stderr.write(`microgate install: ${SOURCE} has no pinned Node (node_modules/.bin/node): run \`bash scripts/setup.sh\` there first\n`);
    return 1;
  }
  if (resolve(L.prefix) === SOURCE) {
    process.stderr.write(`microgate install: --prefix ${L.prefix} is this checkout itself; choose another folder\n`);
    return 2;
  }
  // The config: validated before anything is written; an installed one is kept.
  const cfg = typeof v.config === 'string' ? resolve(v.config) : undefined;
  if (cfg !== undefined) {
    const err = checkConfig(cfg);
    if (err !== undefined) {
      process.stderr.write(`microgate install: invalid config: ${err}\n`);
      return 2;
    }
  }
  const say = (m: string): void => { process.stdout.write(`install: ${m}\n`); };

  // The program: copied beside the old one, then swapped in (the old kept as .previous).
  const next = `${L.prefix}.next`;
  rmSync(next, { recursive: true, force: true });
  mkdirSync(next, { recursive: true, mode: 0o755 });
  for (const name of PROGRAM) {
    const from = join(SOURCE, name);
    if (existsSync(from)) cpSync(from, join(next, name), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  }
  const previous = `${L.prefix}.previous`;
  if (exists(L.prefix)) {
    rmSync(previous, { recursive: true, force: true });
    renameSync(L.prefix, previous);
    say(`kept the installed program as ${previous} (rollback: move it back)`);
  }
  renameSync(next, L.prefix);
  say(`program: ${L.prefix}`);

  mkdirSync(L.etc, { recursive: true, mode: 0o750 });
  chmodSync(L.etc, 0o750);
  if (exists(L.config)) {
    say(`config: ${L.config} exists, kept${cfg !== undefined ? ` (not replaced by ${cfg})` : ''}`);
  } else if (cfg !== undefined) {
    writeFileSync(L.config, readFileSync(cfg), { mode: 0o640 });
    say(`config: ${L.config} (from ${cfg})`);
  } else {
    say(`config: none yet: write ${L.config} (docs/CONFIG.md, docs/DEPLOY.md); the unit starts once it exists`);
  }
  mkdirSync(L.state, { recursive: true, mode: 0o750 });
  chmodSync(L.state, 0o750);
  say(`state: ${L.state}`);

  const prefixOnHost = L.prefix.slice(L.root === '/' ? 0 : L.root.length) || '/';
  mkdirSync(dirname(L.unit), { recursive: true });
  writeFileSync(L.unit, serviceUnit({ prefix: prefixOnHost, config: '/etc/microgate/gateway.yaml' }), { mode: 0o644 });
  say(`unit: ${L.unit}`);
  mkdirSync(dirname(L.link), { recursive: true });
  if (exists(L.link)) unlinkSync(L.link);
  symlinkSync(join(prefixOnHost, 'bin', 'microgate'), L.link);
  say(`command: ${L.link} -> ${join(prefixOnHost, 'bin', 'microgate')}`);

  if (scratch || !systemdRunning()) {
    say(`systemd is not managing ${scratch ? 'this scratch root' : 'this machine'}: start it with \`systemctl daemon-reload && systemctl enable --now microgate\` where it runs`);
    return 0;
  }
  if (!systemctl(['daemon-reload']) || !systemctl(['enable', ...(v.now ? ['--now'] : []), 'microgate.service'])) {
    process.stderr.write('microgate install: systemctl failed (see above); the files are in place\n');
    return 1;
  }
  say(`enabled${v.now ? ' and started' : ''}: systemctl status microgate, journalctl -u microgate`);
  return 0;
}

export async function uninstallCommand(argv: string[]): Promise<number> {
  const p = prepare(argv, 'uninstall');
  if (typeof p === 'number') return p;
  const { v, L, scratch } = p;
  const say = (m: string): void => { process.stdout.write(`uninstall: ${m}\n`); };
  if (!scratch && systemdRunning() && exists(L.unit)) systemctl(['disable', '--now', 'microgate.service']);
  for (const p of [L.unit, L.link]) {
    if (exists(p)) {
      rmSync(p, { force: true });
      say(`removed ${p}`);
    }
  }
  for (const p of [L.prefix, `${L.prefix}.previous`, `${L.prefix}.next`]) {
    if (exists(p)) {
      rmSync(p, { recursive: true, force: true });
      say(`removed ${p}`);
    }
  }
  if (v.purge) {
    for (const p of [L.etc, L.state]) {
      rmSync(p, { recursive: true, force: true });
      say(`removed ${p}`);
    }
  } else say(`kept ${L.etc} and ${L.state} (--purge removes them)`);
  if (!scratch && systemdRunning()) systemctl(['daemon-reload']);
  return 0;
}
