// The ARP cache of one domain, and the small owned pool that holds packets
// while their next hop is being resolved.
//
// An entry is either resolving (no MAC yet; packets wait in its queue) or
// resolved. A resolved entry past its expiry stays usable while a refresh
// request is out (so traffic does not stall every timeout); if the refresh
// gets no answer within max-tries requests the entry goes away.
import { Buffer } from 'node:buffer';

export class ArpEntry {
  readonly ip: number;
  readonly mac = new Uint8Array(6);
  resolved = false;
  /** Resolved: when the entry needs a refresh. */
  expires = 0;
  /** A request is outstanding (resolving, or refreshing a resolved entry). */
  probing = false;
  tries = 0;
  nextTry = 0;
  /** Pool slots of the packets waiting for this next hop, and their lengths. */
  readonly queue: number[] = [];
  readonly queueLen: number[] = [];

  constructor(ip: number) {
    this.ip = ip;
  }
}

/** Entries per domain at most; beyond it nothing new is learned or resolved until entries expire. */
export const ARP_MAX_ENTRIES = 4096;

export class ArpCache {
  /** By address as a signed int32 (a Smi key: no allocation on lookup). */
  readonly entries = new Map<number, ArpEntry>();

  get(ip: number): ArpEntry | undefined {
    return this.entries.get(ip | 0);
  }

  /** A new entry, or undefined when the cache is full. */
  add(ip: number): ArpEntry | undefined {
    if (this.entries.size >= ARP_MAX_ENTRIES) return undefined;
    const e = new ArpEntry(ip);
    this.entries.set(ip | 0, e);
    return e;
  }

  delete(e: ArpEntry): void {
    this.entries.delete(e.ip | 0);
  }
}

/**
 * Fixed number of packet buffers, allocated on first use and kept. Buffers are
 * node Buffers so releasing a packet copies with Buffer#copy (no view allocation).
 */
export class PendingPool {
  readonly slots: number;
  readonly slotSize: number;
  #bufs: (Buffer | undefined)[];
  #free: number[] = [];
  #next = 0;

  constructor(slots: number, slotSize: number) {
    this.slots = slots;
    this.slotSize = slotSize;
    this.#bufs = new Array(slots).fill(undefined);
  }

  get inUse(): number {
    return this.#next - this.#free.length;
  }

  /** A slot id, or -1 when every slot holds a packet. */
  alloc(): number {
    const f = this.#free.pop();
    if (f !== undefined) return f;
    if (this.#next >= this.slots) return -1;
    const id = this.#next++;
    this.#bufs[id] = Buffer.allocUnsafeSlow(this.slotSize);
    return id;
  }

  buf(id: number): Buffer {
    return this.#bufs[id] as Buffer;
  }

  free(id: number): void {
    this.#free.push(id);
  }
}
