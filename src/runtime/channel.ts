// The control channel between init and a component host: a socket at
// CONTROL_FD in the host (messages.ts), carrying length-prefixed frames, each
// one JSON message: a 4-byte big-endian payload length, then that many bytes
// of UTF-8 JSON. A frame longer than the reader's cap, or of length 0, ends
// the stream (the reader reports why and takes nothing more); a frame being
// received is held only up to its announced length, so a reader never buffers
// more than its cap plus one read. What the JSON means is the caller's to
// check (init: src/init/host-messages.ts).

/** Bytes of the length prefix. */
export const FRAME_HEADER = 4;
/**
 * Largest host -> init frame init accepts: the largest honest message is a
 * trace reply with full session captures (64 MiB of packets per capture,
 * base64). Anything announced above it is a violation, refused before a byte
 * of it is buffered.
 */
export const MAX_HOST_FRAME = 128 * 1024 * 1024;
/** Largest init -> host frame a host accepts (the bootstrap carries every component's config, e.g. IDS rules). */
export const MAX_INIT_FRAME = 256 * 1024 * 1024;

/** One message as a frame. */
export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, FRAME_HEADER);
  return out;
}

/** Why a stream of frames is invalid. */
export interface FrameError {
  code: 'frame-empty' | 'frame-oversize' | 'stopped';
  message: string;
}

/**
 * Splits a byte stream into frames. push() hands every complete payload to
 * onFrame in order and returns a FrameError (and from then on ignores input)
 * when the stream breaks the framing.
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #onFrame: (payload: Buffer) => void;
  readonly #header = Buffer.alloc(FRAME_HEADER);
  #headerHave = 0;
  /** Length of the frame being received (-1: reading a header). */
  #want = -1;
  #parts: Buffer[] = [];
  #have = 0;
  #failed: FrameError | undefined;

  constructor(max: number, onFrame: (payload: Buffer) => void) {
    this.#max = max;
    this.#onFrame = onFrame;
  }

  /** Bytes held for an incomplete frame (at most the cap). */
  get buffered(): number {
    return this.#headerHave + this.#have;
  }

  get failed(): FrameError | undefined {
    return this.#failed;
  }

  /** Take bytes; a FrameError when they break the framing (input after that, or after stop(), is ignored: undefined). */
  push(chunk: Buffer): FrameError | undefined {
    if (this.#failed !== undefined) return undefined;
    let at = 0;
    while (at < chunk.length) {
      if (this.#want < 0) {
        const n = Math.min(FRAME_HEADER - this.#headerHave, chunk.length - at);
        chunk.copy(this.#header, this.#headerHave, at, at + n);
        this.#headerHave += n;
        at += n;
        if (this.#headerHave < FRAME_HEADER) break;
        const len = this.#header.readUInt32BE(0);
        this.#headerHave = 0;
        if (len === 0) return this.#fail({ code: 'frame-empty', message: 'a frame of length 0' });
        if (len > this.#max) {
          return this.#fail({ code: 'frame-oversize', message: `a frame of ${len} bytes announced, more than the ${this.#max} allowed` });
        }
        this.#want = len;
        continue;
      }
      const n = Math.min(this.#want - this.#have, chunk.length - at);
      this.#parts.push(chunk.subarray(at, at + n));
      this.#have += n;
      at += n;
      if (this.#have === this.#want) {
        const payload = this.#parts.length === 1 ? this.#parts[0] : Buffer.concat(this.#parts, this.#have);
        this.#parts = [];
        this.#have = 0;
        this.#want = -1;
        this.#onFrame(payload);
        // onFrame may have ended the stream (a bad message, stop()): take nothing more.
        if (this.#failed !== undefined) return undefined;
      }
    }
    return undefined;
  }

  /** Take nothing more (the caller rejected a message). */
  stop(): void {
    this.#fail({ code: 'stopped', message: 'the reader stopped' });
  }

  #fail(e: FrameError): FrameError {
    this.#failed ??= e;
    this.#parts = [];
    this.#have = 0;
    return e;
  }
}
