// The anti-replay window of RFC 6479, as WireGuard uses it (whitepaper 5.4.6):
// a ring of bit blocks; the block ahead of the newest counter is cleared as
// the window slides, so each check is O(1) and allocation-free. Counters are
// JavaScript numbers (exact below 2^53, see PROTOCOL.rejectAfterMessages).
//
// The ring holds RING_BITS bits in 32-bit blocks; the window (how far behind
// the newest counter a packet may still arrive) is RING_BITS - 32: 2016 with
// the default 2048 bits (wireguard-go uses 64-bit blocks and 8192 bits).

const BLOCK_BITS = 32;

export class ReplayFilter {
  readonly ringBits: number;
  /** How far behind the newest counter a counter is still accepted (once). */
  readonly windowSize: number;
  readonly #ring: Uint32Array;
  #last = 0;

  constructor(ringBits = 2048) {
    if (ringBits < 64 || (ringBits & (ringBits - 1)) !== 0) throw new RangeError('ringBits: a power of two, at least 64');
    this.ringBits = ringBits;
    this.#ring = new Uint32Array(ringBits / BLOCK_BITS);
    this.windowSize = ringBits - BLOCK_BITS;
  }

  reset(): void {
    this.#last = 0;
    this.#ring.fill(0);
  }

  /**
   * Accept `counter` (and remember it) if it is below `limit`, not older than
   * the window, and not seen before. Call only after the packet authenticated.
   */
  validate(counter: number, limit: number): boolean {
    if (!(counter < limit) || counter < 0) return false;
    const ring = this.#ring;
    const n = ring.length;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.#last) {
      const current = Math.floor(this.#last / BLOCK_BITS);
      let diff = block - current;
      if (diff > n) diff = n;
      for (let i = 1; i <= diff; i++) ring[(current + i) % n] = 0;
      this.#last = counter;
    } else if (this.#last - counter > this.windowSize) {
      return false;
    }
    const i = block % n;
    const bit = 1 << (counter - block * BLOCK_BITS);
    const old = ring[i];
    if ((old & bit) !== 0) return false;
    ring[i] = old | bit;
    return true;
  }
}
