import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { ERROR_CODES, ERROR_CODE_NAMES, ErrorBody, ErrorCodeSchema } from './errors.js';

describe('error code registry', () => {
  test('every code has an HTTP status and a one-line meaning', () => {
    for (const [code, { status, meaning }] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^[A-Z][A-Z0-9_]*$/);
      assert.ok(Number.isInteger(status) && status >= 200 && status <= 599, `${code}: ${status}`);
      assert.ok(meaning.length > 0 && !meaning.includes('\n'), code);
    }
  });

  test('statuses of codes clients branch on', () => {
    assert.equal(ERROR_CODES.APPROVAL_PENDING.status, 202);
    assert.equal(ERROR_CODES.UNSUPPORTED_MEDIA_TYPE.status, 415);
    assert.equal(ERROR_CODES.PAYLOAD_TOO_LARGE.status, 413);
    assert.equal(ERROR_CODES.RATE_LIMITED.status, 429);
    assert.equal(ERROR_CODES.INTERNAL.status, 500);
    assert.equal(ERROR_CODES.TOKEN_EXHAUSTED.status, 403);
    assert.equal(ERROR_CODES.CLIENT_CERT_REQUIRED.status, 401);
  });

  test('the schema accepts exactly the registered codes', () => {
    for (const code of ERROR_CODE_NAMES) assert.ok(Value.Check(ErrorCodeSchema, code), code);
    assert.equal(ERROR_CODE_NAMES.length, Object.keys(ERROR_CODES).length);
    assert.ok(!Value.Check(ErrorCodeSchema, 'NOPE'));
    assert.ok(!Value.Check(ErrorCodeSchema, 'token_exhausted'));
  });
});

describe('error body', () => {
  test('{ error: { code, message }, reqId } with a registered code passes', () => {
    assert.ok(Value.Check(ErrorBody, { error: { code: 'TOKEN_EXHAUSTED', message: 'enrollment token has been used 1/1 times' }, reqId: 'req-1' }));
    assert.ok(Value.Check(ErrorBody, { error: { code: 'NOT_FOUND', message: 'no device x' } }));
  });

  test('an unknown code, an empty message or a missing error object fails', () => {
    assert.equal(Value.Errors(ErrorBody, { error: { code: 'NOPE', message: 'x' } }).First()?.path, '/error/code');
    assert.equal(Value.Errors(ErrorBody, { error: { code: 'INTERNAL', message: '' } }).First()?.path, '/error/message');
    assert.ok(!Value.Check(ErrorBody, { code: 'INTERNAL', message: 'x' }));
  });
});
