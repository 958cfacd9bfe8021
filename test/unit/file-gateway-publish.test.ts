// The file gateway's publication logic and request parsing: share paths
// (traversal refused at publish time), publications (IDs, tokens, expiry,
// once, users), durations, ranges and validators, download headers, the
// config file's errors, the lab's policy additions and the service's
// permissions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseName, normalizeSharePath, shareUrl } from '../../src/services/file-gateway/paths.ts';
import {
  EMPTY_CONSUMED, PublicationIndex, createPublication, inactiveReason, parseDuration, parsePublicationsFile, tokenHash, userMayRead,
} from '../../src/services/file-gateway/publications.ts';
import { ifRangeAllows, makeEtag, noneMatch, parseRange } from '../../src/services/file-gateway/range.ts';
import { contentDisposition, contentType } from '../../src/services/file-gateway/mime.ts';
import { parseFileGatewayConfig } from '../../src/services/file-gateway/config.ts';
import { servicePermissions } from '../../src/services/file-gateway/launch.ts';
import { fileGatewayPlan, withFileGatewayRouter } from '../../src/lab/file-gateway-lab.ts';
import { labRouterConfig } from '../../src/lab/lab-policy.ts';
import { LAB_UID_FIRST } from '../../src/lab/uid-alloc.ts';
import { makePlan } from '../../src/lab/lab-plan.ts';
import { parseRouterConfig } from '../../src/components/router/config.ts';

test('share paths: normalised once; "..", ".", empty segments, backslashes, control characters refused; URLs encode every segment', () => {
  assert.equal(normalizeSharePath('/docs/report.pdf'), 'docs/report.pdf');
  assert.equal(normalizeSharePath('a b/%2e%2e.txt'), 'a b/%2e%2e.txt', 'percent signs are just characters of a name');
  for (const [p, why] of [['', /empty/], ['/', /share itself/], ['../etc/passwd', /"\.\."/], ['docs/../../x', /"\.\."/], ['./a', /"\."/],
    ['a//b', /empty segment/], ['docs/', /ends in "\/"/], ['a\\..\\b', /backslash/], ['a\u0000b', /control/], ['a\nb', /control/],
    ['x'.repeat(256), /longer than 255/]] as const) {
    assert.throws(() => normalizeSharePath(p), why, JSON.stringify(p));
  }
  assert.equal(baseName('docs/report.pdf'), 'report.pdf');
  assert.equal(shareUrl('https://nas:8443/share/', 'a b/%2e%2e?.txt'), 'https://nas:8443/share/a%20b/%252e%252e%3F.txt');
});

test('publications: 128-bit IDs, hashed public tokens with a default expiry, expiry, once, per-user access; the file is validated', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const { publication: p, token } = createPublication({ path: '/docs/a.txt', users: ['bob', 'bob'], publicLink: true }, now);
  assert.match(p.id, /^[A-Za-z0-9_-]{22}$/);
  assert.match(token!, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(p.publicTokenHash, tokenHash(token!));
  assert.equal(p.expires, '2026-01-08T00:00:00.000Z', 'a public link expires after 7 days by default');
  assert.deepEqual(p.users, ['bob']);
  assert.equal(p.path, 'docs/a.txt');
  assert.equal(p.name, 'a.txt');
  const t = now.getTime();
  assert.equal(userMayRead(p, 'bob', t, EMPTY_CONSUMED), true);
  assert.equal(userMayRead(p, 'alice', t, EMPTY_CONSUMED), false);
  assert.equal(inactiveReason(p, Date.parse(p.expires!), EMPTY_CONSUMED), 'expired');
  const once = createPublication({ path: 'x', once: true }, now).publication;
  assert.equal(once.expires, null);
  assert.equal(userMayRead(once, 'anyone', t, EMPTY_CONSUMED), true, 'no users: every account');
  assert.equal(inactiveReason(once, t, { version: 1, consumed: { [once.id]: 'then' } }), 'consumed');
  const ids = new Set(Array.from({ length: 1000 }, () => createPublication({ path: 'x' }).publication.id));
  assert.equal(ids.size, 1000);
  const file = parsePublicationsFile({ version: 1, publications: [p, once] });
  const idx = new PublicationIndex(file);
  assert.equal(idx.byTokenHash.get(tokenHash(token!))?.id, p.id);
  assert.deepEqual(idx.listFor('alice', t, EMPTY_CONSUMED).map((x) => x.id), [once.id]);
  for (const [bad, why] of [
    [{ ...p, path: 'a/../b' }, /path/], [{ ...p, path: '/docs/a.txt' }, /not normalised/], [{ ...p, id: 'short' }, /id/],
    [{ ...p, expires: null }, /public link needs an expiry/], [{ ...p, users: ['Bad Name'] }, /users/], [{ ...p, name: 'a/b' }, /name/],
  ] as const) {
    assert.throws(() => parsePublicationsFile({ version: 1, publications: [bad] }), why);
  }
  assert.throws(() => parsePublicationsFile({ version: 1, publications: [p, p] }), /duplicate/);
  assert.throws(() => createPublication({ path: '../x' }), /"\.\."/);
});

test('durations', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('7d'), 7 * 86_400_000);
  assert.equal(parseDuration('2w'), 14 * 86_400_000);
  for (const bad of ['', '7', 'd', '1.5h', '-1d', '0s', '367d', '7 d']) assert.throws(() => parseDuration(bad), /invalid duration/, bad);
});

test('ranges, ETags, If-None-Match, If-Range', () => {
  assert.deepEqual(parseRange(undefined, 100), { kind: 'none' });
  assert.deepEqual(parseRange('bytes=0-9', 100), { kind: 'range', start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { kind: 'range', start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=90-500', 100), { kind: 'range', start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'range', start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-500', 100), { kind: 'range', start: 0, end: 99 });
  assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-0', 0), { kind: 'unsatisfiable' });
  for (const ignored of ['bytes=5-1', 'bytes=0-1,3-4', 'items=0-1', 'bytes=-', 'bytes=a-b', 'bytes=1e3-']) {
    assert.deepEqual(parseRange(ignored, 100), { kind: 'none' }, ignored);
  }
  const e = makeEtag('id', '"nas-etag"', 100);
  assert.match(e, /^"[A-Za-z0-9_-]{27}"$/);
  assert.ok(!e.includes('nas'));
  assert.notEqual(makeEtag('id', '"nas-etag"', 101), e);
  assert.notEqual(makeEtag('other', '"nas-etag"', 100), e, 'per publication');
  assert.equal(noneMatch(e, e), true);
  assert.equal(noneMatch(`"x", W/${e}`, e), true);
  assert.equal(noneMatch('*', e), true);
  assert.equal(noneMatch('"x"', e), false);
  assert.equal(ifRangeAllows(undefined, e, undefined), true);
  assert.equal(ifRangeAllows(e, e, undefined), true);
  assert.equal(ifRangeAllows(`W/${e}`, e, undefined), false);
  assert.equal(ifRangeAllows('Thu, 01 Jan 2026 00:00:00 GMT', e, 'Thu, 01 Jan 2026 00:00:00 GMT'), true);
  assert.equal(ifRangeAllows('Fri, 02 Jan 2026 00:00:00 GMT', e, 'Thu, 01 Jan 2026 00:00:00 GMT'), false);
});

test('download headers: type by extension, attachment with a safe ASCII name and the exact UTF-8 name', () => {
  assert.equal(contentType('report.PDF'), 'application/pdf');
  assert.equal(contentType('archive.tar.gz'), 'application/gzip');
  assert.equal(contentType('noext'), 'application/octet-stream');
  assert.equal(contentType('.hidden'), 'application/octet-stream');
  assert.equal(contentDisposition('a.txt'), `attachment; filename="a.txt"; filename*=UTF-8''a.txt`);
  assert.equal(contentDisposition('x";\r\n.txt'), `attachment; filename="x____.txt"; filename*=UTF-8''x%22%3B%0D%0A.txt`);
});

test('config: defaults, relative paths, and errors naming file, line, path and what was expected', () => {
  const ok = parseFileGatewayConfig(`listen: 10.0.0.1:443
tls: { cert: c.pem, key: /k.pem }
storage: { kind: webdav, url: "https://nas:8443/share/", ca: ca.pem, user: gw, password-file: pw }
data-dir: data
state-dir: /var/lib/fg
`, '/etc/mg/fg.yaml');
  assert.deepEqual(ok.listen, { host: '10.0.0.1', port: 443 });
  assert.equal(ok.tls.cert, '/etc/mg/c.pem');
  assert.equal(ok.tls.key, '/k.pem');
  assert.equal(ok.dataDir, '/etc/mg/data');
  assert.deepEqual(ok.login, { freeFailures: 3, sourceFailures: 20, delayMs: 1000, maxDelayMs: 900_000, windowMs: 3_600_000, maxTracked: 100_000, maxPerSource: 100, concurrentChecks: 2 });
  assert.equal(ok.limits.notFoundMs, 100);
  const base = 'listen: 10.0.0.1:443\ntls: { cert: c, key: k }\ndata-dir: d\nstate-dir: s\n';
  for (const [text, re] of [
    [`${base}storage: { kind: smb }\n`, /fg\.yaml:5: storage\.kind: expected one of webdav, directory \(got "smb"\)/],
    [`${base}storage: { kind: webdav, url: "https://nas/share" }\n`, /storage\.url: expected an http:\/\/ or https:\/\/ URL of the share ending in "\/"/],
    [`${base}storage: { kind: webdav, url: "https://nas/s/", user: gw }\n`, /storage\.password-file: expected user and password-file together/],
    [`${base}storage: { kind: directory, root: r }\nlimits: { burst: 0 }\n`, /fg\.yaml:6: limits\.burst: expected an integer from 1/],
    [`${base}storage: { kind: directory, root: r }\ncolour: red\n`, /colour: unknown key/],
    [base.replace('10.0.0.1:443', 'nas.local:443') + 'storage: { kind: directory, root: r }\n', /fg\.yaml:1: listen: expected ADDRESS:PORT/],
    [`${base}storage: { kind: directory, root: r }\npublic-url: https://x.org/path\n`, /public-url: expected an origin/],
    [`${base}storage: { kind: directory, root: r }\nlogin: { account-failures: 5 }\n`, /fg\.yaml:6: login\.account-failures: no longer exists: failed logins are counted per \(account, source\)/],
    [`${base}storage: { kind: directory, root: r }\nlogin: { max-delay-seconds: 7200, window-minutes: 60 }\n`, /login\.window-minutes: expected at least max-delay-seconds \(7200 s\)/],
    [`${base}storage: { kind: directory, root: r }\nlogin: { delay-seconds: 60, max-delay-seconds: 30 }\n`, /login\.delay-seconds: expected at most max-delay-seconds/],
  ] as const) {
    assert.throws(() => parseFileGatewayConfig(text, '/etc/mg/fg.yaml'), re, text);
  }
});

test('the service may read only its config, data, certificate and storage credentials, and write only its state', () => {
  const cfg = parseFileGatewayConfig(`listen: 10.0.0.1:443
tls: { cert: tls.crt, key: tls.key }
storage: { kind: webdav, url: "https://nas/share/", ca: ca.pem, user: gw, password-file: pw }
data-dir: data
state-dir: /var/lib/fg
`, '/etc/mg/fg.yaml');
  const p = servicePermissions(cfg);
  assert.deepEqual(p.write, ['/var/lib/fg/']);
  assert.deepEqual(p.read.sort(), ['/etc/mg/ca.pem', '/etc/mg/data/', '/etc/mg/fg.yaml', '/etc/mg/pw', '/etc/mg/tls.crt', '/etc/mg/tls.key', '/var/lib/fg/'].sort());
});

test('lab policy with the file gateway: wan 443 and 80 forwarded to the dmz service, dmz reaches only the NAS port in the lan; valid router config', async () => {
  const plan = await makePlan('fgunit', 'microgate', LAB_UID_FIRST);
  const without = labRouterConfig(plan);
  plan.fileGateway = fileGatewayPlan(plan);
  const r = labRouterConfig(plan) as { domains: Record<string, Record<string, unknown>> };
  const fwd = r.domains.wan['tcp-forward'] as Record<string, unknown>[];
  assert.ok(fwd.some((f) => f.port === 443 && f.host === plan.hosts.dmz.ip && f['host-port'] === 8443));
  assert.ok(fwd.some((f) => f.port === 80 && f.host === plan.hosts.dmz.ip && f['host-port'] === 8080));
  const dmzTcp = r.domains.dmz.tcp as Record<string, unknown>[];
  assert.deepEqual(dmzTcp.filter((t) => t.to === 'lan'), [{ dst: `${plan.hosts.lan.ip}/32`, ports: [8443], to: 'lan' }], 'one lan service: the NAS');
  assert.deepEqual(r.domains.dmz.ip, (without as typeof r).domains.dmz.ip, 'nothing else of the dmz changes');
  parseRouterConfig(r, 'router', { file: 'gateway.yaml', path: 'components[3].config' });
  assert.deepEqual(withFileGatewayRouter(r, plan), r, 'adding twice changes nothing');
  const clash = { domains: { ...r.domains, wan: { ...r.domains.wan, 'tcp-forward': [{ port: 443, to: 'dmz', host: '198.18.128.9' }] } } };
  assert.throws(() => withFileGatewayRouter(clash, plan), /forwards wan port 443 elsewhere/);
});
