// The component types init knows: where their code is, which device
// capabilities they need, which session ports they accept, and how their own
// config section is validated before anything starts.
import { parseRouterConfig } from './router/config.ts';

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
}

export const componentTypes: Record<string, ComponentType> = {
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
    requiredPorts: (config) => Object.keys((config as { domains: Record<string, unknown> }).domains),
    validate: (config, name, file, path) => {
      parseRouterConfig(config, name, { file, path });
    },
  },
};
