// The keystore's request/response messages. They travel over a Nic session
// used as a message channel: one message per packet, no Ethernet framing.
// Both sides check every length and field; a bad request gets an error
// status, never a crash.
//
//   request   0: id u32le | 4: op u8 | 5..8: zero | 8..40: argument (op dh: a public key)
//   response  0: id u32le | 4: op u8 | 5: status u8 | 6..8: zero | 8..40: result
//
// op 1 dh           X25519(static private key, argument)        -> 32 bytes
// op 2 public-key   the static public key (argument ignored)     -> 32 bytes

export const KS_MSG_LEN = 40;
export const KS_ID = 0;
export const KS_OP = 4;
export const KS_STATUS = 5;
export const KS_ARG = 8;

export const KS_OP_DH = 1;
export const KS_OP_PUBLIC_KEY = 2;

export const KS_OK = 0;
/** Malformed request: wrong length, unknown op, reserved bytes set. */
export const KS_BAD_REQUEST = 1;
/** The DH result was all zeros (a low-order point): refused, as WireGuard requires. */
export const KS_REFUSED = 2;

export const KS_STATUS_NAMES: Record<number, string> = {
  [KS_OK]: 'ok',
  [KS_BAD_REQUEST]: 'bad-request',
  [KS_REFUSED]: 'refused',
};
