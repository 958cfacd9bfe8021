// Connection tracking for IPv6: the same states as IPv4 (tracking.ts works on
// a Conn6 as on a Conn), in a table of its own so the IPv4 table keeps its
// int32 keys and its speed. A connection is findable by two keys in one
// open-addressing Int32Array index (linear probing, backward-shift deletion):
// the original direction (proto, inDom, src, sport, dst, dport) and the reply
// direction (proto, outDom, dst, dport, src, sport): no NAT66, so the reply
// key is the original one mirrored. Addresses are four int32 words each, read
// from the packet without allocation. ICMPv6 echo: both "ports" are the id.
import { getI32 } from '../../net/bytes.ts';
import { Conn } from './conntrack.ts';

export class Conn6 extends Conn {
  /** Original source and destination, as four big-endian int32 words each. */
  readonly src6 = new Int32Array(4);
  readonly dst6 = new Int32Array(4);
}

function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x85ebca6b);
  return h ^ (h >>> 13);
}

/** Hash of a key whose addresses are words a0..a3 (source) and b0..b3 (destination). */
function hash6(proto: number, dom: number, a0: number, a1: number, a2: number, a3: number, sport: number,
  b0: number, b1: number, b2: number, b3: number, dport: number): number {
  let h = mix(0x9e3779b9, (proto << 8) | dom);
  h = mix(h, a0); h = mix(h, a1); h = mix(h, a2); h = mix(h, a3);
  h = mix(h, b0); h = mix(h, b1); h = mix(h, b2); h = mix(h, b3);
  h = mix(h, (sport << 16) | dport);
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class ConnTable6 {
  readonly max: number;
  #conns: Conn6[] = [];
  #free: Conn6[] = [];
  readonly #index: Int32Array;
  readonly #mask: number;
  #count = 0;

  constructor(max: number) {
    this.max = max;
    let size = 16;
    while (size < max * 4) size *= 2; // two keys per connection, load <= 1/2
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
  }

  get count(): number {
    return this.#count;
  }

  /** Every live connection (status). */
  *live(): IterableIterator<Conn6> {
    for (const c of this.#conns) if (c.live) yield c;
  }

  /**
   * Find the key (proto, dom, buf[srcOff..+16], sport, buf[dstOff..+16], dport):
   * slot * 2 + direction (0 original, 1 reply), or -1.
   */
  lookup(proto: number, dom: number, buf: Uint8Array, srcOff: number, sport: number, dstOff: number, dport: number): number {
    const a0 = getI32(buf, srcOff), a1 = getI32(buf, srcOff + 4), a2 = getI32(buf, srcOff + 8), a3 = getI32(buf, srcOff + 12);
    const b0 = getI32(buf, dstOff), b1 = getI32(buf, dstOff + 4), b2 = getI32(buf, dstOff + 8), b3 = getI32(buf, dstOff + 12);
    const idx = this.#index;
    const mask = this.#mask;
    let i = hash6(proto, dom, a0, a1, a2, a3, sport, b0, b1, b2, b3, dport) & mask;
    for (;;) {
      const v = idx[i];
      if (v === 0) return -1;
      const ref = v - 1;
      const c = this.#conns[ref >>> 1];
      if (c.proto === proto) {
        const s = c.src6;
        const d = c.dst6;
        if ((ref & 1) === 0) {
          if (c.inDom === dom && c.oSport === sport && c.oDport === dport && s[0] === a0 && s[1] === a1 && s[2] === a2 && s[3] === a3 &&
            d[0] === b0 && d[1] === b1 && d[2] === b2 && d[3] === b3) return ref;
        } else if (c.outDom === dom && c.oDport === sport && c.oSport === dport && d[0] === a0 && d[1] === a1 && d[2] === a2 &&
          d[3] === a3 && s[0] === b0 && s[1] === b1 && s[2] === b2 && s[3] === b3) return ref;
      }
      i = (i + 1) & mask;
    }
  }

  conn(slot: number): Conn6 {
    return this.#conns[slot];
  }

  /** A free Conn6 to fill in (proto, state, domains, ports, src6, dst6, times), then link(); undefined when full. */
  acquire(): Conn6 | undefined {
    if (this.#count >= this.max) return undefined;
    let c = this.#free.pop();
    if (c === undefined) {
      c = new Conn6();
      c.slot = this.#conns.length;
      this.#conns.push(c);
    }
    c.finOrig = false;
    c.finReply = false;
    c.pktsOrig = 0;
    c.pktsReply = 0;
    return c;
  }

  /** Make a filled-in Conn6 findable by both keys (the caller checked neither exists). */
  link(c: Conn6): void {
    const s = c.src6;
    const d = c.dst6;
    c.h0 = hash6(c.proto, c.inDom, s[0], s[1], s[2], s[3], c.oSport, d[0], d[1], d[2], d[3], c.oDport);
    c.h1 = hash6(c.proto, c.outDom, d[0], d[1], d[2], d[3], c.oDport, s[0], s[1], s[2], s[3], c.oSport);
    this.#place(c.slot * 2, c.h0);
    this.#place(c.slot * 2 + 1, c.h1);
    c.live = true;
    this.#count++;
  }

  #place(ref: number, h: number): void {
    const idx = this.#index;
    let i = h & this.#mask;
    while (idx[i] !== 0) i = (i + 1) & this.#mask;
    idx[i] = ref + 1;
  }

  #unplace(ref: number, h: number): void {
    const idx = this.#index;
    const mask = this.#mask;
    let i = h & mask;
    while (idx[i] !== ref + 1) {
      if (idx[i] === 0) return;
      i = (i + 1) & mask;
    }
    for (;;) {
      idx[i] = 0;
      let j = i;
      for (;;) {
        j = (j + 1) & mask;
        const v = idx[j];
        if (v === 0) return;
        const r = v - 1;
        const c = this.#conns[r >>> 1];
        const home = ((r & 1) === 0 ? c.h0 : c.h1) & mask;
        const stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
          idx[i] = v;
          i = j;
          break;
        }
      }
    }
  }

  remove(c: Conn6): void {
    if (!c.live) return;
    this.#unplace(c.slot * 2, c.h0);
    this.#unplace(c.slot * 2 + 1, c.h1);
    c.live = false;
    this.#count--;
    this.#free.push(c);
  }

  /** Remove every connection expired at now; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const c of this.#conns) {
      if (c.live && c.expires <= now) {
        this.remove(c);
        n++;
      }
    }
    return n;
  }
}
