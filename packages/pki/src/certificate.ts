/**
 * X.509 certificates: a strict parser that keeps the raw DER slices the
 * issuing paths need (subject, SPKI, key bits), and the one function that
 * assembles and signs a certificate from a TBS description.
 */
import { createHash } from 'node:crypto';
import {
  TAG,
  bitString,
  children,
  content,
  explicit,
  int,
  parseOne,
  raw,
  readBitString,
  readSmallInt,
  readTime,
  readUnsignedInt,
  seq,
  seqOf,
  time,
} from './der.js';
import {
  type Extension,
  type KeyUsageName,
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeExtensions,
  decodeKeyUsage,
  decodeSubjectAltName,
  decodeSubjectKeyIdentifier,
  type GeneralName,
} from './extensions.js';
import { PkiError, isPkiError, wrapParse } from './errors.js';
import { type Signer, readSignatureAlgorithm, signatureAlgorithmDer, verifySignature } from './keys.js';
import { type NameAttribute, decodeName, nameToString } from './name.js';
import { OID } from './oids.js';
import { PEM, pemEncode, toDer } from './pem.js';

/** Largest certificate we accept as input. */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;

export interface Certificate {
  der: Buffer;
  tbs: Buffer;
  version: number;
  /** Serial as unsigned big-endian bytes. */
  serial: Buffer;
  /** Serial as lower-case hex, no leading zero byte. */
  serialHex: string;
  signatureAlgorithmOid: string;
  signature: Buffer;
  issuerDer: Buffer;
  issuer: NameAttribute[];
  subjectDer: Buffer;
  subject: NameAttribute[];
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Map<string, Extension>;
}

export function parseCertificate(input: string | Uint8Array): Certificate {
  const der = toDer(input, PEM.CERTIFICATE);
  if (der.length > MAX_CERTIFICATE_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `certificate is ${der.length} bytes; the limit is ${MAX_CERTIFICATE_BYTES}`);
  }
  return wrapParse('DER_MALFORMED', 'Certificate', () => {
    const top = seqOf(parseOne(der, 'Certificate'), 'Certificate', 3, 3);
    const [tbsT, algT, sigT] = top as [(typeof top)[0], (typeof top)[0], (typeof top)[0]];
    const tbsParts = seqOf(tbsT, 'TBSCertificate', 6, 10);
    let i = 0;
    let version = 1;
    if (tbsParts[0]!.tag === 0xa0) {
      const v = children(tbsParts[0]!, 'version');
      if (v.length !== 1) throw new PkiError('DER_MALFORMED', 'version: expected one INTEGER');
      version = readSmallInt(v[0]!, 'version') + 1;
      i++;
    }
    const serial = readUnsignedIntLoose(tbsParts[i++]!);
    const innerAlg = tbsParts[i++]!;
    const issuerT = tbsParts[i++]!;
    const validity = seqOf(tbsParts[i++]!, 'validity', 2, 2);
    const subjectT = tbsParts[i++]!;
    const spkiT = tbsParts[i++]!;
    let extensions = new Map<string, Extension>();
    for (; i < tbsParts.length; i++) {
      const t = tbsParts[i]!;
      if (t.tag === 0xa3) {
        const inner = children(t, 'extensions');
        if (inner.length !== 1) throw new PkiError('DER_MALFORMED', 'extensions: expected one SEQUENCE');
        extensions = decodeExtensions(inner[0]!, 'extensions');
      } else if (t.tag !== 0x81 && t.tag !== 0x82) {
        throw new PkiError('DER_MALFORMED', `TBSCertificate: unexpected element with tag 0x${t.tag.toString(16)}`);
      }
    }
    if (!raw(innerAlg).equals(raw(algT))) {
      throw new PkiError('DER_MALFORMED', 'signature algorithm inside and outside the TBSCertificate differ');
    }
    const { oid: sigOid } = readSignatureAlgorithm(raw(algT), 'signatureAlgorithm');
    return {
      der,
      tbs: raw(tbsT),
      version,
      serial,
      serialHex: serial.toString('hex'),
      signatureAlgorithmOid: sigOid,
      signature: readBitString(sigT, 'signatureValue').bytes,
      issuerDer: raw(issuerT),
      issuer: decodeName(raw(issuerT)),
      subjectDer: raw(subjectT),
      subject: decodeName(raw(subjectT)),
      notBefore: readTime(validity[0]!, 'notBefore'),
      notAfter: readTime(validity[1]!, 'notAfter'),
      spki: raw(spkiT),
      extensions,
    };
  });
}

/**
 * Serials of certificates from other CAs are sometimes not minimally encoded
 * or even negative; we only ever need them as bytes, so read them loosely.
 */
function readUnsignedIntLoose(t: ReturnType<typeof parseOne>): Buffer {
  if (t.tag !== TAG.INTEGER) return readUnsignedInt(t, 'serialNumber');
  const b = content(t);
  if (b.length === 0) throw new PkiError('DER_MALFORMED', 'serialNumber: empty INTEGER');
  let s = 0;
  while (s < b.length - 1 && b[s] === 0) s++;
  return b.subarray(s);
}

export const certificateToPem = (der: Uint8Array): string => pemEncode(PEM.CERTIFICATE, der);

/** Subject as "CN=…, O=…". */
export const subjectString = (c: Certificate): string => nameToString(c.subject);

export function basicConstraints(c: Certificate): { ca: boolean; pathLen: number | undefined } | undefined {
  const e = c.extensions.get(OID.basicConstraints);
  return e ? decodeBasicConstraints(e.value) : undefined;
}

export function keyUsage(c: Certificate): Set<KeyUsageName> | undefined {
  const e = c.extensions.get(OID.keyUsage);
  return e ? decodeKeyUsage(e.value) : undefined;
}

export function extKeyUsage(c: Certificate): string[] | undefined {
  const e = c.extensions.get(OID.extKeyUsage);
  return e ? decodeExtKeyUsage(e.value) : undefined;
}

export function subjectAltNames(c: Certificate): Array<GeneralName | { other: number }> {
  const e = c.extensions.get(OID.subjectAltName);
  return e ? decodeSubjectAltName(e.value) : [];
}

export function subjectKeyId(c: Certificate): Buffer | undefined {
  const e = c.extensions.get(OID.subjectKeyIdentifier);
  return e ? decodeSubjectKeyIdentifier(e.value) : undefined;
}

export function authorityKeyId(c: Certificate): Buffer | undefined {
  const e = c.extensions.get(OID.authorityKeyIdentifier);
  return e ? decodeAuthorityKeyIdentifier(e.value) : undefined;
}

/**
 * True if `issuer`'s key signed `cert` and the names chain. False, never a
 * throw, for a certificate that only names the issuer: a signature that is
 * not even well-formed, or made with an algorithm (or key type) the issuer
 * cannot have used, was not made by the issuer. Anyone can present such a
 * certificate as a TLS client certificate.
 */
export function isIssuedBy(cert: Certificate, issuer: Certificate): boolean {
  if (!cert.issuerDer.equals(issuer.subjectDer)) return false;
  try {
    return verifySignature(issuer.spki, cert.signatureAlgorithmOid, cert.tbs, cert.signature, { issuerKey: true });
  } catch (e) {
    if (isPkiError(e, 'SIGNATURE_INVALID') || isPkiError(e, 'ALGORITHM_UNSUPPORTED')) return false;
    throw e;
  }
}

/** SHA-256 fingerprint of the DER, lower-case hex without separators. */
export function fingerprintSha256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

// ------------------------------------------------------------- building

export interface TbsDescription {
  serial: Uint8Array;
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  spki: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** DER Extension elements (from encodeExtension). */
  extensions: readonly Uint8Array[];
}

const V3 = explicit(0, int(2));

/** Assembles the TBSCertificate, signs it with `signer`, returns the certificate DER. */
export async function signCertificate(tbs: TbsDescription, signer: Signer): Promise<Buffer> {
  if (tbs.notAfter.getTime() <= tbs.notBefore.getTime()) {
    throw new PkiError('ARGUMENT_INVALID', 'notAfter must be after notBefore');
  }
  const alg = signatureAlgorithmDer(signer.algorithm);
  const tbsDer = seq(
    V3,
    int(tbs.serial),
    alg,
    tbs.issuerDer,
    seq(time(tbs.notBefore), time(tbs.notAfter)),
    tbs.subjectDer,
    tbs.spki,
    explicit(3, seq(...tbs.extensions)),
  );
  const sig = await signer.sign(tbsDer);
  return seq(tbsDer, alg, bitString(sig));
}
