// `microgate hash-bench`: what a hash-flooding attack on the router's
// connection table costs, before and after issue 13. Fills a conntrack table
// to 16384 connections (port-forward connections, as spoofed SYNs to a
// forwarded port would create them) with random keys and with keys chosen to
// collide under the old unkeyed hash (hash-attack.ts), in a table using the
// old hash with unbounded probing and in one using the keyed hash with the
// probe bound, then times lookups of keys that are not in the table (what
// every new SYN costs) and of keys that are, all four side by side in one
// run, rounds interleaved (order rotated, each timed pass after an untimed
// one). Prints the chosen/random ratio of each hash.
import { parseArgs } from 'node:util';
import { ConnTable, CT_LINKED, ctHash, ctHashLegacy } from '../components/router/conntrack.ts';
import { IPPROTO_TCP } from '../net/ipv4.ts';
import { legacyCollidingKeys, type ChosenKey } from './hash-attack.ts';
import { median } from './stats.ts';

export const HASH_BENCH_HELP = `Usage: microgate hash-bench [--connections N] [--probes N] [--rounds N] [--json]

Fills a router connection table (default 16384 connections) with random keys
and with keys built to collide under the old unkeyed conntrack hash, once with
the old hash (unbounded linear probing) and once with the keyed hash
(HalfSipHash-1-3, random secret, bounded probing), and prints the cost of a
lookup that misses (a new connection) and one that hits, chosen vs random
side by side. Pure computation, no root, no network.`;

const WAN = 0;
const DMZ = 1;
const ROUTER_WAN = 0xc6130001 | 0; // 198.19.0.1, the forward's address
const HOST = 0xc6128002 | 0; // 198.18.128.2
const FWD_PORT = 80;
const HOST_PORT = 8080;
/** Lookups per figure for the old table under attack (each costs ~0.3 ms). */
const LEGACY_CHOSEN_LOOKUPS = 256;

export interface HashBenchRow {
  hash: 'legacy' | 'keyed';
  keys: 'random' | 'chosen';
  connections: number;
  refused: number;
  longestProbe: number;
  missNs: number;
  hitNs: number;
}

export interface HashBenchResult {
  rows: HashBenchRow[];
  /** chosen miss / random miss, per hash. */
  ratio: { legacy: number; keyed: number };
  /** keyed / legacy on random keys: what the keyed hash costs. */
  keyedCost: { miss: number; hit: number };
  /** The hash functions alone, ns per call (a loop over varying keys). */
  hashNs: { legacy: number; keyed: number };
}

/** ns per call of each conntrack hash, the two alternating over `rounds` rounds (median). */
function hashAlone(rounds: number): { legacy: number; keyed: number } {
  const N = 1_000_000;
  const legacy: number[] = [];
  const keyed: number[] = [];
  let sink = 0;
  for (let r = 0; r <= rounds; r++) {
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink ^= ctHashLegacy(6, 0, i, 40000 + (i & 1023), ROUTER_WAN, 80);
    const a = Number(process.hrtime.bigint() - t0) / N;
    t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink ^= ctHash(6, 0, i, 40000 + (i & 1023), ROUTER_WAN, 80);
    const b = Number(process.hrtime.bigint() - t0) / N;
    if (r === 0) continue;
    legacy.push(a);
    keyed.push(b);
  }
  if (sink === 0.5) process.stdout.write('');
  return { legacy: median(legacy), keyed: median(keyed) };
}

function randomKeys(n: number, seed: number): ChosenKey[] {
  let s = seed | 0;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const out: ChosenKey[] = [];
  while (out.length < n) {
    const src = next();
    const a = src >>> 24;
    if (a === 0 || a === 127 || a >= 224 || a === 10) continue; // plain unicast outside sources
    out.push({ src, sport: 1024 + (next() % 64512) });
  }
  return out;
}

function fill(t: ConnTable, keys: readonly ChosenKey[]): number {
  let refused = 0;
  for (const k of keys) {
    const c = t.acquire();
    if (c === undefined) break;
    c.proto = IPPROTO_TCP;
    c.inDom = WAN;
    c.oSrc = k.src | 0;
    c.oSport = k.sport;
    c.oDst = ROUTER_WAN;
    c.oDport = FWD_PORT;
    c.outDom = DMZ;
    c.rSrc = HOST;
    c.rSport = HOST_PORT;
    c.rDst = k.src | 0;
    c.rDport = k.sport;
    c.expires = Infinity;
    if (t.link(c) !== CT_LINKED) {
      t.abandon(c);
      refused++;
    }
  }
  return refused;
}

/** Nanoseconds per lookup of each key (original direction), and a checksum that keeps the loop alive. */
function timeLookups(t: ConnTable, src: Int32Array, sport: Int32Array): { ns: number; sum: number } {
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < src.length; i++) sum += t.lookup(IPPROTO_TCP, WAN, src[i], sport[i], ROUTER_WAN, FWD_PORT);
  const ns = Number(process.hrtime.bigint() - t0) / src.length;
  return { ns, sum };
}

function columns(keys: readonly ChosenKey[]): { src: Int32Array; sport: Int32Array } {
  return { src: Int32Array.from(keys, (k) => k.src | 0), sport: Int32Array.from(keys, (k) => k.sport) };
}

export function hashBench(connections = 16384, probes = 4096, rounds = 11): HashBenchResult {
  const chosen = legacyCollidingKeys(connections + probes, IPPROTO_TCP, WAN, ROUTER_WAN, FWD_PORT);
  const random = randomKeys(connections + probes, 0x2545f491);
  const sets = { random, chosen } as const;
  const cases: { row: HashBenchRow; t: ConnTable; miss: ReturnType<typeof columns>; hit: ReturnType<typeof columns>; missNs: number[]; hitNs: number[] }[] = [];
  for (const hash of ['legacy', 'keyed'] as const) {
    for (const kind of ['random', 'chosen'] as const) {
      const keys = sets[kind];
      const t = new ConnTable(connections, hash === 'legacy' ? { legacyHash: true } : {});
      const refused = fill(t, keys.slice(0, connections));
      const row: HashBenchRow = { hash, keys: kind, connections: t.count, refused, longestProbe: t.longestProbe(), missNs: NaN, hitNs: NaN };
      // The old table under attack costs ~0.3 ms a lookup: fewer of them (the figure is per lookup).
      const n = hash === 'legacy' && kind === 'chosen' ? Math.min(probes, LEGACY_CHOSEN_LOOKUPS) : probes;
      // Hits: an even spread over the inserted keys.
      const step = Math.max(1, Math.floor(connections / n));
      const hitKeys = keys.slice(0, connections).filter((_, i) => i % step === 0).slice(0, n);
      cases.push({ row, t, miss: columns(keys.slice(connections, connections + n)), hit: columns(hitKeys), missNs: [], hitNs: [] });
    }
  }
  let sink = 0;
  for (let r = 0; r <= rounds; r++) {
    // The order rotates each round, so no case always follows the slow one.
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + r) % cases.length];
      // An untimed pass first: the case before (above all the old table under
      // attack) leaves the caches cold, and each timed pass is only ~1 ms.
      if (r > 0) sink += timeLookups(c.t, c.miss.src, c.miss.sport).sum + timeLookups(c.t, c.hit.src, c.hit.sport).sum;
      const m = timeLookups(c.t, c.miss.src, c.miss.sport);
      const h = timeLookups(c.t, c.hit.src, c.hit.sport);
      sink += m.sum + h.sum;
      if (r === 0) continue; // warm-up round
      c.missNs.push(m.ns);
      c.hitNs.push(h.ns);
    }
  }
  if (sink === 0.5) process.stdout.write(''); // never true; keeps the sums observable
  for (const c of cases) {
    c.row.missNs = median(c.missNs);
    c.row.hitNs = median(c.hitNs);
  }
  const rows = cases.map((c) => c.row);
  const get = (hash: string, keys: string): HashBenchRow => rows.find((x) => x.hash === hash && x.keys === keys) as HashBenchRow;
  return {
    rows,
    ratio: {
      legacy: get('legacy', 'chosen').missNs / get('legacy', 'random').missNs,
      keyed: get('keyed', 'chosen').missNs / get('keyed', 'random').missNs,
    },
    keyedCost: {
      miss: get('keyed', 'random').missNs / get('legacy', 'random').missNs,
      hit: get('keyed', 'random').hitNs / get('legacy', 'random').hitNs,
    },
    hashNs: hashAlone(rounds),
  };
}

export function formatHashBench(r: HashBenchResult, probes: number, rounds: number): string {
  const n = r.rows[0]?.connections ?? 0;
  const lines = [
    `conntrack filled to ${n} connections (2 keys each); ${probes} lookups per figure (old table under attack: ${Math.min(probes, LEGACY_CHOSEN_LOOKUPS)}), median of ${rounds} interleaved rounds`,
    'hash                 keys    refused  longest probe   miss ns/lookup   hit ns/lookup',
  ];
  for (const x of r.rows) {
    const name = x.hash === 'legacy' ? 'old (unkeyed)' : 'keyed (HalfSipHash)';
    lines.push(`${name.padEnd(20)} ${x.keys.padEnd(7)} ${String(x.refused).padStart(7)}  ${String(x.longestProbe).padStart(13)}   ${x.missNs.toFixed(1).padStart(14)}   ${x.hitNs.toFixed(1).padStart(13)}`);
  }
  lines.push(`chosen / random, miss: old ${r.ratio.legacy.toFixed(1)}x, keyed ${r.ratio.keyed.toFixed(2)}x (target: keyed within 2x)`);
  lines.push(`keyed / old on random keys: miss ${r.keyedCost.miss.toFixed(2)}x, hit ${r.keyedCost.hit.toFixed(2)}x`);
  lines.push(`the hash alone: old ${r.hashNs.legacy.toFixed(1)} ns, keyed ${r.hashNs.keyed.toFixed(1)} ns per key (${(r.hashNs.keyed / r.hashNs.legacy).toFixed(1)}x)`);
  return lines.join('\n');
}

export async function hashBenchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string' },
      probes: { type: 'string' },
      rounds: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HASH_BENCH_HELP}\n`);
    return 0;
  }
  const num = (v: string | undefined, d: number, min: number, max: number, name: string): number => {
    const x = v === undefined ? d : Number(v);
    if (!Number.isInteger(x) || x < min || x > max) throw new RangeError(`--${name}: expected an integer ${min} to ${max} (got ${v})`);
    return x;
  };
  let connections: number;
  let probes: number;
  let rounds: number;
  try {
    connections = num(values.connections, 16384, 16, 32768, 'connections');
    probes = num(values.probes, 4096, 1, 16384, 'probes');
    rounds = num(values.rounds, 11, 1, 100, 'rounds');
  } catch (e) {
    process.stderr.write(`microgate hash-bench: ${(e as Error).message}\n`);
    return 2;
  }
  const r = hashBench(connections, probes, rounds);
  process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatHashBench(r, probes, rounds)}\n`);
  return 0;
}
