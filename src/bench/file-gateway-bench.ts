// `microgate file-gateway bench --lab NAME`: the download rate of one file
// through the whole chain (wan host -> gateway's port forward -> the file
// gateway in the dmz -> the NAS in the lan, TLS on both legs) against
// fetching the same file from the NAS directly: from the dmz host (the
// service's own upstream leg, through the gateway) and on the lan host
// itself (no gateway). curl does every download; each is run `rounds` times
// and the best and median are reported. Also the service's peak memory.
import { randomBytes } from 'node:crypto';
import { chownSync, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { once } from 'node:events';
import { loadFileGatewayConfig } from '../services/file-gateway/config.ts';
import { createPublication } from '../services/file-gateway/publications.ts';
import { readPublications, withDataLock, writePublications } from '../services/file-gateway/admin.ts';

export interface BenchRow {
  path: string;
  what: string;
  mbPerS: number[];
}

export interface BenchResult {
  lab: string;
  sizeMb: number;
  rows: BenchRow[];
  servicePeakRssMb: number | undefined;
  serviceRssBeforeMb: number | undefined;
}

function nsCurl(netns: string, args: string[]): number {
  const outp = execFileSync('ip', ['netns', 'exec', netns, 'curl', '-s', '-S', '-f', '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', ...args], { encoding: 'utf8', timeout: 300_000 });
  const [size, speed] = outp.trim().split(' ').map(Number);
  if (!(size > 0)) throw new Error(`curl ${args.join(' ')}: nothing downloaded`);
  return speed / 1e6;
}

function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) / 1024;
  } catch {
    return undefined;
  }
}

export async function fileGatewayBench(lab: string, sizeMb: number, rounds = 3): Promise<BenchResult> {
  const { labControl, readLabState } = await import('../lab/lab.ts');
  const { initService } = await import('../lab/file-gateway-lab.ts');
  const st = await readLabState(lab);
  const f = st?.plan.fileGateway;
  if (st === null || f === undefined) throw new Error(`lab ${lab} does not exist or was built without --file-gateway`);
  const cfg = loadFileGatewayConfig(f.configFile);
  const name = `bench-${randomBytes(4).toString('hex')}.bin`;
  const file = join(f.nas.shareDir, name);
  const out = createWriteStream(file, { mode: 0o644 });
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < sizeMb; i++) if (!out.write(chunk)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
  const www = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  chownSync(file, www, -1);
  const { publication, token } = createPublication({ path: name, publicLink: true, expiresInMs: 3_600_000 });
  withDataLock(cfg, () => {
    const p = readPublications(cfg);
    p.publications.push(publication);
    writePublications(cfg, p);
  });
  // Under microgate init runs the service (its PID changes when it restarts); with the Linux gateway the lab does.
  const svc = st.gateway === 'microgate' ? (await initService(labControl(st)))?.pid : st.processes.find((p) => p.name === 'file-gateway')?.pid;
  try {
    await new Promise((r) => setTimeout(r, cfg.reloadMs * 2 + 200));
    const nasPw = readFileSync(join(f.etcDir, 'nas.password'), 'utf8').trim();
    const caNas = join(f.etcDir, 'nas-ca.crt');
    const wan = st.plan.hosts.wan.netns;
    const rssBefore = svc === undefined ? undefined : rssMb(svc, 'VmRSS');
    const rows: BenchRow[] = [
      { path: `wan -> ${f.publicIp}:443 -> dmz file gateway -> NAS`, what: 'through the whole chain (public link)', mbPerS: [] },
      { path: `dmz -> ${f.nas.ip}:${f.nas.port} (NAS)`, what: "the NAS directly from the dmz host (the service's upstream leg)", mbPerS: [] },
      { path: `lan host -> NAS (local)`, what: 'the NAS on its own host (no gateway)', mbPerS: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      rows[0].mbPerS.push(nsCurl(wan, ['-k', `${f.publicUrl}/p/${token}/${name}`]));
      rows[1].mbPerS.push(nsCurl(f.service.netns, ['--cacert', caNas, '-u', `${f.nas.readUser}:${nasPw}`, `${f.nas.url}${name}`]));
      rows[2].mbPerS.push(nsCurl(f.nas.netns, ['--cacert', caNas, '-u', `${f.nas.readUser}:${nasPw}`, `${f.nas.url}${name}`]));
    }
    return { lab, sizeMb, rows, serviceRssBeforeMb: rssBefore, servicePeakRssMb: svc === undefined ? undefined : rssMb(svc, 'VmHWM') };
  } finally {
    withDataLock(cfg, () => {
      const p = readPublications(cfg);
      p.publications = p.publications.filter((x) => x.id !== publication.id);
      writePublications(cfg, p);
    });
    rmSync(file, { force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export function formatBench(r: BenchResult): string {
  const chain = median(r.rows[0].mbPerS);
  const lines = [`file gateway bench, lab ${r.lab}: one ${r.sizeMb} MiB file, curl, ${r.rows[0].mbPerS.length} rounds (MB/s = 10^6 bytes/s)`];
  for (const row of r.rows) {
    const m = median(row.mbPerS);
    lines.push(`  ${row.path.padEnd(50)} median ${m.toFixed(0).padStart(5)} MB/s  best ${Math.max(...row.mbPerS).toFixed(0).padStart(5)} MB/s  chain/this ${(chain / m).toFixed(2)}  (${row.what})`);
  }
  if (r.servicePeakRssMb !== undefined) lines.push(`  file gateway memory: RSS ${r.serviceRssBeforeMb?.toFixed(0)} MiB before, peak ${r.servicePeakRssMb.toFixed(0)} MiB (the file is ${r.sizeMb} MiB)`);
  return lines.join('\n');
}
