// init's check of every message a component host sends on its control channel
// (src/runtime/channel.ts frames, src/runtime/messages.ts types). A host may be
// running an attacker's code, so a payload is untrusted until this says it is
// one of the HostToInit messages, exactly: valid UTF-8 JSON, an object, a known
// `type`, the keys of that type and no others, each of the expected kind. A
// hand-written validator per type (ten small shapes do not earn a schema
// library). Whether the message fits the conversation (a reply to a request
// that is open, of the type that request expects) is init's check (init.ts).
import type { HostToInit } from '../runtime/messages.ts';

/** Why a host's message was refused: a stable code for counters and tests, and a readable reason. */
export interface Violation {
  code: ViolationCode;
  message: string;
}

export type ViolationCode =
  | 'frame-empty'
  | 'frame-oversize'
  | 'bad-json'
  | 'bad-shape'
  | 'unknown-type'
  | 'unexpected'
  | 'reply-to-nothing'
  | 'wrong-reply'
  | 'bad-result';

const MAX_TEXT = 64 * 1024;
const MAX_REPORTS = 1024;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

class ShapeError extends Error {}

function fail(what: string): never {
  throw new ShapeError(what);
}

function keys(o: Obj, type: string, required: readonly string[], optional: readonly string[] = []): void {
  for (const k of required) if (!(k in o)) fail(`"${type}" without "${k}"`);
  for (const k of Object.keys(o)) {
    if (k !== 'type' && !required.includes(k) && !optional.includes(k)) fail(`"${type}" with an unknown key ${JSON.stringify(k.slice(0, 40))}`);
  }
}

function id(o: Obj, type: string): void {
  const v = o.id;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(`"${type}".id must be a positive integer`);
}

function text(v: unknown, where: string, optional = false): void {
  if (optional && v === undefined) return;
  if (typeof v !== 'string') fail(`${where} must be a string`);
  if (v.length > MAX_TEXT) fail(`${where} is longer than ${MAX_TEXT} characters`);
}

function numbers(v: unknown, where: string): void {
  if (!isObj(v)) fail(`${where} must be an object of numbers`);
  for (const [k, n] of Object.entries(v)) if (typeof n !== 'number') fail(`${where}.${k.slice(0, 40)} must be a number`);
}

function report(v: unknown, i: number): void {
  const w = `"status".components[${i}]`;
  if (!isObj(v)) fail(`${w} must be an object`);
  keys(v, `status.components[${i}]`, ['name', 'status', 'counters', 'sessions', 'loop']);
  text(v.name, `${w}.name`);
  if (!isObj(v.status)) fail(`${w}.status must be an object`);
  numbers(v.counters, `${w}.counters`);
  if (!isObj(v.sessions)) fail(`${w}.sessions must be an object`);
  for (const [k, s] of Object.entries(v.sessions)) numbers(s, `${w}.sessions.${k.slice(0, 40)}`);
  const loop = v.loop;
  if (!isObj(loop)) fail(`${w}.loop must be an object`);
  for (const k of ['turns', 'sleeps', 'yields']) if (typeof loop[k] !== 'number') fail(`${w}.loop.${k} must be a number`);
  for (const k of ['idleNs', 'busyNs']) if (typeof loop[k] !== 'string' || !/^\d{1,30}$/.test(loop[k])) fail(`${w}.loop.${k} must be a decimal string`);
}

function traceReply(v: unknown): void {
  if (!isObj(v)) fail('"trace".reply must be an object');
  for (const k of ['tracers', 'captures']) {
    const a = v[k];
    if (!Array.isArray(a) || !a.every(isObj)) fail(`"trace".reply.${k} must be an array of objects`);
    for (const x of a) text(x.component, `"trace".reply.${k}[].component`);
  }
  const st = v.status;
  if (!isObj(st) || !Array.isArray(st.tracers) || !st.tracers.every(isObj) || !Array.isArray(st.captures) || !st.captures.every(isObj)) {
    fail('"trace".reply.status must be {tracers: [...], captures: [...]}');
  }
  for (const x of [...st.tracers, ...st.captures] as Obj[]) text(x.component, '"trace".reply.status.*[].component');
  if (typeof v.matched !== 'number') fail('"trace".reply.matched must be a number');
  if (!Array.isArray(v.errors)) fail('"trace".reply.errors must be an array of strings');
  v.errors.forEach((e, i) => text(e, `"trace".reply.errors[${i}]`));
}

/** The shape check of one parsed message. */
function check(v: unknown): HostToInit {
  if (!isObj(v)) fail(`a message must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  const type = v.type;
  switch (type) {
    case 'hello':
      keys(v, type, ['pid']);
      if (typeof v.pid !== 'number' || !Number.isSafeInteger(v.pid)) fail('"hello".pid must be an integer');
      break;
    case 'pong':
    case 'ready':
      keys(v, type, []);
      break;
    case 'fatal':
      keys(v, type, ['message']);
      text(v.message, '"fatal".message');
      break;
    case 'status':
      keys(v, type, ['id', 'components']);
      id(v, type);
      if (!Array.isArray(v.components) || v.components.length > MAX_REPORTS) fail(`"status".components must be an array of at most ${MAX_REPORTS}`);
      v.components.forEach(report);
      break;
    case 'session-reset-done':
    case 'reconfigure-done':
    case 'fault-done':
      keys(v, type, ['id'], ['error']);
      id(v, type);
      text(v.error, `"${type}".error`, true);
      break;
    case 'query-result':
    case 'command-result':
      keys(v, type, ['id'], ['result', 'error']);
      id(v, type);
      text(v.error, `"${type}".error`, true);
      break;
    case 'trace':
      keys(v, type, ['id', 'reply']);
      id(v, type);
      traceReply(v.reply);
      break;
    default:
      throw new UnknownType(typeof type === 'string' ? `unknown message type ${JSON.stringify(type.slice(0, 40))}` : 'a message without a string "type"');
  }
  return v as unknown as HostToInit;
}

class UnknownType extends Error {}

/** Parse and check one frame's payload: the message, or the violation. */
export function parseHostMessage(payload: Buffer): HostToInit | Violation {
  let v: unknown;
  try {
    // fatal: a payload that is not UTF-8 is refused, not repaired.
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (e) {
    return { code: 'bad-json', message: `not UTF-8 JSON (${(e as Error).message.slice(0, 80)})` };
  }
  try {
    return check(v);
  } catch (e) {
    if (e instanceof UnknownType) return { code: 'unknown-type', message: e.message };
    if (e instanceof ShapeError) return { code: 'bad-shape', message: e.message };
    throw e;
  }
}

export function isViolation(v: HostToInit | Violation): v is Violation {
  return 'code' in v;
}

/** The reply type each request expects. */
export const REPLY_TO = {
  status: 'status',
  'session-reset': 'session-reset-done',
  reconfigure: 'reconfigure-done',
  trace: 'trace',
  query: 'query-result',
  command: 'command-result',
  fault: 'fault-done',
} as const;

/**
 * Text from a component made safe for one log line: control characters
 * (newlines, escapes, DEL, C1) and backslashes escaped, at most `max`
 * characters (longer text is cut and says so).
 */
export function escapeText(s: string, max = 300): string {
  const cut = s.length > max;
  const t = cut ? s.slice(0, max) : s;
  // eslint-disable-next-line no-control-regex
  const out = t.replace(/[\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return cut ? `${out}... (${s.length} characters)` : out;
}
