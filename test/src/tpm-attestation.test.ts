/**
 * @latchkey/tpm against a real software TPM: MakeCredential done in
 * TypeScript is activated by TPM2_ActivateCredential inside swtpm (RSA and
 * ECC EKs), a TPM2_Certify made by swtpm verifies in TypeScript, and the EK
 * certificate swtpm_setup wrote chains to swtpm_localca.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  deviceKeyAttributeProblems,
  isTpmError,
  makeCredential,
  objectName,
  parsePublic2B,
  publicKeySpki,
  verifyCertify,
  verifyEkCertificate,
} from '@latchkey/tpm';
import { AK_HANDLE as AK, activate, certify, createKey, swtpmWithEkCert } from '../../agent/test-support/dist/tpm-fixtures.js';
import { skipOrRequire } from './support/processes.js';

test('TCG credential activation and key certification against swtpm', async (t) => {
  const tpm = await swtpmWithEkCert(t);
  if (typeof tpm === 'string') return skipOrRequire(t, `missing ${tpm}`);

  tpm.tools('tpm2_createek', ['-G', 'rsa', '-c', 'ek-rsa.ctx', '-u', 'ek-rsa.pub']);
  tpm.tools('tpm2_createek', ['-G', 'ecc', '-c', 'ek-ecc.ctx', '-u', 'ek-ecc.pub']);
  tpm.tools('tpm2_createak', ['-C', 'ek-rsa.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name', '-r', 'ak.priv']);
  tpm.tools('tpm2_evictcontrol', ['-C', 'o', '-c', 'ak.ctx', AK]);
  const ak = parsePublic2B(readFileSync(join(tpm.dir, 'ak.pub')));
  const ekRsa = parsePublic2B(readFileSync(join(tpm.dir, 'ek-rsa.pub')));
  const ekEcc = parsePublic2B(readFileSync(join(tpm.dir, 'ek-ecc.pub')));

  await t.test('the AK Name computed in TypeScript is the one the TPM reports', () => {
    assert.ok(objectName(ak).equals(readFileSync(join(tpm.dir, 'ak.name'))));
  });

  for (const [label, ek, ctx] of [['RSA 2048 (OAEP, "IDENTITY")', ekRsa, 'ek-rsa.ctx'], ['ECC P-256 (ECDH, KDFe)', ekEcc, 'ek-ecc.ctx']] as const) {
    await t.test(`Part 1 §24: TPM2_ActivateCredential recovers a secret made in TypeScript for the ${label} EK`, () => {
      const secret = randomBytes(32);
      const r = activate(tpm, ctx, makeCredential({ ekPublic: ek, objectName: objectName(ak), secret, random: randomBytes }));
      assert.ok(r.ok, r.stderr);
      assert.ok(r.secret.equals(secret));
    });

    await t.test(`a credential made for another object's Name does not activate with the AK (${label})`, () => {
      const other = objectName(ekRsa);
      const r = activate(tpm, ctx, makeCredential({ ekPublic: ek, objectName: other, secret: randomBytes(16), random: randomBytes }));
      assert.equal(r.ok, false);
      assert.match(r.stderr, /integrity check failed/); // TPM_RC_INTEGRITY on credentialBlob: the outer HMAC binds the Name
    });
  }

  tpm.tools('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', 'primary.ctx']);
  const key = parsePublic2B(createKey(tpm, 'key', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', '0x81000102'));
  const loose = parsePublic2B(createKey(tpm, 'loose', 'sensitivedataorigin|userwithauth|sign', '0x81000103'));
  const nonce = randomBytes(32);
  const made = certify(tpm, 0x81000102, 0x81000101, nonce);

  await t.test('Part 3 §18.2: the TPM2_Certify of the device key by the AK verifies, and the key passes the policy', () => {
    const a = verifyCertify({ akPublic: ak, ...made, nonce, certifiedPublic: key });
    assert.ok(a.qualifiedSigner.length > 0);
    assert.deepEqual(deviceKeyAttributeProblems(key), []);
    assert.equal(publicKeySpki(key).length, 91);
  });

  await t.test('refused: another nonce, another key public, a flipped signature bit', () => {
    assert.throws(() => verifyCertify({ akPublic: ak, ...made, nonce: randomBytes(32), certifiedPublic: key }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
    assert.throws(() => verifyCertify({ akPublic: ak, ...made, nonce, certifiedPublic: loose }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
    const sig = Buffer.from(made.signature);
    sig[20]! ^= 0x10;
    assert.throws(() => verifyCertify({ akPublic: ak, attest: made.attest, signature: sig, nonce, certifiedPublic: key }), (e) => isTpmError(e, 'SIGNATURE_INVALID'));
  });

  await t.test('a key created with fixedTPM clear is certified truthfully and refused by the policy', () => {
    const n = randomBytes(32);
    verifyCertify({ akPublic: ak, ...certify(tpm, 0x81000103, 0x81000101, n), nonce: n, certifiedPublic: loose });
    const problems = deviceKeyAttributeProblems(loose);
    assert.match(problems.join('\n'), /^fixedTPM is clear/m);
    assert.match(problems.join('\n'), /^fixedParent is clear/m);
  });

  await t.test('TCG EK credential profile: the EK certificate in NV chains to swtpm_localca and certifies the RSA EK', () => {
    const der = tpm.tools('tpm2_nvread', ['0x1c00002']).stdout;
    const r = verifyEkCertificate({
      certificate: der,
      intermediates: [readFileSync(tpm.issuerCaPem, 'utf8')],
      roots: [readFileSync(tpm.rootCaPem, 'utf8')],
      now: new Date(),
      ekPublic: ekRsa,
    });
    assert.equal(r.tpm.model, 'swtpm');
    assert.throws(() => verifyEkCertificate({ certificate: der, roots: [readFileSync(tpm.rootCaPem, 'utf8')], now: new Date(), ekPublic: ekRsa }), (e) => isTpmError(e, 'CHAIN_INVALID'));
  });
});
