// The file gateway as a service init supervises (config `services`, kind
// file-gateway): its config file, the sandboxed command of launch.ts, its
// grants (servicePermissions), the health endpoint GET /healthz on its HTTPS
// listener, its sockets (the listeners and the storage server), and its audit
// log, which init counts by event and result for GET /metrics.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { AUDIT_FILE } from './audit.ts';
import type { ServiceEndpoint, ServiceKind } from '../../init/service-kind.ts';
import type { FileGatewayConfig } from './config.ts';
import { loadFileGatewayConfig } from './config.ts';
import { serviceCommand, servicePermissions } from './launch.ts';

export const HEALTH_PATH = '/healthz';

/** The storage server's host and port (WebDAV), none for a local folder. */
function upstream(cfg: FileGatewayConfig): ServiceEndpoint[] {
  if (cfg.storage.kind !== 'webdav') return [];
  const u = new URL(cfg.storage.url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return [{ host, port: u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 }];
}

/** Where init reaches a listener from inside the service's namespace (a wildcard address: loopback). */
function reach(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

export const fileGatewayService: ServiceKind = {
  load: (file) => loadFileGatewayConfig(file),
  problem(config) {
    const cfg = config as FileGatewayConfig;
    if (cfg.listen.port === 0) return 'listen: a fixed port (init health-checks the HTTPS listener; port 0 picks any)';
    if (isIP(cfg.listen.host) === 0) return 'listen: an IP address';
    return undefined;
  },
  plan(config, opts) {
    const cfg = config as FileGatewayConfig;
    const perms = servicePermissions(cfg);
    return {
      command: serviceCommand({ config: cfg, uid: opts.uid, netns: opts.netns, cgroupProcs: opts.cgroupProcs }),
      grants: { read: perms.read, write: perms.write, net: true },
      health: { host: reach(cfg.listen.host), port: cfg.listen.port, path: HEALTH_PATH, tls: true },
      listen: [cfg.listen, ...(cfg.redirectListen === undefined ? [] : [cfg.redirectListen])],
      upstream: upstream(cfg),
      events: join(cfg.stateDir, AUDIT_FILE),
    };
  },
};
