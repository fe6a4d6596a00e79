/**
 * wire.ts holds the plain lists the agent and the admin console use at run
 * time without TypeBox; the schemas are built from them. These tests hold the
 * two together and keep wire.js free of any schema library.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AdminRole, DeviceListQuery, DeviceStatus, RevokeReason, SortOrder } from './admin.js';
import { ADMIN_ROLES, DEFAULT_DEVICE_ORDER, DEVICE_SORTS, DEVICE_STATUSES, LIVE_EVENTS, REVOKE_REASONS, roleAtLeast, SORT_ORDERS } from './wire.js';
import * as protocol from './index.js';

const literals = (s: TSchema): unknown[] => (s.anyOf as { const: unknown }[]).map((x) => x.const);

describe('the wire lists are the schemas’ lists', () => {
  test('RevokeReason, AdminRole, DeviceStatus and SortOrder accept exactly their wire list, in order', () => {
    assert.deepEqual(literals(RevokeReason), [...REVOKE_REASONS]);
    assert.deepEqual(literals(AdminRole), [...ADMIN_ROLES]);
    assert.deepEqual(literals(DeviceStatus), [...DEVICE_STATUSES]);
    assert.deepEqual(literals(SortOrder), [...SORT_ORDERS]);
  });

  test('DeviceListQuery takes every DEVICE_SORTS name and SORT_ORDERS order, and nothing else', () => {
    for (const sort of DEVICE_SORTS) for (const order of SORT_ORDERS) assert.ok(Value.Check(DeviceListQuery, { sort, order }), `${sort} ${order}`);
    assert.ok(!Value.Check(DeviceListQuery, { sort: 'serial' }));
    assert.ok(!Value.Check(DeviceListQuery, { order: 'up' }));
    assert.deepEqual(Object.keys(DEFAULT_DEVICE_ORDER).sort(), [...DEVICE_SORTS].sort());
  });

  test('the full package exports the same lists (one copy, not two)', () => {
    assert.equal(protocol.REVOKE_REASONS, REVOKE_REASONS);
    assert.equal(protocol.LIVE_EVENTS, LIVE_EVENTS);
    assert.equal(protocol.ADMIN_ROLES, ADMIN_ROLES);
    assert.equal(protocol.DEVICE_STATUSES, DEVICE_STATUSES);
    assert.equal(protocol.DEFAULT_DEVICE_ORDER, DEFAULT_DEVICE_ORDER);
  });

  test('roles: viewer < operator < admin', () => {
    assert.ok(roleAtLeast('admin', 'operator') && roleAtLeast('operator', 'operator') && roleAtLeast('viewer', 'viewer'));
    assert.ok(!roleAtLeast('viewer', 'operator') && !roleAtLeast('operator', 'admin'));
  });

  test('wire.js imports no schema library (the agent daemon and the console bundle load it)', () => {
    const imports = (file: string) => [...readFileSync(new URL(file, import.meta.url), 'utf8').matchAll(/\bfrom\s+['"]([^'"]+)['"]/g)].map((m) => m[1]);
    assert.deepEqual(imports('./wire.js'), ['./host-port.js']);
    assert.deepEqual(imports('./host-port.js'), []);
  });
});
