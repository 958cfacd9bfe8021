// Cryptokey routing (whitepaper section 2): a table of IPv4 prefixes, each
// owned by one peer. Outbound, the destination picks the peer (longest
// prefix wins); inbound, a decrypted packet's source must map back to the
// peer that sent it. Entries are kept longest prefix first in typed arrays:
// a lookup is a linear scan of a few words, allocation-free.

export class AllowedIps {
  #net = new Int32Array(8);
  #mask = new Int32Array(8);
  #peer = new Int32Array(8);
  #prefix = new Uint8Array(8);
  #count = 0;

  /** Add prefix network/prefixLen for peer index `peer` (addresses as u32 numbers). */
  add(network: number, prefixLen: number, peer: number): void {
    if (this.#count === this.#net.length) {
      const grow = <T extends Int32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.#net = grow(this.#net);
      this.#mask = grow(this.#mask);
      this.#peer = grow(this.#peer);
      this.#prefix = grow(this.#prefix);
    }
    const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) | 0;
    // Insert keeping longest prefixes first.
    let i = this.#count;
    while (i > 0 && this.#prefix[i - 1] < prefixLen) {
      this.#net[i] = this.#net[i - 1];
      this.#mask[i] = this.#mask[i - 1];
      this.#peer[i] = this.#peer[i - 1];
      this.#prefix[i] = this.#prefix[i - 1];
      i--;
    }
    this.#net[i] = (network & mask) | 0;
    this.#mask[i] = mask;
    this.#peer[i] = peer;
    this.#prefix[i] = prefixLen;
    this.#count++;
  }

  /** The peer whose prefix holds `addr` (int32 or u32), or -1. */
  lookup(addr: number): number {
    const a = addr | 0;
    for (let i = 0; i < this.#count; i++) {
      if ((a & this.#mask[i]) === this.#net[i]) return this.#peer[i];
    }
    return -1;
  }

  get size(): number {
    return this.#count;
  }
}
