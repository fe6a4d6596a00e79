import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../errors.js';
import { KeystoreError } from '../keystore/keystore.js';
import { MAX_MESSAGE_BYTES, fromWireError, isWorkerMessage, isWorkerRequest, toWireError } from './protocol.js';

test('requests: each op with its fields is accepted; anything else, or larger than MAX_MESSAGE_BYTES, is refused', () => {
  for (const ok of [
    { id: 1, op: 'renew', force: false },
    { id: 2, op: 'channel' },
    { id: 3, op: 'connect', to: { host: 'gw', port: 443 } },
    { id: 4, op: 'connect', to: { host: 'gw', port: 443 }, servername: 'gw.example', extraCaPem: '-----BEGIN CERTIFICATE-----' },
  ]) {
    assert.equal(isWorkerRequest(ok), true, JSON.stringify(ok));
  }
  for (const bad of [
    null,
    'renew',
    { op: 'renew', force: true },
    { id: 1, op: 'renew' },
    { id: 1, op: 'exec', cmd: 'sh' },
    { id: 1, op: 'connect', to: 'gw:443' },
    { id: 1, op: 'connect', to: { host: 'gw', port: '443' } },
    { id: 1, op: 'connect', to: { host: 'gw', port: 443 }, extraCaPem: 'x'.repeat(MAX_MESSAGE_BYTES) },
  ]) {
    assert.equal(isWorkerRequest(bad), false, JSON.stringify(bad)?.slice(0, 80));
  }
});

test('worker messages: replies, logs and channel events are checked field by field', () => {
  for (const ok of [
    { id: 1, ok: true, renew: { renewed: false } },
    { id: 1, ok: true, renew: { renewed: true, kind: 'recover', previousSerial: '0a' } },
    { id: 2, ok: true, channel: 'started' },
    { id: 3, ok: true, connect: { up: 1, down: 2 } },
    { id: 3, ok: true, connect: { up: 1, down: 0, refused: 'the gateway refused' } },
    { id: 4, ok: false, error: { code: 'REENROLL_REQUIRED', message: 'revoked', details: { status: 403 } } },
    { event: 'log', line: 'latchkey: control channel connected' },
    { event: 'channel', channel: { kind: 'revoked', reason: 'keyCompromise', at: '2026-01-01T00:00:00Z' } },
    { event: 'channel', channel: { kind: 'policy', certLifetimeSeconds: 3600, renewFraction: 0.5, heartbeatSeconds: 30 } },
  ]) {
    assert.equal(isWorkerMessage(ok), true, JSON.stringify(ok));
  }
  for (const bad of [
    { id: 1, ok: true },
    { id: 1, ok: true, renew: { renewed: true } },
    { id: 1, ok: false, error: { code: 'NO_SUCH_CODE', message: 'x' } },
    { id: 1, ok: false, error: 'boom' },
    { event: 'channel', channel: { kind: 'revoked' } },
    { event: 'channel', channel: { kind: 'policy', certLifetimeSeconds: '3600', renewFraction: 0.5, heartbeatSeconds: 30 } },
    { event: 'log', line: 'x'.repeat(MAX_MESSAGE_BYTES) },
  ]) {
    assert.equal(isWorkerMessage(bad), false, JSON.stringify(bad).slice(0, 80));
  }
});

test('errors cross the process boundary with their code: an AgentError is rethrown as itself, anything else is a KEYSTORE error', () => {
  const back = fromWireError(toWireError(new AgentError('SERVER_REFUSED', 'no', { serverCode: 'DEVICE_REVOKED', status: 403 })));
  assert.ok(back instanceof AgentError);
  assert.deepEqual([back.code, back.message, back.details, back.exitCode], ['SERVER_REFUSED', 'no', { serverCode: 'DEVICE_REVOKED', status: 403 }, 1]);
  assert.equal(fromWireError(toWireError(new AgentError('REENROLL_REQUIRED', 'enroll again'))).exitCode, 3);
  const ks = fromWireError(toWireError(new KeystoreError('KEYSTORE_LOCKED', 'the PIN was refused')));
  assert.deepEqual([ks.code, ks.message], ['KEYSTORE', 'the PIN was refused']);
  assert.equal(isWorkerMessage({ id: 1, ok: false, error: toWireError(new Error('CKR_DEVICE_ERROR')) }), true);
});
