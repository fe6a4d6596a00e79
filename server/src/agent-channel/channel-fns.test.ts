/** The control channel's decisions, without sockets (docs/architecture.md "Agent control channel"). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AgentMessage, PROTOCOL_VERSION, WS_CLOSE_CODES } from '@latchkey/protocol';
import { DEFAULT_RENEW_FRACTION } from '@latchkey/protocol';
import { connectionsToReplace, nextForMessage, policyMessage } from './channel-fns.js';

const hello = (protocolVersion = PROTOCOL_VERSION): AgentMessage => ({ type: 'hello', protocolVersion, agentVersion: '1.2.3', facts: {} as never });
const status = (serial: string): AgentMessage => ({ type: 'status', serial, notAfter: '2026-03-01T00:00:00Z', keystore: 'file' } as AgentMessage);

describe('control channel: what a message leads to', () => {
  test('before hello, anything else closes with protocolError; an unsupported version closes with unsupportedVersion', () => {
    assert.deepEqual(nextForMessage({ greeted: false, serial: 'aa' }, { type: 'heartbeat', seq: 1 }), { do: 'close', code: WS_CLOSE_CODES.protocolError, reason: 'the first message must be hello' });
    const r = nextForMessage({ greeted: false, serial: 'aa' }, hello(PROTOCOL_VERSION + 1));
    assert.equal(r.do === 'close' && r.code, WS_CLOSE_CODES.unsupportedVersion);
  });
  test('hello greets with the facts as reported; heartbeat is acknowledged with its seq', () => {
    assert.deepEqual(nextForMessage({ greeted: false, serial: 'aa' }, hello()), { do: 'greet', agentVersion: '1.2.3', factsJson: '{}' });
    assert.deepEqual(nextForMessage({ greeted: true, serial: 'aa' }, { type: 'heartbeat', seq: 7 }), { do: 'ack', seq: 7 });
  });
  test('a status naming another serial than the authenticated certificate is a mismatch, never a new identity', () => {
    assert.deepEqual(nextForMessage({ greeted: true, serial: 'aa' }, status('bb')), { do: 'serial-mismatch', claimed: 'bb' });
    assert.deepEqual(nextForMessage({ greeted: true, serial: 'aa' }, status('aa')), { do: 'nothing' });
  });
});

describe('control channel: connections per device', () => {
  test('the newest maxPerDevice stay; the oldest give way', () => {
    assert.deepEqual(connectionsToReplace(['a', 'b', 'c', 'd'], 2), ['a', 'b']);
    assert.deepEqual(connectionsToReplace(['a'], 2), []);
    assert.deepEqual(connectionsToReplace(['a', 'b'], 2), []);
  });
  test('the policy message carries the group lifetime, the renew fraction and the heartbeat', () => {
    assert.deepEqual(JSON.parse(policyMessage({ cert_lifetime_seconds: 3600 }, 30)), { type: 'policy', certLifetimeSeconds: 3600, renewFraction: DEFAULT_RENEW_FRACTION, heartbeatSeconds: 30 });
  });
});
