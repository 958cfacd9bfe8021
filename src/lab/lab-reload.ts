// `microgate reload --lab NAME`: a microgate lab's init re-reads gateway.yaml
// (POST /reload on its control API, the same as SIGHUP); a Linux lab re-reads
// router.yaml and loads the translated nftables ruleset. Both fail closed.
import type { ReloadResult } from '../init/reload.ts';
import { ControlClient } from '../sys/control-client.ts';
import { labControl, readLabState } from './lab.ts';
import { reloadLinuxGateway } from './linux-gateway.ts';

/** POST /reload {} to a control API. Throws a ControlError when no gateway answers. */
export async function reloadControl(control: ControlClient): Promise<ReloadResult> {
  const r = await control.request('POST', '/reload', {}, { timeoutMs: 15_000 });
  let body: Partial<ReloadResult> & { error?: { message: string } };
  try {
    body = JSON.parse(r.body.toString('utf8')) as typeof body;
  } catch {
    return { ok: false, changed: [], message: `the gateway on ${control.where} answered HTTP ${r.status} without JSON` };
  }
  if (body.error !== undefined) return { ok: false, changed: [], message: body.error.message };
  return { ok: body.ok === true, changed: body.changed ?? [], message: body.message ?? `HTTP ${r.status}` };
}

export async function labReload(name: string): Promise<ReloadResult> {
  const st = await readLabState(name);
  if (st === null) throw new Error(`no lab "${name}" (see microgate lab status; lab state is readable by root only)`);
  if (st.gateway === 'linux') {
    try {
      return { ok: true, changed: ['nftables'], message: await reloadLinuxGateway(st.plan) };
    } catch (e) {
      return { ok: false, changed: [], message: `nothing changed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return reloadControl(labControl(st));
}
