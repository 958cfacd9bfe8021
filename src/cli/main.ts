// The `microgate` command.
import { runCommand, RUN_HELP } from './run.ts';

const HELP = `Usage: microgate COMMAND [options]

Commands:
  demo                 build a lab, send ping and iperf3 through the gateway, summarise
  run CONFIG           run a gateway from a config file (as root)
  lab up|down|status   build, remove or list labs of network namespaces
  help [COMMAND]       help for a command

Every command takes --help. Exit codes: 0 success, 1 failure, 2 bad usage.`;

type Handler = (argv: string[]) => Promise<number>;

const commands: Record<string, { run: Handler; help: string }> = {
  run: { run: runCommand, help: RUN_HELP },
  lab: {
    run: async (argv) => (await import('../lab/cli.ts')).labCommand(argv),
    help: 'Usage: microgate lab up|down|status [--help]',
  },
  demo: {
    run: async (argv) => (await import('./demo.ts')).demoCommand(argv),
    help: 'Usage: microgate demo [--once] [--help]',
  },
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${HELP}\n`);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'help') {
    const c = rest[0] === undefined ? undefined : commands[rest[0]];
    process.stdout.write(`${c === undefined ? HELP : c.help}\n`);
    return 0;
  }
  const c = commands[cmd];
  if (c === undefined) {
    process.stderr.write(`microgate: unknown command "${cmd}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    return await c.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`microgate ${cmd}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`microgate ${cmd}: ${err.message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`microgate: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  },
);
