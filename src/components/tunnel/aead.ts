// The data path's AEAD: ChaCha20-Poly1305 (RFC 7539) sealing and opening
// packets in place in session slots, without allocating per packet.
//
// node:crypto allocates a cipher object and output buffers for every message
// (~6.5 us for a 1440-byte packet here). The same OpenSSL code is reachable
// without that: Node links OpenSSL statically and exports its EVP API, so
// koffi calls EVP_chacha20_poly1305 on the slot memory directly (~1.5 us).
// One EVP context per key and direction holds the key; each packet sets only
// the nonce. If the EVP symbols are not found (a Node linked against a
// shared libcrypto is tried next), node:crypto is the fallback: same cipher,
// same results, slower.
import koffi from 'koffi';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Buffer } from 'node:buffer';

export const TAG_LEN = 16;
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;

/** One direction of one transport key. */
export interface AeadKey {
  /** Seal buf[off, off+len) in place and write the tag at off+len. `addr` is the address of buf[0] (or -1). */
  seal(buf: Uint8Array, addr: number, off: number, len: number, counter: number): void;
  /**
   * Open `len` bytes of ciphertext at src[srcOff] (tag at srcOff+len) into
   * dst[dstOff]. Returns false if the tag does not verify (dst then holds junk).
   */
  open(src: Uint8Array, srcAddr: number, srcOff: number, len: number, dst: Uint8Array, dstAddr: number, dstOff: number, counter: number): boolean;
  /** Forget the key (the context is freed and cleansed). */
  destroy(): void;
}

interface Evp {
  ctxNew: () => unknown;
  ctxFree: (ctx: unknown) => void;
  cipher: unknown;
  init: (ctx: unknown, cipher: unknown, engine: null, key: Uint8Array | null, iv: Uint8Array | null, enc: number) => number;
  update: (ctx: unknown, out: number, outl: number[], inp: number, inl: number) => number;
  final: (ctx: unknown, out: number, outl: number[]) => number;
  ctrl: (ctx: unknown, type: number, arg: number, ptr: number) => number;
}

function loadEvp(): Evp | undefined {
  const candidates: (string | null)[] = [null, 'libcrypto.so.3'];
  for (const c of candidates) {
    try {
      const lib = koffi.load(c as string);
      const cipherFn = lib.func('void *EVP_chacha20_poly1305()');
      const evp: Evp = {
        ctxNew: lib.func('void *EVP_CIPHER_CTX_new()'),
        ctxFree: lib.func('void EVP_CIPHER_CTX_free(void *ctx)'),
        cipher: cipherFn(),
        init: lib.func('int EVP_CipherInit_ex(void *ctx, void *cipher, void *engine, const uint8_t *key, const uint8_t *iv, int enc)'),
        update: lib.func('int EVP_CipherUpdate(void *ctx, intptr_t out, _Out_ int *outl, intptr_t in, int inl)'),
        final: lib.func('int EVP_CipherFinal_ex(void *ctx, intptr_t out, _Out_ int *outl)'),
        ctrl: lib.func('int EVP_CIPHER_CTX_ctrl(void *ctx, int type, int arg, intptr_t ptr)'),
      };
      if (evp.cipher === null) continue;
      return evp;
    } catch {
      // not in this library: try the next
    }
  }
  return undefined;
}

let evpLoaded: Evp | undefined | null = null;
function evp(): Evp | undefined {
  if (evpLoaded === null) evpLoaded = process.env.MG_AEAD === 'node' ? undefined : loadEvp();
  return evpLoaded;
}

/** Which implementation createAeadKey uses: "openssl-evp" or "node-crypto". */
export function aeadBackend(): string {
  return evp() === undefined ? 'node-crypto' : 'openssl-evp';
}

function setNonce(nonce: Uint8Array, counter: number): void {
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x100000000) >>> 0;
  nonce[4] = lo & 0xff;
  nonce[5] = (lo >>> 8) & 0xff;
  nonce[6] = (lo >>> 16) & 0xff;
  nonce[7] = lo >>> 24;
  nonce[8] = hi & 0xff;
  nonce[9] = (hi >>> 8) & 0xff;
  nonce[10] = (hi >>> 16) & 0xff;
  nonce[11] = hi >>> 24;
}

/** The address of buf[0] for memory that has none recorded (tests, owned buffers): slow path. */
function addressOf(buf: Uint8Array): number {
  return Number(koffi.address(buf.buffer as ArrayBuffer)) + buf.byteOffset;
}

class EvpKey implements AeadKey {
  readonly #evp: Evp;
  #ctx: unknown;
  readonly #nonce = new Uint8Array(12);
  readonly #outl = [0];
  readonly #seal: boolean;

  constructor(e: Evp, key: Uint8Array, seal: boolean) {
    this.#evp = e;
    this.#seal = seal;
    const ctx = e.ctxNew();
    this.#ctx = ctx;
    if (ctx === null || e.init(ctx, e.cipher, null, key, this.#nonce, seal ? 1 : 0) !== 1) {
      throw new Error('EVP_CipherInit_ex(chacha20-poly1305) failed');
    }
  }

  seal(buf: Uint8Array, addr: number, off: number, len: number, counter: number): void {
    const e = this.#evp;
    const ctx = this.#ctx;
    setNonce(this.#nonce, counter);
    e.init(ctx, null, null, null, this.#nonce, -1);
    const p = (addr < 0 ? addressOf(buf) : addr) + off;
    if (len > 0) e.update(ctx, p, this.#outl, p, len);
    e.final(ctx, p + len, this.#outl);
    e.ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len);
  }

  open(src: Uint8Array, srcAddr: number, srcOff: number, len: number, dst: Uint8Array, dstAddr: number, dstOff: number, counter: number): boolean {
    const e = this.#evp;
    const ctx = this.#ctx;
    setNonce(this.#nonce, counter);
    e.init(ctx, null, null, null, this.#nonce, -1);
    const s = (srcAddr < 0 ? addressOf(src) : srcAddr) + srcOff;
    const d = (dstAddr < 0 ? addressOf(dst) : dstAddr) + dstOff;
    if (len > 0) e.update(ctx, d, this.#outl, s, len);
    e.ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, s + len);
    return e.final(ctx, d + len, this.#outl) === 1;
  }

  destroy(): void {
    if (this.#ctx !== null) this.#evp.ctxFree(this.#ctx);
    this.#ctx = null;
  }

  get sealing(): boolean {
    return this.#seal;
  }
}

const copy = Buffer.prototype.copy;

class NodeKey implements AeadKey {
  #key: Buffer;
  readonly #nonce = Buffer.alloc(12);

  constructor(key: Uint8Array) {
    this.#key = Buffer.from(key);
  }

  seal(buf: Uint8Array, _addr: number, off: number, len: number, counter: number): void {
    setNonce(this.#nonce, counter);
    const c = createCipheriv('chacha20-poly1305', this.#key, this.#nonce, { authTagLength: TAG_LEN });
    const out = c.update(buf.subarray(off, off + len));
    c.final();
    copy.call(out, buf, off, 0, out.length);
    copy.call(c.getAuthTag(), buf, off + len, 0, TAG_LEN);
  }

  open(src: Uint8Array, _sa: number, srcOff: number, len: number, dst: Uint8Array, _da: number, dstOff: number, counter: number): boolean {
    setNonce(this.#nonce, counter);
    try {
      const d = createDecipheriv('chacha20-poly1305', this.#key, this.#nonce, { authTagLength: TAG_LEN });
      d.setAuthTag(src.subarray(srcOff + len, srcOff + len + TAG_LEN));
      const out = d.update(src.subarray(srcOff, srcOff + len));
      d.final();
      copy.call(out, dst, dstOff, 0, out.length);
      return true;
    } catch {
      return false;
    }
  }

  destroy(): void {
    this.#key.fill(0);
  }
}

/** A key for one direction: `seal` for sending, otherwise opening. The caller may zero `key` afterwards. */
export function createAeadKey(key: Uint8Array, seal: boolean): AeadKey {
  if (key.length !== 32) throw new RangeError('a ChaCha20-Poly1305 key is 32 bytes');
  const e = evp();
  return e === undefined ? new NodeKey(key) : new EvpKey(e, key, seal);
}
