// init's part of an HA pair (issue 19): the role of this gateway. The pair is
// configured when a component type says its config makes it an HA sync
// holder (ComponentType.haRouterPort: conn-sync with `pair`); the router is
// the peer of that port's session. Roles change only here, from the control
// API (`POST /ha/role`, `microgate ha role`, keepalived's notify scripts):
// never from a session, so neither conn-sync nor the peer gateway can make
// this router forward.
//
// Becoming master: init reads its router's config hash and the peer's (from
// the last status block conn-sync heard) and refuses on a mismatch unless
// forced (the two would forward under different policies); then it sets the
// router's role (gratuitous ARP, forwarding) and conn-sync's (send the table).
// A restarted router or conn-sync starts as backup: init sets the role it
// holds again as soon as the component runs (reapply). `GET /ha` reports role,
// since when, transitions, the last takeover and the pair link as conn-sync sees it.
import type { GatewayConfig } from './config.ts';

export type HaRole = 'master' | 'backup';

export interface HaDeps {
  command(component: string, what: string, args: unknown, timeoutMs?: number): Promise<{ result?: unknown; error?: string }>;
  /** Each running component's status, by name. */
  statuses(): Promise<Map<string, Record<string, unknown>>>;
  log(line: string): void;
}

export interface HaOutcome {
  status: number;
  code: string;
  message: string;
  ha?: Record<string, unknown>;
}

interface Takeover {
  at: string;
  from: HaRole;
  to: HaRole;
  forced: boolean;
  ms: number;
}

export class HaControl {
  readonly router: string;
  readonly connSync: string;
  readonly #deps: HaDeps;
  #role: HaRole = 'backup';
  #since = Date.now();
  #transitions = 0;
  #last: Takeover | undefined;
  #lastError: string | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(router: string, connSync: string, deps: HaDeps) {
    this.router = router;
    this.connSync = connSync;
    this.#deps = deps;
  }

  /** The pair in this config: the sync holder and its router, or undefined (no HA). */
  static find(config: GatewayConfig, deps: HaDeps): HaControl | undefined {
    for (const s of config.components) {
      const port = config.catalog.componentTypes[s.type].haRouterPort?.(s.config);
      if (port === undefined) continue;
      const sess = config.sessions.find((x) => (x.a.component === s.name && x.a.port === port) || (x.b.component === s.name && x.b.port === port));
      if (sess === undefined) continue; // the config check requires it
      const router = sess.a.component === s.name ? sess.b.component : sess.a.component;
      return new HaControl(router, s.name, deps);
    }
    return undefined;
  }

  get role(): HaRole {
    return this.#role;
  }

  /** Set the role (one change at a time). Master: refused on a config hash mismatch with the peer unless forced. */
  setRole(role: HaRole, force = false): Promise<HaOutcome> {
    const run = this.#busy.then(() => this.#setRole(role, force));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #setRole(role: HaRole, force: boolean): Promise<HaOutcome> {
    const t0 = performance.now();
    const st = await this.#deps.statuses();
    const own = st.get(this.router)?.configHash;
    const ownHash = typeof own === 'string' ? own : undefined;
    const peerHash = peerConfigHash(st.get(this.connSync));
    if (role === 'master' && !force && ownHash !== undefined && peerHash !== '' && !ownHash.startsWith(`sha256:${peerHash}`)) {
      const message = `refused: the peer runs another router config (this ${ownHash.slice(0, 7 + 16)}..., the peer sha256:${peerHash.slice(0, 16)}...); make them equal, or force the takeover`;
      this.#deps.log(`init: HA: becoming master ${message}`);
      return { status: 409, code: 'MG_HA_CONFIG_MISMATCH', message };
    }
    const from = this.#role;
    // The router first: a master's conn-sync sends what its router holds.
    const r = await this.#deps.command(this.router, 'role', { role });
    if (r.error !== undefined) return this.#failed(`${this.router}: ${r.error}`);
    const c = await this.#deps.command(this.connSync, 'role', ownHash === undefined ? { role } : { role, configHash: ownHash });
    if (c.error !== undefined) return this.#failed(`${this.connSync}: ${c.error}`);
    this.#lastError = undefined;
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    if (from !== role) {
      this.#role = role;
      this.#since = Date.now();
      this.#transitions++;
      this.#last = { at: new Date(this.#since).toISOString(), from, to: role, forced: force, ms };
      this.#deps.log(`init: HA: ${from} -> ${role}${force ? ' (forced)' : ''} in ${ms} ms`);
    }
    return { status: 200, code: 'MG_OK', message: `${role}${from === role ? ' (unchanged)' : ''}`, ha: await this.status() };
  }

  #failed(why: string): HaOutcome {
    this.#lastError = why;
    this.#deps.log(`init: HA: role change failed: ${why}`);
    return { status: 502, code: 'MG_HA_COMPONENT', message: why };
  }

  /** After the router or conn-sync (re)started: give it the role init holds (it starts as backup). */
  async reapply(component?: string): Promise<void> {
    if (component !== undefined && component !== this.router && component !== this.connSync) return;
    const st = await this.#deps.statuses();
    const own = st.get(this.router)?.configHash;
    const args = typeof own === 'string' ? { role: this.#role, configHash: own } : { role: this.#role };
    for (const name of component === undefined ? [this.router, this.connSync] : [component]) {
      const r = await this.#deps.command(name, 'role', name === this.router ? { role: this.#role } : args);
      if (r.error !== undefined) {
        this.#lastError = `${name}: ${r.error}`;
        this.#deps.log(`init: HA: could not set ${name}'s role ${this.#role} again: ${r.error}`);
      }
    }
  }

  /** For GET /ha and `microgate ha status`. */
  async status(): Promise<Record<string, unknown>> {
    const st = await this.#deps.statuses();
    const router = st.get(this.router);
    const cs = st.get(this.connSync);
    const own = typeof router?.configHash === 'string' ? router.configHash : null;
    const peerHash = peerConfigHash(cs);
    const routerHa = (router?.ha ?? null) as { role?: string } | null;
    return {
      role: this.#role,
      sinceMs: Date.now() - this.#since,
      transitions: this.#transitions,
      lastTakeover: this.#last ?? null,
      lastError: this.#lastError ?? null,
      router: { name: this.router, role: routerHa?.role ?? null, configHash: own },
      connSync: { name: this.connSync, entries: cs?.entries ?? null, pair: cs?.pair ?? null },
      configMatch: own === null || peerHash === '' ? null : own.startsWith(`sha256:${peerHash}`),
    };
  }
}

/** The peer's config hash prefix (hex) as conn-sync last heard it, or ''. */
function peerConfigHash(cs: Record<string, unknown> | undefined): string {
  const pair = cs?.pair as { peerStatus?: { configHash?: unknown } | null } | undefined;
  const h = pair?.peerStatus?.configHash;
  return typeof h === 'string' && /^[0-9a-f]*$/.test(h) ? h : '';
}
