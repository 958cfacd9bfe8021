// The `microgate` command.
// Every command module is loaded only when used (run.ts pulls in init and every component type:
// parsing them cost every other command ~1 s of start-up on a loaded machine).

const HELP = `Usage: microgate COMMAND [options]

Commands:
  demo                 build a lab, send ping and iperf3 through the gateway, summarise
  run CONFIG           run a gateway from a config file (as root)
  check CONFIG         validate a config file as run would, start nothing
  install|uninstall    install as a systemd service (/opt/microgate, /etc/microgate, /var/lib/microgate)
  lab up|down|status   build, remove or list labs of network namespaces
  keys generate|pubkey|genpsk   WireGuard keys, in the format of wg genkey / wg pubkey / wg genpsk
  tunnel status        the tunnel's peers, handshakes and transfer, like wg show
  tunnel-bench         throughput through microgate's tunnel vs wireguard-go <-> wireguard-go, same lab
  status               a running gateway: ready, its components' and services' states, restarts, last exits
  reload               re-read a running gateway's config and apply it (fail closed)
  conntrack            the routers' connections: states, timeouts, NAT mappings
  leases               the routers' DHCP leases
  drops                dropped packets by reason and domain
  metrics              the gateway's metrics in the Prometheus text format (docs/METRICS.md)
  dashboard            the gateway's live dashboard in a browser on this machine
  policy               the routers' policy in force, with rule hits
  ha                   an HA pair: status (role, sync link, last takeover), role master|backup, check
  trace start|stop|report|export|...   profile a running gateway (tracepoints, Table-1 reports, Perfetto, pcapng)
  audit                check every component's privileges against its config
  probe                try from inside a component's sandbox what an intruder would; all must be stopped
  fault                make one component fail (throw, allocate, hang, forbidden-call, escape-link) to test fault isolation
  soak --minutes N     mixed traffic and component kills in a lab, then leak and loss checks
  bench                microgate against Linux side by side: throughput, latency, charts
  monitor              the IDS engine offline over a pcap (like suricata -r), suricata-verify runner
  monitor-bench        IDS inspection rate with ET Open rules; forwarding with the monitor on vs off
  pcre-bench           the IDS's regex engines (V8 vs RE2) on the ET Open / suricata-verify pcre options
  hash-bench           conntrack lookups under a hash-flooding attack: chosen vs random keys, old vs keyed hash
  alerts               the monitor's EVE alerts from a running gateway (--follow)
  users                the file gateway's accounts: add, passwd, remove, list
  publish              the files the file gateway serves: add PATH, list, remove ID
  file-gateway         run the file gateway (serve), its sandboxed command line, its benchmark
  help [COMMAND]       help for a command

Every command takes --help. Exit codes: 0 success, 1 failure, 2 bad usage.`;

type Handler = (argv: string[]) => Promise<number>;

const commands: Record<string, { run: Handler; help: string }> = {
  run: {
    run: async (argv) => (await import('./run.ts')).runCommand(argv),
    help: 'Usage: microgate run CONFIG [--control-socket PATH] [--pid-file FILE] [--log FILE] [--start-timeout-s N]  (see --help)',
  },
  check: {
    run: async (argv) => (await import('./install.ts')).checkCommand(argv),
    help: 'Usage: microgate check CONFIG',
  },
  install: {
    run: async (argv) => (await import('./install.ts')).installCommand(argv),
    help: 'Usage: microgate install [--config FILE] [--prefix DIR] [--root DIR] [--now]  (see --help)',
  },
  uninstall: {
    run: async (argv) => (await import('./install.ts')).uninstallCommand(argv),
    help: 'Usage: microgate uninstall [--prefix DIR] [--root DIR] [--purge]',
  },
  lab: {
    run: async (argv) => (await import('../lab/cli.ts')).labCommand(argv),
    help: 'Usage: microgate lab up|down|status [--help]',
  },
  keys: {
    run: async (argv) => (await import('./keys.ts')).keysCommand(argv),
    help: 'Usage: microgate keys generate|pubkey|genpsk',
  },
  tunnel: {
    run: async (argv) => (await import('./tunnel.ts')).tunnelCommand(argv),
    help: 'Usage: microgate tunnel status [--lab NAME | --control URL] [--json]',
  },
  'tunnel-bench': {
    run: async (argv) => (await import('../bench/tunnel-bench.ts')).tunnelBenchCommand(argv),
    help: 'Usage: microgate tunnel-bench [--seconds N] [--rounds N] [--name LAB] [--json]',
  },
  soak: {
    run: async (argv) => (await import('./soak.ts')).soakCommand(argv),
    help: 'Usage: microgate soak --minutes N [--kill-every S] [--name NAME] [--json]  (see --help)',
  },
  status: {
    run: async (argv) => (await import('./status.ts')).statusCommand(argv),
    help: 'Usage: microgate status [--lab NAME | --control URL] [--json]',
  },
  audit: {
    run: async (argv) => (await import('./audit.ts')).auditCommand(argv),
    help: 'Usage: microgate audit [--lab NAME | --control URL] [--json]',
  },
  probe: {
    run: async (argv) => (await import('./probe.ts')).probeCommand(argv),
    help: 'Usage: microgate probe [--profile component|service|all] [--stage loaded|allow-list|all] [--uid UID] [--json]  (see --help)',
  },
  fault: {
    run: async (argv) => (await import('./fault.ts')).faultCommand(argv),
    help: 'Usage: microgate fault --component NAME --kind throw|allocate|hang|forbidden-call|escape-link [--lab NAME | --control URL] [--json]  (see --help)',
  },
  bench: {
    run: async (argv) => (await import('./bench.ts')).benchCommand(argv),
    help: 'Usage: microgate bench [--quick] [--isolation LIST] [--transport LIST] [--cores LIST] [--slots LIST] [--trace LIST] [--out DIR] [--json] [--help]',
  },
  trace: {
    run: async (argv) => (await import('./trace.ts')).traceCommand(argv),
    help: 'Usage: microgate trace start|stop|status|report|export|counters|mode|bench [--lab NAME | --control URL] [--help]',
  },
  reload: {
    run: async (argv) => (await import('./policy.ts')).reloadCommand(argv),
    help: 'Usage: microgate reload [--lab NAME | --control URL] [--json]',
  },
  conntrack: {
    run: async (argv) => (await import('./policy.ts')).conntrackCommand(argv),
    help: 'Usage: microgate conntrack [--lab NAME | --control URL] [--json]',
  },
  leases: {
    run: async (argv) => (await import('./policy.ts')).leasesCommand(argv),
    help: 'Usage: microgate leases [--lab NAME | --control URL] [--json]',
  },
  drops: {
    run: async (argv) => (await import('./policy.ts')).dropsCommand(argv),
    help: 'Usage: microgate drops [--lab NAME | --control URL] [--json]',
  },
  metrics: {
    run: async (argv) => (await import('./metrics.ts')).metricsCommand(argv),
    help: 'Usage: microgate metrics [--lab NAME | --control URL]',
  },
  dashboard: {
    run: async (argv) => (await import('./dashboard.ts')).dashboardCommand(argv),
    help: 'Usage: microgate dashboard [--lab NAME | --control URL] [--port N] [--interval MS]',
  },
  ha: {
    run: async (argv) => (await import('./ha.ts')).haCommand(argv),
    help: 'Usage: microgate ha status|role master|backup [--force]|check [--lab NAME | --control URL] [--json]  (see --help)',
  },
  policy: {
    run: async (argv) => (await import('./policy.ts')).policyCommand(argv),
    help: 'Usage: microgate policy [--lab NAME | --control URL] [--json]',
  },
  monitor: {
    run: async (argv) => (await import('./monitor.ts')).monitorCommand(argv),
    help: 'Usage: microgate monitor --pcap FILE [--rules FILE]... [--eve OUT] | --verify DIR  (see --help)',
  },
  'pcre-bench': {
    run: async (argv) => (await import('../bench/pcre-bench.ts')).pcreBenchCommand(argv),
    help: 'Usage: microgate pcre-bench [--rounds N] [--json]',
  },
  'monitor-bench': {
    run: async (argv) => (await import('../bench/monitor-bench.ts')).monitorBenchCommand(argv),
    help: 'Usage: microgate monitor-bench [--rules FILE]... [--pcap FILE]... [--seconds N] [--rounds N] [--no-forwarding] [--monitor-nice N] [--json]',
  },
  'hash-bench': {
    run: async (argv) => (await import('../bench/hash-bench.ts')).hashBenchCommand(argv),
    help: 'Usage: microgate hash-bench [--connections N] [--probes N] [--rounds N] [--json]',
  },
  alerts: {
    run: async (argv) => (await import('./monitor.ts')).alertsCommand(argv),
    help: 'Usage: microgate alerts [--lab NAME | --control URL] [--follow] [--all]',
  },
  users: {
    run: async (argv) => (await import('./file-gateway.ts')).usersCommand(argv),
    help: 'Usage: microgate users add|passwd|remove|list [NAME] [--config FILE | --lab NAME]  (see --help)',
  },
  publish: {
    run: async (argv) => (await import('./file-gateway.ts')).publishCommand(argv),
    help: 'Usage: microgate publish add PATH [--users a,b] [--expires 7d] [--once] [--public-link] | list | remove ID  (see --help)',
  },
  'file-gateway': {
    run: async (argv) => (await import('./file-gateway.ts')).fileGatewayCommand(argv),
    help: 'Usage: microgate file-gateway serve|command|bench  (see --help)',
  },
  demo: {
    run: async (argv) => (await import('./demo.ts')).demoCommand(argv),
    help: 'Usage: microgate demo [--once] [--help]',
  },
};

/** Run one command line (without "microgate"); resolves with its exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
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
    if (err.code === 'MG_USAGE' || err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`microgate ${cmd}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`microgate ${cmd}: ${err.message}\n`);
    return 1;
  }
}

// Run when started as the program (bin/microgate, node src/cli/main.ts); tests import main().
if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`microgate: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
