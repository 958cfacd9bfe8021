// The arguments of init's `role` command (the HA pair, issue 19), to the
// router and to conn-sync alike: { role: "master" | "backup", configHash? }
// (configHash: the router's "sha256:<hex>", which conn-sync's heartbeats
// carry so each side sees whether the peer runs the same policy). Checked
// whole: a bad one is refused with the reason, never half applied.
export interface RoleCommand {
  role: 'master' | 'backup';
  configHash: string | undefined;
}

export function parseRoleCommand(args: unknown): RoleCommand {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new Error('role: expected arguments { role: master | backup, configHash? }');
  const a = args as Record<string, unknown>;
  for (const k of Object.keys(a)) if (k !== 'role' && k !== 'configHash') throw new Error(`role: unknown argument "${k}" (expected role, configHash)`);
  if (a.role !== 'master' && a.role !== 'backup') throw new Error(`role: role: expected master or backup (got ${JSON.stringify(a.role) ?? 'nothing'})`);
  const h = a.configHash;
  if (h !== undefined && (typeof h !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(h))) throw new Error('role: configHash: expected "sha256:" and 64 hex digits');
  return { role: a.role, configHash: h as string | undefined };
}
