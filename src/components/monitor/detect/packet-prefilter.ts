// The prefilter of a TCP packet whose stream inspection has nothing new (past
// the stream depth, a retransmission): only the rules that inspect single
// packets (tcp-pkt, flow:no_stream) can match, so only their fast patterns
// are looked for, each no further into the payload than its content can
// end (offset + depth, startswith). A few case-sensitive patterns are found
// by the native substring search (Buffer#indexOf: 3.7x the Aho-Corasick
// scan's speed over a 64 KB payload with ET Open's 4 packet patterns,
// docs/PERFORMANCE.md; a pattern bounded to a few hundred bytes by a plain
// loop, so nothing is allocated per packet but one view of the payload at
// most); more, or a nocase one, go through an automaton.
// A pattern whose every rule needs a flowbit set (flowbits:isset) is looked
// for only on a flow that has one of those bits: no rule that could run on
// such a packet sets them first (Detector checks that when it builds this).
import { AhoCorasick } from './ac.ts';

/** Patterns up to which the native search (one pass per pattern) beats one automaton pass. */
export const NATIVE_MAX_PATTERNS = 8;

export interface PacketPattern {
  /** Lower-cased (the automaton's form). */
  lower: Uint8Array;
  /** Case kept, or null when the content is nocase. */
  exact: Uint8Array | null;
  /** The latest end in the payload, or -1: anywhere. */
  end: number;
  /** The rules (indices) this pattern makes candidates. */
  rules: number[];
  /** Flowbit ids of which the flow must have one, or null: looked for on every flow. */
  gate: number[] | null;
}

const indexOf = Buffer.prototype.indexOf as (this: Uint8Array, v: Uint8Array, from: number) => number;

export class PacketPrefilter {
  /** pattern id -> rule indices */
  readonly patternRules: Int32Array[];
  readonly #native: { pat: Uint8Array; end: number; gate: number[] | null }[] | null;
  readonly #ac: AhoCorasick | null;
  /** The latest end of any pattern (automaton mode), or -1. */
  readonly #acEnd: number;

  constructor(patterns: readonly PacketPattern[]) {
    this.patternRules = patterns.map((p) => Int32Array.from(p.rules));
    if (patterns.length <= NATIVE_MAX_PATTERNS && patterns.every((p) => p.exact !== null)) {
      this.#native = patterns.map((p) => ({ pat: p.exact as Uint8Array, end: p.end, gate: p.gate }));
      this.#ac = null;
      this.#acEnd = -1;
    } else {
      this.#native = null;
      this.#ac = new AhoCorasick(patterns.map((p) => p.lower));
      this.#acEnd = patterns.some((p) => p.end < 0) ? -1 : Math.max(...patterns.map((p) => p.end));
    }
  }

  get native(): boolean {
    return this.#native !== null;
  }

  /**
   * Report each pattern found in buf[off, off + len) to hit(id), given the
   * flow's flowbits; returns the bytes looked at.
   */
  scan(buf: Uint8Array, off: number, len: number, bits: ReadonlySet<number> | null, hit: (id: number) => void): number {
    const nat = this.#native;
    if (nat === null) {
      const n = this.#acEnd < 0 ? len : Math.min(len, this.#acEnd);
      (this.#ac as AhoCorasick).scan(buf, off, off + n, hit);
      return n;
    }
    let looked = 0;
    /** A view ending with the payload (indexOf has no end bound), made at most once per packet. */
    let whole: Uint8Array | null = null;
    for (let id = 0; id < nat.length; id++) {
      const e = nat[id];
      const n = e.end < 0 ? len : Math.min(len, e.end);
      if (n < e.pat.length || (e.gate !== null && !anySet(e.gate, bits))) continue;
      looked += n;
      let found: boolean;
      if (n <= SHORT_SEARCH) found = findIn(buf, off, off + n, e.pat);
      else {
        whole ??= off + len === buf.length ? buf : buf.subarray(0, off + len);
        const at = indexOf.call(whole, e.pat, off);
        found = at >= 0 && at + e.pat.length <= off + n;
      }
      if (found) hit(id);
    }
    return looked;
  }
}

/** Bounds up to which a pattern is looked for by a plain loop (no view of the buffer, no native call). */
const SHORT_SEARCH = 256;

/** Whether pat occurs within buf[from, to). */
function findIn(buf: Uint8Array, from: number, to: number, pat: Uint8Array): boolean {
  const m = pat.length;
  const first = pat[0];
  for (let i = from; i + m <= to; i++) {
    if (buf[i] !== first) continue;
    let k = 1;
    while (k < m && buf[i + k] === pat[k]) k++;
    if (k === m) return true;
  }
  return false;
}

function anySet(gate: readonly number[], bits: ReadonlySet<number> | null): boolean {
  if (bits === null) return false;
  for (let k = 0; k < gate.length; k++) if (bits.has(gate[k])) return true;
  return false;
}
