// Progress on stderr: what runs now, how far the run is, and how long is left.
// The estimate scales the planned time still to go by how long the finished
// runs really took against their plan. Every finished run leaves one line
// (with its result); on a terminal the running one is redrawn every second.
import type { WriteStream } from 'node:tty';

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

type Out = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

export class Progress {
  readonly #out: Out;
  readonly #quiet: boolean;
  #plannedLeft: number;
  #plannedDone = 0;
  #actualDone = 0;
  readonly #t0 = Date.now();
  #current: { index: number; count: number; what: string; planned: number; started: number } | undefined;
  /** Something is on the current line without its newline. */
  #open = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(plannedTotalS: number, opts: { out?: Out; quiet?: boolean } = {}) {
    this.#out = opts.out ?? (process.stderr as WriteStream);
    this.#quiet = opts.quiet ?? false;
    this.#plannedLeft = plannedTotalS;
  }

  get #tty(): boolean {
    return this.#out.isTTY === true;
  }

  /** Seconds left: planned time to go, scaled by how the runs so far compared with their plan. */
  secondsLeft(): number {
    const scale = this.#plannedDone > 5 ? Math.min(3, Math.max(0.5, this.#actualDone / this.#plannedDone)) : 1;
    const c = this.#current;
    const running = c ? Math.max(0, c.planned - (Date.now() - c.started) / 1000) : 0;
    return (this.#plannedLeft - (c?.planned ?? 0) + running) * scale;
  }

  #status(): string {
    const c = this.#current;
    if (!c) return '';
    const pct = Math.floor((100 * (c.index - 1)) / c.count);
    return `[${String(c.index).padStart(String(c.count).length)}/${c.count} ${String(pct).padStart(2)}%] ${c.what}  (${formatDuration((Date.now() - this.#t0) / 1000)} elapsed, ~${formatDuration(this.secondsLeft())} left)`;
  }

  /** A run begins: `index` of `count`, what it is, and its planned seconds. */
  begin(index: number, count: number, what: string, plannedS: number): void {
    this.#current = { index, count, what, planned: plannedS, started: Date.now() };
    if (this.#quiet) return;
    if (this.#tty) {
      this.#redraw();
      this.#timer ??= setInterval(() => this.#redraw(), 1000);
      this.#timer.unref();
    } else {
      this.#out.write(this.#status());
      this.#open = true;
    }
  }

  /** The current run ended; `note` (a result or an error) completes its line. */
  end(note: string): void {
    const c = this.#current;
    if (c) {
      this.#plannedLeft -= c.planned;
      this.#plannedDone += c.planned;
      this.#actualDone += (Date.now() - c.started) / 1000;
    }
    if (!this.#quiet) {
      if (this.#tty) this.#out.write(`\r\x1b[K[${c?.index}/${c?.count}] ${c?.what}  ${note}\n`);
      else this.#out.write(`${this.#open ? '' : `[${c?.index}/${c?.count}] ${c?.what}`}  ${note}\n`);
    }
    this.#open = false;
    this.#current = undefined;
  }

  /** A message of its own (lab built, a warning). */
  log(msg: string): void {
    if (this.#quiet) return;
    if (this.#tty) this.#out.write(`\r\x1b[K${msg}\n`);
    else this.#out.write(`${this.#open ? '\n' : ''}${msg}\n`);
    this.#open = false;
    if (this.#tty) this.#redraw();
  }

  /** Stop redrawing and clear the progress line. */
  done(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#quiet && this.#tty) this.#out.write('\r\x1b[K');
    if (!this.#quiet && !this.#tty && this.#open) this.#out.write('\n');
    this.#open = false;
  }

  #redraw(): void {
    if (this.#quiet || !this.#tty || !this.#current) return;
    const s = this.#status();
    const w = this.#out.columns ?? 120;
    this.#out.write(`\r\x1b[K${s.length > w - 1 ? `${s.slice(0, w - 2)}…` : s}`);
  }
}
