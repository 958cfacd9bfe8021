// init's last line of defence: an error nothing else caught (an uncaught
// exception, an unhandled rejection). Every message a component sends is
// checked (host-messages.ts) and every reader is bounded, so reaching this is
// a bug in init itself, and init cannot tell whether its state (which process
// holds which session, what is restarting) is still consistent. It does not
// guess: it logs the error, stops every component and service (bounded in
// time), and exits with EXIT_INIT_FAILED, so a supervisor (systemd,
// contrib/systemd/microgate.service, Restart=on-failure) starts the whole
// gateway again from its config. Until then nothing forwards: fail closed.
// Components and services die with init even when the stop cannot run
// (SIGKILL of init): setpriv's pdeathsig (sandbox.ts).
import { escapeText } from './host-messages.ts';

/** init's exit code after an unexpected error of its own (EX_SOFTWARE). */
export const EXIT_INIT_FAILED = 70;
/** The longest init waits for its components and services to stop before exiting anyway. */
const STOP_WITHIN_MS = 4000;

export function installCrashHandlers(stop: () => Promise<void>, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  let failing = false;
  const fail = (what: string, e: unknown): void => {
    const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
    log(`init: FATAL: ${what}: ${escapeText(text, 4000)}`);
    if (failing) return;
    failing = true;
    log(`init: stopping every component and service, then exiting with ${EXIT_INIT_FAILED} (a supervisor restarts the gateway)`);
    const timer = setTimeout(() => process.exit(EXIT_INIT_FAILED), STOP_WITHIN_MS);
    timer.unref();
    stop().catch(() => undefined).finally(() => process.exit(EXIT_INIT_FAILED));
  };
  process.on('uncaughtException', (e) => fail('uncaught exception', e));
  process.on('unhandledRejection', (e) => fail('unhandled promise rejection', e));
}
