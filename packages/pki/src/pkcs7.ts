/**
 * PKCS#7 / CMS "certs-only" SignedData (RFC 5652 §5, RFC 8551 §3.2.2): what
 * EST returns from cacerts and (simple)enroll (RFC 7030 §4.1.3, §4.2.3).
 */
import { TAG, children, explicit, int, oid, parseOne, raw, readOid, readSmallInt, seq, seqOf, tlv, type Tlv } from './der.js';
import { PkiError, wrapParse } from './errors.js';
import { OID } from './oids.js';
import { PEM, pemEncode, toDer } from './pem.js';

/** Largest PKCS#7 bundle we read (a chain of a few certificates is a few KB). */
export const MAX_PKCS7_BYTES = 1024 * 1024;

/**
 * Encodes certificates (DER) as a degenerate SignedData with no signers.
 * Certificates keep the caller's order (leaf first): clients such as
 * `openssl pkcs7 -print_certs` show them in that order.
 */
export function encodeCertsOnly(certs: readonly Uint8Array[]): Buffer {
  if (certs.length === 0) throw new PkiError('ARGUMENT_INVALID', 'a certs-only PKCS#7 needs at least one certificate');
  const signedData = seq(
    int(1),
    tlv(TAG.SET), // digestAlgorithms: none
    seq(oid(OID.data)), // encapContentInfo without content
    tlv(0xa0, ...certs), // [0] IMPLICIT CertificateSet
    tlv(TAG.SET), // signerInfos: none
  );
  return seq(oid(OID.signedData), explicit(0, signedData));
}

export const pkcs7ToPem = (der: Uint8Array): string => pemEncode(PEM.PKCS7, der);

/** The certificates (DER, in order) of a certs-only PKCS#7, from PEM, DER or EST's base64 body. */
export function decodeCertsOnly(input: string | Uint8Array): Buffer[] {
  const der = typeof input === 'string' && !input.includes('-----BEGIN') ? base64Body(input) : toDer(input, PEM.PKCS7);
  if (der.length > MAX_PKCS7_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `PKCS#7 is ${der.length} bytes; the limit is ${MAX_PKCS7_BYTES}`);
  }
  return wrapParse('PKCS7_INVALID', 'PKCS#7', () => {
    const [typeT, contentT] = seqOf(parseOne(der, 'ContentInfo'), 'ContentInfo', 2, 2) as [Tlv, Tlv];
    const type = readOid(typeT, 'ContentInfo.contentType');
    if (type !== OID.signedData) throw new PkiError('PKCS7_INVALID', `PKCS#7 content type is ${type}, not signedData`);
    if (contentT.tag !== 0xa0) throw new PkiError('PKCS7_INVALID', 'ContentInfo.content must be [0] EXPLICIT');
    const inner = children(contentT, 'ContentInfo.content');
    if (inner.length !== 1) throw new PkiError('PKCS7_INVALID', 'ContentInfo.content must hold one SignedData');
    const parts = seqOf(inner[0]!, 'SignedData', 4, 6);
    readSmallInt(parts[0]!, 'SignedData.version');
    const certsT = parts.find((p, i) => i >= 3 && p.tag === 0xa0);
    if (!certsT) throw new PkiError('PKCS7_INVALID', 'PKCS#7 holds no certificates');
    const certs = children(certsT, 'SignedData.certificates').map((c, i) => {
      if (c.tag !== TAG.SEQUENCE) throw new PkiError('PKCS7_INVALID', `SignedData.certificates[${i}] is not a certificate`);
      return Buffer.from(raw(c));
    });
    if (certs.length === 0) throw new PkiError('PKCS7_INVALID', 'PKCS#7 holds no certificates');
    return certs;
  });
}

/** EST bodies are base64 DER with line breaks (RFC 7030 §4.1.3). */
export function base64Body(text: string): Buffer {
  const b64 = text.replace(/\s+/g, '');
  if (b64.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) {
    throw new PkiError('DER_MALFORMED', 'body is not base64-encoded DER');
  }
  return Buffer.from(b64, 'base64');
}

/** Base64 with 64-character LF-terminated lines (coreutils `base64 -d` rejects CR). */
export function base64Lines(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return (b64.match(/.{1,64}/g) ?? []).join('\n') + '\n';
}
