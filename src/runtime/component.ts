// The contract between a component and the runtime that hosts it. The same
// component code runs whatever its isolation (process, thread, inline): the
// host builds a ComponentEnv from what init granted and calls the factory.
import type { Counters } from './counters.ts';
import type { Entrypoint } from './entrypoint.ts';
import type { SessionEnd } from '../session/types.ts';
import type { Tracer } from '../trace/tracer.ts';
import { ConfigFileError, parsePath, Reader, type Path } from '../config/reader.ts';

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ComponentEnv {
  /** The instance name from the config (e.g. "drv-lan"). */
  readonly name: string;
  /** The component's own `config` section from the gateway config, already parsed from YAML. */
  readonly config: unknown;
  /** Where the config came from, for error messages: file and path of this section. */
  readonly configSource: { file: string; path: string };
  /** Session ends granted by init, by port name. */
  readonly sessions: ReadonlyMap<string, SessionEnd>;
  /** Other capabilities granted by init, by name (e.g. "tap" -> fd). */
  readonly fds: Readonly<Record<string, number>>;
  /** Bytes of virtio-net header a granted link device puts before each frame (12 unless said otherwise). */
  readonly vnetHdrLen?: Readonly<Record<string, number>>;
  /** Granted link devices (capability names) that are AF_PACKET sockets rather than TAPs. */
  readonly packetLinks?: readonly string[];
  readonly ep: Entrypoint;
  readonly counters: Counters;
  readonly log: Logger;
  /** The component's tracer (its session ends record into it too); absent in tests that do not trace. */
  readonly trace?: Tracer;
}

export interface Component {
  /** Register pollables with env.ep; called once, after every session is connected. */
  start(): void;
  /** A JSON-able status for init's control API. */
  status(): Record<string, unknown>;
  /**
   * Apply a changed `config` section at run time (init's reload). Validate it
   * whole first: return why it cannot be applied (and change nothing), or
   * undefined once it is in force. With `dryRun` only say whether it could be
   * applied (init checks every component before it applies any). Components
   * without it cannot be reloaded.
   */
  reconfigure?(config: unknown, dryRun?: boolean): string | undefined;
  /**
   * Answer a read-only query from init (e.g. the monitor's "eve": EVE lines
   * after a sequence number). Returns JSON-able data; throws for an unknown query.
   */
  query?(what: string, args: unknown): unknown;
  /**
   * Carry out a command from init that changes run-time state (e.g. the
   * router's "block": blocklist a source for a while, on a monitor's alert).
   * Returns JSON-able data; throws with the reason when it refuses.
   */
  command?(what: string, args: unknown): unknown;
  /** The peer of session `name` restarted: the session was reset; drop state bound to it. */
  sessionReset?(name: string): void;
  stop?(): void;
}

export type ComponentFactory = (env: ComponentEnv) => Component;


/**
 * The config reader (src/config/reader.ts) for a component's section, which
 * sits at `source.path` in `source.file`: a Reader without a document, so its
 * errors carry no line (init, which has the document, adds it). `base` is that
 * path as keys, to extend.
 */
export class SectionReader extends Reader {
  readonly base: Path;
  constructor(source: { file: string; path: string }) {
    super(source.file);
    this.base = parsePath(source.path);
  }
}

/** One block a matcher asks for. */
export interface BlockRequest {
  /** Dotted IPv4 source address of the record. */
  ip: string;
  seconds: number;
  /** Why, for the router's status: e.g. `sid 8000003 "MICROGATE TCP XMAS scan"`. */
  reason: string;
}

/** What a component type that produces EVE records offers for block feedback (registry: eveBlock). */
export interface EveBlockMatcher {
  /** The block an EVE record (parsed JSON) asks for, or undefined. */
  match(record: unknown): BlockRequest | undefined;
  /** Is this address on the exempt list? */
  exempt(ip: string): boolean;
}

/** What init knows of a component type (the registry: src/components/registry.ts). */
export interface ComponentType {
  /** Module (relative to this folder) whose default export is a ComponentFactory. */
  module: string;
  /** Device capabilities the component must be granted (names in its `devices`). */
  devices: readonly string[];
  /** Device capabilities it may also be granted; requiredDevices says when its config needs them. */
  optionalDevices?: readonly string[];
  /** Of optionalDevices, those its config needs (e.g. conn-sync's `pair` needs "pair-key"). */
  requiredDevices?(config: unknown): string[];
  /** Session ports it accepts; undefined: any. */
  ports?: readonly string[];
  /** Ports that must be connected, derived from its config. */
  requiredPorts?(config: unknown): string[];
  /** Validate the component's config section (at `path` in `file`); throws a ConfigFileError naming the path (init adds the line). */
  validate?(config: unknown, name: string, file: string, path: string): void;
  /**
   * init's part before start: the config section the component receives (e.g.
   * with the text of files it names, which the component cannot read itself).
   */
  prepare?(config: unknown): unknown;
  /**
   * The component produces EVE records (Component.query("eve")): init collects
   * them, serves them at GET /alerts and appends them to this file (undefined: memory only).
   */
  eveLog?(config: unknown): string | undefined;
  /**
   * Block feedback: which of its EVE records make init have the router
   * blocklist their source (undefined: none). The router is the peer of the
   * component's `mirror` session.
   */
  eveBlock?(config: unknown): EveBlockMatcher | undefined;
  /**
   * An HA pair's sync holder (conn-sync with `pair`): the port whose session
   * peer is the router whose role init sets (src/init/ha.ts); undefined: not one.
   */
  haRouterPort?(config: unknown): string | undefined;
  /** Isolations it may run with; undefined: any. (The keystore must be a process of its own.) */
  isolations?: readonly ('process' | 'thread' | 'inline')[];
}
