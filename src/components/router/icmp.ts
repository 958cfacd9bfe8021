// The router's ICMP: echo replies from its own addresses, the errors it
// sends (unreachable, time exceeded, administratively prohibited), and the
// translation of ICMP errors about tracked connections: the outer header like
// any packet of the connection, the quoted packet the way its recipient knows
// it (addresses, ports or echo identifier, the quoted IP and L4 checksums and
// the ICMP checksum, all incrementally by rewrite.ts). Everything is read
// from the packet's private copy and built in private memory.
import { Buffer } from 'node:buffer';
import type { Counters } from '../../runtime/counters.ts';
import { getI32, getU16, setU16, setU32 } from '../../net/bytes.ts';
import { update16 } from '../../net/checksum.ts';
import { ETH_HLEN, ETHERTYPE_IPV4, writeMacBytes } from '../../net/ethernet.ts';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HLEN, icmpSetChecksum } from '../../net/icmp.ts';
import {
  IP_DST, IP_SRC, IP_TTL, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, ipv4DecrementTtl, writeIpv4Header,
} from '../../net/ipv4.ts';
import { TCP_CHECKSUM } from '../../net/tcp.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';
import type { ConnTable } from './conntrack.ts';
import type { CounterName, Drops } from './drops.ts';
import type { Link } from './link.ts';
import { L3, type Packet } from './packet.ts';
import { l4ChecksumAt, rewriteAddrs } from './rewrite.ts';
import type { Routing } from './routing.ts';

const copyBytes = Buffer.prototype.copy;

export class Icmp {
  readonly #link: Link;
  readonly #rt: Routing;
  readonly #ct: ConnTable;
  readonly #drops: Drops;
  readonly #counters: Counters;
  readonly #c: Record<CounterName, number>;

  constructor(link: Link, rt: Routing, ct: ConnTable, drops: Drops, counters: Counters, c: Record<CounterName, number>) {
    this.#link = link;
    this.#rt = rt;
    this.#ct = ct;
    this.#drops = drops;
    this.#counters = counters;
    this.#c = c;
  }

  /** Answer the echo request p (arrived on p.dom) to the router's address in addrDom (options are not echoed). */
  echoReply(p: Packet, addrDom: number): void {
    const link = this.#link;
    const dom = p.dom;
    const l4Len = p.l4Len;
    if (!link.ownFrame(dom, ETH_HLEN + IPV4_HLEN + l4Len)) return;
    const buf = p.buf;
    const b = link.own;
    const e = VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    copyBytes.call(buf, b, e, e + 6, e + 12); // destination = the request's source MAC
    writeMacBytes(b, e + 6, link.macs[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + l4Len, IPPROTO_ICMP, this.#rt.addr[addrDom], p.src, 64, getU16(buf, L3 + 4), 0, buf[L3 + 1]);
    copyBytes.call(buf, b, ricmp, p.l4, p.l4 + l4Len);
    b[ricmp] = ICMP_ECHO_REPLY;
    const updated = update16(getU16(b, ricmp + 2), ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8);
    // RFC 1624's update gives 0x0000 where an all-zero reply needs 0xffff (found by fuzzing): compute that one in full.
    if (p.needsCsum || updated === 0) icmpSetChecksum(b, ricmp, l4Len);
    else setU16(b, ricmp + 2, updated);
    if (link.sendOwn(dom, ETH_HLEN + IPV4_HLEN + l4Len)) this.#counters.add(this.#c['icmp.echo-reply-sent']);
  }

  /**
   * Send an ICMP error about packet p (arrived on p.dom) back to its source,
   * from the router's address in p.dom, quoting the IP header + 8 bytes.
   * Callers never pass ICMP errors, broadcasts or later fragments.
   */
  error(p: Packet, type: number, code: number, rest = 0): void {
    this.errorAbout(p.dom, p.buf, VNET_HDR_LEN + 6, p.buf, L3, Math.min(getU16(p.buf, L3 + 2), p.ihl + 8), p.src, type, code, rest);
  }

  /**
   * Send an ICMP error into dom about the IPv4 packet at buf[ip] (quoting its
   * first `quote` bytes) to its source `src`, whose MAC is at macBuf[mac]: for
   * the current packet (error) and for a datagram whose reassembly timed out
   * (its first fragment, kept by reassembly.ts). Returns whether it was sent.
   */
  errorAbout(dom: number, macBuf: Uint8Array, mac: number, buf: Uint8Array, ip: number, quote: number, src: number, type: number, code: number, rest = 0): boolean {
    const link = this.#link;
    const icmpLen = ICMP_HLEN + quote;
    if (!link.ownFrame(dom, ETH_HLEN + IPV4_HLEN + icmpLen)) return false;
    const b = link.own;
    const e = VNET_HDR_LEN;
    const rip = e + ETH_HLEN;
    const ricmp = rip + IPV4_HLEN;
    copyBytes.call(macBuf, b, e, mac, mac + 6);
    writeMacBytes(b, e + 6, link.macs[dom]);
    setU16(b, e + 12, ETHERTYPE_IPV4);
    writeIpv4Header(b, rip, IPV4_HLEN + icmpLen, IPPROTO_ICMP, this.#rt.addr[dom], src);
    b[ricmp] = type;
    b[ricmp + 1] = code;
    setU32(b, ricmp + 4, rest); // fragmentation needed: the next-hop MTU in the low 16 bits (RFC 1191)
    copyBytes.call(buf, b, ricmp + ICMP_HLEN, ip, ip + quote);
    icmpSetChecksum(b, ricmp, icmpLen);
    if (!link.sendOwn(dom, ETH_HLEN + IPV4_HLEN + icmpLen)) return false;
    this.#counters.add(this.#c['icmp.error-sent']);
    return true;
  }

  /**
   * An ICMP error arrived (p: checked up to its ICMP header): forward it only
   * when the packet it quotes belongs to a live tracked connection, translated
   * like that connection (outer and quoted headers, with every checksum the
   * change touches).
   */
  errorIn(p: Packet, now: number): void {
    const dr = this.#drops;
    const D = dr.id;
    const b = p.buf;
    const ricmp = p.l4;
    const rin = ricmp + ICMP_HLEN;
    const avail = p.l4Len - ICMP_HLEN;
    if (avail < IPV4_HLEN || b[rin] >>> 4 !== 4) return dr.drop(D['icmp-error-malformed']);
    const iihl = (b[rin] & 0x0f) << 2;
    if (iihl < IPV4_HLEN || avail < iihl + 8) return dr.drop(D['icmp-error-malformed']);
    const iproto = b[rin + 9];
    const isrc = getI32(b, rin + IP_SRC);
    const idst = getI32(b, rin + IP_DST);
    const ril4 = rin + iihl;
    let isport: number;
    let idport: number;
    if (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP) {
      isport = getU16(b, ril4);
      idport = getU16(b, ril4 + 2);
    } else if (iproto === IPPROTO_ICMP && (b[ril4] === ICMP_ECHO_REQUEST || b[ril4] === ICMP_ECHO_REPLY)) {
      isport = idport = getU16(b, ril4 + 4);
    } else return dr.drop(D['icmp-error-untracked']);
    // The quoted packet went out on this domain; its answer would be the reversed key.
    const ref = this.#ct.lookup(iproto, p.dom, idst, idport, isrc, isport);
    if (ref < 0) return dr.drop(D['icmp-error-untracked']);
    const c = this.#ct.conn(ref >>> 1);
    if (c.expires <= now) return dr.drop(D['icmp-error-untracked']);
    if (b[L3 + IP_TTL] <= 1) return dr.drop(D['ttl-exceeded']); // no error about an error
    const dir = ref & 1;
    const out = dir === 0 ? c.outDom : c.inDom;
    // Outer: toward the original source (reply direction) the destination
    // becomes the original source; toward the remote (original direction) a
    // masqueraded connection's errors come from the NAT address.
    const nDst = dir === 1 ? c.oSrc : p.dst;
    // Toward the client of a port forward, errors come from the address it connected to.
    const nSrc = dir === 0 && c.nat ? c.rDst : dir === 1 && c.rSrc !== c.oDst ? c.oDst : p.src;
    const e = this.#link.hopEntry(out, nDst, p.len);
    if (e === undefined) return;
    // Outer IP header: ICMP has no pseudo header, so the ICMP checksum is untouched by it.
    ipv4DecrementTtl(b, L3);
    rewriteAddrs(b, L3, p.ihl, IPPROTO_ICMP, -1, nSrc, getU16(b, ricmp + 4), nDst, 0, true, -1);
    // Quoted packet: it travelled the other direction, translated; give it the
    // addresses and ports its recipient knows. Its L4 checksum only when the quote holds it.
    const qcOff = iproto === IPPROTO_TCP && avail < iihl + TCP_CHECKSUM + 2 ? -1 : l4ChecksumAt(iproto, ril4);
    const ic = rewriteAddrs(b, rin, iihl, iproto, qcOff,
      dir === 1 ? c.oSrc : c.rSrc, dir === 1 ? c.oSport : c.rSport, dir === 1 ? c.oDst : c.rDst, dir === 1 ? c.oDport : c.rDport,
      false, getU16(b, ricmp + 2));
    // With NEEDS_CSUM the ICMP checksum is completed later over the new bytes.
    if (!p.needsCsum) setU16(b, ricmp + 2, ic);
    if (this.#link.transmit(out, e, p.len)) this.#counters.add(this.#c['icmp.error-translated']);
  }
}
