import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { limitMessageRate } from './upgrade-router.js';

/** A WebSocket as far as the limiter sees it. */
function peer() {
  const e = new EventEmitter();
  const closes: [number, string][] = [];
  let terminated = false;
  return {
    e,
    closes,
    terminated: () => terminated,
    ws: { on: (ev: 'message' | 'ping', fn: () => void) => e.on(ev, fn), close: (code: number, reason: string) => closes.push([code, reason]), terminate: () => (terminated = true) },
  };
}

test('a WebSocket peer within its rate is left alone; one flooding messages or pings is closed once, then cut off', async () => {
  let now = 0;
  const p = peer();
  limitMessageRate(p.ws, { perSecond: 5, burst: 10, code: 4029, now: () => now });
  // A burst, then the steady rate, for a minute.
  for (let i = 0; i < 10; i++) p.e.emit('message');
  for (let s = 0; s < 60_000; s += 200) {
    now = s + 200;
    p.e.emit(s % 400 ? 'ping' : 'message');
  }
  assert.deepEqual(p.closes, []);
  // Thousands at once.
  for (let i = 0; i < 5000; i++) p.e.emit('ping');
  assert.deepEqual(p.closes, [[4029, 'too many messages']]);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(p.terminated(), true);
});
