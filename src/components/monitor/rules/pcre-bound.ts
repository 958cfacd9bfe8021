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
// count like groups (they run their body); a back reference like an atom that
// compares as many characters as its group can hold (the group's depth).
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
  const stepsPerByte = !Number.isFinite(ways) || !Number.isFinite(n.depth) ? Infinity : capMul(ways, Math.max(1, n.depth));
  return { ways, depth: n.depth, stepsPerByte, backrefs: p.backrefs, lookaround: p.lookaround };
}

class Parser {
  i = 0;
  backrefs = false;
  lookaround = false;
  /** Longest text each capturing group can hold (by number, 1-based), and the numbers of named ones. */
  readonly groupDepth: number[] = [0];
  readonly groupName = new Map<string, number>();
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
      let capture = true;
      if (s[this.i] === '?') {
        const rest = s.slice(this.i + 1, this.i + 4);
        capture = false;
        if (rest.startsWith(':')) this.i += 2;
        else if (rest.startsWith('=') || rest.startsWith('!')) { this.lookaround = true; this.i += 2; }
        else if (rest.startsWith('<=') || rest.startsWith('<!')) { this.lookaround = true; this.i += 3; }
        else if (rest.startsWith('<')) {
          const end = s.indexOf('>', this.i);
          if (end < 0) throw new Error('unterminated group name');
          this.groupName.set(s.slice(this.i + 2, end), this.groupDepth.length);
          capture = true;
          this.i = end + 1;
        } else throw new Error(`unknown group syntax "(?${rest}"`);
      }
      const n = this.groupDepth.length;
      if (capture) this.groupDepth.push(Infinity); // a reference from inside its own group: unbounded
      const inner = this.alternation();
      if (s[this.i] !== ')') throw new Error('missing ")"');
      this.i++;
      if (capture) this.groupDepth[n] = inner.depth;
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
        const n = this.groupName.get(s.slice(this.i + 3, end));
        this.i = end < 0 ? s.length : end + 1;
        return { ways: 1, depth: this.#refDepth(n) };
      }
      if (nx >= '1' && nx <= '9') {
        this.backrefs = true;
        const start = this.i + 1;
        this.i += 2;
        while (this.i < s.length && s[this.i] >= '0' && s[this.i] <= '9') this.i++;
        return { ways: 1, depth: this.#refDepth(Number(s.slice(start, this.i))) };
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

  /** A back reference compares up to its group's length (a group not yet closed or unknown: unbounded). */
  #refDepth(n: number | undefined): number {
    if (n === undefined || n >= this.groupDepth.length) return Infinity;
    return Math.max(1, this.groupDepth[n]);
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
