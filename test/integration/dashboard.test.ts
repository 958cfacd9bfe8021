// The live dashboard in a real browser (issue 16): Debian's chromium driven by
// playwright-core, through `microgate dashboard`'s relay, against a lab with
// the monitor and a remote site. The page loads with every component running
// (no script error, nothing blocked by its CSP), the lan's throughput number
// moves while iperf3 runs, the tunnel peer and an alert show up, and a
// component killed by its PID shows as restarting, then running with one
// restart. Without the relay's key nothing is served. One lab for the file.
// MG_DASHBOARD_SCREENSHOT=FILE saves a screenshot once the iperf3 run, the
// tunnel peer and the alert are on the page
// (docs/dashboard.png was made so).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import { RHOST } from '../../src/lab/remote-site.ts';
import { startDashboardRelay, type DashboardRelay } from '../../src/cli/dashboard.ts';
import { canRunLabs, iperf3Pair, nsExec, ping } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const NAME = `d${Math.random().toString(36).slice(2, 8)}`;
const skip = !canRunLabs() ? 'needs root' : !existsSync(CHROMIUM) ? 'needs the Debian chromium package' : false;
let lab: LabInfo;
let relay: DashboardRelay | undefined;
let socket = '';
let up = false;

before(async () => {
  if (skip !== false) return;
  up = true;
  lab = await labUp({ name: NAME, gateway: 'microgate', microgate: { monitor: {} }, remoteSite: {} });
  const st = await readLabState(NAME);
  assert.ok(st?.controlSocket !== undefined);
  socket = st.controlSocket;
  relay = await startDashboardRelay({ socket }, { interval: 250 });
});

after(async () => {
  await relay?.close();
  if (up) await labDown(NAME);
});

/** Parse "12.3 Mbit/s" back to bits per second. */
function bits(s: string): number {
  const m = /^([\d.]+) ([kMGT]?)bit\/s$/.exec(s.trim());
  if (m === null) return Number.NaN;
  return Number(m[1]) * ({ '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 } as Record<string, number>)[m[2]];
}

test('the dashboard in chromium: loads, numbers move with iperf3, peer and alert show, a killed component shows restarting', { skip }, async () => {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 60_000 });
  try {
    // Without the key: nothing.
    const stranger = await browser.newPage();
    const r = await stranger.goto(`http://127.0.0.1:${relay!.port}/dashboard`);
    assert.equal(r?.status(), 401);
    await stranger.close();

    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    await page.goto(relay!.url);
    assert.match(page.url(), /\/dashboard\?interval=250$/);
    assert.equal(await page.title(), 'microgate dashboard');
    const state = (c: string) => page.locator(`#components tr[data-key="${c}"] td[data-name="state"]`);
    for (const c of ['drv-lan', 'drv-wan', 'drv-dmz', 'router', 'monitor', 'tunnel', 'keystore']) {
      await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'running', `#components tr[data-key="${c}"] td[data-name="state"]`, { timeout: 15_000 });
    }

    // Numbers move while iperf3 runs (lan -> wan, 4 s).
    const lanIn = page.locator('#rates tr[data-key="lan"] td[data-name="in"]');
    const before = bits(await lanIn.textContent() ?? '');
    assert.ok(before < 1e6, `lan in before iperf3: ${before}`);
    const run = iperf3Pair({ serverNetns: lab.hosts.wan.netns, serverIp: lab.hosts.wan.ip, clientNetns: lab.hosts.lan.netns, seconds: 4 });
    let peak = 0;
    const deadline = Date.now() + 20_000;
    while (peak < 1e6 && Date.now() < deadline) {
      peak = Math.max(peak, bits(await lanIn.textContent() ?? '') || 0);
      await page.waitForTimeout(100);
    }
    assert.ok(peak >= 1e6, `lan in during iperf3: ${peak} bit/s`);
    assert.ok(await page.locator('#chart canvas').count() >= 1, 'the uPlot chart is drawn');
    const screenshot = process.env.MG_DASHBOARD_SCREENSHOT;
    const result = await run;
    assert.ok(result.bitsPerSecond > 0);

    // The tunnel peer's handshake and an alert (a land attack, sid 8000001) appear.
    assert.ok((await ping(lab.hosts.lan.netns, RHOST, { count: 2, timeoutS: 3 })).ok, 'ping through the tunnel');
    await page.waitForFunction(() => /s ago$/.test(document.querySelector('#peers tbody tr td:nth-child(2)')?.textContent ?? ''), undefined, { timeout: 10_000 });
    const land = "from scapy.all import IP, TCP, send, conf\nconf.verb = 0\nsend(IP(src='198.19.0.1', dst='198.19.0.1')/TCP(sport=139, dport=139, flags='S'))\n";
    assert.equal((await nsExec(lab.hosts.wan.netns, '/usr/bin/python3', ['-c', land], { timeoutMs: 30_000 })).code, 0);
    await page.waitForFunction(() => [...document.querySelectorAll('#alerts tbody tr td:nth-child(2)')].some((td) => td.textContent === '8000001'), undefined, { timeout: 10_000 });
    if (screenshot !== undefined) await page.screenshot({ path: screenshot, fullPage: true });

    // Kill drv-dmz by its PID: the page shows it restarting, then running with one restart.
    const st = await (await fetchStatus()).components.find((c) => c.name === 'drv-dmz');
    assert.ok(st !== undefined && st.pid > 0);
    const seen = page.waitForFunction(() => {
      const t = document.querySelector('#components tr[data-key="drv-dmz"] td[data-name="state"]')?.textContent;
      return t === 'restarting' || t === 'starting';
    }, undefined, { timeout: 15_000, polling: 20 });
    process.kill(st.pid, 'SIGKILL');
    await seen;
    await page.waitForFunction(() => document.querySelector('#components tr[data-key="drv-dmz"] td[data-name="restarts"]')?.textContent === '1'
      && document.querySelector('#components tr[data-key="drv-dmz"] td[data-name="state"]')?.textContent === 'running', undefined, { timeout: 20_000 });
    assert.equal(await state('router').textContent(), 'running');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

async function fetchStatus(): Promise<{ components: { name: string; pid: number }[] }> {
  const { ControlClient } = await import('../../src/sys/control-client.ts');
  return new ControlClient({ socket }).get('/status');
}
