// What an attacker with a component's uid would try: read another process's
// memory through /proc/PID/mem. Runs a small reader as `uid` (setpriv, no
// groups, no capabilities) that opens /proc/PID/mem and reads 4 KiB of the
// first readable mapping; says how many bytes it got or which error stopped it.
import { spawn } from 'node:child_process';

const READER = `
const fs = require('node:fs');
const pid = Number(process.argv[1]);
const say = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
let fd;
try { fd = fs.openSync('/proc/' + pid + '/mem', 'r'); } catch (e) { say({ ok: false, error: e.code }); }
let maps;
try { maps = fs.readFileSync('/proc/' + pid + '/maps', 'utf8'); } catch (e) { say({ ok: false, error: 'maps: ' + e.code }); }
const buf = Buffer.alloc(4096);
for (const line of maps.split('\\n')) {
  const m = /^([0-9a-f]+)-[0-9a-f]+ r/.exec(line);
  if (m === null) continue;
  const at = parseInt(m[1], 16);
  if (!Number.isSafeInteger(at)) continue;
  try { const n = fs.readSync(fd, buf, 0, buf.length, at); if (n > 0) say({ ok: true, bytes: n }); } catch { /* next mapping */ }
}
say({ ok: false, error: 'no mapping read' });
`;

export interface MemRead {
  ok: boolean;
  bytes: number;
  error?: string;
}

/** Try, as `uid` (gid the same, no groups), to read process `pid`'s memory. Needs root. */
export function readMemAs(uid: number, pid: number): Promise<MemRead> {
  return new Promise((resolve, reject) => {
    const c = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--', process.execPath, '-e', READER, String(pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 10000);
    c.on('error', reject);
    c.on('close', () => {
      clearTimeout(t);
      try {
        const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as { ok: boolean; bytes?: number; error?: string };
        resolve({ ok: r.ok, bytes: r.bytes ?? 0, error: r.error });
      } catch {
        reject(new Error(`the memory reader said nothing useful: ${out} ${err}`));
      }
    });
  });
}
