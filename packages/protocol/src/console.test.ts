import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { ConsoleSession, ConsoleSignInOptions } from './console.js';

const session = {
  actor: 'user:alice@example.com',
  role: 'operator',
  kind: 'session',
  user: 'alice@example.com',
  expiresAt: '2026-03-01T20:00:00.000Z',
  csrfToken: 'Zm9vYmFy',
  serverUrl: 'https://latchkey.example.com:8443',
  caFingerprint: 'ab'.repeat(32),
};

describe('console sign-in shapes', () => {
  test('GET /v1/console/session: a cookie session has a CSRF token; a bearer token has null, and no user or end', () => {
    assert.ok(Value.Check(ConsoleSession, session));
    assert.ok(Value.Check(ConsoleSession, { ...session, kind: 'token', user: null, expiresAt: null, csrfToken: null, actor: 'admin:ci' }));
    assert.ok(!Value.Check(ConsoleSession, { ...session, kind: 'cookie' }));
    assert.ok(!Value.Check(ConsoleSession, { ...session, role: 'root' }));
    assert.ok(!Value.Check(ConsoleSession, { ...session, caFingerprint: 'AB'.repeat(32) }), 'the fingerprint is lower-case hex, as `latchkey enroll --ca-fingerprint` prints it');
    const { csrfToken: _, ...noCsrf } = session;
    assert.ok(!Value.Check(ConsoleSession, noCsrf));
  });

  test('GET /v1/console/sign-in-options', () => {
    assert.ok(Value.Check(ConsoleSignInOptions, { providers: [{ issuer: 'https://idp.example.com', name: 'idp.example.com' }], tokenSignIn: false }));
    assert.ok(!Value.Check(ConsoleSignInOptions, { providers: [] }));
  });
});
