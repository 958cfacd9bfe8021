// The warm table: the router's connections as conn-sync last heard of them,
// one 40-byte record each (src/components/router/conn-record.ts for IPv4,
// conn-record6.ts for IPv6: both share the slots and the bound), keyed by
// the original direction (family, protocol, ingress domain, addresses, ports).
// Fixed capacity: the records live in one preallocated buffer, slots are
// reused through a free list, and an insert into a full table is refused
// (the caller counts it). Every record is checked by decodeRecord before it
// is applied (decodeRecord6 for an IPv6 one); one that fails changes nothing.
//
// Restore (after the router restarted): every record is sent back, and
// marked with the restore's generation when the router confirms it (it
// exports each connection it installed); confirm() / forgetUnconfirmed()
// drop, after the restore, the records the router refused (its policy
// changed, a collision), so they are not offered again and again.
import { getU16, getU32 } from '../../net/bytes.ts';
import { Buffer } from 'node:buffer';
import { ConnRecord, decodeRecord, REC_EXPIRED, REC_OK, RECORD_LEN } from '../router/conn-record.ts';
import { ConnRecord6, decodeRecord6, isRecord6 } from '../router/conn-record6.ts';

/** Domains a record may name: conn-sync does not know the router's config (the router checks them). */
const ANY_DOMAIN = 255;

/** apply(): what happened. */
export const APPLY_ADDED = 0;
export const APPLY_UPDATED = 1;
export const APPLY_REMOVED = 2;
/** An expired record for a connection the table does not hold. */
export const APPLY_UNKNOWN = 3;
export const APPLY_FULL = 4;
/** Negative: -(the decoder's reason, RECORD_ERRORS). */

export class WarmTable {
  readonly max: number;
  readonly #recs: Uint8Array;
  readonly #keys: (string | undefined)[];
  readonly #gen: Int32Array;
  readonly #bySlot = new Map<string, number>();
  readonly #free: number[] = [];
  readonly #rec = new ConnRecord();
  readonly #rec6 = new ConnRecord6();
  /** Generation of the restore in progress (0: none yet). */
  generation = 0;

  constructor(max: number) {
    this.max = max;
    this.#recs = new Uint8Array(max * RECORD_LEN);
    this.#keys = new Array<string | undefined>(max).fill(undefined);
    this.#gen = new Int32Array(max);
    for (let i = max - 1; i >= 0; i--) this.#free.push(i);
  }

  get size(): number {
    return this.#bySlot.size;
  }

  /** Apply the record at buf[off, off + RECORD_LEN): APPLY_* or -(decoder reason). */
  apply(buf: Uint8Array, off: number): number {
    let key: string;
    let kind: number;
    if (isRecord6(buf, off)) {
      const r = this.#rec6;
      const e = decodeRecord6(buf, off, ANY_DOMAIN, r);
      if (e !== REC_OK) return -e;
      kind = r.kind;
      key = `6/${r.proto}/${r.inDom}/${Buffer.from(buf.buffer, buf.byteOffset + off + 4, RECORD_LEN - 4).toString('hex')}`;
    } else {
      const r = this.#rec;
      const e = decodeRecord(buf, off, ANY_DOMAIN, r);
      if (e !== REC_OK) return -e;
      kind = r.kind;
      key = `${r.proto}/${r.inDom}/${getU32(buf, off + 8)}/${getU16(buf, off + 16)}/${getU32(buf, off + 12)}/${getU16(buf, off + 18)}`;
    }
    const slot = this.#bySlot.get(key);
    if (kind === REC_EXPIRED) {
      if (slot === undefined) return APPLY_UNKNOWN;
      this.#bySlot.delete(key);
      this.#keys[slot] = undefined;
      this.#free.push(slot);
      return APPLY_REMOVED;
    }
    if (slot !== undefined) {
      this.#recs.set(buf.subarray(off, off + RECORD_LEN), slot * RECORD_LEN);
      this.#gen[slot] = this.generation;
      return APPLY_UPDATED;
    }
    const s = this.#free.pop();
    if (s === undefined) return APPLY_FULL;
    this.#recs.set(buf.subarray(off, off + RECORD_LEN), s * RECORD_LEN);
    this.#keys[s] = key;
    this.#gen[s] = this.generation;
    this.#bySlot.set(key, s);
    return APPLY_ADDED;
  }

  /** Start a restore: a new generation; returns it. Records the router confirms from now on carry it. */
  beginRestore(): number {
    return ++this.generation;
  }

  /** Slots 0 .. max - 1: is slot i in use? */
  used(i: number): boolean {
    return this.#keys[i] !== undefined;
  }

  /** Copy slot i's record to out[off, off + RECORD_LEN). */
  copy(i: number, out: Uint8Array, off: number): void {
    out.set(this.#recs.subarray(i * RECORD_LEN, (i + 1) * RECORD_LEN), off);
  }

  /** After a restore: remove the records the router did not confirm (generation older than the restore's). Returns how many. */
  forgetUnconfirmed(): number {
    let n = 0;
    for (let i = 0; i < this.max; i++) {
      const key = this.#keys[i];
      if (key === undefined || this.#gen[i] === this.generation) continue;
      this.#bySlot.delete(key);
      this.#keys[i] = undefined;
      this.#free.push(i);
      n++;
    }
    return n;
  }
}
