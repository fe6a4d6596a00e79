/** The CLI's side of the device authorization grant (RFC 8628 §3.4, §3.5) against /v1/auth/device/poll. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuthDeviceStarted } from '@latchkey/protocol';
import { ApiError } from '../cli-errors.js';
import type { ApiAnswer } from './api-request.js';
import { LoginCancelled, MAX_TRANSIENT, pollDeviceLogin, pollStep, retryAfterSeconds } from './device-login.js';

const T0 = new Date('2026-12-01T10:00:00.000Z');
const SERVER = 'https://latchkey.example.com:8443';
const ok = { purpose: 'admin', user: { email: 'ada@example.com', issuer: 'https://idp.example.com' }, session: { token: `lk_ses_${'a'.repeat(43)}`, refreshToken: `lk_ref_${'b'.repeat(43)}`, expiresAt: '2026-12-01T11:00:00.000Z', refreshExpiresAt: '2026-12-01T22:00:00.000Z', role: 'admin' } };
const answer = (status: number, json?: unknown, headers: Record<string, string> = {}): ApiAnswer => ({ status, json, headers });
const err = (status: number, code: string, message = code.toLowerCase(), headers: Record<string, string> = {}): ApiAnswer => answer(status, { error: { code, message } }, headers);
const started = (over: Partial<AuthDeviceStarted> = {}): AuthDeviceStarted => ({ flowId: `lk_flow_${'f'.repeat(43)}`, userCode: 'ABCD-EFGH', verificationUri: 'https://idp.example.com/device', intervalSeconds: 5, expiresAt: new Date(T0.getTime() + 600_000).toISOString(), ...over });

/** Runs the loop on a fake clock: sleeping moves it; answers come from the script. */
async function drive(script: (ApiAnswer | Error)[], opts: { start?: AuthDeviceStarted; abortAfter?: number } = {}) {
  let now = T0.getTime();
  const polls: number[] = [];
  const ac = new AbortController();
  const result = pollDeviceLogin({
    started: opts.start ?? started(),
    server: SERVER,
    clock: () => new Date(now),
    sleep: async (ms) => void (now += ms),
    signal: ac.signal,
    poll: async () => {
      polls.push((now - T0.getTime()) / 1000);
      if (opts.abortAfter !== undefined && polls.length >= opts.abortAfter) ac.abort();
      const next = script.shift();
      if (!next) throw new Error('script ran out');
      if (next instanceof Error) throw next;
      return next;
    },
  });
  return { result: await result.then((r) => r, (e: unknown) => e), polls };
}

describe('device sign-in polling (RFC 8628)', () => {
  test('Retry-After as seconds or an HTTP date', () => {
    assert.equal(retryAfterSeconds({ 'retry-after': '7' }, T0), 7);
    assert.equal(retryAfterSeconds({ 'retry-after': new Date(T0.getTime() + 12_500).toUTCString() }, T0), 12);
    assert.equal(retryAfterSeconds({ 'retry-after': 'soon' }, T0), undefined);
    assert.equal(retryAfterSeconds({}, T0), undefined);
  });

  test('§3.4: waits the interval before each poll, longer when Retry-After says so; 200 ends it', async () => {
    const { result, polls } = await drive([err(202, 'AUTH_PENDING'), err(202, 'AUTH_PENDING', 'x', { 'retry-after': '9' }), answer(200, ok)]);
    assert.deepEqual(result, ok);
    assert.deepEqual(polls, [5, 10, 19]);
  });

  test('§3.5: slow_down (429) adds 5 seconds to the interval for this and every later poll', async () => {
    const { result, polls } = await drive([err(429, 'RATE_LIMITED'), err(202, 'AUTH_PENDING'), err(429, 'RATE_LIMITED', 'x', { 'retry-after': '30' }), err(202, 'AUTH_PENDING'), answer(200, ok)]);
    assert.deepEqual(result, ok);
    // 5 → poll; 429 → interval 10; 202 → 10; 429 → interval 15 but Retry-After 30; 202 → 15.
    assert.deepEqual(polls, [5, 15, 25, 55, 70]);
  });

  test('stops at expiresAt with AUTH_EXPIRED and what to do', async () => {
    const { result, polls } = await drive(Array(100).fill(err(202, 'AUTH_PENDING')), { start: started({ intervalSeconds: 5, expiresAt: new Date(T0.getTime() + 22_000).toISOString() }) });
    assert.deepEqual(polls, [5, 10, 15, 20]);
    assert.ok(result instanceof ApiError);
    assert.equal(result.code, 'AUTH_EXPIRED');
    assert.match(result.message, /the sign-in expired before it was completed .*run `latchkey-server login --server https:\/\/latchkey\.example\.com:8443` again/);
  });

  test('refusals say what to do: AUTH_DENIED, AUTH_EXPIRED, USER_NOT_ALLOWED; unknown codes pass through', () => {
    const step = (a: ApiAnswer) => pollStep(a, 5, { server: SERVER, now: T0 });
    const msg = (a: ApiAnswer): string => {
      const s = step(a);
      assert.equal(s.kind, 'fail');
      return (s as { error: Error }).error.message;
    };
    assert.match(msg(err(403, 'AUTH_DENIED', 'access_denied')), /the identity provider refused the sign-in \(access_denied\); if that was a mistake, run `latchkey-server login --server \S+` again and approve it/);
    assert.match(msg(err(403, 'AUTH_EXPIRED', 'expired_token')), /expired before it was completed \(expired_token\)/);
    assert.match(msg(err(403, 'USER_NOT_ALLOWED', 'bob@example.com is in none of the admin groups')), /you signed in, but may not administer https:\/\/latchkey\.example\.com:8443: bob@example\.com is in none of the admin groups; ask whoever runs your identity provider to add you/);
    assert.equal(msg(err(400, 'BAD_REQUEST', 'body/flowId bad')), 'body/flowId bad');
    const bad = step(answer(200, { purpose: 'enroll' }));
    assert.equal(bad.kind, 'fail');
  });

  test('IDP_UNAVAILABLE or an unreachable server while polling: retried with a longer wait, then given up with what to do', async () => {
    const recovered = await drive([err(503, 'IDP_UNAVAILABLE'), new Error('cannot reach'), answer(200, ok)]);
    assert.deepEqual(recovered.result, ok);
    assert.deepEqual(recovered.polls, [5, 15, 25]);
    const gone = await drive(Array(MAX_TRANSIENT).fill(err(503, 'IDP_UNAVAILABLE', 'the IdP timed out')));
    assert.ok(gone.result instanceof ApiError);
    assert.match(gone.result.message, /the server cannot reach the identity provider now \(the IdP timed out\); try again in a minute/);
  });

  test('Ctrl-C (the signal) ends it as cancelled, with no further poll', async () => {
    const { result, polls } = await drive(Array(10).fill(err(202, 'AUTH_PENDING')), { abortAfter: 2 });
    assert.ok(result instanceof LoginCancelled);
    assert.equal(polls.length, 2);
  });
});
