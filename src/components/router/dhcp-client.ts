// The DHCP client of one router domain (`address: dhcp`, RFC 2131 client
// side): INIT -> SELECTING (DISCOVER, broadcast) -> REQUESTING (REQUEST for the
// first acceptable OFFER) -> BOUND; at T1 RENEWING (REQUEST unicast to the
// server), at T2 REBINDING (REQUEST broadcast), at the lease's end back to
// INIT; a NAK in any of them: INIT at once. RELEASE when the router stops.
//
// It never touches the router's tables: a lease that starts, changes or ends
// is handed to `apply` (router.ts applies it: the domain's address, prefix
// and default gateway, its ARP state, the connections of the old address).
// `acceptable` vets an offered address first (it must not overlap another
// domain). Everything in a server's answer is checked: the transaction id and
// our MAC, a unicast host address, a contiguous mask /1../30 holding it, a
// gateway inside that prefix (else none), lease times bounded (at least
// MIN_LEASE_S, T1 < T2 < lease), and in RENEWING only the server that gave the
// lease may answer. What does not pass is counted (`result`) and ignored.
//
// Not the hot path: messages are built into `out`, an owned buffer the router
// copies into an egress slot.
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { formatIpv4, isMartianSourceIpv4, isMulticastIpv4, macEquals } from '../../net/addr.ts';
import { ETH_HLEN } from '../../net/ethernet.ts';
import { IPV4_HLEN } from '../../net/ipv4.ts';
import {
  BOOTP_BROADCAST, BOOTP_CHADDR, BOOTP_CIADDR, BOOTP_FLAGS, BOOTP_XID, BOOTP_YIADDR, DHCP_CLIENT_PORT, DHCP_COOKIE, BOOTP_FIXED,
  DHCP_FRAME_MAX, DHCP_SERVER_PORT, DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST, OPT_CLIENT_ID, OPT_DNS,
  OPT_LEASE_TIME, OPT_MESSAGE_TYPE, OPT_PARAMS, OPT_REQUESTED_IP, OPT_ROUTER, OPT_SERVER_ID, OPT_SUBNET_MASK, OPT_T1, OPT_T2,
  frameDhcp, isBootp, walkDhcpOptions,
} from '../../net/dhcp.ts';

export type DhcpClientState = 'init' | 'selecting' | 'requesting' | 'bound' | 'renewing' | 'rebinding';

/** Shortest lease we follow (a shorter one is taken as this long: no renewal storm). */
export const MIN_LEASE_S = 10;
/** Longest lease we keep (0xffffffff means infinite; a year is long enough to renew). */
const MAX_LEASE_S = 365 * 86400;
/** Retransmission while selecting / requesting: 4 s doubling to 64 s (RFC 2131 4.1); requesting gives up after 4 tries. */
const FIRST_RETRY_MS = 4000;
const MAX_RETRY_MS = 64000;
const REQUEST_TRIES = 4;

export interface DhcpLease {
  address: number;
  prefix: number;
  /** Default gateway, or -1 (none offered, or outside the prefix). */
  gateway: number;
  server: number;
  dns: number[];
  leaseS: number;
  t1S: number;
  t2S: number;
  /** When it was granted (the router's clock, ms). */
  at: number;
}

// What handle() made of a message (the router counts these).
export const DHCPC_OK = 0;
export const DHCPC_MALFORMED = 1;
/** Not for us (another xid or MAC), or not expected now. */
export const DHCPC_IGNORED = 2;
/** An answer with an address or options we refuse (martian, bad mask, overlapping another domain, foreign server). */
export const DHCPC_REFUSED = 3;

export interface DhcpClientHooks {
  /** The lease starts, changes (address, prefix or gateway) or ends (undefined). */
  apply: (lease: DhcpLease | undefined, why: string) => void;
  /** Why this address/prefix cannot be ours, or undefined. */
  acceptable: (address: number, prefix: number) => string | undefined;
  log: (line: string) => void;
}

const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export class DhcpClient {
  readonly mac: Uint8Array;
  /** The last message built: frame (Ethernet header on) in out[0, n). */
  readonly out = new Uint8Array(DHCP_FRAME_MAX);
  state: DhcpClientState = 'init';
  lease: DhcpLease | undefined;
  /** Message type of the last message sent (0: none) and of the last one handled. */
  sentType = 0;
  lastType = 0;
  result = DHCPC_OK;
  /** Why the last answer was refused (for the log and status). */
  lastRefusal = '';
  #hooks: DhcpClientHooks;
  #random: () => number;
  #xid = 0;
  #next = 0;
  #retryMs = FIRST_RETRY_MS;
  #tries = 0;
  #offer: { address: number; server: number } | undefined;
  #serverMac = new Uint8Array(6);

  constructor(mac: Uint8Array, hooks: DhcpClientHooks, random: () => number = Math.random) {
    this.mac = mac;
    this.#hooks = hooks;
    this.#random = random;
  }

  /** Timers: returns the length of a message to send from `out` (0: none). Call every ~100 ms. */
  tick(now: number): number {
    const l = this.lease;
    if (l !== undefined && (this.state === 'bound' || this.state === 'renewing' || this.state === 'rebinding')) {
      const since = now - l.at;
      if (since >= l.leaseS * 1000) {
        this.#lose(`the lease of ${formatIpv4(l.address)} expired`);
        return this.#discover(now);
      }
      if (this.state === 'bound' && since >= l.t1S * 1000) {
        this.state = 'renewing';
        this.#next = now;
      }
      if (this.state === 'renewing' && since >= l.t2S * 1000) {
        this.state = 'rebinding';
        this.#next = now;
      }
      if (this.state === 'bound' || now < this.#next) return 0;
      // RFC 2131 4.4.5: retry at half the time left to T2 (rebinding: to the lease's end), at least every 4 s here.
      const deadline = l.at + (this.state === 'renewing' ? l.t2S : l.leaseS) * 1000;
      this.#next = now + Math.max(FIRST_RETRY_MS, Math.min(60000, (deadline - now) / 2));
      this.#xid = this.#newXid();
      return this.#build(DHCPREQUEST, l.address, 0, this.state === 'renewing' ? l.server : -1, this.state === 'renewing');
    }
    if (this.state === 'init') return this.#discover(now);
    if (now < this.#next) return 0;
    if (this.state === 'requesting') {
      if (++this.#tries >= REQUEST_TRIES || this.#offer === undefined) return this.#discover(now);
      this.#backoff(now);
      return this.#build(DHCPREQUEST, 0, this.#offer.address, this.#offer.server, false);
    }
    // selecting: DISCOVER again
    this.#backoff(now);
    return this.#build(DHCPDISCOVER, 0, 0, -1, false);
  }

  /**
   * A UDP datagram from port 67 to port 68 arrived on the domain: IPv4 header
   * at buf[ip] (valid, `ihl` long), UDP length `udpLen`, Ethernet source at
   * buf[ethSrc]. Returns the length of a message to send from `out` (a
   * REQUEST after an OFFER), else 0; sets `result`.
   */
  handle(buf: Uint8Array, ip: number, ihl: number, udpLen: number, ethSrc: number, now: number): number {
    this.result = DHCPC_OK;
    this.lastType = 0;
    const b = ip + ihl + 8;
    const len = udpLen - 8;
    if (!isBootp(buf, b, len, 2)) return this.#refuse(DHCPC_MALFORMED, '');
    let type = 0;
    let server = -1;
    let mask = -1;
    let router = -1;
    let leaseS = -1;
    let t1 = -1;
    let t2 = -1;
    const dns: number[] = [];
    const ok = walkDhcpOptions(buf, b, len, (code, v, l) => {
      if (code === OPT_MESSAGE_TYPE && l === 1) type = buf[v];
      else if (code === OPT_SERVER_ID && l === 4) server = getU32(buf, v);
      else if (code === OPT_SUBNET_MASK && l === 4) mask = getU32(buf, v);
      else if (code === OPT_ROUTER && l >= 4) router = getU32(buf, v);
      else if (code === OPT_LEASE_TIME && l === 4) leaseS = getU32(buf, v);
      else if (code === OPT_T1 && l === 4) t1 = getU32(buf, v);
      else if (code === OPT_T2 && l === 4) t2 = getU32(buf, v);
      else if (code === OPT_DNS && l >= 4) for (let i = 0; i + 4 <= l && dns.length < 4; i += 4) dns.push(getU32(buf, v + i));
    });
    if (!ok || (type !== DHCPOFFER && type !== DHCPACK && type !== DHCPNAK)) return this.#refuse(DHCPC_MALFORMED, '');
    this.lastType = type;
    if (getU32(buf, b + BOOTP_XID) !== this.#xid || !macEquals(buf, b + BOOTP_CHADDR, this.mac)) return this.#refuse(DHCPC_IGNORED, '');
    const yi = getU32(buf, b + BOOTP_YIADDR);
    const st = this.state;
    if (type === DHCPOFFER) {
      if (st !== 'selecting') return this.#refuse(DHCPC_IGNORED, '');
      if (server === -1) return this.#refuse(DHCPC_REFUSED, 'an offer without a server identifier');
      const why = this.#vet(yi, mask);
      if (why !== undefined) return this.#refuse(DHCPC_REFUSED, `offer of ${formatIpv4(yi)} from ${formatIpv4(server)}: ${why}`);
      this.#offer = { address: yi, server };
      this.state = 'requesting';
      this.#tries = 0;
      this.#retryMs = FIRST_RETRY_MS;
      this.#backoff(now);
      return this.#build(DHCPREQUEST, 0, yi, server, false);
    }
    if (st !== 'requesting' && st !== 'renewing' && st !== 'rebinding') return this.#refuse(DHCPC_IGNORED, '');
    const expected = st === 'requesting' ? this.#offer?.server : st === 'renewing' ? this.lease?.server : undefined;
    if (expected !== undefined && server !== -1 && server !== expected) return this.#refuse(DHCPC_REFUSED, `an answer from ${formatIpv4(server)}, not from the server ${formatIpv4(expected)} we asked`);
    if (type === DHCPNAK) {
      const had = this.lease;
      if (had !== undefined) this.#lose(`the server ${formatIpv4(server)} refused ${formatIpv4(had.address)} (NAK)`);
      else this.#hooks.log(`dhcp-client: the server ${formatIpv4(server)} refused the address it offered (NAK)`);
      this.state = 'init';
      this.#next = now;
      return 0;
    }
    // ACK
    const want = st === 'requesting' ? this.#offer!.address : this.lease!.address;
    if (yi !== want) return this.#refuse(DHCPC_REFUSED, `an ACK for ${formatIpv4(yi)}, not ${formatIpv4(want)}`);
    const why = this.#vet(yi, mask);
    if (why !== undefined) return this.#refuse(DHCPC_REFUSED, `ACK of ${formatIpv4(yi)}: ${why}`);
    const prefix = prefixOf(mask);
    const lease = Math.min(MAX_LEASE_S, Math.max(MIN_LEASE_S, leaseS < 0 ? 3600 : leaseS));
    let T1 = t1 > 0 && t1 < lease ? t1 : Math.floor(lease / 2);
    let T2 = t2 > 0 && t2 < lease ? t2 : Math.floor((lease * 7) / 8);
    if (T1 >= T2) T1 = Math.floor((T2 * 4) / 7);
    T2 = Math.max(T2, T1 + 1);
    const net = (yi & (mask >>> 0)) >>> 0;
    const gwOk = router !== -1 && ((router & mask) >>> 0) === net && router !== yi && router !== net && router !== ((net | ~mask) >>> 0);
    const next: DhcpLease = {
      address: yi, prefix, gateway: gwOk ? router : -1, server: server !== -1 ? server : (expected ?? -1), dns, leaseS: lease, t1S: T1, t2S: T2, at: now,
    };
    const prev = this.lease;
    this.lease = next;
    this.state = 'bound';
    this.#serverMac.set(buf.subarray(ethSrc, ethSrc + 6));
    if (prev === undefined || prev.address !== next.address || prev.prefix !== next.prefix || prev.gateway !== next.gateway) {
      this.#hooks.apply(next, prev === undefined ? 'leased' : 'changed');
    }
    this.#hooks.log(`dhcp-client: ${st === 'requesting' ? 'bound to' : st === 'renewing' ? 'renewed' : 'rebound'} ${formatIpv4(yi)}/${prefix}`
      + `${gwOk ? ` gateway ${formatIpv4(router)}` : router !== -1 ? ` (gateway ${formatIpv4(router)} ignored: outside the prefix)` : ''}`
      + ` from ${formatIpv4(next.server)}, lease ${lease} s (T1 ${T1} s, T2 ${T2} s)`);
    return 0;
  }

  /** The RELEASE of the current lease (the router stopping), or 0 when there is none. */
  release(): number {
    const l = this.lease;
    if (l === undefined || (this.state !== 'bound' && this.state !== 'renewing' && this.state !== 'rebinding')) return 0;
    this.#xid = this.#newXid();
    const n = this.#build(DHCPRELEASE, l.address, 0, l.server, true);
    this.#lose(`released ${formatIpv4(l.address)}`);
    this.state = 'init';
    return n;
  }

  status(now: number): Record<string, unknown> {
    const l = this.lease;
    return {
      state: this.state,
      address: l === undefined ? null : `${formatIpv4(l.address)}/${l.prefix}`,
      gateway: l === undefined || l.gateway === -1 ? null : formatIpv4(l.gateway),
      server: l === undefined ? null : formatIpv4(l.server),
      dns: l === undefined ? [] : l.dns.map(formatIpv4),
      leaseS: l?.leaseS ?? null,
      renewInS: l === undefined ? null : Math.max(0, Math.round((l.at + l.t1S * 1000 - now) / 1000)),
      expiresInS: l === undefined ? null : Math.max(0, Math.round((l.at + l.leaseS * 1000 - now) / 1000)),
      lastRefusal: this.lastRefusal || null,
    };
  }

  #refuse(result: number, why: string): number {
    this.result = result;
    if (why !== '' && why !== this.lastRefusal) this.#hooks.log(`dhcp-client: refused ${why}`);
    if (why !== '') this.lastRefusal = why;
    return 0;
  }

  /** Why `address` with `mask` cannot be ours, or undefined. */
  #vet(address: number, mask: number): string | undefined {
    if (mask === -1) return 'no subnet mask';
    const prefix = prefixOf(mask);
    if (prefix < 1 || prefix > 30) return `subnet mask ${formatIpv4(mask)} is not a contiguous /1../30`;
    const net = (address & mask) >>> 0;
    if (isMartianSourceIpv4(address) || isMulticastIpv4(address) || address === net || address === ((net | ~mask) >>> 0)) return 'not a unicast host address';
    return this.#hooks.acceptable(address, prefix);
  }

  #lose(why: string): void {
    this.lease = undefined;
    this.#hooks.apply(undefined, why);
  }

  #discover(now: number): number {
    this.state = 'selecting';
    this.#offer = undefined;
    this.#xid = this.#newXid();
    this.#retryMs = FIRST_RETRY_MS;
    this.#backoff(now);
    return this.#build(DHCPDISCOVER, 0, 0, -1, false);
  }

  /** Next retransmission: the current interval with +-1 s of jitter, then doubled up to 64 s. */
  #backoff(now: number): void {
    this.#next = now + this.#retryMs - 1000 + Math.floor(this.#random() * 2000);
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
  }

  #newXid(): number {
    return Math.floor(this.#random() * 0x100000000) >>> 0;
  }

  /**
   * Build a client message: `ciaddr` (renewing, rebinding, release), option 50
   * `requested`, option 54 `server` (-1: none). `unicast`: to the server's IP
   * and the MAC its last answer came from, from our address; else broadcast,
   * with the broadcast flag when we have no address.
   */
  #build(type: number, ciaddr: number, requested: number, server: number, unicast: boolean): number {
    const o = this.out;
    o.fill(0);
    const b = ETH_HLEN + IPV4_HLEN + 8;
    o[b] = 1; // BOOTREQUEST
    o[b + 1] = 1;
    o[b + 2] = 6;
    setU32(o, b + BOOTP_XID, this.#xid);
    setU16(o, b + BOOTP_FLAGS, ciaddr === 0 ? BOOTP_BROADCAST : 0);
    setU32(o, b + BOOTP_CIADDR, ciaddr);
    o.set(this.mac, b + BOOTP_CHADDR);
    setU32(o, b + BOOTP_FIXED, DHCP_COOKIE);
    let p = b + BOOTP_FIXED + 4;
    o[p++] = OPT_MESSAGE_TYPE;
    o[p++] = 1;
    o[p++] = type;
    o[p++] = OPT_CLIENT_ID;
    o[p++] = 7;
    o[p++] = 1; // hardware type Ethernet
    o.set(this.mac, p);
    p += 6;
    const opt32 = (code: number, v: number): void => {
      o[p] = code;
      o[p + 1] = 4;
      setU32(o, p + 2, v);
      p += 6;
    };
    if (requested !== 0) opt32(OPT_REQUESTED_IP, requested);
    if (server !== -1 && (type === DHCPRELEASE || ciaddr === 0)) opt32(OPT_SERVER_ID, server);
    if (type !== DHCPRELEASE) {
      const params = [OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_LEASE_TIME, OPT_SERVER_ID, OPT_T1, OPT_T2];
      o[p++] = OPT_PARAMS;
      o[p++] = params.length;
      for (const x of params) o[p++] = x;
    }
    o[p++] = 255;
    this.sentType = type;
    const l = this.lease;
    if (unicast && l !== undefined) return frameDhcp(o, p - b, this.mac, this.#serverMac, l.address, l.server, DHCP_CLIENT_PORT, DHCP_SERVER_PORT);
    return frameDhcp(o, p - b, this.mac, BROADCAST_MAC, ciaddr, 0xffffffff, DHCP_CLIENT_PORT, DHCP_SERVER_PORT);
  }
}

/** The prefix length of a contiguous mask, or -1. */
function prefixOf(mask: number): number {
  const m = mask >>> 0;
  const inv = (~m) >>> 0;
  if ((inv & (inv + 1)) !== 0) return -1;
  return 32 - Math.log2(inv + 1);
}

/** Is the IPv4 packet at buf[ip] (avail bytes) an unfragmented UDP datagram from port 67 to port 68? */
export function isDhcpToClient(buf: Uint8Array, ip: number, avail: number): boolean {
  if (avail < IPV4_HLEN + 8 || buf[ip] >>> 4 !== 4 || buf[ip + 9] !== 17) return false;
  const ihl = (buf[ip] & 0x0f) << 2;
  if (ihl < IPV4_HLEN || avail < ihl + 8 || (getU16(buf, ip + 6) & 0x3fff) !== 0) return false;
  return getU16(buf, ip + ihl) === DHCP_SERVER_PORT && getU16(buf, ip + ihl + 2) === DHCP_CLIENT_PORT;
}
