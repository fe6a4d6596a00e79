import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renewalTime, serialJitter, shouldRenew, DEFAULT_RENEW_POLICY, outlivesPolicy, renewPolicyOf } from './should-renew.js';

const T0 = new Date('2026-03-01T12:00:00Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);
// 24 h certificate, notBefore backdated 5 min by the server, received at T0.
const cert = (serialHex: string) => ({ serialHex, notBefore: at(-300), notAfter: at(86_400), receivedAt: T0 });

test('renewal falls at 2/3 of the lifetime counted from receipt, within ±10%', () => {
  for (const serial of ['01', 'ab', '7f3e', 'deadbeef', '1234567890abcdef']) {
    const r = (renewalTime(cert(serial)).getTime() - T0.getTime()) / 1000;
    const mid = (86_400 * 2) / 3;
    assert.ok(r >= mid * 0.9 - 1 && r <= mid * 1.1 + 1, `${serial}: ${r}`);
  }
});

test('the jitter is fixed by the serial and spreads a fleet', () => {
  assert.equal(serialJitter('ab'), serialJitter('ab'));
  const times = new Set(Array.from({ length: 50 }, (_, i) => renewalTime(cert(i.toString(16))).getTime()));
  assert.ok(times.size > 45, 'different serials renew at different times');
});

test('shouldRenew: wait before the renewal time, renew after it, recover once expired', () => {
  const c = cert('ab');
  const renewAt = renewalTime(c);
  assert.equal(shouldRenew(at(60), c).action, 'wait');
  assert.equal(shouldRenew(new Date(renewAt.getTime() - 1), c).action, 'wait');
  assert.equal(shouldRenew(renewAt, c).action, 'renew');
  assert.equal(shouldRenew(at(86_399), c).action, 'renew');
  assert.equal(shouldRenew(at(86_400), c).action, 'recover');
});

test('without a receipt time, notBefore counts; a receipt after notAfter cannot push renewal past expiry', () => {
  const c = { serialHex: 'ab', notBefore: T0, notAfter: at(3000) };
  const r = renewalTime(c).getTime();
  assert.ok(r > T0.getTime() && r < at(3000).getTime());
  const late = renewalTime({ ...c, receivedAt: at(5000) }).getTime();
  assert.ok(late <= at(3000).getTime());
});

test("the server's renew fraction moves the renewal point; a nonsensical one is ignored", () => {
  const c = { serialHex: 'ab', notBefore: T0, notAfter: at(86_400), receivedAt: T0 };
  const half = renewalTime(c, renewPolicyOf({ renewFraction: 0.5 })).getTime() - T0.getTime();
  assert.ok(half >= 0.45 * 86_400_000 && half <= 0.55 * 86_400_000, `${half}`);
  for (const bad of [0, 1, -0.5, 2, '0.5', undefined]) assert.deepEqual(renewPolicyOf({ renewFraction: bad }), DEFAULT_RENEW_POLICY);
  assert.deepEqual(renewPolicyOf(undefined), DEFAULT_RENEW_POLICY);
});

test('a certificate outlives the policy when it was issued with a longer lifetime (one minute of slack), whatever the local clock says', () => {
  // Issued for a day: notBefore backdated 5 minutes.
  const c = { notBefore: at(-300), notAfter: at(86_400) };
  assert.equal(outlivesPolicy(c, 3600), true);
  assert.equal(outlivesPolicy(c, 86_400), false);
  assert.equal(outlivesPolicy(c, 86_400 - 59), false, 'one minute of slack');
  // A fresh one-hour certificate under a one-hour policy never outlives it (a slow local clock changes nothing).
  assert.equal(outlivesPolicy({ notBefore: at(-300), notAfter: at(3600) }, 3600), false);
});
