// The tunnel's side of the keystore session: requests go out as messages on
// the session (see ../keystore/protocol.ts), answers come back by id. A
// request the keystore does not answer within `timeoutMs` (it restarted, or
// it hangs) resolves undefined, as does one that finds no free slot: the
// handshake that asked fails and its timers retry.
import type { Counters } from '../../runtime/counters.ts';
import type { Pollable } from '../../runtime/entrypoint.ts';
import { sinkPollable } from '../../session/pollable.ts';
import type { SessionEnd } from '../../session/types.ts';
import {
  KS_ARG, KS_ID, KS_MSG_LEN, KS_OK, KS_OP, KS_OP_DH, KS_OP_PUBLIC_KEY, KS_STATUS,
} from '../keystore/protocol.ts';
import type { StaticIdentity } from './noise.ts';

interface Pending {
  resolve: (r: Uint8Array | undefined) => void;
  deadline: number;
}

export class KeystoreClient implements StaticIdentity {
  publicKey: Uint8Array = new Uint8Array(32);
  readonly #end: SessionEnd;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly #timeoutMs: number;
  readonly #counters: Counters;
  readonly #ids: { req: number; ok: number; refused: number; timeout: number; noSlot: number; stray: number; bad: number };
  readonly pollable: Pollable;

  constructor(end: SessionEnd, counters: Counters, timeoutMs = 2000) {
    this.#end = end;
    this.#counters = counters;
    this.#timeoutMs = timeoutMs;
    this.#ids = {
      req: counters.define('keystore.requests'),
      ok: counters.define('keystore.answers'),
      refused: counters.define('keystore.refused'),
      timeout: counters.define('keystore.timeouts'),
      noSlot: counters.dropReason('keystore-no-slot'),
      stray: counters.dropReason('keystore-stray-answer'),
      bad: counters.dropReason('keystore-bad-answer'),
    };
    const sink = end.in;
    this.pollable = sinkPollable(sink, (off, len) => this.#answer(sink.buf, off, len));
  }

  #answer(buf: Uint8Array, off: number, len: number): void {
    if (len !== KS_MSG_LEN) {
      this.#counters.add(this.#ids.bad);
      return;
    }
    const id = (buf[off + KS_ID] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
    const p = this.#pending.get(id);
    if (p === undefined) {
      this.#counters.add(this.#ids.stray);
      return;
    }
    this.#pending.delete(id);
    if (buf[off + KS_STATUS] !== KS_OK) {
      this.#counters.add(this.#ids.refused);
      p.resolve(undefined);
      return;
    }
    this.#counters.add(this.#ids.ok);
    p.resolve(buf.slice(off + KS_ARG, off + KS_ARG + 32));
  }

  #request(op: number, arg: Uint8Array | undefined): Promise<Uint8Array | undefined> {
    const out = this.#end.out;
    const slot = out.alloc();
    if (slot < 0) {
      this.#counters.add(this.#ids.noSlot);
      return Promise.resolve(undefined);
    }
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0 || 1;
    const b = out.buf;
    b.fill(0, slot, slot + KS_MSG_LEN);
    b[slot + KS_ID] = id & 0xff;
    b[slot + KS_ID + 1] = (id >>> 8) & 0xff;
    b[slot + KS_ID + 2] = (id >>> 16) & 0xff;
    b[slot + KS_ID + 3] = id >>> 24;
    b[slot + KS_OP] = op;
    if (arg !== undefined) b.set(arg, slot + KS_ARG);
    out.submit(slot, KS_MSG_LEN);
    out.flush();
    this.#counters.add(this.#ids.req);
    return new Promise((resolve) => {
      this.#pending.set(id, { resolve, deadline: performance.now() + this.#timeoutMs });
    });
  }

  dh(peerPublic: Uint8Array): Promise<Uint8Array | undefined> {
    return this.#request(KS_OP_DH, peerPublic);
  }

  /** Ask for the static public key (kept in `publicKey`); undefined if the keystore did not answer. */
  async fetchPublicKey(): Promise<Uint8Array | undefined> {
    const k = await this.#request(KS_OP_PUBLIC_KEY, undefined);
    if (k !== undefined) this.publicKey = k;
    return k;
  }

  /** Fail requests past their deadline. Call from a timer. */
  expire(now = performance.now()): void {
    for (const [id, p] of this.#pending) {
      if (now >= p.deadline) {
        this.#pending.delete(id);
        this.#counters.add(this.#ids.timeout);
        p.resolve(undefined);
      }
    }
  }

  /** The keystore restarted: nothing in flight will be answered. */
  reset(): void {
    for (const p of this.#pending.values()) p.resolve(undefined);
    this.#pending.clear();
  }

  get inFlight(): number {
    return this.#pending.size;
  }
}
