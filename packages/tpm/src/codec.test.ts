import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ALG } from './constants.js';
import { isTpmError } from './errors.js';
import { encodeAttest, parseAttest } from './attest.js';
import { attributesOf, attributesToNumber, encodePublic, objectName, parsePublic, parsePublic2B, publicKeySpki, type TpmPublic } from './public.js';
import { encodeSignature, parseSignature } from './signature.js';
import { AK_2B, AK_NAME, CERTIFY_ATTEST, CERTIFY_NONCE, CERTIFY_SIGNATURE, ECC_EK_2B, KEY_2B, RSA_EK_2B } from './testing/swtpm-vectors.js';

const malformed = (fn: () => unknown): void => assert.throws(fn, (e) => isTpmError(e, 'TPM_MALFORMED'));

describe('TPM 2.0 Part 2 §12.2 TPMT_PUBLIC', () => {
  test('reads the AK a TPM made, and its Name (Part 1 §16) is the one the TPM reported', () => {
    const ak = parsePublic2B(AK_2B);
    assert.equal(ak.type, 'rsa');
    assert.equal(ak.nameAlg, ALG.SHA256);
    assert.deepEqual(
      Object.entries(ak.attributes).filter(([, v]) => v).map(([k]) => k),
      ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'restricted', 'sign'],
    );
    assert.deepEqual(ak.parameters.scheme, { scheme: ALG.RSASSA, hashAlg: ALG.SHA256 });
    assert.equal(ak.parameters.keyBits, 2048);
    assert.ok(objectName(ak).equals(AK_NAME));
  });

  test('reads the TCG default EKs: RSA 2048 and ECC P-256, AES-128-CFB, with the EK policy', () => {
    const rsa = parsePublic2B(RSA_EK_2B);
    const ecc = parsePublic2B(ECC_EK_2B);
    for (const ek of [rsa, ecc]) {
      assert.deepEqual(ek.parameters.symmetric, { algorithm: ALG.AES, keyBits: 128, mode: ALG.CFB });
      assert.ok(ek.attributes.restricted && ek.attributes.decrypt && !ek.attributes.sign && ek.attributes.adminWithPolicy);
      assert.equal(ek.authPolicy.toString('hex'), '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
    }
    assert.equal(ecc.type === 'ecc' && ecc.parameters.curveId, 0x0003);
    assert.equal(ecc.type === 'ecc' && ecc.unique.x.length, 32);
  });

  test('the key converts to SPKI DER that node:crypto reads as the same key type and size', async () => {
    const { createPublicKey } = await import('node:crypto');
    const key = createPublicKey({ key: publicKeySpki(parsePublic2B(KEY_2B)), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const ek = createPublicKey({ key: publicKeySpki(parsePublic2B(RSA_EK_2B)), format: 'der', type: 'spki' });
    assert.equal(ek.asymmetricKeyDetails?.modulusLength, 2048);
  });

  test('encode(parse(x)) is x for every real vector, and the TPM2B size must match exactly', () => {
    for (const v of [AK_2B, RSA_EK_2B, ECC_EK_2B, KEY_2B]) {
      const p = parsePublic2B(v);
      assert.ok(encodePublic(p).equals(v.subarray(2)));
      assert.ok(parsePublic(v.subarray(2)).bytes.equals(v.subarray(2)));
    }
    malformed(() => parsePublic2B(Buffer.concat([AK_2B, Buffer.alloc(1)])));
    malformed(() => parsePublic(Buffer.concat([AK_2B.subarray(2), Buffer.alloc(1)])));
  });

  test('every truncation of a real TPMT_PUBLIC is refused as truncated', () => {
    for (const v of [AK_2B, ECC_EK_2B, KEY_2B]) {
      const inner = v.subarray(2);
      for (let n = 0; n < inner.length; n++) malformed(() => parsePublic(inner.subarray(0, n)));
    }
  });

  test('oversized inputs and fields are refused before reading them', () => {
    malformed(() => parsePublic(Buffer.alloc(4096)));
    // authPolicy claiming 65 bytes (a digest is at most 64)
    const p = Buffer.from(KEY_2B.subarray(2));
    p.writeUInt16BE(65, 8);
    assert.throws(() => parsePublic(p), /authPolicy is 65 bytes; at most 64/);
  });

  test('a key type other than RSA or ECC is refused by name', () => {
    const p = Buffer.from(KEY_2B.subarray(2));
    p.writeUInt16BE(ALG.KEYEDHASH, 0);
    assert.throws(() => parsePublic(p), (e) => isTpmError(e, 'TPM_UNSUPPORTED') && /KEYEDHASH/.test(e.message));
  });

  test('named attribute flags round-trip through TPMA_OBJECT', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (raw) => {
        const named = attributesToNumber(attributesOf(raw));
        assert.equal(named, raw & 0x000f0cf6);
      }),
    );
  });
});

const hashAlg = fc.constantFrom(ALG.SHA1, ALG.SHA256, ALG.SHA384, ALG.SHA512);
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
const symmetric = fc.oneof(fc.constant({ algorithm: ALG.NULL }), fc.record({ algorithm: fc.constant(ALG.AES), keyBits: fc.constantFrom(128, 256), mode: fc.constantFrom(ALG.CFB, ALG.NULL) }));
const arbPublic: fc.Arbitrary<TpmPublic> = fc.oneof(
  fc.record({
    type: fc.constant('rsa' as const),
    nameAlg: hashAlg,
    objectAttributes: fc.integer({ min: 0, max: 0xffffffff }),
    authPolicy: bytes(64),
    parameters: fc.record({
      symmetric,
      scheme: fc.oneof(fc.constant({ scheme: ALG.NULL }), fc.record({ scheme: fc.constantFrom(ALG.RSASSA, ALG.RSAPSS, ALG.OAEP), hashAlg })),
      keyBits: fc.constantFrom(1024, 2048, 3072, 4096),
      exponent: fc.integer({ min: 0, max: 0xffffffff }),
    }),
    unique: bytes(512),
  }),
  fc.record({
    type: fc.constant('ecc' as const),
    nameAlg: hashAlg,
    objectAttributes: fc.integer({ min: 0, max: 0xffffffff }),
    authPolicy: bytes(64),
    parameters: fc.record({
      symmetric,
      scheme: fc.oneof(fc.constant({ scheme: ALG.NULL }), fc.record({ scheme: fc.constantFrom(ALG.ECDSA, ALG.ECDH), hashAlg }), fc.record({ scheme: fc.constant(ALG.ECDAA), hashAlg, count: fc.integer({ min: 0, max: 0xffff }) })),
      curveId: fc.constantFrom(3, 4),
      kdf: fc.oneof(fc.constant({ scheme: ALG.NULL }), fc.record({ scheme: fc.constantFrom(ALG.KDF1_SP800_56A, ALG.KDF2), hashAlg })),
    }),
    unique: fc.record({ x: bytes(128), y: bytes(128) }),
  }),
).map((p) => ({ ...p, attributes: attributesOf(p.objectAttributes) }) as TpmPublic);

describe('codec properties (fast-check)', () => {
  test('every well-formed TPMT_PUBLIC round-trips; every strict prefix and every extension is refused', () => {
    fc.assert(
      fc.property(arbPublic, fc.nat(), bytes(4).filter((b) => b.length > 0), (p, cut, extra) => {
        const enc = encodePublic(p);
        const back = parsePublic(enc);
        assert.ok(encodePublic(back).equals(enc));
        assert.ok(objectName(back).equals(objectName(p)));
        malformed(() => parsePublic(enc.subarray(0, cut % enc.length)));
        malformed(() => parsePublic(Buffer.concat([enc, extra])));
      }),
    );
  });

  test('arbitrary bytes either parse or fail with a TpmError, for every parser', () => {
    const parsers = [parsePublic, parsePublic2B, parseAttest, parseSignature];
    fc.assert(
      fc.property(bytes(700), (b) => {
        for (const parse of parsers) {
          try {
            parse(b);
          } catch (e) {
            assert.ok(isTpmError(e), `${parse.name} threw ${String(e)}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('bit flips of real vectors either parse or fail with a TpmError', () => {
    const vectors: Array<[Buffer, (b: Uint8Array) => unknown]> = [
      [AK_2B, parsePublic2B],
      [CERTIFY_ATTEST, parseAttest],
      [CERTIFY_SIGNATURE, parseSignature],
    ];
    fc.assert(
      fc.property(fc.nat(), fc.nat({ max: 7 }), fc.nat({ max: 2 }), (pos, bit, which) => {
        const [v, parse] = vectors[which]!;
        const m = Buffer.from(v);
        m[pos % m.length]! ^= 1 << bit;
        try {
          parse(m);
        } catch (e) {
          assert.ok(isTpmError(e), String(e));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('TPM 2.0 Part 2 §10.12.12 TPMS_ATTEST and §11.3.4 TPMT_SIGNATURE', () => {
  test('reads the certify a TPM made: magic, type, signer, nonce, certified Name', () => {
    const a = parseAttest(CERTIFY_ATTEST);
    assert.equal(a.magic, 0xff544347);
    assert.equal(a.type, 0x8017);
    assert.ok(a.qualifiedSigner.length === 34);
    assert.ok(a.extraData.equals(CERTIFY_NONCE));
    assert.ok(a.attested.name.equals(objectName(parsePublic2B(KEY_2B))));
    assert.ok(encodeAttest(a).equals(CERTIFY_ATTEST));
    for (let n = 0; n < CERTIFY_ATTEST.length; n++) malformed(() => parseAttest(CERTIFY_ATTEST.subarray(0, n)));
    malformed(() => parseAttest(Buffer.concat([CERTIFY_ATTEST, Buffer.alloc(1)])));
  });

  test('a structure without TPM_GENERATED_VALUE is refused: the TPM did not make it', () => {
    const m = Buffer.from(CERTIFY_ATTEST);
    m[0] = 0;
    assert.throws(() => parseAttest(m), /not TPM_GENERATED_VALUE/);
  });

  test('an attestation of another type is refused by name', () => {
    const m = Buffer.from(CERTIFY_ATTEST);
    m.writeUInt16BE(0x8018, 4);
    assert.throws(() => parseAttest(m), (e) => isTpmError(e, 'TPM_UNSUPPORTED') && /TPM_ST_ATTEST_QUOTE/.test(e.message));
  });

  test('reads the RSASSA-SHA256 signature and round-trips RSAPSS and ECDSA', () => {
    const s = parseSignature(CERTIFY_SIGNATURE);
    assert.equal(s.sigAlg, ALG.RSASSA);
    assert.equal('sig' in s ? s.sig.length : 0, 256);
    assert.ok(encodeSignature(s).equals(CERTIFY_SIGNATURE));
    const ecdsa = { sigAlg: ALG.ECDSA, hashAlg: ALG.SHA256, r: Buffer.alloc(32, 1), s: Buffer.alloc(32, 2) } as const;
    assert.deepEqual(parseSignature(encodeSignature(ecdsa)), ecdsa);
    const pss = { sigAlg: ALG.RSAPSS, hashAlg: ALG.SHA384, sig: Buffer.alloc(256, 3) } as const;
    assert.deepEqual(parseSignature(encodeSignature(pss)), pss);
    assert.throws(() => parseSignature(Buffer.from([0x00, 0x05, 0x00, 0x0b])), (e) => isTpmError(e, 'TPM_UNSUPPORTED') && /HMAC/.test(e.message));
  });
});
