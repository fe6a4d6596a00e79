/** Where a gateway's subscription starts (docs/architecture.md "Gateway event stream"). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { replayStart } from './gateway-events-fns.js';

describe('gateway stream: replay start from a cursor', () => {
  test('a cursor within what is kept replays after it, the newest included (nothing to replay)', () => {
    assert.deepEqual(replayStart('5', 10, 3), { after: 5 });
    assert.deepEqual(replayStart('10', 10, 3), { after: 10 });
    assert.deepEqual(replayStart('2', 10, 3), { after: 2 }, 'just before the oldest kept: nothing lost');
    assert.deepEqual(replayStart('0', 0, undefined), { after: 0 }, 'an empty table, from the start');
  });
  test('past the newest, older than what is kept, or not a cursor: resync', () => {
    assert.equal(replayStart('11', 10, 3), 'resync');
    assert.equal(replayStart('1', 10, 3), 'resync');
    for (const c of ['-1', 'abc', '01', '']) assert.equal(replayStart(c, 10, 3), 'resync', c);
  });
});
