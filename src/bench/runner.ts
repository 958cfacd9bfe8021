// Runs a plan: builds every lab once (the Linux reference and one microgate lab
// per isolation / transport / buffer variant), then goes through the runs in
// the plan's round-robin order. Before each run it places the CPUs (see
// affinity.ts), samples the gateway's CPU from /proc during it, and sets the
// gateway's tracepoints to the configuration's mode (keeping the report of
// traced runs). A failed run is recorded with its
// error and the benchmark goes on; the labs are always removed at the end.
import { randomBytes } from 'node:crypto';
import { labDown, labUp, readLabState, type LabInfo } from '../lab/lab.ts';
import { cpuListFor, gatewayUnits, pinProcess } from './affinity.ts';
import { costValues, type CostValues, type CpuForCost, gatewayCounts, linkCounters, type GatewayCounts, type LinkCounters } from './counters.ts';
import { BASE_SLOTS, RUN_OVERHEAD_S, driverSpin, spinLabel, testSeconds, type BenchConfig, type Plan, type SpinSetting, type TestSpec } from './plan.ts';
import { sampleCpu } from './procstat.ts';
import { smallPackets, type SmallOptions } from './small.ts';
import type { Progress } from './progress.ts';
import type { RunRecord } from './results.ts';
import { iperf3Tcp, iperf3Udp, killServers, sockperfPingPong, type Endpoints } from './tools.ts';
import { setTraceMode, traceReport, type TraceSummary } from './trace.ts';

export interface Lab {
  key: string;
  name: string;
  info: LabInfo;
  controlSocket: string;
}

export interface RunOutput {
  runs: RunRecord[];
  /** The labs built: plan key -> lab name. */
  labs: Record<string, string>;
  traces: Record<string, TraceSummary[]>;
  /** Why tracing could not be used, when a configuration asked for it. */
  traceNote: string | null;
  /** The run stopped early (interrupted). */
  aborted: boolean;
}

/** Lab names: "b", 4 random base-36 characters, the lab's index (at most 8 characters). */
function labNames(count: number): string[] {
  const stem = `b${(randomBytes(4).readUInt32BE() % 36 ** 4).toString(36).padStart(4, '0')}`;
  return Array.from({ length: count }, (_, i) => `${stem}${i.toString(36)}`);
}

function describeLab(l: { gateway: string; isolation?: string; transport?: string; slots?: number; spin?: SpinSetting; sync?: boolean; link?: string }): string {
  return l.gateway === 'linux' ? 'Linux reference (kernel forwarding + nftables)' : `microgate ${l.isolation}/${l.transport}, x${l.slots} buffers${l.spin === undefined || l.spin === 0 ? '' : `, ${spinLabel(l.spin)}`}${l.sync === true ? ', conn-sync' : ''}${l.link === 'packet' ? ', packet links' : l.link === 'packet-recvmmsg' ? ', packet links (recvmmsg, no ring)' : ''}`;
}

async function measure(test: TestSpec, ep: Endpoints, aroundOverload?: SmallOptions['aroundOverload']): Promise<Record<string, number>> {
  const reverse = test.direction === 'rx';
  switch (test.kind) {
    case 'tcp':
      return { ...(await iperf3Tcp({ ...ep, seconds: test.seconds, reverse })) };
    case 'sweep':
      return { ...(await iperf3Tcp({ ...ep, seconds: test.seconds, reverse, length: test.size })) };
    case 'udp':
      return { ...(await iperf3Udp({ ...ep, seconds: test.seconds, reverse, length: test.size })) };
    case 'latency':
      return { ...(await sockperfPingPong({ ...ep, seconds: test.seconds, size: test.size })) };
    case 'small':
      return { ...(await smallPackets({ lanNetns: ep.clientNetns, wanNetns: ep.serverNetns, wanIp: ep.serverIp, frameSize: test.size ?? 64, seconds: test.seconds, steps: test.steps ?? 0, cpus: ep.cpus, aroundOverload })) };
  }
}

function note(test: TestSpec, v: Record<string, number>): string {
  const f = (x: number | undefined, d: number): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
  switch (test.kind) {
    case 'tcp':
    case 'sweep':
      return `${f(v.gbps, 2)} Gbit/s`;
    case 'udp':
      return `${f((v.pps ?? NaN) / 1e3, 0)} kpps delivered, ${f(v.lossPct, 1)} % lost`;
    case 'latency':
      return `p50 ${f(v.p50, 1)} µs, p99 ${f(v.p99, 1)} µs, p99.9 ${f(v.p999, 1)} µs`;
    case 'small':
      return `${f((v.noLossPps ?? NaN) / 1e3, 0)} kpps with < 0.1 % loss, ${f((v.overloadPps ?? NaN) / 1e3, 0)} kpps delivered of ${f((v.overloadOfferedPps ?? NaN) / 1e3, 0)} offered at overload`;
  }
}

export async function runPlan(plan: Plan, opts: { progress: Progress; signal?: AbortSignal }): Promise<RunOutput> {
  const { progress, signal } = opts;
  const labs = new Map<string, Lab>();
  const names = labNames(plan.labs.size);
  const out: RunOutput = { runs: [], labs: {}, traces: {}, traceNote: null, aborted: false };
  const stop = (): void => killServers();
  signal?.addEventListener('abort', stop);
  try {
    let i = 0;
    for (const [key, spec] of plan.labs) {
      if (signal?.aborted) break;
      const name = names[i++];
      progress.log(`building lab ${name}: ${describeLab(spec)}`);
      const slots = spec.slots === undefined || spec.slots === 1 ? undefined : spec.slots * BASE_SLOTS;
      const info = await labUp({
        name,
        gateway: spec.gateway,
        microgate: spec.gateway === 'microgate' ? { isolation: spec.isolation, transport: spec.transport, slots, ...(driverSpin(spec.spin) !== undefined ? { driverSpinUs: driverSpin(spec.spin) } : { spinUs: spec.spin as number | 'auto' | undefined }), connSync: spec.sync, link: spec.link } : undefined,
      });
      const st = await readLabState(name);
      labs.set(key, { key, name, info, controlSocket: st?.controlSocket ?? '' });
      out.labs[key] = name;
    }

    let index = 0;
    for (const run of plan.runs) {
      index++;
      if (signal?.aborted) {
        out.aborted = true;
        break;
      }
      const lab = labs.get(run.config.lab);
      if (!lab) throw new Error(`internal: no lab for ${run.config.id}`);
      progress.begin(index, plan.runs.length, `rep ${run.rep}  ${run.test.id.padEnd(11)} ${run.config.label}`, testSeconds(run.test) + RUN_OVERHEAD_S);
      const rec = await runOne(run.rep, run.test, run.config, lab, out);
      if (signal?.aborted && rec.error !== undefined) {
        // Killed by the interrupt: not a failure of the configuration.
        progress.end('interrupted');
        out.aborted = true;
        break;
      }
      out.runs.push(rec);
      progress.end(rec.error ? `FAILED: ${rec.error.split('\n')[0].slice(0, 200)}` : note(run.test, rec.values));
    }
    if (signal?.aborted) out.aborted = true;
  } finally {
    signal?.removeEventListener('abort', stop);
    progress.done();
    const problems: string[] = [];
    for (const lab of [...labs.values()].reverse()) {
      try {
        await labDown(lab.name);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    // A lab whose labUp failed removed itself; one interrupted between names may not have.
    for (const name of names.filter((n) => ![...labs.values()].some((l) => l.name === n))) {
      if (await readLabState(name)) await labDown(name).catch((e: Error) => problems.push(e.message));
    }
    if (problems.length) progress.log(`warning: removing the labs: ${problems.join('; ')}`);
  }
  return out;
}

async function runOne(rep: number, test: TestSpec, config: BenchConfig, lab: Lab, out: RunOutput): Promise<RunRecord> {
  const t0 = Date.now();
  const rec: RunRecord = { config: config.id, test: test.id, rep, startedAt: new Date(t0).toISOString(), seconds: 0, values: {} };
  try {
    const cpus = cpuListFor(config.cores);
    let units: { name: string; pid: number }[] = [];
    let traced = false;
    if (config.gateway === 'microgate') {
      units = await gatewayUnits(lab.controlSocket);
      for (const u of units) await pinProcess(u.pid, cpus);
      // Untraced configurations switch the tracepoints off (the gateway starts with aggregates on).
      const problem = await setTraceMode(lab.controlSocket, config.trace);
      if (problem !== undefined && config.trace !== 'off') out.traceNote ??= problem;
      traced = problem === undefined && config.trace !== 'off';
    }
    const wan = lab.info.hosts.wan;
    const hosts = [lab.info.hosts.lan.netns, wan.netns];
    // Counters for the cost columns; a counter that cannot be read leaves its columns empty, not the run failed.
    const readHosts = (): Promise<LinkCounters[] | undefined> => Promise.all(hosts.map(linkCounters)).catch(() => undefined);
    // A counter that could not be read on either side leaves the per-byte and per-packet columns empty.
    const cost = (cpu: CpuForCost | undefined, hb: LinkCounters[] | undefined, ha: LinkCounters[] | undefined,
      gb: GatewayCounts | undefined, ga: GatewayCounts | undefined): CostValues => {
      const c = costValues(cpu, hb ?? [], ha ?? [], gb, ga);
      if (hb === undefined || ha === undefined) c.cpuPerGB = c.cpuPerMpkt = c.hostPackets = c.hostBytes = NaN;
      return c;
    };
    const readGateway = (): Promise<GatewayCounts | undefined> =>
      config.gateway === 'microgate' ? gatewayCounts(lab.controlSocket).catch(() => undefined) : Promise.resolve(undefined);
    const hostsBefore = await readHosts();
    const gwBefore = await readGateway();
    const endSample = sampleCpu(units);
    const serverIp = test.family === 6 ? wan.ip6 : wan.ip;
    if (serverIp === undefined) throw new Error(`lab ${lab.name} gave the wan host no IPv6 address: ${test.id} needs one`);
    const ep: Endpoints = { serverNetns: wan.netns, serverIp, clientNetns: lab.info.hosts.lan.netns, cpus };
    // Small packets: the cost columns are the overload trial's (both gateways saturated by the same
    // unlimited generator), not the whole search's, whose paced trials run each gateway at other rates.
    let overloadCost: CostValues | undefined;
    const aroundOverload: SmallOptions['aroundOverload'] = async (trial) => {
      const hb = await readHosts();
      const gb = await readGateway();
      const end = sampleCpu(units);
      try {
        return await trial();
      } finally {
        const cpu = end();
        overloadCost = cost(cpu, hb, await readHosts(), gb, await readGateway());
      }
    };
    try {
      rec.values = await measure(test, ep, aroundOverload);
    } finally {
      rec.cpu = endSample();
    }
    const hostsAfter = await readHosts();
    const gwAfter = await readGateway();
    const runCost = overloadCost ?? cost(rec.cpu, hostsBefore, hostsAfter, gwBefore, gwAfter);
    const extra: Record<string, number> = { ...runCost };
    if (test.kind === 'latency') {
      // Transactions: sockperf's round trips per second over the run's seconds.
      const txns = (rec.values.rtps ?? NaN) * test.seconds;
      extra.wakeupsPerTxn = txns > 0 ? runCost.wakeups / txns : NaN;
    }
    // Only numbers go into the record (a missing column stays absent, not NaN / null in the JSON).
    for (const [k, v] of Object.entries(extra)) if (Number.isFinite(v)) rec.values[k] = v;
    if (traced) {
      try {
        (out.traces[config.id] ??= []).push(await traceReport(lab.controlSocket, test.id, rep, config.trace));
      } catch (e) {
        out.traceNote ??= `the trace report failed: ${(e as Error).message}`;
      }
    }
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    rec.seconds = (Date.now() - t0) / 1000;
  }
  return rec;
}
