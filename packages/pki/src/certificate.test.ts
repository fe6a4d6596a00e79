import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { isIssuedBy, parseCertificate, signCertificate } from './certificate.js';
import { encodeName } from './name.js';
import type { SignatureAlgorithm } from './keys.js';
import { randomSerial } from './serial.js';
import { NOW, ecKey, newCa, spkiOf } from './testing/support.js';

/** A certificate that names `issuerDer` as its issuer, with a signature of our choosing (what anyone can present over TLS). */
async function forged(issuerDer: Buffer, algorithm: SignatureAlgorithm, signature: Buffer) {
  const key = ecKey();
  const der = await signCertificate(
    { serial: randomSerial(crypto.randomBytes), issuerDer, subjectDer: encodeName([{ type: 'CN', value: 'forged' }]), spki: spkiOf(key), notBefore: NOW, notAfter: new Date(NOW.getTime() + 86_400_000), extensions: [] },
    { algorithm, spki: spkiOf(key), sign: () => signature },
  );
  return parseCertificate(der);
}

describe('isIssuedBy (RFC 5280 §6.1.3 (a)(1): the signature is verified with the issuer key)', () => {
  test('a certificate that only names the CA is not issued by it: a malformed ECDSA signature or a foreign algorithm is false, not a throw (found by pnpm fuzz est-reenroll)', async () => {
    const ca = await newCa();
    const issuer = ca.issuing.cert;
    // SEQUENCE { INTEGER 1, SEQUENCE {} }: not an ECDSA-Sig-Value.
    assert.equal(isIssuedBy(await forged(issuer.subjectDer, 'ecdsa-with-SHA256', Buffer.from('30050201013000', 'hex')), issuer), false);
    assert.equal(isIssuedBy(await forged(issuer.subjectDer, 'ecdsa-with-SHA256', Buffer.from('deadbeef', 'hex')), issuer), false);
    // An RSA signature algorithm with the CA's EC key.
    assert.equal(isIssuedBy(await forged(issuer.subjectDer, 'sha256WithRSAEncryption', Buffer.alloc(256, 1)), issuer), false);
    // A well-formed signature by another key.
    assert.equal(isIssuedBy(await forged(issuer.subjectDer, 'ecdsa-with-SHA256', Buffer.from('3006020101020101', 'hex')), issuer), false);
    assert.equal(isIssuedBy(issuer, ca.root), true);
  });
});
