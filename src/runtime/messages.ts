// Messages between init and a component host over the control channel (a
// socket at CONTROL_FD, length-prefixed JSON frames: channel.ts; init checks
// every message a host sends: src/init/host-messages.ts). Everything a component is granted arrives in `bootstrap`; fds
// are inherited at spawn, the message only names them.
import type { SessionGrant } from '../session/types.ts';
import type { TraceReply, TraceRequest, TraceSettings } from '../trace/protocol.ts';
import type { FaultKind, HostileAttack } from './fault-inject.ts';

export interface ComponentGrant {
  name: string;
  type: string;
  isolation: 'process' | 'thread' | 'inline';
  module: string;
  config: unknown;
  configSource: { file: string; path: string };
  sessions: SessionGrant[];
  fds: Record<string, number>;
  /** Bytes of virtio-net header on each link device's frames (12 for TAP; 10 or 12 for a packet socket), by capability name. */
  vnetHdrLen?: Record<string, number>;
  /** Capability names whose fd is an AF_PACKET socket (device `kind: packet`), not a TAP: the driver may use recvmmsg/sendmmsg on it. */
  packetLinks?: string[];
  /** Tracing settings (config `trace:`); default DEFAULT_TRACE_SETTINGS. */
  trace?: TraceSettings;
  /** Polling budget of the loop that runs this component, ns (config `scheduling.spin-us`); default 0. */
  spinNs?: number;
}

export type InitToHost =
  | { type: 'bootstrap'; components: ComponentGrant[] }
  | { type: 'status'; id: number }
  | { type: 'session-reset'; id: number; component: string; session: string }
  | { type: 'reconfigure'; id: number; component: string; config: unknown; dryRun: boolean }
  | { type: 'trace'; id: number; req: TraceRequest }
  | { type: 'query'; id: number; component: string; what: string; args: unknown }
  | { type: 'command'; id: number; component: string; what: string; args: unknown }
  /** Fault injection (config debug.fault-injection, checked by init): carry out `kind` on the component's thread. */
  | { type: 'fault'; id: number; component: string; kind: FaultKind; attack?: HostileAttack }
  | { type: 'ping' }
  | { type: 'stop' };

export type HostToInit =
  | { type: 'hello'; pid: number }
  | { type: 'pong' }
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'status'; id: number; components: ComponentReport[] }
  | { type: 'session-reset-done'; id: number; error?: string }
  | { type: 'reconfigure-done'; id: number; error?: string }
  | { type: 'trace'; id: number; reply: TraceReply }
  | { type: 'query-result'; id: number; result?: unknown; error?: string }
  | { type: 'command-result'; id: number; result?: unknown; error?: string }
  | { type: 'fault-done'; id: number; error?: string };

export interface ComponentReport {
  name: string;
  status: Record<string, unknown>;
  counters: Record<string, number>;
  sessions: Record<string, Record<string, number>>;
  loop: { turns: number; sleeps: number; idleNs: string; busyNs: string; yields: number };
  /** Resident memory of the component's process: init adds it from /proc (a component reads no path). */
  rssBytes?: number;
}

/** fd number of the control channel in a component host (stdio index of 'ipc'). */
export const CONTROL_FD = 3;
/** First fd number of inherited capabilities in a component host. */
export const FIRST_CAP_FD = 4;
