import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pollFrom, refuseStream, sseMessage } from './live-fns.js';

describe('live stream helpers', () => {
  test('WHATWG HTML §9.2: an event is "event:" and one "data:" line, ended by a blank line', () => {
    assert.equal(sseMessage('presence', { online: 3 }), 'event: presence\ndata: {"online":3}\n\n');
    assert.equal(sseMessage('audit', { details: { note: 'a\nb' } }), 'event: audit\ndata: {"details":{"note":"a\\nb"}}\n\n');
  });

  test('the 11th stream of a credential and the stream over the process bound are refused, saying what to do', () => {
    const limits = { perProcess: 500, perCredential: 10 };
    assert.equal(refuseStream({ total: 0, ofCredential: 9 }, limits), undefined);
    assert.match(refuseStream({ total: 9, ofCredential: 10 }, limits)!, /at most 10.*close other console tabs/);
    assert.match(refuseStream({ total: 500, ofCredential: 0 }, limits)!, /at most 500.*retry/);
  });

  test('the poller rereads a window below the newest id it saw, never below 0', () => {
    assert.equal(pollFrom(1000, 100), 900);
    assert.equal(pollFrom(50, 100), 0);
    assert.equal(pollFrom(7, 0), 7);
  });
});
