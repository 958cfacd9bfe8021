// WireGuard's four message types (whitepaper section 5.4): layouts, sizes and
// the protocol's constants (section 6.1 and wireguard-go's constants.go).
// All integers little-endian; each message starts with its type byte and
// three reserved zero bytes.

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
/** Type, receiver, counter: the bytes in front of a transport message's ciphertext. */
export const TRANSPORT_HEADER_SIZE = 16;
/** A keepalive: header + the tag of an empty plaintext. */
export const KEEPALIVE_SIZE = 32;

// Initiation: type | sender | ephemeral | static (32 + tag) | timestamp (12 + tag) | mac1 | mac2
export const INIT_SENDER = 4;
export const INIT_EPHEMERAL = 8;
export const INIT_STATIC = 40;
export const INIT_TIMESTAMP = 88;
export const INIT_MAC1 = 116;
export const INIT_MAC2 = 132;

// Response: type | sender | receiver | ephemeral | empty (tag) | mac1 | mac2
export const RESP_SENDER = 4;
export const RESP_RECEIVER = 8;
export const RESP_EPHEMERAL = 12;
export const RESP_EMPTY = 44;
export const RESP_MAC1 = 60;
export const RESP_MAC2 = 76;

// Cookie reply: type | receiver | nonce (24) | cookie (16 + tag)
export const COOKIE_RECEIVER = 4;
export const COOKIE_NONCE = 8;
export const COOKIE_COOKIE = 32;

// Transport: type | receiver | counter (u64) | ciphertext
export const DATA_RECEIVER = 4;
export const DATA_COUNTER = 8;

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

/**
 * The protocol's timers and limits (whitepaper 6.1), in milliseconds. A
 * tunnel's config may lower the times (for tests); the message limits are
 * fixed. Counters are JavaScript numbers: the reject limit is the largest
 * exact integer, far below the paper's 2^64 - 2^13 - 1 and as unreachable
 * (2^53 messages at 10 M/s take 28 years; the key is renewed every 2 minutes).
 */
export const PROTOCOL = {
  rekeyAfterMessages: 2 ** 52,
  rejectAfterMessages: Number.MAX_SAFE_INTEGER,
  rekeyAfterTimeMs: 120_000,
  rejectAfterTimeMs: 180_000,
  rekeyAttemptTimeMs: 90_000,
  rekeyTimeoutMs: 5_000,
  keepaliveTimeoutMs: 10_000,
  cookieRefreshTimeMs: 120_000,
  /** The most initiations a responder accepts from one peer: one per 20 ms (wireguard-go's HandshakeInitationRate). */
  initiationMinIntervalMs: 20,
  /** Up to this much random delay is added to each handshake retransmission. */
  rekeyTimeoutJitterMs: 333,
} as const;

/** Round a plaintext length up to the 16-byte padding WireGuard applies, without exceeding the MTU. */
export function paddedLength(len: number, mtu: number): number {
  const p = (len + 15) & ~15;
  return p > mtu ? Math.max(len, mtu) : p;
}
