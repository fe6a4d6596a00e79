import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs, retryDelayMs } from './backoff.js';
import { clockJumpWatch } from './clock.js';

test('a wall-clock move past the monotonic clock is a jump; both moving together is not', () => {
  let wall = 1_000_000;
  let mono = 0;
  const w = clockJumpWatch({ now: () => new Date(wall), monotonic: () => mono });
  wall += 30_000;
  mono += 30_000;
  assert.equal(w.jumped(), undefined, 'time passing is no jump');
  wall += 7_200_000;
  assert.equal(w.jumped(), 7_200_000, 'two hours asleep');
  assert.equal(w.jumped(), undefined, 'each check starts a new interval');
  wall -= 6000;
  assert.equal(w.jumped(), -6000, 'the clock set back');
  wall += 4000;
  assert.equal(w.jumped(), undefined, 'within the threshold');
  wall += 10_000;
  w.reset();
  assert.equal(w.jumped(), undefined, 'reset forgets what came before');
});

test('retryDelayMs: the backoff, or a Retry-After with up to 50 % on top, within its cap', () => {
  const b = { baseMs: 1000, capMs: 60_000 };
  assert.equal(retryDelayMs(3, () => 0.5, b), backoffMs(3, 0.5, b));
  assert.equal(retryDelayMs(1, () => 0.5, b, { seconds: 30 }), 30_000 * 1.25);
  assert.equal(retryDelayMs(1, () => 0.5, b, { seconds: 3600, capMs: b.capMs }), 60_000);
  assert.equal(retryDelayMs(1, () => 0.5, b, { seconds: 3600 }), 3600_000 * 1.25, 'no cap unless given');
  assert.equal(retryDelayMs(7, () => 1, b, { seconds: 1 }), 60_000, 'the backoff when it is longer');
});

test('backoff doubles up to the cap with full jitter and never hits zero', () => {
  const o = { baseMs: 1000, capMs: 60_000 };
  assert.equal(backoffMs(1, 0.999, o), 999);
  assert.equal(backoffMs(3, 0.5, o), 2000);
  assert.equal(backoffMs(30, 0.999, o), 59_940);
  assert.equal(backoffMs(5, 0, o), 500);
});
