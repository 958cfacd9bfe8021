// mac1 / mac2 and cookie replies (whitepaper section 5.4.7 and 5.3): the
// responder's CookieChecker verifies mac1 (proof the sender knows our public
// key) and, under load, mac2 (proof the sender can receive at its source
// address, via a cookie we handed it); the initiator's CookieGenerator adds
// both macs to its messages and consumes the cookie replies it receives.
// mac1 always covers the message up to mac1, mac2 up to mac2; both sit in
// the last 32 bytes of a handshake message.
import { randomBytes } from 'node:crypto';
import { equalBytes, hash, mac, MAC_LEN, xaeadOpen, xaeadSeal } from './crypto.ts';
import { COOKIE_COOKIE, COOKIE_NONCE, COOKIE_RECEIVER, COOKIE_REPLY_SIZE, LABEL_COOKIE, LABEL_MAC1, MSG_COOKIE_REPLY, PROTOCOL } from './messages.ts';

const enc = new TextEncoder();
const ZERO_MAC = new Uint8Array(MAC_LEN);

/** The key of mac1 for messages to the owner of `publicKey`: HASH(LABEL_MAC1 || publicKey). */
export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_MAC1), publicKey);
}

/** The key that seals cookies of the owner of `publicKey`: HASH(LABEL_COOKIE || publicKey). */
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_COOKIE), publicKey);
}

/** The responder's side, keyed by our own public key. */
export class CookieChecker {
  readonly #mac1Key: Uint8Array;
  readonly #encKey: Uint8Array;
  #secret: Uint8Array = new Uint8Array(32);
  #secretSetAt = -Infinity;
  readonly #clock: () => number;
  readonly #refreshMs: number;

  constructor(ourPublicKey: Uint8Array, opts: { clock?: () => number; refreshMs?: number } = {}) {
    this.#mac1Key = mac1Key(ourPublicKey);
    this.#encKey = cookieKey(ourPublicKey);
    this.#clock = opts.clock ?? (() => performance.now());
    this.#refreshMs = opts.refreshMs ?? PROTOCOL.cookieRefreshTimeMs;
  }

  /** mac1 of a handshake message (whole message, macs included) is valid. */
  checkMac1(msg: Uint8Array): boolean {
    const n = msg.length;
    if (n < 2 * MAC_LEN) return false;
    return equalBytes(mac(this.#mac1Key, msg.subarray(0, n - 2 * MAC_LEN)), msg.subarray(n - 2 * MAC_LEN, n - MAC_LEN));
  }

  /** mac2 is valid for a sender at `source` (its address and port bytes), with a cookie of the current secret. */
  checkMac2(msg: Uint8Array, source: Uint8Array): boolean {
    const n = msg.length;
    if (n < 2 * MAC_LEN || this.#clock() - this.#secretSetAt > this.#refreshMs) return false;
    const cookie = mac(this.#secret, source);
    return equalBytes(mac(cookie, msg.subarray(0, n - MAC_LEN)), msg.subarray(n - MAC_LEN));
  }

  /** A cookie reply to `msg` (whose mac1 was valid) from `source`, to the sender's index `receiver`. */
  createReply(msg: Uint8Array, receiver: number, source: Uint8Array): Uint8Array {
    const now = this.#clock();
    if (now - this.#secretSetAt > this.#refreshMs) {
      this.#secret = new Uint8Array(randomBytes(32));
      this.#secretSetAt = now;
    }
    const n = msg.length;
    const cookie = mac(this.#secret, source);
    const reply = new Uint8Array(COOKIE_REPLY_SIZE);
    reply[0] = MSG_COOKIE_REPLY;
    new DataView(reply.buffer).setUint32(COOKIE_RECEIVER, receiver >>> 0, true);
    const nonce = new Uint8Array(randomBytes(24));
    reply.set(nonce, COOKIE_NONCE);
    reply.set(xaeadSeal(this.#encKey, nonce, cookie, msg.subarray(n - 2 * MAC_LEN, n - MAC_LEN)), COOKIE_COOKIE);
    return reply;
  }
}

/** The initiator's side, one per peer, keyed by the peer's public key. */
export class CookieGenerator {
  readonly #mac1Key: Uint8Array;
  readonly #decKey: Uint8Array;
  #lastMac1: Uint8Array | undefined;
  #cookie: Uint8Array = new Uint8Array(MAC_LEN);
  #cookieSetAt = -Infinity;
  readonly #clock: () => number;
  readonly #refreshMs: number;

  constructor(peerPublicKey: Uint8Array, opts: { clock?: () => number; refreshMs?: number } = {}) {
    this.#mac1Key = mac1Key(peerPublicKey);
    this.#decKey = cookieKey(peerPublicKey);
    this.#clock = opts.clock ?? (() => performance.now());
    this.#refreshMs = opts.refreshMs ?? PROTOCOL.cookieRefreshTimeMs;
  }

  /** Write mac1 and (with a fresh cookie) mac2 into the last 32 bytes of `msg`. */
  addMacs(msg: Uint8Array): void {
    const n = msg.length;
    const m1 = mac(this.#mac1Key, msg.subarray(0, n - 2 * MAC_LEN));
    msg.set(m1, n - 2 * MAC_LEN);
    this.#lastMac1 = m1;
    if (this.#clock() - this.#cookieSetAt > this.#refreshMs) msg.set(ZERO_MAC, n - MAC_LEN);
    else msg.set(mac(this.#cookie, msg.subarray(0, n - MAC_LEN)), n - MAC_LEN);
  }

  /** Take the cookie out of a reply to our last message; false if it does not decrypt. */
  consumeReply(reply: Uint8Array): boolean {
    if (reply.length !== COOKIE_REPLY_SIZE || this.#lastMac1 === undefined) return false;
    const cookie = xaeadOpen(this.#decKey, reply.subarray(COOKIE_NONCE, COOKIE_COOKIE), reply.subarray(COOKIE_COOKIE), this.#lastMac1);
    if (cookie === undefined || cookie.length !== MAC_LEN) return false;
    this.#cookie = cookie;
    this.#cookieSetAt = this.#clock();
    return true;
  }

  get hasCookie(): boolean {
    return this.#clock() - this.#cookieSetAt <= this.#refreshMs;
  }
}
