// A worker thread hosting one `thread`-isolated component. It has its own
// entrypoint; the main thread of the host relays init's requests over the
// MessagePort and rings an eventfd doorbell so a worker blocked in poll()
// wakes up to read them.
import { parentPort, workerData } from 'node:worker_threads';
import { Entrypoint, spinBudget } from './entrypoint.ts';
import { Runtime } from './runtime.ts';
import type { ComponentGrant } from './messages.ts';
import { openSessionEnd } from '../session/open.ts';
import type { SessionEnd } from '../session/types.ts';
import { drainFd } from '../session/ring.ts';
import type { TraceReply, TraceRequest } from '../trace/protocol.ts';
import type { FaultKind, HostileAttack } from './fault-inject.ts';

export interface WorkerData {
  grant: ComponentGrant;
  doorbell: number;
}

export type MainToWorker =
  | { type: 'status'; id: number }
  | { type: 'reset'; id: number; session: string }
  | { type: 'reconfigure'; id: number; config: unknown; dryRun: boolean }
  | { type: 'trace'; id: number; req: TraceRequest }
  | { type: 'query'; id: number; what: string; args: unknown }
  | { type: 'command'; id: number; what: string; args: unknown }
  | { type: 'fault'; id: number; kind: FaultKind; attack?: HostileAttack }
  /** The host's heartbeat: a worker that does not answer hangs (the host then stays silent to init). */
  | { type: 'ping'; id: number }
  | { type: 'stop' };
export type WorkerToMain =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'status'; id: number; reports: ReturnType<Runtime['reports']> }
  | { type: 'reset-done'; id: number; error?: string }
  | { type: 'reconfigure-done'; id: number; error?: string }
  | { type: 'trace'; id: number; reply: TraceReply }
  | { type: 'query-result'; id: number; result?: unknown; error?: string }
  | { type: 'command-result'; id: number; result?: unknown; error?: string }
  | { type: 'fault-done'; id: number; error?: string }
  | { type: 'pong'; id: number };

const port = parentPort;
if (port === null) throw new Error('worker.ts runs only as a worker thread');
const data = workerData as WorkerData;
// The doorbell is an eventfd: the loop drains it when it wakes, then yields so the message is read.
const ep = new Entrypoint({ controlFd: data.doorbell, controlDrain: () => drainFd(data.doorbell), spinNs: spinBudget([data.grant]) });
const runtime = new Runtime(ep, { unit: data.grant.name, thread: 'worker' });

function send(m: WorkerToMain): void {
  port!.postMessage(m);
}

port.on('message', (m: MainToWorker) => {
  switch (m.type) {
    case 'status':
      send({ type: 'status', id: m.id, reports: runtime.reports() });
      break;
    case 'reset':
      send({ type: 'reset-done', id: m.id, error: runtime.reset(data.grant.name, m.session) });
      break;
    case 'reconfigure':
      send({ type: 'reconfigure-done', id: m.id, error: runtime.reconfigure(data.grant.name, m.config, m.dryRun) });
      break;
    case 'trace':
      send({ type: 'trace', id: m.id, reply: runtime.trace(m.req) });
      break;
    case 'query':
      send({ type: 'query-result', id: m.id, ...runtime.query(data.grant.name, m.what, m.args) });
      break;
    case 'command':
      send({ type: 'command-result', id: m.id, ...runtime.command(data.grant.name, m.what, m.args) });
      break;
    case 'fault':
      send({ type: 'fault-done', id: m.id, error: runtime.fault(data.grant.name, m.kind, m.attack) });
      break;
    case 'ping':
      send({ type: 'pong', id: m.id });
      break;
    case 'stop':
      runtime.stop();
      port!.close();
      break;
  }
});

try {
  const sessions = new Map<string, SessionEnd>();
  for (const g of data.grant.sessions) sessions.set(g.name, openSessionEnd(g));
  await runtime.add(data.grant, sessions);
  runtime.start();
  send({ type: 'ready' });
} catch (e) {
  send({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
}
