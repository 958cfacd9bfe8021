// conn-sync's config section: `max` (records the warm table holds, like the
// router's conntrack.max), `confirm-ms` (how long after a restore's last
// record the router has to confirm what it kept) and, for an HA pair, `pair`
// (the link to the peer gateway's conn-sync: ids, MACs, batching, the send
// queue, heartbeats, full resyncs; the key is the file device "pair-key").
// Read with the project's config reader: errors name the file and the path.
import { SectionReader } from '../../runtime/component.ts';
import { formatMac, parseMac } from '../../net/addr.ts';

export interface PairConfig {
  /** This gateway's id in the pair and the peer's (u32, different). */
  self: number;
  peer: number;
  /** Source MAC of the frames sent on the sync link. */
  mac: Uint8Array;
  /** Destination MAC (the peer's, or broadcast). */
  peerMac: Uint8Array;
  /** A batch leaves when it is full (35 records) or this long after its first record. */
  batchMs: number;
  /** Records the send queue holds; one more is dropped and counted (a full resync then repairs the peer). */
  queue: number;
  /** As master: send the whole table to the peer every this many ms (0: only when the peer asks). */
  resyncMs: number;
  /** A status block (heartbeat) to the peer this often. */
  heartbeatMs: number;
  /** No authentic message from the peer for this long: the pair is degraded (peer down or link down). */
  deadMs: number;
}

export interface ConnSyncConfig {
  max: number;
  confirmMs: number;
  pair: PairConfig | undefined;
}

export const CONN_SYNC_DEFAULTS: ConnSyncConfig = { max: 16384, confirmMs: 2000, pair: undefined };
export const PAIR_DEFAULTS = { batchMs: 10, queue: 8192, resyncMs: 10_000, heartbeatMs: 200, deadMs: 1000 };
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

/** The default source MAC for pair id `self`: 02:6d (locally administered unicast) and the id. */
export function defaultPairMac(self: number): Uint8Array {
  return Uint8Array.of(0x02, 0x6d, (self >>> 24) & 0xff, (self >>> 16) & 0xff, (self >>> 8) & 0xff, self & 0xff);
}

function parsePair(r: SectionReader, raw: unknown): PairConfig {
  const at = [...r.base, 'pair'];
  const o = r.obj(raw, at, ['self', 'peer', 'mac', 'peer-mac', 'batch-ms', 'queue', 'resync-ms', 'heartbeat-ms', 'dead-ms'], 'a mapping like { self: 1, peer: 2 }');
  const self = r.int(o.self, [...at, 'self'], 0, 0xffff_ffff);
  const peer = r.int(o.peer, [...at, 'peer'], 0, 0xffff_ffff);
  if (self === peer) r.fail([...at, 'peer'], `an id different from self (both are ${self})`);
  const mac = (key: string, def: string, unicast: boolean): Uint8Array => {
    if (o[key] === undefined) return parseMac(def) as Uint8Array;
    const m = typeof o[key] === 'string' ? parseMac(o[key]) : undefined;
    if (m === undefined || (unicast && (m[0] & 1) !== 0)) {
      r.fail([...at, key], `${unicast ? 'a unicast' : 'a'} MAC address like "02:6d:00:00:00:01"${unicast ? '' : ` (or ${BROADCAST})`}`);
    }
    return m;
  };
  const heartbeatMs = r.int(o['heartbeat-ms'], [...at, 'heartbeat-ms'], 50, 10_000, PAIR_DEFAULTS.heartbeatMs);
  const deadMs = r.int(o['dead-ms'], [...at, 'dead-ms'], 100, 60_000, Math.max(PAIR_DEFAULTS.deadMs, 3 * heartbeatMs));
  if (deadMs < 2 * heartbeatMs) r.fail([...at, 'dead-ms'], `at least twice heartbeat-ms (${2 * heartbeatMs}; got ${deadMs})`);
  return {
    self,
    peer,
    mac: mac('mac', formatMac(defaultPairMac(self)), true),
    peerMac: mac('peer-mac', BROADCAST, false),
    batchMs: r.int(o['batch-ms'], [...at, 'batch-ms'], 1, 1000, PAIR_DEFAULTS.batchMs),
    queue: r.int(o.queue, [...at, 'queue'], 64, 1 << 20, PAIR_DEFAULTS.queue),
    resyncMs: r.int(o['resync-ms'], [...at, 'resync-ms'], 0, 3_600_000, PAIR_DEFAULTS.resyncMs),
    heartbeatMs,
    deadMs,
  };
}

export function parseConnSyncConfig(raw: unknown, source: { file: string; path: string }): ConnSyncConfig {
  const r = new SectionReader(source);
  const o = r.optObj(raw ?? undefined, r.base, ['max', 'confirm-ms', 'pair'], 'a mapping like { max: 16384 }');
  return {
    max: r.int(o.max, [...r.base, 'max'], 1, 1 << 20, CONN_SYNC_DEFAULTS.max),
    confirmMs: r.int(o['confirm-ms'], [...r.base, 'confirm-ms'], 100, 60000, CONN_SYNC_DEFAULTS.confirmMs),
    pair: o.pair === undefined ? undefined : parsePair(r, o.pair),
  };
}
