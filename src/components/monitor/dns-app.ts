// The DNS application layer of one flow: which messages are DNS (Suricata's
// probing: port 53 and a message that parses), transaction ids (a response
// joins its query's transaction by message id), the dns.* buffers rules
// inspect, and EVE "dns" records in Suricata's version 2 format.
import { Buffer } from 'node:buffer';
import { DnsTcpSide, dnsFlagsHex, dnsRcodeName, dnsTypeName, type DnsAnswer, type DnsMessage } from './dns.ts';

/** Outstanding queries remembered per flow (for response tx ids). */
const MAX_OUTSTANDING = 32;

export const DNS_PORT = 53;

export class DnsFlow {
  #nextTx = 0;
  /** message id -> tx id of queries not yet answered (insertion order: oldest first). */
  readonly #open = new Map<number, number>();
  readonly tcp: [DnsTcpSide | null, DnsTcpSide | null] = [null, null];
  /** tx ids whose logging a `config: logging disable, type tx` rule turned off. */
  readonly noLog = new Set<number>();

  /** Turn off logging of transaction tx (bounded: the oldest entries go first). */
  skipLog(tx: number): void {
    if (this.noLog.size >= MAX_OUTSTANDING) this.noLog.delete(this.noLog.values().next().value as number);
    this.noLog.add(tx);
  }

  /** The transaction a message belongs to. */
  txOf(m: DnsMessage): number {
    if (!m.qr) {
      const tx = this.#nextTx++;
      if (this.#open.size >= MAX_OUTSTANDING) {
        const first = this.#open.keys().next().value as number;
        this.#open.delete(first);
      }
      this.#open.set(m.id, tx);
      return tx;
    }
    const tx = this.#open.get(m.id);
    if (tx !== undefined) {
      this.#open.delete(m.id);
      return tx;
    }
    return this.#nextTx++;
  }
}

const latin1Bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** dns.query: each question's name of a query (multi-buffer: a rule matches if any name does). */
export function dnsMulti(m: DnsMessage): Map<string, Uint8Array[]> {
  const multi = new Map<string, Uint8Array[]>();
  if (!m.qr) multi.set('dns.query', m.questions.map((q) => latin1Bytes(q.name)));
  return multi;
}

function answerEve(a: DnsAnswer): Record<string, unknown> {
  const o: Record<string, unknown> = { rrname: a.name, rrtype: dnsTypeName(a.type), ttl: a.ttl };
  if (a.data !== '') o.rdata = a.data;
  return o;
}

/** The EVE "dns" objects of a message: one per question for a query, one for a response. */
export function dnsEve(m: DnsMessage, txId: number): Record<string, unknown>[] {
  if (!m.qr) {
    return m.questions.map((q) => ({ type: 'query', id: m.id, rrname: q.name, rrtype: dnsTypeName(q.type), tx_id: txId, opcode: m.opcode }));
  }
  const o: Record<string, unknown> = {
    version: 2, type: 'answer', id: m.id, flags: dnsFlagsHex(m), qr: true,
  };
  if ((m.flags & 0x0400) !== 0) o.aa = true;
  if ((m.flags & 0x0200) !== 0) o.tc = true;
  if ((m.flags & 0x0100) !== 0) o.rd = true;
  if ((m.flags & 0x0080) !== 0) o.ra = true;
  o.opcode = m.opcode;
  if (m.questions.length > 0) {
    o.rrname = m.questions[0].name;
    o.rrtype = dnsTypeName(m.questions[0].type);
  }
  o.rcode = dnsRcodeName(m.rcode);
  if (m.answers.length > 0) {
    o.answers = m.answers.map(answerEve);
    const grouped: Record<string, string[]> = {};
    for (const a of m.answers) if (a.data !== '') (grouped[dnsTypeName(a.type)] ??= []).push(a.data);
    if (Object.keys(grouped).length > 0) o.grouped = grouped;
  }
  if (m.authorities.length > 0) o.authorities = m.authorities.map(answerEve);
  return [o];
}
