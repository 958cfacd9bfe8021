// The router's import of IPv6 connection records (conn-record6.ts), the
// IPv6 half of sync.ts importConn / expireConn: the same rule, an imported
// connection must be one the router's own config and policy would have
// accepted for its first packet (local6.ts receive, forward6.ts forward):
// both domains speak IPv6, the source is no martian, link-local, multicast
// or router address and (on a domain without the IPv6 default route) inside
// the domain's prefix or routes; the destination is no multicast,
// link-local, unspecified or router address and is routed to the record's
// egress domain; the source is not blocklisted; decide6 accepts it. Then the
// table: the same connection is updated, any other one on either key is a
// collision, the per-source (/64) limit and the table's bounds hold. No
// NAT66, so nothing else to claim. Refusals: import-codes.ts.
import {
  inPrefix6, ipv6Equals, isLinkLocalIpv6, isMartianSourceIpv6, isMulticastIpv6, isUnspecifiedIpv6,
} from '../../net/addr6.ts';
import { getI32 } from '../../net/bytes.ts';
import type { RouterConfig } from './config.ts';
import type { ConnRecord6 } from './conn-record6.ts';
import { REC_EXPIRED } from './conn-record.ts';
import { CT_LINKED, CT_REFUSED_SOURCE } from './conntrack.ts';
import type { Conn6, ConnTable6 } from './conntrack6.ts';
import { type Policy, POLICY_ACCEPT } from './policy.ts';
import { acquireSwept, IMPORT_INSTALLED, IMPORT_REMOVED, IMPORT_UPDATED, refusal, takeState } from './import-codes.ts';
import { routedVia } from './forward6.ts';

/** What importConn6 reads and writes: the IPv6 table and the route (forward6.ts). */
export interface Import6Target {
  cfg: RouterConfig;
  policy: Policy;
  ct: ConnTable6;
  /** The domain the address at buf[off] is routed to, or -1 (Forward6.route). */
  route(buf: Uint8Array, off: number): number;
  now: number;
  /** Set by importConn6: the connection installed or updated. */
  conn?: Conn6;
}

/** Install or update the IPv6 connection of a decoded record r (kind new or changed). */
export function importConn6(t: Import6Target, r: ConnRecord6): number {
  if (r.kind === REC_EXPIRED) return refusal('expired-kind');
  const { ct, policy, now } = t;
  const doms = t.cfg.domains;
  const inDom = r.inDom;
  const outDom = r.outDom;
  const v6 = doms[inDom].ipv6;
  if (v6 === undefined || doms[outDom].ipv6 === undefined) return refusal('bad-address');
  const b = r.buf;
  const src = r.srcOff;
  const dst = r.dstOff;
  // The source, as local6.ts receive would have taken it.
  if (isMartianSourceIpv6(b, src) || isUnspecifiedIpv6(b, src) || isLinkLocalIpv6(b, src) || isMulticastIpv6(b, src)) return refusal('bad-address');
  if (ipv6Equals(b, src, v6.address, 0) || ipv6Equals(b, src, v6.linkLocal, 0)) return refusal('bad-address');
  if (v6.gateway === null && !inPrefix6(b, src, v6.network, v6.prefix) && routedVia(v6, b, src) === null) return refusal('bad-address');
  // The destination: a host to forward to, not the router.
  if (isMulticastIpv6(b, dst) || isLinkLocalIpv6(b, dst) || isUnspecifiedIpv6(b, dst)) return refusal('bad-address');
  for (let i = 0; i < doms.length; i++) {
    const o = doms[i].ipv6;
    if (o !== undefined && (ipv6Equals(b, dst, o.address, 0) || ipv6Equals(b, dst, o.linkLocal, 0))) return refusal('bad-address');
  }
  if (policy.blocked6(inDom, b, src, now)) return refusal('blocked');
  if (t.route(b, dst) !== outDom) return refusal('not-routed');
  if (policy.peek6(inDom, outDom, r.proto, b, dst, r.oDport) !== POLICY_ACCEPT) return refusal('policy');
  // Already there: the same connection is updated; anything else is a collision.
  const ref = ct.lookup(r.proto, inDom, b, src, r.oSport, dst, r.oDport);
  if (ref >= 0) {
    const c = ct.conn(ref >>> 1);
    if ((ref & 1) !== 0 || c.outDom !== outDom) return refusal('collision');
    takeState(c, r, t.cfg, now);
    t.conn = c;
    return IMPORT_UPDATED;
  }
  // The reply key (the mirror) held by another connection.
  if (ct.lookup(r.proto, outDom, b, dst, r.oDport, src, r.oSport) >= 0) return refusal('collision');
  if (ct.sourceFull(inDom, b, src)) return refusal('source-limit');
  const c = acquireSwept(ct, now);
  if (c === undefined) return refusal('table-full');
  c.proto = r.proto;
  c.inDom = inDom;
  c.outDom = outDom;
  c.oSport = r.oSport;
  c.oDport = r.oDport;
  for (let w = 0; w < 4; w++) {
    c.src6[w] = getI32(b, src + 4 * w);
    c.dst6[w] = getI32(b, dst + 4 * w);
  }
  c.nat = false;
  c.created = now;
  takeState(c, r, t.cfg, now);
  const linked = ct.link(c);
  if (linked !== CT_LINKED) {
    ct.abandon(c);
    return refusal(linked === CT_REFUSED_SOURCE ? 'source-limit' : 'probe-limit');
  }
  t.conn = c;
  return IMPORT_INSTALLED;
}

/** An IPv6 `expired` record on an HA backup: remove the connection with exactly its tuples (sync.ts expireConn). */
export function expireConn6(t: Import6Target, r: ConnRecord6): number {
  const ref = t.ct.lookup(r.proto, r.inDom, r.buf, r.srcOff, r.oSport, r.dstOff, r.oDport);
  if (ref < 0 || (ref & 1) !== 0) return refusal('expired-unknown');
  const c = t.ct.conn(ref >>> 1);
  if (c.outDom !== r.outDom) return refusal('collision');
  t.ct.remove(c);
  return IMPORT_REMOVED;
}
