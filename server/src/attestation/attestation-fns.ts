/**
 * The attestation exchange's pure parts: reading base64 TPM structures and
 * the CSR's attestation attribute, and verifying an attestation against the
 * challenge it names (issue 14; the protocol is @latchkey/protocol
 * attestation.ts). Every refusal is a LatchkeyError saying what was wrong.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { type Csr, csrStringAttribute } from '@latchkey/pki';
import { ATTESTATION_ATTRIBUTE_OID, CsrAttestation, MAX_ATTESTATION_JSON } from '@latchkey/protocol';
import { type ParsedPublic, deviceKeyAttributeProblems, ekHash, isTpmError, parsePublic2B, publicKeySpki, verifyCertify } from '@latchkey/tpm';
import { LatchkeyError } from '../errors.js';
import type { AttestationChallengesTable } from '../storage/schema.js';

/** The challenge routes' JSON bodies (three base64 fields of at most 8 KiB). */
export const ATTEST_BODY_LIMIT = 16 * 1024;
/** Bytes of the credential's secret (also the certify's qualifying data). */
export const SECRET_BYTES = 32;
/** Expired challenges deleted per new challenge (pruning stays bounded). */
export const PRUNE_BATCH = 100;

export const invalid = (message: string): LatchkeyError => new LatchkeyError('ATTESTATION_INVALID', message);

/** Base64 the schema let through, decoded strictly (it must re-encode to itself). */
export function decodeB64(s: string, field: string, code: 'BAD_REQUEST' | 'ATTESTATION_INVALID' = 'BAD_REQUEST'): Buffer {
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw new LatchkeyError(code, `${field} is not canonical base64`);
  return b;
}

/** A TPM2B_PUBLIC from base64; malformed bytes are the client's error (400) naming the field. */
export function readPublic(b64: string, field: string, code: 'BAD_REQUEST' | 'ATTESTATION_INVALID' = 'BAD_REQUEST'): ParsedPublic {
  const bytes = decodeB64(b64, field, code);
  try {
    return parsePublic2B(bytes);
  } catch (e) {
    throw new LatchkeyError(code, `${field} is not a TPM2B_PUBLIC: ${(e as Error).message}`);
  }
}

/** How the inventory names an EK: SHA-256 hex of its SPKI DER. */
export const ekHashOf = (ek: ParsedPublic): string => ekHash(publicKeySpki(ek));

export const secretHash = (secret: Uint8Array): string => createHash('sha256').update(secret).digest('hex');

/** The CSR's attestation attribute, schema-checked; null when the CSR has none. */
export function readCsrAttestation(csr: Csr): CsrAttestation | null {
  let json: string | undefined;
  try {
    json = csrStringAttribute(csr, ATTESTATION_ATTRIBUTE_OID, MAX_ATTESTATION_JSON);
  } catch (e) {
    throw invalid(`the CSR's attestation attribute is invalid: ${(e as Error).message}`);
  }
  if (json === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw invalid("the CSR's attestation attribute is not valid JSON");
  }
  const err = Value.Errors(CsrAttestation, v).First();
  if (err) throw invalid(`the CSR's attestation is invalid: ${err.path || '/'} ${err.message}`);
  return v as CsrAttestation;
}

/** What a verified attestation proved, as the device row keeps it. */
export interface VerifiedAttestation {
  challengeId: string;
  ekHash: string;
  ekPublic: string;
  ekCert: string | null;
  ekTrust: 'certificate' | 'registered';
  manufacturer: string | null;
  akPublic: string;
}

const sameHex = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * The attestation of a CSR against its challenge (already found and known
 * to be this token's or this device's): unused, unexpired, the secret, the
 * certified key's attributes, the certify under the challenge's AK over the
 * secret, and the certified key is the CSR's.
 */
export function verifyAgainstChallenge(a: CsrAttestation, ch: AttestationChallengesTable, csrSpki: Uint8Array, nowIso: string): VerifiedAttestation {
  if (ch.used_at !== null) throw invalid(`attestation challenge ${ch.id} was already used; ask for a new challenge and attest again`);
  if (ch.expires_at <= nowIso) throw invalid(`attestation challenge ${ch.id} expired at ${ch.expires_at}; ask for a new challenge and attest again`);
  const secret = decodeB64(a.secret, 'secret', 'ATTESTATION_INVALID');
  if (!sameHex(secretHash(secret), ch.secret_hash)) {
    throw invalid("the secret is not the one this challenge's credential holds: the credential was not activated by the TPM that holds this EK and AK");
  }
  const key = readPublic(a.keyPublic, 'keyPublic', 'ATTESTATION_INVALID');
  const problems = deviceKeyAttributeProblems(key);
  if (problems.length > 0) throw invalid(`the device key is not a non-exportable TPM signing key: ${problems.join('; ')}`);
  const ak = readPublic(ch.ak_public, 'the challenge AK', 'ATTESTATION_INVALID');
  try {
    verifyCertify({ akPublic: ak, attest: decodeB64(a.certifyInfo, 'certifyInfo', 'ATTESTATION_INVALID'), signature: decodeB64(a.signature, 'signature', 'ATTESTATION_INVALID'), nonce: secret, certifiedPublic: key });
  } catch (e) {
    if (e instanceof LatchkeyError) throw e;
    if (isTpmError(e, 'SIGNATURE_INVALID')) throw invalid(`the TPM2_Certify of the device key does not verify under the attestation key (a certify by another TPM's AK?): ${e.message}`);
    throw invalid(`the TPM2_Certify of the device key is refused: ${(e as Error).message}`);
  }
  if (!publicKeySpki(key).equals(Buffer.from(csrSpki))) throw invalid('the CSR\'s key is not the key the TPM certified (keyPublic); put the certified TPM key in the CSR');
  return { challengeId: ch.id, ekHash: ch.ek_hash, ekPublic: ch.ek_public, ekCert: ch.ek_cert, ekTrust: ch.ek_trust, manufacturer: ch.manufacturer, akPublic: ch.ak_public };
}
