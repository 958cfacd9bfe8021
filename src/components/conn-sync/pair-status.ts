// The pair's heartbeat: one 40-byte status block, sealed like a batch of
// records but with flags PAIR_FLAG_STATUS (pair-wire.ts), sent by each
// conn-sync to its peer every `heartbeat-ms`. It says the sender's role (as
// init last set it), whether it wants the whole table again (it started
// empty, or it lost messages), its table and queue, and the hash of its
// router's config (as init gave it), so each side can tell whether the peer
// is alive and runs the same policy.
//
//   0 u8 role (1 master, 2 backup)   1 u8 flags (bit 0: wants a full resync)   2 u16 zero
//   4 u32 records in the sender's table   8 u32 records in its send queue
//  12 u32 records it dropped because its send queue was full (since its start)
//  16 24 bytes: the first 24 bytes of the router's config hash (SHA-256), zero when unknown
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';

export const STATUS_LEN = 40;
export const ROLE_MASTER = 1;
export const ROLE_BACKUP = 2;
export type Role = 'master' | 'backup';
export const STATUS_WANT_RESYNC = 1;
const HASH_AT = 16;
const HASH_LEN = 24;

export interface PairStatus {
  role: Role;
  wantResync: boolean;
  entries: number;
  queued: number;
  queueDrops: number;
  /** Hex of the first 24 bytes of the config hash, or '' when the sender did not know it. */
  configHash: string;
}

/** The first 24 bytes of a "sha256:<hex>" config hash as bytes (zeros for undefined / malformed). */
export function hashPrefix(hash: string | undefined): Uint8Array {
  const out = new Uint8Array(HASH_LEN);
  const m = /^sha256:([0-9a-f]{64})$/.exec(hash ?? '');
  if (m !== null) for (let i = 0; i < HASH_LEN; i++) out[i] = parseInt(m[1].slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The hex a status block carries for "sha256:<hex>" (what a peer's configHash compares with). */
export function hashPrefixHex(hash: string | undefined): string {
  const b = hashPrefix(hash);
  return b.every((x) => x === 0) ? '' : Buffer.from(b).toString('hex');
}

export function encodeStatus(out: Uint8Array, off: number, s: { role: Role; wantResync: boolean; entries: number; queued: number; queueDrops: number; hash: Uint8Array }): void {
  out.fill(0, off, off + STATUS_LEN);
  out[off] = s.role === 'master' ? ROLE_MASTER : ROLE_BACKUP;
  out[off + 1] = s.wantResync ? STATUS_WANT_RESYNC : 0;
  setU16(out, off + 2, 0);
  setU32(out, off + 4, s.entries >>> 0);
  setU32(out, off + 8, s.queued >>> 0);
  setU32(out, off + 12, Math.min(s.queueDrops, 0xffff_ffff) >>> 0);
  out.set(s.hash.subarray(0, HASH_LEN), off + HASH_AT);
}

/** Decode a status block (authenticated already); undefined when a field is out of range. */
export function decodeStatus(b: Uint8Array, off: number): PairStatus | undefined {
  const role = b[off];
  if (role !== ROLE_MASTER && role !== ROLE_BACKUP) return undefined;
  if ((b[off + 1] & ~STATUS_WANT_RESYNC) !== 0 || getU16(b, off + 2) !== 0) return undefined;
  const hash = b.subarray(off + HASH_AT, off + HASH_AT + HASH_LEN);
  return {
    role: role === ROLE_MASTER ? 'master' : 'backup',
    wantResync: (b[off + 1] & STATUS_WANT_RESYNC) !== 0,
    entries: getU32(b, off + 4),
    queued: getU32(b, off + 8),
    queueDrops: getU32(b, off + 12),
    configHash: hash.every((x) => x === 0) ? '' : Buffer.from(hash).toString('hex'),
  };
}
