// The charts of a result: file name -> SVG text.
//   throughput.svg  Fig. 3: TCP send and receive, Linux and every microgate configuration
//   udp.svg         64-byte datagrams delivered per second, both directions
//   latency.svg     ping-pong round trip p50 / p99 / p99.9 (log scale)
//   sweep.svg       TCP send throughput over the write size
import type { BenchResult } from './results.ts';
import { barChart, lineChart, type BarGroup } from './svg.ts';

function groupOf(r: BenchResult, test: string, key: string, label: string, groupKey: string, scale = 1, withRatio = true): BarGroup {
  return {
    key: groupKey,
    label,
    bars: r.configs.map((c) => {
      const s = r.summaries[c.id]?.[test]?.[key];
      const ratio = r.ratios[c.id]?.[test]?.[key]?.ratio;
      return {
        config: c.id,
        value: (s?.median ?? NaN) * scale,
        min: (s?.min ?? NaN) * scale,
        max: (s?.max ?? NaN) * scale,
        note: withRatio && ratio !== undefined && Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : undefined,
      };
    }),
  };
}

const has = (r: BenchResult, test: string): boolean => r.tests.some((t) => t.id === test);

export function charts(r: BenchResult): Map<string, string> {
  const out = new Map<string, string>();
  const reps = `median of ${r.options.repeat} run${r.options.repeat === 1 ? '' : 's'}, whiskers min-max; labels: microgate / Linux on the same cores`;
  if (has(r, 'tcp-tx')) {
    out.set('throughput.svg', barChart({
      title: 'TCP throughput through the gateway: Linux vs microgate',
      subtitle: `iperf3, ${r.options.seconds} s per run; ${reps}`,
      yLabel: 'Gbit/s',
      configs: r.configs,
      groups: [
        groupOf(r, 'tcp-tx', 'gbps', 'send (lan → wan)', 'tx'),
        groupOf(r, 'tcp-rx', 'gbps', 'receive (wan → lan)', 'rx'),
        ...(has(r, 'tcp6-tx') ? [
          groupOf(r, 'tcp6-tx', 'gbps', 'IPv6 send', 'tx6'),
          groupOf(r, 'tcp6-rx', 'gbps', 'IPv6 receive', 'rx6'),
        ] : []),
      ],
    }));
  }
  if (has(r, 'udp-tx')) {
    out.set('udp.svg', barChart({
      title: `UDP ${r.options.udpSize}-byte datagrams delivered`,
      subtitle: `iperf3 -u -b 0, one sender; ${reps}`,
      yLabel: 'thousand packets per second',
      configs: r.configs,
      digits: 0,
      groups: [
        groupOf(r, 'udp-tx', 'pps', 'send (lan → wan)', 'tx', 1e-3),
        groupOf(r, 'udp-rx', 'pps', 'receive (wan → lan)', 'rx', 1e-3),
      ],
    }));
  }
  if (has(r, 'latency')) {
    out.set('latency.svg', barChart({
      title: `TCP ping-pong round trip (${r.options.latencySize} B)`,
      subtitle: `sockperf; ${reps} (log scale)`,
      yLabel: 'round trip, µs',
      configs: r.configs,
      log: true,
      digits: 0,
      groups: [
        groupOf(r, 'latency', 'p50', 'p50', 'p50'),
        groupOf(r, 'latency', 'p99', 'p99', 'p99'),
        groupOf(r, 'latency', 'p999', 'p99.9', 'p999'),
      ],
    }));
  }
  const sweep = r.tests.filter((t) => t.kind === 'sweep');
  if (sweep.length > 0) {
    out.set('sweep.svg', lineChart({
      title: 'TCP send throughput by write size',
      subtitle: `iperf3 -l SIZE, lan → wan, ${r.options.sweepSeconds} s per size; median of ${r.options.repeat}`,
      xLabel: 'write size (bytes)',
      yLabel: 'Gbit/s',
      configs: r.configs,
      series: r.configs.map((c) => ({
        config: c.id,
        points: sweep.map((t) => ({ x: t.size ?? 0, y: r.summaries[c.id]?.[t.id]?.gbps?.median ?? NaN })),
      })),
    }));
  }
  return out;
}
