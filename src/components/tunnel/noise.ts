// The Noise_IKpsk2 handshake of WireGuard (whitepaper section 5.4.2-5.4.4),
// as four steps over byte messages, with the static private key held
// elsewhere: every DH with it goes through a StaticIdentity (the keystore),
// so this module never sees that key. Ephemeral keys, chaining keys and
// hashes live here; they are zeroed when the handshake is done.
//
// Steps (initiator I, responder R):
//   I: createInitiation   -> message 1 (macs still zero)
//   R: consumeInitiation  -> which peer, its timestamp, the state
//   R: createResponse     -> message 2 (macs zero); deriveKeys(state, false)
//   I: consumeResponse    -> true if authentic;  deriveKeys(state, true)
import type { KeyObject } from 'node:crypto';
import { getU32le, setU32le } from '../../net/bytes.ts';
import {
  aeadOpen, aeadSeal, dh, generateEphemeral, hash, HASH_LEN, kdf1, kdf2, kdf3, TAG_LEN,
} from './crypto.ts';
import {
  CONSTRUCTION, IDENTIFIER, INIT_EPHEMERAL, INIT_SENDER, INIT_STATIC, INIT_TIMESTAMP, INITIATION_SIZE, MSG_INITIATION,
  MSG_RESPONSE, RESP_EMPTY, RESP_EPHEMERAL, RESP_RECEIVER, RESP_SENDER, RESPONSE_SIZE,
} from './messages.ts';

const enc = new TextEncoder();
export const INITIAL_CHAIN_KEY = hash(enc.encode(CONSTRUCTION));
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, enc.encode(IDENTIFIER));
const EMPTY = new Uint8Array(0);
const ZERO_PSK = new Uint8Array(32);

/** The operations that need the static private key, performed by whoever holds it. */
export interface StaticIdentity {
  readonly publicKey: Uint8Array;
  /** X25519(static private, peer): rejects (or resolves undefined) for a low-order point or a keystore failure. */
  dh(peerPublic: Uint8Array): Promise<Uint8Array | undefined>;
}

/** A handshake in progress, from one side's point of view. */
export interface HandshakeState {
  chainKey: Uint8Array;
  hash: Uint8Array;
  localEphemeral: KeyObject | undefined;
  localEphemeralPublic: Uint8Array;
  remoteEphemeral: Uint8Array;
  remoteStatic: Uint8Array;
  localIndex: number;
  remoteIndex: number;
}

function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) b?.fill(0);
}


function newState(remoteStatic: Uint8Array, localIndex: number): HandshakeState {
  return {
    chainKey: INITIAL_CHAIN_KEY.slice(),
    hash: INITIAL_HASH.slice(),
    localEphemeral: undefined,
    localEphemeralPublic: new Uint8Array(32),
    remoteEphemeral: new Uint8Array(32),
    remoteStatic,
    localIndex,
    remoteIndex: 0,
  };
}

function mixHash(s: HandshakeState, data: Uint8Array): void {
  s.hash = hash(s.hash, data);
}

function mixKey(s: HandshakeState, data: Uint8Array): void {
  const c = kdf1(s.chainKey, data);
  wipe(s.chainKey);
  s.chainKey = c;
}

/** (C, k) = KDF2(C, input): returns k. */
function mixKeyAndGetKey(s: HandshakeState, input: Uint8Array): Uint8Array {
  const [c, k] = kdf2(s.chainKey, input);
  wipe(s.chainKey);
  s.chainKey = c;
  return k;
}

export function clearState(s: HandshakeState): void {
  wipe(s.chainKey, s.hash);
  s.localEphemeral = undefined;
}

/**
 * Message 1 from the initiator. `timestamp` is TAI64N (12 bytes). Resolves
 * undefined when the keystore refuses the static DH (e.g. a low-order peer key).
 */
export async function createInitiation(
  id: StaticIdentity, remoteStatic: Uint8Array, localIndex: number, timestamp: Uint8Array,
): Promise<{ msg: Uint8Array; state: HandshakeState } | undefined> {
  const s = newState(remoteStatic, localIndex);
  mixHash(s, remoteStatic);
  const e = generateEphemeral();
  s.localEphemeral = e.privateKey;
  s.localEphemeralPublic = e.publicKey;
  const msg = new Uint8Array(INITIATION_SIZE);
  msg[0] = MSG_INITIATION;
  setU32le(msg, INIT_SENDER, localIndex);
  msg.set(e.publicKey, INIT_EPHEMERAL);
  mixKey(s, e.publicKey);
  mixHash(s, e.publicKey);
  const es = dh(e.privateKey, remoteStatic);
  if (es === undefined) return undefined;
  let k = mixKeyAndGetKey(s, es);
  wipe(es);
  const encStatic = aeadSeal(k, 0, id.publicKey, s.hash);
  wipe(k);
  msg.set(encStatic, INIT_STATIC);
  mixHash(s, encStatic);
  const ss = await id.dh(remoteStatic);
  if (ss === undefined) return undefined;
  k = mixKeyAndGetKey(s, ss);
  wipe(ss);
  const encTime = aeadSeal(k, 0, timestamp, s.hash);
  wipe(k);
  msg.set(encTime, INIT_TIMESTAMP);
  mixHash(s, encTime);
  return { msg, state: s };
}

export type ConsumeInitiationResult =
  | { ok: true; state: HandshakeState; remoteStatic: Uint8Array; timestamp: Uint8Array }
  | { ok: false; reason: 'keystore' | 'bad-static' | 'unknown-peer' | 'bad-timestamp' };

/**
 * Message 1 at the responder (macs already checked by the caller). `known`
 * says whether a decrypted static key is a configured peer: unknown peers cost
 * no second keystore call.
 */
export async function consumeInitiation(
  id: StaticIdentity, msg: Uint8Array, known: (remoteStatic: Uint8Array) => boolean,
): Promise<ConsumeInitiationResult> {
  const s = newState(new Uint8Array(32), 0);
  mixHash(s, id.publicKey);
  const ephemeral = msg.slice(INIT_EPHEMERAL, INIT_EPHEMERAL + 32);
  mixHash(s, ephemeral);
  mixKey(s, ephemeral);
  const es = await id.dh(ephemeral);
  if (es === undefined) {
    clearState(s);
    return { ok: false, reason: 'keystore' };
  }
  let k = mixKeyAndGetKey(s, es);
  wipe(es);
  const encStatic = msg.subarray(INIT_STATIC, INIT_STATIC + 32 + TAG_LEN);
  const remoteStatic = aeadOpen(k, 0, encStatic, s.hash);
  wipe(k);
  if (remoteStatic === undefined || remoteStatic.length !== 32) {
    clearState(s);
    return { ok: false, reason: 'bad-static' };
  }
  mixHash(s, encStatic);
  if (!known(remoteStatic)) {
    clearState(s);
    return { ok: false, reason: 'unknown-peer' };
  }
  const ss = await id.dh(remoteStatic);
  if (ss === undefined) {
    clearState(s);
    return { ok: false, reason: 'keystore' };
  }
  k = mixKeyAndGetKey(s, ss);
  wipe(ss);
  const encTime = msg.subarray(INIT_TIMESTAMP, INIT_TIMESTAMP + 12 + TAG_LEN);
  const timestamp = aeadOpen(k, 0, encTime, s.hash);
  wipe(k);
  if (timestamp === undefined || timestamp.length !== 12) {
    clearState(s);
    return { ok: false, reason: 'bad-timestamp' };
  }
  mixHash(s, encTime);
  s.remoteStatic = remoteStatic;
  s.remoteEphemeral = ephemeral;
  s.remoteIndex = getU32le(msg, INIT_SENDER);
  return { ok: true, state: s, remoteStatic, timestamp };
}

/** Message 2 from the responder (macs zero), after consumeInitiation. Undefined for a low-order remote ephemeral. */
export function createResponse(s: HandshakeState, psk: Uint8Array | undefined, localIndex: number): Uint8Array | undefined {
  s.localIndex = localIndex;
  const msg = new Uint8Array(RESPONSE_SIZE);
  msg[0] = MSG_RESPONSE;
  setU32le(msg, RESP_SENDER, localIndex);
  setU32le(msg, RESP_RECEIVER, s.remoteIndex);
  const e = generateEphemeral();
  s.localEphemeral = e.privateKey;
  s.localEphemeralPublic = e.publicKey;
  msg.set(e.publicKey, RESP_EPHEMERAL);
  mixHash(s, e.publicKey);
  mixKey(s, e.publicKey);
  const ee = dh(e.privateKey, s.remoteEphemeral);
  if (ee === undefined) return undefined;
  mixKey(s, ee);
  wipe(ee);
  const se = dh(e.privateKey, s.remoteStatic);
  if (se === undefined) return undefined;
  mixKey(s, se);
  wipe(se);
  const [c, tau, k] = kdf3(s.chainKey, psk ?? ZERO_PSK);
  wipe(s.chainKey);
  s.chainKey = c;
  mixHash(s, tau);
  wipe(tau);
  const empty = aeadSeal(k, 0, EMPTY, s.hash);
  wipe(k);
  msg.set(empty, RESP_EMPTY);
  mixHash(s, empty);
  return msg;
}

/** The response's receiver index (to find the handshake it answers). */
export function responseReceiver(msg: Uint8Array): number {
  return getU32le(msg, RESP_RECEIVER);
}

export function initiationSender(msg: Uint8Array): number {
  return getU32le(msg, INIT_SENDER);
}

/**
 * Message 2 at the initiator (macs checked by the caller). On success the
 * state is updated (remote index, chaining key, hash); on failure it is left
 * as it was, so a forged response does not spoil the handshake.
 */
export async function consumeResponse(
  id: StaticIdentity, s: HandshakeState, psk: Uint8Array | undefined, msg: Uint8Array,
): Promise<boolean> {
  if (s.localEphemeral === undefined) return false;
  const ephemeral = msg.slice(RESP_EPHEMERAL, RESP_EPHEMERAL + 32);
  const t: HandshakeState = { ...s, chainKey: s.chainKey.slice(), hash: s.hash.slice() };
  mixHash(t, ephemeral);
  mixKey(t, ephemeral);
  const ee = dh(s.localEphemeral, ephemeral);
  if (ee === undefined) return fail(t);
  mixKey(t, ee);
  wipe(ee);
  const se = await id.dh(ephemeral);
  if (se === undefined) return fail(t);
  mixKey(t, se);
  wipe(se);
  const [c, tau, k] = kdf3(t.chainKey, psk ?? ZERO_PSK);
  wipe(t.chainKey);
  t.chainKey = c;
  mixHash(t, tau);
  wipe(tau);
  const empty = msg.subarray(RESP_EMPTY, RESP_EMPTY + TAG_LEN);
  const ok = aeadOpen(k, 0, empty, t.hash) !== undefined;
  wipe(k);
  if (!ok) return fail(t);
  mixHash(t, empty);
  wipe(s.chainKey, s.hash);
  s.chainKey = t.chainKey;
  s.hash = t.hash;
  s.remoteEphemeral = ephemeral;
  s.remoteIndex = getU32le(msg, RESP_SENDER);
  return true;
}

function fail(t: HandshakeState): false {
  wipe(t.chainKey, t.hash);
  return false;
}

/**
 * The transport keys (whitepaper 5.4.5): (T_send, T_recv) = KDF2(C, ε) for
 * the initiator, swapped for the responder. The state is cleared.
 */
export function deriveKeys(s: HandshakeState, initiator: boolean): { send: Uint8Array; receive: Uint8Array } {
  const [t1, t2] = kdf2(s.chainKey, EMPTY);
  clearState(s);
  return initiator ? { send: t1, receive: t2 } : { send: t2, receive: t1 };
}

export { HASH_LEN };
