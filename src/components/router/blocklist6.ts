// A set of IPv6 prefixes with optional expiry (a domain's `blocklist` entries
// with an IPv6 prefix), answering "is this source in it?" without allocating:
// one open-addressing table per distinct prefix length, keyed on the masked
// address's four int32 words, probed longest length first (one probe run per
// distinct length, at most 129). Entries come from the config only.
import { getI32 } from '../../net/bytes.ts';
import { khash4 } from '../../net/keyed-hash.ts';

function mask32(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? -1 : (-1 << (32 - bits));
}

/** Keyed (src/net/keyed-hash.ts), like the IPv4 blocklist's: lookups are of sources packets choose. */
function hash(w0: number, w1: number, w2: number, w3: number, len: number): number {
  return khash4(w0 ^ len, w1, w2, w3);
}

class Table6 {
  readonly length: number;
  readonly m: Int32Array;
  keys = new Int32Array(0);
  expires = new Float64Array(0);
  used = new Uint8Array(0);
  constructor(length: number, entries: readonly { words: Int32Array; expires: number }[]) {
    this.length = length;
    this.m = Int32Array.from([0, 1, 2, 3], (k) => mask32(length - 32 * k));
    let cap = 8;
    while (cap < entries.length * 2) cap *= 2;
    this.keys = new Int32Array(cap * 4);
    this.expires = new Float64Array(cap);
    this.used = new Uint8Array(cap);
    for (const e of entries) {
      let i = hash(e.words[0], e.words[1], e.words[2], e.words[3], length) & (cap - 1);
      while (this.used[i] !== 0) i = (i + 1) & (cap - 1);
      this.used[i] = 1;
      for (let k = 0; k < 4; k++) this.keys[i * 4 + k] = e.words[k];
      this.expires[i] = e.expires;
    }
  }
  has(buf: Uint8Array, off: number, now: number): boolean {
    const m = this.m;
    const w0 = getI32(buf, off) & m[0], w1 = getI32(buf, off + 4) & m[1], w2 = getI32(buf, off + 8) & m[2], w3 = getI32(buf, off + 12) & m[3];
    const cap = this.used.length - 1;
    for (let i = hash(w0, w1, w2, w3, this.length) & cap; this.used[i] !== 0; i = (i + 1) & cap) {
      const b = i * 4;
      if (this.keys[b] === w0 && this.keys[b + 1] === w1 && this.keys[b + 2] === w2 && this.keys[b + 3] === w3) return this.expires[i] > now;
    }
    return false;
  }
}

export class Blocklist6 {
  readonly #tables: Table6[];
  /** The entries as given (status). */
  readonly entries: readonly { network: Uint8Array; prefix: number; expires: number }[];

  /** Entries: a 16-byte network (host bits zero), its prefix length, and when it expires (Infinity: never). */
  constructor(entries: readonly { network: Uint8Array; prefix: number; expires: number }[]) {
    this.entries = entries;
    const byLen = new Map<number, { words: Int32Array; expires: number }[]>();
    for (const e of entries) {
      const words = Int32Array.from([0, 1, 2, 3], (k) => getI32(e.network, 4 * k));
      const l = byLen.get(e.prefix) ?? [];
      l.push({ words, expires: e.expires });
      byLen.set(e.prefix, l);
    }
    this.#tables = [...byLen.entries()].sort((a, b) => b[0] - a[0]).map(([len, es]) => new Table6(len, es));
  }

  /** Is the address at buf[off..off+16] in an unexpired entry? */
  has(buf: Uint8Array, off: number, now: number): boolean {
    const t = this.#tables;
    for (let i = 0; i < t.length; i++) if (t[i].has(buf, off, now)) return true;
    return false;
  }
}
