// Overlapping IP fragments and TCP segments resolved by a target-based
// policy (issue 18). The fragment vectors are Sturges and Novak's, the ones
// Suricata's own defrag unit tests check for each policy: 9 fragments, then 8
// that overlap them, the last completing a 192-byte datagram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Defrag, DEFRAG_DEFAULTS } from '../../src/components/monitor/defrag.ts';
import { decode } from '../../src/components/monitor/decode.ts';
import { insertPiece, type OverlapPolicy, type Piece } from '../../src/components/monitor/overlap.ts';
import { LINKTYPE_IPV4, Packet } from '../../src/components/monitor/packet.ts';
import { Reassembler, Stream, STREAM_DEFAULTS } from '../../src/components/monitor/stream.ts';
import { parseMonitorConfig } from '../../src/components/monitor/config.ts';

/** [letter, offset, length]: the originals, then the overlapping ones; Q (the last) ends the datagram. */
const FRAGS: [string, number, number][] = [
  ['A', 0, 24], ['B', 32, 16], ['C', 48, 24], ['D', 80, 8], ['E', 104, 16], ['F', 120, 24], ['G', 144, 16], ['H', 160, 16], ['I', 176, 8],
  ['J', 8, 32], ['K', 48, 24], ['L', 72, 24], ['M', 96, 24], ['N', 128, 8], ['O', 152, 8], ['P', 160, 8], ['Q', 176, 16],
];

/** The rebuilt payload per policy, 8 bytes a letter. */
const EXPECTED: Record<OverlapPolicy, string> = {
  bsd: 'AAAJJBCCCLLLMMMFFFGGHHIQ',
  linux: 'AAAJJBKKKLLLMMMFFFGGPHQQ',
  windows: 'AAAJBBCCCLLLMEEFFFGGHHIQ',
  first: 'AAAJBBCCCLDLMEEFFFGGHHIQ',
  last: 'AJJJJBKKKLLLMMMFNFGOPHQQ',
};

const expand = (s: string): string => [...s].map((c) => c.repeat(8)).join('');

test('insertPiece: the Sturges-Novak fragments give each policy\'s expected datagram', () => {
  for (const [policy, want] of Object.entries(EXPECTED) as [OverlapPolicy, string][]) {
    let pieces: Piece[] = [];
    let overlaps = 0;
    for (const [ch, off, len] of FRAGS) {
      const r = insertPiece(pieces, policy, off, off + len, new Uint8Array(len).fill(ch.charCodeAt(0)));
      pieces = r.pieces;
      if (r.overlapped) overlaps++;
    }
    assert.equal(overlaps, 8, policy);
    const out = new Uint8Array(192);
    let at = 0;
    for (const p of pieces) {
      assert.equal(p.s, at, `${policy}: contiguous, sorted, no overlap`);
      out.set(p.data, p.s);
      at = p.e;
    }
    assert.equal(Buffer.from(out).toString('latin1'), expand(want), policy);
  }
});

function ipv4Frag(id: number, off: number, mf: boolean, data: Uint8Array): Uint8Array {
  const total = 20 + data.length;
  const fo = ((mf ? 1 : 0) << 13) | (off >> 3);
  const h = [0x45, 0, total >> 8, total & 255, id >> 8, id & 255, fo >> 8, fo & 255, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (h[i] << 8) | h[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  h[10] = (~s >> 8) & 255;
  h[11] = ~s & 255;
  return Uint8Array.from([...h, ...data]);
}

test('the monitor\'s defragmenter rebuilds the Sturges-Novak datagram by its configured policy (bsd by default), with overlap events', () => {
  for (const policy of [undefined, 'linux', 'first', 'last', 'windows'] as (OverlapPolicy | undefined)[]) {
    const d = new Defrag(policy === undefined ? DEFRAG_DEFAULTS : { ...DEFRAG_DEFAULTS, policy });
    let out: Uint8Array | null = null;
    FRAGS.forEach(([ch, off, len], i) => {
      const p = new Packet();
      const f = ipv4Frag(7, off, i !== FRAGS.length - 1, new Uint8Array(len).fill(ch.charCodeAt(0)));
      p.reset(f, 0, f.length);
      decode(p, LINKTYPE_IPV4);
      assert.ok(p.isFragment);
      const r = d.add(p, 1000);
      if (r !== null) out = r;
    });
    assert.ok(out !== null, String(policy));
    assert.equal(Buffer.from((out as Uint8Array).subarray(20)).toString('latin1'), expand(EXPECTED[policy ?? 'bsd']), String(policy));
    assert.equal(d.counters.overlaps, 1);
    assert.equal(d.bytes, 0);
  }
});

test('stream: overlapping held segments with different data resolved by the policy; delivered bytes never change', () => {
  const run = (policy: OverlapPolicy): string => {
    const r = new Reassembler({ ...STREAM_DEFAULTS, policy });
    const s = new Stream();
    r.syn(s, 999); // data starts at 1000
    const seg = (seq: number, text: string): number => r.segment(s, seq, Buffer.from(text, 'latin1'), 0, text.length);
    let got = '';
    const take = (n: number): void => { if (n > 0) got += Buffer.from(r.window.subarray(r.windowOld, r.windowLen)).toString('latin1'); };
    take(seg(1000, 'aaaa'));
    take(seg(1008, 'XXXXXXXX')); // held: 1008-1015
    take(seg(1006, 'yyyy')); // held, starts before X and overlaps it: 1006-1009
    take(seg(1004, 'bb')); // fills to 1006: the held pieces follow
    assert.equal(s.pendingBytes, 0);
    return got;
  };
  // bsd/linux: the segment that starts lower (y at 1006) wins 1008-1009; first/windows: the earlier (X) wins.
  assert.equal(run('bsd'), 'aaaabbyyyyXXXXXX');
  assert.equal(run('linux'), 'aaaabbyyyyXXXXXX');
  assert.equal(run('first'), 'aaaabbyyXXXXXXXX');
  assert.equal(run('windows'), 'aaaabbyyXXXXXXXX');
  assert.equal(run('last'), 'aaaabbyyyyXXXXXX');
});

test('stream: an in-order segment overlapping a held one: the held (earlier) data wins under first, the new under bsd', () => {
  const run = (policy: OverlapPolicy): string => {
    const r = new Reassembler({ ...STREAM_DEFAULTS, policy });
    const s = new Stream();
    r.syn(s, 99);
    let got = '';
    const seg = (seq: number, text: string): void => {
      if (r.segment(s, seq, Buffer.from(text, 'latin1'), 0, text.length) > 0) got += Buffer.from(r.window.subarray(r.windowOld, r.windowLen)).toString('latin1');
    };
    seg(104, 'HHHH'); // held: 104-107
    seg(100, 'nnnnnnnn'); // in order, 100-107, overlaps the held 104-107
    assert.equal(r.counters.overlaps, 1);
    assert.equal(s.pendingBytes, 0, 'nothing left held');
    return got;
  };
  assert.equal(run('bsd'), 'nnnnnnnn');
  assert.equal(run('first'), 'nnnnHHHH');
});

test('config: defrag.policy and stream.policy, bsd by default, anything else named in the error', () => {
  const src = { file: 'g.yaml', path: 'c' };
  const c = parseMonitorConfig({ defrag: { policy: 'linux' } }, src);
  assert.equal(c.defrag.policy, 'linux');
  assert.equal(c.stream.policy, 'bsd');
  assert.throws(() => parseMonitorConfig({ stream: { policy: 'hpux' } }, src), /c\.stream\.policy: expected one of bsd, linux, first, last, windows/);
});
