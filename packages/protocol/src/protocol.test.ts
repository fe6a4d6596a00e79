import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FormatRegistry } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import {
  AgentMessage,
  DeviceFacts,
  ERROR_CODES,
  ErrorBody,
  GatewayEvent,
  RevokeRequest,
  ServerMessage,
  TokenCreateRequest,
  Device,
  EST_PATHS,
  CRL_REASONS,
} from './index.js';

// TypeBox leaves string formats to the application; register the ones we use.
FormatRegistry.Set('uuid', (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v));
FormatRegistry.Set('date-time', (v) => !Number.isNaN(Date.parse(v)));
FormatRegistry.Set('email', (v) => /^[^@\s]+@[^@\s]+$/.test(v));

const facts = { hostname: 'laptop-7', os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: 'a1b2c3', agentVersion: '0.1.0' };

describe('protocol schemas', () => {
  test('RFC 7030 §3.2.2: EST paths live under /.well-known/est', () => {
    assert.equal(EST_PATHS.simpleenroll, '/.well-known/est/simpleenroll');
    assert.equal(EST_PATHS.cacerts, '/.well-known/est/cacerts');
  });

  test('facts: valid ones pass; oversized hostname and extra fields fail', () => {
    assert.ok(Value.Check(DeviceFacts, facts));
    assert.ok(!Value.Check(DeviceFacts, { ...facts, hostname: 'h'.repeat(254) }));
    assert.ok(!Value.Check(DeviceFacts, { ...facts, secret: 'x' }));
    assert.ok(!Value.Check(DeviceFacts, { ...facts, os: { platform: 'beos', release: '5' } }));
  });

  test('agent messages: hello/status/heartbeat pass; an unknown type fails', () => {
    assert.ok(Value.Check(AgentMessage, { type: 'hello', protocolVersion: 1, agentVersion: '0.1.0', facts }));
    assert.ok(Value.Check(AgentMessage, { type: 'status', serial: 'ab01', notAfter: '2026-03-02T12:00:00Z', keystore: 'pkcs11' }));
    assert.ok(Value.Check(AgentMessage, { type: 'heartbeat', seq: 3 }));
    assert.ok(!Value.Check(AgentMessage, { type: 'shutdown' }));
    assert.ok(!Value.Check(AgentMessage, { type: 'status', serial: 'XYZ', notAfter: '2026-03-02T12:00:00Z', keystore: 'os' }));
  });

  test('server messages: revoked needs a known reason and a time', () => {
    assert.ok(Value.Check(ServerMessage, { type: 'revoked', reason: 'keyCompromise', revokedAt: '2026-03-01T12:00:00Z' }));
    assert.ok(!Value.Check(ServerMessage, { type: 'revoked', reason: 'because', revokedAt: '2026-03-01T12:00:00Z' }));
    assert.ok(!Value.Check(ServerMessage, { type: 'revoked', reason: 'keyCompromise', revokedAt: 'yesterday' }));
    assert.ok(Value.Check(ServerMessage, { type: 'policy', certLifetimeSeconds: 86400, renewFraction: 0.66, heartbeatSeconds: 30 }));
    assert.ok(!Value.Check(ServerMessage, { type: 'policy', certLifetimeSeconds: 86400, renewFraction: 1.5, heartbeatSeconds: 30 }));
  });

  test('gateway events carry a cursor', () => {
    assert.ok(Value.Check(GatewayEvent, { type: 'revocation', cursor: '17', deviceId: '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90', serials: ['ab'], issuer: 'issuing', reason: 'superseded', at: '2026-03-01T12:00:00Z' }));
    assert.ok(!Value.Check(GatewayEvent, { type: 'crl-updated', issuer: 'issuing', crlNumber: '5', url: '/crl' }));
  });

  test('admin requests reject additional properties and bad values', () => {
    assert.ok(Value.Check(TokenCreateRequest, { uses: 1, ttl: '24h', group: 'laptops' }));
    assert.ok(!Value.Check(TokenCreateRequest, { uses: 0 }));
    assert.ok(!Value.Check(TokenCreateRequest, { ttl: '24 hours' }));
    assert.ok(!Value.Check(TokenCreateRequest, { uses: 1, admin: true }));
    assert.ok(Value.Check(RevokeRequest, { reason: 'keyCompromise' }));
    assert.ok(!Value.Check(RevokeRequest, { reason: 'cACompromise' }));
    assert.ok(!Value.Check(Device, { id: 'x' }));
  });

  test('error bodies use registered codes; RFC 5280 reason codes skip 7', () => {
    assert.ok(Value.Check(ErrorBody, { error: { code: 'TOKEN_EXHAUSTED', message: 'used 1/1 times' }, reqId: 'r1' }));
    assert.ok(!Value.Check(ErrorBody, { error: { code: 'NOPE', message: 'x' } }));
    assert.equal(ERROR_CODES.APPROVAL_PENDING.status, 202);
    assert.ok(!Object.values(CRL_REASONS).includes(7 as never));
  });
});
