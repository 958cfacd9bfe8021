// Traffic mirroring for the monitor (a SPAN port): every frame received on a
// mirrored domain (as received, before validation: crafted packets the router
// drops are exactly what the monitor must see) and every frame the router
// sends on one is copied into a slot of the `mirror` session. Forwarding
// never waits for the monitor: with no free slot the copy is dropped and
// counted (`drop.mirror-full`).
//
// The copy keeps its virtio_net_hdr; its num_buffers field (bytes 10..11,
// little-endian, unused on Nic sessions) carries the domain index in bits
// 0..13, bit 14 "second copy" and the direction in bit 15 (0 received, 1
// sent). A forwarded frame whose ingress domain is mirrored on receive is
// copied twice (as received, and as sent after NAT); the sent copy carries
// bit 14, so the monitor tracks its flow but raises no second alert for the
// same packet (one alert per packet per signature, as Suricata on one tap).
import { Buffer } from 'node:buffer';
import { got } from '../../config/reader.ts';
import type { Counters } from '../../runtime/counters.ts';
import { SectionReader } from '../../runtime/component.ts';
import type { EgressPort } from './types.ts';

export const MIRROR_PORT = 'mirror';

export interface MirrorConfig {
  /** Domain names mirrored (in the router's domain order). */
  readonly domains: readonly string[];
  readonly rx: boolean;
  readonly tx: boolean;
}

const copyBytes = Buffer.prototype.copy;

/**
 * Parse the router's `mirror` key: `{ domains: [wan, lan], direction: both|rx|tx }`;
 * `path` is where it sits in `file` (errors are ConfigErrors naming it).
 */
export function parseMirrorConfig(raw: unknown, domainNames: readonly string[], file: string, path: string): MirrorConfig | undefined {
  if (raw === undefined) return undefined;
  const r: SectionReader = new SectionReader({ file, path });
  const at = r.base;
  const m = r.obj(raw, at, ['domains', 'direction'], 'a mapping like { domains: [wan, lan] }');
  const names = domainNames.join(', ');
  if (!Array.isArray(m.domains) || m.domains.length === 0) {
    r.fail([...at, 'domains'], `expected a non-empty list of domain names (one of: ${names})${got(m.domains)}`);
  }
  const seen = new Set<string>();
  (m.domains as unknown[]).forEach((d, i) => {
    if (typeof d !== 'string' || !domainNames.includes(d)) r.fail([...at, 'domains', i], `expected the name of a domain (one of: ${names})${got(d)}`);
    if (seen.has(d)) r.fail([...at, 'domains', i], `expected each domain once; "${d}" is listed twice`);
    seen.add(d);
  });
  const dir = m.direction === undefined ? 'both' : r.oneOf(m.direction, [...at, 'direction'], ['both', 'rx', 'tx']);
  if (domainNames.includes(MIRROR_PORT)) {
    r.fail(at, `a domain named "${MIRROR_PORT}" clashes with the mirror session's port; rename the domain`);
  }
  return { domains: domainNames.filter((n) => seen.has(n)), rx: dir !== 'tx', tx: dir !== 'rx' };
}

export class Mirror {
  readonly #port: EgressPort;
  readonly #counters: Counters;
  readonly #rx: Uint8Array;
  readonly #tx: Uint8Array;
  #dirty = false;
  readonly #full: number;
  readonly #tooBig: number;
  readonly #copied: number;

  constructor(cfg: MirrorConfig, domainNames: readonly string[], port: EgressPort, counters: Counters) {
    this.#port = port;
    this.#counters = counters;
    this.#rx = new Uint8Array(domainNames.length);
    this.#tx = new Uint8Array(domainNames.length);
    domainNames.forEach((n, i) => {
      if (cfg.domains.includes(n)) {
        this.#rx[i] = cfg.rx ? 1 : 0;
        this.#tx[i] = cfg.tx ? 1 : 0;
      }
    });
    this.#full = counters.dropReason('mirror-full');
    this.#tooBig = counters.dropReason('mirror-too-big');
    this.#copied = counters.define('mirror.copied');
  }

  /** A frame (vnet header + Ethernet) received on domain dom. */
  rx(dom: number, buf: Uint8Array, off: number, len: number): void {
    if (this.#rx[dom] !== 0) this.#copy(dom, 0, buf, off, len);
  }

  /** A frame the router submitted on domain dom; ingress: the domain a forwarded frame came in on, -1 for the router's own. */
  tx(dom: number, buf: Uint8Array, off: number, len: number, ingress: number): void {
    if (this.#tx[dom] !== 0) this.#copy(dom, ingress >= 0 && this.#rx[ingress] !== 0 ? 3 : 1, buf, off, len);
  }

  /** dir: 0 received, 1 sent, 3 sent and already copied when received. */
  #copy(dom: number, dir: number, buf: Uint8Array, off: number, len: number): void {
    const port = this.#port;
    if (len > port.slotSize) {
      this.#counters.add(this.#tooBig);
      return;
    }
    const slot = port.alloc();
    if (slot < 0) {
      this.#counters.add(this.#full);
      return;
    }
    const b = port.buf;
    copyBytes.call(buf, b, slot, off, off + len);
    const tag = dom | ((dir & 1) << 15) | ((dir >> 1) << 14);
    b[slot + 10] = tag & 0xff;
    b[slot + 11] = tag >>> 8;
    port.submit(slot, len);
    this.#dirty = true;
    this.#counters.add(this.#copied);
  }

  flush(): void {
    if (this.#dirty) {
      this.#dirty = false;
      this.#port.flush();
    }
  }
}
