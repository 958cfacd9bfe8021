// Small packets in the manner of RFC 2544 (section 26.1, throughput): for one
// frame size, the highest offered rate a gateway forwards with less than 0.1 %
// loss, found by a binary search over offered rates, and the rate it delivers
// at overload. The generator is trafgen (Debian's netsniff-ng): raw UDP
// frames from an AF_PACKET mmap ring on the lan host's interface, addressed
// to the gateway's MAC and the wan host's address (a port nothing listens on:
// lan -> wan is allowed by the lab policy of both gateways), so nothing above
// the generator's ring limits the rate. trafgen runs one sender process per
// CPU of the run: without a rate limit for the overload trial, evenly paced
// for the search trials (RFC 2544 offers frames at a constant rate): each
// sender waits nCpus / rate between frames (trafgen -t, sendto per frame).
// trafgen's own rate option (-b) is not used: it reaches its rate in bursts of
// up to hundreds of back-to-back frames from the mmap ring (measured on the
// wan host: bursts of 64-255 frames 3-4 us apart at -b 2000pps), so a trial
// measured how deep a gateway's queues are, not the rate it forwards; paced,
// a sender reaches ~27 kpps here (sleep granularity), which bounds the no-loss
// rate either gateway can show (the report says when Linux lost nothing at the
// highest paced rate). A trial's rates are what was achieved (frames
// over the trial's time), so a generator slower than asked shows as a lower
// offered rate, never as the gateway's loss. Offered = frames trafgen reports sent; delivered =
// frames the wan host's interfaces received (their counters), both over the
// same trial.
//
// Frame sizes are Ethernet frames with the FCS, as RFC 2544 counts them: a
// 64-byte frame is 60 bytes on the wire here (14 Ethernet + 20 IPv4 + 8 UDP +
// 18 payload).
import { spawn } from 'node:child_process';
import { nsExec } from '../lab/netns.ts';
import { parseCpuList } from './affinity.ts';
import { delta, linkCounters } from './counters.ts';
import { BenchToolError } from './tools.ts';

/** RFC 2544's loss threshold for "forwarded without loss" (percent). */
export const LOSS_THRESHOLD_PCT = 0.1;

export interface SmallPacketValues {
  /** Highest delivered rate of a trial with < 0.1 % loss (frames/s); 0 when none passed. */
  noLossPps: number;
  /** The offered rate of that trial. */
  noLossOfferedPps: number;
  /** Delivered at overload (the generator unlimited on every CPU of the run). */
  overloadPps: number;
  /** Offered at overload. */
  overloadOfferedPps: number;
  overloadLossPct: number;
  /** Trials of the search (not counting the overload trial). */
  trials: number;
  /** The lowest loss of any search trial, percent: how far a gateway with no passing trial was from passing. */
  lowestLossPct: number;
}

export interface Trial {
  /** Requested rate; undefined = unlimited. */
  ratePps?: number;
  sent: number;
  delivered: number;
  seconds: number;
}

/** UDP payload bytes of a frame of `frameSize` bytes with FCS. */
export function payloadFor(frameSize: number): number {
  const p = frameSize - 4 - 14 - 20 - 8;
  if (!Number.isInteger(frameSize) || p < 18 || frameSize > 1518) throw new BenchToolError(`frame size ${frameSize}: expected 64 to 1518 bytes`);
  return p;
}

/** trafgen's packet description: Ethernet, IPv4, UDP (checksums by trafgen), zero payload. */
export function trafgenPacket(o: { dstMac: string; srcMac: string; srcIp: string; dstIp: string; port: number; frameSize: number }): string {
  const mac = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
  const ip = /^\d{1,3}(\.\d{1,3}){3}$/;
  if (!mac.test(o.dstMac) || !mac.test(o.srcMac)) throw new BenchToolError(`trafgen: bad MAC address ${o.dstMac} / ${o.srcMac}`);
  if (!ip.test(o.srcIp) || !ip.test(o.dstIp)) throw new BenchToolError(`trafgen: bad IPv4 address ${o.srcIp} / ${o.dstIp}`);
  return `{ eth(da=${o.dstMac}, sa=${o.srcMac}), ipv4(saddr=${o.srcIp}, daddr=${o.dstIp}, ttl=64), udp(sp=40000, dp=${o.port}), fill(0x00, ${payloadFor(o.frameSize)}) }`;
}

/** The counts trafgen's senders print at exit ("   165249 packets outgoing", one per process), summed. */
export function parseTrafgenSent(text: string): number {
  const ms = [...text.matchAll(/(\d+) packets outgoing/g)];
  if (ms.length === 0) throw new BenchToolError(`trafgen printed no "packets outgoing" count: ${text.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`);
  return ms.reduce((s, m) => s + Number(m[1]), 0);
}

/**
 * The search: the first trial at the rate delivered at overload, then halving
 * the interval between the highest passing and lowest failing rates.
 * `trial` runs one trial at a rate and gives its sent and delivered counts.
 */
export async function searchNoLoss(overload: Trial, steps: number, trial: (pps: number) => Promise<Trial>): Promise<SmallPacketValues> {
  const rate = (n: number, s: number): number => (s > 0 ? n / s : NaN);
  const overloadPps = rate(overload.delivered, overload.seconds);
  const overloadOfferedPps = rate(overload.sent, overload.seconds);
  let lo = 0;
  let hi = overloadOfferedPps;
  let best = { pps: 0, offered: 0 };
  let trials = 0;
  let lowestLossPct = NaN;
  for (let i = 0; i < steps && hi > 0; i++) {
    const pps = Math.round(i === 0 ? Math.min(overloadPps, hi) : (lo + hi) / 2);
    if (pps < 1) break;
    const t = await trial(pps);
    trials++;
    const loss = t.sent > 0 ? (100 * Math.max(0, t.sent - t.delivered)) / t.sent : 100;
    if (!(loss >= lowestLossPct)) lowestLossPct = loss;
    if (loss < LOSS_THRESHOLD_PCT && t.sent > 0) {
      lo = pps;
      const d = rate(t.delivered, t.seconds);
      if (d > best.pps) best = { pps: d, offered: rate(t.sent, t.seconds) };
    } else hi = pps;
    if (hi - lo < 0.01 * hi) break;
  }
  return {
    noLossPps: best.pps,
    noLossOfferedPps: best.offered,
    overloadPps,
    overloadOfferedPps,
    overloadLossPct: overload.sent > 0 ? (100 * Math.max(0, overload.sent - overload.delivered)) / overload.sent : NaN,
    trials,
    lowestLossPct,
  };
}

interface Path {
  dev: string;
  srcMac: string;
  dstMac: string;
  srcIp: string;
}

/** The lan host's default route: its interface, its MAC and the gateway's MAC (resolved with a ping if needed). */
async function lanPath(netns: string): Promise<Path> {
  const routes = JSON.parse((await nsExec(netns, 'ip', ['-j', '-4', 'route', 'show', 'default'])).stdout) as { gateway?: string; dev?: string; prefsrc?: string }[];
  const r = routes.find((x) => x.gateway !== undefined && x.dev !== undefined);
  if (!r?.gateway || !r.dev) throw new BenchToolError(`the lan host (${netns}) has no IPv4 default route`);
  const mac = async (): Promise<string | undefined> => {
    const n = JSON.parse((await nsExec(netns, 'ip', ['-j', 'neigh', 'show', 'to', r.gateway as string, 'dev', r.dev as string])).stdout) as { lladdr?: string; state?: string[] }[];
    return n.find((x) => x.lladdr !== undefined && !(x.state ?? []).includes('FAILED'))?.lladdr;
  };
  let dstMac = await mac();
  if (dstMac === undefined) {
    await nsExec(netns, 'ping', ['-c', '1', '-W', '2', r.gateway]).catch(() => undefined);
    dstMac = await mac();
  }
  if (dstMac === undefined) throw new BenchToolError(`the lan host (${netns}) cannot resolve its gateway ${r.gateway}'s MAC`);
  const link = JSON.parse((await nsExec(netns, 'ip', ['-j', 'link', 'show', 'dev', r.dev])).stdout) as { address?: string }[];
  const addr = JSON.parse((await nsExec(netns, 'ip', ['-j', '-4', 'addr', 'show', 'dev', r.dev])).stdout) as { addr_info?: { local?: string; scope?: string }[] }[];
  const srcIp = addr[0]?.addr_info?.find((a) => a.scope === 'global')?.local;
  if (!link[0]?.address || !srcIp) throw new BenchToolError(`the lan host's ${r.dev} has no MAC or IPv4 address`);
  return { dev: r.dev, srcMac: link[0].address, dstMac, srcIp };
}

/** One trafgen run for `seconds`, stopped with SIGINT; its sent count and the trial's length from its start. */
function trafgen(netns: string, cpus: string | undefined, args: string[], seconds: number): Promise<{ sent: number; seconds: number }> {
  const argv = cpus === undefined ? ['trafgen', ...args] : ['taskset', '-c', cpus, 'trafgen', ...args];
  // Its own process group: trafgen forks one sender per CPU, and each must get the SIGINT (each prints its count).
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const signal = (sig: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  let out = '';
  let started = 0n;
  let stopTimer: NodeJS.Timeout | undefined;
  const onData = (d: Buffer): void => {
    out += d.toString('utf8');
    if (out.length > 65536) out = out.slice(-16384);
    if (started === 0n && out.includes('Running!')) {
      started = process.hrtime.bigint();
      stopTimer = setTimeout(() => signal('SIGINT'), seconds * 1000);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const guard = setTimeout(() => signal('SIGKILL'), (seconds + 15) * 1000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new BenchToolError(`trafgen could not start: ${e.message}`)));
    child.once('exit', (code, sig) => {
      signal('SIGKILL'); // a sender process that outlived the parent would go on sending into the next run
      clearTimeout(guard);
      if (stopTimer) clearTimeout(stopTimer);
      const s = started === 0n ? 0 : Number(process.hrtime.bigint() - started) / 1e9;
      if (started === 0n) return reject(new BenchToolError(`trafgen exited (${sig ?? `code ${code}`}) before sending: ${out.trim().slice(-300)}`));
      try {
        resolve({ sent: parseTrafgenSent(out), seconds: s });
      } catch (e) {
        reject(e);
      }
    });
  });
}

export interface SmallOptions {
  lanNetns: string;
  wanNetns: string;
  wanIp: string;
  frameSize: number;
  /** Seconds per trial. */
  seconds: number;
  /** Search trials after the overload trial. */
  steps: number;
  /** taskset list the generator runs on; its CPU count is the overload trial's process count. */
  cpus?: string;
  /** UDP destination port (nothing listens: the frames are counted, not answered). */
  port?: number;
  /** Runs the overload trial (the caller measures its cost around it: CPU per packet at saturation). */
  aroundOverload?: (trial: () => Promise<Trial>) => Promise<Trial>;
}

/** The gap each of `senders` paced senders leaves between its frames for `pps` frames/s in all, ns (at least 1). */
export function pacedGapNs(pps: number, senders: number): number {
  if (!(pps > 0) || !Number.isInteger(senders) || senders < 1) throw new BenchToolError(`trafgen: no paced gap for ${pps} frames/s over ${senders} senders`);
  return Math.max(1, Math.round((senders * 1e9) / pps));
}

export async function smallPackets(o: SmallOptions): Promise<SmallPacketValues> {
  const path = await lanPath(o.lanNetns);
  const pkt = trafgenPacket({ ...path, dstIp: o.wanIp, port: o.port ?? 9, frameSize: o.frameSize });
  const nCpus = o.cpus === undefined ? 2 : parseCpuList(o.cpus).length;
  const run = async (pps: number | undefined): Promise<Trial> => {
    // RFC 2544's learning frames: one ping through the gateway first, so that no trial starts with its
    // neighbour entry for the wan host expired (both gateways queue only a few frames while resolving).
    await nsExec(o.lanNetns, 'ping', ['-c', '1', '-W', '1', o.wanIp]).catch(() => undefined);
    const before = await linkCounters(o.wanNetns);
    // One sender per CPU of the run, each pacing its frames evenly (-t: the gap between its frames).
    const args = ['-o', path.dev, '-P', String(nCpus), ...(pps === undefined ? [] : ['-t', `${pacedGapNs(pps, nCpus)}ns`]), '-C', pkt];
    const t = await trafgen(o.lanNetns, o.cpus, args, o.seconds);
    await new Promise((r) => setTimeout(r, 200)); // frames still queued in the gateway
    const after = await linkCounters(o.wanNetns);
    return { ratePps: pps, sent: t.sent, delivered: delta(after.rxPackets, before.rxPackets), seconds: t.seconds };
  };
  const overload = o.aroundOverload === undefined ? await run(undefined) : await o.aroundOverload(() => run(undefined));
  return searchNoLoss(overload, o.steps, run);
}
