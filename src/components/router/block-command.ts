// The arguments of init's `block` command to the router ({ip, seconds,
// reason}), checked whole: a bad one is refused with the reason, never half
// applied.
import { parseIpv4 } from '../../net/addr.ts';

/** Longest run-time block: a week (the monitor's `block` entries have the same bound). */
export const MAX_BLOCK_SECONDS = 7 * 86400;
const MAX_REASON = 200;

export interface BlockCommand {
  /** u32 */
  ip: number;
  seconds: number;
  reason: string;
}

export function parseBlockCommand(args: unknown): BlockCommand {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new Error('block: expected arguments { ip, seconds, reason }');
  const a = args as Record<string, unknown>;
  for (const k of Object.keys(a)) if (!['ip', 'seconds', 'reason'].includes(k)) throw new Error(`block: unknown argument "${k}" (expected ip, seconds, reason)`);
  const ip = typeof a.ip === 'string' ? parseIpv4(a.ip) : undefined;
  if (ip === undefined) throw new Error(`block: ip: expected an IPv4 address like 198.19.0.2 (got ${JSON.stringify(a.ip) ?? 'nothing'})`);
  const s = a.seconds;
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > MAX_BLOCK_SECONDS) {
    throw new Error(`block: seconds: expected an integer from 1 to ${MAX_BLOCK_SECONDS} (got ${JSON.stringify(s) ?? 'nothing'})`);
  }
  const r = a.reason === undefined ? '' : a.reason;
  if (typeof r !== 'string') throw new Error('block: reason: expected a string');
  return { ip, seconds: s, reason: r.length > MAX_REASON ? `${r.slice(0, MAX_REASON - 3)}...` : r };
}
