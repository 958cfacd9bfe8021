// The component host: the program init starts in a sandbox. It makes itself
// non-dumpable (PR_SET_DUMPABLE 0: no other process of its uid can read its
// memory) and installs its seccomp allow-list (seccomp.ts) before anything else, says hello, receives its
// grants in one bootstrap message, and runs the components:
//   - `process` and `inline` components on this thread's entrypoint (a
//     process-isolated component is alone in its host),
//   - each `thread` component in a worker thread with its own entrypoint.
// Sessions between two inline components here are `local` (plain calls on
// memory of this process); all others come as inherited fds.
// It answers init's status and session-reset requests between turns.
import { Worker } from 'node:worker_threads';
import { Socket } from 'node:net';
import { fstatSync } from 'node:fs';
import { forbidPathLookups, installAllowList } from '../sys/seccomp.ts';
import { Entrypoint, spinBudget } from './entrypoint.ts';
import { Runtime } from './runtime.ts';
import { CONTROL_FD } from './messages.ts';
import { FrameDecoder, MAX_INIT_FRAME, encodeFrame } from './channel.ts';
import type { ComponentGrant, ComponentReport, HostToInit, InitToHost } from './messages.ts';
import type { MainToWorker, WorkerData, WorkerToMain } from './worker.ts';
import { openSessionEnd } from '../session/open.ts';
import { createLocalSession } from '../session/local.ts';
import type { SessionEnd } from '../session/types.ts';
import { eventfd, setNotDumpable } from '../sys/libc.ts';
import { signalFd } from '../session/ring.ts';
import { mergeReplies } from '../trace/protocol.ts';
import type { FaultKind, HostileAttack } from './fault-inject.ts';
import type { TraceReply, TraceRequest } from '../trace/protocol.ts';

interface HostedWorker {
  name: string;
  worker: Worker;
  doorbell: number;
  pending: Map<number, (m: WorkerToMain) => void>;
}

const ep = new Entrypoint({ controlFd: CONTROL_FD });
const runtime = new Runtime(ep, { unit: process.env.MG_COMPONENT ?? 'host', thread: 'main' });
const workers: HostedWorker[] = [];
let nextId = 1;
/** The control channel to init (fd CONTROL_FD, a socket; framed messages, channel.ts). */
let channel: Socket | undefined;

function send(m: HostToInit): void {
  if (channel !== undefined && channel.writable) channel.write(encodeFrame(m));
}

function ask(w: HostedWorker, m: MainToWorker & { id: number }, timeoutMs = 1000): Promise<WorkerToMain | undefined> {
  const id = nextId++;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      w.pending.delete(id);
      resolve(undefined);
    }, timeoutMs);
    w.pending.set(id, (r) => {
      clearTimeout(t);
      resolve(r);
    });
    w.worker.postMessage({ ...m, id });
    signalFd(w.doorbell);
  });
}

function startWorker(grant: ComponentGrant): Promise<void> {
  const doorbell = eventfd();
  const data: WorkerData = { grant, doorbell };
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: data });
  const w: HostedWorker = { name: grant.name, worker, doorbell, pending: new Map() };
  workers.push(w);
  return new Promise((resolve, reject) => {
    worker.on('message', (m: WorkerToMain) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'fatal') reject(new Error(`${grant.name}: ${m.message}`));
      else {
        const cb = w.pending.get(m.id);
        if (cb !== undefined) {
          w.pending.delete(m.id);
          cb(m);
        }
      }
    });
    // A thread component that dies takes its host down: init restarts the host.
    worker.on('error', (e: Error) => {
      process.stderr.write(`host: thread component ${grant.name} crashed: ${e.stack ?? e.message}\n`);
      process.exit(70);
    });
    worker.on('exit', (code) => {
      if (code !== 0 && !stopping) {
        process.stderr.write(`host: thread component ${grant.name} exited with ${code}\n`);
        process.exit(70);
      }
    });
  });
}

async function bootstrap(grants: ComponentGrant[]): Promise<void> {
  // Local sessions: both ends are inline components of this host; pair them by key.
  const local = new Map<string, [SessionEnd, SessionEnd]>();
  const inline = grants.filter((g) => g.isolation !== 'thread');
  for (const grant of inline) {
    const sessions = new Map<string, SessionEnd>();
    for (const sg of grant.sessions) {
      if (sg.transport === 'local') {
        const key = sg.key ?? '';
        let pair = local.get(key);
        if (pair === undefined) {
          pair = createLocalSession({ slots: sg.slots, slotSize: sg.slotSize });
          local.set(key, pair);
        }
        sessions.set(sg.name, pair[sg.side]);
      } else {
        sessions.set(sg.name, openSessionEnd(sg));
      }
    }
    await runtime.add(grant, sessions);
  }
  await Promise.all(grants.filter((g) => g.isolation === 'thread').map(startWorker));
  ep.setSpin(spinBudget(inline));
  runtime.start();
  // Every component's code is loaded (here and in the worker threads): from now on no path is looked up at all.
  if (process.env.MG_NO_SECCOMP !== '1') forbidPathLookups();
}

async function reports(): Promise<ComponentReport[]> {
  const out = runtime.reports();
  for (const w of workers) {
    const r = await ask(w, { type: 'status', id: 0 });
    if (r !== undefined && r.type === 'status') out.push(...r.reports);
  }
  return out;
}

/** Trace requests go to this thread's components and to every worker; the answers are merged. */
async function trace(req: TraceRequest): Promise<TraceReply> {
  const replies = [runtime.trace(req)];
  for (const w of workers) {
    const r = await ask(w, { type: 'trace', id: 0, req }, 5000);
    if (r !== undefined && r.type === 'trace') replies.push(r.reply);
    else replies.push({ ...mergeReplies([]), errors: [`thread component ${w.name} did not answer the trace request`] });
  }
  return mergeReplies(replies);
}

async function reset(component: string, session: string): Promise<string | undefined> {
  const w = workers.find((x) => x.name === component);
  if (w === undefined) return runtime.reset(component, session);
  const r = await ask(w, { type: 'reset', id: 0, session });
  if (r === undefined) return `thread component ${component} did not answer`;
  return r.type === 'reset-done' ? r.error : 'unexpected answer';
}

async function reconfigure(component: string, config: unknown, dryRun: boolean): Promise<string | undefined> {
  const w = workers.find((x) => x.name === component);
  if (w === undefined) return runtime.reconfigure(component, config, dryRun);
  const r = await ask(w, { type: 'reconfigure', id: 0, config, dryRun }, 5000);
  if (r === undefined) return `thread component ${component} did not answer`;
  return r.type === 'reconfigure-done' ? r.error : 'unexpected answer';
}

async function query(component: string, what: string, args: unknown): Promise<{ result?: unknown; error?: string }> {
  const w = workers.find((x) => x.name === component);
  if (w === undefined) return runtime.query(component, what, args);
  const r = await ask(w, { type: 'query', id: 0, what, args }, 5000);
  if (r === undefined) return { error: `thread component ${component} did not answer` };
  return r.type === 'query-result' ? { result: r.result, error: r.error } : { error: 'unexpected answer' };
}

async function command(component: string, what: string, args: unknown): Promise<{ result?: unknown; error?: string }> {
  const w = workers.find((x) => x.name === component);
  if (w === undefined) return runtime.command(component, what, args);
  const r = await ask(w, { type: 'command', id: 0, what, args }, 5000);
  if (r === undefined) return { error: `thread component ${component} did not answer` };
  return r.type === 'command-result' ? { result: r.result, error: r.error } : { error: 'unexpected answer' };
}

async function fault(component: string, kind: FaultKind, attack: HostileAttack | undefined): Promise<string | undefined> {
  const w = workers.find((x) => x.name === component);
  if (w === undefined) return runtime.fault(component, kind, attack);
  const r = await ask(w, { type: 'fault', id: 0, kind, attack });
  if (r === undefined) return `thread component ${component} did not answer`;
  return r.type === 'fault-done' ? r.error : 'unexpected answer';
}

/** The heartbeat: answered only when every worker thread answers too (a hung thread component silences its host). */
function heartbeat(): void {
  if (workers.length === 0) {
    send({ type: 'pong' });
    return;
  }
  // A late answer still counts (init only looks at the time of the last pong).
  void Promise.all(workers.map((w) => ask(w, { type: 'ping', id: 0 }, 5000))).then((rs) => {
    if (rs.every((r) => r !== undefined)) send({ type: 'pong' });
  });
}

let stopping = false;

function onMessage(m: InitToHost): void {
  switch (m.type) {
    case 'bootstrap':
      bootstrap(m.components).then(
        () => send({ type: 'ready' }),
        (e: unknown) => {
          send({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
          setImmediate(() => process.exit(1));
        },
      );
      break;
    case 'ping':
      heartbeat();
      break;
    case 'status':
      void reports().then((components) => send({ type: 'status', id: m.id, components }));
      break;
    case 'session-reset':
      void reset(m.component, m.session).then((error) => send({ type: 'session-reset-done', id: m.id, error }));
      break;
    case 'reconfigure':
      void reconfigure(m.component, m.config, m.dryRun).then((error) => send({ type: 'reconfigure-done', id: m.id, error }));
      break;
    case 'trace':
      void trace(m.req).then((reply) => send({ type: 'trace', id: m.id, reply }));
      break;
    case 'query':
      void query(m.component, m.what, m.args).then((r) => send({ type: 'query-result', id: m.id, ...r }));
      break;
    case 'command':
      void command(m.component, m.what, m.args).then((r) => send({ type: 'command-result', id: m.id, ...r }));
      break;
    case 'fault':
      void fault(m.component, m.kind, m.attack).then((error) => send({ type: 'fault-done', id: m.id, error }));
      break;
    case 'stop':
      stopping = true;
      runtime.stop();
      for (const w of workers) {
        w.worker.postMessage({ type: 'stop' } satisfies MainToWorker);
        signalFd(w.doorbell);
      }
      setTimeout(() => process.exit(0), workers.length > 0 ? 100 : 0);
  }
}

function main(): void {
  let isSocket = false;
  try {
    isSocket = fstatSync(CONTROL_FD).isSocket();
  } catch {
    // no fd 3
  }
  if (!isSocket) {
    process.stderr.write(`microgate host: must be started by init (no control channel on fd ${CONTROL_FD})\n`);
    process.exit(2);
  }
  // Before any input: no process of its uid may read its memory (/proc/PID/mem) or trace it.
  setNotDumpable();
  // Opened before the allow-list: wrapping an fd asks what it is (getsockopt, getsockname).
  channel = new Socket({ fd: CONTROL_FD, readable: true, writable: true });
  const decoder = new FrameDecoder(MAX_INIT_FRAME, (payload) => onMessage(JSON.parse(payload.toString('utf8')) as InitToHost));
  channel.on('data', (chunk: Buffer) => {
    const bad = decoder.push(chunk);
    if (bad !== undefined) {
      process.stderr.write(`host: control channel from init broken: ${bad.message}\n`);
      process.exit(70);
    }
  });
  // init is gone (or closed the channel): so are we.
  channel.on('end', () => process.exit(0));
  channel.on('close', () => process.exit(0));
  channel.on('error', () => process.exit(0));
  if (process.env.MG_NO_SECCOMP !== '1') installAllowList('component');
  send({ type: 'hello', pid: process.pid });
}

main();
