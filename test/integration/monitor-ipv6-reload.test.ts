// The monitor with IPv6 and a live rule reload, on a real lab (issues 15 and
// 16): ping -6 and a TCP connection over IPv6 from the lan host to the wan
// host cross microgate; rules with IPv6 addresses (and $HOME_NET, which holds
// the lab's IPv4 and IPv6 prefixes) alert, and the EVE records carry the IPv6
// addresses as Suricata prints them and the IPv6 flow. Then the rule file is
// edited in the running lab: a broken edit is refused by `microgate reload`
// (file, line, reason; the old rules keep alerting), a good one is in force
// for the next packets, and an unchanged rule keeps its hit count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labControl, labDown, labUp, readLabState, type LabInfo } from '../../src/lab/lab.ts';
import { WAN6_SUBNET } from '../../src/lab/lab-plan.ts';
import type { ControlClient } from '../../src/sys/control-client.ts';
import { canRunLabs, killChild, nsExec, ping, spawnInNetns, waitForListen } from './harness.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const NAME = `m${Math.random().toString(36).slice(2, 8)}`;
const skip = !canRunLabs();
let lab: LabInfo;
let control: ControlClient;
let dir = '';
let rulesFile = '';

const RULES_V1 = [
  `alert icmpv6 $HOME_NET any -> ${WAN6_SUBNET} any (msg:"MG TEST ping6 to the wan"; itype:128; sid:9100001; rev:1;)`,
  `alert tcp $HOME_NET any -> [${WAN6_SUBNET},!2001:db8:ff::1] 8080 (msg:"MG TEST http over IPv6"; flow:to_server,established; content:"GET /mg6"; sid:9100002; rev:1;)`,
].join('\n');
const NEW_RULE = `alert icmpv6 2001:db8:0:1::-2001:db8:0:1:ffff:ffff:ffff:ffff any -> any any (msg:"MG TEST added by reload"; itype:128; sid:9100003; rev:1;)`;

interface Eve {
  event_type: string;
  alert?: { signature_id: number };
  src_ip?: string;
  dest_ip?: string;
  proto?: string;
  dest_port?: number;
  flow?: { pkts_toserver: number; pkts_toclient: number };
}

async function events(): Promise<Eve[]> {
  return (await control.get<{ events: Eve[] }>('/alerts?since=0&fresh=1', 5000)).events;
}

/** Wait (bounded) for an EVE record that `pred` accepts. */
async function waitEve(pred: (e: Eve) => boolean, ms = 8000): Promise<Eve | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = (await events()).find(pred);
    if (hit !== undefined || Date.now() > deadline) return hit;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const alertOf = (sid: number) => (e: Eve): boolean => e.event_type === 'alert' && e.alert?.signature_id === sid;

/** An IPv6 address as Suricata's EVE prints it: eight groups of four hex digits. */
function suricata6(a: string): string {
  const [l, r] = a.split('::');
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  const groups = r === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

async function hits(sid: number): Promise<number> {
  const r = await control.get<{ components: { name: string; status: { topRules?: { sid: number; hits: number }[] } }[] }>('/components', 5000);
  return r.components.find((c) => c.name === 'monitor')?.status.topRules?.find((x) => x.sid === sid)?.hits ?? 0;
}

/** `microgate reload --lab NAME`, the CLI as a user runs it. */
function cliReload(): Promise<{ code: number; out: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'reload', '--lab', NAME], { timeout: 30_000 }, (e, out, err) => {
      res({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, out: `${out}${err}` });
    });
  });
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'mg-mon6-'));
  rulesFile = join(dir, 'local.rules');
  writeFileSync(rulesFile, `${RULES_V1}\n`);
  lab = await labUp({
    name: NAME,
    microgate: { monitor: { ruleFiles: [rulesFile], extra: { eve: { types: ['alert', 'anomaly', 'flow'] }, flow: { 'new-timeout-s': 2, 'established-timeout-s': 2, 'closed-timeout-s': 1 } } } },
  });
  const st = await readLabState(NAME);
  assert.ok(st !== null);
  control = labControl(st);
});

after(async () => {
  if (!skip) await labDown(NAME);
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('ping -6 through microgate raises an IPv6 rule\'s alert; EVE shows the IPv6 flow', { skip, timeout: 60_000 }, async () => {
  const lan6 = lab.hosts.lan.ip6;
  const wan6 = lab.hosts.wan.ip6;
  assert.ok(lan6 !== undefined && wan6 !== undefined, 'the lab has IPv6');
  assert.ok((await ping(lab.hosts.lan.netns, wan6, { count: 3, timeoutS: 2 })).ok, 'ping -6 lan -> wan');
  const a = await waitEve(alertOf(9100001));
  assert.ok(a !== undefined, JSON.stringify(await events()));
  assert.equal(a.src_ip, suricata6(lan6));
  assert.equal(a.dest_ip, suricata6(wan6));
  assert.equal(a.proto, 'IPv6-ICMP');
  // The flow record once the flow times out: both directions seen (the mirror copies both).
  const f = await waitEve((e) => e.event_type === 'flow' && e.proto === 'IPv6-ICMP' && e.src_ip === suricata6(lan6) && e.dest_ip === suricata6(wan6), 10_000);
  assert.ok(f !== undefined, 'an IPv6 flow record');
  assert.ok((f.flow?.pkts_toserver ?? 0) >= 3 && (f.flow?.pkts_toclient ?? 0) >= 3, JSON.stringify(f));
});

test('a TCP connection to an IPv6 host raises the alert of a rule with IPv6 addresses', { skip, timeout: 60_000 }, async () => {
  const wan6 = lab.hosts.wan.ip6!;
  const web = spawnInNetns(lab.hosts.wan.netns, 'python3', ['-m', 'http.server', '8080', '--bind', wan6]);
  try {
    await waitForListen(lab.hosts.wan.netns, 8080, 20_000); // python starts slowly on a loaded machine
    const c = await nsExec(lab.hosts.lan.netns, 'curl', ['-g', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://[${wan6}]:8080/mg6`], { timeoutMs: 10_000 });
    assert.equal(c.stdout, '404', c.stderr);
  } finally {
    await killChild(web);
  }
  const a = await waitEve(alertOf(9100002));
  assert.ok(a !== undefined, JSON.stringify((await events()).filter((e) => e.event_type === 'alert')));
  assert.equal(a.dest_ip, suricata6(wan6));
  assert.equal(a.dest_port, 8080);
  assert.equal(a.proto, 'TCP');
});

test('malformed IPv6 from the lan (scapy) raises the built-in IPv6 decoder alerts', { skip, timeout: 60_000 }, async () => {
  const script = `
from scapy.all import IPv6, IPv6ExtHdrRouting, ICMPv6EchoRequest, send, conf
conf.verb = 0
D = '${lab.hosts.wan.ip6!}'
send(IPv6(dst=D, plen=200) / ICMPv6EchoRequest(data=b'x' * 8))
send(IPv6(dst=D) / IPv6ExtHdrRouting(type=0, addresses=['2001:db8::1']) / ICMPv6EchoRequest())
`;
  const r = await nsExec(lab.hosts.lan.netns, '/usr/bin/python3', ['-c', script], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  for (const sid of [8000036, 8000039]) {
    const a = await waitEve(alertOf(sid));
    assert.ok(a !== undefined, `sid ${sid}: ${JSON.stringify((await events()).filter((e) => e.event_type !== 'flow'))}`);
    // A packet whose IPv6 header failed to decode has no addresses (Suricata clears them too); the RH0 one decodes.
    if (sid === 8000039) assert.equal(a.src_ip, suricata6(lab.hosts.lan.ip6!));
    else assert.equal(a.src_ip, undefined);
  }
});

test('microgate reload: a broken rule file is refused (old rules keep alerting), a good edit is in force, hit counts survive', { skip, timeout: 90_000 }, async () => {
  const wan6 = lab.hosts.wan.ip6!;
  const before1 = await hits(9100001);
  assert.ok(before1 >= 3, `sid 9100001 hits ${before1}`);
  // A broken edit: the new rule with a malformed IPv6 address on line 3.
  writeFileSync(rulesFile, `${RULES_V1}\n${NEW_RULE.replace('2001:db8:0:1::-', '2001:db8:0:1:::-')}\n`);
  const bad = await cliReload();
  assert.notEqual(bad.code, 0, bad.out);
  assert.ok(bad.out.includes(`${rulesFile}:3: sid 9100003:`) && /bad (IPv6 address|address range)/.test(bad.out), bad.out);
  assert.ok((await ping(lab.hosts.lan.netns, wan6, { count: 2, timeoutS: 2 })).ok);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok((await hits(9100001)) >= before1 + 2, 'the old rules keep running');
  assert.equal((await events()).filter(alertOf(9100003)).length, 0);
  // The good edit.
  writeFileSync(rulesFile, `${RULES_V1}\n${NEW_RULE}\n`);
  const good = await cliReload();
  assert.equal(good.code, 0, good.out);
  assert.match(good.out, /monitor/);
  const kept = await hits(9100001);
  assert.ok(kept >= before1 + 2, `sid 9100001 (unchanged) keeps its count across the reload: ${kept}`);
  assert.ok((await ping(lab.hosts.lan.netns, wan6, { count: 2, timeoutS: 2 })).ok);
  const n = await waitEve(alertOf(9100003));
  assert.ok(n !== undefined, 'the rule added by the reload alerts');
  assert.equal(n.src_ip, suricata6(lab.hosts.lan.ip6!));
  // Nothing changed: reload says so.
  const same = await cliReload();
  assert.equal(same.code, 0, same.out);
  assert.match(same.out, /no component config changed/);
});
