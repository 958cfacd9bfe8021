// The tracing cost of the forwarding path, measured in one process: what
// `microgate trace bench` reports as "path". Two simulated nic-drivers (traced
// the way the real driver is: by their session ends and traceRuns) and the real router
// component, over in-process sessions (the same rings as shm), forward UDP
// packets lan -> wan in batches; each driver "reads" and "writes" a packet by
// copying it, as read(2)/write(2) on the TAP would. Measured in CPU time of
// this process (process.cpuUsage), so other load on the machine changes the
// result far less than it changes a lab's throughput. What it leaves out of
// the lab: the entrypoints' poll(2) and their tracepoints, wake-ups between
// processes, the kernel, and the acknowledgements of TCP in the other direction.
import type { ComponentEnv } from '../runtime/component.ts';
import type { Entrypoint, Pollable } from '../runtime/entrypoint.ts';
import { Counters } from '../runtime/counters.ts';
import createRouter from '../components/router/index.ts';
import { createLocalSession } from '../session/local.ts';
import { sinkPollable, traceRuns } from '../session/pollable.ts';
import { encodeFrame } from '../net/frame.ts';
import { Tracer } from '../trace/tracer.ts';
import type { TraceMode } from '../trace/tracer.ts';
import { median } from './stats.ts';

export interface PathOptions {
  /** UDP payload bytes per packet (default 32000: near the ~35-60 KB GSO frames iperf3 sends through a lab). */
  payload?: number;
  /** Packets per batch (default 4: a lab's batches hold 2-3). */
  batch?: number;
  /** Packets per measurement (default 20000). */
  packets?: number;
  /** Measurements per mode, alternating the modes; the median is reported (default 7). */
  reps?: number;
}

export interface PathResult {
  payload: number;
  batch: number;
  /** CPU ns per forwarded packet, median over the repetitions. */
  nsPerPacket: Record<'off' | 'aggregates' | 'events', number>;
  /** Tracepoints (spans) per forwarded packet in all three components. */
  spansPerPacket: number;
}

const MODES = ['off', 'aggregates', 'events'] as const satisfies readonly TraceMode[];
const SLOT = 65536;
const HOST = '02:00:00:00:00:0a';
const GW = '02:00:00:00:00:fe';

export function pathBench(o: PathOptions = {}): PathResult {
  const payload = o.payload ?? 32000;
  const batch = o.batch ?? 4;
  const packets = o.packets ?? 20000;
  const reps = o.reps ?? 7;
  const tl = new Tracer({ component: 'drv-lan', mode: 'aggregates' });
  const tw = new Tracer({ component: 'drv-wan', mode: 'aggregates' });
  const tr = new Tracer({ component: 'router', mode: 'aggregates' });
  const tracers = [tl, tw, tr];
  const [dl, rl] = createLocalSession({ slots: 64, slotSize: SLOT, names: ['nic', 'lan'] });
  const [dw, rw] = createLocalSession({ slots: 64, slotSize: SLOT, names: ['nic', 'wan'] });
  const ends = [dl, rl, dw, rw];
  try {
    dl.attachTrace(tl, 'nic');
    dw.attachTrace(tw, 'nic');
    rl.attachTrace(tr, 'lan');
    rw.attachTrace(tr, 'wan');
    const pollables: Pollable[] = [];
    const counters = new Counters();
    const quiet = (): void => undefined;
    const env: ComponentEnv = {
      name: 'router',
      config: {
        domains: { lan: { address: '198.18.0.1/24', forward: [{ to: 'wan', nat: true }] }, wan: { address: '198.19.0.1/24', gateway: '198.19.0.254' } },
        'verify-checksums': false,
      },
      configSource: { file: '(trace bench)', path: 'router' },
      sessions: new Map([['lan', rl], ['wan', rw]]),
      fds: {},
      ep: { add: (p: Pollable) => pollables.push(p), remove: quiet, kick: quiet } as unknown as Entrypoint,
      counters,
      log: { info: quiet, warn: quiet, error: quiet },
      trace: tr,
    };
    const router = createRouter(env);
    router.start();
    try {
      const st = router.status() as { domains: { mac: string }[] };
      const lanMac = st.domains[0].mac;
      const wanMac = st.domains[1].mac;
      const udp = encodeFrame({
        kind: 'ipv4', eth: { dst: lanMac, src: HOST }, ip: { src: '198.18.0.10', dst: '203.0.113.9' },
        l4: { proto: 'udp', udp: { srcPort: 5000, dstPort: 5201, payload: new Uint8Array(payload).fill(0x5a) } },
      });
      if (udp.length > SLOT) throw new RangeError(`trace bench path: payload ${payload} does not fit a ${SLOT}-byte slot`);
      const pump = (): void => {
        for (let k = 0; k < 4; k++) for (const p of pollables) if (p.pending?.() === true) p.run(false);
      };
      const drain = (): void => {
        for (const e of [dl, dw]) {
          e.in.receive(quiet, 1024);
          e.in.flushAcks();
        }
      };
      const send = (e: typeof dl, pkt: Uint8Array): void => {
        const s = e.out.alloc();
        e.out.buf.set(pkt, s);
        e.out.submit(s, pkt.length);
        e.out.flush();
      };
      // The first packet opens the connection and makes the router ask for the gateway's MAC.
      send(dl, udp);
      pump();
      drain();
      send(dw, encodeFrame({ kind: 'arp', eth: { dst: wanMac, src: GW }, arp: { op: 'reply', senderMac: GW, senderIp: '198.19.0.254', targetMac: wanMac, targetIp: '198.19.0.1' } }));
      pump();
      drain();
      if (counters.get('forwarded') !== 1) throw new Error('trace bench path: the router did not forward the first packet');

      // The drivers, traced as the nic-driver is (src/components/nic-driver/index.ts):
      // the session ends time the fill and the handler, traceRuns the batch.
      const out = dl.out;
      out.traceFill('driver.read');
      let rxCount = 0;
      const rxPollable = traceRuns(tl, 'driver.rx_batch', {
        fd: -1,
        run(): number {
          for (let i = 0; i < rxCount; i++) {
            const off = out.alloc();
            if (off < 0) throw new Error('trace bench path: no free slot');
            out.buf.set(udp, off);
            out.submit(off, udp.length);
          }
          out.flush();
          return rxCount;
        },
      }, true);
      const rxLan = (n: number): void => {
        rxCount = n;
        rxPollable.run(false);
      };
      const scratch = new Uint8Array(SLOT);
      const wanIn = dw.in;
      wanIn.traceHandler('driver.write');
      const txWan = sinkPollable(wanIn, (off, len) => {
        scratch.set(wanIn.buf.subarray(off, off + len));
      });
      const routerLan = pollables[0];
      const round = (): number => {
        const c0 = process.cpuUsage();
        for (let k = 0; k < packets; k += batch) {
          rxLan(batch);
          routerLan.run(false);
          txWan.run(false);
        }
        const c = process.cpuUsage(c0);
        return ((c.user + c.system) * 1e3) / packets;
      };
      const ns: Record<string, number[]> = { off: [], aggregates: [], events: [] };
      let spans = 0;
      for (let r = 0; r <= reps; r++) {
        for (let k = 0; k < MODES.length; k++) {
          const m = MODES[(k + r) % MODES.length];
          for (const t of tracers) t.setMode(m, true);
          const x = round();
          if (r === 0) continue; // warm-up
          ns[m].push(x);
          if (m === 'events') spans = tracers.reduce((a, t) => a + t.snapshot().procs.reduce((s, p) => s + p.count, 0), 0) / packets;
        }
      }
      const r1 = (x: number): number => Math.round(x);
      return {
        payload,
        batch,
        nsPerPacket: { off: r1(median(ns.off)), aggregates: r1(median(ns.aggregates)), events: r1(median(ns.events)) },
        spansPerPacket: Math.round(spans * 10) / 10,
      };
    } finally {
      router.stop?.();
    }
  } finally {
    for (const e of ends) e.close();
  }
}
