import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { syncSummary } from './users-commands.js';

describe('users sync output', () => {
  test('names who was removed, disabled, not checked, and the revoked devices', () => {
    const text = syncSummary({ checked: 4, unchanged: 1, removed: ['alice@example.com'], disabled: ['carol@example.com'], unreachable: ['dan@example.com'], revokedDevices: ['0b6f0000-0000-4000-8000-000000000001', '0b6f0000-0000-4000-8000-000000000002'] });
    assert.equal(
      text,
      [
        'checked 4 user(s): 1 unchanged, 1 removed, 1 disabled, 1 not checked',
        'removed (no longer in an allowed group or domain): alice@example.com',
        'disabled or deleted at the identity provider: carol@example.com',
        'the identity provider could not be asked about (nothing changed for them; run users sync again later): dan@example.com',
        'revoked 2 device(s): 0b6f0000-0000-4000-8000-000000000001, 0b6f0000-0000-4000-8000-000000000002',
      ].join('\n'),
    );
    assert.equal(syncSummary({ checked: 2, unchanged: 2, removed: [], disabled: [], unreachable: [], revokedDevices: [] }), 'checked 2 user(s): 2 unchanged, 0 removed, 0 disabled, 0 not checked\nno device was revoked');
  });

  test('a held sync says why, and that nothing was revoked', () => {
    const text = syncSummary({ checked: 10, unchanged: 0, removed: [], disabled: [], unreachable: [], revokedDevices: [], held: 'it would take devices from 10 of 10 people; check the IdP, then run users sync --force' });
    assert.equal(text, 'checked 10 user(s): 0 unchanged, 0 removed, 0 disabled, 0 not checked\nheld: it would take devices from 10 of 10 people; check the IdP, then run users sync --force\nno device was revoked');
  });
});
