import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mayEnroll, rolesFromGroups } from './oidc-fns.js';

const mapping = { viewer: ['it-view'], operator: ['it-ops'], admin: ['it-admin'] };

describe('rolesFromGroups', () => {
  test('the highest mapped role wins', () => {
    assert.equal(rolesFromGroups(['it-view', 'it-admin'], mapping), 'admin');
    assert.equal(rolesFromGroups(['x', 'it-ops', 'it-view'], mapping), 'operator');
    assert.equal(rolesFromGroups(['it-view'], mapping), 'viewer');
  });
  test('no mapped group gives no role', () => {
    assert.equal(rolesFromGroups(['staff'], mapping), undefined);
    assert.equal(rolesFromGroups([], mapping), undefined);
  });
});

describe('mayEnroll', () => {
  const cfg = { allowedEmailDomains: ['Example.com'], enrollGroups: ['staff'] };
  test('allowed domain and group', () => assert.equal(mayEnroll('a@example.COM', ['staff'], cfg), true));
  test('other domain or a subdomain is refused', () => {
    assert.equal(mayEnroll('a@evil.com', ['staff'], cfg), false);
    assert.equal(mayEnroll('a@sub.example.com', ['staff'], cfg), false);
    assert.equal(mayEnroll('a@example.com.evil.com', ['staff'], cfg), false);
  });
  test('outside the enroll groups is refused', () => assert.equal(mayEnroll('a@example.com', ['guests'], cfg), false));
  test('empty lists allow anyone; a malformed email never', () => {
    assert.equal(mayEnroll('a@x.org', [], { allowedEmailDomains: [], enrollGroups: [] }), true);
    assert.equal(mayEnroll('nobody', [], { allowedEmailDomains: [], enrollGroups: [] }), false);
  });
});
