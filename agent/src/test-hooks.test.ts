import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTestHooks } from './test-hooks.js';

test('test hooks are read from the environment only when set, and only to known values', () => {
  assert.deepEqual(readTestHooks({}), {});
  assert.deepEqual(readTestHooks({ LATCHKEY_TEST_CRASH_AT: 'after-issue', LATCHKEY_BACKOFF_CAP_MS: '1000', LATCHKEY_RUN_SLICE_MS: '200', LATCHKEY_CONTROL_CHANNEL: 'off', LATCHKEY_SEA_DEBUG: '1' }), {
    crashAt: 'after-issue',
    backoff: { baseMs: 500, capMs: 1000 },
    runSliceMs: 200,
    noControlChannel: true,
    seaDebug: true,
  });
  assert.deepEqual(readTestHooks({ LATCHKEY_TEST_CRASH_AT: 'somewhere', LATCHKEY_BACKOFF_CAP_MS: 'x', LATCHKEY_RUN_SLICE_MS: '-5', LATCHKEY_CONTROL_CHANNEL: 'on' }), {});
});
