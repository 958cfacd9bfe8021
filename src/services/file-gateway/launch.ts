// How the file gateway is started deprivileged: the sandbox of
// src/init/sandbox.ts (own uid, no capabilities, no_new_privs, a read-only
// view of the code, Node's permission model; the service installs seccomp
// itself) but in the network namespace it serves on (the dmz host's) rather
// than an empty one, entered with `ip netns exec` before the sandbox starts.
// Node may read its code, its config, its data folder, its certificate and
// the storage's credentials (or the share folder), and write only its state
// folder.
import { resolve } from 'node:path';
import { ROOT, sandboxCommand } from '../../init/sandbox.ts';
import type { FileGatewayConfig } from './config.ts';

export const SERVICE_SCRIPT = resolve(ROOT, 'src/services/file-gateway/main.ts');

export interface LaunchSpec {
  config: FileGatewayConfig;
  uid: number;
  /** The network namespace to serve in; undefined: the caller's. */
  netns?: string;
  /** V8 heap limit, MiB (default 128: files are streamed, never held). */
  maxOldSpaceMb?: number;
  /** A cgroup.procs file to join before node starts (init's memory limit for the service). */
  cgroupProcs?: string;
}

const dir = (p: string): string => (p.endsWith('/') ? p : `${p}/`);

/** The paths the service may read and write under Node's permission model. */
export function servicePermissions(cfg: FileGatewayConfig): { read: string[]; write: string[] } {
  const read = [resolve(cfg.file), dir(cfg.dataDir), dir(cfg.stateDir), cfg.tls.cert, cfg.tls.key];
  if (cfg.storage.kind === 'webdav') {
    if (cfg.storage.ca !== undefined) read.push(cfg.storage.ca);
    if (cfg.storage.passwordFile !== undefined) read.push(cfg.storage.passwordFile);
  } else {
    read.push(dir(cfg.storage.root));
  }
  // A path inside a granted folder is covered by it (and the sandbox's root could not bind it inside the folder's read-only bind).
  const uniq = [...new Set(read)];
  const covered = (p: string): boolean => uniq.some((d) => d.endsWith('/') && d !== p && p.startsWith(d));
  return { read: uniq.filter((p) => !covered(p)), write: [dir(cfg.stateDir)] };
}

/** The command (run as root) that starts the service sandboxed; it execs all the way down, so its PID is the service's. */
export function serviceCommand(spec: LaunchSpec): { file: string; args: string[] } {
  const perms = servicePermissions(spec.config);
  const sb = sandboxCommand({
    uid: spec.uid,
    maxOldSpaceMb: spec.maxOldSpaceMb ?? 128,
    script: SERVICE_SCRIPT,
    keepNetwork: true,
    allowNet: true,
    allowFsRead: perms.read,
    allowFsWrite: perms.write,
    args: ['--config', resolve(spec.config.file)],
    cgroupProcs: spec.netns === undefined ? spec.cgroupProcs : undefined,
  });
  if (spec.netns === undefined) return sb;
  const inNetns = ['netns', 'exec', spec.netns, sb.file, ...sb.args];
  if (spec.cgroupProcs === undefined) return { file: 'ip', args: inNetns };
  // `ip netns exec` mounts a fresh /sys, without the cgroup tree: join the memory cgroup before it.
  return { file: '/bin/sh', args: ['-c', 'echo $$ > "$0" && exec ip "$@"', spec.cgroupProcs, ...inNetns] };
}
