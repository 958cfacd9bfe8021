// What a benchmark run measures: the configurations (Linux reference and
// microgate variants), the figures (tests), the labs they need, and the order
// of the runs: repetition by repetition, figure by figure, the configurations
// round-robin (the starting one rotating each repetition), so that whatever
// else the machine does hits every configuration alike.

export type Isolation = 'process' | 'thread' | 'inline';
export type Transport = 'shm' | 'socket';
/** The gateway's links to the hosts: TAP devices, or veth pairs whose gateway ends are packet links (AF_PACKET, device kind packet). */
export type LinkKind = 'tap' | 'packet' | 'packet-recvmmsg';
/** What --tests names; tcp6 is TCP over IPv6 (figures of kind tcp with family 6). */
export type TestKind = 'tcp' | 'tcp6' | 'latency' | 'udp' | 'small' | 'sweep';
/** Tracepoints during the runs: off, aggregates (`--trace on`), events. */
export type TraceLevel = 'off' | 'aggregates' | 'events';

export const ISOLATIONS: readonly Isolation[] = ['process', 'thread', 'inline'];
export const TRANSPORTS: readonly Transport[] = ['shm', 'socket'];
export const LINK_KINDS: readonly LinkKind[] = ['tap', 'packet', 'packet-recvmmsg'];
export const TEST_KINDS: readonly TestKind[] = ['tcp', 'tcp6', 'latency', 'udp', 'small', 'sweep'];
/**
 * A polling budget: microseconds or auto (measured by init at start) for
 * every loop (config scheduling.spin-us), or `drivers:N`: N µs for the
 * nic-drivers' loops only (their components' spin-us), the router sleeping.
 */
export type SpinSetting = number | 'auto' | `drivers:${number}`;

/** The drivers-only budget of a setting, µs, or undefined. */
export function driverSpin(s: SpinSetting | undefined): number | undefined {
  return typeof s === 'string' && s.startsWith('drivers:') ? Number(s.slice(8)) : undefined;
}

/** How a report names a polling budget. */
export function spinLabel(s: SpinSetting): string {
  const d = driverSpin(s);
  return d !== undefined ? `polling ${d} µs (drivers only)` : s === 'auto' ? 'polling auto' : `polling ${s} µs`;
}

/** Slots per session direction of microgate's default config (x1). */
export const BASE_SLOTS = 256;

export interface BenchOptions {
  /** Each list's first value is the base configuration's; the others are variants. */
  isolation: Isolation[];
  transport: Transport[];
  cores: number[];
  /** Session buffer multipliers: 1 = 256 slots per direction, 8 = 2048. */
  slots: number[];
  trace: TraceLevel[];
  /** Polling budgets of microgate's loops (config scheduling.spin-us): microseconds or auto. */
  spin: SpinSetting[];
  /** Connection-state sync: without (false) and with conn-sync (true: the router exports every connection; issue 19). Absent: [false]. */
  sync?: boolean[];
  /** microgate's links to the hosts: TAP devices or packet links on veth pairs. Absent: ['tap']. */
  link?: LinkKind[];
  /** Every combination of the lists instead of one variant at a time. */
  grid: boolean;
  repeat: number;
  /** Seconds per TCP, UDP and latency run. */
  seconds: number;
  /** Seconds per message size of the sweep. */
  sweepSeconds: number;
  /** iperf3 -l sizes of the sweep (TCP lan -> wan). */
  sizes: number[];
  tests: TestKind[];
  /** UDP datagram payload size (the small-packet figure). */
  udpSize: number;
  /** sockperf message size. */
  latencySize: number;
  /** Frame sizes (bytes with FCS) of the small-packet test (RFC 2544 style, trafgen). */
  frames: number[];
  /** Seconds per trial of the small-packet test. */
  trialSeconds: number;
  /** Binary-search trials after the overload trial, per frame size. */
  steps: number;
}

export interface BenchConfig {
  /** Stable id: linux-c2, mg-process-shm-x1-c2, mg-process-shm-x1-c2-trace. */
  id: string;
  /** For tables and charts: "Linux", "microgate process/shm", "microgate process/shm, 1 core". */
  label: string;
  gateway: 'linux' | 'microgate';
  /** microgate only. */
  isolation?: Isolation;
  transport?: Transport;
  /** Buffer multiplier (microgate only). */
  slots?: number;
  /** Polling budget (microgate only). */
  spin?: SpinSetting;
  /** With conn-sync (microgate only). */
  sync?: boolean;
  /** Links to the hosts (microgate only). */
  link?: LinkKind;
  cores: number;
  trace: TraceLevel;
  /** Key of the lab it runs in: configs that differ only in cores or tracing share a lab. */
  lab: string;
}

export interface TestSpec {
  /** tcp-tx, tcp-rx, tcp6-tx, tcp6-rx, latency, udp-tx, udp-rx, small-64, sweep-1024 */
  id: string;
  kind: Exclude<TestKind, 'tcp6'>;
  /** IP version between the hosts: 6 for tcp6 (routed by both gateways, no NAT66), else 4 (lan masqueraded). */
  family: 4 | 6;
  /** tx: lan -> wan (the lan host sends through the gateway); rx: wan -> lan (iperf3 -R). */
  direction: 'tx' | 'rx';
  /** iperf3 -l, sockperf -m, or the frame size of a small-packet test. */
  size?: number;
  /** Seconds of one measurement (of one trial for small-packet tests). */
  seconds: number;
  /** small: search trials after the overload trial (the run takes seconds x (1 + steps)). */
  steps?: number;
  title: string;
}

export interface Plan {
  configs: BenchConfig[];
  /** The microgate configuration tx_ratio / rx_ratio refer to. */
  base: string;
  tests: TestSpec[];
  /** Labs to build: key -> what. */
  labs: Map<string, { gateway: 'linux' | 'microgate'; isolation?: Isolation; transport?: Transport; slots?: number; spin?: SpinSetting; sync?: boolean; link?: LinkKind }>;
  runs: { rep: number; test: TestSpec; config: BenchConfig }[];
}

function labKey(c: Pick<BenchConfig, 'gateway' | 'isolation' | 'transport' | 'slots' | 'spin' | 'sync' | 'link'>): string {
  return c.gateway === 'linux' ? 'linux' : `mg-${c.isolation}-${c.transport}-x${c.slots}${spinSuffix(c.spin)}${c.sync === true ? '-sync' : ''}${linkSuffix(c.link)}`;
}

/** Id part of the link kind: none for TAP (the configurations of earlier runs keep their ids). */
function linkSuffix(l: LinkKind | undefined): string {
  return l === undefined || l === 'tap' ? '' : `-${l}`;
}

/** Id part of a polling budget: none for 0 (the configurations of earlier runs keep their ids). */
function spinSuffix(s: SpinSetting | undefined): string {
  const d = driverSpin(s);
  return s === undefined || s === 0 ? '' : d !== undefined ? `-spindrv${d}` : `-spin${s}`;
}

interface Variant {
  isolation: Isolation;
  transport: Transport;
  slots: number;
  spin: SpinSetting;
  sync: boolean;
  link: LinkKind;
  cores: number;
  trace: TraceLevel;
}

function microgateConfig(v: Variant, maxCores: number): BenchConfig {
  const extra: string[] = [];
  if (v.slots !== 1) extra.push(`x${v.slots} buffers`);
  if (v.spin !== 0) extra.push(spinLabel(v.spin));
  if (v.sync) extra.push('conn-sync');
  if (v.link !== 'tap') extra.push(`${v.link} links`);
  if (v.cores !== maxCores) extra.push(`${v.cores} core${v.cores === 1 ? '' : 's'}`);
  if (v.trace !== 'off') extra.push(v.trace === 'events' ? 'traced (events)' : 'traced');
  const c: BenchConfig = {
    id: `mg-${v.isolation}-${v.transport}-x${v.slots}${spinSuffix(v.spin)}${v.sync ? '-sync' : ''}${linkSuffix(v.link)}-c${v.cores}${v.trace === 'off' ? '' : v.trace === 'events' ? '-events' : '-trace'}`,
    label: `microgate ${v.isolation}/${v.transport}${extra.length ? `, ${extra.join(', ')}` : ''}`,
    gateway: 'microgate',
    isolation: v.isolation,
    transport: v.transport,
    slots: v.slots,
    spin: v.spin,
    sync: v.sync,
    link: v.link,
    cores: v.cores,
    trace: v.trace,
    lab: '',
  };
  c.lab = labKey(c);
  return c;
}

function linuxConfig(cores: number, maxCores: number): BenchConfig {
  return {
    id: `linux-c${cores}`,
    label: cores === maxCores ? 'Linux' : `Linux, ${cores} core${cores === 1 ? '' : 's'}`,
    gateway: 'linux',
    cores,
    trace: 'off',
    lab: 'linux',
  };
}

/** The microgate variants: the base (first of each list) and one change at a time, or the full grid. */
export function variants(o: BenchOptions): Variant[] {
  const base: Variant = { isolation: o.isolation[0], transport: o.transport[0], slots: o.slots[0], spin: o.spin[0], sync: o.sync?.[0] ?? false, link: o.link?.[0] ?? 'tap', cores: o.cores[0], trace: o.trace[0] };
  const out: Variant[] = [];
  const seen = new Set<string>();
  const add = (v: Variant): void => {
    const k = JSON.stringify(v);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(v);
    }
  };
  if (o.grid) {
    for (const isolation of o.isolation)
      for (const transport of o.transport)
        for (const slots of o.slots)
          for (const spin of o.spin)
            for (const sync of o.sync ?? [false])
              for (const link of o.link ?? ['tap'] as const)
                for (const cores of o.cores)
                  for (const trace of o.trace) add({ isolation, transport, slots, spin, sync, link, cores, trace });
    return out;
  }
  add(base);
  for (const isolation of o.isolation) add({ ...base, isolation });
  for (const transport of o.transport) add({ ...base, transport });
  for (const slots of o.slots) add({ ...base, slots });
  for (const spin of o.spin) add({ ...base, spin });
  for (const sync of o.sync ?? [false]) add({ ...base, sync });
  for (const link of o.link ?? ['tap'] as const) add({ ...base, link });
  for (const cores of o.cores) add({ ...base, cores });
  for (const trace of o.trace) add({ ...base, trace });
  return out;
}

export function tests(o: BenchOptions): TestSpec[] {
  const out: TestSpec[] = [];
  const s = o.seconds;
  for (const kind of o.tests) {
    if (kind === 'tcp') {
      out.push({ id: 'tcp-tx', kind, family: 4, direction: 'tx', seconds: s, title: 'TCP send, lan -> wan (iperf3)' });
      out.push({ id: 'tcp-rx', kind, family: 4, direction: 'rx', seconds: s, title: 'TCP receive, wan -> lan (iperf3 -R)' });
    } else if (kind === 'tcp6') {
      out.push({ id: 'tcp6-tx', kind: 'tcp', family: 6, direction: 'tx', seconds: s, title: 'TCP over IPv6 send, lan -> wan (iperf3, routed)' });
      out.push({ id: 'tcp6-rx', kind: 'tcp', family: 6, direction: 'rx', seconds: s, title: 'TCP over IPv6 receive, wan -> lan (iperf3 -R, routed)' });
    } else if (kind === 'latency') {
      out.push({ id: 'latency', kind, family: 4, direction: 'tx', size: o.latencySize, seconds: s, title: `TCP ping-pong round trip, ${o.latencySize} B (sockperf)` });
    } else if (kind === 'udp') {
      out.push({ id: 'udp-tx', kind, family: 4, direction: 'tx', size: o.udpSize, seconds: s, title: `UDP ${o.udpSize} B datagrams, lan -> wan (iperf3 -u -b 0)` });
      out.push({ id: 'udp-rx', kind, family: 4, direction: 'rx', size: o.udpSize, seconds: s, title: `UDP ${o.udpSize} B datagrams, wan -> lan (iperf3 -u -b 0 -R)` });
    } else if (kind === 'small') {
      for (const size of o.frames) {
        out.push({ id: `small-${size}`, kind, family: 4, direction: 'tx', size, seconds: o.trialSeconds, steps: o.steps,
          title: `${size}-byte frames, lan -> wan: highest rate with < 0.1 % loss and delivered at overload (trafgen, RFC 2544 style)` });
      }
    } else {
      for (const size of o.sizes) {
        out.push({ id: `sweep-${size}`, kind, family: 4, direction: 'tx', size, seconds: o.sweepSeconds, title: `TCP send with ${size} B writes (iperf3 -l ${size})` });
      }
    }
  }
  return out;
}

export function makePlan(o: BenchOptions, maxCores: number): Plan {
  const vs = variants(o);
  const mg = vs.map((v) => microgateConfig(v, maxCores));
  const coresUsed = [...new Set(vs.map((v) => v.cores))];
  // One Linux reference per core count microgate runs with, in the order of --cores.
  const linux = o.cores.filter((c) => coresUsed.includes(c)).map((c) => linuxConfig(c, maxCores));
  const configs = [...linux, ...mg];
  const labs: Plan['labs'] = new Map();
  for (const c of configs) {
    if (!labs.has(c.lab)) {
      labs.set(c.lab, c.gateway === 'linux' ? { gateway: 'linux' } : { gateway: 'microgate', isolation: c.isolation, transport: c.transport, slots: c.slots, spin: c.spin, sync: c.sync, link: c.link });
    }
  }
  const ts = tests(o);
  const runs: Plan['runs'] = [];
  for (let rep = 1; rep <= o.repeat; rep++) {
    for (const test of ts) {
      const k = (rep - 1) % configs.length;
      for (const config of [...configs.slice(k), ...configs.slice(0, k)]) runs.push({ rep, test, config });
    }
  }
  return { configs, base: mg[0].id, tests: ts, labs, runs };
}

/** Seconds a run is expected to take beyond its measuring time (servers, connection, teardown). */
export const RUN_OVERHEAD_S = 0.8;

/** Seconds of measuring in one run of a test (a small-packet test runs 1 + steps trials). */
export function testSeconds(t: TestSpec): number {
  return t.kind === 'small' ? t.seconds * (1 + (t.steps ?? 0)) : t.seconds;
}

export function plannedSeconds(plan: Plan): number {
  return plan.runs.reduce((s, r) => s + testSeconds(r.test) + RUN_OVERHEAD_S, 0);
}
