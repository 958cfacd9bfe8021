// One line describing a dropped packet, for the router's rate-limited drop
// log (config `log.drops-per-s`). Only called while the log has budget left,
// so the string it builds is never on the path of a flood.
import { formatIpv4, formatMac } from '../../net/addr.ts';
import { getU16, getU32 } from '../../net/bytes.ts';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../../net/ethernet.ts';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { VNET_HDR_LEN } from '../../net/vnet.ts';

/** "tcp 198.19.0.2:40000 -> 198.18.0.2:22 flags 0x02 len 60", or what can be read of a malformed frame. */
export function describePacket(buf: Uint8Array | undefined, off: number, len: number): string {
  if (buf === undefined) return '';
  const e = off + VNET_HDR_LEN;
  if (len < VNET_HDR_LEN + ETH_HLEN) return `len ${len}`;
  const type = getU16(buf, e + 12);
  const macs = `${formatMac(buf, e + 6)} -> ${formatMac(buf, e)}`;
  if (type === ETHERTYPE_ARP) return `arp ${macs} len ${len}`;
  if (type !== ETHERTYPE_IPV4) return `ethertype 0x${type.toString(16).padStart(4, '0')} ${macs} len ${len}`;
  const ip = e + ETH_HLEN;
  if (len < VNET_HDR_LEN + ETH_HLEN + 20) return `ipv4 (truncated) ${macs} len ${len}`;
  const ihl = (buf[ip] & 0x0f) << 2;
  const proto = buf[ip + 9];
  const src = formatIpv4(getU32(buf, ip + 12));
  const dst = formatIpv4(getU32(buf, ip + 16));
  const l4 = ip + ihl;
  const has = (n: number): boolean => l4 + n <= off + len;
  if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && has(4)) {
    const flags = proto === IPPROTO_TCP && has(14) ? ` flags 0x${buf[l4 + 13].toString(16).padStart(2, '0')}` : '';
    return `${proto === IPPROTO_TCP ? 'tcp' : 'udp'} ${src}:${getU16(buf, l4)} -> ${dst}:${getU16(buf, l4 + 2)}${flags} len ${len}`;
  }
  if (proto === IPPROTO_ICMP && has(2)) return `icmp ${src} -> ${dst} type ${buf[l4]} code ${buf[l4 + 1]} len ${len}`;
  return `ip proto ${proto} ${src} -> ${dst} len ${len}`;
}
