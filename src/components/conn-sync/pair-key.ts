// The pair's shared key, read once through the fd init grants as the device
// "pair-key" (a `file` device: init opens the key file as root, never reads
// it; conn-sync's uid could not open the path, and its sandbox shows none).
// The file holds base64 of at least 32 random bytes (`head -c 32
// /dev/urandom | base64`), the same on both gateways. Every buffer that
// carried the text is zeroed; the caller closes the fd.
import { readSync } from 'node:fs';
import { PAIR_MIN_KEY } from './pair-wire.ts';

const MAX_FILE = 1024;

/** The key bytes from the file behind `fd`; throws with what is wrong (never the content). */
export function readPairKey(fd: number): Uint8Array {
  const buf = Buffer.alloc(MAX_FILE + 1);
  try {
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_FILE) throw new Error(`the pair-key file is longer than ${MAX_FILE} bytes: expected base64 of 32 or more random bytes`);
    let end = n;
    while (end > 0 && (buf[end - 1] === 0x0a || buf[end - 1] === 0x0d || buf[end - 1] === 0x20)) end--;
    for (let i = 0; i < end; i++) {
      const ch = buf[i];
      const ok = (ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch === 0x2b || ch === 0x2f || ch === 0x3d;
      if (!ok) throw new Error(`the pair-key file is not one line of base64 (byte ${i} is not a base64 character)`);
    }
    const key = Buffer.from(buf.subarray(0, end).toString('latin1'), 'base64');
    if (key.length < PAIR_MIN_KEY) {
      key.fill(0);
      throw new Error(`the pair-key file holds ${key.length} bytes of key; at least ${PAIR_MIN_KEY} are needed (head -c 32 /dev/urandom | base64)`);
    }
    return key;
  } finally {
    buf.fill(0);
  }
}
