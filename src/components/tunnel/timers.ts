// WireGuard's timers (whitepaper 6.2-6.5), per peer: retransmitting an
// initiation (REKEY_TIMEOUT, with jitter) until REKEY_ATTEMPT_TIME, the
// passive keepalive (KEEPALIVE_TIMEOUT after data received), a new handshake
// when data sent gets no answer (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT), the
// persistent keepalive, rekeying a keypair before REKEY_AFTER_TIME /
// REKEY_AFTER_MESSAGES and again at the last minute before REJECT_AFTER_TIME,
// and zeroing every key after 3 x REJECT_AFTER_TIME. The deadlines live in
// each Peer (0: not armed); the events that arm and disarm them are the
// methods below, called by the data path and the handshakes; tick() runs the
// ones that are due.
import { PROTOCOL } from './messages.ts';
import { clearState } from './noise.ts';
import type { Keypair, Peer } from './peer.ts';
import type { TunnelState } from './state.ts';

/** What a due timer does: start a handshake, send a keepalive. */
export interface TimerActions {
  /** Start an initiation; false when not now (see Handshakes.initiate). */
  initiate(peer: Peer, retry: boolean): boolean;
  sendKeepalive(peer: Peer): void;
}

/** Up to REKEY_TIMEOUT_JITTER ms added to retransmission deadlines. */
export function jitter(): number {
  return Math.floor(Math.random() * PROTOCOL.rekeyTimeoutJitterMs);
}

export class Timers {
  readonly #state: TunnelState;
  #actions: TimerActions | undefined;

  constructor(state: TunnelState) {
    this.#state = state;
  }

  /** Who acts when a timer is due (the handshakes and the data path, built after this). */
  connect(actions: TimerActions): void {
    this.#actions = actions;
  }

  // ---- events ------------------------------------------------------------------

  /** An authenticated packet (data or keepalive) went to the peer. */
  packetSent(peer: Peer, dataLen: number): void {
    const now = this.#state.now;
    peer.keepaliveAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = now + peer.cfg.persistentKeepalive * 1000;
    if (dataLen > 0 && peer.newHandshakeAt === 0) {
      const t = this.#state.cfg.timers;
      peer.newHandshakeAt = now + t.keepaliveTimeoutMs + t.rekeyTimeoutMs + jitter();
    }
  }

  /** An authenticated transport message came from the peer (before its payload is looked at). */
  authenticatedReceived(peer: Peer): void {
    peer.newHandshakeAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = this.#state.now + peer.cfg.persistentKeepalive * 1000;
  }

  /** Data (not a keepalive) came from the peer: answer with a keepalive if nothing goes back in time. */
  dataReceived(peer: Peer): void {
    if (peer.keepaliveAt === 0) peer.keepaliveAt = this.#state.now + this.#state.cfg.timers.keepaliveTimeoutMs;
    else peer.needAnotherKeepalive = true;
  }

  /** We built a handshake message (initiation or response) for the peer: it is what goes out instead of a keepalive. */
  handshakeSent(peer: Peer): void {
    peer.keepaliveAt = 0;
    if (peer.cfg.persistentKeepalive > 0) peer.persistentAt = this.#state.now + peer.cfg.persistentKeepalive * 1000;
  }

  /** We start an initiation: send it again after REKEY_TIMEOUT (+ jitter) unless a response comes first. */
  initiationStarted(peer: Peer): void {
    peer.retransmitAt = this.#state.now + this.#state.cfg.timers.rekeyTimeoutMs + jitter();
  }

  /** A handshake completed: stop retransmitting. */
  handshakeCompleted(peer: Peer): void {
    peer.retransmitAt = 0;
    peer.attempts = 0;
    peer.sentLastMinuteHandshake = false;
  }

  /** A new keypair was derived: zero every key 3 x REJECT_AFTER_TIME from now unless another comes. */
  keypairDerived(peer: Peer): void {
    peer.zeroKeysAt = this.#state.now + 3 * this.#state.cfg.timers.rejectAfterTimeMs;
    peer.newHandshakeAt = 0;
  }

  /** After sending with `kp`: rekey when it is old (initiator) or has sent REKEY_AFTER_MESSAGES. */
  keepKeyFreshSending(peer: Peer, kp: Keypair): void {
    const now = this.#state.now;
    if (kp.sendCounter > PROTOCOL.rekeyAfterMessages || (kp.initiator && now - kp.created > this.#state.cfg.timers.rekeyAfterTimeMs)) {
      this.#actions!.initiate(peer, false);
    }
  }

  /** After receiving: the initiator rekeys once more shortly before its keypair would be rejected. */
  keepKeyFreshReceiving(peer: Peer): void {
    const kp = peer.current;
    const t = this.#state.cfg.timers;
    if (kp === undefined || !kp.initiator || peer.sentLastMinuteHandshake) return;
    if (this.#state.now - kp.created > t.rejectAfterTimeMs - t.keepaliveTimeoutMs - t.rekeyTimeoutMs) {
      peer.sentLastMinuteHandshake = true;
      this.#actions!.initiate(peer, false);
    }
  }

  // ---- due timers ----------------------------------------------------------------

  /** Run every peer's due timers at `now`. */
  tick(now: number): void {
    const s = this.#state;
    const act = this.#actions!;
    const t = s.cfg.timers;
    for (const peer of s.peers) {
      if (peer.retransmitAt !== 0 && now >= peer.retransmitAt) {
        if (now - peer.attemptStart >= t.rekeyAttemptTimeMs) {
          peer.retransmitAt = 0;
          s.count(s.counts['handshake.gave-up']);
          s.count(s.drops['staged-given-up'], peer.staged.length);
          peer.staged.length = 0;
          if (peer.zeroKeysAt === 0) peer.zeroKeysAt = now + 3 * t.rejectAfterTimeMs;
        } else {
          peer.attempts++;
          peer.retransmitAt = 0;
          act.initiate(peer, true);
        }
      }
      if (peer.keepaliveAt !== 0 && now >= peer.keepaliveAt) {
        peer.keepaliveAt = 0;
        act.sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          peer.keepaliveAt = now + t.keepaliveTimeoutMs;
        }
      }
      if (peer.newHandshakeAt !== 0 && now >= peer.newHandshakeAt) {
        // We sent data and heard nothing back: the session may be dead.
        peer.newHandshakeAt = 0;
        act.initiate(peer, false);
      }
      if (peer.persistentAt !== 0 && now >= peer.persistentAt) {
        peer.persistentAt = 0;
        act.sendKeepalive(peer);
      }
      if (peer.zeroKeysAt !== 0 && now >= peer.zeroKeysAt) {
        peer.zeroKeysAt = 0;
        for (const kp of [peer.previous, peer.current, peer.next]) if (kp !== undefined) s.destroyKeypair(kp);
        peer.previous = peer.current = peer.next = undefined;
        if (peer.handshake !== undefined) {
          s.indices.delete(peer.handshakeIndex);
          clearState(peer.handshake);
          peer.handshake = undefined;
        }
        s.count(s.counts['keypair.zeroed']);
      }
    }
  }
}
