// `microgate monitor-bench`: what the IDS costs.
//   1. Inspection rate of the monitor's engine alone (one core, in process):
//      synthetic TCP/UDP/ICMP traffic (Ethernet frames, 1514-byte and 64 KiB
//      GSO-sized segments) through decode, flows, reassembly and detection with
//      the ET Open packet-level rules (plus the built-in ones): rules loaded,
//      packets/s and Gbit/s.
//   1b. On captures (--pcap, default: suricata-verify's DNS, TLS and HTTP
//      captures): the packets replayed as new flows on each pass (the source
//      address rewritten), once with the packet-level rules and once with all
//      ET Open rules (their 429 tls and 72 dns rules too), side by side in one
//      run: what the application layer's rules cost.
//   2. Forwarding throughput with the monitor on vs off: two labs built side by
//      side (one with the monitor, the ET Open rule files (or --rules) and the
//      router mirroring every domain, one without), iperf3 lan -> wan
//      alternating between them, several rounds; mirror-full drops as a share
//      of the copies the router tried.
// A command, not a test: numbers vary with the machine and what else runs.
import { existsSync, readFileSync } from 'node:fs';
import { readCapture, type CapturedPacket } from '../components/monitor/pcap.ts';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../components/monitor/engine.ts';
import { builtinRulesText } from '../components/monitor/index.ts';
import { LINKTYPE_ETHERNET } from '../components/monitor/packet.ts';
import { builtinClassifications } from '../components/monitor/rules/classification.ts';
import { loadRules, type RuleSource } from '../components/monitor/rules/parse.ts';
import { DEFAULT_ADDRESS_VARS, DEFAULT_PORT_VARS } from '../components/monitor/rules/vars.ts';
import { ROOT } from '../init/sandbox.ts';

const ET_DIR = resolve(ROOT, 'test', 'fixtures', 'ids', 'et-open');
const PKT_RULE = /^\s*alert\s+(tcp|udp|icmp|ip|tcp-pkt|tcp-stream|pkthdr)\s/;

const SV_DIR = resolve(ROOT, 'test', 'fixtures', 'ids', 'suricata-verify');
const DEFAULT_PCAPS = ['tls-alpn-log-detect-02', 'cond-log-dns-dig', 'http-request-header-multi'].map((d) => join(SV_DIR, d, 'input.pcap'));

export const MONITOR_BENCH_HELP = `Usage: microgate monitor-bench [--rules FILE]... [--pcap FILE]... [--seconds N] [--rounds N] [--no-forwarding] [--json]

1. The monitor's inspection rate in process (synthetic traffic, ET Open packet-level
   rules from ${ET_DIR} or --rules files).
1b. The same on captures (--pcap; default: suricata-verify's TLS, DNS and HTTP captures),
   replayed as new flows per pass: packet-level rules vs all ET Open rules (tls, dns), one run.
2. Forwarding throughput (iperf3 lan -> wan) with the monitor on (ET Open rule files, or
   --rules) vs off: two labs, alternating, --rounds rounds of --seconds each, and the
   mirror-full drops in % of the copies (needs root; skip with --no-forwarding);
   --monitor-nice N runs that lab's monitor at nice N (default its config default, 0).`;

function frame(payload: number, seq: number, sport: number, dport: number, proto: number, out: Uint8Array): number {
  // Ethernet + IPv4 + TCP/UDP header + payload (bytes left as they are: random).
  const b = out;
  b.fill(0, 0, 54);
  b[12] = 0x08;
  b[14] = 0x45;
  const l4h = proto === 6 ? 20 : 8;
  const total = 20 + l4h + payload;
  b[16] = (total >>> 8) & 0xff;
  b[17] = total & 0xff;
  b[22] = 64;
  b[23] = proto;
  b.set([10, 0, 0, 1], 26);
  b.set([192, 168, 1, 10], 30);
  b[34] = sport >>> 8; b[35] = sport & 0xff; b[36] = dport >>> 8; b[37] = dport & 0xff;
  if (proto === 6) {
    b[38] = seq >>> 24; b[39] = (seq >>> 16) & 0xff; b[40] = (seq >>> 8) & 0xff; b[41] = seq & 0xff;
    b[46] = 0x50;
    b[47] = 0x18; // PSH ACK
    b[48] = 0xff;
  } else {
    b[38] = ((8 + payload) >>> 8) & 0xff;
    b[39] = (8 + payload) & 0xff;
  }
  return 14 + total;
}

export interface InspectResult {
  rulesLoaded: number;
  rulesFailed: number;
  size: number;
  packets: number;
  seconds: number;
  pps: number;
  gbps: number;
  alerts: number;
  /** Both sides of each forwarded packet mirrored: 'none' (one copy), 'untagged' (the copy after NAT inspected as a packet of its own), 'tagged' (the second copy as the router marks it). pps and gbps count forwarded packets. */
  mirrored: Mirrored;
}

export type Mirrored = 'none' | 'untagged' | 'tagged';

export function inspectionBench(sources: RuleSource[], payload: number, seconds: number, mirrored: Mirrored = 'none'): InspectResult {
  const classifications = builtinClassifications();
  const rules = loadRules(sources, { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS }, classifications });
  let alerts = 0;
  const engine = new Engine({
    rules, classifications, midstream: true, eveTypes: ['alert'],
    eve: { pktSrc: 'wire/live', pcapFilename: '', domains: [], packetBytes: 0 },
    emit: () => { alerts++; },
  });
  // 64 flows of TCP, 16 of UDP; payload random bytes (printable-ish mix so patterns' first bytes occur).
  const bufs: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) {
    const b = new Uint8Array(14 + 20 + 20 + payload);
    for (let k = 54; k < b.length; k++) b[k] = 32 + ((k * 7919 + i * 104729) % 95);
    bufs.push(b);
  }
  // The copy after NAT: another source address and port (as the router's egress copy on the wan).
  const nat = new Uint8Array(14 + 20 + 20 + payload);
  const seqs = new Uint32Array(64);
  let n = 0;
  let bytes = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let now = t0;
  while (now < end) {
    for (let k = 0; k < 256; k++) {
      const i = n & 63;
      const b = bufs[n & 7];
      let len: number;
      if ((n & 7) === 7) len = frame(Math.min(payload, 512), 0, 40000 + i, 53, 17, b);
      else {
        len = frame(payload, seqs[i], 40000 + i, 80 + (i & 3), 6, b);
        seqs[i] = (seqs[i] + payload) >>> 0;
      }
      engine.process(b, 0, len, LINKTYPE_ETHERNET, Math.floor(now / 1000), 0);
      if (mirrored !== 'none') {
        nat.set(b.subarray(0, len), 0);
        nat.set([198, 19, 0, 1], 26);
        nat[34] = 0xee;
        engine.process(nat, 0, len, LINKTYPE_ETHERNET, Math.floor(now / 1000), 0, 0, 1, 1, mirrored === 'tagged');
      }
      n++;
      bytes += len;
    }
    now = performance.now();
  }
  const s = (now - t0) / 1000;
  return {
    rulesLoaded: rules.rules.length, rulesFailed: rules.errors.length, size: payload, packets: n, seconds: s,
    pps: n / s, gbps: (bytes * 8) / s / 1e9, alerts, mirrored,
  };
}

/** The IPv4 header's offset in a captured frame (Ethernet with VLANs, raw IP), or -1. */
function ipOffset(c: CapturedPacket): number {
  const d = c.data;
  if (c.linktype === 101 || c.linktype === 228) return (d[0] >> 4) === 4 ? 0 : -1;
  if (c.linktype !== LINKTYPE_ETHERNET) return -1;
  let o = 12;
  while (o + 2 <= d.length && ((d[o] << 8) | d[o + 1]) === 0x8100) o += 4;
  return o + 2 <= d.length && ((d[o] << 8) | d[o + 1]) === 0x0800 ? o + 2 : -1;
}

export interface CaptureResult {
  rules: string;
  rulesLoaded: number;
  packets: number;
  pps: number;
  alerts: number;
  appRecords: number;
}

/**
 * Replays captures for `seconds`: pass k rewrites the IPv4 source and
 * destination addresses' low bytes to k (new flows, so handshakes and
 * application messages are parsed again) and the timestamps forward.
 */
export function captureBench(label: string, sources: RuleSource[], pcaps: string[], seconds: number): CaptureResult {
  const classifications = builtinClassifications();
  const rules = loadRules(sources, { vars: { ...DEFAULT_ADDRESS_VARS, ...DEFAULT_PORT_VARS }, classifications });
  let alerts = 0;
  let appRecords = 0;
  const engine = new Engine({
    rules, classifications, midstream: true, eveTypes: ['alert', 'dns', 'tls'],
    eve: { pktSrc: 'wire/pcap', pcapFilename: '', domains: [], packetBytes: 0 },
    emit: (_l, t) => { if (t === 'alert') alerts++; else appRecords++; },
  });
  const pkts: { c: CapturedPacket; ip: number }[] = [];
  for (const f of pcaps) for (const c of readCapture(readFileSync(f), f)) pkts.push({ c: { ...c, data: c.data.slice() }, ip: ipOffset(c) });
  let n = 0;
  let pass = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let now = t0;
  while (now < end) {
    pass++;
    for (const { c, ip } of pkts) {
      if (ip >= 0) {
        c.data[ip + 14] = (pass >> 8) & 0xff;
        c.data[ip + 15] = pass & 0xff;
        c.data[ip + 18] = (pass >> 8) & 0xff;
        c.data[ip + 19] = pass & 0xff;
      }
      engine.process(c.data, 0, c.data.length, c.linktype, c.tsSec + pass * 600, c.tsUsec);
      n++;
    }
    now = performance.now();
  }
  engine.finish();
  const s = (now - t0) / 1000;
  return { rules: label, rulesLoaded: rules.rules.length, packets: n, pps: n / s, alerts, appRecords };
}

export function etAllRules(): RuleSource[] {
  const sources: RuleSource[] = [{ name: 'builtin.rules', text: builtinRulesText() }];
  for (const f of ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules']) {
    sources.push({ name: f, text: readFileSync(join(ET_DIR, f), 'utf8') });
  }
  return sources;
}

export function etPacketRules(files?: string[]): RuleSource[] {
  const sources: RuleSource[] = [{ name: 'builtin.rules', text: builtinRulesText() }];
  const list = files ?? ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules'].map((f) => join(ET_DIR, f));
  for (const f of list) {
    const text = readFileSync(f, 'utf8');
    sources.push({ name: f, text: files === undefined ? text.split('\n').filter((l) => PKT_RULE.test(l)).join('\n') : text });
  }
  return sources;
}

/** The ET Open rule files in the fixtures (all rules: the monitor loads what it can and reports the rest). */
function etRuleFiles(): string[] {
  return ['emerging-attack_response.rules', 'emerging-dos.rules', 'emerging-scan.rules'].map((f) => join(ET_DIR, f));
}

/**
 * Forwarding with the monitor on (ET Open rules + built-in, the router
 * mirroring every domain) vs off; mirror-full drops as a share of what the
 * router tried to copy.
 */
async function forwardingBench(seconds: number, rounds: number, ruleFiles: string[], nice: number | undefined): Promise<{ on: number[]; off: number[]; mirror: Record<string, number> }> {
  const { labUp, labDown } = await import('../lab/lab.ts');
  const { iperf3 } = await import('../lab/traffic.ts');
  const suffix = Math.random().toString(36).slice(2, 6);
  const onName = `mbon${suffix}`;
  const offName = `mbof${suffix}`;
  const on: number[] = [];
  const off: number[] = [];
  let mirror: Record<string, number> = {};
  try {
    const labOn = await labUp({ name: onName, microgate: { monitor: { ruleFiles, ...(nice === undefined ? {} : { extra: { nice } }) } } });
    const labOff = await labUp({ name: offName });
    for (let r = 0; r < rounds; r++) {
      for (const [lab, arr] of r % 2 === 0 ? [[labOn, on], [labOff, off]] as const : [[labOff, off], [labOn, on]] as const) {
        const res = await iperf3({ serverNetns: lab.hosts.wan.netns, serverIp: lab.hosts.wan.ip, clientNetns: lab.hosts.lan.netns, seconds });
        arr.push(res.bitsPerSecond / 1e9);
      }
    }
    const { labControl, readLabState } = await import('../lab/lab.ts');
    const st = await readLabState(onName);
    if (st !== null) {
      const c = await labControl(st).get<Record<string, Record<string, number>>>('/counters');
      const copied = c.router?.['mirror.copied'] ?? 0;
      const full = c.router?.['drop.mirror-full'] ?? 0;
      mirror = {
        copied,
        'drop.mirror-full': full,
        'mirror-full-pct': copied + full === 0 ? 0 : Math.round((10000 * full) / (copied + full)) / 100,
        'monitor.packets': c.monitor?.packets ?? 0,
        'monitor.alerts': c.monitor?.alerts ?? 0,
      };
    }
  } finally {
    await labDown(onName).catch(() => undefined);
    await labDown(offName).catch(() => undefined);
  }
  return { on, off, mirror };
}

export async function monitorBenchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rules: { type: 'string', multiple: true },
      pcap: { type: 'string', multiple: true },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      'no-forwarding': { type: 'boolean' },
      'monitor-nice': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${MONITOR_BENCH_HELP}\n`);
    return 0;
  }
  const seconds = Number(values.seconds ?? '3');
  const rounds = Number(values.rounds ?? '3');
  const sources = etPacketRules(values.rules);
  const results = [1460, 16384, 65000].map((p) => inspectionBench(sources, p, seconds));
  // Both sides mirrored (the router's default): the copy after NAT inspected as its own packet, or tagged as the second copy; alternated.
  const both: InspectResult[] = [];
  for (let r = 0; r < 2; r++) for (const m of (r % 2 === 0 ? ['untagged', 'tagged'] : ['tagged', 'untagged']) as Mirrored[]) both.push(inspectionBench(sources, 1460, seconds, m));
  const out: Record<string, unknown> = { inspection: results, mirroredBothSides: both };
  if (!values.json) {
    process.stdout.write(`rules loaded: ${results[0].rulesLoaded} (failed ${results[0].rulesFailed})\n`);
    for (const r of results) {
      process.stdout.write(`inspection, ${String(r.size).padStart(5)}-byte payloads: ${(r.pps / 1000).toFixed(1)} kpps, ${r.gbps.toFixed(2)} Gbit/s (${r.packets} packets, ${r.alerts} alerts)\n`);
    }
    const med = (m: Mirrored): number => {
      const v = both.filter((x) => x.mirrored === m).map((x) => x.pps).sort((a, b) => a - b);
      return v[v.length >> 1];
    };
    process.stdout.write(`both sides mirrored, 1460-byte payloads, forwarded packets/s: second copy inspected as its own ${(med('untagged') / 1000).toFixed(1)} kpps, tagged as the second copy ${(med('tagged') / 1000).toFixed(1)} kpps (${(med('tagged') / med('untagged')).toFixed(2)}x)\n`);
  }
  const pcaps = values.pcap ?? DEFAULT_PCAPS.filter((f) => existsSync(f));
  if (pcaps.length > 0) {
    // Alternating, twice each, so drift (other work on the machine) spreads over both.
    const caps: CaptureResult[] = [];
    for (let r = 0; r < 2; r++) {
      caps.push(captureBench('packet-level', sources, pcaps, seconds));
      caps.push(captureBench('all ET Open (tls, dns)', etAllRules(), pcaps, seconds));
    }
    out.captures = caps;
    if (!values.json) {
      process.stdout.write(`captures (${pcaps.length}, replayed as new flows):\n`);
      for (const c of caps) {
        process.stdout.write(`  ${c.rules.padEnd(24)} ${String(c.rulesLoaded).padStart(4)} rules: ${(c.pps / 1000).toFixed(1)} kpps (${c.packets} packets, ${c.alerts} alerts, ${c.appRecords} dns/tls records)\n`);
      }
      const pk = (caps[0].pps + caps[2].pps) / 2;
      const all = (caps[1].pps + caps[3].pps) / 2;
      process.stdout.write(`  ratio all/packet-level: ${(all / pk).toFixed(2)}\n`);
    }
  }
  if (!values['no-forwarding']) {
    const niceText = values['monitor-nice'];
    const nice = niceText === undefined ? undefined : Number(niceText);
    if (nice !== undefined && (!Number.isInteger(nice) || nice < 0 || nice > 19)) {
      process.stderr.write('microgate monitor-bench: --monitor-nice: expected 0-19 (the monitor\'s nice value; default its config default, 0)\n');
      return 2;
    }
    const f = await forwardingBench(seconds, rounds, values.rules ?? etRuleFiles(), nice);
    out.forwarding = f;
    if (!values.json) {
      const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
      process.stdout.write(`forwarding (iperf3 lan->wan, ${rounds} rounds x ${seconds} s, alternating):\n`);
      process.stdout.write(`  monitor off: ${f.off.map((x) => x.toFixed(2)).join(', ')} Gbit/s (mean ${mean(f.off).toFixed(2)})\n`);
      process.stdout.write(`  monitor on:  ${f.on.map((x) => x.toFixed(2)).join(', ')} Gbit/s (mean ${mean(f.on).toFixed(2)})\n`);
      process.stdout.write(`  mirror: ${JSON.stringify(f.mirror)}\n`);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}
