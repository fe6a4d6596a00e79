/**
 * The control channel's decisions (channel-fns.ts), with plain values: no
 * socket, no timer. control-channel.test.ts checks the loop that carries them out.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { WS_CLOSE_CODES } from '@latchkey/protocol/wire';
import { REPLACED_FORGET_MS, addressFingerprint, afterClose, afterRefusal, heartbeatEveryMs, heartbeatOverdue, readServerMessage, retryAfterFailure, wakeReason } from './channel-fns.js';

test('a connection is overdue after two heartbeats and five seconds of silence', () => {
  assert.equal(heartbeatOverdue(10_000, 0, 1000), true);
  assert.equal(heartbeatOverdue(7000, 0, 1000), false);
  assert.equal(heartbeatOverdue(65_001, 0, 30_000), true);
  assert.equal(heartbeatOverdue(64_999, 0, 30_000), false);
});

test('the network fingerprint ignores loopback and order, and sees an address change', () => {
  type Ifaces = Parameters<typeof addressFingerprint>[0];
  const nic = (address: string, internal = false) => ({ address, internal, family: 'IPv4', netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: null });
  const one = addressFingerprint({ lo: [nic('127.0.0.1', true)], eth0: [nic('10.0.0.2')], wlan0: [nic('192.168.1.5')] } as Ifaces);
  const same = addressFingerprint({ wlan0: [nic('192.168.1.5')], eth0: [nic('10.0.0.2')] } as Ifaces);
  assert.equal(one, same);
  assert.equal(one, 'eth0/10.0.0.2,wlan0/192.168.1.5');
  assert.notEqual(addressFingerprint({ eth0: [nic('10.0.0.3')], wlan0: [nic('192.168.1.5')] } as Ifaces), one);
  assert.equal(typeof addressFingerprint(networkInterfaces()), 'string', 'this machine');
});

const now = () => new Date('2026-03-01T12:00:00Z');
const fixed = { random: () => 0.5, backoff: { baseMs: 1000, capMs: 60_000 }, replacedBackoff: { baseMs: 30_000, capMs: 3_600_000 } };

test('server messages: welcome, a policy within the protocol bounds, revoked, renew-now; anything else is ignored', () => {
  assert.deepEqual(readServerMessage('{"type":"welcome","deviceId":"x","heartbeatSeconds":15}', now), { type: 'welcome', heartbeatSeconds: 15 });
  const policy = { certLifetimeSeconds: 3600, renewFraction: 0.5, heartbeatSeconds: 20 };
  assert.deepEqual(readServerMessage(JSON.stringify({ type: 'policy', ...policy }), now), { type: 'policy', policy });
  assert.equal(readServerMessage(JSON.stringify({ type: 'policy', ...policy, renewFraction: 1 }), now), undefined, 'never half a policy');
  assert.equal(readServerMessage(JSON.stringify({ type: 'policy', ...policy, heartbeatSeconds: 0 }), now), undefined);
  assert.deepEqual(readServerMessage('{"type":"revoked","reason":"keyCompromise","revokedAt":"2026-03-01T11:00:00.000Z"}', now), { type: 'revoked', reason: 'keyCompromise', at: '2026-03-01T11:00:00.000Z' });
  assert.deepEqual(readServerMessage('{"type":"revoked"}', now), { type: 'revoked', reason: 'unspecified', at: now().toISOString() });
  assert.deepEqual(readServerMessage('{"type":"renew-now","reason":"policy"}', now), { type: 'renew-now', reason: 'policy' });
  assert.deepEqual(readServerMessage('{"type":"renew-now"}', now), { type: 'renew-now' });
  for (const junk of ['not json', 'null', '42', '{"type":"heartbeat-ack","seq":1}', '{}']) assert.equal(readServerMessage(junk, now), undefined, junk);
});

test('the heartbeat interval stays within the protocol bounds', () => {
  assert.equal(heartbeatEveryMs(15), 15_000);
  assert.equal(heartbeatEveryMs(0), 30_000, 'nonsense: the default');
  assert.equal(heartbeatEveryMs('x'), 30_000);
  assert.equal(heartbeatEveryMs(99_999), 3_600_000);
});

test('RFC 6455 §7.4.2 close codes: 4003 revoked ends everything, 4001 stops, 4009 waits long, others back off', () => {
  const s = { failures: 0, replaced: 0 };
  assert.deepEqual(afterClose(s, WS_CLOSE_CODES.revoked, 10, fixed), { do: 'revoked' });
  assert.equal(afterClose(s, WS_CLOSE_CODES.unsupportedVersion, 10, fixed).do, 'stop');
  const r1 = afterClose(s, WS_CLOSE_CODES.replaced, 10, fixed);
  assert.ok(r1.do === 'reconnect' && r1.waitMs === 30_000 * 0.5 && r1.state.replaced === 1, JSON.stringify(r1));
  const r2 = afterClose(r1.do === 'reconnect' ? r1.state : s, WS_CLOSE_CODES.replaced, 10, fixed);
  assert.ok(r2.do === 'reconnect' && r2.waitMs === 60_000 * 0.5 && r2.state.replaced === 2, 'grows with each replacement');
  const forgot = afterClose({ failures: 0, replaced: 5 }, WS_CLOSE_CODES.replaced, REPLACED_FORGET_MS, fixed);
  assert.ok(forgot.do === 'reconnect' && forgot.state.replaced === 1, 'an hour up forgets earlier replacements');
  const other = afterClose({ failures: 2, replaced: 0 }, 1006, undefined, fixed);
  assert.ok(other.do === 'reconnect' && other.state.failures === 3 && other.waitMs === 2000 && /closed \(1006\); reconnecting in 2\.0 s/.test(other.log), JSON.stringify(other));
});

test('a refused upgrade: 403 DEVICE_REVOKED ends everything; 503 honours Retry-After within the cap', () => {
  const s = { failures: 0, replaced: 0 };
  assert.deepEqual(afterRefusal(s, { status: 403, body: '{"error":{"code":"DEVICE_REVOKED","message":"x"}}', retryAfter: undefined }, fixed), { do: 'revoked' });
  const busy = afterRefusal(s, { status: 503, body: '{"error":{"code":"SERVER_BUSY"}}', retryAfter: '40' }, fixed);
  assert.ok(busy.do === 'reconnect' && busy.waitMs === 40_000 * 1.25 && /refused \(503 SERVER_BUSY\)/.test(busy.log), JSON.stringify(busy));
  const long = afterRefusal(s, { status: 503, body: '', retryAfter: '3000' }, fixed);
  assert.ok(long.do === 'reconnect' && long.waitMs === 60_000, 'within the backoff cap');
  assert.equal(retryAfterFailure(s, 'x', 0, fixed).waitMs, 500);
});

test('a clock jump or a network change reconnects at once; neither, nothing', () => {
  assert.equal(wakeReason(undefined, false), undefined);
  assert.equal(wakeReason(7_200_000, false), 'woke up (the clock jumped 7200 s)');
  assert.equal(wakeReason(undefined, true), 'the network changed');
});
