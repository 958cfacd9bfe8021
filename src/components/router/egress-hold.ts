// Backpressure from an egress to the ingresses that feed it.
//
// An egress session runs out of slots only when its peer is behind: a driver
// sends or drops (tx-busy) every frame of a batch and acknowledges them all,
// so a full egress means the peer has not had the CPU, not that its link
// refused frames. Dropping there (egress-full) wastes the work already done on
// the frame: the ingress driver's copy and the router's parse, policy, NAT and
// routing. Under overload that waste took a third of the router's frames and
// the CPU the egress driver needed. So an ingress whose last batch sent
// frames to an egress with no free slot is held: the router takes nothing
// from it until the egress gets slots back, its session ring fills, its driver
// stops reading, and the excess is dropped where it costs least (the kernel's
// queue of the link, counted there), as Linux drops at a NIC's ring when its
// softirq falls behind. A batch is not cut to the egress's free slots: the
// few frames of a batch that overflow it are dropped (egress-full) and hold
// the next one (smaller batches cost more per frame than those drops: round
// 5 of issue 17 in docs/PERFORMANCE.md).
//
// What a peer can do with it: an egress that stops acknowledging (a hung or
// hostile component) holds an ingress for at most HOLD_MAX_MS (noticed at the
// loop's next turn: within its longest sleep, 50 ms); then backpressure from it
// is off for HOLD_COOLDOWN_MS (counted `egress-stall.<domain>`, logged), and
// frames to it are dropped as egress-full as before. Holding is per ingress:
// while held, its frames to other egresses wait too (one FIFO per ingress, as
// on a NIC). Config `backpressure: false` on a domain never holds for it (a
// peer that is slow by nature, such as a tunnel encrypting, then costs only
// its own traffic).
import type { Counters } from '../../runtime/counters.ts';
import type { EgressPort } from './types.ts';

/** Longest time an egress with no free slot holds an ingress before it counts as stalled, ms. */
export const HOLD_MAX_MS = 20;
/** How long backpressure from a stalled egress stays off, ms. */
export const HOLD_COOLDOWN_MS = 10_000;

export class EgressHold {
  readonly #n: number;
  readonly #ports: readonly EgressPort[];
  readonly #clock: () => number;
  /** Per egress: 1 when its config holds ingresses (`backpressure`, default true). */
  readonly #on: Uint8Array;
  /** [ingress * n + egress] = 1: the ingress's last batch with frames sent to that egress; #cur: the batch being handled. */
  readonly #used: Uint8Array;
  readonly #cur: Uint8Array;
  /** Per egress: since when it has held an ingress with no free slot (ms; -1: not holding). */
  readonly #since: Float64Array;
  /** Per egress: backpressure from it is off until then (ms), after a stall. */
  readonly #offUntil: Float64Array;
  readonly #counters: Counters;
  /** Per egress: counter ids of egress-hold.<domain> (times it began holding) and egress-stall.<domain>. */
  readonly #cHolds: Int32Array;
  readonly #cStalls: Int32Array;
  readonly #names: readonly string[];
  readonly #log: ((line: string) => void) | undefined;

  constructor(names: readonly string[], on: readonly boolean[], ports: readonly EgressPort[], counters: Counters,
    clock: () => number, log?: (line: string) => void) {
    const n = this.#n = ports.length;
    this.#ports = ports;
    this.#clock = clock;
    this.#names = names;
    this.#on = Uint8Array.from(on, (x) => (x ? 1 : 0));
    this.#used = new Uint8Array(n * n);
    this.#cur = new Uint8Array(n * n);
    this.#since = new Float64Array(n).fill(-1);
    this.#offUntil = new Float64Array(n);
    this.#counters = counters;
    this.#cHolds = Int32Array.from(names, (d) => counters.define(`egress-hold.${d}`));
    this.#cStalls = Int32Array.from(names, (d) => counters.define(`egress-stall.${d}`));
    this.#log = log;
  }

  /** A new config's `backpressure` per domain (the domains themselves cannot change). */
  configure(on: readonly boolean[]): void {
    for (let d = 0; d < this.#n; d++) this.#on[d] = on[d] ? 1 : 0;
  }

  /** A frame from `ingress` went to (or was refused by) `egress`; called per forwarded frame. */
  use(ingress: number, egress: number): void {
    this.#cur[ingress * this.#n + egress] = 1;
  }

  /** Is `ingress` held now: did its last batch send frames to an egress (with backpressure on) that has no free slot? */
  held(ingress: number): boolean {
    const n = this.#n;
    const used = this.#used;
    for (let d = 0, k = ingress * n; d < n; d++, k++) {
      if (used[k] === 0 || this.#on[d] === 0) continue;
      const available = this.#ports[d].available;
      if (available === undefined) continue;
      if (available.call(this.#ports[d]) > 0) this.#since[d] = -1;
      else if (this.#holds(d)) return true;
    }
    return false;
  }

  /** The batch of `ingress` is done: its `frames` frames' egresses are what held() looks at next (an empty batch changes nothing). */
  done(ingress: number, frames: number): void {
    if (frames === 0) return;
    const n = this.#n;
    const cur = this.#cur;
    const used = this.#used;
    for (let d = 0, k = ingress * n; d < n; d++, k++) {
      used[k] = cur[k];
      cur[k] = 0;
    }
  }

  /** Is `egress` holding an ingress now (then its slots coming back are worth a wake-up)? */
  holding(egress: number): boolean {
    return this.#since[egress] >= 0;
  }

  /** `egress` reclaimed slots (its wake-up ran): it holds no ingress once one is free. */
  reclaimed(egress: number): void {
    const available = this.#ports[egress].available;
    if (available !== undefined && available.call(this.#ports[egress]) > 0) this.#since[egress] = -1;
  }

  /** Domains whose backpressure is off after a stall, with the ms left. */
  status(): Record<string, number> {
    const now = this.#clock();
    const off: Record<string, number> = {};
    for (let d = 0; d < this.#n; d++) if (this.#offUntil[d] > now) off[this.#names[d]] = Math.ceil(this.#offUntil[d] - now);
    return off;
  }

  #holds(d: number): boolean {
    const now = this.#clock();
    if (now < this.#offUntil[d]) return false;
    const since = this.#since[d];
    if (since < 0) {
      this.#since[d] = now;
      this.#counters.add(this.#cHolds[d]);
      return true;
    }
    if (now - since <= HOLD_MAX_MS) return true;
    this.#since[d] = -1;
    this.#offUntil[d] = now + HOLD_COOLDOWN_MS;
    this.#counters.add(this.#cStalls[d]);
    this.#log?.(`egress ${this.#names[d]} freed no slot for ${Math.round(now - since)} ms: not holding ingresses for it for ${HOLD_COOLDOWN_MS / 1000} s (its frames are dropped as egress-full)`);
    return false;
  }
}
