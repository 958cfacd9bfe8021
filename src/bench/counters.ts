// Counters read before and after every benchmark run, the same way for both
// gateways where they can be: the hosts' interface counters (frames and bytes
// each end host received: everything a gateway forwarded either way ends up
// received by one of them) and, for microgate, the wake-ups its session rings
// sent and the packets its router forwarded (GET /components on the control
// API). The parsers are pure and exported for the unit tests.
import { nsExec } from '../lab/netns.ts';
import { ControlClient } from '../sys/control-client.ts';

export interface LinkCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

/** `ip -s -j link show` of a namespace: the sums over every interface but loopback. */
export function parseLinkStats(json: string): LinkCounters {
  let links: unknown;
  try {
    links = JSON.parse(json);
  } catch {
    throw new Error(`ip -s -j link printed no JSON: ${json.trim().slice(0, 200)}`);
  }
  if (!Array.isArray(links)) throw new Error('ip -s -j link: expected a JSON array of interfaces');
  const out: LinkCounters = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
  for (const l of links as { ifname?: unknown; link_type?: unknown; stats64?: { rx?: Record<string, unknown>; tx?: Record<string, unknown> } }[]) {
    if (l.link_type === 'loopback' || l.ifname === 'lo') continue;
    const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);
    out.rxPackets += n(l.stats64?.rx?.packets);
    out.rxBytes += n(l.stats64?.rx?.bytes);
    out.txPackets += n(l.stats64?.tx?.packets);
    out.txBytes += n(l.stats64?.tx?.bytes);
  }
  return out;
}

export async function linkCounters(netns: string): Promise<LinkCounters> {
  return parseLinkStats((await nsExec(netns, 'ip', ['-s', '-j', 'link', 'show'], { timeoutMs: 5000 })).stdout);
}

export interface GatewayCounts {
  /** Wake-ups sent by every session end of every component (out.wakeups + in.wakeups). */
  wakeups: number;
  /** Packets the router forwarded (forwarded + forwarded6; NaN without components). */
  forwarded: number;
}

interface ComponentsBody {
  components?: { name?: unknown; counters?: Record<string, unknown>; sessions?: Record<string, Record<string, unknown>> }[];
}

/** GET /components of init's control API, summed. NaN where a number is missing. */
export function parseGatewayCounts(body: unknown): GatewayCounts {
  const cs = (body as ComponentsBody | null)?.components;
  if (!Array.isArray(cs)) throw new Error('GET /components: expected {"components": [...]}');
  // Components report these numbers and may be hostile: only a finite count >= 0 is taken; a lie can
  // distort the wake-up column, never the bench (a counter going backwards gives no value, see delta).
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
  let wakeups = 0;
  let forwarded = 0;
  for (const c of cs) {
    for (const s of Object.values(c.sessions ?? {})) wakeups += n(s['out.wakeups']) + n(s['in.wakeups']);
    // A counter that has not counted yet is absent from the snapshot: 0.
    forwarded += n(c.counters?.forwarded) + n(c.counters?.forwarded6);
  }
  return { wakeups, forwarded: cs.length > 0 ? forwarded : NaN };
}

export async function gatewayCounts(controlSocket: string): Promise<GatewayCounts> {
  return parseGatewayCounts(await new ControlClient({ socket: controlSocket }).get<unknown>('/components', 5000));
}

/** after - before; NaN when a counter went backwards (a component restarted and began at 0). */
export function delta(after: number, before: number): number {
  const d = after - before;
  return Number.isFinite(d) && d >= 0 ? d : NaN;
}

/** What one run's counters and CPU sample give (runner.ts stores them in the run's values). */
export interface CostValues {
  /** Frames and bytes the end hosts received during the run (what the gateway forwarded, both ways). */
  hostPackets: number;
  hostBytes: number;
  /** The gateway's processes (user + system) plus the machine's softirq + irq time, CPU seconds. */
  gatewayCpuS: number;
  cpuPerGB: number;
  cpuPerMpkt: number;
  /** microgate only (NaN for Linux). */
  wakeups: number;
  forwarded: number;
  wakeupsPerPkt: number;
}

export interface CpuForCost {
  seconds: number;
  units: readonly { cpuPct: number }[];
  system: { cpus: number; softirqPct: number };
}

/**
 * The cost columns of a run. CPU = the gateway's own processes (none for the
 * Linux reference) + all softirq / irq time of the machine during the run:
 * Linux forwards in softirq, so that is its whole cost; the same softirq time
 * also holds the end hosts' receive path and anything else on the machine, for
 * both gateways alike (an upper bound of the gateway's part, not a share).
 */
export function costValues(cpu: CpuForCost | undefined, hostsBefore: readonly LinkCounters[], hostsAfter: readonly LinkCounters[],
  gwBefore: GatewayCounts | undefined, gwAfter: GatewayCounts | undefined): CostValues {
  let hostPackets = 0;
  let hostBytes = 0;
  hostsBefore.forEach((b, i) => {
    const a = hostsAfter[i];
    hostPackets += a ? delta(a.rxPackets, b.rxPackets) : NaN;
    hostBytes += a ? delta(a.rxBytes, b.rxBytes) : NaN;
  });
  const gatewayCpuS = cpu === undefined ? NaN
    : (cpu.units.reduce((s, u) => s + u.cpuPct, 0) / 100) * cpu.seconds + (cpu.system.softirqPct / 100) * cpu.system.cpus * cpu.seconds;
  const per = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
  const wakeups = gwBefore && gwAfter ? delta(gwAfter.wakeups, gwBefore.wakeups) : NaN;
  const forwarded = gwBefore && gwAfter ? delta(gwAfter.forwarded, gwBefore.forwarded) : NaN;
  return {
    hostPackets,
    hostBytes,
    gatewayCpuS,
    cpuPerGB: per(gatewayCpuS, hostBytes / 1e9),
    cpuPerMpkt: per(gatewayCpuS, hostPackets / 1e6),
    wakeups,
    forwarded,
    wakeupsPerPkt: per(wakeups, forwarded),
  };
}
