// A fixed ring of EVE lines with a running sequence number, so a reader asks
// "everything after N" and learns what it missed when the ring wrapped.
export class EveRing {
  readonly capacity: number;
  readonly #lines: string[];
  /** Sequence number of the last line pushed (0: none yet). */
  seq = 0;
  overwritten = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#lines = new Array<string>(capacity).fill('');
  }

  /** Add a line; true when an unread-or-not line was overwritten. */
  push(line: string): boolean {
    this.seq++;
    const over = this.seq > this.capacity;
    if (over) this.overwritten++;
    this.#lines[(this.seq - 1) % this.capacity] = line;
    return over;
  }

  /** Lines after sequence number `since` (at most the ring's content), the new last seq, and how many were lost. */
  since(since: number): { seq: number; lines: string[]; missed: number } {
    const first = Math.max(since + 1, this.seq - this.capacity + 1, 1);
    const missed = Math.max(0, first - (since + 1));
    const lines: string[] = [];
    for (let s = first; s <= this.seq; s++) lines.push(this.#lines[(s - 1) % this.capacity]);
    return { seq: this.seq, lines, missed };
  }
}
