// The tunnel's config section: validated once, defaults stated here and in
// README.md. Every mistake is a ConfigFileError (src/config/reader.ts) naming the exact path.
import { got, type Path } from '../../config/reader.ts';
import { SectionReader } from '../../runtime/component.ts';
import {
  broadcastOf, formatIpv4, inPrefix, isLocalUnicastMacByte, networkOf, parseIpv4, parseIpv4Cidr, parseMacPrefix, prefixMask,
} from '../../net/addr.ts';
import {
  formatIpv6, inPrefix6, ipv6Equals, isLinkLocalIpv6, isMulticastIpv6, isUnspecifiedIpv6, linkLocalFromMac, maskIpv6, parseIpv6,
} from '../../net/addr6.ts';
import { deriveMac } from '../router/config.ts';
import { decodeKey, encodeKey } from '../keystore/keys.ts';
import { PROTOCOL } from './messages.ts';

export const DEFAULTS = {
  listenPort: 51820,
  mtu: 1420,
  macPrefix: '02',
  mssClamp: true,
  /** Handshake messages per second above which the tunnel is "under load" and asks for cookies. */
  underLoadPerS: 64,
  stagedPackets: 128,
} as const;

/** One side of the tunnel: it is a host with this address on a router domain. */
export interface LinkConfig {
  readonly name: 'plain' | 'uplink';
  readonly address: number;
  readonly prefix: number;
  readonly gateway: number;
  readonly mac: Uint8Array;
  /** IPv6 (plain side only, optional): the tunnel's address there, its prefix, and the router's address (next hop). */
  readonly ipv6: LinkConfig6 | null;
}

export interface LinkConfig6 {
  readonly address: Uint8Array;
  readonly prefix: number;
  readonly gateway: Uint8Array;
  /** fe80::/64 + the modified EUI-64 of the link's MAC (answered in ND too). */
  readonly linkLocal: Uint8Array;
}

/** One allowed-ips prefix: IPv4 (network, mask) or IPv6 (network6). */
export interface AllowedIp {
  readonly family: 4 | 6;
  /** IPv4 network as u32 (0 for IPv6). */
  readonly network: number;
  /** IPv6 network (16 bytes), null for IPv4. */
  readonly network6: Uint8Array | null;
  readonly prefix: number;
  /** IPv4 mask (0 for IPv6). */
  readonly mask: number;
  /** Canonical text, e.g. 198.18.64.0/24 or 2001:db8:64::/64. */
  readonly text: string;
}

export interface PeerConfig {
  readonly publicKey: Uint8Array;
  readonly publicKeyText: string;
  /** Endpoint address (u32) and port, or address -1 when unknown until the peer writes first. */
  readonly endpointAddress: number;
  readonly endpointPort: number;
  readonly allowedIps: readonly AllowedIp[];
  /** Seconds, 0 off. */
  readonly persistentKeepalive: number;
  readonly presharedKey: Uint8Array | undefined;
}

export interface TimerConfig {
  readonly rekeyAfterTimeMs: number;
  readonly rejectAfterTimeMs: number;
  readonly rekeyAttemptTimeMs: number;
  readonly rekeyTimeoutMs: number;
  readonly keepaliveTimeoutMs: number;
}

export interface TunnelConfig {
  readonly listenPort: number;
  readonly mtu: number;
  readonly plain: LinkConfig;
  readonly uplink: LinkConfig;
  readonly peers: readonly PeerConfig[];
  readonly timers: TimerConfig;
  readonly underLoadPerS: number;
  readonly mssClamp: boolean;
  readonly stagedPackets: number;
}

export interface ConfigSource {
  readonly file: string;
  readonly path: string;
}

/** Parse "A.B.C.D:PORT". */
export function parseEndpoint(text: string): { address: number; port: number } | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(text.trim());
  if (m === null) return undefined;
  const address = parseIpv4(m[1]);
  const port = Number(m[2]);
  if (address === undefined || port < 1 || port > 65535) return undefined;
  return { address, port };
}

/**
 * One allowed-ips entry: "198.18.64.0/24" or "2001:db8:64::/64" (a network
 * address: host bits clear). A string saying what was expected when it is not one.
 */
export function parseAllowedIp(a: unknown): AllowedIp | string {
  if (typeof a === 'string' && a.includes(':')) {
    const slash = a.indexOf('/');
    const addr = slash > 0 ? parseIpv6(a.slice(0, slash)) : undefined;
    const plen = slash > 0 && /^(0|[1-9]\d{0,2})$/.test(a.slice(slash + 1)) ? Number(a.slice(slash + 1)) : -1;
    if (addr === undefined || plen < 0 || plen > 128) return 'expected an IPv6 prefix like 2001:db8:64::/64 (length 0 to 128)';
    const network6 = maskIpv6(addr, plen);
    const text = `${formatIpv6(network6)}/${plen}`;
    if (!ipv6Equals(network6, 0, addr, 0)) return `expected a network address (${text})`;
    return { family: 6, network: 0, network6, prefix: plen, mask: 0, text };
  }
  const c = typeof a === 'string' && a.includes('/') ? parseIpv4Cidr(a) : undefined;
  if (c === undefined) return 'expected an IPv4 prefix like 198.18.64.0/24 or an IPv6 prefix like 2001:db8:64::/64';
  const network = networkOf(c.address, c.prefix);
  const text = `${formatIpv4(network)}/${c.prefix}`;
  if (network !== c.address) return `expected a network address (${text})`;
  return { family: 4, network, network6: null, prefix: c.prefix, mask: prefixMask(c.prefix), text };
}

export function parseTunnelConfig(raw: unknown, componentName: string, source: ConfigSource): TunnelConfig {
  const r: SectionReader = new SectionReader(source);
  const base = r.base;
  const at = (...keys: (string | number)[]): Path => [...base, ...keys];

  const root = r.obj(raw, base, ['listen-port', 'mtu', 'plain', 'uplink', 'peers', 'timers', 'cookies', 'mss-clamp', 'mac-prefix', 'staged-packets'],
    'a mapping with "plain", "uplink" and "peers"');

  let macPrefix = parseMacPrefix(DEFAULTS.macPrefix) as Uint8Array;
  if (root['mac-prefix'] !== undefined) {
    const p = typeof root['mac-prefix'] === 'string' ? parseMacPrefix(root['mac-prefix']) : undefined;
    if (p === undefined || !isLocalUnicastMacByte(p[0])) {
      r.fail(at('mac-prefix'), `expected 1 to 5 hex bytes like "02:6d", the first locally administered unicast${got(root['mac-prefix'])}`);
    }
    macPrefix = p as Uint8Array;
  }

  const link = (name: 'plain' | 'uplink'): LinkConfig => {
    const p = at(name);
    const l = r.obj(root[name], p, name === 'plain' ? ['address', 'gateway', 'address6', 'gateway6'] : ['address', 'gateway'],
      `a mapping like { address: 198.18.255.2/30, gateway: 198.18.255.1 }: the tunnel's address on the router's domain and the router's`);
    const cidr = typeof l.address === 'string' ? parseIpv4Cidr(l.address) : undefined;
    if (cidr === undefined || cidr.prefix < 1 || cidr.prefix > 30) r.fail(at(name, 'address'), `expected an IPv4 address with prefix like 198.18.255.2/30${got(l.address)}`);
    const c = cidr as { address: number; prefix: number };
    const net = networkOf(c.address, c.prefix);
    const bc = broadcastOf(c.address, c.prefix);
    if (c.address === net || c.address === bc) r.fail(at(name, 'address'), `expected a host address of its prefix${got(l.address)}`);
    const g = typeof l.gateway === 'string' ? parseIpv4(l.gateway) : undefined;
    if (g === undefined || !inPrefix(g, net, prefixMask(c.prefix)) || g === c.address || g === net || g === bc) {
      r.fail(at(name, 'gateway'), `expected the router's address inside ${formatIpv4(net)}/${c.prefix}, other than the tunnel's${got(l.gateway)}`);
    }
    const mac = deriveMac(macPrefix, componentName, name);
    return { name, address: c.address, prefix: c.prefix, gateway: g as number, mac, ipv6: link6(name, l, mac) };
  };
  const link6 = (name: 'plain' | 'uplink', l: Record<string, unknown>, mac: Uint8Array): LinkConfig6 | null => {
    if (l.address6 === undefined && l.gateway6 === undefined) return null;
    if (l.address6 === undefined) r.fail(at(name, 'address6'), 'expected "address6" with "gateway6" (the tunnel\'s IPv6 address on the domain, like 2001:db8:ff:1::2/64)');
    const text = l.address6;
    const slash = typeof text === 'string' ? text.indexOf('/') : -1;
    const addr = slash > 0 ? parseIpv6((text as string).slice(0, slash)) : undefined;
    const plen = slash > 0 && /^(0|[1-9]\d{0,2})$/.test((text as string).slice(slash + 1)) ? Number((text as string).slice(slash + 1)) : -1;
    if (addr === undefined || plen < 1 || plen > 127) {
      r.fail(at(name, 'address6'), `expected an IPv6 address with prefix like 2001:db8:ff:1::2/64 (prefix 1 to 127)${got(text)}`);
    }
    const network = maskIpv6(addr, plen);
    if (isMulticastIpv6(addr) || isLinkLocalIpv6(addr) || isUnspecifiedIpv6(addr) || ipv6Equals(addr, 0, network, 0)) {
      r.fail(at(name, 'address6'), `expected a global or unique-local host address of its prefix${got(text)}`);
    }
    const gw = typeof l.gateway6 === 'string' ? parseIpv6(l.gateway6) : undefined;
    if (gw === undefined || !inPrefix6(gw, 0, network, plen) || ipv6Equals(gw, 0, addr, 0) || ipv6Equals(gw, 0, network, 0)) {
      r.fail(at(name, 'gateway6'), `expected the router's IPv6 address inside ${formatIpv6(network)}/${plen}, other than the tunnel's${got(l.gateway6)}`);
    }
    return { address: addr, prefix: plen, gateway: gw, linkLocal: linkLocalFromMac(mac) };
  };
  const plain = link('plain');
  const uplink = link('uplink');

  if (!Array.isArray(root.peers) || root.peers.length === 0) r.fail(at('peers'), `expected a non-empty list of peers${got(root.peers)}`);
  const peers: PeerConfig[] = [];
  const seenPrefixes = new Map<string, number>();
  (root.peers as unknown[]).forEach((v, i) => {
    const p = at('peers', i);
    const pr = r.obj(v, p, ['public-key', 'endpoint', 'allowed-ips', 'persistent-keepalive', 'preshared-key'], 'a peer mapping with "public-key" and "allowed-ips"');
    const pk = typeof pr['public-key'] === 'string' ? decodeKey(pr['public-key']) : undefined;
    if (pk === undefined) r.fail([...p, 'public-key'], `expected a base64 public key of 32 bytes, as \`wg pubkey\` prints${got(pr['public-key'])}`);
    const publicKey = pk as Uint8Array;
    const publicKeyText = encodeKey(publicKey);
    if (peers.some((o) => o.publicKeyText === publicKeyText)) r.fail([...p, 'public-key'], 'expected each peer once (this public key is listed twice)');
    let endpointAddress = -1;
    let endpointPort = 0;
    if (pr.endpoint !== undefined) {
      const e = typeof pr.endpoint === 'string' ? parseEndpoint(pr.endpoint) : undefined;
      if (e === undefined) r.fail([...p, 'endpoint'], `expected an IPv4 address and port like 198.19.0.3:51820${got(pr.endpoint)}`);
      endpointAddress = (e as { address: number }).address;
      endpointPort = (e as { port: number }).port;
    }
    if (!Array.isArray(pr['allowed-ips']) || pr['allowed-ips'].length === 0) {
      r.fail([...p, 'allowed-ips'], `expected a non-empty list of prefixes like [198.18.64.0/24]${got(pr['allowed-ips'])}`);
    }
    const allowedIps: AllowedIp[] = [];
    (pr['allowed-ips'] as unknown[]).forEach((a, k) => {
      const ap = [...p, 'allowed-ips', k];
      const ip = parseAllowedIp(a);
      if (typeof ip === 'string') return r.fail(ap, `${ip}${got(a)}`);
      const owner = seenPrefixes.get(ip.text);
      if (owner === i) r.fail(ap, `expected each prefix once (this peer lists ${ip.text} twice)`);
      if (owner !== undefined) r.fail(ap, `expected a prefix no other peer has (peers[${owner}] lists it too)`);
      seenPrefixes.set(ip.text, i);
      allowedIps.push(ip);
    });
    const persistentKeepalive = r.int(pr['persistent-keepalive'], [...p, 'persistent-keepalive'], 0, 65535, 0);
    let presharedKey: Uint8Array | undefined;
    if (pr['preshared-key'] !== undefined) {
      presharedKey = typeof pr['preshared-key'] === 'string' ? decodeKey(pr['preshared-key']) : undefined;
      if (presharedKey === undefined) r.fail([...p, 'preshared-key'], 'expected a base64 key of 32 bytes, as `wg genpsk` prints (value not shown)');
    }
    peers.push({ publicKey, publicKeyText, endpointAddress, endpointPort, allowedIps, persistentKeepalive, presharedKey });
  });

  const P = PROTOCOL;
  const t = root.timers === undefined ? {} : r.obj(root.timers, at('timers'),
    ['rekey-after-time-s', 'reject-after-time-s', 'rekey-attempt-time-s', 'rekey-timeout-s', 'keepalive-timeout-s'], 'a mapping');
  const timers: TimerConfig = {
    rekeyAfterTimeMs: r.seconds(t['rekey-after-time-s'], at('timers', 'rekey-after-time-s'), P.rekeyAfterTimeMs, 0.1, 86400),
    rejectAfterTimeMs: r.seconds(t['reject-after-time-s'], at('timers', 'reject-after-time-s'), P.rejectAfterTimeMs, 0.1, 86400),
    rekeyAttemptTimeMs: r.seconds(t['rekey-attempt-time-s'], at('timers', 'rekey-attempt-time-s'), P.rekeyAttemptTimeMs, 0.1, 86400),
    rekeyTimeoutMs: r.seconds(t['rekey-timeout-s'], at('timers', 'rekey-timeout-s'), P.rekeyTimeoutMs, 0.1, 86400),
    keepaliveTimeoutMs: r.seconds(t['keepalive-timeout-s'], at('timers', 'keepalive-timeout-s'), P.keepaliveTimeoutMs, 0.1, 86400),
  };
  if (timers.rejectAfterTimeMs <= timers.rekeyAfterTimeMs) {
    r.fail(at('timers', 'reject-after-time-s'), `expected more than rekey-after-time-s (${timers.rekeyAfterTimeMs / 1000})`);
  }
  const ck = root.cookies === undefined ? {} : r.obj(root.cookies, at('cookies'), ['under-load-handshakes-per-s'], 'a mapping');
  const underLoadPerS = r.int(ck['under-load-handshakes-per-s'], at('cookies', 'under-load-handshakes-per-s'), 0, 1_000_000, DEFAULTS.underLoadPerS);
  const mssClamp = r.bool(root['mss-clamp'], at('mss-clamp'), DEFAULTS.mssClamp);
  return {
    listenPort: r.int(root['listen-port'], at('listen-port'), 1, 65535, DEFAULTS.listenPort),
    mtu: r.int(root.mtu, at('mtu'), 576, 65535 - 80, DEFAULTS.mtu),
    plain,
    uplink,
    peers,
    timers,
    underLoadPerS,
    mssClamp,
    stagedPackets: r.int(root['staged-packets'], at('staged-packets'), 0, 4096, DEFAULTS.stagedPackets),
  };
}
