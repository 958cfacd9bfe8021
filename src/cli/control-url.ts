// Where a command finds a gateway's control API: a lab's (from its state
// file), an explicit URL, or the default loopback port.
import { readLabState } from '../lab/lab.ts';
import { DEFAULTS } from '../init/config.ts';
import { TraceClientError } from '../trace/client.ts';

export async function controlUrl(lab: string | undefined, control: string | undefined): Promise<string> {
  if (lab !== undefined && control !== undefined) throw Object.assign(new Error('give --lab or --control, not both'), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
  if (lab !== undefined) {
    const st = await readLabState(lab);
    if (st === null) throw new Error(`no lab "${lab}" (see microgate lab status)`);
    if (st.gateway !== 'microgate') throw new Error(`lab "${lab}" runs the Linux reference gateway, not microgate`);
    return `http://127.0.0.1:${st.controlPort}`;
  }
  if (control !== undefined) {
    const u = new URL(control);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) && !u.hostname.startsWith('127.')) {
      throw new Error(`--control must be a loopback URL (got ${control})`);
    }
    return control.replace(/\/+$/, '');
  }
  return `http://${DEFAULTS.controlHost}:${DEFAULTS.controlPort}`;
}

const DEFAULT_CONTROL = `http://${DEFAULTS.controlHost}:${DEFAULTS.controlPort}`;

/** The control API base URL: a lab's (from its state), a URL given, or the config default. */
export async function resolveControl(opts: { lab?: string; control?: string }): Promise<string> {
  if (opts.lab !== undefined && opts.control !== undefined) throw new TraceClientError(0, 'MG_USAGE', 'give --lab or --control, not both');
  if (opts.lab !== undefined) {
    const st = await readLabState(opts.lab);
    if (st === null) throw new TraceClientError(0, 'MG_NO_LAB', `no lab "${opts.lab}" (see microgate lab status)`);
    if (st.gateway !== 'microgate' || !st.controlPort) throw new TraceClientError(0, 'MG_NO_LAB', `lab "${opts.lab}" runs the ${st.gateway} gateway: nothing to trace`);
    return `http://127.0.0.1:${st.controlPort}`;
  }
  const url = opts.control ?? process.env.MICROGATE_CONTROL ?? DEFAULT_CONTROL;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TraceClientError(0, 'MG_USAGE', `--control: not a URL: ${url}`);
  }
  if (u.protocol !== 'http:') throw new TraceClientError(0, 'MG_USAGE', `--control: expected an http:// URL (got ${url})`);
  return url.replace(/\/+$/, '');
}

