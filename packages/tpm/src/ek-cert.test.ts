import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { ekHash, readEkCertificate, verifyEkCertificate } from './ek-cert.js';
import { isTpmError } from './errors.js';
import { parsePublic2B, publicKeySpki } from './public.js';
import { ECC_EK_2B, EK_CERT_NOT_BEFORE, EK_CERT_PEM, EK_ISSUER_PEM, EK_ROOT_PEM, RSA_EK_2B } from './testing/swtpm-vectors.js';

const now = new Date(EK_CERT_NOT_BEFORE.getTime() + 86_400_000);
const chainInvalid = (e: unknown): boolean => isTpmError(e, 'CHAIN_INVALID');

describe('TCG EK Credential Profile: EK certificate chain (swtpm_localca)', () => {
  test('the EK certificate chains through the local CA to its root, certifies the RSA EK, names the TPM', () => {
    const r = verifyEkCertificate({ certificate: EK_CERT_PEM, intermediates: [EK_ISSUER_PEM], roots: [EK_ROOT_PEM], now, ekPublic: parsePublic2B(RSA_EK_2B) });
    assert.deepEqual(r.chain.map((c) => c.subject[0]?.value), ['swtpm-localca', 'swtpm-localca-rootca']);
    assert.deepEqual(r.tpm, { manufacturer: 'id:00001014', model: 'swtpm', version: 'id:20191023' });
  });

  test('it has no TLS EKU and needs none; trusting the issuing CA directly also works', () => {
    const r = verifyEkCertificate({ certificate: EK_CERT_PEM, roots: [EK_ISSUER_PEM], now });
    assert.equal(r.chain.length, 1);
  });

  test('refused: missing intermediate, an untrusted root, before notBefore, another EK', () => {
    assert.throws(() => verifyEkCertificate({ certificate: EK_CERT_PEM, roots: [EK_ROOT_PEM], now }), (e) => chainInvalid(e) && /stopped at "CN=unknown"/.test((e as Error).message));
    assert.throws(() => verifyEkCertificate({ certificate: EK_CERT_PEM, intermediates: [EK_ISSUER_PEM], roots: [EK_CERT_PEM], now }), chainInvalid);
    assert.throws(() => verifyEkCertificate({ certificate: EK_CERT_PEM, intermediates: [EK_ISSUER_PEM], roots: [EK_ROOT_PEM], now: new Date(EK_CERT_NOT_BEFORE.getTime() - 60_000) }), /not valid at/);
    assert.throws(() => verifyEkCertificate({ certificate: EK_CERT_PEM, intermediates: [EK_ISSUER_PEM], roots: [EK_ROOT_PEM], now, ekPublic: parsePublic2B(ECC_EK_2B) }), /another key/);
  });

  test('a tampered EK certificate does not chain', () => {
    const der = Buffer.from(EK_CERT_PEM.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    der[der.length - 10]! ^= 1;
    assert.throws(() => verifyEkCertificate({ certificate: der, intermediates: [EK_ISSUER_PEM], roots: [EK_ROOT_PEM], now }), chainInvalid);
  });
});

describe('EK inventory: the EK hash names the key, whether from its certificate or its TPM2B_PUBLIC', () => {
  test('readEkCertificate gives the SHA-256 of the SPKI of the EK the TPM reports, and the TPM info', () => {
    const r = readEkCertificate(EK_CERT_PEM);
    const fromTpm = createHash('sha256').update(publicKeySpki(parsePublic2B(RSA_EK_2B))).digest('hex');
    assert.equal(r.ekHash, fromTpm);
    assert.equal(ekHash(publicKeySpki(parsePublic2B(RSA_EK_2B))), fromTpm);
    assert.match(r.ekHash, /^[0-9a-f]{64}$/);
    assert.equal(r.tpm.manufacturer, 'id:00001014');
  });

  test('an unreadable certificate is CHAIN_INVALID', () => {
    assert.throws(() => readEkCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'), chainInvalid);
  });
});
