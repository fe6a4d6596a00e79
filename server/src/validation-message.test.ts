/**
 * A request that fails its schema gets one sentence naming what is allowed
 * (issue 11 "Command lines": `--reason stolen` said "must be equal to
 * constant" six times).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { REVOKE_REASONS } from '@latchkey/protocol';
import { adminCall, harness } from './testing/harness.js';
import { validationMessage } from './validation-message.js';

describe('validation messages', () => {
  test('a union of literals is reported once, with its values', () => {
    const errors = [
      ...['a', 'b', 'c'].map((v) => ({ keyword: 'const', instancePath: '/reason', message: 'must be equal to constant', params: { allowedValue: v } })),
      { keyword: 'anyOf', instancePath: '/reason', message: 'must match a schema in anyOf', params: {} },
    ];
    assert.equal(validationMessage('body', errors), 'body/reason must be one of: a, b, c');
  });

  test('other errors keep their own words; the path starts with the context', () => {
    assert.equal(validationMessage('body', [{ keyword: 'minimum', instancePath: '/uses', message: 'must be >= 1', params: {} }]), 'body/uses must be >= 1');
    assert.equal(validationMessage('body', [{ keyword: 'required', instancePath: '', message: "must have required property 'name'", params: {} }]), "body must have required property 'name'");
    assert.equal(validationMessage('querystring', [{ keyword: 'enum', instancePath: '/status', message: 'must be equal to one of the allowed values', params: { allowedValues: ['x', 'y'] } }]), 'querystring/status must be one of: x, y');
  });

  test('POST /v1/admin/devices/:id/revoke with an unknown reason: 400 naming every reason, once', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const r = await adminCall<{ error: { code: string; message: string } }>(h, 'POST', `/v1/admin/devices/${randomUUID()}/revoke`, { reason: 'stolen' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'BAD_REQUEST');
    assert.equal(r.json.error.message, `invalid request: body/reason must be one of: ${REVOKE_REASONS.join(', ')}`);
  });
});
