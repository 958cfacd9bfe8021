// Where a command finds a gateway's control API, for every command: a lab's
// (`--lab NAME`: /run/microgate/labs/NAME/control/control.sock, from its state file),
// `--control SOCKET|URL`, else $MICROGATE_CONTROL, else the default socket of
// `microgate run` (docs/CONFIG.md, control.socket). A loopback http:// URL
// (a gateway configured with control.listen) takes its bearer token from the
// file named by $MICROGATE_CONTROL_TOKEN_FILE.
import { readFileSync } from 'node:fs';
import { readLabState } from '../lab/lab.ts';
import { DEFAULTS } from '../init/config.ts';
import { ControlClient, ControlError, parseControlTarget } from '../sys/control-client.ts';
import type { ControlTarget } from '../sys/control-client.ts';

/** What every command that talks to a gateway says about --lab and --control in its help. */
export const CONTROL_HELP = `  --lab NAME         the gateway of lab NAME (its socket /run/microgate/labs/NAME/control/control.sock)
  --control TARGET   a control socket path, or a loopback http:// URL (token from $MICROGATE_CONTROL_TOKEN_FILE)
                     default: $MICROGATE_CONTROL, else ${DEFAULTS.controlSocket}`;

/** The control API's target: a lab's socket, the one given, $MICROGATE_CONTROL, or the default socket. */
export async function resolveControl(opts: { lab?: string; control?: string }): Promise<ControlTarget> {
  if (opts.lab !== undefined && opts.control !== undefined) throw new ControlError(0, 'MG_USAGE', 'give --lab or --control, not both');
  if (opts.lab !== undefined) {
    const st = await readLabState(opts.lab);
    if (st === null) throw new ControlError(0, 'MG_NO_LAB', `no lab "${opts.lab}" (see microgate lab status; lab state is readable by root only)`);
    if (st.gateway !== 'microgate' || st.controlSocket === undefined) throw new ControlError(0, 'MG_NO_LAB', `lab "${opts.lab}" runs the ${st.gateway} gateway, which has no control API`);
    return { socket: st.controlSocket };
  }
  const given = opts.control ?? process.env.MICROGATE_CONTROL ?? DEFAULTS.controlSocket;
  const t = parseControlTarget(given);
  if ('url' in t) {
    const file = process.env.MICROGATE_CONTROL_TOKEN_FILE;
    if (file !== undefined) {
      let token: string;
      try {
        token = readFileSync(file, 'utf8').trim();
      } catch (e) {
        throw new ControlError(0, 'MG_USAGE', `MICROGATE_CONTROL_TOKEN_FILE ${file}: ${(e as Error).message}`);
      }
      return { url: t.url, token };
    }
  }
  return t;
}

/** A client of the control API chosen by --lab / --control (see resolveControl). */
export async function controlClient(opts: { lab?: string; control?: string }, timeoutMs?: number): Promise<ControlClient> {
  return new ControlClient(await resolveControl(opts), timeoutMs);
}
