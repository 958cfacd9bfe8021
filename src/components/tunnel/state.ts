// What the tunnel's parts share: the config, the two links, the peers and
// their routing (allowed IPs, public keys, receiver indices), the counters
// and drop reasons, the clock, and where things sit in a frame. The data path
// (datapath.ts), the handshakes (handshake.ts), the timers (timers.ts) and
// the status view (status.ts) each hold this one TunnelState.
import { randomInt } from 'node:crypto';
import type { Counters } from '../../runtime/counters.ts';
import { ETH_HLEN } from '../../net/ethernet.ts';
import { IPV4_HLEN } from '../../net/ipv4.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';
import type { PacketSource } from '../../session/types.ts';
import { NO_TRACE, type Tracer } from '../../trace/tracer.ts';
import { encodeKey } from '../keystore/keys.ts';
import { AllowedIps } from './allowed-ips.ts';
import type { AllowedIp, TunnelConfig } from './config.ts';
import type { CookieChecker } from './cookie.ts';
import { LinkHost } from './link.ts';
import { PROTOCOL, TRANSPORT_HEADER_SIZE } from './messages.ts';
import type { StaticIdentity } from './noise.ts';
import { type Keypair, Peer } from './peer.ts';

// ---- frame layout ----------------------------------------------------------------

/** Bytes in front of the IPv4 header in a frame: virtio_net_hdr + Ethernet. */
export const IP_OFFSET = VNET_HDR_LEN + ETH_HLEN;
/** Where the WireGuard message starts in an uplink frame: after IPv4 (20) and UDP (8) headers. */
export const WG_OFFSET = IP_OFFSET + IPV4_HLEN + 8;
/** Where the plaintext of a transport message sits in an uplink slot (sealed there in place). */
export const PLAINTEXT_OFFSET = WG_OFFSET + TRANSPORT_HEADER_SIZE;
/** Poly1305 tag bytes after each transport message's ciphertext. */
export const TAG_LEN = 16;
export const TWO32 = 0x100000000;

/** Put a peer's allowed-ips (both families) into a cryptokey routing table. */
export function addAllowedIps(table: AllowedIps, ips: readonly AllowedIp[], peer: number): void {
  for (const a of ips) {
    if (a.network6 !== null) table.add6(a.network6, a.prefix, peer);
    else table.add(a.network, a.prefix, peer);
  }
}

// ---- counters --------------------------------------------------------------------

/** Every drop reason the tunnel counts (as "drop.<reason>"). */
export const DROP_REASONS = [
  // frames on either side
  'eth-truncated', 'eth-not-for-us', 'eth-unsupported-type', 'arp-bad', 'ip-bad',
  // plaintext side
  'no-peer', 'no-endpoint', 'gso-unsupported', 'too-big', 'bad-csum-offsets', 'staged-overflow', 'staged-given-up',
  'uplink-full', 'uplink-unresolved', 'not-ready', 'plain-changed', 'ip6-bad', 'ip6-link-scope', 'nd-bad',
  // uplink side
  'not-for-tunnel', 'udp-bad', 'wg-bad-header', 'wg-unknown-type', 'wg-bad-size', 'mac1-invalid', 'cookie-required',
  'unknown-receiver', 'counter-too-big', 'keypair-expired', 'decrypt-failed', 'replay', 'plain-full', 'plain-unresolved',
  'inner-bad', 'inner-source-not-allowed', 'inner-ipv6-off',
  // handshakes
  'handshake-keystore', 'handshake-bad-static', 'handshake-unknown-peer', 'handshake-bad-timestamp', 'handshake-replay',
  'handshake-flood', 'handshake-low-order', 'response-invalid', 'response-stale', 'cookie-invalid',
] as const;
export type DropReason = typeof DROP_REASONS[number];

export const COUNTERS = [
  'tx.packets', 'tx.bytes', 'rx.packets', 'rx.bytes', 'keepalive.sent', 'keepalive.received', 'gso.segments', 'mss.clamped',
  'handshake.initiation-sent', 'handshake.initiation-held', 'handshake.initiation-received', 'handshake.response-sent', 'handshake.response-received',
  'handshake.completed', 'handshake.gave-up', 'handshake.initiated-on-unknown', 'cookie.reply-sent', 'cookie.reply-received', 'roamed', 'icmp.frag-needed-sent', 'icmp6.too-big-sent', 'nd.handled', 'nd.ignored',
  'keypair.rotated', 'keypair.zeroed', 'staged', 'under-load',
] as const;
export type CounterName = typeof COUNTERS[number];

/** The keystore as the tunnel sees it: DH with the static key, and our public key. */
export interface TunnelStatic extends StaticIdentity {
  fetchPublicKey(): Promise<Uint8Array | undefined>;
}

/** A receiver index we handed out: its peer, and the keypair once the handshake made one. */
export interface IndexEntry {
  peer: Peer;
  keypair: Keypair | undefined;
}

export interface TunnelOptions {
  /** ms, monotonic (default performance.now). */
  clock?: () => number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  tracer?: Tracer;
}

export class TunnelState {
  /** The config in force (a reload replaces it when only the peers changed: peer-sync.ts). */
  cfg: TunnelConfig;
  readonly plain: LinkHost;
  readonly uplink: LinkHost;
  readonly peers: Peer[];
  readonly keystore: TunnelStatic;
  readonly counters: Counters;
  /** Counter ids of the drop reasons and of the other counters. */
  readonly drops: Record<DropReason, number>;
  readonly counts: Record<CounterName, number>;
  /** Outgoing packets pick their peer here (index into peers), incoming ones are checked against it. */
  allowed = new AllowedIps();
  /** Peers by public key (base64). */
  readonly byKey = new Map<string, Peer>();
  /** Receiver indices we handed out (handshakes in progress and keypairs). */
  readonly indices = new Map<number, IndexEntry>();
  readonly clock: () => number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  readonly tracer: Tracer;
  /** The clock at the start of the current batch or timer tick (ms). */
  now: number;
  /** Set once the keystore told us our public key: then the tunnel is ready. */
  cookieChecker: CookieChecker | undefined;
  publicKey: Uint8Array | undefined;

  constructor(cfg: TunnelConfig, plain: PacketSource, uplink: PacketSource, keystore: TunnelStatic, counters: Counters, opts: TunnelOptions) {
    this.cfg = cfg;
    this.tracer = opts.tracer ?? NO_TRACE;
    this.plain = new LinkHost(cfg.plain, plain);
    this.uplink = new LinkHost(cfg.uplink, uplink);
    this.keystore = keystore;
    this.counters = counters;
    this.clock = opts.clock ?? (() => performance.now());
    this.log = opts.log ?? (() => {});
    this.now = this.clock();
    this.peers = cfg.peers.map((p, i) => new Peer(i, p));
    for (const p of this.peers) {
      this.byKey.set(p.cfg.publicKeyText, p);
      addAllowedIps(this.allowed, p.cfg.allowedIps, p.index);
    }
    const drops = {} as Record<DropReason, number>;
    for (const r of DROP_REASONS) drops[r] = counters.dropReason(r);
    this.drops = drops;
    const counts = {} as Record<CounterName, number>;
    for (const k of COUNTERS) counts[k] = counters.define(k);
    this.counts = counts;
  }

  get ready(): boolean {
    return this.cookieChecker !== undefined;
  }

  /** Take the clock and publish what both links submitted (once per batch, after a handshake step, after timers). */
  flush(): void {
    this.now = this.clock();
    this.plain.flush();
    this.uplink.flush();
  }

  drop(reason: number): void {
    this.counters.add(reason);
  }

  /** drop(), for the early returns of functions that answer an offset: -1. */
  dropped(reason: number): -1 {
    this.counters.add(reason);
    return -1;
  }

  count(counter: number, n = 1): void {
    this.counters.add(counter, n);
  }

  /** Past REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES: the keypair may not send. */
  expired(kp: Keypair): boolean {
    return this.now - kp.created >= this.cfg.timers.rejectAfterTimeMs || kp.sendCounter >= PROTOCOL.rejectAfterMessages;
  }

  /** A fresh receiver index for `peer`, not in use. */
  newIndex(peer: Peer): number {
    for (;;) {
      const i = randomInt(1, TWO32);
      if (!this.indices.has(i)) {
        this.indices.set(i, { peer, keypair: undefined });
        return i;
      }
    }
  }

  /** Forget a keypair: its receiver index and its keys. */
  destroyKeypair(kp: Keypair): void {
    const entry = this.indices.get(kp.localIndex);
    if (entry !== undefined && entry.keypair === kp) this.indices.delete(kp.localIndex);
    kp.destroy();
  }

  /** The peer whose public key this is (undefined: none, or our own key). */
  peerByKey(pub: Uint8Array): Peer | undefined {
    return this.byKey.get(encodeKey(pub));
  }
}
