// The `services` section of the gateway config: programs init starts,
// supervises and audits besides the components, each in the network
// namespace it serves in (for now the file gateway, kind file-gateway).
// Errors name the file, the line, the path and what was expected, like the
// rest of config.ts; the service's own config file is loaded and validated
// here too, so a broken one stops `microgate run` before anything starts.
import { statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ServiceKind } from './service-kind.ts';
import type { Reader } from '../config/reader.ts';

/** When init restarts a component or service: always, on-failure (not after a clean exit 0), never (fail closed). */
export type RestartPolicy = 'always' | 'on-failure' | 'never';
export const RESTART_POLICIES: readonly RestartPolicy[] = ['always', 'on-failure', 'never'];

export interface ServiceSpec {
  name: string;
  /** A key of serviceKinds (src/init/service-kind.ts). */
  kind: string;
  /** The service's own config file, absolute (relative paths: to the gateway config's folder). */
  configFile: string;
  /** The network namespace it serves in (a name under /run/netns). */
  netns: string;
  uid: number;
  /** Memory limit of its process (cgroup), MiB; undefined: only its V8 heap limit. */
  memoryMb: number | undefined;
  restart: RestartPolicy;
  /** Health check interval, ms; 5 failed in a row: killed and restarted. 0: off. */
  heartbeatMs: number;
  path: string;
}

export const SERVICE_DEFAULTS = { heartbeatMs: 1000 };

const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/;
const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const KEYS = ['name', 'kind', 'config', 'netns', 'uid', 'memory-mb', 'restart', 'heartbeat-ms'] as const;

export interface ServiceContext {
  file: string;
  /** Names of the components (a service may not share one). */
  componentNames: string[];
  /** uids the components run as (uid-base + i, and + n for the shared host). */
  componentUids: { first: number; last: number };
  /** The reserved range (sandbox.uid-base, uid-count): a service's uid must be in it. */
  range: { first: number; last: number };
  serviceKinds: Readonly<Record<string, ServiceKind>>;
  restartPolicies: readonly RestartPolicy[];
}

export function parseServices(r: Reader, value: unknown, ctx: ServiceContext): ServiceSpec[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) r.fail(['services'], `expected a list of services${value === null ? ' (got null)' : ''}`);
  const out: ServiceSpec[] = [];
  (value as unknown[]).forEach((v, i) => {
    const p: (string | number)[] = ['services', i];
    const s = r.obj(v, p, KEYS);
    const name = r.str(s.name, [...p, 'name'], NAME_RE, 'a service name of lower-case letters, digits and - (at most 32)');
    if (ctx.componentNames.includes(name)) r.fail([...p, 'name'], `a name no component has ("${name}" is a component)`);
    if (out.some((o) => o.name === name)) r.fail([...p, 'name'], `a unique name ("${name}" is used twice)`);
    const kind = r.oneOf(s.kind, [...p, 'kind'], Object.keys(ctx.serviceKinds));
    const given = r.str(s.config, [...p, 'config'], /^[^\0]+$/, `the path of the ${kind}'s config file`);
    const configFile = isAbsolute(given) ? given : resolve(dirname(resolve(ctx.file)), given);
    let regular = false;
    try {
      regular = statSync(configFile).isFile();
    } catch (e) {
      r.fail([...p, 'config'], `a readable ${kind} config file: ${configFile}: ${(e as Error).message}`);
    }
    if (!regular) r.fail([...p, 'config'], `a regular file (${configFile} is not one)`);
    let cfg: unknown;
    try {
      cfg = ctx.serviceKinds[kind].load(configFile);
    } catch (e) {
      r.fail([...p, 'config'], `a valid ${kind} config: ${(e as Error).message}`);
    }
    const why = ctx.serviceKinds[kind].problem?.(cfg);
    if (why !== undefined) r.fail([...p, 'config'], `a ${kind} config init can supervise: ${configFile}: ${why}`);
    const netns = r.str(s.netns, [...p, 'netns'], NETNS_RE, 'the name of the network namespace it serves in');
    const uid = r.int(s.uid, [...p, 'uid'], 1000, 2 ** 31 - 2);
    if (uid < ctx.range.first || uid > ctx.range.last) {
      r.fail([...p, 'uid'], `a uid of the sandbox's reserved range ${ctx.range.first}-${ctx.range.last} (sandbox.uid-base, uid-count; got ${uid})`);
    }
    if (uid >= ctx.componentUids.first && uid <= ctx.componentUids.last) {
      r.fail([...p, 'uid'], `a uid no component runs as (components use ${ctx.componentUids.first}-${ctx.componentUids.last}: sandbox.uid-base + their index)`);
    }
    const twin = out.find((o) => o.uid === uid);
    if (twin !== undefined) r.fail([...p, 'uid'], `a uid of its own (${uid} is also ${twin.path}.uid)`);
    const memoryMb = s['memory-mb'] === undefined ? undefined : r.int(s['memory-mb'], [...p, 'memory-mb'], 64, 65536);
    const restart = s.restart === undefined ? 'always' : r.oneOf(s.restart, [...p, 'restart'], ctx.restartPolicies);
    const heartbeatMs = s['heartbeat-ms'] === undefined ? SERVICE_DEFAULTS.heartbeatMs : r.int(s['heartbeat-ms'], [...p, 'heartbeat-ms'], 0, 600000);
    if (heartbeatMs !== 0 && heartbeatMs < 100) r.fail([...p, 'heartbeat-ms'], `0 (off) or at least 100 (got ${heartbeatMs})`);
    out.push({ name, kind, configFile, netns, uid, memoryMb, restart, heartbeatMs, path: `services[${i}]` });
  });
  return out;
}
