/**
 * TPMT_SIGNATURE (Part 2 §11.3.4) for RSASSA, RSAPSS and ECDSA, and its
 * verification with the signing key's TPMT_PUBLIC.
 */
import * as nodeCrypto from 'node:crypto';
import { ALG, CURVES, algName } from './constants.js';
import { TpmError } from './errors.js';
import { Reader, Writer, checkSize } from './marshal.js';
import { hashOf, publicKeyObject, type TpmPublic } from './public.js';

export const MAX_SIGNATURE_BYTES = 1024;

export type TpmSignature =
  | { sigAlg: typeof ALG.RSASSA | typeof ALG.RSAPSS; hashAlg: number; sig: Buffer }
  | { sigAlg: typeof ALG.ECDSA; hashAlg: number; r: Buffer; s: Buffer };

/** Parses a marshalled TPMT_SIGNATURE (what `tpm2_certify -s` writes by default). */
export function parseSignature(input: Uint8Array): TpmSignature {
  const r = new Reader(checkSize(input, MAX_SIGNATURE_BYTES, 'TPMT_SIGNATURE'), 'TPMT_SIGNATURE');
  const sigAlg = r.u16('sigAlg');
  let out: TpmSignature;
  if (sigAlg === ALG.RSASSA || sigAlg === ALG.RSAPSS) {
    out = { sigAlg, hashAlg: r.u16('hash'), sig: r.tpm2b('sig', 512) };
  } else if (sigAlg === ALG.ECDSA) {
    out = { sigAlg, hashAlg: r.u16('hash'), r: r.tpm2b('signatureR', 128), s: r.tpm2b('signatureS', 128) };
  } else {
    throw new TpmError('TPM_UNSUPPORTED', `TPMT_SIGNATURE: ${algName(sigAlg)} is not supported; only RSASSA, RSAPSS and ECDSA are`);
  }
  r.end();
  return out;
}

export function encodeSignature(s: TpmSignature): Buffer {
  const w = new Writer().u16(s.sigAlg).u16(s.hashAlg);
  return s.sigAlg === ALG.ECDSA ? w.tpm2b(s.r).tpm2b(s.s).done() : w.tpm2b(s.sig).done();
}

function fixed(b: Buffer, size: number): Buffer | undefined {
  let s = 0;
  while (s < b.length - size && b[s] === 0) s++;
  const v = b.subarray(s);
  if (v.length > size) return undefined;
  return Buffer.concat([Buffer.alloc(size - v.length), v]);
}

/**
 * Verifies `signature` over `message` with `signer` (a TPMT_PUBLIC). Throws
 * SIGNATURE_INVALID when it does not verify, or when its algorithm does not
 * fit the key: an RSA signature from an ECC key, or a scheme other than the
 * one a key with a fixed scheme can make.
 */
export function verifySignature(signer: TpmPublic, message: Uint8Array, signature: TpmSignature): void {
  const hash = hashOf(signature.hashAlg, 'TPMT_SIGNATURE');
  const fixedScheme = signer.parameters.scheme;
  if (fixedScheme.scheme !== ALG.NULL && (fixedScheme.scheme !== signature.sigAlg || fixedScheme.hashAlg !== signature.hashAlg)) {
    throw new TpmError(
      'SIGNATURE_INVALID',
      `signature is ${algName(signature.sigAlg)} with ${algName(signature.hashAlg)}, but the signing key only makes ${algName(fixedScheme.scheme)} with ${algName(fixedScheme.hashAlg ?? ALG.NULL)}`,
    );
  }
  const key = publicKeyObject(signer);
  let ok: boolean;
  if (signature.sigAlg === ALG.ECDSA) {
    if (signer.type !== 'ecc') throw new TpmError('SIGNATURE_INVALID', 'an ECDSA signature cannot come from an RSA key');
    const size = CURVES.get(signer.parameters.curveId)?.size ?? 0;
    const r = fixed(signature.r, size);
    const s = fixed(signature.s, size);
    try {
      ok = r !== undefined && s !== undefined && nodeCrypto.verify(hash.node, message, { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
    } catch {
      ok = false;
    }
  } else {
    if (signer.type !== 'rsa') throw new TpmError('SIGNATURE_INVALID', `an ${algName(signature.sigAlg)} signature cannot come from an ECC key`);
    const padding = signature.sigAlg === ALG.RSAPSS ? nodeCrypto.constants.RSA_PKCS1_PSS_PADDING : nodeCrypto.constants.RSA_PKCS1_PADDING;
    try {
      // PSS: TPMs use a salt of the digest size (newer) or the largest that fits (older); accept either.
      ok = nodeCrypto.verify(hash.node, message, { key, padding, saltLength: nodeCrypto.constants.RSA_PSS_SALTLEN_AUTO }, signature.sig);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new TpmError('SIGNATURE_INVALID', 'the TPM signature does not verify with the attestation key: the attestation was not signed by this AK, or was altered');
}
