/**
 * TPM attestation (issue 14): the challenge exchange and what the CSR's
 * attestation attribute holds. Binary TPM structures travel as base64 of the
 * exact bytes the TPM produced (tpm2-tools' `-u` files are TPM2B_PUBLIC).
 *
 * 1. `POST ATTEST_PATHS.enrollChallenge` (enrollment token) or
 *    `ATTEST_PATHS.renewChallenge` (device certificate) → the server checks
 *    the EK (certificate chain to a trusted TPM manufacturer root, or its
 *    hash registered by an admin) and the AK's attributes, then answers a
 *    credential made for the AK's Name and encrypted to the EK
 *    (TPM2_MakeCredential in software) around a fresh 32-byte secret.
 * 2. The agent recovers the secret with TPM2_ActivateCredential, has the AK
 *    TPM2_Certify the device key with qualifyingData = the secret, and puts
 *    `CsrAttestation` into its CSR (ATTESTATION_ATTRIBUTE_OID).
 * 3. simpleenroll / simplereenroll verify: the challenge is this token's or
 *    this device's, unexpired, unused (used once, in the issuing
 *    transaction); the secret matches; the certify verifies under the AK;
 *    the certified key is the CSR's key and is fixedTPM, fixedParent,
 *    sensitiveDataOrigin, a signing key.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Timestamp, Uuid } from './common.js';

export { ATTESTATION_ATTRIBUTE_OID, MAX_ATTESTATION_JSON, TPM_ATTESTED_POLICY_OID, TPM_ATTESTED_OU, ATTEST_PATHS } from './wire.js';

const B64 = (maxLength: number) => Type.String({ maxLength, minLength: 4, pattern: '^[A-Za-z0-9+/]+={0,2}$' });

/** The first challenge of a device: its TPM's EK and a new AK. */
export const AttestEnrollChallengeRequest = Type.Object(
  {
    /** TPM2B_PUBLIC of the endorsement key (tpm2_createek -u). */
    ekPublic: B64(2800),
    /** DER of the EK certificate from the TPM's NV (RSA 0x01c00002, ECC 0x01c0000a); absent when the TPM has none (then the EK must be registered by hash). */
    ekCertificate: Type.Optional(B64(8192)),
    /** TPM2B_PUBLIC of the attestation key (tpm2_createak -u): a restricted signing key, fixedTPM, fixedParent. */
    akPublic: B64(2800),
  },
  { additionalProperties: false, $id: 'AttestEnrollChallengeRequest' },
);
export type AttestEnrollChallengeRequest = Static<typeof AttestEnrollChallengeRequest>;

/** A renewal's challenge: the server uses the EK and AK it bound to the device at enrollment; `akPublic` must be that AK. */
export const AttestRenewChallengeRequest = Type.Object(
  {
    akPublic: B64(2800),
  },
  { additionalProperties: false, $id: 'AttestRenewChallengeRequest' },
);
export type AttestRenewChallengeRequest = Static<typeof AttestRenewChallengeRequest>;

export const AttestChallenge = Type.Object(
  {
    /** Names this challenge in the CSR's attestation; single use. */
    challengeId: Uuid(),
    /** TPM2B_ID_OBJECT: TPM2_ActivateCredential's credentialBlob. */
    credentialBlob: B64(1024),
    /** TPM2B_ENCRYPTED_SECRET: TPM2_ActivateCredential's secret. */
    encryptedSecret: B64(1024),
    /** After this the challenge is refused; ask for a new one. */
    expiresAt: Timestamp(),
  },
  { additionalProperties: false, $id: 'AttestChallenge' },
);
export type AttestChallenge = Static<typeof AttestChallenge>;

/** The JSON in the CSR's ATTESTATION_ATTRIBUTE_OID attribute. */
export const CsrAttestation = Type.Object(
  {
    challengeId: Uuid(),
    /** The secret TPM2_ActivateCredential returned (base64). Also the certify's qualifyingData. */
    secret: B64(128),
    /** TPM2B_PUBLIC of the device key (tpm2_create -u): must be the CSR's key. */
    keyPublic: B64(2800),
    /** TPMS_ATTEST bytes of TPM2_Certify (certifyInfo, without its TPM2B size). */
    certifyInfo: B64(2048),
    /** TPMT_SIGNATURE of TPM2_Certify, by the AK. */
    signature: B64(2048),
  },
  { additionalProperties: false, $id: 'CsrAttestation' },
);
export type CsrAttestation = Static<typeof CsrAttestation>;

/** What the server records of a device's attestation and shows admins (`devices show`, the console). */
export const AssuranceLevel = Type.Union([Type.Literal('software'), Type.Literal('tpm-attested')], { $id: 'AssuranceLevel' });
export type AssuranceLevel = Static<typeof AssuranceLevel>;
