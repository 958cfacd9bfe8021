// A service's liveness, as init sees it: GET its health endpoint over a TCP
// connection opened inside the service's network namespace. init holds that
// capability the way it opens packet sockets there: its main thread enters the
// namespace only for the socket(2) call (src/sys/packet.ts inNetns) and comes
// straight back; the socket stays in the service's namespace and Node's own
// net/tls code connects it. Only the status line counts (200 = alive); the
// answer is read up to 1 KiB, every check ends within its timeout, and the
// service's certificate is not checked (a liveness probe sends nothing secret).
import { Socket, isIPv6 } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { close, socket, SOCK_CLOEXEC, SOCK_NONBLOCK } from '../sys/libc.ts';
import { inNetns } from '../sys/packet.ts';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const MAX_ANSWER = 1024;

export interface HealthTarget {
  /** Network namespace (a name under /run/netns); undefined: init's own. */
  netns: string | undefined;
  host: string;
  port: number;
  path: string;
  tls: boolean;
}

/** GET the endpoint; resolves to undefined when it answered 200, else what went wrong. Never rejects. */
export function checkHealth(t: HealthTarget, timeoutMs: number): Promise<string | undefined> {
  let fd: number;
  try {
    fd = inNetns(t.netns, () => socket(isIPv6(t.host) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  } catch (e) {
    return Promise.resolve(`cannot open a socket${t.netns === undefined ? '' : ` in network namespace ${t.netns}`}: ${(e as Error).message}`);
  }
  let raw: Socket;
  try {
    raw = new Socket({ fd, readable: true, writable: true });
  } catch (e) {
    close(fd);
    return Promise.resolve(`cannot use the socket: ${(e as Error).message}`);
  }
  return new Promise((resolveP) => {
    let stream: Socket = raw;
    let answer = '';
    let done = false;
    const finish = (problem: string | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.destroy();
      raw.destroy();
      resolveP(problem);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    const onData = (d: Buffer): void => {
      answer += d.toString('latin1');
      const eol = answer.indexOf('\r\n');
      if (eol < 0 && answer.length < MAX_ANSWER) return;
      const line = answer.slice(0, eol < 0 ? MAX_ANSWER : eol);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
      finish(m === null ? 'not an HTTP answer' : m[1] === '200' ? undefined : `status ${m[1]}`);
    };
    const request = (): void => {
      stream.on('data', onData);
      stream.on('end', () => finish(answer === '' ? 'closed without an answer' : 'not an HTTP answer'));
      const host = isIPv6(t.host) ? `[${t.host}]` : t.host;
      stream.write(`GET ${t.path} HTTP/1.1\r\nHost: ${host}:${t.port}\r\nUser-Agent: microgate-init\r\nConnection: close\r\n\r\n`);
    };
    raw.on('error', (e) => finish(e.message));
    raw.connect(t.port, t.host, () => {
      if (!t.tls) return request();
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false });
      stream = s;
      s.on('error', (e) => finish(`TLS: ${e.message}`));
      s.once('secureConnect', request);
    });
  });
}
