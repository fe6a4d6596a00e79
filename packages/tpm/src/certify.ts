/**
 * TPM2_Certify verification (Part 3 §18.2): the AK signed a TPMS_ATTEST of
 * type CERTIFY, over our nonce, naming exactly the key we were shown; and
 * the attribute policies of the AK and of a TLS device key.
 */
import * as nodeCrypto from 'node:crypto';
import { ALG, ECC_NIST_P256, ECC_NIST_P384, OBJECT_ATTRIBUTE_RESERVED, algName } from './constants.js';
import { parseAttest, type CertifyAttest } from './attest.js';
import { TpmError } from './errors.js';
import { objectName, type TpmPublic } from './public.js';
import { parseSignature, verifySignature } from './signature.js';

const STRONG_NAME_ALGS = new Set<number>([ALG.SHA256, ALG.SHA384, ALG.SHA512]);

function keyProblems(p: TpmPublic): string[] {
  const out: string[] = [];
  if (!STRONG_NAME_ALGS.has(p.nameAlg)) out.push(`nameAlg is ${algName(p.nameAlg)}: the key's Name must use SHA256, SHA384 or SHA512`);
  if ((p.objectAttributes & OBJECT_ATTRIBUTE_RESERVED) !== 0) out.push(`reserved objectAttributes bits are set (0x${(p.objectAttributes >>> 0).toString(16)})`);
  if (p.type === 'rsa' && p.parameters.keyBits < 2048) out.push(`RSA key is ${p.parameters.keyBits} bits; at least 2048 are required`);
  if (p.type === 'ecc' && p.parameters.curveId !== ECC_NIST_P256 && p.parameters.curveId !== ECC_NIST_P384) out.push('ECC key is not on NIST P-256 or P-384');
  return out;
}

function residencyProblems(p: TpmPublic): string[] {
  const a = p.attributes;
  const out: string[] = [];
  if (!a.fixedTPM) out.push('fixedTPM is clear: the key can be duplicated out of this TPM');
  if (!a.fixedParent) out.push('fixedParent is clear: the key can be duplicated to another parent');
  if (!a.sensitiveDataOrigin) out.push('sensitiveDataOrigin is clear: the private key was imported, not generated inside the TPM');
  return out;
}

/**
 * What is wrong with `p` as an attestation key: it must live in the TPM
 * (fixedTPM, fixedParent, sensitiveDataOrigin) and be a restricted signing
 * key, so that it signs only structures the TPM made. Empty when fine.
 */
export function akAttributeProblems(p: TpmPublic): string[] {
  const a = p.attributes;
  const out = [...residencyProblems(p), ...keyProblems(p)];
  if (!a.sign) out.push('sign is clear: an AK is a signing key');
  if (!a.restricted) out.push('restricted is clear: an unrestricted key can sign a forged TPMS_ATTEST, so it cannot be an AK');
  if (a.decrypt) out.push('decrypt is set: an AK is a signing-only key');
  return out;
}

export interface DeviceKeyPolicy {
  /** Accept a key that may also decrypt (some PKCS#11 stacks make RSA keys sign|decrypt). Default false. */
  allowDecrypt?: boolean;
}

/**
 * What is wrong with `p` as a device's TLS client key: made in the TPM and
 * never able to leave it (fixedTPM, fixedParent, sensitiveDataOrigin), a
 * signing key that signs arbitrary digests (sign set, restricted clear),
 * not a decryption key. Empty when fine.
 */
export function deviceKeyAttributeProblems(p: TpmPublic, policy: DeviceKeyPolicy = {}): string[] {
  const a = p.attributes;
  const out = [...residencyProblems(p), ...keyProblems(p)];
  if (!a.sign) out.push('sign is clear: a TLS client key must be able to sign');
  if (a.restricted) out.push('restricted is set: a restricted key signs only TPM-made data, not a TLS handshake');
  if (a.decrypt && !policy.allowDecrypt) out.push('decrypt is set: a TLS client key should be signing-only');
  const s = p.parameters.scheme.scheme;
  if (s !== ALG.NULL && s !== ALG.RSASSA && s !== ALG.RSAPSS && s !== ALG.ECDSA) out.push(`scheme ${algName(s)} is not a TLS signature scheme (RSASSA, RSAPSS or ECDSA)`);
  return out;
}

export interface CertifyInput {
  /** The attestation key's public area (whose Name the credential activation proved). */
  akPublic: TpmPublic;
  /** The marshalled TPMS_ATTEST, exactly as signed. */
  attest: Uint8Array;
  /** The marshalled TPMT_SIGNATURE over it. */
  signature: Uint8Array;
  /** The qualifying data the verifier sent; must come back as extraData. */
  nonce: Uint8Array;
  /** The key the caller was shown (e.g. the CSR's key as TPMT_PUBLIC); its Name must be the certified one. */
  certifiedPublic: TpmPublic;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && nodeCrypto.timingSafeEqual(a, b);

/**
 * Verifies a TPM2_Certify result. Throws TpmError: SIGNATURE_INVALID (not
 * signed by this AK), ATTESTATION_INVALID (AK unfit, other nonce, other
 * key), TPM_MALFORMED / TPM_UNSUPPORTED (bytes). Returns the attestation.
 * Does not judge the certified key's attributes: see deviceKeyAttributeProblems.
 */
export function verifyCertify(i: CertifyInput): CertifyAttest {
  const akProblems = akAttributeProblems(i.akPublic);
  if (akProblems.length > 0) throw new TpmError('ATTESTATION_INVALID', `the attestation key is not usable as an AK: ${akProblems.join('; ')}`);
  const signature = parseSignature(i.signature);
  verifySignature(i.akPublic, i.attest, signature);
  const attest = parseAttest(i.attest);
  if (!sameBytes(attest.extraData, i.nonce)) {
    throw new TpmError('ATTESTATION_INVALID', 'the certify qualifying data (extraData) is not the nonce this server sent: a replayed or foreign attestation; start the attestation again');
  }
  const name = objectName(i.certifiedPublic);
  if (!sameBytes(attest.attested.name, name)) {
    throw new TpmError('ATTESTATION_INVALID', 'the certified Name is not the Name of the key presented: the TPM certified a different key (or different attributes)');
  }
  return attest;
}
