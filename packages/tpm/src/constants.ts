/**
 * Constants of the TPM 2.0 Library specification, Part 2 ("Structures"),
 * only the ones this package reads or writes.
 */

/** TPM_ALG_ID (Part 2 §6.3). */
export const ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

const ALG_NAMES = new Map<number, string>(Object.entries(ALG).map(([k, v]) => [v, k]));
/** "SHA256 (0x000b)" for messages. */
export const algName = (id: number): string => `${ALG_NAMES.get(id) ?? 'unknown'} (0x${id.toString(16).padStart(4, '0')})`;

/** Hash algorithms we compute, with node:crypto's name and the digest size. */
export const HASHES: ReadonlyMap<number, { node: string; size: number }> = new Map([
  [ALG.SHA1, { node: 'sha1', size: 20 }],
  [ALG.SHA256, { node: 'sha256', size: 32 }],
  [ALG.SHA384, { node: 'sha384', size: 48 }],
  [ALG.SHA512, { node: 'sha512', size: 64 }],
]);

/** TPM_ECC_CURVE (Part 2 §6.4) we can use, with node:crypto's and JWK's names and the field size. */
export const CURVES: ReadonlyMap<number, { node: string; jwk: string; size: number; name: string }> = new Map([
  [0x0003, { node: 'prime256v1', jwk: 'P-256', size: 32, name: 'NIST_P256' }],
  [0x0004, { node: 'secp384r1', jwk: 'P-384', size: 48, name: 'NIST_P384' }],
  [0x0005, { node: 'secp521r1', jwk: 'P-521', size: 66, name: 'NIST_P521' }],
]);
export const ECC_NIST_P256 = 0x0003;
export const ECC_NIST_P384 = 0x0004;

/** TPM_ST (Part 2 §6.9): the attestation structure tags. */
export const ST_ATTEST = {
  NV: 0x8014,
  COMMAND_AUDIT: 0x8015,
  SESSION_AUDIT: 0x8016,
  CERTIFY: 0x8017,
  QUOTE: 0x8018,
  TIME: 0x8019,
  CREATION: 0x801a,
  NV_DIGEST: 0x801c,
} as const;

/** TPM_GENERATED_VALUE (Part 2 §6.2): "\xffTCG", the magic of every TPMS_ATTEST the TPM makes. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPMA_OBJECT (Part 2 §8.3): bit positions of the named attributes. */
export const OBJECT_ATTRIBUTE_BITS = {
  fixedTPM: 1,
  stClear: 2,
  fixedParent: 4,
  sensitiveDataOrigin: 5,
  userWithAuth: 6,
  adminWithPolicy: 7,
  noDA: 10,
  encryptedDuplication: 11,
  restricted: 16,
  decrypt: 17,
  sign: 18,
  x509sign: 19,
} as const;

export type ObjectAttributeName = keyof typeof OBJECT_ATTRIBUTE_BITS;

/** Bits Part 2 reserves (must be zero): 0, 3, 8, 9, 12–15, 20–31. */
export const OBJECT_ATTRIBUTE_RESERVED = 0xfff0f309;
