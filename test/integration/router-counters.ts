// The router's counters in a running lab, from init's control API (through the lab's control client).
import { labControl, readLabState } from '../../src/lab/lab.ts';

export async function routerCounters(lab: string): Promise<Record<string, number>> {
  const st = await readLabState(lab);
  if (st === null) throw new Error(`no lab ${lab}`);
  const body = await labControl(st, 5000).get<{ components: { name: string; counters: Record<string, number> }[] }>('/components');
  const router = body.components.find((c) => c.name === 'router');
  if (router === undefined) throw new Error('no router in the lab');
  return router.counters;
}
