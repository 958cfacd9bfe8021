// The tunnel's logic, free of fds: WireGuard (whitepaper sections 5 and 6)
// between two Nic sessions, with the static key behind a TunnelStatic (the
// keystore).
//
//   plain  (router domain, e.g. "tun")      IPv4 packets to and from the remote sites
//   uplink (router domain, e.g. "wg")       UDP datagrams to and from the peers' endpoints
//
// On both the tunnel is a host with its own address and MAC (LinkHost).
// This class only wires the parts, which share one TunnelState (state.ts):
//
//   datapath.ts   per packet: encrypt and send, receive and decrypt, staging
//   handshake.ts  initiations, responses, cookie replies, keypair rotation
//   timers.ts     WireGuard's REKEY / REJECT / KEEPALIVE timers
//   status.ts     the `tunnel status` view
//   peer-sync.ts  live reload of the peers (like `wg syncconf`)
import type { Counters } from '../../runtime/counters.ts';
import type { PacketSource } from '../../session/types.ts';
import { encodeKey } from '../keystore/keys.ts';
import type { TunnelConfig } from './config.ts';
import { CookieChecker } from './cookie.ts';
import { DataPath } from './datapath.ts';
import { Handshakes } from './handshake.ts';
import type { LinkHost } from './link.ts';
import type { Peer } from './peer.ts';
import { fixedChange, syncPeers, type PeerDiff } from './peer-sync.ts';
import { TunnelState, type TunnelOptions, type TunnelStatic } from './state.ts';
import { tunnelStatus } from './status.ts';
import { Timers } from './timers.ts';

export { COUNTERS, DROP_REASONS, type DropReason, type TunnelStatic } from './state.ts';

export class Tunnel {
  readonly #state: TunnelState;
  readonly #dataPath: DataPath;
  readonly #timers: Timers;

  constructor(cfg: TunnelConfig, plain: PacketSource, uplink: PacketSource, keystore: TunnelStatic, counters: Counters, opts: TunnelOptions = {}) {
    const state = (this.#state = new TunnelState(cfg, plain, uplink, keystore, counters, opts));
    const timers = (this.#timers = new Timers(state));
    const dataPath = (this.#dataPath = new DataPath(state, timers));
    const handshakes = new Handshakes(state, dataPath, timers);
    dataPath.connect(handshakes);
    timers.connect(handshakes);
  }

  get cfg(): TunnelConfig {
    return this.#state.cfg;
  }

  get plain(): LinkHost {
    return this.#state.plain;
  }

  get uplink(): LinkHost {
    return this.#state.uplink;
  }

  get peers(): readonly Peer[] {
    return this.#state.peers;
  }

  get ready(): boolean {
    return this.#state.ready;
  }

  /** Learn our public key from the keystore (retried by the caller until it resolves true). */
  async init(): Promise<boolean> {
    const s = this.#state;
    const pk = await s.keystore.fetchPublicKey();
    if (pk === undefined) return false;
    if (s.byKey.has(encodeKey(pk))) {
      s.log('a peer has our own public key: it is ignored', { publicKey: encodeKey(pk) });
    }
    s.publicKey = pk;
    s.cookieChecker = new CookieChecker(pk, { clock: s.clock });
    s.now = s.clock();
    // Peers with a persistent keepalive announce themselves at once (a handshake).
    for (const p of s.peers) if (p.cfg.persistentKeepalive > 0) this.#dataPath.sendKeepalive(p);
    this.flush();
    return true;
  }

  /** Publish what the last batch produced on both links (and take the clock for the next). */
  flush(): void {
    this.#state.flush();
  }

  /** One frame from the router's plaintext domain. */
  plainIn(buf: Uint8Array, off: number, len: number): void {
    this.#dataPath.plainIn(buf, off, len);
  }

  /** One frame from the router's uplink domain; `addr` is the address of buf[0] (or -1). */
  uplinkIn(buf: Uint8Array, addr: number, off: number, len: number): void {
    this.#dataPath.uplinkIn(buf, addr, off, len);
  }

  /** Run due timers (whitepaper 6.2-6.5): retransmission, keepalives, rekeying, key zeroing; and ARP. The caller flushes. */
  tick(): void {
    const s = this.#state;
    const now = (s.now = s.clock());
    s.plain.tick(now);
    s.uplink.tick(now);
    if (!s.ready) return;
    this.#timers.tick(now);
  }

  /** A session was reset (its peer restarted). */
  sessionReset(name: string): void {
    if (name === 'plain') this.#state.plain.resolved = false;
    if (name === 'uplink') this.#state.uplink.resolved = false;
  }

  status(): Record<string, unknown> {
    return tunnelStatus(this.#state);
  }

  /** Why `next` cannot be put in force at run time (undefined: it can; only its peers differ). */
  checkReload(next: TunnelConfig): string | undefined {
    return fixedChange(this.#state.cfg, next);
  }

  /**
   * Put a new config in force whose peers may differ (peer-sync.ts): sessions
   * of peers whose key stays are kept. Returns the reason it was refused (and
   * nothing changed), or what changed.
   */
  reload(next: TunnelConfig): { error: string } | { diff: PeerDiff } {
    const why = fixedChange(this.#state.cfg, next);
    if (why !== undefined) return { error: why };
    const s = this.#state;
    s.now = s.clock();
    const { diff, added } = syncPeers(s, next);
    if (s.ready) {
      const keepalive = new Set(diff.changed.filter((c) => c.what.includes('persistent-keepalive')).map((c) => c.publicKey));
      for (const p of s.peers) {
        if (p.cfg.persistentKeepalive > 0 && (added.includes(p) || keepalive.has(p.cfg.publicKeyText))) this.#dataPath.sendKeepalive(p);
      }
      this.flush();
    }
    return { diff };
  }
}
