// WireGuard keys: the text format of `wg genkey` / `wg pubkey` / `wg genpsk`
// (base64 of exactly 32 bytes) and X25519 through node:crypto (OpenSSL).
//
// Raw key bytes become OpenSSL key objects (KeyObject) at once; the buffers
// that carried them are zeroed, so a private key lives in OpenSSL's memory
// rather than on the JavaScript heap.
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export const KEY_LEN = 32;

// DER prefixes of an X25519 key (RFC 8410): PKCS#8 private, SPKI public.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const B64_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Decode the base64 text of a 32-byte key (surrounding whitespace allowed); undefined if it is not one. */
export function decodeKey(text: string): Uint8Array | undefined {
  const t = text.trim();
  if (!B64_KEY_RE.test(t)) return undefined;
  const b = Buffer.from(t, 'base64');
  if (b.length !== KEY_LEN) return undefined;
  const out = new Uint8Array(KEY_LEN);
  out.set(b);
  b.fill(0);
  return out;
}

export function encodeKey(key: Uint8Array): string {
  if (key.length !== KEY_LEN) throw new RangeError(`a key is ${KEY_LEN} bytes, got ${key.length}`);
  return Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64');
}

/** Curve25519 scalar clamping, as `wg genkey` applies it. */
export function clamp(k: Uint8Array): Uint8Array {
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

/** A new private key: 32 random bytes, clamped (what `wg genkey` prints, as bytes). */
export function generatePrivateKey(): Uint8Array {
  return clamp(new Uint8Array(randomBytes(KEY_LEN)));
}

/** A new preshared key: 32 random bytes (what `wg genpsk` prints, as bytes). */
export function generatePresharedKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_LEN));
}

/** An OpenSSL X25519 private key from 32 raw bytes. The DER copy is zeroed; the caller should zero `raw`. */
export function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_LEN) throw new RangeError(`a private key is ${KEY_LEN} bytes, got ${raw.length}`);
  const der = Buffer.alloc(PKCS8_X25519.length + KEY_LEN);
  PKCS8_X25519.copy(der, 0);
  der.set(raw, PKCS8_X25519.length);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** An OpenSSL X25519 public key from 32 raw bytes. */
export function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_LEN) throw new RangeError(`a public key is ${KEY_LEN} bytes, got ${raw.length}`);
  const der = Buffer.alloc(SPKI_X25519.length + KEY_LEN);
  SPKI_X25519.copy(der, 0);
  der.set(raw, SPKI_X25519.length);
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/** The raw 32-byte public key of a private or public X25519 key object. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - KEY_LEN));
}

/** The public key of a raw private key (what `wg pubkey` computes). */
export function publicKeyOf(privateRaw: Uint8Array): Uint8Array {
  return rawPublicKey(privateKeyObject(privateRaw));
}

/**
 * X25519(private, public). Undefined when the result is all zeros (a
 * low-order public key: OpenSSL refuses it, as WireGuard must).
 */
export function x25519(priv: KeyObject, publicRaw: Uint8Array): Uint8Array | undefined {
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey: priv, publicKey: publicKeyObject(publicRaw) });
  } catch {
    return undefined;
  }
  let acc = 0;
  for (let i = 0; i < out.length; i++) acc |= out[i];
  if (acc === 0) return undefined;
  const r = new Uint8Array(out);
  out.fill(0);
  return r;
}
