// A peer's state (whitepaper section 6): its keypairs (current, previous and
// the responder's unconfirmed next), the handshake in progress, the replay
// data of its initiations, the timers as deadlines (0 = not armed), the
// packets staged while no session exists, and transfer statistics.
import type { PeerConfig } from './config.ts';
import type { AeadKey } from './aead.ts';
import { CookieGenerator } from './cookie.ts';
import type { HandshakeState } from './noise.ts';
import { ReplayFilter } from './replay.ts';

export class Keypair {
  readonly send: AeadKey;
  readonly recv: AeadKey;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly created: number;
  readonly initiator: boolean;
  readonly peer: Peer;
  readonly replay = new ReplayFilter();
  sendCounter = 0;

  constructor(peer: Peer, send: AeadKey, recv: AeadKey, localIndex: number, remoteIndex: number, initiator: boolean, created: number) {
    this.peer = peer;
    this.send = send;
    this.recv = recv;
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.initiator = initiator;
    this.created = created;
  }

  destroy(): void {
    this.send.destroy();
    this.recv.destroy();
  }
}

export class Peer {
  /** Position in the tunnel's peer list and in its allowed-ips table (a reload renumbers). */
  index: number;
  /** Replaced by a reload that keeps the peer (same public key): allowed-ips, endpoint, keepalive, psk. */
  cfg: PeerConfig;
  /** Set when a reload removed the peer: handshakes finishing afterwards are discarded. */
  removed = false;
  readonly cookies: CookieGenerator;
  /** Where to send: from the config, then wherever authenticated packets come from (roaming). -1: unknown. */
  endpointAddress: number;
  endpointPort: number;
  current: Keypair | undefined;
  previous: Keypair | undefined;
  /** Responder's keypair, used for sending only once the initiator's first packet confirms it. */
  next: Keypair | undefined;

  /** Our initiation in flight (we are the initiator) and its index. */
  handshake: HandshakeState | undefined;
  handshakeIndex = 0;
  /** An initiation is being built (waiting for the keystore). */
  initiating = false;
  /**
   * An initiation built while the uplink's gateway was not yet resolved (a
   * freshly started tunnel): sent as soon as ARP resolves it, not at the next
   * retransmission 5 s later. Replaced by a newer initiation.
   */
  heldInitiation: Uint8Array | undefined = undefined;
  lastInitiationSent = -Infinity;
  attemptStart = 0;
  attempts = 0;
  /** Responder's replay and flood protection (whitepaper 5.1). */
  lastTimestamp: Uint8Array = new Uint8Array(12);
  lastInitiationConsumed = -Infinity;
  sentLastMinuteHandshake = false;

  // Timers: deadlines in ms of the tunnel's clock, 0 when not armed.
  retransmitAt = 0;
  keepaliveAt = 0;
  needAnotherKeepalive = false;
  newHandshakeAt = 0;
  zeroKeysAt = 0;
  persistentAt = 0;

  /** Frames (vnet header + Ethernet + IPv4) waiting for a session. */
  readonly staged: Uint8Array[] = [];

  rxBytes = 0;
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshakeWallMs = 0;
  handshakes = 0;
  roams = 0;

  constructor(index: number, cfg: PeerConfig) {
    this.index = index;
    this.cfg = cfg;
    this.cookies = new CookieGenerator(cfg.publicKey);
    this.endpointAddress = cfg.endpointAddress;
    this.endpointPort = cfg.endpointPort;
  }
}
