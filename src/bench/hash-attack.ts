// The hash-flooding attack of issue 13 (finding 6), rebuilt: connection keys
// chosen so that the router's old, unkeyed conntrack hash (ctHashLegacy)
// gives them all the same low 16 bits, i.e. the same home slot in any index
// of up to 65536 slots. Each of the old hash's steps (xor-shift, multiply by
// an odd constant, xor of a key word) is invertible, so an attacker picks the
// output and computes the source address that yields it: one key per output
// value, no search. Used by `microgate hash-bench` and the unit tests, which
// show the same keys spread under the keyed hash.
import { isMartianSourceIpv4 } from '../net/addr.ts';
import { ctHashLegacy } from '../components/router/conntrack.ts';

/** The inverse of an odd number modulo 2^32 (Newton's iteration). */
function inverse(c: number): number {
  let x = c | 0;
  for (let i = 0; i < 5; i++) x = Math.imul(x, (2 - Math.imul(c, x)) | 0);
  return x;
}

/** x such that x ^ (x >>> s) === y. */
function unXorShift(y: number, s: number): number {
  let x = y | 0;
  for (let i = 0; i < 32; i += s) x = y ^ (x >>> s);
  return x | 0;
}

const C1 = 0x85ebca6b;
const C2 = 0xc2b2ae35;
const I1 = inverse(C1);
const I2 = inverse(C2);

/** The source address that makes ctHashLegacy(proto, dom, src, sport, dst, dport) === out. */
export function legacySourceFor(out: number, proto: number, dom: number, sport: number, dst: number, dport: number): number {
  const h4 = unXorShift(out | 0, 16);
  const h3 = unXorShift(Math.imul(h4, I2) ^ ((proto << 8) | dom), 13);
  const h2 = unXorShift(Math.imul(h3, I1) ^ ((sport << 16) | dport), 16);
  const h1 = unXorShift(Math.imul(h2, I2) ^ dst, 13);
  return (Math.imul(h1, I1) ^ 0x9e3779b9) >>> 0;
}

export interface ChosenKey {
  src: number;
  sport: number;
}

/**
 * n (source, source port) pairs that, sent as new connections (proto, dom, src,
 * sport, dst, dport), all hash to low 16 bits `home` under the old hash; only
 * sources a router would accept from the outside (no martians).
 */
export function legacyCollidingKeys(n: number, proto: number, dom: number, dst: number, dport: number, home = 0x1234, sport = 40000): ChosenKey[] {
  const keys: ChosenKey[] = [];
  for (let high = 0; keys.length < n && high < 0x10000; high++) {
    const out = ((high << 16) | (home & 0xffff)) | 0;
    const src = legacySourceFor(out, proto, dom, sport, dst, dport);
    if (isMartianSourceIpv4(src)) continue;
    if (((ctHashLegacy(proto, dom, src, sport, dst, dport) ^ out) | 0) !== 0) throw new Error('hash-attack: inversion failed');
    keys.push({ src, sport });
  }
  if (keys.length < n) throw new Error(`hash-attack: only ${keys.length} keys for one home slot`);
  return keys;
}
