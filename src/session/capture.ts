// Packet capture of one session end (like Genode's nic_dump): every packet the
// end submits (out) or receives (in) is copied, up to `snaplen` bytes of its
// Ethernet frame (the virtio_net_hdr is left out), into a fixed ring of slots.
// The oldest packets are overwritten and the loss is counted. Memory is
// allocated when the capture starts; recording allocates nothing.
import { Buffer } from 'node:buffer';
import { VNET_HDR_LEN } from '../net/vnet.ts';
import { monotonicOffsetNs } from '../trace/clock.ts';
import type { CapturedPacket, CaptureSnapshot } from '../trace/protocol.ts';

export type { CapturedPacket, CaptureSnapshot };

export const DIR_IN = 1;
export const DIR_OUT = 2;
export const DEFAULT_SNAPLEN = 2048;
export const DEFAULT_CAPTURE_PACKETS = 2048;
export const MAX_CAPTURE_BYTES = 64 * 1024 * 1024;

const copyBytes = Buffer.prototype.copy;

export class PacketCapture {
  readonly component: string;
  readonly session: string;
  readonly snaplen: number;
  readonly slots: number;
  readonly #offsetNs = monotonicOffsetNs();
  #data: Uint8Array;
  #t: Float64Array;
  #len: Int32Array;
  #orig: Int32Array;
  #dir: Uint8Array;
  #pos = 0;
  #total = 0;

  constructor(component: string, session: string, snaplen = DEFAULT_SNAPLEN, slots = DEFAULT_CAPTURE_PACKETS) {
    if (!Number.isInteger(snaplen) || snaplen < 64 || snaplen > 65536) throw new RangeError(`snaplen must be an integer in 64..65536, got ${snaplen}`);
    if (!Number.isInteger(slots) || slots < 1 || slots * snaplen > MAX_CAPTURE_BYTES) {
      throw new RangeError(`capture packets must be a positive integer with packets x snaplen <= ${MAX_CAPTURE_BYTES} bytes, got ${slots} x ${snaplen}`);
    }
    this.component = component;
    this.session = session;
    this.snaplen = snaplen;
    this.slots = slots;
    this.#data = new Uint8Array(slots * snaplen);
    this.#t = new Float64Array(slots);
    this.#len = new Int32Array(slots);
    this.#orig = new Int32Array(slots);
    this.#dir = new Uint8Array(slots);
  }

  /** Record the session packet buf[off, off+len) (virtio_net_hdr + frame), direction DIR_IN or DIR_OUT. */
  record(buf: Uint8Array, off: number, len: number, dir: number): void {
    const flen = len - VNET_HDR_LEN;
    if (flen <= 0) return;
    const cl = flen < this.snaplen ? flen : this.snaplen;
    const p = this.#pos;
    const from = off + VNET_HDR_LEN;
    copyBytes.call(buf, this.#data, p * this.snaplen, from, from + cl);
    this.#t[p] = performance.now();
    this.#len[p] = cl;
    this.#orig[p] = flen;
    this.#dir[p] = dir;
    this.#pos = p + 1 === this.slots ? 0 : p + 1;
    this.#total++;
  }

  get total(): number {
    return this.#total;
  }

  snapshot(): CaptureSnapshot {
    const have = Math.min(this.#total, this.slots);
    const packets: CapturedPacket[] = [];
    let p = (this.#pos - have + this.slots) % this.slots;
    for (let k = 0; k < have; k++) {
      const start = p * this.snaplen;
      packets.push({
        tNs: Math.round(this.#offsetNs + this.#t[p] * 1e6),
        dir: this.#dir[p] === DIR_IN ? 'in' : 'out',
        origLen: this.#orig[p],
        data: Buffer.from(this.#data.buffer, this.#data.byteOffset + start, this.#len[p]).toString('base64'),
      });
      if (++p === this.slots) p = 0;
    }
    const unix = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
    return {
      component: this.component,
      session: this.session,
      snaplen: this.snaplen,
      total: this.#total,
      lost: Math.max(0, this.#total - this.slots),
      unixOffsetNs: unix.toString(),
      packets,
    };
  }
}
