// Payload inspection of one buffer against a rule's list of items (content,
// pcre, byte_test, byte_jump, byte_extract, isdataat, bsize), with the
// semantics of Suricata's DetectEngineContentInspection: relative items
// follow the end of the previous match, and when a later relative item fails
// the content before it is tried again at its next occurrence (bounded by a
// step budget, like Suricata's inspection recursion limit).
import type { ByteExtractItem, ByteJumpItem, ByteTestItem, ContentItem, Item } from '../rules/rule.ts';
import { pcreSearch } from '../rules/pcre.ts';
import { numTest } from '../rules/rule.ts';

const FOLD = new Uint8Array(256);
for (let i = 0; i < 256; i++) FOLD[i] = i >= 65 && i <= 90 ? i + 32 : i;

const MAX_STEPS = 3000;
const latin1 = new TextDecoder('latin1');

export class Inspector {
  /** byte_extract values by slot. */
  readonly vars = new Float64Array(64);
  #steps = 0;
  #items: readonly Item[] = [];
  #b: Uint8Array = new Uint8Array(0);
  #base = 0;
  #len = 0;
  #minEnd = 0;
  /** Items after index i that are relative (retrying i can help). */
  #relAfter: boolean[] = [];
  /** Cache: rule lists -> relative-after flags. */
  readonly #relCache = new WeakMap<readonly Item[], boolean[]>();

  /**
   * Does b[base, base+len) match `items`? With minEnd > 0, some content or
   * pcre match must end past minEnd (the window's old bytes).
   */
  match(items: readonly Item[], b: Uint8Array, base: number, len: number, minEnd = 0): boolean {
    this.#steps = 0;
    this.#items = items;
    this.#b = b;
    this.#base = base;
    this.#len = len;
    this.#minEnd = minEnd;
    let rel = this.#relCache.get(items);
    if (rel === undefined) {
      rel = items.map((_, i) => items.slice(i + 1).some(isRelative));
      this.#relCache.set(items, rel);
    }
    this.#relAfter = rel;
    return this.#run(0, 0, minEnd > 0 ? -1 : 0);
  }

  #run(i: number, prev: number, maxEnd: number): boolean {
    if (++this.#steps > MAX_STEPS) return false;
    const items = this.#items;
    if (i === items.length) return maxEnd > this.#minEnd || this.#minEnd === 0;
    const it = items[i];
    switch (it.k) {
      case 'content':
        return this.#content(it, i, prev, maxEnd);
      case 'pcre': {
        const from = it.spec.relative ? prev : 0;
        if (from > this.#len) return it.spec.negated;
        const sub = latin1.decode(this.#b.subarray(this.#base + from, this.#base + this.#len));
        const end = pcreSearch(it.spec, sub);
        if (it.spec.negated) return end < 0 && this.#run(i + 1, prev, maxEnd);
        if (end < 0) return false;
        const e = from + end;
        return this.#run(i + 1, e, Math.max(maxEnd, e));
      }
      case 'byte_test':
        return this.#byteTest(it, prev) && this.#run(i + 1, prev, maxEnd);
      case 'byte_jump': {
        const np = this.#byteJump(it, prev);
        return np >= 0 && this.#run(i + 1, np, maxEnd);
      }
      case 'byte_extract': {
        const np = this.#byteExtract(it, prev);
        return np >= 0 && this.#run(i + 1, np, maxEnd);
      }
      case 'isdataat': {
        const n = it.nVar === '' ? it.n : this.#var(it.nVar);
        const ok = it.relative ? prev + n <= this.#len : n < this.#len;
        return ok !== it.neg && this.#run(i + 1, prev, maxEnd);
      }
      case 'bsize':
        return numTest(it.m, this.#len) && this.#run(i + 1, prev, maxEnd);
    }
  }

  #var(_name: string): number {
    // Variables are resolved by slot at parse time only for byte_extract; names map to slots in order.
    return this.#varByName.get(_name) ?? 0;
  }
  readonly #varByName = new Map<string, number>();

  #content(c: ContentItem, i: number, prev: number, maxEnd: number): boolean {
    const len = this.#len;
    const pat = c.nocase ? c.lower : c.bytes;
    const plen = pat.length;
    let lo: number;
    let limit: number;
    if (c.hasDistance || c.hasWithin) {
      const distance = c.vars.distance !== undefined ? this.#var(c.vars.distance) : c.distance;
      lo = prev + distance;
      if (lo < 0) lo = 0;
      limit = len;
      if (c.hasWithin) {
        const within = c.vars.within !== undefined ? this.#var(c.vars.within) : c.within;
        limit = Math.min(len, prev + distance + within);
      }
    } else {
      lo = c.hasOffset ? (c.vars.offset !== undefined ? this.#var(c.vars.offset) : c.offset) : 0;
      limit = len;
      if (c.hasDepth) limit = Math.min(len, lo + (c.vars.depth !== undefined ? this.#var(c.vars.depth) : c.depth));
    }
    if (c.endswith) {
      if (limit < len) return c.neg && this.#run(i + 1, prev, maxEnd);
      const p = len - plen;
      const found = p >= lo && this.#eq(pat, p, c.nocase);
      if (c.neg) return !found && this.#run(i + 1, prev, maxEnd);
      return found && this.#run(i + 1, len, Math.max(maxEnd, len));
    }
    const retry = this.#relAfter[i];
    let p = this.#find(pat, lo, limit, c.nocase);
    if (c.neg) return p < 0 && this.#run(i + 1, prev, maxEnd);
    while (p >= 0) {
      const e = p + plen;
      if (this.#run(i + 1, e, Math.max(maxEnd, e))) return true;
      if (!retry && (this.#minEnd === 0 || e > this.#minEnd)) return false;
      if (this.#steps > MAX_STEPS) return false;
      p = this.#find(pat, p + 1, limit, c.nocase);
    }
    return false;
  }

  #eq(pat: Uint8Array, p: number, nocase: boolean): boolean {
    const b = this.#b;
    const at = this.#base + p;
    if (nocase) {
      for (let k = 0; k < pat.length; k++) if (FOLD[b[at + k]] !== pat[k]) return false;
    } else {
      for (let k = 0; k < pat.length; k++) if (b[at + k] !== pat[k]) return false;
    }
    return true;
  }

  /** First position p in [lo, limit - plen] where the pattern occurs, or -1. */
  #find(pat: Uint8Array, lo: number, limit: number, nocase: boolean): number {
    const plen = pat.length;
    const last = limit - plen;
    if (last < lo) return -1;
    const b = this.#b;
    const base = this.#base;
    const first = pat[0];
    if (!nocase) {
      let p = lo;
      while (p <= last) {
        const q = b.indexOf(first, base + p);
        if (q < 0 || q - base > last) return -1;
        p = q - base;
        let k = 1;
        while (k < plen && b[q + k] === pat[k]) k++;
        if (k === plen) return p;
        p++;
      }
      return -1;
    }
    for (let p = lo; p <= last; p++) {
      if (FOLD[b[base + p]] !== first) continue;
      let k = 1;
      while (k < plen && FOLD[b[base + p + k]] === pat[k]) k++;
      if (k === plen) return p;
    }
    return -1;
  }

  /** Read nbytes at pos (binary or ASCII number); NaN when out of range or not a number. */
  #read(pos: number, nbytes: number, little: boolean, base: number, bitmask: number): number {
    if (pos < 0 || pos + nbytes > this.#len) return NaN;
    const b = this.#b;
    const at = this.#base + pos;
    let v = 0;
    if (base === 0) {
      if (little) for (let k = nbytes - 1; k >= 0; k--) v = v * 256 + b[at + k];
      else for (let k = 0; k < nbytes; k++) v = v * 256 + b[at + k];
    } else {
      let digits = 0;
      for (let k = 0; k < nbytes; k++) {
        const ch = b[at + k];
        let d: number;
        if (ch >= 48 && ch <= 57) d = ch - 48;
        else if (base === 16 && ch >= 97 && ch <= 102) d = ch - 87;
        else if (base === 16 && ch >= 65 && ch <= 70) d = ch - 55;
        else break;
        if (d >= base) break;
        v = v * base + d;
        digits++;
      }
      if (digits === 0) return NaN;
    }
    if (bitmask !== 0) {
      v = (v & bitmask) >>> 0;
      let m = bitmask;
      while ((m & 1) === 0 && m !== 0) {
        v >>>= 1;
        m >>>= 1;
      }
    }
    return v;
  }

  #byteTest(t: ByteTestItem, prev: number): boolean {
    const off = t.offsetVar === '' ? t.offset : this.#var(t.offsetVar);
    const pos = (t.relative ? prev : 0) + off;
    const v = this.#read(pos, t.nbytes, t.little, t.base, t.bitmask);
    if (Number.isNaN(v)) return false;
    const want = t.valueVar === '' ? t.value : this.#var(t.valueVar);
    let r: boolean;
    switch (t.op) {
      case '<': r = v < want; break;
      case '>': r = v > want; break;
      case '=': r = v === want; break;
      case '<=': r = v <= want; break;
      case '>=': r = v >= want; break;
      case '&': r = (Number(BigInt(v) & BigInt(want))) !== 0; break;
      default: r = (Number(BigInt(v) ^ BigInt(want))) !== 0; break;
    }
    return r !== t.neg;
  }

  #byteJump(j: ByteJumpItem, prev: number): number {
    const off = j.offsetVar === '' ? j.offset : this.#var(j.offsetVar);
    const pos = (j.relative && !j.fromBeginning ? prev : 0) + off;
    const v = this.#read(pos, j.nbytes, j.little, j.base, j.bitmask);
    if (Number.isNaN(v)) return -1;
    let jump = v * j.multiplier;
    if (j.align && jump % 4 !== 0) jump += 4 - (jump % 4);
    const from = j.fromBeginning ? 0 : j.fromEnd ? this.#len : pos + j.nbytes;
    const np = from + jump + j.postOffset;
    if (np < 0 || np > this.#len) return -1;
    return np;
  }

  #byteExtract(x: ByteExtractItem, prev: number): number {
    const pos = (x.relative ? prev : 0) + x.offset;
    const v = this.#read(pos, x.nbytes, x.little, x.base, x.bitmask);
    if (Number.isNaN(v)) return -1;
    let val = v * x.multiplier;
    if (x.align > 0 && val % x.align !== 0) val += x.align - (val % x.align);
    this.vars[x.slot] = val;
    this.#varByName.set(x.name, val);
    return pos + x.nbytes;
  }
}

function isRelative(it: Item): boolean {
  switch (it.k) {
    case 'content': return it.hasDistance || it.hasWithin;
    case 'pcre': return it.spec.relative;
    case 'byte_test': case 'byte_jump': case 'byte_extract': case 'isdataat': return it.relative;
    default: return false;
  }
}
