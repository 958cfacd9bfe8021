// Accounting for frames replayed into a lab (hostile.test.ts, fragments.test.ts):
// the components' counters and restarts from init's control API, and what
// counts as the fate of a frame the router read, so a test can check that
// every frame the driver passed on was forwarded, answered, queued, held or
// dropped with a reason.
import assert from 'node:assert/strict';
import { labControl, readLabState } from '../../src/lab/lab.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';

/**
 * Everything the router counts as the fate of a frame it read. IPv6
 * (microgate labs have it on): forwarded6, held as a fragment (frag6.held:
 * its datagram leaves as forwarded6 per fragment), waiting for a neighbor,
 * ND consumed or answered, echo answered.
 */
export const OUTCOMES = /^(drop\.[a-z0-9-]+|forwarded|frag\.held|forwarded6|frag6\.held|arp\.queued|arp\.learned|arp\.refreshed|arp\.reply-sent|icmp\.echo-reply-sent|dhcp\.[a-z]+|nd6\.queued|nd6\.(ns|na|rs)-received|icmp6\.echo-reply-sent)$/;

export interface Report { name: string; counters: Record<string, number>; status: Record<string, unknown> }

async function control(lab: string): Promise<ControlClient> {
  const st = await readLabState(lab);
  assert.ok(st);
  return labControl(st, 5000);
}

/** Every component's report (counters, status), by name. */
export async function components(lab: string): Promise<Map<string, Report>> {
  const body = await (await control(lab)).get<{ components: Report[] }>('/components');
  return new Map(body.components.map((c) => [c.name, c]));
}

/** Restarts per component (-1: not running). */
export async function restarts(lab: string): Promise<Record<string, number>> {
  const st = await (await control(lab)).get<{ components: { name: string; restarts: number; state: string }[] }>('/status');
  return Object.fromEntries(st.components.map((c) => [c.name, c.state === 'running' ? c.restarts : -1]));
}

/** The growth from b to a of the counters pick() chooses. */
export function delta(a: Record<string, number>, b: Record<string, number>, pick: (k: string) => boolean): number {
  let n = 0;
  for (const [k, v] of Object.entries(a)) if (pick(k)) n += v - (b[k] ?? 0);
  return n;
}

/** Poll until the router's counters stop moving (everything sent has been handled). */
export async function settled(lab: string): Promise<Map<string, Report>> {
  let prev = '';
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const c = await components(lab);
    const key = JSON.stringify(c.get('router')?.counters);
    if (key === prev) return c;
    prev = key;
  }
  return components(lab);
}

/**
 * What a replay did to a lab, between two settled() snapshots: frames the
 * wan driver read and dropped, what reached the router on wan, frames it
 * received in all and the outcomes it counted, the drop reasons that grew.
 */
export function replayAccount(before: Map<string, Report>, after: Map<string, Report>, driver = 'drv-wan', domain = 'wan') {
  const da = after.get(driver)!.counters;
  const db = before.get(driver)!.counters;
  const ra = after.get('router')!.counters;
  const rb = before.get('router')!.counters;
  return {
    driverRead: delta(da, db, (k) => k === 'rx.frames'),
    driverDropped: delta(da, db, (k) => k.startsWith('drop.')),
    routerRxDomain: delta(ra, rb, (k) => k === `rx.${domain}`),
    routerRx: delta(ra, rb, (k) => k.startsWith('rx.')),
    outcomes: delta(ra, rb, (k) => OUTCOMES.test(k)),
    reasons: Object.keys(ra).filter((k) => /^drop\./.test(k) && ra[k] > (rb[k] ?? 0)),
    grew: (k: string): number => (ra[k] ?? 0) - (rb[k] ?? 0),
  };
}
