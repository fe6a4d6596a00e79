/**
 * The renew loop's decisions (daemon-fns.ts) with plain values and a fixed
 * clock; daemon.test.ts checks the loop that carries them out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { afterClockJump, afterFailure, afterRenewal, initialState, nextStep, onKick } from './daemon-fns.js';
import { DEFAULT_RENEW_POLICY, type RenewDecision } from './should-renew.js';

const T = Date.parse('2026-03-01T12:00:00Z');
const wait: RenewDecision = { action: 'wait', renewAt: new Date(T + 3600_000) };
const due: RenewDecision = { action: 'renew', renewAt: new Date(T - 1) };
const cert = { serialHex: '01ab', notBefore: new Date(T - 300_000), notAfter: new Date(T + 86_400_000) };

test('not due: sleep until the renewal time; due: renew; forced: renew even if not due', () => {
  const s = initialState(DEFAULT_RENEW_POLICY);
  assert.deepEqual(nextStep(s, wait, T), { do: 'sleep', untilMs: T + 3600_000 });
  assert.deepEqual(nextStep(s, due, T), { do: 'renew', force: false });
  assert.deepEqual(nextStep({ ...s, force: true }, wait, T), { do: 'renew', force: true });
});

test('a transient failure backs off (or waits the Retry-After), and the next step sleeps until then; success resets', () => {
  const s = initialState(DEFAULT_RENEW_POLICY);
  const f1 = afterFailure(s, T, undefined, () => 0.5);
  assert.equal(f1.state.failures, 1);
  assert.equal(f1.waitMs, 500);
  assert.deepEqual(nextStep(f1.state, due, T + 100), { do: 'sleep', untilMs: T + 500 });
  assert.deepEqual(nextStep(f1.state, due, T + 500), { do: 'renew', force: false });
  const f2 = afterFailure(f1.state, T, 120, () => 0);
  assert.equal(f2.waitMs, 120_000, 'RFC 9110 §10.2.3 Retry-After is a floor');
  assert.deepEqual(afterRenewal({ ...f2.state, force: true }), { ...f2.state, failures: 0, retryAt: 0, force: false });
});

test('kicks: renew-now forces a renewal at once, revoked stops, a policy changes the fraction and forces once if the certificate outlives it', () => {
  const s = { ...afterFailure(initialState(DEFAULT_RENEW_POLICY), T, 600, () => 0).state };
  const now = onKick(s, { type: 'renew-now', reason: 'admin' }, cert);
  assert.ok(now.wake && now.state.force && now.state.retryAt === 0 && /renewal now \(admin\)/.test(now.log!));
  const rev = onKick(s, { type: 'revoked', reason: 'keyCompromise', at: 'x' }, cert);
  assert.deepEqual(rev.state.revoked, { type: 'revoked', reason: 'keyCompromise', at: 'x' });
  const same = onKick(s, { type: 'policy', certLifetimeSeconds: 86_400, renewFraction: 0.5, heartbeatSeconds: 30 }, cert);
  assert.equal(same.state.policy.fraction, 0.5);
  assert.equal(same.state.force, false, 'the certificate does not outlive a 24 h policy');
  assert.deepEqual(same.policy, { certLifetimeSeconds: 86_400, renewFraction: 0.5, heartbeatSeconds: 30 });
  const shorter = onKick(s, { type: 'policy', certLifetimeSeconds: 3600, renewFraction: 0.5, heartbeatSeconds: 30 }, cert);
  assert.ok(shorter.state.force && shorter.state.retryAt === 0 && /now live 3600 s/.test(shorter.log!));
  const again = onKick({ ...shorter.state, force: false }, { type: 'policy', certLifetimeSeconds: 3600, renewFraction: 0.5, heartbeatSeconds: 30 }, cert);
  assert.equal(again.state.force, false, 'once per certificate and lifetime');
});

test('a clock jump ends a backoff: check now', () => {
  const s = afterFailure(initialState(DEFAULT_RENEW_POLICY), T, 600, () => 0).state;
  const j = afterClockJump(s, 7_200_000, T + 1000);
  assert.equal(j.state.retryAt, T + 1000);
  assert.match(j.log, /the clock jumped 7200 s/);
});
