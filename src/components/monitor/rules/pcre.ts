// PCRE (as rules write it, "/pattern/flags") to a JavaScript RegExp run on a
// latin1 view of the bytes (one character per byte, so \xNN means byte NN).
// Translated: named groups (?P<n>...), (?P=n), \g{N} / \gN back references,
// \A \Z \z anchors, \h, \Q...\E, \e, \x{NN}, POSIX classes [[:alpha:]],
// possessive quantifiers and atomic groups (made greedy: they match wherever
// the atomic form matches, and sometimes where it would not), a leading
// (?i)/(?s)/(?m)/(?x), and the x flag (whitespace and comments stripped).
// Anything else JavaScript cannot express is an error that names the construct.
//
// Two engines, chosen per pattern at load (pcre-bound.ts proves the bound):
// V8's RegExp (backtracking; 10-450x faster than RE2 on the fixtures'
// patterns, `microgate pcre-bench`) when its worst case is at most
// V8_MAX_STEPS_PER_BYTE steps per input byte; otherwise RE2's
// linear-time automaton (npm `re2js`), whose work per byte is bounded by its
// program size. A pattern RE2 cannot express (back references, look-arounds)
// and V8 cannot run within the bound is refused with an error saying so: no
// rule can stall the monitor. Each spec counts its evaluations, the bytes it
// searched and the worst-case work those cost (`stats`).
import { RE2JS } from 're2js';
import { backtracking } from './pcre-bound.ts';

/** Patterns proven to cost at most this many backtracking steps per byte run on V8. */
export const V8_MAX_STEPS_PER_BYTE = 1024;

export interface PcreStats {
  evaluations: number;
  /** Bytes searched. */
  bytes: number;
  /** Worst-case steps those searches could cost: bytes * workPerByte. */
  work: number;
}

export interface PcreSpec {
  /** Which engine runs it. */
  engine: 'v8' | 'linear';
  /** The V8 RegExp (run only when engine is 'v8'). */
  re: RegExp;
  /** The RE2 program (engine 'linear'). */
  linear: RE2JS | null;
  /** Worst-case steps per byte searched: V8's proven bound, or RE2's program size. */
  workPerByte: number;
  /** Why the engine was chosen (shown in the monitor's status). */
  why: string;
  stats: PcreStats;
  negated: boolean;
  relative: boolean;
  /**
   * The longest match when the pattern is anchored at its start (^ without
   * /m, or /A) and its repetition bounded, or -1 (fast-bound.ts).
   */
  anchoredMaxLen: number;
  /** Sticky buffer the modifier letters select ('' = the current buffer). */
  buffer: string;
  source: string;
}

export class PcreError extends Error {}

const POSIX: Record<string, string> = {
  alpha: 'a-zA-Z', digit: '0-9', alnum: 'a-zA-Z0-9', upper: 'A-Z', lower: 'a-z', space: ' \\t\\n\\r\\f\\v',
  xdigit: '0-9A-Fa-f', punct: '!-\\/:-@\\[-`{-~', print: ' -~', graph: '!-~', cntrl: '\\x00-\\x1f\\x7f', blank: ' \\t',
  word: '\\w',
};

/** HTTP modifier letters -> Suricata buffer names. */
const BUFFER_FLAGS: Record<string, string> = {
  U: 'http.uri', I: 'http.uri.raw', P: 'http.request_body', Q: 'http.response_body', H: 'http.header',
  D: 'http.header.raw', M: 'http.method', C: 'http.cookie', K: 'http.cookie', S: 'http.stat_code', Y: 'http.stat_msg',
  V: 'http.user_agent', W: 'http.host', Z: 'http.host.raw',
};

/** Parse `"/pattern/flags"` (the quotes already removed; a leading "!" negates). */
export function parsePcre(text: string): PcreSpec {
  let s = text.trim();
  let negated = false;
  if (s.startsWith('!')) {
    negated = true;
    s = s.slice(1).trim();
  }
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) s = s.slice(1, -1);
  if (!s.startsWith('/')) throw new PcreError(`expected "/pattern/flags", got ${JSON.stringify(text)}`);
  const last = s.lastIndexOf('/');
  if (last <= 0) throw new PcreError(`missing closing "/" in ${JSON.stringify(text)}`);
  let pattern = s.slice(1, last);
  const flags = s.slice(last + 1);
  let jsFlags = '';
  let relative = false;
  let extended = false;
  let anchored = false;
  let buffer = '';
  for (const f of flags) {
    switch (f) {
      case 'i': if (!jsFlags.includes('i')) jsFlags += 'i'; break;
      case 's': if (!jsFlags.includes('s')) jsFlags += 's'; break;
      case 'm': if (!jsFlags.includes('m')) jsFlags += 'm'; break;
      case 'x': extended = true; break;
      case 'A': anchored = true; break;
      case 'E': case 'O': case 'B': break; // dollar-end-only (default here), match limits, raw bytes
      case 'R': relative = true; break;
      case 'G': throw new PcreError('the G (ungreedy) flag is not supported');
      default: {
        const b = BUFFER_FLAGS[f];
        if (b === undefined) throw new PcreError(`unknown pcre flag "${f}"`);
        buffer = b;
      }
    }
  }
  // Leading inline options.
  for (;;) {
    const m = /^\(\?([imsx]+)\)/.exec(pattern);
    if (m === null) break;
    for (const f of m[1]) {
      if (f === 'x') extended = true;
      else if (!jsFlags.includes(f)) jsFlags += f;
    }
    pattern = pattern.slice(m[0].length);
  }
  let js = translate(pattern, extended);
  if (anchored) js = `^(?:${js})`;
  let re: RegExp;
  try {
    re = new RegExp(js, jsFlags);
  } catch (e) {
    throw new PcreError(`JavaScript cannot compile the translated pattern: ${(e as Error).message}`);
  }
  const stats: PcreStats = { evaluations: 0, bytes: 0, work: 0 };
  let bound;
  try {
    bound = backtracking(js);
  } catch {
    bound = null; // syntax the analyser does not know: not proven, so linear
  }
  // Every atom takes at most one character (a back reference as many as its group), so the
  // longest path in atom visits bounds the match's length.
  const anchoredStart = js.startsWith('^') && !jsFlags.includes('m') && !topLevelAlternation(js);
  const anchoredMaxLen = anchoredStart && bound !== null && Number.isFinite(bound.depth) ? bound.depth : -1;
  const base = { re, negated, relative, anchoredMaxLen, buffer, source: text, stats };
  if (bound !== null && bound.stepsPerByte <= V8_MAX_STEPS_PER_BYTE) {
    return { ...base, engine: 'v8', linear: null, workPerByte: bound.stepsPerByte, why: `backtracking proven at most ${bound.stepsPerByte} steps per byte` };
  }
  const needs = bound === null ? '' : bound.backrefs ? 'a back reference' : bound.lookaround ? 'a look-around' : '';
  if (needs !== '') {
    throw new PcreError(`needs ${needs} (only a backtracking engine has it) and its backtracking is not bounded (${bound!.stepsPerByte} > ${V8_MAX_STEPS_PER_BYTE} steps per byte): refused, it could stall the monitor`);
  }
  let linear: RE2JS;
  try {
    linear = compileLinear(js, jsFlags);
  } catch (e) {
    throw new PcreError(`its backtracking is not bounded and RE2 cannot compile it: ${(e as Error).message}`);
  }
  const why = bound === null ? 'not provably bounded for backtracking' : `backtracking unbounded (${bound.stepsPerByte} steps per byte)`;
  return { ...base, engine: 'linear', linear, workPerByte: linear.programSize(), why };
}

/** RE2 (re2js) for a translated pattern (JavaScript syntax and flags); throws when RE2 cannot express it. */
export function compileLinear(js: string, jsFlags: string): RE2JS {
  let flags = 0;
  if (jsFlags.includes('i')) flags |= RE2JS.CASE_INSENSITIVE;
  if (jsFlags.includes('s')) flags |= RE2JS.DOTALL;
  if (jsFlags.includes('m')) flags |= RE2JS.MULTILINE;
  return RE2JS.compile(RE2JS.translateRegExp(js), flags);
}

/**
 * Search `s` (latin1: one character per byte) with the spec's engine; counts
 * the evaluation. Returns the end of the leftmost match, or -1.
 */
export function pcreSearch(spec: PcreSpec, s: string): number {
  const st = spec.stats;
  st.evaluations++;
  st.bytes += s.length;
  st.work += s.length * spec.workPerByte;
  if (spec.linear === null) {
    const m = spec.re.exec(s);
    return m === null ? -1 : m.index + m[0].length;
  }
  // The DFA answers "is there a match" fastest; only a match pays for the
  // NFA search that finds where it ends.
  if (!spec.linear.test(s)) return -1;
  const m = spec.linear.matcher(s);
  return m.find() ? m.end() : -1;
}

/** A "|" outside every group and character class (then a leading ^ anchors one branch only). */
export function topLevelAlternation(js: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < js.length; i++) {
    const c = js[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
}

function translate(p: string, extended: boolean): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (extended && !inClass) {
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') continue;
      if (ch === '#') {
        while (i < p.length && p[i] !== '\n') i++;
        continue;
      }
    }
    if (ch === '\\') {
      const nx = p[i + 1];
      if (nx === undefined) throw new PcreError('pattern ends with "\\"');
      if (nx === 'Q') {
        const end = p.indexOf('\\E', i + 2);
        const lit = end < 0 ? p.slice(i + 2) : p.slice(i + 2, end);
        out += lit.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
        i = end < 0 ? p.length : end + 1;
        continue;
      }
      if (nx === 'E') { i++; continue; }
      if (nx === 'A' && !inClass) { out += '^'; i++; continue; }
      if (nx === 'z' && !inClass) { out += '$(?![\\s\\S])'; i++; continue; }
      if (nx === 'Z' && !inClass) { out += '(?=\\n?$(?![\\s\\S]))'; i++; continue; }
      if (nx === 'h') { out += inClass ? ' \\t' : '[ \\t]'; i++; continue; }
      if (nx === 'H') { out += '[^ \\t]'; i++; continue; }
      if (nx === 'e') { out += '\\x1b'; i++; continue; }
      if (nx === 'g') {
        const m = /^\\g\{?(-?\d+)\}?/.exec(p.slice(i));
        if (m === null) throw new PcreError('unsupported \\g construct');
        if (m[1].startsWith('-')) throw new PcreError('relative back references (\\g{-N}) are not supported');
        out += `\\${m[1]}`;
        i += m[0].length - 1;
        continue;
      }
      if (nx === 'x' && p[i + 2] === '{') {
        const end = p.indexOf('}', i);
        const hexv = p.slice(i + 3, end);
        const v = parseInt(hexv, 16);
        if (end < 0 || Number.isNaN(v) || v > 255) throw new PcreError(`unsupported \\x{${hexv}}`);
        out += `\\x${v.toString(16).padStart(2, '0')}`;
        i = end;
        continue;
      }
      if (nx === 'R' || nx === 'X' || nx === 'C' || nx === 'K' || nx === 'G') throw new PcreError(`\\${nx} is not supported`);
      if (nx === 'p' || nx === 'P') throw new PcreError('Unicode properties (\\p) are not supported');
      out += ch + nx;
      i++;
      continue;
    }
    if (inClass) {
      if (ch === '[' && p[i + 1] === ':') {
        const end = p.indexOf(':]', i);
        if (end > 0) {
          let name = p.slice(i + 2, end);
          const neg = name.startsWith('^');
          if (neg) name = name.slice(1);
          const cls = POSIX[name];
          if (cls === undefined || neg) throw new PcreError(`unsupported POSIX class [:${name}:]`);
          out += cls;
          i = end + 1;
          continue;
        }
      }
      if (ch === '[') { out += '\\['; continue; }
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      // A "]" right after "[" or "[^" is a literal in PCRE.
      if (p[i + 1] === '^') { out += '^'; i++; }
      if (p[i + 1] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (ch === '(' && p[i + 1] === '?') {
      const rest = p.slice(i + 2);
      if (rest.startsWith('P<')) { out += '(?<'; i += 3; continue; }
      if (rest.startsWith('P=')) {
        const end = p.indexOf(')', i);
        out += `\\k<${p.slice(i + 4, end)}>`;
        i = end;
        continue;
      }
      if (rest.startsWith('>')) { out += '(?:'; i += 2; continue; }
      if (rest.startsWith('#')) {
        const end = p.indexOf(')', i);
        i = end;
        continue;
      }
      if (rest.startsWith('|')) throw new PcreError('branch reset groups (?|...) are not supported');
      if (/^[imsx-]+[:)]/.test(rest)) {
        const m = /^([imsx-]+)([:)])/.exec(rest);
        if (m !== null && m[2] === ')') throw new PcreError('inline option changes in the middle of a pattern are not supported');
      }
      if (rest.startsWith('R') || /^\d/.test(rest) || rest.startsWith('&') || rest.startsWith('(')) {
        throw new PcreError('recursion and conditional groups are not supported');
      }
    }
    // Possessive quantifiers: drop the "+".
    if (ch === '+' && i > 0 && (p[i - 1] === '*' || p[i - 1] === '+' || p[i - 1] === '?' || p[i - 1] === '}') && p[i - 2] !== '\\') {
      continue;
    }
    out += ch;
  }
  if (inClass) throw new PcreError('unterminated character class');
  return out;
}
