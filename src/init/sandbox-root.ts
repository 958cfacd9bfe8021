// The root filesystem of a sandboxed component: a read-only tmpfs holding
// exactly what it needs, nothing else of the machine.
//
//   /run/microgate/code/{src,node_modules,package.json}   the project's code (read-only binds)
//   the ELF interpreter and shared libraries of node, koffi's addon and setpriv
//   /etc/ld.so.cache                                       (dlopen of libc by koffi)
//   /usr/bin/setpriv                                       (drops the uid and capabilities after chroot)
//   /dev/null, /dev/zero, /dev/random, /dev/urandom
//   /proc                                                  a new procfs, hidepid=invisible: only its own processes
//   the paths its grant names (read-only, or read-write)   e.g. the file gateway's data and state folders
//   /etc/hosts, /etc/resolv.conf, /etc/nsswitch.conf       only for services on a real network
//
// Paths keep their host names, symlinks included (on a merged-/usr system
// /lib64 -> usr/lib64), so the dynamic loader finds everything where ldd said.
// The layout is computed here (root, before anything starts); the sandbox
// script (sandbox.ts) builds it in the component's private mount namespace.
import { execFileSync } from 'node:child_process';
import { lstatSync, readlinkSync, realpathSync, statSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const SANDBOX_ROOT = '/run/microgate/sandbox-root';

export interface RootLayout {
  /** Directories to create (absolute, inside the new root), parents first. */
  dirs: string[];
  /** Symlinks to create: [path, target as read from the host]. */
  links: [string, string][];
  /** Host files or folders to bind at the same path: [path, writable]. */
  binds: [string, boolean][];
}

/** Shared objects a program or library needs, as `ldd` prints them (absolute paths). */
export function sharedObjects(file: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return []; // statically linked, or not an ELF file
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m !== null) libs.push(m[1]);
  }
  return libs;
}

class Builder {
  readonly dirs = new Set<string>();
  readonly links = new Map<string, string>();
  readonly binds = new Map<string, boolean>();

  /** Make `p` (and the symlinks on the way) exist in the layout; bind the file or folder it names. */
  add(p: string, writable = false, depth = 0): void {
    if (depth > 16) throw new Error(`sandbox root: too many symlinks resolving ${p}`);
    const parts = resolve(p).split('/').filter((x) => x !== '');
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      const next = `${cur}/${parts[i]}`;
      const st = lstatSync(next);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(next);
        this.links.set(next, target);
        const rest = parts.slice(i + 1).join('/');
        this.add(resolve(dirname(next), target, rest), writable, depth + 1);
        return;
      }
      if (i === parts.length - 1) {
        if (!this.binds.has(next) || writable) this.binds.set(next, writable);
      } else {
        this.dirs.add(next);
      }
      cur = next;
    }
  }

  layout(): RootLayout {
    const dirs = [...this.dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
    return { dirs, links: [...this.links], binds: [...this.binds] };
  }
}

const cache = new Map<string, string[]>();
function objectsOf(file: string): string[] {
  let libs = cache.get(file);
  if (libs === undefined) {
    libs = sharedObjects(file);
    cache.set(file, libs);
  }
  return libs;
}

export interface RootSpec {
  /** The node binary the component runs, its host path (its libraries are bound too). */
  node: string;
  /** Host folder of the project: programs inside it come with the code, not as binds. */
  codeRoot: string;
  /** Native addons it loads (koffi's), whose libraries are bound too. */
  addons: string[];
  /** The setpriv binary (run after chroot). */
  setpriv: string;
  /** Host paths bound read-only / read-write besides the code. */
  read: string[];
  write: string[];
  /** The name service files (a service on a real network resolves names). */
  resolver: boolean;
}

/** What the new root holds besides the code, /dev and /proc (which sandbox.ts mounts itself). */
export function rootLayout(spec: RootSpec): RootLayout {
  const b = new Builder();
  const programs = [spec.node, spec.setpriv, ...spec.addons];
  for (const prog of programs) {
    if (!realpathSync(prog).startsWith(`${spec.codeRoot}/`)) b.add(prog);
    for (const lib of objectsOf(prog)) b.add(lib);
  }
  if (existsSync('/etc/ld.so.cache')) b.add('/etc/ld.so.cache');
  if (spec.resolver) {
    for (const f of ['/etc/hosts', '/etc/resolv.conf', '/etc/nsswitch.conf', '/etc/host.conf', '/etc/gai.conf']) {
      if (existsSync(f)) b.add(realpathSync(f));
    }
  }
  for (const p of spec.read) b.add(p.replace(/\/+$/, '') || '/', false);
  for (const p of spec.write) b.add(p.replace(/\/+$/, '') || '/', true);
  const l = b.layout();
  // Parents before what is bound inside them.
  l.binds.sort((x, y) => x[0].split('/').length - y[0].split('/').length);
  return l;
}

/** Whether a bound host path is a folder (mkdir) or a file (touch) as mount point. */
export function isFolder(p: string): boolean {
  return statSync(p).isDirectory();
}
