// The contract of a service kind init can supervise besides components (config `services`,
// src/init/service-config.ts): programs that serve on a host's network (the
// file gateway in the dmz namespace) rather than on Nic sessions. For each
// kind: how its own config file is loaded and validated, and, for one valid
// config, the sandboxed command that starts it, the grants it runs with, its
// health endpoint and the TCP endpoints it may hold open (for the audit).
import type { ComponentType } from '../runtime/component.ts';

export interface ServiceEndpoint {
  /** An IP address; 0.0.0.0 or :: (listening): any address. Upstreams may name a host: then any address on that port. */
  host: string;
  port: number;
}

export interface ServiceLaunchOptions {
  uid: number;
  /** The network namespace it serves in (a name under /run/netns). */
  netns: string;
  /** A cgroup.procs file the process joins before node starts (memory limit). */
  cgroupProcs: string | undefined;
}

export interface ServicePlan {
  /** Run as root; execs all the way down, so the spawned PID is the service's. */
  command: { file: string; args: string[] };
  /** Exactly what Node's permission model grants it (besides reading its code). */
  grants: { read: string[]; write: string[]; net: boolean };
  /** An unauthenticated endpoint that answers GET with 200 while it serves; undefined: none. */
  health: { host: string; port: number; path: string; tls: boolean } | undefined;
  /** Addresses it listens on: its listening and accepted sockets. */
  listen: ServiceEndpoint[];
  /** Servers it connects to (its storage). */
  upstream: ServiceEndpoint[];
  /**
   * A JSON-lines log the service appends to, one record per request with
   * string fields `event` and `result` (the file gateway's audit.jsonl); init
   * counts its records for GET /metrics (src/init/event-log-counts.ts). Undefined: none.
   */
  events?: string;
}

export interface ServiceKind {
  /** Load and validate the service's own config file; throws a ConfigFileError naming that file. */
  load(file: string): unknown;
  /** What keeps init from supervising a valid config (e.g. no fixed port to health-check); undefined: nothing. */
  problem?(config: unknown): string | undefined;
  plan(config: unknown, opts: ServiceLaunchOptions): ServicePlan;
}


/** What init is handed at start: the component types and service kinds of this gateway (src/cli/catalog.ts). */
export interface Catalog {
  componentTypes: Readonly<Record<string, ComponentType>>;
  serviceKinds: Readonly<Record<string, ServiceKind>>;
}
