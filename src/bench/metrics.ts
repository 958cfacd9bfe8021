// The numbers each figure yields, how they are shown, and which way is better.
import type { TestSpec } from './plan.ts';

export interface MetricSpec {
  test: string;
  /** Key in a run's values. */
  key: string;
  /** Row name in tables: "TCP send", "latency p99.9". */
  name: string;
  unit: string;
  /** Multiply the stored value by this for display (pps -> kpps). */
  scale: number;
  digits: number;
  better: 'higher' | 'lower';
  /** Whether a microgate / Linux ratio is meaningful (false for loss %, retransmits, CPU). */
  ratio: boolean;
  /** Shown in the ratio table (the rest stays in the JSON and the detailed tables). */
  headline: boolean;
}

export function metricsFor(tests: readonly TestSpec[]): MetricSpec[] {
  const out: MetricSpec[] = [];
  const m = (test: string, key: string, name: string, unit: string, o: Partial<MetricSpec> = {}): void => {
    out.push({ test, key, name, unit, scale: 1, digits: 2, better: 'higher', ratio: true, headline: true, ...o });
  };
  for (const t of tests) {
    const dir = t.direction === 'tx' ? 'send' : 'receive';
    if (t.kind === 'tcp') {
      const tcp = t.family === 6 ? 'TCP/IPv6' : 'TCP';
      m(t.id, 'gbps', `${tcp} ${dir}`, 'Gbit/s');
      m(t.id, 'retransmits', `${tcp} ${dir} retransmits`, '', { digits: 0, better: 'lower', ratio: false, headline: false });
      m(t.id, 'senderCpu', `${tcp} ${dir} iperf3 sender CPU`, '%', { digits: 0, better: 'lower', ratio: false, headline: false });
      m(t.id, 'receiverCpu', `${tcp} ${dir} iperf3 receiver CPU`, '%', { digits: 0, better: 'lower', ratio: false, headline: false });
    } else if (t.kind === 'latency') {
      m(t.id, 'p50', 'latency p50', 'µs', { digits: 1, better: 'lower' });
      m(t.id, 'p99', 'latency p99', 'µs', { digits: 1, better: 'lower' });
      m(t.id, 'p999', 'latency p99.9', 'µs', { digits: 1, better: 'lower' });
      m(t.id, 'max', 'latency max', 'µs', { digits: 0, better: 'lower', ratio: false, headline: false });
      m(t.id, 'rtps', 'round trips per second', 'k/s', { scale: 1e-3, digits: 1 });
    } else if (t.kind === 'udp') {
      m(t.id, 'pps', `UDP ${t.size} B ${dir}, delivered`, 'kpps', { scale: 1e-3, digits: 0 });
      m(t.id, 'sentPps', `UDP ${t.size} B ${dir}, offered`, 'kpps', { scale: 1e-3, digits: 0, ratio: false, headline: false });
      m(t.id, 'lossPct', `UDP ${t.size} B ${dir}, loss`, '%', { digits: 1, better: 'lower', ratio: false });
      m(t.id, 'senderCpu', `UDP ${dir} iperf3 sender CPU`, '%', { digits: 0, better: 'lower', ratio: false, headline: false });
      m(t.id, 'receiverCpu', `UDP ${dir} iperf3 receiver CPU`, '%', { digits: 0, better: 'lower', ratio: false, headline: false });
    } else if (t.kind === 'small') {
      m(t.id, 'noLossPps', `${t.size} B frames, highest rate < 0.1 % loss`, 'kpps', { scale: 1e-3, digits: 0 });
      m(t.id, 'overloadPps', `${t.size} B frames, delivered at overload`, 'kpps', { scale: 1e-3, digits: 0 });
      m(t.id, 'overloadOfferedPps', `${t.size} B frames, offered at overload`, 'kpps', { scale: 1e-3, digits: 0, ratio: false, headline: false });
      m(t.id, 'overloadLossPct', `${t.size} B frames, loss at overload`, '%', { digits: 1, better: 'lower', ratio: false, headline: false });
      m(t.id, 'lowestLossPct', `${t.size} B frames, lowest loss of a search trial`, '%', { digits: 2, better: 'lower', ratio: false, headline: false });
    } else {
      m(t.id, 'gbps', `TCP send, ${t.size} B writes`, 'Gbit/s');
    }
    if (t.kind === 'sweep') continue;
    // Cost columns (runner.ts): the gateway's CPU per GB and per million frames
    // forwarded, both gateways; wake-ups per forwarded packet (microgate only).
    const what = t.kind === 'small' ? `${t.size} B frames` : t.kind === 'latency' ? 'ping-pong' : `${t.kind === 'tcp' ? (t.family === 6 ? 'TCP/IPv6' : 'TCP') : 'UDP'} ${dir}`;
    const bulk = t.kind === 'tcp' && t.family === 4;
    const packets = t.kind === 'small' || t.kind === 'udp';
    m(t.id, 'cpuPerGB', `${what}, CPU per GB`, 'CPU s/GB', { better: 'lower', headline: bulk });
    m(t.id, 'cpuPerMpkt', `${what}, CPU per M packets${t.kind === 'small' ? ' at overload' : ''}`, 'CPU s/Mpkt', { better: 'lower', headline: packets });
    m(t.id, 'wakeupsPerPkt', `${what}, wake-ups per packet`, '', { digits: 3, better: 'lower', ratio: false, headline: bulk || packets || t.kind === 'latency' });
    if (t.kind === 'latency') m(t.id, 'wakeupsPerTxn', 'ping-pong, wake-ups per transaction', '', { digits: 2, better: 'lower', ratio: false });
  }
  return out;
}

export function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v.toFixed(digits);
}
