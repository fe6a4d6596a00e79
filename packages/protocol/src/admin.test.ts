import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import {
  AdminRole,
  AuditEvent,
  AuditPage,
  CRL_REASONS,
  Device,
  DeviceDetail,
  DeviceListQuery,
  DevicePage,
  GroupPolicy,
  RegisteredDeviceCreateRequest,
  REVOKE_REASONS,
  RevokeReason,
  RevokeRequest,
  TokenCreateRequest,
  TokenCreateResponse,
  TokenInfo,
} from './admin.js';

const at = '2026-03-01T12:00:00.000Z';
const deviceId = '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90';
const facts = { hostname: 'alice-mbp', os: { platform: 'darwin', release: '23.1' }, arch: 'arm64', hardwareId: 'C02XYZ', agentVersion: '0.1.0' };
const device = {
  id: deviceId,
  name: 'alice-mbp',
  status: 'active',
  group: 'default',
  facts,
  firstSeen: at,
  lastSeen: at,
  online: true,
  certificate: { serial: '5a1f00c3e9b27d4481a0f6b2c3d4e5f6', notBefore: at, notAfter: '2026-03-02T12:00:00.000Z', revokedAt: null },
};
const tokenInfo = { id: 't1', group: 'default', uses: 1, usedCount: 0, expiresAt: at, revokedAt: null, createdAt: at };

describe('RFC 5280 §5.3.1 CRLReason', () => {
  test('names carry their RFC integer codes and 7 is unused', () => {
    assert.equal(CRL_REASONS.unspecified, 0);
    assert.equal(CRL_REASONS.keyCompromise, 1);
    assert.equal(CRL_REASONS.affiliationChanged, 3);
    assert.equal(CRL_REASONS.superseded, 4);
    assert.equal(CRL_REASONS.cessationOfOperation, 5);
    assert.equal(CRL_REASONS.removeFromCRL, 8);
    assert.equal(CRL_REASONS.privilegeWithdrawn, 9);
    assert.equal(CRL_REASONS.aACompromise, 10);
    assert.ok(!(Object.values(CRL_REASONS) as number[]).includes(7));
  });

  test('an admin may revoke with device reasons only, never a CA reason or a hold', () => {
    for (const r of REVOKE_REASONS) assert.ok(Value.Check(RevokeReason, r), r);
    for (const r of ['cACompromise', 'aACompromise', 'certificateHold', 'removeFromCRL', 'because']) assert.ok(!Value.Check(RevokeReason, r), r);
  });
});

describe('admin requests are closed', () => {
  test('token create: uses, ttl in seconds or as a duration, group', () => {
    assert.ok(Value.Check(TokenCreateRequest, {}));
    assert.ok(Value.Check(TokenCreateRequest, { uses: 5, ttl: '24h', group: 'laptops' }));
    assert.ok(Value.Check(TokenCreateRequest, { ttl: 3600 }));
    assert.ok(!Value.Check(TokenCreateRequest, { uses: 0 }));
    assert.ok(!Value.Check(TokenCreateRequest, { uses: 1.5 }));
    assert.ok(!Value.Check(TokenCreateRequest, { ttl: '24 hours' }));
    assert.ok(!Value.Check(TokenCreateRequest, { ttl: 10 }));
    assert.ok(!Value.Check(TokenCreateRequest, { group: 'Laptops!' }));
  });

  test('additional properties are rejected on every request', () => {
    assert.equal(Value.Errors(TokenCreateRequest, { uses: 1, role: 'admin' }).First()?.path, '/role');
    assert.ok(!Value.Check(RevokeRequest, { reason: 'keyCompromise', force: true }));
    assert.ok(!Value.Check(DeviceListQuery, { status: 'active', orderBy: 'name' }));
    assert.ok(Value.Check(DeviceListQuery, { status: 'active', sort: 'name', order: 'desc', online: true }));
    assert.ok(!Value.Check(GroupPolicy, { name: 'laptops', certLifetimeSeconds: 86400, requireApproval: false, maxDevices: 3 }));
  });

  test('revoke: reason optional, a known RFC 5280 name when given', () => {
    assert.ok(Value.Check(RevokeRequest, {}));
    assert.ok(Value.Check(RevokeRequest, { reason: 'keyCompromise' }));
    assert.equal(Value.Errors(RevokeRequest, { reason: 'cACompromise' }).First()?.path, '/reason');
  });

  test('device list filters: status, group, q, limit, cursor', () => {
    assert.ok(Value.Check(DeviceListQuery, { status: 'pending', group: 'default', q: 'alice', limit: 50, cursor: 'abc' }));
    assert.ok(!Value.Check(DeviceListQuery, { status: 'gone' }));
    assert.ok(!Value.Check(DeviceListQuery, { limit: 0 }));
    assert.ok(!Value.Check(DeviceListQuery, { limit: 501 }));
    assert.ok(!Value.Check(DeviceListQuery, { q: 'x'.repeat(101) }));
  });

  test('group policy bounds the certificate lifetime', () => {
    const p = { attestation: 'none', requireRegisteredEk: false };
    assert.ok(Value.Check(GroupPolicy, { name: 'laptops', certLifetimeSeconds: 86400, requireApproval: true, ...p }));
    assert.ok(!Value.Check(GroupPolicy, { name: 'laptops', certLifetimeSeconds: 4, requireApproval: true, ...p }));
    assert.ok(!Value.Check(GroupPolicy, { name: 'laptops', certLifetimeSeconds: 86400, ...p }));
  });

  test('group attestation is none or tpm', () => {
    const g = { name: 'laptops', certLifetimeSeconds: 86400, requireApproval: false, requireRegisteredEk: true };
    assert.ok(Value.Check(GroupPolicy, { ...g, attestation: 'tpm' }));
    assert.equal(Value.Errors(GroupPolicy, { ...g, attestation: 'sgx' }).First()?.path, '/attestation');
  });

  test('registered device: an EK hash is 64 hex digits; unknown fields refused', () => {
    assert.ok(Value.Check(RegisteredDeviceCreateRequest, { ekHash: 'A'.repeat(64), name: 'kiosk-1', group: 'kiosks' }));
    assert.ok(!Value.Check(RegisteredDeviceCreateRequest, { ekHash: 'a'.repeat(63) }));
    assert.ok(!Value.Check(RegisteredDeviceCreateRequest, { ekHash: 'a'.repeat(64), serial: 'x' }));
  });

  test('admin roles are viewer, operator and admin', () => {
    for (const r of ['viewer', 'operator', 'admin']) assert.ok(Value.Check(AdminRole, r));
    assert.ok(!Value.Check(AdminRole, 'root'));
  });
});

describe('admin responses', () => {
  test('token create response shows the secret once, next to the listed info', () => {
    assert.ok(Value.Check(TokenCreateResponse, { token: 'lk_' + 'a'.repeat(40), info: tokenInfo }));
    assert.ok(!Value.Check(TokenCreateResponse, { info: tokenInfo }));
    assert.ok(!('token' in TokenInfo.properties) && !('secret' in TokenInfo.properties) && !('hash' in TokenInfo.properties));
  });

  test('a device with its current certificate passes; a bad id, status or serial fails', () => {
    assert.ok(Value.Check(Device, device));
    assert.ok(Value.Check(Device, { ...device, status: 'pending', facts: null, lastSeen: null, certificate: null }));
    assert.equal(Value.Errors(Device, { ...device, id: 'x' }).First()?.path, '/id');
    assert.equal(Value.Errors(Device, { ...device, status: 'deleted' }).First()?.path, '/status');
    // `certificate` is a union with null, so TypeBox reports the error at the union.
    assert.equal(Value.Errors(Device, { ...device, certificate: { ...device.certificate, serial: 'XYZ' } }).First()?.path, '/certificate');
    assert.equal(Value.Errors(Device, { ...device, firstSeen: 'yesterday' }).First()?.path, '/firstSeen');
  });

  test('responses are open: a field added by a newer server does not break a client', () => {
    assert.ok(Value.Check(Device, { ...device, tags: ['x'] }));
    assert.ok(Value.Check(TokenInfo, { ...tokenInfo, note: 'x' }));
  });

  test('device detail lists the certificate history', () => {
    const cert = { serial: 'ab01', kind: 'renew', notBefore: at, notAfter: at, issuedAt: at, revokedAt: at, revocationReason: 'superseded' };
    assert.ok(Value.Check(DeviceDetail, { ...device, certificates: [cert] }));
    assert.ok(!Value.Check(DeviceDetail, { ...device, certificates: [{ ...cert, kind: 'steal' }] }));
    assert.ok(!Value.Check(DeviceDetail, device));
  });

  test('paginated lists carry items and a next cursor, null on the last page', () => {
    assert.ok(Value.Check(DevicePage, { items: [device], nextCursor: 'MjAyNi0wMy0wMVQxMjowMDowMC4wMDBafDZmMWMyYTRlLTBiN2QtNGMyZS05YTUxLTNkMmY4ZTdiMWM5MA' }));
    assert.ok(Value.Check(DevicePage, { items: [], nextCursor: null }));
    assert.ok(!Value.Check(DevicePage, { items: [device] }));
    assert.ok(!Value.Check(DevicePage, { items: [{ ...device, id: 'x' }], nextCursor: null }));
  });

  test('audit event: who did what to what, with details', () => {
    const e = { id: '42', at, actor: 'admin:first', action: 'device.revoke', target: deviceId, details: { reason: 'keyCompromise' } };
    assert.ok(Value.Check(AuditEvent, e));
    assert.ok(Value.Check(AuditPage, { items: [e, { ...e, target: null }], nextCursor: '41' }));
    assert.ok(!Value.Check(AuditEvent, { ...e, details: 'x' }));
    assert.ok(!Value.Check(AuditEvent, { ...e, actor: 'admin:\u001b[31mfirst' }));
  });
});
