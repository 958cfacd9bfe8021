// The router's counters in a running lab, from init's control API.
import { readLabState } from '../../src/lab/lab.ts';

export async function routerCounters(lab: string): Promise<Record<string, number>> {
  const st = await readLabState(lab);
  if (st === null) throw new Error(`no lab ${lab}`);
  const r = await fetch(`http://127.0.0.1:${st.controlPort}/components`, { signal: AbortSignal.timeout(5000) });
  const body = (await r.json()) as { components: { name: string; counters: Record<string, number> }[] };
  const router = body.components.find((c) => c.name === 'router');
  if (router === undefined) throw new Error('no router in the lab');
  return router.counters;
}
