// The component types init knows: where their code is, which device
// capabilities they need, which session ports they accept, and how their own
// config section is validated before anything starts.
import { monitorBlockMatcher, prepareMonitorConfig, validateMonitorConfig } from './monitor/config.ts';
import type { EveBlockMatcher } from '../core/block-feedback.ts';
import { parseRouterConfig } from './router/config.ts';
import { parseTunnelConfig } from './tunnel/config.ts';
import { parseKeystoreConfig } from './keystore/config.ts';

export interface ComponentType {
  /** Module (relative to this folder) whose default export is a ComponentFactory. */
  module: string;
  /** Device capabilities the component must be granted (names in its `devices`). */
  devices: readonly string[];
  /** Session ports it accepts; undefined: any. */
  ports?: readonly string[];
  /** Ports that must be connected, derived from its config. */
  requiredPorts?(config: unknown): string[];
  /** Validate the component's config section; throws an error naming file:line and path. */
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
  /** Isolations it may run with; undefined: any. (The keystore must be a process of its own.) */
  isolations?: readonly ('process' | 'thread' | 'inline')[];
}

export const componentTypes: Record<string, ComponentType> = {
  tunnel: {
    module: './tunnel/index.ts',
    devices: [],
    ports: ['plain', 'uplink', 'keys'],
    requiredPorts: () => ['plain', 'uplink', 'keys'],
    validate: (config, name, file, path) => {
      parseTunnelConfig(config, name, { file, path });
    },
  },
  keystore: {
    module: './keystore/index.ts',
    // The private key: a `file` device init opens and grants as an fd.
    devices: ['private-key'],
    // Any port name: each session is one client (a tunnel's `keys`).
    isolations: ['process'],
    validate: (config, _name, file, path) => {
      parseKeystoreConfig(config, { file, path });
    },
  },
  'nic-driver': {
    module: './nic-driver/index.ts',
    devices: ['tap'],
    ports: ['nic'],
    requiredPorts: () => ['nic'],
  },
  router: {
    module: './router/index.ts',
    devices: [],
    // Validated before this is asked, so `domains` is a mapping.
    requiredPorts: (config) => [
      ...Object.keys((config as { domains: Record<string, unknown> }).domains),
      ...((config as { mirror?: unknown }).mirror !== undefined ? ['mirror'] : []),
    ],
    validate: (config, name, file, path) => {
      parseRouterConfig(config, name, { file, path });
    },
  },
  monitor: {
    module: './monitor/index.ts',
    devices: [],
    ports: ['mirror'],
    requiredPorts: () => ['mirror'],
    validate: (config, _name, file, path) => {
      validateMonitorConfig(config, file, path);
    },
    prepare: (config) => prepareMonitorConfig(config),
    eveLog: (config) => {
      const f = (config as { 'eve-log'?: unknown } | null)?.['eve-log'];
      return typeof f === 'string' ? f : undefined;
    },
    eveBlock: (config) => monitorBlockMatcher(config),
  },
};
