// The systemd unit `microgate install` writes: init as a service with
// restart, the usual hardening that init's work allows, and the standard
// directories (/etc/microgate, /var/lib/microgate, /run/microgate) made by
// systemd. init runs as root because it creates devices, namespaces, cgroups
// and seccomp-sandboxed components under their own uids; the hardening here
// takes away what it never needs (home folders, kernel modules, realtime,
// SUID, personality changes, writing most of the file system).

export interface UnitPaths {
  /** Where the program is installed (the copied checkout). */
  prefix: string;
  /** The gateway config file. */
  config: string;
}

/** The unit file's text. */
export function serviceUnit(p: UnitPaths): string {
  return `# microgate secure network gateway, written by \`microgate install\`.
# init runs as root, starts every component sandboxed under its own uid and
# supervises it. If init fails (exit 70) or is killed, its components die with
# it (setpriv --pdeathsig) and systemd starts the whole gateway again; while it
# is down nothing forwards (fail closed). A bad config (exit 2) is not retried.
# Logs: the journal (journalctl -u microgate), with priorities.
[Unit]
Description=microgate secure network gateway (init and its sandboxed components)
Documentation=file://${p.prefix}/README.md file://${p.prefix}/docs/DEPLOY.md
After=network-pre.target
Wants=network-pre.target
ConditionPathExists=${p.config}
# Crash loops do not spin: at most 5 starts in 60 s, then the unit fails (and stays down: fail closed).
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
WorkingDirectory=${p.prefix}
ExecStartPre=${p.prefix}/bin/microgate check ${p.config}
ExecStart=${p.prefix}/bin/microgate run ${p.config}
ExecReload=/bin/kill -HUP $MAINPID
# init stops its components on SIGTERM (stop message, SIGKILL after 2 s).
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=1
RestartPreventExitStatus=2
# /run/microgate (control socket), /var/lib/microgate (state), /etc/microgate (config).
RuntimeDirectory=microgate
RuntimeDirectoryMode=0755
StateDirectory=microgate
StateDirectoryMode=0750
ConfigurationDirectory=microgate
ConfigurationDirectoryMode=0750
# Hardening: what init never needs.
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
SystemCallArchitectures=native
UMask=0027
# Components get their own limits (memory cgroups, seccomp) from init.
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}
