// Live reload of the tunnel's peers, like `wg syncconf`: the new peer list
// is compared with the running one by public key. A peer whose key stays
// keeps its object, so its sessions (keypairs, replay windows, counters),
// its handshake in progress, its timers, staged packets and transfer counts
// survive: no new handshake. Its allowed-ips, persistent keepalive and
// preshared key (used from the next handshake on) take effect at once; its
// endpoint changes only when the configured endpoint changed (a roamed
// endpoint otherwise stays, as wireguard-go keeps it). A peer that is gone
// loses its keys (zeroed), its receiver indices and what it had staged; a
// new peer starts without a session. The cryptokey routing table is built
// anew off to the side and swapped in whole, so no packet ever sees half of
// it. Nothing but `peers` may change at run time (the links, port, MTU and
// timers hold live state): fixedChange() says why.
import type { PeerConfig, TunnelConfig } from './config.ts';
import { clearState } from './noise.ts';
import { AllowedIps } from './allowed-ips.ts';
import { Peer } from './peer.ts';
import { addAllowedIps, type TunnelState } from './state.ts';

export interface PeerDiff {
  /** Public keys (base64) of new peers, in config order. */
  readonly added: string[];
  /** Public keys of peers that are gone. */
  readonly removed: string[];
  /** Peers kept (same key) whose settings changed, and which settings. */
  readonly changed: { publicKey: string; what: string[] }[];
  /** Peers kept exactly as they were. */
  readonly unchanged: number;
}

const prefixes = (p: PeerConfig): string => p.allowedIps.map((a) => a.text).sort().join(',');
const psk = (p: PeerConfig): string => (p.presharedKey === undefined ? '' : Buffer.from(p.presharedKey).toString('hex'));

/** What a reload from `cur` to `next` does to the peers (pure: touches nothing). */
export function diffPeers(cur: readonly PeerConfig[], next: readonly PeerConfig[]): PeerDiff {
  const old = new Map(cur.map((p) => [p.publicKeyText, p]));
  const added: string[] = [];
  const changed: { publicKey: string; what: string[] }[] = [];
  let unchanged = 0;
  for (const n of next) {
    const o = old.get(n.publicKeyText);
    if (o === undefined) {
      added.push(n.publicKeyText);
      continue;
    }
    old.delete(n.publicKeyText);
    const what: string[] = [];
    if (prefixes(o) !== prefixes(n)) what.push('allowed-ips');
    if (o.endpointAddress !== n.endpointAddress || o.endpointPort !== n.endpointPort) what.push('endpoint');
    if (o.persistentKeepalive !== n.persistentKeepalive) what.push('persistent-keepalive');
    if (psk(o) !== psk(n)) what.push('preshared-key');
    if (what.length > 0) changed.push({ publicKey: n.publicKeyText, what });
    else unchanged++;
  }
  return { added, removed: [...old.keys()], changed, unchanged };
}

/** Why `next` cannot replace `cur` at run time (undefined: only peers differ, it can). */
export function fixedChange(cur: TunnelConfig, next: TunnelConfig): string | undefined {
  const link = (l: TunnelConfig['plain']): string => JSON.stringify([l.address, l.prefix, l.gateway, [...l.mac],
    l.ipv6 === null ? null : [[...l.ipv6.address], l.ipv6.prefix, [...l.ipv6.gateway]]]);
  const checks: [string, unknown, unknown][] = [
    ['listen-port', cur.listenPort, next.listenPort],
    ['mtu', cur.mtu, next.mtu],
    ['plain', link(cur.plain), link(next.plain)],
    ['uplink', link(cur.uplink), link(next.uplink)],
    ['timers', JSON.stringify(cur.timers), JSON.stringify(next.timers)],
    ['cookies', cur.underLoadPerS, next.underLoadPerS],
    ['mss-clamp', cur.mssClamp, next.mssClamp],
    ['staged-packets', cur.stagedPackets, next.stagedPackets],
  ];
  for (const [key, a, b] of checks) {
    if (a !== b) return `the tunnel's ${key} cannot change at run time (only its peers can); restart the gateway`;
  }
  return undefined;
}

/** Forget a removed peer: keys zeroed, receiver indices and handshake gone, staged packets dropped. */
function forgetPeer(s: TunnelState, p: Peer): void {
  p.removed = true;
  for (const kp of [p.current, p.previous, p.next]) if (kp !== undefined) s.destroyKeypair(kp);
  p.current = p.previous = p.next = undefined;
  if (p.handshake !== undefined) clearState(p.handshake);
  p.handshake = undefined;
  p.heldInitiation = undefined;
  for (const [i, e] of s.indices) if (e.peer === p) s.indices.delete(i);
  p.staged.length = 0;
  p.retransmitAt = p.keepaliveAt = p.newHandshakeAt = p.zeroKeysAt = p.persistentAt = 0;
}

/**
 * Put `next` (fixedChange() said yes) in force: kept peers updated in place,
 * removed ones forgotten, new ones created, the routing table swapped.
 * Returns the diff and the new Peer objects (the caller starts their
 * persistent keepalives).
 */
export function syncPeers(s: TunnelState, next: TunnelConfig): { diff: PeerDiff; added: Peer[] } {
  const diff = diffPeers(s.cfg.peers, next.peers);
  const old = new Map(s.peers.map((p) => [p.cfg.publicKeyText, p]));
  const peers: Peer[] = [];
  const added: Peer[] = [];
  next.peers.forEach((pc, i) => {
    const p = old.get(pc.publicKeyText);
    if (p === undefined) {
      const n = new Peer(i, pc);
      peers.push(n);
      added.push(n);
      return;
    }
    old.delete(pc.publicKeyText);
    const endpointChanged = pc.endpointAddress !== p.cfg.endpointAddress || pc.endpointPort !== p.cfg.endpointPort;
    p.index = i;
    p.cfg = pc;
    if (endpointChanged && pc.endpointAddress >= 0) {
      p.endpointAddress = pc.endpointAddress;
      p.endpointPort = pc.endpointPort;
    }
    if (pc.persistentKeepalive === 0) p.persistentAt = 0;
    peers.push(p);
  });
  for (const p of old.values()) forgetPeer(s, p);
  const table = new AllowedIps();
  for (const p of peers) addAllowedIps(table, p.cfg.allowedIps, p.index);
  s.peers.length = 0;
  s.peers.push(...peers);
  s.byKey.clear();
  for (const p of peers) s.byKey.set(p.cfg.publicKeyText, p);
  s.allowed = table;
  s.cfg = next;
  return { diff, added };
}
