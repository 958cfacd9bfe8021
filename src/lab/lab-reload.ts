// `microgate reload --lab NAME`: a microgate lab's init re-reads gateway.yaml
// (POST /reload on its control API, the same as SIGHUP); a Linux lab re-reads
// router.yaml and loads the translated nftables ruleset. Both fail closed.
import type { ReloadResult } from '../init/reload.ts';
import { readLabState } from './lab.ts';
import { reloadLinuxGateway } from './linux-gateway.ts';

/** POST /reload to a control API at `base` (http://127.0.0.1:PORT). */
export async function reloadControl(base: string): Promise<ReloadResult> {
  const r = await fetch(`${base}/reload`, { method: 'POST', headers: { 'x-microgate': 'reload' }, signal: AbortSignal.timeout(15_000) });
  const body = (await r.json()) as Partial<ReloadResult> & { error?: { message: string } };
  if (body.error !== undefined) return { ok: false, changed: [], message: body.error.message };
  return { ok: body.ok === true, changed: body.changed ?? [], message: body.message ?? `HTTP ${r.status}` };
}

export async function labReload(name: string): Promise<ReloadResult> {
  const st = await readLabState(name);
  if (st === null) throw new Error(`no lab "${name}" (see microgate lab status)`);
  if (st.gateway === 'linux') {
    try {
      return { ok: true, changed: ['nftables'], message: await reloadLinuxGateway(st.plan) };
    } catch (e) {
      return { ok: false, changed: [], message: `nothing changed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return reloadControl(`http://127.0.0.1:${st.controlPort}`);
}
