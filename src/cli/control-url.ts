// Where a command finds a gateway's control API: a lab's (from its state
// file), an explicit URL, or the default loopback port.
import { readLabState } from '../lab/lab.ts';
import { DEFAULTS } from '../core/config.ts';

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
