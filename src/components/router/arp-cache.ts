// The ARP cache of one domain, and the small owned pool that holds packets
// while their next hop is being resolved.
//
// An entry is either resolving (no MAC yet; packets wait in its queue) or
// resolved. A resolved entry past its expiry stays usable while a refresh
// request is out (so traffic does not stall every timeout); if the refresh
// gets no answer within max-tries requests the entry goes away.
//
// Entries are found through a keyed hash index (src/net/keyed-counts.ts), not
// a JS Map: V8 hashes number keys without a seed, and the addresses here come
// from packets (a host can make the router resolve addresses of its choosing),
// so a Map would let chosen addresses share one bucket chain that every
// forwarded packet's lookup walks.
import { Buffer } from 'node:buffer';
import { KeyedCounts } from '../../net/keyed-counts.ts';

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

/** The entries of one cache: a keyed index from address to a stable id, and the entries by id. */
export class ArpEntries {
  readonly #index = new KeyedCounts(ARP_MAX_ENTRIES, 64);
  readonly #byId: (ArpEntry | undefined)[] = new Array<ArpEntry | undefined>(ARP_MAX_ENTRIES).fill(undefined);

  get size(): number {
    return this.#index.size;
  }

  /** The entry of ip (int32 or u32). Nothing allocated. */
  get(ip: number): ArpEntry | undefined {
    const id = this.#index.idOf(ip, 0);
    return id < 0 ? undefined : this.#byId[id];
  }

  /** Add e (its address must be absent); false when full or no slot is within the probe bound. */
  add(e: ArpEntry): boolean {
    const id = this.#index.inc(e.ip, 0);
    if (id < 0) return false;
    this.#byId[id] = e;
    return true;
  }

  delete(ip: number): boolean {
    const id = this.#index.idOf(ip, 0);
    if (id < 0) return false;
    this.#byId[id] = undefined;
    this.#index.dec(ip, 0);
    return true;
  }

  /** Every entry; deleting the current one while iterating is allowed. */
  *values(): IterableIterator<ArpEntry> {
    const byId = this.#byId;
    for (let i = 0; i < byId.length; i++) {
      const e = byId[i];
      if (e !== undefined) yield e;
    }
  }

  clear(): void {
    this.#index.clear();
    this.#byId.fill(undefined);
  }
}

export class ArpCache {
  readonly entries = new ArpEntries();

  get(ip: number): ArpEntry | undefined {
    return this.entries.get(ip);
  }

  /** A new entry, or undefined when the cache is full. */
  add(ip: number): ArpEntry | undefined {
    if (this.entries.size >= ARP_MAX_ENTRIES) return undefined;
    const e = new ArpEntry(ip);
    return this.entries.add(e) ? e : undefined;
  }

  delete(e: ArpEntry): void {
    this.entries.delete(e.ip);
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
