// The primitives of WireGuard's handshake (whitepaper section 5.4), each from
// a maintained library rather than written here:
//   HASH     BLAKE2s-256                       node:crypto (OpenSSL)
//   HMAC     HMAC-BLAKE2s                      node:crypto (OpenSSL)
//   KDFn     HKDF over HMAC-BLAKE2s            built from HMAC as the paper states
//   MAC      keyed BLAKE2s, 16-byte output     @noble/hashes (OpenSSL has no keyed BLAKE2s-128)
//   AEAD     ChaCha20-Poly1305 (RFC 7539)      node:crypto
//   XAEAD    XChaCha20-Poly1305                @noble/ciphers (not in node:crypto)
//   DH       X25519                            node:crypto (see ../keystore/keys.ts)
// The handshake is rare (every two minutes per peer): these allocate freely.
// The data path's AEAD is ./aead.ts.
import { createCipheriv, createDecipheriv, createHash, createHmac, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { rawPublicKey, x25519 } from '../keystore/keys.ts';

export const HASH_LEN = 32;
export const MAC_LEN = 16;
export const TAG_LEN = 16;

export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const ONE = new Uint8Array([1]);
const TWO = new Uint8Array([2]);
const THREE = new Uint8Array([3]);

/** KDF1(key, input) = τ1. */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

/** KDF2(key, input) = (τ1, τ2). */
export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

/** KDF3(key, input) = (τ1, τ2, τ3). */
export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  const t3 = hmac(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** Constant-time comparison of two equal-length byte strings (false when lengths differ). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The 96-bit nonce of WireGuard's AEAD: 32 zero bits, then the 64-bit counter little-endian. */
function nonce12(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter >>> 0, 4);
  n.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  return n;
}

/** AEAD(key, counter, plaintext, aad): ciphertext || 16-byte tag. */
export function aeadSeal(key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const c = createCipheriv('chacha20-poly1305', key, nonce12(counter), { authTagLength: TAG_LEN });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  const out = new Uint8Array(body.length + TAG_LEN);
  out.set(body, 0);
  out.set(c.getAuthTag(), body.length);
  return out;
}

/** The plaintext, or undefined when the tag does not verify. */
export function aeadOpen(key: Uint8Array, counter: number, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_LEN) return undefined;
  const n = sealed.length - TAG_LEN;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce12(counter), { authTagLength: TAG_LEN });
    d.setAAD(aad, { plaintextLength: n });
    d.setAuthTag(sealed.subarray(n));
    const body = d.update(sealed.subarray(0, n));
    d.final();
    return new Uint8Array(body);
  } catch {
    return undefined;
  }
}

/** XAEAD(key, nonce24, plaintext, aad): ciphertext || tag. */
export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    return undefined;
  }
}

/** An ephemeral X25519 key pair: the private half stays an OpenSSL key object. */
export interface Ephemeral {
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
}

export function generateEphemeral(): Ephemeral {
  const { privateKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: rawPublicKey(privateKey) };
}

/** DH(ephemeral private, public): undefined for a low-order point. */
export function dh(priv: KeyObject, publicRaw: Uint8Array): Uint8Array | undefined {
  return x25519(priv, publicRaw);
}

/** TAI64N label of 2^62 + 10 (the TAI offset WireGuard uses) plus Unix seconds. */
const TAI64_BASE = 0x4000000000000000n + 10n;
/** Nanoseconds are rounded down to 2^24 ns (~16.8 ms), as wireguard-go does, to blur timing. */
const WHITENER = 0xffffff;

/** The 12-byte TAI64N timestamp of the initiation message. */
export function tai64n(nowMs = Date.now()): Uint8Array {
  const out = new Uint8Array(12);
  const dv = new DataView(out.buffer);
  const secs = Math.floor(nowMs / 1000);
  dv.setBigUint64(0, TAI64_BASE + BigInt(secs), false);
  const nanos = Math.round((nowMs - secs * 1000) * 1e6);
  dv.setUint32(8, (nanos & ~WHITENER) >>> 0, false);
  return out;
}

/** a > b for two TAI64N timestamps (big-endian byte strings). */
export function timestampAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 12; i++) {
    if (a[i] !== b[i]) return a[i] > b[i];
  }
  return false;
}
