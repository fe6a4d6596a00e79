import assert from 'node:assert/strict';
import { test } from 'node:test';
import { notifyPayloads, type DeliveredEvent } from './event-bus.js';

const ev = (i: number, pad = 0): DeliveredEvent => ({ type: 'issuance', deviceId: `d${i}${'x'.repeat(pad)}`, serial: 'ab', kind: 'enroll', at: '2026-01-01T00:00:00.000Z', cursor: '' });

test('NOTIFY payloads stay under the limit, keep every event in order, and parse back', () => {
  const events = Array.from({ length: 500 }, (_, i) => ev(i, i % 7 === 0 ? 300 : 0));
  const { payloads, tooLarge } = notifyPayloads('o1', events, 2000);
  assert.equal(tooLarge.length, 0);
  assert.ok(payloads.length > 1, 'split into several payloads');
  for (const p of payloads) assert.ok(p.length <= 2000, `payload of ${p.length} bytes`);
  const back = payloads.flatMap((p) => {
    const o = JSON.parse(p) as { origin: string; events: DeliveredEvent[] };
    assert.equal(o.origin, 'o1');
    return o.events;
  });
  assert.deepEqual(back, events);
});

test('an event too large for any payload is reported, not sent, and does not block the rest', () => {
  const { payloads, tooLarge } = notifyPayloads('o1', [ev(1), ev(2, 5000), ev(3)], 1000);
  assert.deepEqual(tooLarge.map((e) => (e as { deviceId: string }).deviceId.slice(0, 2)), ['d2']);
  assert.deepEqual(payloads.flatMap((p) => (JSON.parse(p) as { events: DeliveredEvent[] }).events.map((e) => (e as { deviceId: string }).deviceId)), ['d1', 'd3']);
});

test('a replayable event too large for a payload goes as a reference to its row, in its place', () => {
  const big: DeliveredEvent = { type: 'revocation', deviceId: 'd2', crlNumber: 7, reason: 'x'.repeat(5000), at: '2026-01-01T00:00:00.000Z', cursor: '42' };
  const { payloads, tooLarge } = notifyPayloads('o1', [ev(1), big, ev(3)], 1000);
  assert.deepEqual(tooLarge, []);
  const back = payloads.flatMap((p) => (JSON.parse(p) as { events: unknown[] }).events);
  assert.deepEqual(back[1], { ref: '42' });
  assert.equal(back.length, 3);
});

test('no events, no payloads', () => {
  assert.deepEqual(notifyPayloads('o', []), { payloads: [], tooLarge: [] });
});
