import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcastOf, formatIpv4, formatMac, inPrefix, isGroupMac, isBroadcastMac, isMartianSourceIpv4, mac48ToString,
  networkOf, parseIpv4, parseIpv4Cidr, parseMac, parseMacPrefix, prefixMask, prefixesOverlap, readMac48, writeMac48,
} from '../../src/net/addr.ts';

test('IPv4 parse / format', () => {
  assert.equal(parseIpv4('198.18.0.1'), 0xc6120001);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.x', ' 1.2.3.4', '1..3.4', '-1.2.3.4']) {
    assert.equal(parseIpv4(bad), undefined, bad);
  }
  assert.equal(formatIpv4(0xc6120001), '198.18.0.1');
  assert.equal(formatIpv4(0xffffffff), '255.255.255.255');
});

test('CIDR and prefix math', () => {
  assert.deepEqual(parseIpv4Cidr('198.18.0.1/24'), { address: 0xc6120001, prefix: 24 });
  assert.equal(parseIpv4Cidr('198.18.0.1'), undefined);
  assert.equal(parseIpv4Cidr('198.18.0.1/33'), undefined);
  assert.equal(parseIpv4Cidr('198.18.0.1/024'), undefined);
  assert.equal(prefixMask(0), 0);
  assert.equal(prefixMask(24), 0xffffff00);
  assert.equal(prefixMask(32), 0xffffffff);
  assert.equal(prefixMask(1), 0x80000000);
  assert.equal(networkOf(0xc6120081, 25), 0xc6120080);
  assert.equal(broadcastOf(0xc6120001, 24), 0xc61200ff);
  assert.ok(inPrefix(0xc61200fe, 0xc6120000, 0xffffff00));
  assert.ok(!inPrefix(0xc6130001, 0xc6120000, 0xffffff00));
  assert.ok(inPrefix(0xdeadbeef, 0, 0));
  assert.ok(prefixesOverlap(0xc6120001, 16, 0xc6128001, 24));
  assert.ok(!prefixesOverlap(0xc6120001, 24, 0xc6130001, 24));
  assert.ok(isMartianSourceIpv4(0x7f000001));
  assert.ok(isMartianSourceIpv4(0xe0000001));
  assert.ok(isMartianSourceIpv4(0));
  assert.ok(!isMartianSourceIpv4(0xc6120002));
});

test('MAC parse / format / 48-bit numbers', () => {
  const m = parseMac('02:00:5e:10:00:fF');
  assert.deepEqual(m, new Uint8Array([2, 0, 0x5e, 0x10, 0, 0xff]));
  assert.equal(parseMac('02:00:5e:10:00'), undefined);
  assert.equal(parseMac('02:00:5e:10:00:zz'), undefined);
  assert.equal(formatMac(m as Uint8Array), '02:00:5e:10:00:ff');
  assert.deepEqual(parseMacPrefix('02:6d'), new Uint8Array([2, 0x6d]));
  assert.equal(parseMacPrefix('02:00:00:00:00:00'), undefined);
  const b = new Uint8Array(8);
  writeMac48(b, 1, 0xfedcba987654);
  assert.equal(readMac48(b, 1), 0xfedcba987654);
  assert.equal(mac48ToString(0x020000000001), '02:00:00:00:00:01');
  assert.ok(isGroupMac(new Uint8Array([1, 0, 0x5e, 0, 0, 1]), 0));
  assert.ok(isBroadcastMac(new Uint8Array([255, 255, 255, 255, 255, 255]), 0));
  assert.ok(!isBroadcastMac(new Uint8Array([255, 255, 255, 255, 255, 254]), 0));
});
