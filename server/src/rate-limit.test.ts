/**
 * The per-address limits (@fastify/rate-limit) as a client meets them:
 * RFC 6585 §4 429 with Retry-After and our RATE_LIMITED body. The
 * per-device re-enrollment limit is tested in est/reenroll-limits.test.ts,
 * the WebSocket message limit in upgrade-router.test.ts; the bucket both use
 * is tested here with a fixed clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRateLimiter, tokenBucket } from './rate-limit.js';
import { adminCall, deviceCsr, enroll, harness } from './testing/harness.js';

const code = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;

test('RFC 6585 §4: past enrollRateLimitPerMinute, simpleenroll answers 429 RATE_LIMITED with Retry-After (seconds, at most the minute)', async (t) => {
  const h = await harness(t, 'sqlite', { config: { enrollRateLimitPerMinute: 2 } });
  if (!h) return;
  const { csr } = await deviceCsr();
  assert.equal((await enroll(h, 'lk_enr_guess1', csr)).statusCode, 401);
  assert.equal((await enroll(h, 'lk_enr_guess2', csr)).statusCode, 401);
  const r = await enroll(h, 'lk_enr_guess3', csr);
  assert.equal(r.statusCode, 429);
  assert.equal(code(r.body), 'RATE_LIMITED');
  const retry = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, String(r.headers['retry-after']));
  // Other public routes are not limited.
  assert.equal((await h.app.inject({ method: 'GET', url: '/.well-known/est/cacerts' })).statusCode, 200);
});

test('failed admin logins: 30 a minute per address, then 429 RATE_LIMITED with Retry-After; a valid token is never refused for them', async (t) => {
  const h = await harness(t, 'sqlite');
  if (!h) return;
  for (let i = 0; i < 30; i++) assert.equal((await adminCall(h, 'GET', '/v1/admin/devices', undefined, `lk_adm_wrong${i}`)).status, 401);
  const r = await h.app.inject({ method: 'GET', url: '/v1/admin/devices', headers: { authorization: 'Bearer lk_adm_wrong' } });
  assert.equal(r.statusCode, 429);
  assert.equal(code(r.body), 'RATE_LIMITED');
  assert.match(r.body, /failed admin logins/);
  assert.ok(Number(r.headers['retry-after']) >= 1 && Number(r.headers['retry-after']) <= 60, String(r.headers['retry-after']));
  for (let i = 0; i < 40; i++) assert.equal((await adminCall(h, 'GET', '/v1/admin/devices')).status, 200);
});

test('token bucket: a full burst, then one token per 1/rate seconds, never more than the capacity', () => {
  const b = tokenBucket(3, 2, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  assert.equal(b.take(499), false, 'not yet a whole token after 499 ms at 2/s');
  assert.equal(b.take(500), true);
  assert.deepEqual([b.take(60_000), b.take(60_000), b.take(60_000), b.take(60_000)], [true, true, true, false], 'a long pause refills to the capacity only');
  // Per key: one key running dry leaves the others alone.
  const l = createRateLimiter(2, () => 0);
  assert.deepEqual([l.take('a'), l.take('a'), l.take('a'), l.take('b')], [true, true, false, true]);
});
