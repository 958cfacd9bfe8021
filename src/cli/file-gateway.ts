// `microgate users ...`, `microgate publish ...`, `microgate file-gateway ...`:
// the file gateway's admin commands. Each finds the service's config with
// --config FILE, --lab NAME (the lab's generated config), or
// $MICROGATE_FILE_GATEWAY_CONFIG, else /etc/microgate/file-gateway.yaml.
// Exit codes: 0 success, 1 failure, 2 bad usage.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { DirectoryStorage } from '../services/file-gateway/directory.ts';
import { loadFileGatewayConfig, type FileGatewayConfig } from '../services/file-gateway/config.ts';
import { DEFAULT_KDF, hashPassword } from '../services/file-gateway/kdf.ts';
import { createPublication, inactiveReason, parseDuration } from '../services/file-gateway/publications.ts';
import { openStorage } from '../services/file-gateway/open-storage.ts';
import type { Storage } from '../services/file-gateway/storage.ts';
import { passwordProblem, usernameProblem } from '../services/file-gateway/users.ts';
import { readConsumed, readPublications, readUsers, withDataLock, writePublications, writeUsers } from '../services/file-gateway/admin.ts';
import { formatSize } from '../services/file-gateway/pages.ts';

export const DEFAULT_CONFIG = '/etc/microgate/file-gateway.yaml';

class UsageError extends Error {}

const COMMON = `Config: --config FILE | --lab NAME (a lab built with --file-gateway) | $MICROGATE_FILE_GATEWAY_CONFIG | ${DEFAULT_CONFIG}`;

export const USERS_HELP = `Usage: microgate users COMMAND [--config FILE | --lab NAME]

The file gateway's own accounts (Argon2id hashes in DATA_DIR/users.json).
  add NAME [--password-stdin]      create an account (asks for the password, or reads one line from stdin)
  passwd NAME [--password-stdin]   set a new password (the user's sessions end)
  remove NAME                      delete an account (its sessions end)
  list [--json]                    the accounts
Names: 1-32 characters, a lower-case letter first, then a-z 0-9 . _ -; passwords: at least 10 characters.
${COMMON}`;

export const PUBLISH_HELP = `Usage: microgate publish COMMAND [--config FILE | --lab NAME]

Which files of the share the file gateway serves: nothing else is ever visible.
  add PATH [--users a,b] [--expires 7d] [--once] [--public-link] [--name FILE] [--no-check] [--json]
        PATH: a file, relative to the share's root. --users: only these accounts (default: every account).
        --expires: 90s, 30m, 12h, 7d, 2w (up to 366d; default never, 7d with --public-link).
        --once: gone after one download (used up when it starts). --public-link: also a link that works without an
        account until it expires (its token is printed once and stored only as a hash).
        --name: the file name downloads carry (default PATH's last segment).
        --no-check: do not look the file up in the storage first.
  list [--all] [--json]           live publications (--all: also expired and consumed ones)
  remove ID                       withdraw a publication (at once: the service re-reads the file)
${COMMON}`;

export const FILE_GATEWAY_HELP = `Usage: microgate file-gateway COMMAND

  serve --config FILE              run the service in this process (no sandbox: for a service
                                   manager that sandboxes it; the lab starts it sandboxed)
  command --config FILE --uid UID [--netns NS]
                                   print the sandboxed command line that starts it (root runs it)
  bench --lab NAME [--size-mb N]   download rate wan -> gateway -> dmz service -> NAS, against
                                   fetching the same file from the NAS directly
See src/services/file-gateway/README.md.`;

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

function parse<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(argv: string[], options: T) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, config: { type: 'string' }, lab: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function configPath(values: { config?: string | boolean; lab?: string | boolean }): Promise<{ file: string; lab: string | undefined }> {
  if (typeof values.config === 'string' && typeof values.lab === 'string') throw new UsageError('give --config or --lab, not both');
  if (typeof values.config === 'string') return { file: values.config, lab: undefined };
  if (typeof values.lab === 'string') {
    const { labStateDir, LAB_NAME_RE } = await import('../lab/lab-plan.ts');
    if (!LAB_NAME_RE.test(values.lab)) throw new UsageError(`invalid lab name ${JSON.stringify(values.lab)}`);
    const { readLabState } = await import('../lab/lab.ts');
    const st = await readLabState(values.lab);
    if (st === null) throw new Error(`no lab "${values.lab}" (see microgate lab status; lab state is readable by root only)`);
    if (st.plan.fileGateway === undefined) {
      throw new Error(`lab "${values.lab}" has no file gateway: it was built without --file-gateway (microgate lab up --name NAME --file-gateway)`);
    }
    const { labFileGatewayConfig } = await import('../lab/file-gateway-lab.ts');
    return { file: labFileGatewayConfig(labStateDir(values.lab)), lab: values.lab };
  }
  return { file: process.env.MICROGATE_FILE_GATEWAY_CONFIG ?? DEFAULT_CONFIG, lab: undefined };
}

async function loadConfig(values: { config?: string | boolean; lab?: string | boolean }): Promise<{ cfg: FileGatewayConfig; lab: string | undefined }> {
  const { file, lab } = await configPath(values);
  if (!existsSync(file)) {
    // Said plainly (not a raw ENOENT): which file was looked for, and how to name another.
    const why = typeof values.config === 'string' ? '--config' : lab !== undefined ? `lab "${lab}"'s` : process.env.MICROGATE_FILE_GATEWAY_CONFIG !== undefined ? '$MICROGATE_FILE_GATEWAY_CONFIG' : 'the default';
    throw new Error(`no file gateway config at ${file} (${why}); give --config FILE, or --lab NAME for a lab built with --file-gateway`);
  }
  return { cfg: loadFileGatewayConfig(file), lab };
}

// ---- passwords ---------------------------------------------------------------------

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(c);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split('\n')[0].replace(/\r$/, '');
}

/** Read a password from the terminal without echo. */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let pw = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(pw);
    };
    const onData = (d: Buffer): void => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') pw = pw.slice(0, -1);
        else pw += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function newPassword(fromStdin: boolean): Promise<string> {
  let pw: string;
  if (fromStdin || !process.stdin.isTTY) {
    pw = await readStdinLine();
  } else {
    pw = await promptHidden('New password: ');
    const again = await promptHidden('Again: ');
    if (again !== pw) throw new Error('the passwords differ');
  }
  const p = passwordProblem(pw);
  if (p !== undefined) throw new Error(p);
  return pw;
}

// ---- users ---------------------------------------------------------------------------

async function users(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'password-stdin': { type: 'boolean' }, json: { type: 'boolean' } });
  const [sub, name, ...extra] = positionals;
  if (values.help || sub === undefined) {
    out(USERS_HELP);
    return sub === undefined && !values.help ? 2 : 0;
  }
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const { cfg } = await loadConfig(values);
  if (sub === 'list') {
    const u = readUsers(cfg);
    const rows = Object.entries(u.users).sort(([a], [b]) => a.localeCompare(b)).map(([n, r]) => ({ name: n, created: r.created, updated: r.updated }));
    if (values.json) out(JSON.stringify(rows));
    else out(rows.length === 0 ? 'no users' : rows.map((r) => `${r.name.padEnd(20)} created ${r.created}  password set ${r.updated}`).join('\n'));
    return 0;
  }
  if (sub !== 'add' && sub !== 'passwd' && sub !== 'remove') throw new UsageError(`unknown command "${sub}" (use add, passwd, remove or list)`);
  if (name === undefined) throw new UsageError(`users ${sub} needs a NAME`);
  const bad = usernameProblem(name);
  if (bad !== undefined) throw new UsageError(bad);
  if (sub === 'remove') {
    withDataLock(cfg, () => {
      const u = readUsers(cfg);
      if (u.users[name] === undefined) throw new Error(`no user ${name}`);
      delete u.users[name];
      writeUsers(cfg, u);
    });
    out(`user ${name} removed (their sessions end within a second)`);
    return 0;
  }
  // Check first (cheap), hash, then change under the lock.
  const before = readUsers(cfg).users[name];
  if (sub === 'add' && before !== undefined) throw new Error(`user ${name} exists (use "users passwd ${name}")`);
  if (sub === 'passwd' && before === undefined) throw new Error(`no user ${name} (use "users add ${name}")`);
  const hash = await hashPassword(await newPassword(values['password-stdin'] === true), DEFAULT_KDF);
  withDataLock(cfg, () => {
    const u = readUsers(cfg);
    const now = new Date().toISOString();
    const cur = u.users[name];
    if (sub === 'add' && cur !== undefined) throw new Error(`user ${name} exists`);
    if (sub === 'passwd' && cur === undefined) throw new Error(`no user ${name}`);
    u.users[name] = { hash, created: cur?.created ?? now, updated: now };
    writeUsers(cfg, u);
  });
  out(sub === 'add' ? `user ${name} added` : `password of ${name} changed (their sessions end within a second)`);
  return 0;
}

// ---- publish ---------------------------------------------------------------------------

/** Look the file up where the admin can: the lab's share folder, or the configured storage (3 s). */
async function checkInStorage(cfg: FileGatewayConfig, lab: string | undefined, path: string): Promise<{ size: number } | 'missing' | 'unreachable'> {
  let storage: Storage;
  if (lab !== undefined) {
    const { readLabState } = await import('../lab/lab.ts');
    const st = await readLabState(lab);
    const share = st?.plan.fileGateway?.nas.shareDir;
    if (share === undefined) return 'unreachable';
    storage = new DirectoryStorage({ kind: 'directory', root: share });
  } else {
    storage = await openStorage(cfg.storage);
  }
  try {
    const info = await Promise.race([
      storage.stat(path),
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000).unref()),
    ]);
    if (info === 'timeout') return 'unreachable';
    return info === undefined ? 'missing' : { size: info.size };
  } catch {
    return 'unreachable';
  } finally {
    storage.close();
  }
}

function linkBase(cfg: FileGatewayConfig): string {
  return cfg.publicUrl ?? '';
}

async function publish(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    users: { type: 'string' }, expires: { type: 'string' }, once: { type: 'boolean' }, 'public-link': { type: 'boolean' },
    name: { type: 'string' }, 'no-check': { type: 'boolean' }, json: { type: 'boolean' }, all: { type: 'boolean' },
  });
  const [sub, arg, ...extra] = positionals;
  if (values.help || sub === undefined) {
    out(PUBLISH_HELP);
    return sub === undefined && !values.help ? 2 : 0;
  }
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const { cfg, lab } = await loadConfig(values);
  const now = Date.now();
  if (sub === 'list') {
    const pubs = readPublications(cfg).publications;
    const consumed = readConsumed(cfg);
    const rows = pubs.map((p) => ({ ...p, state: inactiveReason(p, now, consumed) ?? 'live' })).filter((p) => values.all || p.state === 'live');
    if (values.json) {
      out(JSON.stringify(rows.map(({ publicTokenHash, ...p }) => ({ ...p, publicLink: publicTokenHash !== null }))));
      return 0;
    }
    if (rows.length === 0) {
      out(values.all ? 'nothing published' : 'nothing published (live); --all shows expired and consumed ones');
      return 0;
    }
    out(rows.map((p) => [
      p.id, p.state.padEnd(8), p.path,
      `users: ${p.users.length === 0 ? 'all' : p.users.join(',')}`,
      `expires: ${p.expires ?? 'never'}`,
      ...(p.once ? ['once'] : []), ...(p.publicTokenHash !== null ? ['public link'] : []),
    ].join('  ')).join('\n'));
    return 0;
  }
  if (sub === 'remove') {
    if (arg === undefined) throw new UsageError('publish remove needs an ID (see "publish list")');
    withDataLock(cfg, () => {
      const f = readPublications(cfg);
      const i = f.publications.findIndex((p) => p.id === arg);
      if (i < 0) throw new Error(`no publication ${arg}`);
      f.publications.splice(i, 1);
      writePublications(cfg, f);
    });
    out(`publication ${arg} removed`);
    return 0;
  }
  if (sub !== 'add') throw new UsageError(`unknown command "${sub}" (use add, list or remove)`);
  if (arg === undefined) throw new UsageError('publish add needs a PATH in the share');
  let expiresInMs: number | undefined;
  if (values.expires !== undefined) {
    try {
      expiresInMs = parseDuration(values.expires);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const userList = values.users === undefined ? [] : values.users.split(',').map((s) => s.trim()).filter((s) => s !== '');
  let created;
  try {
    created = createPublication({ path: arg, name: values.name, users: userList, expiresInMs, once: values.once, publicLink: values['public-link'] }, new Date(now));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const known = readUsers(cfg).users;
  const unknown = userList.filter((u) => known[u] === undefined);
  if (unknown.length > 0) process.stderr.write(`microgate publish: warning: no account ${unknown.join(', ')} yet\n`);
  const { publication: p, token } = created;
  let size: number | undefined;
  if (!values['no-check']) {
    const found = await checkInStorage(cfg, lab, p.path);
    if (found === 'missing') throw new Error(`no file ${p.path} in the share (or it is not a regular file inside it); --no-check publishes anyway`);
    if (found === 'unreachable') process.stderr.write('microgate publish: warning: the storage is not reachable from here; the path was not checked\n');
    else size = found.size;
  }
  withDataLock(cfg, () => {
    const f = readPublications(cfg);
    f.publications.push(p);
    writePublications(cfg, f);
  });
  const base = linkBase(cfg);
  const link = `${base}/f/${p.id}/${encodeURIComponent(p.name)}`;
  const pub = token === null ? null : `${base}/p/${token}/${encodeURIComponent(p.name)}`;
  if (values.json) {
    out(JSON.stringify({ id: p.id, path: p.path, name: p.name, users: p.users, expires: p.expires, once: p.once, size: size ?? null, link, publicLink: pub }));
  } else {
    out([
      `published ${p.path}${size === undefined ? '' : ` (${formatSize(size)})`} as ${p.id}`,
      `  users    ${p.users.length === 0 ? 'every account' : p.users.join(', ')}`,
      `  expires  ${p.expires ?? 'never'}${p.once ? ', after one download' : ''}`,
      `  link     ${link}`,
      ...(pub === null ? [] : [`  public   ${pub}`, '           (shown only now: it is stored as a hash)']),
    ].join('\n'));
  }
  return 0;
}

// ---- file-gateway ----------------------------------------------------------------------

async function fileGateway(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { uid: { type: 'string' }, netns: { type: 'string' }, 'size-mb': { type: 'string' } });
  const [sub] = positionals;
  if (values.help || sub === undefined) {
    out(FILE_GATEWAY_HELP);
    return sub === undefined && !values.help ? 2 : 0;
  }
  if (sub === 'serve') {
    if (typeof values.config !== 'string') throw new UsageError('serve needs --config FILE');
    const { serve } = await import('../services/file-gateway/main.ts');
    await serve(values.config, { seccomp: false });
    await new Promise<void>(() => {}); // until a signal ends the process
    return 0;
  }
  if (sub === 'command') {
    const { cfg } = await loadConfig(values);
    const uid = Number(values.uid);
    if (!Number.isInteger(uid) || uid < 1 || uid > 0xfffffffe) throw new UsageError('command needs --uid UID (a non-root uid)');
    const { serviceCommand } = await import('../services/file-gateway/launch.ts');
    const c = serviceCommand({ config: cfg, uid, netns: values.netns });
    out([c.file, ...c.args].map((a) => (/^[A-Za-z0-9_./=:,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' '));
    return 0;
  }
  if (sub === 'bench') {
    if (typeof values.lab !== 'string') throw new UsageError('bench needs --lab NAME (a lab built with --file-gateway)');
    const sizeMb = values['size-mb'] === undefined ? 256 : Number(values['size-mb']);
    if (!Number.isInteger(sizeMb) || sizeMb < 1 || sizeMb > 8192) throw new UsageError('--size-mb: 1 to 8192');
    const { fileGatewayBench, formatBench } = await import('../bench/file-gateway-bench.ts');
    out(formatBench(await fileGatewayBench(values.lab, sizeMb)));
    return 0;
  }
  throw new UsageError(`unknown command "${sub}" (use serve, command or bench)`);
}

function wrap(name: string, help: string, fn: (argv: string[]) => Promise<number>): (argv: string[]) => Promise<number> {
  return async (argv) => {
    try {
      return await fn(argv);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`microgate ${name}: ${e.message}\n\n${help}\n`);
        return 2;
      }
      process.stderr.write(`microgate ${name}: ${(e as Error).message}\n`);
      return 1;
    }
  };
}

export const usersCommand = wrap('users', USERS_HELP, users);
export const publishCommand = wrap('publish', PUBLISH_HELP, publish);
export const fileGatewayCommand = wrap('file-gateway', FILE_GATEWAY_HELP, fileGateway);
