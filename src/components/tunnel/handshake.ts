// The tunnel's handshakes (whitepaper 5.4), per peer: building initiations,
// answering them, consuming responses, cookie replies under load (5.4.7),
// keypair rotation exactly as wireguard-go (current, previous, and the
// responder's unconfirmed next), and the receiver indices they hand out.
//
// Asynchronous: the steps that need the static key (noise.ts) wait for the
// keystore; everything they decided is re-checked when the answer comes (the
// handshake may have been superseded meanwhile). Each completion flushes the
// links itself, since it runs outside any batch.
import { getU32le, setU16, setU32 } from '../../net/bytes.ts';
import { createAeadKey } from './aead.ts';
import type { DataPath, HandshakeEvents } from './datapath.ts';
import { tai64n, timestampAfter } from './crypto.ts';
import { COOKIE_RECEIVER, MSG_INITIATION, PROTOCOL } from './messages.ts';
import {
  clearState, consumeInitiation, consumeResponse, createInitiation, createResponse, deriveKeys, initiationSender, responseReceiver,
} from './noise.ts';
import { Keypair, type Peer } from './peer.ts';
import type { TunnelState } from './state.ts';
import type { TimerActions, Timers } from './timers.ts';

export class Handshakes implements HandshakeEvents, TimerActions {
  readonly #state: TunnelState;
  readonly #dataPath: DataPath;
  readonly #timers: Timers;
  /** Handshake messages in the current one-second window (the under-load check). */
  #loadWindowStart = 0;
  #loadCount = 0;

  constructor(state: TunnelState, dataPath: DataPath, timers: Timers) {
    this.#state = state;
    this.#dataPath = dataPath;
    this.#timers = timers;
  }

  sendKeepalive(peer: Peer): void {
    this.#dataPath.sendKeepalive(peer);
  }

  /** Handshake messages per second above the threshold: ask initiators for cookies (mac2). */
  #underLoad(): boolean {
    const s = this.#state;
    const now = s.now;
    if (now - this.#loadWindowStart >= 1000) {
      this.#loadWindowStart = now;
      this.#loadCount = 0;
    }
    this.#loadCount++;
    return this.#loadCount > s.cfg.underLoadPerS;
  }

  handshakeIn(msg: Uint8Array, src: number, sport: number): void {
    const s = this.#state;
    const checker = s.cookieChecker!;
    if (!checker.checkMac1(msg)) return s.drop(s.drops['mac1-invalid']);
    if (this.#underLoad()) {
      s.count(s.counts['under-load']);
      const source = sourceBytes(src, sport);
      if (!checker.checkMac2(msg, source)) {
        const sender = msg[0] === MSG_INITIATION ? initiationSender(msg) : getU32le(msg, 4);
        if (this.#dataPath.sendMessage(checker.createReply(msg, sender, source), src, sport)) s.count(s.counts['cookie.reply-sent']);
        return s.drop(s.drops['cookie-required']);
      }
    }
    if (msg[0] === MSG_INITIATION) void this.#initiationIn(msg, src, sport);
    else void this.#responseIn(msg, src, sport);
  }

  /** We are the responder: check the initiation, answer it, keep the new keypair as `next` until the initiator uses it. */
  async #initiationIn(msg: Uint8Array, src: number, sport: number): Promise<void> {
    const s = this.#state;
    const drops = s.drops;
    s.count(s.counts['handshake.initiation-received']);
    const r = await consumeInitiation(s.keystore, msg, (pub) => s.peerByKey(pub) !== undefined);
    s.now = s.clock();
    if (!r.ok) {
      return s.drop(r.reason === 'keystore' ? drops['handshake-keystore'] : r.reason === 'bad-static' ? drops['handshake-bad-static']
        : r.reason === 'unknown-peer' ? drops['handshake-unknown-peer'] : drops['handshake-bad-timestamp']);
    }
    const peer = s.peerByKey(r.remoteStatic);
    if (peer === undefined) { // removed by a reload while the keystore answered
      clearState(r.state);
      return s.drop(drops['handshake-unknown-peer']);
    }
    const now = s.now;
    if (!timestampAfter(r.timestamp, peer.lastTimestamp)) {
      clearState(r.state);
      return s.drop(drops['handshake-replay']);
    }
    if (now - peer.lastInitiationConsumed <= PROTOCOL.initiationMinIntervalMs) {
      clearState(r.state);
      return s.drop(drops['handshake-flood']);
    }
    peer.lastTimestamp = r.timestamp;
    peer.lastInitiationConsumed = now;
    // Our own initiation in flight is superseded (its state is gone, as in wireguard-go).
    if (peer.handshake !== undefined) {
      s.indices.delete(peer.handshakeIndex);
      clearState(peer.handshake);
      peer.handshake = undefined;
    }
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      peer.endpointAddress = src;
      peer.endpointPort = sport;
    }
    const localIndex = s.newIndex(peer);
    const resp = createResponse(r.state, peer.cfg.presharedKey, localIndex);
    if (resp === undefined) {
      s.indices.delete(localIndex);
      clearState(r.state);
      return s.drop(drops['handshake-low-order']);
    }
    const keys = deriveKeys(r.state, false);
    const kp = new Keypair(peer, createAeadKey(keys.send, true), createAeadKey(keys.receive, false), localIndex, r.state.remoteIndex, false, now);
    keys.send.fill(0);
    keys.receive.fill(0);
    s.indices.set(localIndex, { peer, keypair: kp });
    if (peer.next !== undefined) s.destroyKeypair(peer.next);
    peer.next = kp;
    if (peer.previous !== undefined) s.destroyKeypair(peer.previous);
    peer.previous = undefined;
    peer.cookies.addMacs(resp);
    if (this.#dataPath.sendMessage(resp, peer.endpointAddress, peer.endpointPort)) s.count(s.counts['handshake.response-sent']);
    this.#timers.keypairDerived(peer);
    this.#timers.handshakeSent(peer);
    s.flush();
  }

  /** We are the initiator: a response to our initiation makes the new keypair current at once. */
  async #responseIn(msg: Uint8Array, src: number, sport: number): Promise<void> {
    const s = this.#state;
    const drops = s.drops;
    s.count(s.counts['handshake.response-received']);
    const receiver = responseReceiver(msg);
    const entry = s.indices.get(receiver);
    const peer = entry?.peer;
    const hs = peer?.handshake;
    if (peer === undefined || hs === undefined || entry?.keypair !== undefined || peer.handshakeIndex !== receiver) {
      return s.drop(drops['unknown-receiver']);
    }
    const ok = await consumeResponse(s.keystore, hs, peer.cfg.presharedKey, msg);
    s.now = s.clock();
    if (peer.handshake !== hs) return s.drop(drops['response-stale']);
    if (!ok) return s.drop(drops['response-invalid']);
    const now = s.now;
    peer.handshake = undefined;
    const keys = deriveKeys(hs, true);
    const kp = new Keypair(peer, createAeadKey(keys.send, true), createAeadKey(keys.receive, false), receiver, hs.remoteIndex, true, now);
    keys.send.fill(0);
    keys.receive.fill(0);
    s.indices.set(receiver, { peer, keypair: kp });
    if (peer.next !== undefined) {
      if (peer.previous !== undefined) s.destroyKeypair(peer.previous);
      peer.previous = peer.next;
      peer.next = undefined;
      if (peer.current !== undefined) s.destroyKeypair(peer.current);
    } else {
      if (peer.previous !== undefined) s.destroyKeypair(peer.previous);
      peer.previous = peer.current;
    }
    peer.current = kp;
    if (peer.endpointAddress !== src || peer.endpointPort !== sport) {
      peer.endpointAddress = src;
      peer.endpointPort = sport;
    }
    this.#completed(peer);
    this.#timers.keypairDerived(peer);
    s.count(s.counts['keypair.rotated']);
    this.#dataPath.sendStaged(peer, true);
    s.flush();
  }

  cookieReplyIn(msg: Uint8Array): void {
    const s = this.#state;
    const entry = s.indices.get(getU32le(msg, COOKIE_RECEIVER));
    if (entry === undefined) return s.drop(s.drops['unknown-receiver']);
    if (!entry.peer.cookies.consumeReply(msg)) return s.drop(s.drops['cookie-invalid']);
    s.count(s.counts['cookie.reply-received']);
  }

  /** The responder's next keypair is confirmed by the initiator's first packet: it becomes current. */
  confirm(peer: Peer): void {
    const s = this.#state;
    const next = peer.next;
    if (next === undefined) return;
    if (peer.previous !== undefined) s.destroyKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = next;
    peer.next = undefined;
    this.#completed(peer);
    s.count(s.counts['keypair.rotated']);
    this.#dataPath.sendStaged(peer, false);
  }

  #completed(peer: Peer): void {
    this.#timers.handshakeCompleted(peer);
    peer.lastHandshakeWallMs = Date.now();
    peer.handshakes++;
    this.#state.count(this.#state.counts['handshake.completed']);
  }

  /**
   * Start building an initiation to `peer` (one per REKEY_TIMEOUT unless
   * `retry`); false when not now (not ready, one in progress, too soon, no
   * endpoint).
   */
  initiate(peer: Peer, retry: boolean): boolean {
    const s = this.#state;
    if (!s.ready) return false;
    const now = s.now;
    if (peer.initiating) return false; // one initiation at a time: the packet that asked is staged
    if (!retry && now - peer.lastInitiationSent < s.cfg.timers.rekeyTimeoutMs) return false;
    if (peer.endpointAddress < 0) {
      s.drop(s.drops['no-endpoint']);
      return false;
    }
    if (!retry) {
      peer.attempts = 0;
      peer.attemptStart = now;
    }
    peer.lastInitiationSent = now;
    peer.initiating = true;
    this.#timers.initiationStarted(peer);
    const localIndex = s.newIndex(peer);
    void createInitiation(s.keystore, peer.cfg.publicKey, localIndex, tai64n()).then((r) => {
      peer.initiating = false;
      s.now = s.clock();
      if (r === undefined) {
        s.indices.delete(localIndex);
        return s.drop(s.drops['handshake-keystore']);
      }
      if (peer.removed) { // a reload removed the peer meanwhile
        s.indices.delete(localIndex);
        clearState(r.state);
        return;
      }
      if (peer.handshake !== undefined) {
        s.indices.delete(peer.handshakeIndex);
        clearState(peer.handshake);
      }
      peer.handshake = r.state;
      peer.handshakeIndex = localIndex;
      peer.cookies.addMacs(r.msg);
      if (!s.uplink.resolved && peer.endpointAddress >= 0) {
        peer.heldInitiation = r.msg;
        s.count(s.counts['handshake.initiation-held']);
      } else {
        peer.heldInitiation = undefined;
        if (this.#dataPath.sendMessage(r.msg, peer.endpointAddress, peer.endpointPort)) s.count(s.counts['handshake.initiation-sent']);
      }
      this.#timers.handshakeSent(peer);
      s.flush();
    });
    return true;
  }

  /**
   * Data for keys we do not have, from a peer's endpoint while we have no
   * current keys with it: we lost them (a restart, or zeroed after silence)
   * and the peer still sends with its old ones. Start a handshake at once
   * instead of leaving the peer to notice (wireguard-go: ~15 s without an
   * answer). The index alone names no peer, so only the endpoint is matched;
   * initiate() allows one initiation per peer per rekey-timeout, so forged
   * packets from that address cost at most that.
   */
  unknownReceiver(src: number, sport: number): void {
    const s = this.#state;
    for (const peer of s.peers) {
      if (peer.current !== undefined || peer.endpointAddress < 0) continue;
      if (peer.endpointAddress >>> 0 !== src || peer.endpointPort !== sport) continue;
      if (this.initiate(peer, false)) s.count(s.counts['handshake.initiated-on-unknown']);
      return;
    }
  }

  /** The uplink's gateway was just resolved: send the initiations built before. */
  uplinkResolved(): void {
    const s = this.#state;
    for (const peer of s.peers) {
      const msg = peer.heldInitiation;
      if (msg === undefined) continue;
      peer.heldInitiation = undefined;
      if (this.#dataPath.sendMessage(msg, peer.endpointAddress, peer.endpointPort)) s.count(s.counts['handshake.initiation-sent']);
    }
  }
}

/** What a cookie is bound to: the sender's address and port (6 bytes). */
function sourceBytes(addr: number, port: number): Uint8Array {
  const bytes = new Uint8Array(6);
  setU32(bytes, 0, addr >>> 0);
  setU16(bytes, 4, port);
  return bytes;
}
