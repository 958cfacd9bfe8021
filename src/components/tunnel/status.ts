// The `tunnel status` view (like `wg show`): our key and addresses, and per
// peer its endpoint, allowed IPs, latest handshake, transfer and keypairs.
// Read off the hot path, on request; it names no secret.
import { formatIpv4 } from '../../net/addr.ts';
import { formatIpv6 } from '../../net/addr6.ts';
import { encodeKey } from '../keystore/keys.ts';
import { aeadBackend } from './aead.ts';
import type { LinkHost } from './link.ts';
import type { Keypair } from './peer.ts';
import type { TunnelState } from './state.ts';

export function tunnelStatus(s: TunnelState): Record<string, unknown> {
  const now = s.clock();
  const link = (l: LinkHost) => ({
    address: `${formatIpv4(l.cfg.address)}/${l.cfg.prefix}`,
    gateway: formatIpv4(l.cfg.gateway),
    gatewayResolved: l.resolved,
    ...(l.cfg.ipv6 === null ? {} : {
      address6: `${formatIpv6(l.cfg.ipv6.address)}/${l.cfg.ipv6.prefix}`,
      gateway6: formatIpv6(l.cfg.ipv6.gateway),
      gateway6Resolved: l.resolved6,
    }),
  });
  const keypairInfo = (kp: Keypair | undefined) => kp === undefined ? null : {
    localIndex: kp.localIndex, remoteIndex: kp.remoteIndex, initiator: kp.initiator, ageS: Math.round((now - kp.created) / 100) / 10,
    sent: kp.sendCounter,
  };
  return {
    publicKey: s.publicKey === undefined ? null : encodeKey(s.publicKey),
    listenPort: s.cfg.listenPort,
    mtu: s.cfg.mtu,
    ready: s.ready,
    aead: aeadBackend(),
    plain: link(s.plain),
    uplink: link(s.uplink),
    peers: s.peers.map((p) => ({
      publicKey: p.cfg.publicKeyText,
      presharedKey: p.cfg.presharedKey !== undefined,
      endpoint: p.endpointAddress < 0 ? null : `${formatIpv4(p.endpointAddress)}:${p.endpointPort}`,
      allowedIps: p.cfg.allowedIps.map((a) => a.text),
      latestHandshake: p.lastHandshakeWallMs === 0 ? null : Math.floor(p.lastHandshakeWallMs / 1000),
      transferRx: p.rxBytes,
      transferTx: p.txBytes,
      persistentKeepalive: p.cfg.persistentKeepalive,
      handshakes: p.handshakes,
      roams: p.roams,
      staged: p.staged.length,
      keypairs: { current: keypairInfo(p.current), previous: keypairInfo(p.previous), next: keypairInfo(p.next) },
    })),
  };
}
