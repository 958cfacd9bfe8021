// The gateway configuration: YAML in, a validated GatewayConfig out.
//
// Every error names the file, the line, the path inside the document and what
// was expected, e.g.
//   gateway.yaml:14: components[1].isolation: expected one of process, thread, inline (got "proces")
// Defaults are stated once, here, and documented in docs/CONFIG.md.
import { ConfigFileError, fmtPath, got, parsePath, readConfigText, Reader, type Obj } from '../config/reader.ts';
import { parseYaml } from '../config/yaml.ts';

export { ConfigFileError, fmtPath, parsePath, Reader };
import type { Catalog } from './service-kind.ts';
import { TRACE_MODES } from '../trace/tracer.ts';
import { DEFAULT_TRACE_SETTINGS } from '../trace/protocol.ts';
import type { TraceSettings } from '../trace/protocol.ts';
import { rangeProblem } from './uid-check.ts';
import { parseServices, RESTART_POLICIES, type RestartPolicy, type ServiceSpec } from './service-config.ts';

export { RESTART_POLICIES, type RestartPolicy };

export type Isolation = 'process' | 'thread' | 'inline';
export const ISOLATIONS: readonly Isolation[] = ['process', 'thread', 'inline'];
export type SessionTransport = 'shm' | 'socket';

export interface TapDeviceSpec {
  name: string;
  /** tap: init creates a TAP device; packet: init opens an AF_PACKET socket on an existing interface. */
  kind: 'tap' | 'packet';
  ifname: string;
  /** tap: move the device into this network namespace once created (it becomes that host's NIC).
   *  packet: the namespace the existing interface is in (default: init's). */
  netns: string | undefined;
  /** virtio-net header with TSO/GSO and checksum offload. */
  offload: boolean;
  /** packet: the virtio-net header length to ask for (12, falling back to 10 on kernels before 6.2; 10 forces the classic one). */
  vnetHdr: 10 | 12;
  /** packet: an interface with host addresses is refused (default) or attached with a warning (the move drops them). */
  hostAddresses: 'warn' | 'refuse';
  /** tap: once created (and moved), make it a port of this bridge (in its namespace) and set it up; an HA pair's shared segments. */
  bridge?: string;
  path: string;
}

/**
 * A file init opens read-only (as root) and hands to one component as an fd:
 * the component reads it without any right to the path (e.g. the keystore's
 * private key). init never reads it.
 */
export interface FileDeviceSpec {
  name: string;
  kind: 'file';
  /** Absolute path; must be a regular file not readable by group or others. */
  filePath: string;
  path: string;
}

export interface ComponentSpec {
  name: string;
  type: string;
  isolation: Isolation;
  /** Capability name inside the component -> device name in `devices`. */
  devices: Record<string, string>;
  config: unknown;
  /** When init restarts it: always (default), on-failure (not after a clean exit 0), never (fail closed). */
  restart: RestartPolicy;
  /** Memory limit of its process (cgroup), MiB; undefined: only the V8 heap limit. */
  memoryMb: number | undefined;
  /** Heartbeat interval, ms; a component that misses 5 in a row is killed and restarted. 0: off. */
  heartbeatMs: number;
  /** Its loop's polling budget, µs, instead of `scheduling.spin-us` (e.g. the drivers only); undefined: that. */
  spinUs: number | undefined;
  path: string;
  index: number;
}

/** Config `debug:`: aids for testing the gateway itself, all off by default. */
export interface DebugSettings {
  /** Accept `POST /components/NAME/fault` on the control API (src/init/fault.ts). */
  faultInjection: boolean;
}


export interface SessionEndpoint {
  component: string;
  port: string;
}

export interface SessionSpec {
  a: SessionEndpoint;
  b: SessionEndpoint;
  transport: SessionTransport;
  slots: number;
  slotSize: number;
  path: string;
}

export interface GatewayConfig {
  file: string;
  /** The component types and service kinds it was validated against (init is handed them with it). */
  catalog: Catalog;
  control: ControlSettings;
  /** The reserved uid range uidBase .. uidBase + uidCount - 1: components, the shared host and services run as uids of it. */
  sandbox: { uidBase: number; uidCount: number; maxOldSpaceMb: number };
  /** How component loops wait for work (config `scheduling:`); absent means the defaults. */
  scheduling?: SchedulingSettings;
  /** Tracing at start (config `trace:`); absent means DEFAULT_TRACE_SETTINGS. */
  trace?: TraceSettings;
  /** Debugging aids (config `debug:`); absent means all off. */
  debug?: DebugSettings;
  devices: Map<string, TapDeviceSpec>;
  /** Devices of kind `file` (same namespace of names as `devices`); absent means none. */
  files?: Map<string, FileDeviceSpec>;
  components: ComponentSpec[];
  sessions: SessionSpec[];
  /** Programs init supervises besides the components (config `services`, service-config.ts); absent means none. */
  services?: ServiceSpec[];
}

/** Config `scheduling:` (docs/CONFIG.md, docs/PERFORMANCE.md "Polling budget"). */
export interface SchedulingSettings {
  /**
   * Polling budget of every component loop, microseconds: after work, a loop
   * polls this long (yielding the CPU between polls) before it sleeps. `auto`:
   * init measures what waking a sleeping thread costs on this machine at start
   * and uses that. 0: sleep as soon as there is no work.
   */
  spinUs: number | 'auto';
}

/** The largest polling budget the config accepts, microseconds. */
export const MAX_SPIN_US = 10_000;

/** Where init's control API listens and who may use it (config `control:`, docs/CONFIG.md). */
export interface ControlSettings {
  /** The Unix socket (its folder root-only). */
  socket: string;
  /** Members of this group (name or gid) may use the socket besides root. */
  adminGroup?: string;
  /** A loopback TCP listener, only when configured; it needs the bearer token in `tokenFile`. */
  tcp?: { host: string; port: number; tokenFile: string };
}

export const DEFAULTS = {
  /** The control socket of `microgate run` when the config names none (a lab's: /run/microgate/labs/NAME/control/control.sock). */
  controlSocket: '/run/microgate/init/control.sock',
  // 66000-66063: above useradd's (1000-60000) and systemd's dynamic users
  // (61184-65519), below the subordinate ranges (100000 and up), clear of 65534.
  uidBase: 66000,
  uidCount: 64,
  maxOldSpaceMb: 256,
  transport: 'shm' as SessionTransport,
  slots: 256,
  // 64 KiB GSO frame + Ethernet header + virtio_net_hdr, rounded up.
  slotSize: 65536 + 512,
  heartbeatMs: 1000,
  spinUs: 0 as number | 'auto',
};

const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Load and validate a gateway config file. Throws ConfigFileError. */
export function loadConfig(file: string, catalog: Catalog): GatewayConfig {
  return parseConfig(readConfigText(file), file, catalog);
}

export function parseConfig(text: string, file: string, catalog: Catalog): GatewayConfig {
  const { componentTypes } = catalog;
  const doc = parseYaml(text, file);
  const value = doc.value;
  const r: Reader = doc.r; // annotated: the never-returning r.fail() then narrows
  const root = r.obj(value, [], ['control', 'sandbox', 'scheduling', 'trace', 'debug', 'devices', 'components', 'sessions', 'services']);

  const control: ControlSettings = { socket: DEFAULTS.controlSocket };
  if (root.control !== undefined) {
    const c = r.obj(root.control, ['control'], ['socket', 'admin-group', 'listen', 'token-file']);
    if (c.socket !== undefined) {
      control.socket = r.str(c.socket, ['control', 'socket'], /^\/(?:[A-Za-z0-9._-]+\/)+[A-Za-z0-9._-]+$/, 'an absolute path of a socket in a folder of its own, like /run/microgate/init/control.sock');
      if (control.socket.split('/').includes('..') || control.socket.length > 100) r.fail(['control', 'socket'], 'expected an absolute path without ".." of at most 100 characters (a Unix socket path is limited to 107 bytes)');
    }
    if (c['admin-group'] !== undefined) {
      const g = typeof c['admin-group'] === 'number' ? String(c['admin-group']) : c['admin-group'];
      control.adminGroup = r.str(g, ['control', 'admin-group'], /^(?:[a-z_][a-z0-9_-]{0,31}|[1-9]\d{0,9})$/, 'a group name or a numeric gid (not 0: root may always)');
    }
    if (c.listen !== undefined) {
      const s = r.str(c.listen, ['control', 'listen'], /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/, 'a loopback address and port like 127.0.0.1:7460');
      const i = s.lastIndexOf(':');
      const port = r.int(Number(s.slice(i + 1)), ['control', 'listen'], 0, 65535);
      if (c['token-file'] === undefined) r.fail(['control', 'token-file'], 'expected a root-only file (0600) holding the bearer token: the TCP listener (control.listen) is refused without one');
      const tokenFile = r.str(c['token-file'], ['control', 'token-file'], /^\/[^\0]*$/, 'an absolute file path');
      control.tcp = { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port, tokenFile };
    } else if (c['token-file'] !== undefined) {
      r.fail(['control', 'token-file'], 'expected absent: a token file is used only with a TCP listener (control.listen)');
    }
  }

  const sandbox = { uidBase: DEFAULTS.uidBase, uidCount: DEFAULTS.uidCount, maxOldSpaceMb: DEFAULTS.maxOldSpaceMb };
  if (root.sandbox !== undefined) {
    const s = r.obj(root.sandbox, ['sandbox'], ['uid-base', 'uid-count', 'max-old-space-mb']);
    if (s['uid-base'] !== undefined) sandbox.uidBase = r.int(s['uid-base'], ['sandbox', 'uid-base'], 1000, 2 ** 31 - 1024);
    if (s['uid-count'] !== undefined) sandbox.uidCount = r.int(s['uid-count'], ['sandbox', 'uid-count'], 2, 65536);
    const bad = rangeProblem(sandbox.uidBase, sandbox.uidBase + sandbox.uidCount - 1);
    if (bad !== undefined) r.fail(['sandbox', s['uid-count'] !== undefined ? 'uid-count' : 'uid-base'], `a uid range of its own (${bad})`);
    if (s['max-old-space-mb'] !== undefined) sandbox.maxOldSpaceMb = r.int(s['max-old-space-mb'], ['sandbox', 'max-old-space-mb'], 32, 16384);
  }

  const trace: TraceSettings = { ...DEFAULT_TRACE_SETTINGS };
  if (root.trace !== undefined) {
    const t = r.obj(root.trace, ['trace'], ['mode', 'ring-events', 'sample']);
    if (t.mode !== undefined) trace.mode = r.oneOf(t.mode, ['trace', 'mode'], TRACE_MODES);
    if (t['ring-events'] !== undefined) trace.ringEvents = r.int(t['ring-events'], ['trace', 'ring-events'], 16, 1 << 24);
    if (t.sample !== undefined) {
      trace.sample = r.int(t.sample, ['trace', 'sample'], 1, 1024);
      if ((trace.sample & (trace.sample - 1)) !== 0) r.fail(['trace', 'sample'], `a power of two: 1, 2, 4, ... 1024 (got ${trace.sample})`);
    }
  }

  const scheduling: SchedulingSettings = { spinUs: DEFAULTS.spinUs };
  if (root.scheduling !== undefined) {
    const sc = r.obj(root.scheduling, ['scheduling'], ['spin-us']);
    if (sc['spin-us'] !== undefined) {
      const v = sc['spin-us'];
      if (v !== 'auto' && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_SPIN_US)) {
        r.fail(['scheduling', 'spin-us'], `expected auto or an integer from 0 to ${MAX_SPIN_US} (microseconds)${got(v)}`);
      }
      scheduling.spinUs = v as number | 'auto';
    }
  }

  const debug: DebugSettings = { faultInjection: false };
  if (root.debug !== undefined) {
    const d = r.obj(root.debug, ['debug'], ['fault-injection']);
    if (d['fault-injection'] !== undefined) debug.faultInjection = r.bool(d['fault-injection'], ['debug', 'fault-injection']);
  }

  const devices = new Map<string, TapDeviceSpec>();
  const files = new Map<string, FileDeviceSpec>();
  if (root.devices !== undefined) {
    const ds = r.obj(root.devices, ['devices'], Object.keys((root.devices ?? {}) as Obj));
    for (const [name, v] of Object.entries(ds)) {
      const p = ['devices', name];
      r.str(name, p, NAME_RE, 'a device name of lower-case letters, digits and -');
      if ((v as Obj | null)?.kind === 'file') {
        const f = r.obj(v, p, ['kind', 'path']);
        const filePath = r.str(f.path, [...p, 'path'], /^\/[^\0]*$/, 'an absolute file path');
        files.set(name, { name, kind: 'file', filePath, path: fmtPath(p) });
        continue;
      }
      const d = r.obj(v, p, ['kind', 'ifname', 'netns', 'offload', 'vnet-hdr', 'host-addresses', 'bridge']);
      const kind = r.oneOf(d.kind ?? 'tap', [...p, 'kind'], ['tap', 'packet', 'file'] as const);
      const ifname = r.str(d.ifname, [...p, 'ifname'], IFNAME_RE, 'a Linux interface name of at most 15 characters');
      const netns = d.netns === undefined ? undefined : r.str(d.netns, [...p, 'netns'], NETNS_RE, 'a network namespace name');
      const offload = d.offload === undefined ? true : r.bool(d.offload, [...p, 'offload']);
      for (const other of devices.values()) {
        if (other.ifname === ifname) r.fail([...p, 'ifname'], `a unique interface name ("${ifname}" is also used by devices.${other.name})`);
      }
      if (kind === 'packet' && d.offload === false) r.fail([...p, 'offload'], 'true or absent: a packet socket always carries virtio-net headers (the interface\'s own offload settings apply)');
      let vnetHdr: 10 | 12 = 12;
      if (d['vnet-hdr'] !== undefined) {
        if (kind !== 'packet') r.fail([...p, 'vnet-hdr'], 'no vnet-hdr on a TAP device (its header is always 12 bytes)');
        vnetHdr = r.oneOf(String(d['vnet-hdr']), [...p, 'vnet-hdr'], ['10', '12'] as const) === '10' ? 10 : 12;
      }
      let hostAddresses: 'warn' | 'refuse' = 'refuse';
      if (d['host-addresses'] !== undefined) {
        if (kind !== 'packet') r.fail([...p, 'host-addresses'], 'no host-addresses on a TAP device (init creates it, without addresses)');
        hostAddresses = r.oneOf(d['host-addresses'], [...p, 'host-addresses'], ['warn', 'refuse'] as const);
      }
      let bridge: string | undefined;
      if (d.bridge !== undefined) {
        if (kind !== 'tap') r.fail([...p, 'bridge'], 'no bridge on a packet device (it is an existing interface: enslave it yourself)');
        bridge = r.str(d.bridge, [...p, 'bridge'], IFNAME_RE, 'the name of an existing bridge (in netns, if given)');
      }
      devices.set(name, { name, kind: kind === 'packet' ? 'packet' : 'tap', ifname, netns, offload, vnetHdr, hostAddresses, ...(bridge === undefined ? {} : { bridge }), path: fmtPath(p) });
    }
  }

  if (!Array.isArray(root.components) || root.components.length === 0) {
    r.fail(['components'], `expected a non-empty list of components${got(root.components)}`);
  }
  const components: ComponentSpec[] = [];
  const byName = new Map<string, ComponentSpec>();
  const usedDevices = new Map<string, string>();
  (root.components as unknown[]).forEach((v, index) => {
    const p: (string | number)[] = ['components', index];
    const c = r.obj(v, p, ['name', 'type', 'isolation', 'devices', 'config', 'restart', 'memory-mb', 'heartbeat-ms', 'spin-us']);
    const name = r.str(c.name, [...p, 'name'], NAME_RE, 'a component name of lower-case letters, digits and - (at most 32)');
    if (byName.has(name)) r.fail([...p, 'name'], `a unique name ("${name}" is used twice)`);
    const type = r.oneOf(c.type, [...p, 'type'], Object.keys(componentTypes));
    const isolation = c.isolation === undefined ? 'process' : r.oneOf(c.isolation, [...p, 'isolation'], componentTypes[type].isolations ?? ISOLATIONS);
    const devs: Record<string, string> = {};
    if (c.devices !== undefined) {
      const dv = r.obj(c.devices, [...p, 'devices'], [...componentTypes[type].devices, ...(componentTypes[type].optionalDevices ?? [])]);
      for (const [cap, dev] of Object.entries(dv)) {
        const dn = r.str(dev, [...p, 'devices', cap]);
        if (!devices.has(dn) && !files.has(dn)) r.fail([...p, 'devices', cap], `the name of a device in devices (no device "${dn}")`);
        const user = usedDevices.get(dn);
        if (user !== undefined) r.fail([...p, 'devices', cap], `a device no other component holds ("${dn}" is already granted to ${user})`);
        usedDevices.set(dn, name);
        devs[cap] = dn;
      }
    }
    for (const need of [...componentTypes[type].devices, ...(componentTypes[type].requiredDevices?.(c.config) ?? [])]) {
      if (devs[need] === undefined) r.fail([...p, 'devices', need], `a device for capability "${need}", which a ${type} needs`);
    }
    const restart = c.restart === undefined ? 'always' : r.oneOf(c.restart, [...p, 'restart'], RESTART_POLICIES);
    const memoryMb = c['memory-mb'] === undefined ? undefined : r.int(c['memory-mb'], [...p, 'memory-mb'], 64, 65536);
    const heartbeatMs = c['heartbeat-ms'] === undefined ? DEFAULTS.heartbeatMs : r.int(c['heartbeat-ms'], [...p, 'heartbeat-ms'], 0, 600000);
    if (heartbeatMs !== 0 && heartbeatMs < 100) r.fail([...p, 'heartbeat-ms'], `0 (off) or at least 100 (got ${heartbeatMs})`);
    const spinUs = c['spin-us'] === undefined ? undefined : r.int(c['spin-us'], [...p, 'spin-us'], 0, MAX_SPIN_US);
    const spec: ComponentSpec = {
      name, type, isolation, devices: devs, config: c.config ?? {}, restart, memoryMb, heartbeatMs, spinUs, path: fmtPath(p), index,
    };
    const validate = componentTypes[type].validate;
    if (validate !== undefined) {
      try {
        validate(spec.config, name, file, fmtPath([...p, 'config']));
      } catch (e) {
        // The validator had no document: the line of its path is init's to add.
        if (e instanceof ConfigFileError && e.file === file) throw e.withLine(r.line(parsePath(e.path)));
        throw e;
      }
    }
    components.push(spec);
    byName.set(name, spec);
  });

  // Every component, and the shared host, needs a uid of the range: uid-base + index, uid-base + the number of components.
  if (components.length + 1 > sandbox.uidCount) {
    r.fail(['sandbox', 'uid-count'], `at least ${components.length + 1} (a uid for each of the ${components.length} components and one for the shared host; got ${sandbox.uidCount})`);
  }
  const services = parseServices(r, root.services, {
    serviceKinds: catalog.serviceKinds,
    file, componentNames: components.map((c) => c.name), restartPolicies: RESTART_POLICIES,
    componentUids: { first: sandbox.uidBase, last: sandbox.uidBase + components.length },
    range: { first: sandbox.uidBase, last: sandbox.uidBase + sandbox.uidCount - 1 },
  });

  const sessions: SessionSpec[] = [];
  const usedPorts = new Map<string, string>();
  const sessionList = root.sessions === undefined ? [] : root.sessions;
  if (!Array.isArray(sessionList)) r.fail(['sessions'], `expected a list of sessions${got(root.sessions)}`);
  (sessionList as unknown[]).forEach((v, i) => {
    const p: (string | number)[] = ['sessions', i];
    const s = r.obj(v, p, ['between', 'transport', 'slots', 'slot-size']);
    if (!Array.isArray(s.between) || s.between.length !== 2) {
      r.fail([...p, 'between'], `expected two endpoints like [drv-lan.nic, router.lan]${got(s.between)}`);
    }
    const ends = (s.between as unknown[]).map((e, k) => {
      const ep = [...p, 'between', k];
      const t = r.str(e, ep, /^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/, 'an endpoint COMPONENT.PORT like router.lan');
      const [component, port] = t.split('.');
      const spec = byName.get(component);
      if (spec === undefined) r.fail(ep, `the name of a component (no component "${component}")`);
      const ports = componentTypes[spec.type].ports;
      if (ports !== undefined && !ports.includes(port)) r.fail(ep, `a port of ${spec.type}: one of ${ports.join(', ')}`);
      if (usedPorts.has(t)) r.fail(ep, `a port used by one session only ("${t}" is also in ${usedPorts.get(t)})`);
      usedPorts.set(t, fmtPath(p));
      return { component, port };
    });
    if (ends[0].component === ends[1].component) r.fail([...p, 'between'], 'two different components');
    const transport = s.transport === undefined ? DEFAULTS.transport : r.oneOf(s.transport, [...p, 'transport'], ['shm', 'socket'] as const);
    const slots = s.slots === undefined ? DEFAULTS.slots : r.int(s.slots, [...p, 'slots'], 2, 65536);
    if ((slots & (slots - 1)) !== 0) r.fail([...p, 'slots'], `a power of two${got(slots)}`);
    const slotSize = s['slot-size'] === undefined ? DEFAULTS.slotSize : r.int(s['slot-size'], [...p, 'slot-size'], 2048, 1 << 20);
    sessions.push({ a: ends[0], b: ends[1], transport, slots, slotSize, path: fmtPath(p) });
  });

  // Every port a component type requires must be connected.
  for (const c of components) {
    for (const port of componentTypes[c.type].requiredPorts?.(c.config) ?? []) {
      if (!usedPorts.has(`${c.name}.${port}`)) {
        r.fail(['sessions'], `a session for ${c.name}.${port} (the ${c.type} "${c.name}" needs it)`);
      }
    }
  }

  return { file, catalog, control, sandbox, scheduling, trace, debug, devices, files, components, sessions, services };
}
