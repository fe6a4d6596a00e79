import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { akAttributeProblems, deviceKeyAttributeProblems, verifyCertify } from './certify.js';
import { isTpmError } from './errors.js';
import { attributesOf, parsePublic2B, type TpmPublic } from './public.js';
import { AK_2B, CERTIFY_ATTEST, CERTIFY_NONCE, CERTIFY_SIGNATURE, KEY_2B, RSA_EK_2B } from './testing/swtpm-vectors.js';

const ak = parsePublic2B(AK_2B);
const key = parsePublic2B(KEY_2B);
const good = { akPublic: ak, attest: CERTIFY_ATTEST, signature: CERTIFY_SIGNATURE, nonce: CERTIFY_NONCE, certifiedPublic: key };
const withAttrs = (p: TpmPublic, change: (raw: number) => number): TpmPublic => {
  const objectAttributes = change(p.objectAttributes) >>> 0;
  return { ...p, objectAttributes, attributes: attributesOf(objectAttributes) } as TpmPublic;
};

describe('TPM 2.0 Part 3 §18.2 TPM2_Certify verification', () => {
  test('the certify a TPM made verifies with its AK, the nonce and the key', () => {
    const a = verifyCertify(good);
    assert.ok(a.extraData.equals(CERTIFY_NONCE));
  });

  test('another nonce is refused (a replayed attestation)', () => {
    assert.throws(() => verifyCertify({ ...good, nonce: Buffer.from('00112233445566778898', 'hex') }), (e) => isTpmError(e, 'ATTESTATION_INVALID') && /nonce/.test(e.message));
    assert.throws(() => verifyCertify({ ...good, nonce: CERTIFY_NONCE.subarray(1) }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
  });

  test('a different key public is refused, even the same key with other attributes', () => {
    assert.throws(() => verifyCertify({ ...good, certifiedPublic: parsePublic2B(RSA_EK_2B) }), (e) => isTpmError(e, 'ATTESTATION_INVALID') && /different key/.test(e.message));
    const sameKeyOtherAttrs = withAttrs(key, (r) => r | (1 << 10));
    assert.throws(() => verifyCertify({ ...good, certifiedPublic: sameKeyOtherAttrs }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
  });

  test('a flipped bit in the signature or in the signed attestation is refused', () => {
    const sig = Buffer.from(CERTIFY_SIGNATURE);
    sig[sig.length - 1]! ^= 1;
    assert.throws(() => verifyCertify({ ...good, signature: sig }), (e) => isTpmError(e, 'SIGNATURE_INVALID'));
    const att = Buffer.from(CERTIFY_ATTEST);
    att[att.length - 1]! ^= 1;
    assert.throws(() => verifyCertify({ ...good, attest: att }), (e) => isTpmError(e, 'SIGNATURE_INVALID'));
  });

  test('a signature by a key other than the AK is refused', () => {
    const otherAk = { ...ak, unique: Buffer.from(parsePublic2B(RSA_EK_2B).unique as Buffer) } as TpmPublic;
    assert.throws(() => verifyCertify({ ...good, akPublic: otherAk }), (e) => isTpmError(e, 'SIGNATURE_INVALID'));
  });

  test('an AK that is not a restricted signing key is refused before its signature counts', () => {
    const unrestricted = withAttrs(ak, (r) => r & ~(1 << 16));
    assert.throws(() => verifyCertify({ ...good, akPublic: unrestricted }), (e) => isTpmError(e, 'ATTESTATION_INVALID') && /restricted is clear/.test(e.message));
  });
});

describe('key attribute policies (Part 2 §8.3 TPMA_OBJECT)', () => {
  test('the AK and the device key a TPM made pass', () => {
    assert.deepEqual(akAttributeProblems(ak), []);
    assert.deepEqual(deviceKeyAttributeProblems(key), []);
  });

  test('each missing residency attribute is named', () => {
    const p = withAttrs(key, (r) => r & ~((1 << 1) | (1 << 4) | (1 << 5)));
    const problems = deviceKeyAttributeProblems(p);
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /^fixedTPM is clear/);
    assert.match(problems[1]!, /^fixedParent is clear/);
    assert.match(problems[2]!, /^sensitiveDataOrigin is clear/);
  });

  test('a TLS key must sign, unrestricted, and not decrypt unless allowed', () => {
    assert.deepEqual(deviceKeyAttributeProblems(withAttrs(key, (r) => r & ~(1 << 18))).length, 1);
    assert.match(deviceKeyAttributeProblems(withAttrs(key, (r) => r | (1 << 16)))[0]!, /restricted is set/);
    const decrypting = withAttrs(key, (r) => r | (1 << 17));
    assert.match(deviceKeyAttributeProblems(decrypting)[0]!, /decrypt is set/);
    assert.deepEqual(deviceKeyAttributeProblems(decrypting, { allowDecrypt: true }), []);
    assert.match(deviceKeyAttributeProblems(ak).join(), /restricted is set/);
  });

  test('weak names, small keys and reserved bits are named', () => {
    assert.match(deviceKeyAttributeProblems({ ...key, nameAlg: 0x0004 })[0]!, /nameAlg is SHA1/);
    assert.match(deviceKeyAttributeProblems(withAttrs(key, (r) => r | 1))[0]!, /reserved objectAttributes/);
    const small = { ...ak, parameters: { ...(ak.type === 'rsa' ? ak.parameters : ({} as never)), keyBits: 1024 } } as TpmPublic;
    assert.match(akAttributeProblems(small).join(), /at least 2048/);
  });
});
