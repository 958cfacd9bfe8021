// Worst-case backtracking cost of a JavaScript regular expression (the syntax
// pcre.ts emits), found by reading its structure, so the monitor can prove a
// pattern safe for V8's backtracking RegExp before it ever sees a packet.
//
// A backtracking matcher started at one input position explores at most one
// path per way the pattern can match there. `ways` counts those paths: an atom
// has 1, a sequence the product of its parts, an alternation the sum of its
// branches, a bounded quantifier {m,n} over x the sum of ways(x)^k for k = m..n,
// and an unbounded one (* + {m,}) has infinitely many. `depth` is the longest
// path in atom visits (sum over a sequence, max over alternatives, n times the
// body for {m,n}). So one start position costs at most ways * depth steps, and
// a search over n bytes at most n * ways * depth: `stepsPerByte`. Look-arounds
// count like groups (they run their body); back references like one atom that
// may compare up to the whole input (so a pattern with them is charged the
// input length again, see `backrefs`).
//
// Conservative on purpose: a pattern it calls bounded is bounded; many that it
// calls unbounded (every `.*`) run fine in V8 too, but cannot be proven to here
// and go to the linear-time engine instead (pcre.ts).

export interface Backtracking {
  /** Paths from one start position (Infinity with an unbounded quantifier). */
  ways: number;
  /** Longest path in atom visits. */
  depth: number;
  /** ways * depth: the worst-case steps per input byte searched. */
  stepsPerByte: number;
  /** Back references (\1, \k<name>): RE2 cannot express them. */
  backrefs: boolean;
  /** Look-ahead or look-behind: RE2 cannot express them. */
  lookaround: boolean;
}

const CAP = 1e12;

interface Node {
  ways: number;
  depth: number;
}

/** Analyse a JavaScript RegExp source (non-unicode mode). Throws on syntax it does not know. */
export function backtracking(src: string): Backtracking {
  const p = new Parser(src);
  const n = p.alternation();
  if (p.i < src.length) throw new Error(`unbalanced ")" at ${p.i}`);
  const ways = n.ways;
  const stepsPerByte = ways >= CAP || !Number.isFinite(ways) ? Infinity : Math.min(Infinity, ways * Math.max(1, n.depth));
  return { ways, depth: n.depth, stepsPerByte, backrefs: p.backrefs, lookaround: p.lookaround };
}

class Parser {
  i = 0;
  backrefs = false;
  lookaround = false;
  readonly s: string;
  constructor(s: string) {
    this.s = s;
  }

  alternation(): Node {
    let ways = 0;
    let depth = 0;
    for (;;) {
      const b = this.sequence();
      ways = capAdd(ways, b.ways);
      depth = Math.max(depth, b.depth);
      if (this.s[this.i] !== '|') return { ways, depth };
      this.i++;
    }
  }

  sequence(): Node {
    let ways = 1;
    let depth = 0;
    while (this.i < this.s.length && this.s[this.i] !== '|' && this.s[this.i] !== ')') {
      let a = this.atom();
      a = this.quantified(a);
      ways = capMul(ways, a.ways);
      depth = capAdd(depth, a.depth);
    }
    return { ways, depth };
  }

  atom(): Node {
    const s = this.s;
    const ch = s[this.i];
    if (ch === '(') {
      this.i++;
      if (s[this.i] === '?') {
        const rest = s.slice(this.i + 1, this.i + 4);
        if (rest.startsWith(':')) this.i += 2;
        else if (rest.startsWith('=') || rest.startsWith('!')) { this.lookaround = true; this.i += 2; }
        else if (rest.startsWith('<=') || rest.startsWith('<!')) { this.lookaround = true; this.i += 3; }
        else if (rest.startsWith('<')) {
          const end = s.indexOf('>', this.i);
          if (end < 0) throw new Error('unterminated group name');
          this.i = end + 1;
        } else throw new Error(`unknown group syntax "(?${rest}"`);
      }
      const inner = this.alternation();
      if (s[this.i] !== ')') throw new Error('missing ")"');
      this.i++;
      return inner;
    }
    if (ch === '[') {
      this.i++;
      if (s[this.i] === '^') this.i++;
      if (s[this.i] === ']') this.i++;
      while (this.i < s.length && s[this.i] !== ']') this.i += s[this.i] === '\\' ? 2 : 1;
      if (this.i >= s.length) throw new Error('unterminated character class');
      this.i++;
      return { ways: 1, depth: 1 };
    }
    if (ch === '\\') {
      const nx = s[this.i + 1];
      if (nx === undefined) throw new Error('pattern ends with "\\"');
      if (nx === 'k' && s[this.i + 2] === '<') {
        const end = s.indexOf('>', this.i);
        this.backrefs = true;
        this.i = end < 0 ? s.length : end + 1;
        return { ways: 1, depth: 1 };
      }
      if (nx >= '1' && nx <= '9') {
        this.backrefs = true;
        this.i += 2;
        while (this.i < s.length && s[this.i] >= '0' && s[this.i] <= '9') this.i++;
        return { ways: 1, depth: 1 };
      }
      if (nx === 'x') { this.i += 4; return { ways: 1, depth: 1 }; }
      if (nx === 'u') { this.i += 6; return { ways: 1, depth: 1 }; }
      if (nx === 'c') { this.i += 3; return { ways: 1, depth: 1 }; }
      this.i += 2;
      return { ways: 1, depth: 1 };
    }
    if (ch === '*' || ch === '+' || ch === '?') throw new Error(`nothing to repeat at ${this.i}`);
    this.i++;
    return { ways: 1, depth: 1 };
  }

  quantified(a: Node): Node {
    const s = this.s;
    for (;;) {
      const ch = s[this.i];
      let min: number;
      let max: number;
      if (ch === '*') { min = 0; max = Infinity; this.i++; }
      else if (ch === '+') { min = 1; max = Infinity; this.i++; }
      else if (ch === '?') { min = 0; max = 1; this.i++; }
      else if (ch === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.i));
        if (m === null) return a; // a literal "{" (the next atom() takes it)
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        this.i += m[0].length;
      } else return a;
      if (s[this.i] === '?') this.i++; // lazy: same paths, other order
      a = repeat(a, min, max);
    }
  }
}

function repeat(a: Node, min: number, max: number): Node {
  if (max === Infinity) return { ways: Infinity, depth: Infinity };
  let ways = 0;
  let pow = 1;
  for (let k = 0; k <= max; k++) {
    if (k >= min) ways = capAdd(ways, pow);
    pow = capMul(pow, a.ways);
    if (ways >= CAP) break;
  }
  return { ways, depth: capMul(a.depth, max) };
}

function capAdd(a: number, b: number): number {
  const r = a + b;
  return r >= CAP ? Infinity : r;
}

function capMul(a: number, b: number): number {
  const r = a * b;
  return r >= CAP ? Infinity : r;
}
