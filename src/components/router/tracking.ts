// The connection-tracking state machine: the state a packet moves its
// connection to, and how long a connection in that state lives idle. The
// table itself (hashing, keys, expiry sweep) is conntrack.ts.
//
// TCP: syn-sent -> established (SYN+ACK from the reply side) -> closing (a
// FIN) -> closed (FIN both ways, or RST); a SYN on a closed connection from
// the original side reopens it (port reuse). UDP and ICMP echo: new ->
// replied (a packet in the reply direction).
import { IPPROTO_TCP, IPPROTO_UDP } from '../../net/ipv4.ts';
import { TCP_ACK_FLAG, TCP_FIN, TCP_RST, TCP_SYN } from '../../net/tcp.ts';
import type { RouterConfig } from './config.ts';
import {
  type Conn, CT_NEW, CT_REPLIED, CT_TCP_CLOSED, CT_TCP_CLOSING, CT_TCP_ESTABLISHED, CT_TCP_SYN_SENT,
} from './conntrack.ts';

export type Timeouts = RouterConfig['conntrack'];

/** The state a new connection of protocol proto starts in. */
export function initialState(proto: number): number {
  return proto === IPPROTO_TCP ? CT_TCP_SYN_SENT : CT_NEW;
}

/** Idle timeout (ms) of a connection in its current state. */
export function connTimeout(c: Conn, t: Timeouts): number {
  switch (c.state) {
    case CT_TCP_SYN_SENT:
    case CT_TCP_CLOSING:
      return t.tcpTransitoryMs;
    case CT_TCP_ESTABLISHED:
      return t.tcpEstablishedMs;
    case CT_TCP_CLOSED:
      return t.tcpClosedMs;
    default:
      return c.proto === IPPROTO_UDP ? t.udpMs : t.icmpMs;
  }
}

/** Advance connection c for a packet in direction dir (0 original, 1 reply) with TCP flags, and renew its expiry. */
export function track(c: Conn, dir: number, flags: number, now: number, t: Timeouts): void {
  if (dir === 0) c.pktsOrig++;
  else c.pktsReply++;
  if (c.proto === IPPROTO_TCP) {
    if ((flags & TCP_RST) !== 0) c.state = CT_TCP_CLOSED;
    else {
      if ((flags & TCP_SYN) !== 0) {
        if (dir === 0 && c.state === CT_TCP_CLOSED) { // port reuse after close
          c.state = CT_TCP_SYN_SENT;
          c.finOrig = false;
          c.finReply = false;
        } else if (dir === 1 && (flags & TCP_ACK_FLAG) !== 0 && c.state === CT_TCP_SYN_SENT) {
          c.state = CT_TCP_ESTABLISHED;
        }
      }
      if ((flags & TCP_FIN) !== 0) {
        if (dir === 0) c.finOrig = true;
        else c.finReply = true;
        if (c.finOrig && c.finReply) c.state = CT_TCP_CLOSED;
        else if (c.state !== CT_TCP_CLOSED) c.state = CT_TCP_CLOSING;
      }
    }
  } else if (dir === 1) c.state = CT_REPLIED;
  c.expires = now + connTimeout(c, t);
}
