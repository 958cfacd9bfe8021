// The file gateway's process: `node main.ts --config FILE`. Started
// sandboxed (launch.ts: own uid, no capabilities, no_new_privs, Node's
// permission model reading only the code, its config and data and writing
// only its state folder) inside the dmz network namespace, whose kernel
// TCP/IP stack it serves on. First thing: PR_SET_DUMPABLE 0 (no process of
// its uid can read its memory through /proc/PID/mem), then the seccomp allow-list of the
// `service` profile (src/sys/seccomp.ts): no execve/fork, no ptrace, mount,
// setuid and the like, sockets of the Internet and Unix families only.
// `microgate file-gateway serve --config FILE` runs the same thing in the
// caller's process (for a service manager that sandboxes it itself).
import { parseArgs } from 'node:util';
import { loadFileGatewayConfig } from './config.ts';
import { startService } from './service.ts';

export async function serve(configFile: string, opts: { seccomp: boolean }): Promise<void> {
  // Before any input: no process of its uid may read its memory (sessions, the NAS password) or trace it.
  const { setNotDumpable } = await import('../../sys/libc.ts');
  setNotDumpable();
  if (opts.seccomp) {
    const { installAllowList } = await import('../../sys/seccomp.ts');
    installAllowList('service');
  }
  const cfg = loadFileGatewayConfig(configFile);
  const log = (m: string): void => { process.stdout.write(`${new Date().toISOString()} ${m}\n`); };
  const svc = await startService(cfg, { log });
  log(`file-gateway: listening on https ${svc.address.host}:${svc.address.port}` +
    (svc.redirectAddress === undefined ? '' : `, redirect http ${svc.redirectAddress.host}:${svc.redirectAddress.port}`) +
    ` (uid ${process.getuid?.()}, storage ${cfg.storage.kind}, seccomp ${opts.seccomp ? 'on' : 'off'})`);
  const stop = (sig: string): void => {
    log(`file-gateway: ${sig}, stopping`);
    const t = setTimeout(() => process.exit(0), 3000);
    t.unref();
    void svc.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
  if (values.config === undefined) {
    process.stderr.write('usage: main.ts --config FILE\n');
    process.exit(2);
  }
  serve(values.config, { seccomp: process.env.MG_NO_SECCOMP !== '1' }).catch((e: unknown) => {
    process.stderr.write(`file-gateway: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
