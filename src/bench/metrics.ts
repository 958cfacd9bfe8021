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
    } else {
      m(t.id, 'gbps', `TCP send, ${t.size} B writes`, 'Gbit/s');
    }
  }
  return out;
}

export function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v.toFixed(digits);
}
