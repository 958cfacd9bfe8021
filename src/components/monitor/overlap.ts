// Which bytes win where IP fragments or TCP segments overlap with different
// data: the target-based policies Suricata offers (after Novak and Sturges,
// "Target-Based TCP Stream Reassembly" / "Target-Based Fragmentation
// Reassembly"), so the monitor sees what the protected host will see.
//   bsd      the data that starts lower wins; on equal starts the earlier
//            (Suricata's default for fragments and streams)
//   linux    the data that starts lower wins; on equal starts the later
//   first    the earlier data always wins
//   last     the later data always wins
//   windows  the earlier data wins unless the later starts before it and
//            ends after it
// Held data is a sorted list of non-overlapping pieces, each remembering the
// whole range its fragment or segment covered (the rules compare those), and
// owning a copy of its own bytes (so memory held is the sum of piece lengths).

export const OVERLAP_POLICIES = ['bsd', 'linux', 'first', 'last', 'windows'] as const;
export type OverlapPolicy = typeof OVERLAP_POLICIES[number];

/** Held bytes [s, e) of data that covered [start, end) when it arrived. */
export interface Piece {
  s: number;
  e: number;
  start: number;
  end: number;
  data: Uint8Array;
}

/** Does data arriving later, covering [bStart, bEnd), win the bytes it shares with earlier data covering [aStart, aEnd)? */
export function laterWins(policy: OverlapPolicy, aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
  switch (policy) {
    case 'bsd': return bStart < aStart;
    case 'linux': return bStart <= aStart;
    case 'first': return false;
    case 'last': return true;
    case 'windows': return bStart < aStart && bEnd > aEnd;
  }
}

/**
 * Insert data arriving now, bytes[0, end - start) covering [start, end), into
 * the pieces (sorted, non-overlapping) under the policy. Returns the new
 * sorted list and whether the new data overlapped held bytes.
 */
export function insertPiece(pieces: readonly Piece[], policy: OverlapPolicy, start: number, end: number, bytes: Uint8Array, bytesOff = 0):
  { pieces: Piece[]; overlapped: boolean } {
  const out: Piece[] = [];
  let overlapped = false;
  // The ranges of the new data still winning, sorted.
  let wins: number[] = [start, end];
  const cut = (p: Piece, s: number, e: number): Piece =>
    ({ s, e, start: p.start, end: p.end, data: p.data.slice(s - p.s, e - p.s) });
  for (const p of pieces) {
    if (p.e <= start || p.s >= end) {
      out.push(p);
      continue;
    }
    overlapped = true;
    if (laterWins(policy, p.start, p.end, start, end)) {
      if (p.s < start) out.push(cut(p, p.s, start));
      if (p.e > end) out.push(cut(p, end, p.e));
    } else {
      out.push(p);
      wins = subtract(wins, p.s, p.e);
    }
  }
  for (let i = 0; i < wins.length; i += 2) {
    const s = wins[i];
    const e = wins[i + 1];
    if (e > s) out.push({ s, e, start, end, data: bytes.slice(bytesOff + s - start, bytesOff + e - start) });
  }
  out.sort((x, y) => x.s - y.s);
  return { pieces: out, overlapped };
}

/** Ranges (flat [s0, e0, s1, e1, ...], sorted) minus [s, e). */
function subtract(r: number[], s: number, e: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < r.length; i += 2) {
    const a = r[i];
    const b = r[i + 1];
    if (b <= s || a >= e) {
      out.push(a, b);
      continue;
    }
    if (a < s) out.push(a, s);
    if (b > e) out.push(e, b);
  }
  return out;
}

/** Bytes held by the pieces. */
export function piecesBytes(pieces: readonly Piece[]): number {
  let n = 0;
  for (const p of pieces) n += p.e - p.s;
  return n;
}
