// The DHCP server of one router domain (RFC 2131 subset): DISCOVER -> OFFER,
// REQUEST -> ACK / NAK, RELEASE, DECLINE, INFORM. Static leases by MAC, a
// dynamic pool, offers held for offer-s, bindings for lease-s. It sits in the
// router because DHCP lives on the domain's link: clients broadcast from
// 0.0.0.0 to the segment, which only the router's end of the domain session
// sees (a separate component would need a layer-2 relay in the router anyway).
//
// Not the hot path: a message is handled with a few small allocations (lease
// objects, map keys). Replies are built into an owned scratch buffer that the
// router copies into an egress slot.
import { getU16, getU32, setU16, setU32 } from '../../net/bytes.ts';
import { formatIpv4, formatMac } from '../../net/addr.ts';
import { ETH_HLEN } from '../../net/ethernet.ts';
import { IPV4_HLEN } from '../../net/ipv4.ts';
import {
  BOOTP_FIXED, DHCP_CLIENT_PORT, DHCP_COOKIE as COOKIE, DHCP_FRAME_MAX, DHCP_OPT_START as OPT_START, DHCP_SERVER_PORT,
  DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPINFORM, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST, frameDhcp, isUdpToPort,
} from '../../net/dhcp.ts';
import type { DhcpSpec } from './policy-config.ts';

// The codec is src/net/dhcp.ts; these names stay importable from here.
export { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPINFORM, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST, DHCP_TYPE_NAMES } from '../../net/dhcp.ts';

// Results of handle() besides a reply: what the router counts.
export const DHCP_OK = 0;
export const DHCP_MALFORMED = 1;
export const DHCP_POOL_EXHAUSTED = 2;
/** A request for another server's offer, or about a lease we do not know: stay silent (RFC 2131 4.3.2). */
export const DHCP_SILENT = 3;

export interface Lease {
  mac: string;
  ip: number;
  state: 'offered' | 'bound' | 'declined';
  expires: number;
  hostname: string;
  isStatic: boolean;
}

function macKey(buf: Uint8Array, off: number): string {
  return formatMac(buf, off);
}

export class DhcpServer {
  spec: DhcpSpec;
  readonly address: number;
  readonly mask: number;
  readonly mac: Uint8Array;
  /** The last reply: frame (Ethernet header on) in out[0, replyLen). */
  readonly out = new Uint8Array(DHCP_FRAME_MAX);
  /** Message type of the last message handled and of its reply (0: none). */
  lastType = 0;
  replyType = 0;
  #byMac = new Map<string, Lease>();
  #byIp = new Map<number, Lease>();
  #staticByMac = new Map<string, number>();
  #staticIps = new Set<number>();
  #cursor = 0;

  constructor(spec: DhcpSpec, address: number, mask: number, mac: Uint8Array) {
    this.spec = spec;
    this.address = address >>> 0;
    this.mask = mask >>> 0;
    this.mac = mac;
    this.update(spec);
  }

  /** New settings (reload): keep the leases that still fit, drop the others. */
  update(spec: DhcpSpec): void {
    this.spec = spec;
    this.#staticByMac.clear();
    this.#staticIps.clear();
    for (const s of spec.static) {
      this.#staticByMac.set(formatMac(s.mac), s.ip >>> 0);
      this.#staticIps.add(s.ip >>> 0);
    }
    for (const l of [...this.#byMac.values(), ...this.#byIp.values()]) {
      const st = this.#staticByMac.get(l.mac);
      const fits = st !== undefined ? st === l.ip : (l.ip >= spec.first && l.ip <= spec.last && !this.#staticIps.has(l.ip));
      if (!fits) this.#forget(l);
      else l.isStatic = st !== undefined;
    }
  }

  #forget(l: Lease): void {
    if (this.#byMac.get(l.mac) === l) this.#byMac.delete(l.mac);
    if (this.#byIp.get(l.ip) === l) this.#byIp.delete(l.ip);
  }

  /** Remove expired offers, bindings and declined marks. */
  sweep(now: number): number {
    let n = 0;
    for (const l of [...this.#byIp.values()]) {
      if (l.expires <= now) {
        this.#forget(l);
        n++;
      }
    }
    return n;
  }

  leases(now: number): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.#byIp.values()) {
      if (l.expires <= now) continue;
      out.push({ mac: l.mac || null, ip: formatIpv4(l.ip), state: l.state, static: l.isStatic, hostname: l.hostname || null, expiresInS: Math.round((l.expires - now) / 1000) });
    }
    return out.sort((a, b) => String(a.ip).localeCompare(String(b.ip), 'en', { numeric: true }));
  }

  #free(ip: number, now: number): boolean {
    if (this.#staticIps.has(ip) || ip === this.address) return false;
    const l = this.#byIp.get(ip);
    return l === undefined || l.expires <= now;
  }

  /** The address to offer mac: static, its current lease, the requested one, or the next free one; -1 when none. */
  #choose(mac: string, requested: number, now: number): number {
    const st = this.#staticByMac.get(mac);
    if (st !== undefined) return st;
    const cur = this.#byMac.get(mac);
    if (cur !== undefined && cur.expires > now) return cur.ip;
    const { first, last } = this.spec;
    if (requested >= first && requested <= last && this.#free(requested, now)) return requested;
    const size = last - first + 1;
    for (let i = 0; i < size; i++) {
      const ip = first + ((this.#cursor + i) % size);
      if (this.#free(ip, now)) {
        this.#cursor = (this.#cursor + i + 1) % size;
        return ip;
      }
    }
    return -1;
  }

  #bind(mac: string, ip: number, state: Lease['state'], expires: number, hostname: string): void {
    const old = this.#byMac.get(mac);
    if (old !== undefined) this.#forget(old);
    const other = this.#byIp.get(ip);
    if (other !== undefined) this.#forget(other);
    const l: Lease = { mac, ip, state, expires, hostname, isStatic: this.#staticByMac.get(mac) === ip };
    if (mac !== '') this.#byMac.set(mac, l);
    this.#byIp.set(ip, l);
  }

  /**
   * A UDP datagram to port 67 arrived on the domain: IPv4 header at `ip`
   * (valid, `ihl` long), UDP length `udpLen` (validated by the caller).
   * Returns the reply's frame length in `out` (0: no reply) and sets
   * `result` (DHCP_OK, DHCP_MALFORMED, ...).
   */
  handle(buf: Uint8Array, ip: number, ihl: number, udpLen: number, now: number): number {
    this.result = DHCP_OK;
    this.lastType = 0;
    this.replyType = 0;
    const b = ip + ihl + 8;
    const len = udpLen - 8;
    if (len < OPT_START + 1 || buf[b] !== 1 || buf[b + 1] !== 1 || buf[b + 2] !== 6 || getU32(buf, b + BOOTP_FIXED) !== COOKIE ||
      (buf[b + 28] & 1) !== 0) {
      this.result = DHCP_MALFORMED;
      return 0;
    }
    // Options.
    let type = 0;
    let requested = 0;
    let serverId = -1;
    let hostname = '';
    for (let o = b + OPT_START, end = b + len; o < end;) {
      const code = buf[o];
      if (code === 255) break;
      if (code === 0) {
        o++;
        continue;
      }
      if (o + 1 >= end) break;
      const l = buf[o + 1];
      const v = o + 2;
      if (v + l > end) {
        this.result = DHCP_MALFORMED;
        return 0;
      }
      if (code === 53 && l === 1) type = buf[v];
      else if (code === 50 && l === 4) requested = getU32(buf, v);
      else if (code === 54 && l === 4) serverId = getU32(buf, v);
      else if (code === 12 && l > 0) hostname = String.fromCharCode(...buf.subarray(v, v + Math.min(l, 63))).replace(/[^\x20-\x7e]/g, '?');
      o = v + l;
    }
    if (type < DHCPDISCOVER || type > DHCPINFORM || type === DHCPOFFER || type === DHCPACK || type === DHCPNAK) {
      this.result = DHCP_MALFORMED;
      return 0;
    }
    this.lastType = type;
    const mac = macKey(buf, b + 28);
    const ciaddr = getU32(buf, b + 12);
    const inNet = (a: number): boolean => ((a & this.mask) >>> 0) === ((this.address & this.mask) >>> 0);
    const { leaseMs, offerMs } = this.spec;

    switch (type) {
      case DHCPDISCOVER: {
        const yi = this.#choose(mac, requested, now);
        if (yi < 0) {
          this.result = DHCP_POOL_EXHAUSTED;
          return 0;
        }
        const cur = this.#byMac.get(mac);
        if (cur === undefined || cur.ip !== yi || cur.expires <= now || cur.state !== 'bound') this.#bind(mac, yi, 'offered', now + offerMs, hostname);
        return this.#reply(buf, b, DHCPOFFER, yi, 0, true);
      }
      case DHCPREQUEST: {
        if (serverId !== -1 && serverId !== this.address) {
          // The client took another server's offer: withdraw ours.
          const cur = this.#byMac.get(mac);
          if (cur !== undefined && cur.state === 'offered') this.#forget(cur);
          this.result = DHCP_SILENT;
          return 0;
        }
        const want = requested !== 0 ? requested : ciaddr;
        if (want === 0 || !inNet(want)) return this.#reply(buf, b, DHCPNAK, 0, 0, false);
        const st = this.#staticByMac.get(mac);
        const cur = this.#byMac.get(mac);
        let ok: boolean;
        if (st !== undefined) ok = st === want;
        else if (cur !== undefined && cur.expires > now && cur.ip === want) ok = true;
        else if (serverId === -1 && want >= this.spec.first && want <= this.spec.last && this.#free(want, now)) ok = true; // init-reboot / rebinding
        else if (serverId === -1 && cur === undefined && !(want >= this.spec.first && want <= this.spec.last)) {
          this.result = DHCP_SILENT; // not ours to judge
          return 0;
        } else ok = false;
        if (!ok) return this.#reply(buf, b, DHCPNAK, 0, 0, false);
        this.#bind(mac, want, 'bound', now + leaseMs, hostname || cur?.hostname || '');
        return this.#reply(buf, b, DHCPACK, want, ciaddr, true);
      }
      case DHCPRELEASE: {
        const cur = this.#byMac.get(mac);
        if (cur !== undefined && cur.ip === ciaddr) this.#forget(cur);
        return 0;
      }
      case DHCPDECLINE: {
        const cur = this.#byMac.get(mac);
        if (cur !== undefined) this.#forget(cur);
        if (requested !== 0 && requested >= this.spec.first && requested <= this.spec.last) this.#bind('', requested, 'declined', now + leaseMs, '');
        return 0;
      }
      default: // DHCPINFORM
        if (ciaddr === 0 || !inNet(ciaddr)) {
          this.result = DHCP_MALFORMED;
          return 0;
        }
        return this.#reply(buf, b, DHCPACK, 0, ciaddr, false);
    }
  }

  result = DHCP_OK;

  /**
   * Build a reply in `out`: yiaddr `yi`, to `ciaddr` by unicast when it is
   * set, else to the broadcast address (Ethernet broadcast when the client
   * asked for it or for a NAK, else its MAC). `lease`: with lease times.
   */
  #reply(req: Uint8Array, rb: number, type: number, yi: number, ciaddr: number, lease: boolean): number {
    const o = this.out;
    o.fill(0);
    const ip = ETH_HLEN;
    const udp = ip + IPV4_HLEN;
    const b = udp + 8;
    o[b] = 2; // BOOTREPLY
    o[b + 1] = 1;
    o[b + 2] = 6;
    o.set(req.subarray(rb + 4, rb + 8), b + 4); // xid
    setU16(o, b + 10, getU16(req, rb + 10)); // flags
    setU32(o, b + 12, type === DHCPNAK ? 0 : getU32(req, rb + 12)); // ciaddr
    setU32(o, b + 16, yi);
    setU32(o, b + 20, type === DHCPNAK ? 0 : this.address); // siaddr
    setU32(o, b + 24, getU32(req, rb + 24)); // giaddr
    o.set(req.subarray(rb + 28, rb + 44), b + 28); // chaddr
    setU32(o, b + BOOTP_FIXED, COOKIE);
    let p = b + OPT_START;
    const opt32 = (code: number, v: number): void => {
      o[p] = code;
      o[p + 1] = 4;
      setU32(o, p + 2, v);
      p += 6;
    };
    o[p] = 53;
    o[p + 1] = 1;
    o[p + 2] = type;
    p += 3;
    opt32(54, this.address);
    if (type !== DHCPNAK) {
      if (lease) {
        const s = Math.floor(this.spec.leaseMs / 1000);
        opt32(51, s);
        opt32(58, Math.floor(s / 2));
        opt32(59, Math.floor((s * 7) / 8));
      }
      opt32(1, this.mask);
      opt32(3, this.address);
      if (this.spec.dns.length > 0) {
        o[p] = 6;
        o[p + 1] = 4 * this.spec.dns.length;
        p += 2;
        for (const d of this.spec.dns) {
          setU32(o, p, d);
          p += 4;
        }
      }
    }
    o[p++] = 255;
    const unicast = ciaddr !== 0 && type !== DHCPNAK;
    const dstIp = unicast ? ciaddr : 0xffffffff;
    const broadcastMac = !unicast && (type === DHCPNAK || (getU16(req, rb + 10) & 0x8000) !== 0);
    const dstMac = broadcastMac ? BROADCAST : req.subarray(rb + 28, rb + 34);
    const n = frameDhcp(o, p - b, this.mac, dstMac, this.address, dstIp, DHCP_SERVER_PORT, DHCP_CLIENT_PORT);
    this.replyType = type;
    return n;
  }
}

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/**
 * Is the IPv4 packet at buf[ip] (avail bytes) a UDP datagram to the DHCP
 * server port? A cheap check before full validation.
 */
export function isDhcpToServer(buf: Uint8Array, ip: number, avail: number): boolean {
  return isUdpToPort(buf, ip, avail, DHCP_SERVER_PORT);
}
