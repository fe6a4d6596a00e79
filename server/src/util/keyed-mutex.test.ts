import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyedMutex } from './keyed-mutex.js';

test('holders of one key run one at a time, in arrival order; other keys do not wait', async () => {
  const m = keyedMutex();
  const order: string[] = [];
  const tick = () => new Promise((r) => setImmediate(r));
  const job = async (key: string, name: string, ticks: number) => {
    const release = await m.acquire(key);
    order.push(`${name}+`);
    for (let i = 0; i < ticks; i++) await tick();
    order.push(`${name}-`);
    release();
  };
  await Promise.all([job('a', 'a1', 3), job('a', 'a2', 1), job('b', 'b1', 1), job('a', 'a3', 0)]);
  const a = order.filter((s) => s.startsWith('a'));
  assert.deepEqual(a, ['a1+', 'a1-', 'a2+', 'a2-', 'a3+', 'a3-']);
  assert.ok(order.indexOf('b1-') < order.indexOf('a1-'), 'key b did not wait for key a');
  assert.equal(m.size, 0, 'no entries left behind');
});

test('releasing twice is harmless and a released key can be taken again', async () => {
  const m = keyedMutex();
  const r1 = await m.acquire('k');
  r1();
  r1();
  const r2 = await m.acquire('k');
  r2();
  assert.equal(m.size, 0);
});
