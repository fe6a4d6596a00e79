import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { makeCredential } from './credential.js';
import { isTpmError } from './errors.js';
import { kdfa, kdfe } from './kdf.js';
import { attributesOf, parsePublic2B, type TpmPublic } from './public.js';
import { AK_2B, AK_NAME, ECC_EK_2B, RSA_EK_2B } from './testing/swtpm-vectors.js';

/** A deterministic byte source (SHA-256 in counter mode over a seed). */
function seeded(seed: string): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const out: Buffer[] = [];
    while (Buffer.concat(out).length < n) out.push(createHash('sha256').update(`${seed}:${i++}`).digest());
    return Buffer.concat(out).subarray(0, n);
  };
}
const secret = Buffer.from('0123456789abcdef0123456789abcdef');

describe('TPM 2.0 Part 1 §24 MakeCredential (the TPM cross-check is test/src/tpm-attestation.test.ts)', () => {
  test('the blob has the TPM2B_ID_OBJECT shape: outer HMAC (SHA-256) then the encrypted TPM2B_DIGEST', () => {
    for (const ek of [RSA_EK_2B, ECC_EK_2B]) {
      const c = makeCredential({ ekPublic: parsePublic2B(ek), objectName: AK_NAME, secret, random: seeded('a') });
      assert.equal(c.credentialBlob.readUInt16BE(0), c.credentialBlob.length - 2);
      assert.equal(c.credentialBlob.readUInt16BE(2), 32);
      assert.equal(c.credentialBlob.length, 2 + 2 + 32 + 2 + secret.length);
      assert.equal(c.encryptedSecret.readUInt16BE(0), c.encryptedSecret.length - 2);
    }
  });

  test('ECC: the output depends only on the randomness passed in (ECDH with an ephemeral key from it)', () => {
    const ek = parsePublic2B(ECC_EK_2B);
    const a = makeCredential({ ekPublic: ek, objectName: AK_NAME, secret, random: seeded('x') });
    const b = makeCredential({ ekPublic: ek, objectName: AK_NAME, secret, random: seeded('x') });
    const c = makeCredential({ ekPublic: ek, objectName: AK_NAME, secret, random: seeded('y') });
    assert.ok(a.credentialBlob.equals(b.credentialBlob) && a.encryptedSecret.equals(b.encryptedSecret));
    assert.ok(!a.credentialBlob.equals(c.credentialBlob));
    // encryptedSecret is a TPMS_ECC_POINT: two 32-byte coordinates
    assert.equal(a.encryptedSecret.length, 2 + 2 + 32 + 2 + 32);
  });

  test('refuses an EK that is not a restricted decryption key, a secret too long, a malformed Name, short randomness', () => {
    const ek = parsePublic2B(RSA_EK_2B);
    const signing = { ...ek, objectAttributes: ek.objectAttributes | (1 << 18), attributes: attributesOf(ek.objectAttributes | (1 << 18)) } as TpmPublic;
    const bad = (e: unknown): boolean => isTpmError(e, 'ARGUMENT_INVALID');
    assert.throws(() => makeCredential({ ekPublic: signing, objectName: AK_NAME, secret, random: seeded('a') }), bad);
    assert.throws(() => makeCredential({ ekPublic: parsePublic2B(AK_2B), objectName: AK_NAME, secret, random: seeded('a') }), bad);
    assert.throws(() => makeCredential({ ekPublic: ek, objectName: AK_NAME, secret: Buffer.alloc(33), random: seeded('a') }), /1 to 32 bytes/);
    assert.throws(() => makeCredential({ ekPublic: ek, objectName: AK_NAME, secret: Buffer.alloc(0), random: seeded('a') }), bad);
    assert.throws(() => makeCredential({ ekPublic: ek, objectName: AK_NAME.subarray(1), secret, random: seeded('a') }), bad);
    assert.throws(() => makeCredential({ ekPublic: ek, objectName: AK_NAME, secret, random: () => Buffer.alloc(4) }), /returned 4 bytes/);
  });
});

describe('TPM 2.0 Part 1 §11.4.10 KDFa and KDFe', () => {
  test('KDFa counts from 1, ends the label with one 0 byte, and appends the bit count', async () => {
    const { createHmac } = await import('node:crypto');
    const key = Buffer.alloc(32, 7);
    const expect = createHmac('sha256', key).update(Buffer.from('00000001', 'hex')).update('STORAGE\0').update('u').update('v').update(Buffer.from('00000100', 'hex')).digest();
    assert.ok(kdfa(0x000b, key, 'STORAGE', Buffer.from('u'), Buffer.from('v'), 256).equals(expect));
    assert.ok(kdfa(0x000b, key, 'STORAGE\0', Buffer.from('u'), Buffer.from('v'), 256).equals(expect));
    // 128 bits: the first half of a block computed with [128] as the length
    assert.equal(kdfa(0x000b, key, 'STORAGE', Buffer.alloc(0), Buffer.alloc(0), 128).length, 16);
    assert.equal(kdfa(0x000b, key, 'X', Buffer.alloc(0), Buffer.alloc(0), 520).length, 65);
  });

  test('KDFe hashes counter || Z || label 0 || partyU || partyV', () => {
    const z = Buffer.alloc(32, 9);
    const expect = createHash('sha256').update(Buffer.from('00000001', 'hex')).update(z).update('IDENTITY\0').update('u').update('v').digest();
    assert.ok(kdfe(0x000b, z, 'IDENTITY', Buffer.from('u'), Buffer.from('v'), 256).equals(expect));
  });
});
