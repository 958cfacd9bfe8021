// What a reload may change: init re-reads the whole config file (every
// component's section validated, as at start), then applies only changed
// `config` sections of components whose type supports it. Devices, sessions,
// components themselves and the sandbox hold live resources: a change there
// needs a restart, and the reload is refused with the reason. A component
// type's prepared section counts too: the files a section names (the
// monitor's rule files) are read again, and a changed file is a change.
import type { ComponentSpec, GatewayConfig } from './config.ts';

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof Map) return [...x.entries()];
    if (x instanceof Set) return [...x.values()];
    return x;
  });
}

function withoutConfig(c: ComponentSpec): Record<string, unknown> {
  const { config: _config, ...rest } = c;
  return rest;
}

/** Why `next` cannot be applied to a running gateway started from `cur` (undefined: it can). */
export function topologyChange(cur: GatewayConfig, next: GatewayConfig): string | undefined {
  const { components: cc, file: _f1, ...curRest } = cur;
  const { components: nc, file: _f2, ...nextRest } = next;
  for (const key of Object.keys({ ...curRest, ...nextRest }) as (keyof typeof curRest)[]) {
    if (stable(curRest[key]) !== stable(nextRest[key])) {
      return `${String(key)} changed: a reload applies only components' config sections; restart the gateway to change ${String(key)}`;
    }
  }
  if (cc.length !== nc.length || cc.some((c, i) => c.name !== nc[i].name)) {
    return 'the list of components changed: a reload applies only components\' config sections; restart the gateway';
  }
  for (let i = 0; i < cc.length; i++) {
    if (stable(withoutConfig(cc[i])) !== stable(withoutConfig(nc[i]))) {
      return `${cc[i].path} changed outside its config section: a reload applies only components' config sections; restart the gateway`;
    }
  }
  return undefined;
}

/**
 * Indexes of the components whose config section differs. With `prepared`:
 * also those whose prepared section (ComponentType.prepare: e.g. the
 * monitor's with its rule files' text, read again now) differs from the one
 * in force (`inForce(i)`, undefined when unknown), so an edited rule file is a
 * change though the config file is not.
 */
export function changedComponents(cur: GatewayConfig, next: GatewayConfig,
  prepared?: { inForce: (i: number) => unknown; next: readonly unknown[] }): number[] {
  const out: number[] = [];
  cur.components.forEach((c, i) => {
    if (stable(c.config) !== stable(next.components[i].config)) out.push(i);
    else if (prepared !== undefined) {
      const now = prepared.inForce(i);
      if (now !== undefined && stable(now) !== stable(prepared.next[i])) out.push(i);
    }
  });
  return out;
}

export interface ReloadResult {
  ok: boolean;
  /** Names of the components whose new config is in force. */
  changed: string[];
  message: string;
}
