// Connection tracking for IPv6: the same states as IPv4 (tracking.ts works on
// a Conn6 as on a Conn), in a table of its own so the IPv4 table keeps its
// int32 keys and its speed; the slots, free list and index are shared
// (conn-index.ts). A connection is findable by two keys in one
// open-addressing Int32Array index (linear probing, backward-shift deletion):
// the original direction (proto, inDom, src, sport, dst, dport) and the reply
// direction (proto, outDom, dst, dport, src, sport): no NAT66, so the reply
// key is the original one mirrored. Addresses are four int32 words each, read
// from the packet without allocation. ICMPv6 echo: both "ports" are the id.
//
// Packets fill this table, so (as for IPv4, issue 13 finding 6) its hash is
// keyed (HalfSipHash of src/net/keyed-hash.ts: each address hashed keyed,
// then the two with ports, protocol and domain), a key lives at most
// `maxProbe` slots from its home, and one source /64 holds at most
// `perSource` connections per ingress domain.
import { getI32 } from '../../net/bytes.ts';
import { khash2, khash4 } from '../../net/keyed-hash.ts';
import { KeyedCounts } from '../../net/keyed-counts.ts';
import { ConnIndex } from './conn-index.ts';
import { Conn, CT_LINKED, CT_REFUSED_PROBE, CT_REFUSED_SOURCE } from './conntrack.ts';

export class Conn6 extends Conn {
  /** Original source and destination, as four big-endian int32 words each. */
  readonly src6 = new Int32Array(4);
  readonly dst6 = new Int32Array(4);
}

/** Keyed hash of a key whose addresses are words a0..a3 (source) and b0..b3 (destination). */
function hash6(proto: number, dom: number, a0: number, a1: number, a2: number, a3: number, sport: number,
  b0: number, b1: number, b2: number, b3: number, dport: number): number {
  return khash4(khash4(a0, a1, a2, a3), khash4(b0, b1, b2, b3), (sport << 16) | dport, (proto << 8) | dom);
}

/** The per-source key: the source's /64 (a host picks freely inside its /64). */
function source64(w0: number, w1: number): number {
  return khash2(w0, w1) | 0;
}

export class ConnTable6 extends ConnIndex<Conn6> {
  readonly perSource: number;
  readonly #bySource: KeyedCounts | undefined;
  /** Called when a connection leaves the table (the router's sync exports it as expired). */
  onRemove: ((c: Conn6) => void) | undefined;

  constructor(max: number, maxProbe = 64, perSource = 0) {
    super(max, maxProbe, () => new Conn6());
    this.perSource = perSource;
    this.#bySource = perSource > 0 ? new KeyedCounts(max, maxProbe) : undefined;
  }

  /**
   * Find the key (proto, dom, buf[srcOff..+16], sport, buf[dstOff..+16], dport):
   * slot * 2 + direction (0 original, 1 reply), or -1.
   */
  lookup(proto: number, dom: number, buf: Uint8Array, srcOff: number, sport: number, dstOff: number, dport: number): number {
    const a0 = getI32(buf, srcOff), a1 = getI32(buf, srcOff + 4), a2 = getI32(buf, srcOff + 8), a3 = getI32(buf, srcOff + 12);
    const b0 = getI32(buf, dstOff), b1 = getI32(buf, dstOff + 4), b2 = getI32(buf, dstOff + 8), b3 = getI32(buf, dstOff + 12);
    const idx = this.index;
    const mask = this.mask;
    let i = hash6(proto, dom, a0, a1, a2, a3, sport, b0, b1, b2, b3, dport) & mask;
    for (let probe = 0; probe < this.maxProbe; probe++) {
      const v = idx[i];
      if (v === 0) return -1;
      const ref = v - 1;
      const c = this.conns[ref >>> 1];
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
    return -1;
  }

  /** Does the source /64 at buf[srcOff] hold perSource connections from dom already? */
  sourceFull(dom: number, buf: Uint8Array, srcOff: number): boolean {
    return this.#bySource !== undefined && this.#bySource.get(source64(getI32(buf, srcOff), getI32(buf, srcOff + 4)), dom) >= this.perSource;
  }

  /**
   * Make a filled-in Conn6 findable by both keys (the caller checked neither
   * exists): CT_LINKED, or CT_REFUSED_SOURCE / CT_REFUSED_PROBE (then it is
   * not in the table: abandon() it).
   */
  link(c: Conn6): number {
    const s = c.src6;
    const d = c.dst6;
    const src = source64(s[0], s[1]);
    const bySource = this.#bySource;
    if (bySource !== undefined && bySource.get(src, c.inDom) >= this.perSource) return CT_REFUSED_SOURCE;
    c.h0 = hash6(c.proto, c.inDom, s[0], s[1], s[2], s[3], c.oSport, d[0], d[1], d[2], d[3], c.oDport);
    c.h1 = hash6(c.proto, c.outDom, d[0], d[1], d[2], d[3], c.oDport, s[0], s[1], s[2], s[3], c.oSport);
    if (!this.placeBoth(c)) return CT_REFUSED_PROBE;
    if (bySource !== undefined && bySource.inc(src, c.inDom) < 0) {
      this.unplaceBoth(c);
      return CT_REFUSED_PROBE;
    }
    this.linked(c);
    return CT_LINKED;
  }

  protected override removed(c: Conn6): void {
    this.#bySource?.dec(source64(c.src6[0], c.src6[1]), c.inDom);
    if (this.onRemove !== undefined) this.onRemove(c);
  }
}
