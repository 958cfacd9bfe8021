// init's watch over `kind: packet` links while the gateway runs. Every tick it
// asks the kernel (rtnetlink, in the link's own namespace) for the link's
// flags: set up and with a carrier is "up"; without a carrier (cable out, the
// veth peer down) or set down is "down"; not there any more (deleted, e.g. with
// its veth peer) is "gone". A gone link is looked for in its home namespace
// every tick; when an interface of its name is back (a new ifindex), init
// confines it again and opens a new socket (packet-link.ts reattach), and the
// driver is restarted holding the new socket (init.ts): the driver is granted
// nothing new, it gets its link fd at spawn as always.
//
// Each change is logged, counted (link.down, link.up, link.reattached,
// link.reattach-failed) and shown in /status: a driver whose link is not up is
// "degraded" with the reason. The watch itself never throws: a failing probe
// is a "down" with the error as its reason.
import type { LinkFlags } from '../sys/netlink.ts';

export type LinkState = 'up' | 'down' | 'gone';

/** What the watch needs of a packet link (packet-link.ts PacketLink). */
export interface WatchedLink {
  ifname: string;
  probe(): LinkFlags | undefined;
  backHome(): boolean;
}

export interface LinkCounts {
  down: number;
  up: number;
  reattached: number;
  reattachFailed: number;
}

export interface LinkHealth {
  device: string;
  ifname: string;
  state: LinkState;
  /** Why it is not up (empty when up). */
  reason: string;
  ifindex: number;
  /** When the state last changed (ISO time). */
  since: string;
  counts: LinkCounts;
}

export interface LinkWatchHooks {
  log: (line: string) => void;
  /**
   * An interface of the gone link's name is back home: confine it and hand the
   * driver its new socket. Throws when that fails (it is tried again next tick
   * while the interface is there, logged once per distinct error).
   */
  reattach: (device: string) => void;
}

interface Entry {
  device: string;
  link: WatchedLink;
  health: LinkHealth;
  lastError: string;
}

export class LinkWatch {
  #entries = new Map<string, Entry>();
  #hooks: LinkWatchHooks;
  #timer: NodeJS.Timeout | undefined;
  #now: () => Date;

  constructor(hooks: LinkWatchHooks, now: () => Date = () => new Date()) {
    this.#hooks = hooks;
    this.#now = now;
  }

  /** Watch `link` (device name as in the config); its state is read at once. */
  add(device: string, link: WatchedLink): void {
    const e: Entry = {
      device,
      link,
      health: { device, ifname: link.ifname, state: 'up', reason: '', ifindex: 0, since: this.#now().toISOString(), counts: { down: 0, up: 0, reattached: 0, reattachFailed: 0 } },
      lastError: '',
    };
    this.#entries.set(device, e);
    const [state, reason, ifindex] = this.#read(e);
    e.health.ifindex = ifindex;
    if (state !== 'up') this.#change(e, state, reason);
  }

  /** Poll every `ms` (the timer does not keep init alive). */
  start(ms: number): void {
    this.stop();
    this.#timer = setInterval(() => this.tick(), ms);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look at every link: state changes, and reattaching the gone ones that are back. */
  tick(): void {
    for (const e of this.#entries.values()) {
      const [state, reason, ifindex] = this.#read(e);
      if (state === 'gone' && e.health.state === 'gone') {
        this.#tryReattach(e);
        continue;
      }
      if (state !== 'gone') e.health.ifindex = ifindex;
      if (state !== e.health.state || (state === 'down' && reason !== e.health.reason)) this.#change(e, state, reason);
      if (state === 'gone') this.#tryReattach(e);
    }
  }

  health(device: string): LinkHealth | undefined {
    const h = this.#entries.get(device)?.health;
    return h === undefined ? undefined : { ...h, counts: { ...h.counts } };
  }

  all(): LinkHealth[] {
    return [...this.#entries.keys()].map((d) => this.health(d)!);
  }

  #read(e: Entry): [LinkState, string, number] {
    let f: LinkFlags | undefined;
    try {
      f = e.link.probe();
    } catch (err) {
      return ['down', `cannot read the link's state: ${(err as Error).message}`, e.health.ifindex];
    }
    if (f === undefined) return ['gone', 'the interface was deleted; waiting for one of its name to come back', 0];
    if (!f.up) return ['down', 'the interface is set down', f.ifindex];
    if (!f.lowerUp) return ['down', 'no carrier (cable out, or the peer is down)', f.ifindex];
    return ['up', '', f.ifindex];
  }

  #change(e: Entry, state: LinkState, reason: string): void {
    const h = e.health;
    const was = h.state;
    if (state === 'up') h.counts.up++;
    else if (was === 'up') h.counts.down++;
    h.state = state;
    h.reason = reason;
    h.since = this.#now().toISOString();
    this.#hooks.log(state === 'up'
      ? `init: device ${e.device}: interface ${h.ifname} is up again (ifindex ${h.ifindex}): forwarding`
      : `init: device ${e.device}: interface ${h.ifname} ${state === 'gone' ? 'is gone' : 'is down'}: ${reason}; its driver is degraded`);
  }

  #tryReattach(e: Entry): void {
    let back: boolean;
    try {
      back = e.link.backHome();
    } catch (err) {
      this.#once(e, `init: device ${e.device}: cannot look for interface ${e.health.ifname}: ${(err as Error).message}`);
      return;
    }
    if (!back) return;
    try {
      this.#hooks.reattach(e.device);
    } catch (err) {
      e.health.counts.reattachFailed++;
      e.health.reason = `an interface ${e.health.ifname} is back but cannot be attached: ${(err as Error).message}`;
      this.#once(e, `init: device ${e.device}: ${e.health.reason}`);
      return;
    }
    e.lastError = '';
    e.health.counts.reattached++;
    const [state, reason, ifindex] = this.#read(e);
    e.health.ifindex = ifindex;
    this.#hooks.log(`init: device ${e.device}: interface ${e.health.ifname} is back (ifindex ${ifindex}): reattached`);
    // A fresh veth is up at once; a physical port may take a moment to find its carrier.
    this.#change(e, state === 'gone' ? 'down' : state, state === 'gone' ? 'reattached, but gone again' : reason);
  }

  /** Log a repeated failure once, until it changes. */
  #once(e: Entry, line: string): void {
    if (e.lastError === line) return;
    e.lastError = line;
    this.#hooks.log(line);
  }
}
