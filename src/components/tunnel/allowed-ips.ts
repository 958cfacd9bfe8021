// Cryptokey routing (whitepaper section 2): a table of IPv4 and IPv6
// prefixes, each owned by one peer. Outbound, the destination picks the peer
// (longest prefix wins, so a peer's /32 inside another's /24 takes its
// addresses); inbound, a decrypted packet's source must map back to the peer
// that sent it. Each family's entries are kept longest prefix first in typed
// arrays (IPv6 as four big-endian 32-bit words): a lookup is a linear scan,
// allocation-free, reading the address straight from packet memory.
import { getI32 } from '../../net/bytes.ts';

function grow<T extends Int32Array | Uint8Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

/** The 32-bit mask of word k (0..3) of an IPv6 prefix of length prefixLen. */
function wordMask(prefixLen: number, k: number): number {
  const bits = Math.min(32, Math.max(0, prefixLen - 32 * k));
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
}

export class AllowedIps {
  #net = new Int32Array(8);
  #mask = new Int32Array(8);
  #peer = new Int32Array(8);
  #prefix = new Uint8Array(8);
  #count = 0;
  // IPv6: 4 words per entry.
  #net6 = new Int32Array(32);
  #mask6 = new Int32Array(32);
  #peer6 = new Int32Array(8);
  #prefix6 = new Uint8Array(8);
  #count6 = 0;

  /** Add IPv4 prefix network/prefixLen (0..32) for peer index `peer` (addresses as u32 numbers). */
  add(network: number, prefixLen: number, peer: number): void {
    if (this.#count === this.#net.length) {
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

  /** Add IPv6 prefix network/prefixLen (0..128; network: 16 bytes) for peer index `peer`. */
  add6(network: Uint8Array, prefixLen: number, peer: number): void {
    if (network.length !== 16 || prefixLen < 0 || prefixLen > 128) throw new RangeError('an IPv6 prefix is 16 bytes and 0..128 bits');
    if (this.#count6 === this.#peer6.length) {
      this.#net6 = grow(this.#net6);
      this.#mask6 = grow(this.#mask6);
      this.#peer6 = grow(this.#peer6);
      this.#prefix6 = grow(this.#prefix6);
    }
    let i = this.#count6;
    while (i > 0 && this.#prefix6[i - 1] < prefixLen) {
      for (let k = 0; k < 4; k++) {
        this.#net6[4 * i + k] = this.#net6[4 * (i - 1) + k];
        this.#mask6[4 * i + k] = this.#mask6[4 * (i - 1) + k];
      }
      this.#peer6[i] = this.#peer6[i - 1];
      this.#prefix6[i] = this.#prefix6[i - 1];
      i--;
    }
    for (let k = 0; k < 4; k++) {
      const m = wordMask(prefixLen, k);
      this.#mask6[4 * i + k] = m;
      this.#net6[4 * i + k] = getI32(network, 4 * k) & m;
    }
    this.#peer6[i] = peer;
    this.#prefix6[i] = prefixLen;
    this.#count6++;
  }

  /** The peer whose IPv4 prefix holds `addr` (int32 or u32), or -1. */
  lookup(addr: number): number {
    const a = addr | 0;
    for (let i = 0; i < this.#count; i++) {
      if ((a & this.#mask[i]) === this.#net[i]) return this.#peer[i];
    }
    return -1;
  }

  /** The peer whose IPv6 prefix holds the 16-byte address at buf[off], or -1. */
  lookup6(buf: Uint8Array, off: number): number {
    const a0 = getI32(buf, off);
    const a1 = getI32(buf, off + 4);
    const a2 = getI32(buf, off + 8);
    const a3 = getI32(buf, off + 12);
    const net = this.#net6;
    const mask = this.#mask6;
    for (let i = 0, w = 0; i < this.#count6; i++, w += 4) {
      if ((a0 & mask[w]) === net[w] && (a1 & mask[w + 1]) === net[w + 1] && (a2 & mask[w + 2]) === net[w + 2] &&
        (a3 & mask[w + 3]) === net[w + 3]) return this.#peer6[i];
    }
    return -1;
  }

  /** IPv4 entries. */
  get size(): number {
    return this.#count;
  }

  /** IPv6 entries. */
  get size6(): number {
    return this.#count6;
  }
}
