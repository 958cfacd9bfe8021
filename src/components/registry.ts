// The component types of this gateway (handed to init by the CLI, src/cli/catalog.ts): where their code is, which device
// capabilities they need, which session ports they accept, and how their own
// config section is validated before anything starts.
import { monitorBlockMatcher, prepareMonitorConfig, validateMonitorConfig } from './monitor/config.ts';
import type { ComponentType } from '../runtime/component.ts';
import { parseRouterConfig } from './router/config.ts';
import { parseTunnelConfig } from './tunnel/config.ts';
import { parseKeystoreConfig } from './keystore/config.ts';
import { parseNicDriverConfig } from './nic-driver/config.ts';
import { parseConnSyncConfig } from './conn-sync/config.ts';


/** conn-sync's config names a `pair` (validated before this is asked). */
function hasPair(config: unknown): boolean {
  return config !== null && typeof config === 'object' && (config as { pair?: unknown }).pair !== undefined;
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
    validate: (config, _name, file, path) => {
      parseNicDriverConfig(config, { file, path });
    },
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
  'conn-sync': {
    module: './conn-sync/index.ts',
    // Alone no device: it only holds the router's connection records (its `router` port is the router's `sync`).
    // In an HA pair (config `pair`): the pair key (a file device) and a session `pair` to the sync link's driver.
    devices: [],
    optionalDevices: ['pair-key'],
    requiredDevices: (config) => (hasPair(config) ? ['pair-key'] : []),
    ports: ['router', 'pair'],
    requiredPorts: (config) => (hasPair(config) ? ['router', 'pair'] : ['router']),
    // In a pair init sets the role of the router at the other end of `router` (and conn-sync's own).
    haRouterPort: (config) => (hasPair(config) ? 'router' : undefined),
    validate: (config, _name, file, path) => {
      parseConnSyncConfig(config, { file, path });
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
