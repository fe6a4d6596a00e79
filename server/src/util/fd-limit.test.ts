import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentConnectionCap, connectionCaps, openFileLimit } from './fd-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

test('the soft open-file limit is read from /proc/self/limits', () => {
  assert.equal(openFileLimit(() => LIMITS), 20000);
  assert.equal(openFileLimit(() => LIMITS.replace('20000                20000', 'unlimited            unlimited')), undefined);
  assert.equal(openFileLimit(() => {
    throw new Error('ENOENT');
  }), undefined);
  assert.ok((openFileLimit() ?? 1) > 0, 'this machine');
});

test('the cap leaves a reserve of 5% (at least 256) unless configured', () => {
  assert.equal(agentConnectionCap(0, 20000), 19000);
  assert.equal(agentConnectionCap(0, 1024), 768);
  assert.equal(agentConnectionCap(0, 100), 0);
  assert.equal(agentConnectionCap(0, undefined), Number.POSITIVE_INFINITY);
  assert.equal(agentConnectionCap(5000, 20000), 5000, 'configured wins');
});

test('connections stop short of the open-file limit; idle ones get the reserve the control channel leaves', () => {
  assert.deepEqual(connectionCaps(0, 1024), { idle: 192, open: 960 });
  assert.deepEqual(connectionCaps(0, 20000), { idle: 936, open: 19936 });
  assert.deepEqual(connectionCaps(0, 100), { idle: 36, open: 36 });
  assert.deepEqual(connectionCaps(500, 1024), { idle: 500, open: 960 }, 'configured wins');
  assert.deepEqual(connectionCaps(0, undefined), { idle: 1024, open: Number.POSITIVE_INFINITY });
  // Agents and idle connections together leave the process its own descriptors.
  for (const limit of [300, 1024, 20000, 1_048_576]) assert.ok(agentConnectionCap(0, limit) + connectionCaps(0, limit).idle <= limit - 64, String(limit));
});
