// pcapng (draft-ietf-opsawg-pcapng) writer for session captures: one Section
// Header Block, one Interface Description Block per captured session end
// (link type Ethernet, nanosecond timestamps, named "component.port"), one
// Enhanced Packet Block per packet with its direction in epb_flags. Readable
// by Wireshark, tshark and tcpdump.
import { Buffer } from 'node:buffer';
import type { CaptureSnapshot } from './protocol.ts';

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 0x00000001;
const BT_EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const LINKTYPE_ETHERNET = 1;
const OPT_END = 0;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
/** epb_flags direction bits: 01 inbound, 10 outbound (as seen by the capturing end). */
const EPB_INBOUND = 1;
const EPB_OUTBOUND = 2;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

function options(list: Buffer[]): Buffer {
  if (list.length === 0) return Buffer.alloc(0);
  return Buffer.concat([...list, Buffer.alloc(4)]); // opt_endofopt
}

function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

function shb(): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  h.writeUInt16LE(1, 4);
  h.writeUInt16LE(0, 6);
  h.writeBigInt64LE(-1n, 8); // section length not specified
  return block(BT_SHB, Buffer.concat([h, options([option(SHB_USERAPPL, Buffer.from('microgate'))])]));
}

function idb(name: string, description: string, snaplen: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  h.writeUInt32LE(snaplen, 4);
  const opts = options([
    option(IF_NAME, Buffer.from(name)),
    option(IF_DESCRIPTION, Buffer.from(description)),
    option(IF_TSRESOL, Buffer.from([9])), // 10^-9 s
  ]);
  return block(BT_IDB, Buffer.concat([h, opts]));
}

function epb(ifIndex: number, unixNs: bigint, data: Buffer, origLen: number, dir: 'in' | 'out'): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32LE(ifIndex, 0);
  h.writeUInt32LE(Number(unixNs >> 32n), 4);
  h.writeUInt32LE(Number(unixNs & 0xffffffffn), 8);
  h.writeUInt32LE(data.length, 12);
  h.writeUInt32LE(origLen, 16);
  const padded = Buffer.alloc(pad4(data.length));
  data.copy(padded);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(dir === 'in' ? EPB_INBOUND : EPB_OUTBOUND, 0);
  return block(BT_EPB, Buffer.concat([h, padded, options([option(EPB_FLAGS, flags)])]));
}

/** One pcapng file of every capture (one interface each), packets of all interfaces in time order. */
export function toPcapng(captures: readonly CaptureSnapshot[]): Buffer {
  const parts: Buffer[] = [shb()];
  const all: { i: number; unixNs: bigint; tNs: number; data: Buffer; origLen: number; dir: 'in' | 'out' }[] = [];
  captures.forEach((c, i) => {
    const desc = `microgate session ${c.component}.${c.session}: in = received by ${c.component}, out = sent by it${c.lost > 0 ? `; ${c.lost} older packets overwritten` : ''}`;
    parts.push(idb(`${c.component}.${c.session}`, desc, c.snaplen));
    const off = BigInt(c.unixOffsetNs);
    for (const p of c.packets) {
      all.push({ i, unixNs: BigInt(p.tNs) + off, tNs: p.tNs, data: Buffer.from(p.data, 'base64'), origLen: p.origLen, dir: p.dir });
    }
  });
  all.sort((a, b) => (a.unixNs < b.unixNs ? -1 : a.unixNs > b.unixNs ? 1 : 0));
  for (const p of all) parts.push(epb(p.i, p.unixNs, p.data, p.origLen, p.dir));
  return Buffer.concat(parts);
}

export interface PcapngPacket {
  ifIndex: number;
  unixNs: bigint;
  origLen: number;
  data: Buffer;
  flags: number;
}

/** A minimal reader for the files toPcapng writes (tests; tshark is the real check). */
export function readPcapng(buf: Buffer): { interfaces: { linktype: number; snaplen: number; name: string }[]; packets: PcapngPacket[] } {
  const interfaces: { linktype: number; snaplen: number; name: string }[] = [];
  const packets: PcapngPacket[] = [];
  let o = 0;
  while (o + 12 <= buf.length) {
    const type = buf.readUInt32LE(o);
    const len = buf.readUInt32LE(o + 4);
    if (len < 12 || o + len > buf.length || buf.readUInt32LE(o + len - 4) !== len) throw new Error(`pcapng: bad block length ${len} at ${o}`);
    const body = buf.subarray(o + 8, o + len - 4);
    const opts = (from: number): Map<number, Buffer> => {
      const m = new Map<number, Buffer>();
      let p = from;
      while (p + 4 <= body.length) {
        const code = body.readUInt16LE(p);
        const l = body.readUInt16LE(p + 2);
        if (code === OPT_END) break;
        m.set(code, body.subarray(p + 4, p + 4 + l));
        p += 4 + pad4(l);
      }
      return m;
    };
    if (type === BT_SHB) {
      if (body.readUInt32LE(0) !== BYTE_ORDER_MAGIC) throw new Error('pcapng: not little-endian or not pcapng');
    } else if (type === BT_IDB) {
      interfaces.push({ linktype: body.readUInt16LE(0), snaplen: body.readUInt32LE(4), name: opts(8).get(IF_NAME)?.toString() ?? '' });
    } else if (type === BT_EPB) {
      const cap = body.readUInt32LE(12);
      const data = Buffer.from(body.subarray(20, 20 + cap));
      const flags = opts(20 + pad4(cap)).get(EPB_FLAGS);
      packets.push({
        ifIndex: body.readUInt32LE(0),
        unixNs: (BigInt(body.readUInt32LE(4)) << 32n) | BigInt(body.readUInt32LE(8)),
        origLen: body.readUInt32LE(16),
        data,
        flags: flags === undefined ? 0 : flags.readUInt32LE(0),
      });
    }
    o += len;
  }
  return { interfaces, packets };
}
