// Reading capture files: classic pcap (both byte orders, micro- and
// nanosecond timestamps) and pcapng (section header, interface description,
// enhanced and simple packet blocks; each interface keeps its link type and
// timestamp resolution). A truncated or malformed file yields the packets
// before the damage and a clear error, never a crash.
export interface CapturedPacket {
  data: Uint8Array;
  linktype: number;
  tsSec: number;
  tsUsec: number;
}

export class PcapError extends Error {}

export function* readCapture(file: Uint8Array, name = 'capture'): Generator<CapturedPacket> {
  if (file.length < 4) throw new PcapError(`${name}: too short to be a capture file`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic === 0x0a0d0d0a) {
    yield* readPcapng(file, dv, name);
    return;
  }
  let little: boolean;
  let nano: boolean;
  switch (magic) {
    case 0xa1b2c3d4: little = true; nano = false; break;
    case 0xd4c3b2a1: little = false; nano = false; break;
    case 0xa1b23c4d: little = true; nano = true; break;
    case 0x4d3cb2a1: little = false; nano = true; break;
    default: throw new PcapError(`${name}: not a pcap or pcapng file (magic 0x${magic.toString(16)})`);
  }
  if (file.length < 24) throw new PcapError(`${name}: truncated pcap header`);
  const linktype = dv.getUint32(20, little) & 0x0fffffff;
  let at = 24;
  while (at < file.length) {
    if (at + 16 > file.length) throw new PcapError(`${name}: truncated record header at byte ${at}`);
    const sec = dv.getUint32(at, little);
    const frac = dv.getUint32(at + 4, little);
    const incl = dv.getUint32(at + 8, little);
    at += 16;
    if (incl > 0x4000000 || at + incl > file.length) throw new PcapError(`${name}: truncated packet at byte ${at - 16}`);
    yield { data: file.subarray(at, at + incl), linktype, tsSec: sec, tsUsec: nano ? Math.floor(frac / 1000) : frac };
    at += incl;
  }
}

function* readPcapng(file: Uint8Array, dv: DataView, name: string): Generator<CapturedPacket> {
  let little = true;
  const ifaces: { linktype: number; tsDiv: number }[] = [];
  let at = 0;
  while (at + 12 <= file.length) {
    let type = dv.getUint32(at, little);
    if (type === 0x0a0d0d0a) {
      const bom = dv.getUint32(at + 8, true);
      little = bom === 0x1a2b3c4d;
      if (!little && dv.getUint32(at + 8, false) !== 0x1a2b3c4d) throw new PcapError(`${name}: bad pcapng byte-order magic`);
      ifaces.length = 0;
      type = 0x0a0d0d0a;
    }
    const len = dv.getUint32(at + 4, little);
    if (len < 12 || at + len > file.length) throw new PcapError(`${name}: truncated pcapng block at byte ${at}`);
    const body = at + 8;
    if (type === 1) {
      // Interface description: linktype, options (if_tsresol = 9).
      const linktype = dv.getUint16(body, little);
      let tsDiv = 1; // units per microsecond... store as divisor to microseconds
      let resolUnitsPerSec = 1e6;
      let o = body + 8;
      while (o + 4 <= at + len - 4) {
        const code = dv.getUint16(o, little);
        const olen = dv.getUint16(o + 2, little);
        if (code === 0) break;
        if (code === 9 && olen >= 1) {
          const v = file[o + 4];
          resolUnitsPerSec = (v & 0x80) !== 0 ? 2 ** (v & 0x7f) : 10 ** v;
        }
        o += 4 + Math.ceil(olen / 4) * 4;
      }
      tsDiv = resolUnitsPerSec / 1e6;
      ifaces.push({ linktype, tsDiv });
    } else if (type === 6) {
      const ifid = dv.getUint32(body, little);
      const hi = dv.getUint32(body + 4, little);
      const lo = dv.getUint32(body + 8, little);
      const caplen = dv.getUint32(body + 12, little);
      const iface = ifaces[ifid];
      if (iface === undefined) throw new PcapError(`${name}: packet for undeclared interface ${ifid}`);
      if (body + 20 + caplen > at + len) throw new PcapError(`${name}: packet block overruns at byte ${at}`);
      const units = hi * 4294967296 + lo;
      const usec = Math.floor(units / iface.tsDiv);
      yield { data: file.subarray(body + 20, body + 20 + caplen), linktype: iface.linktype, tsSec: Math.floor(usec / 1e6), tsUsec: usec % 1e6 };
    } else if (type === 3) {
      const iface = ifaces[0];
      if (iface === undefined) throw new PcapError(`${name}: simple packet block without an interface`);
      const plen = dv.getUint32(body, little);
      const caplen = Math.min(plen, len - 16);
      yield { data: file.subarray(body + 4, body + 4 + caplen), linktype: iface.linktype, tsSec: 0, tsUsec: 0 };
    }
    at += len;
  }
}
