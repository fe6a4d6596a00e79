/**
 * @latchkey/tpm: server-side TPM 2.0 verification, pure (no I/O, no clock
 * reads, randomness passed in). The structure codec, MakeCredential in
 * software, TPM2_Certify verification with the AK and device-key attribute
 * policies, and EK certificate chains.
 */
export * from './errors.js';
export { ALG, ST_ATTEST, TPM_GENERATED_VALUE, OBJECT_ATTRIBUTE_BITS, ECC_NIST_P256, ECC_NIST_P384, type ObjectAttributeName } from './constants.js';
export * from './public.js';
export * from './attest.js';
export * from './signature.js';
export { kdfa, kdfe } from './kdf.js';
export * from './credential.js';
export * from './certify.js';
export * from './ek-cert.js';
