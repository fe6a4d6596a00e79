import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOcspCache } from './revocation-routes.js';

const body = (n: number) => Buffer.alloc(n, 1);

test('OCSP cache: bounded in entries; expired entries go first, then the least recently used', () => {
  const clock = { now: 1_000_000 };
  const c = createOcspCache(() => new Date(clock.now), { maxEntries: 3, maxBytes: 1 << 20 });
  c.set('a', body(10), clock.now + 60_000);
  c.set('b', body(10), clock.now + 1_000);
  c.set('c', body(10), clock.now + 60_000);
  assert.ok(c.get('a'), 'a is now the most recently used');
  clock.now += 2_000; // b expired
  c.set('d', body(10), clock.now + 60_000);
  assert.equal(c.get('b'), undefined);
  assert.deepEqual(c.size.entries, 3);
  c.set('e', body(10), clock.now + 60_000); // full, none expired: the least recently used (c) goes
  assert.equal(c.get('c'), undefined);
  assert.ok(c.get('a') && c.get('d') && c.get('e'));
  assert.equal(c.size.entries, 3);
});

test('OCSP cache: bounded in bytes; an answer is kept at most a minute, and never past the time given', () => {
  const clock = { now: 0 };
  const c = createOcspCache(() => new Date(clock.now), { maxEntries: 1000, maxBytes: 1000 });
  for (let i = 0; i < 100; i++) c.set(`k${i}`, body(100), clock.now + 60_000);
  assert.ok(c.size.bytes <= 1000, `${c.size.bytes} bytes`);
  assert.ok(c.get('k99'), 'the newest is kept');
  c.set('huge', body(5000), clock.now + 60_000);
  assert.equal(c.get('huge'), undefined, 'larger than the whole budget: not kept');
  c.set('soon', body(10), clock.now + 5_000);
  clock.now += 5_000;
  assert.equal(c.get('soon'), undefined, 'a superseded certificate\'s answer ends with its overlap');
  c.set('long', body(10), clock.now + 3_600_000);
  clock.now += 60_000;
  assert.equal(c.get('long'), undefined, 'reused for a minute at most');
  c.clear();
  assert.deepEqual(c.size, { entries: 0, bytes: 0 });
});
