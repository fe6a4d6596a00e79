import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assuranceLines, assuranceOf } from './admin-commands.js';

const EK = 'ab'.repeat(32);

describe('devices show / list: assurance (issue 14)', () => {
  test('an attested device shows its level, EK hash, how the EK was trusted, manufacturer and when', () => {
    assert.deepEqual(assuranceLines({ assurance: 'tpm-attested', tpm: { ekHash: EK, ekTrust: 'certificate', manufacturer: 'id:53544D20', attestedAt: '2026-12-03T10:00:00.000Z' } }), [
      "assurance         tpm-attested (the key was proven to be in this device's TPM, non-exportable)",
      `tpm.ekHash        ${EK}`,
      'tpm.ekTrust       certificate (its EK certificate chains to a configured TPM manufacturer root)',
      'tpm.manufacturer  id:53544D20',
      'tpm.attestedAt    2026-12-03T10:00:00.000Z',
    ]);
    const registered = assuranceLines({ assurance: 'tpm-attested', tpm: { ekHash: EK, ekTrust: 'registered', manufacturer: null, attestedAt: '2026-12-03T10:00:00.000Z' } });
    assert.equal(registered[2], 'tpm.ekTrust       registered (an admin registered its EK: devices register)');
    assert.equal(registered[3], 'tpm.manufacturer  -');
  });

  test('a software device, and one from a server before issue 14 (no assurance field), are software, with no TPM lines', () => {
    for (const d of [{ assurance: 'software' as const, tpm: null }, {}]) {
      assert.deepEqual(assuranceLines(d), ['assurance         software (no TPM attestation: the key may be in a file)']);
      assert.equal(assuranceOf(d), 'software');
    }
    assert.equal(assuranceOf({ assurance: 'tpm-attested' }), 'tpm-attested');
  });
});
