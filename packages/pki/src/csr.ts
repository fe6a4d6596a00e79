/**
 * PKCS#10 certification requests (RFC 2986): parse PEM or DER, verify the
 * self-signature (proof of possession), read challengePassword and requested
 * extensions, check a policy. Also builds CSRs for any Signer (the agent's
 * keystores, tests).
 */
import {
  TAG,
  bitString,
  children,
  int,
  oid,
  parseOne,
  raw,
  readBitString,
  readOid,
  readSmallInt,
  readString,
  seq,
  seqOf,
  setOf,
  tlv,
  utf8,
  type Tlv,
} from './der.js';
import {
  type Extension,
  type GeneralName,
  decodeBasicConstraints,
  decodeExtensions,
  decodeSubjectAltName,
} from './extensions.js';
import { PkiError, wrapParse } from './errors.js';
import {
  type KeyAlgorithm,
  type PublicKeyInfo,
  type SignatureAlgorithm,
  type Signer,
  describeSpki,
  readSignatureAlgorithm,
  signatureAlgorithmDer,
  verifySignature,
} from './keys.js';
import { type NameAttribute, decodeName, encodeName } from './name.js';
import { OID } from './oids.js';
import { PEM, pemEncode, toDer } from './pem.js';

/** Largest CSR accepted (an RSA-4096 CSR with device facts is ~2 KB). */
export const MAX_CSR_BYTES = 16 * 1024;

export interface Csr {
  der: Buffer;
  /** DER CertificationRequestInfo: the signed bytes. */
  info: Buffer;
  subjectDer: Buffer;
  subject: NameAttribute[];
  spki: Buffer;
  publicKey: PublicKeyInfo;
  signatureAlgorithmOid: string;
  signatureAlgorithm: SignatureAlgorithm | undefined;
  signature: Buffer;
  /** Attribute OID → DER of each value in its SET. */
  attributes: Map<string, Buffer[]>;
  challengePassword: string | undefined;
  /** Extensions asked for through the PKCS#9 extensionRequest attribute. */
  requestedExtensions: Map<string, Extension>;
}

/** Parses a CSR. Does not verify its signature: see `verifyCsr`. */
export function parseCsr(input: string | Uint8Array): Csr {
  const der = toDer(input, PEM.CSR, PEM.CSR_LEGACY);
  if (der.length > MAX_CSR_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `CSR is ${der.length} bytes; the limit is ${MAX_CSR_BYTES}`);
  }
  return wrapParse('DER_MALFORMED', 'CSR', () => {
    const [infoT, algT, sigT] = seqOf(parseOne(der, 'CertificationRequest'), 'CertificationRequest', 3, 3) as [Tlv, Tlv, Tlv];
    const infoParts = seqOf(infoT, 'CertificationRequestInfo', 4, 4);
    const version = readSmallInt(infoParts[0]!, 'CertificationRequestInfo.version');
    if (version !== 0) throw new PkiError('DER_MALFORMED', `CSR version must be 0 (v1), found ${version}`);
    const subjectDer = raw(infoParts[1]!);
    const spki = raw(infoParts[2]!);
    const attrsT = infoParts[3]!;
    if (attrsT.tag !== 0xa0) throw new PkiError('DER_MALFORMED', 'CertificationRequestInfo.attributes must be [0]');
    const attributes = new Map<string, Buffer[]>();
    for (const [i, a] of children(attrsT, 'attributes').entries()) {
      const [typeT, valuesT] = seqOf(a, `attributes[${i}]`, 2, 2) as [Tlv, Tlv];
      const type = readOid(typeT, `attributes[${i}].type`);
      if (valuesT.tag !== TAG.SET) throw new PkiError('DER_MALFORMED', `attributes[${i}].values must be a SET`);
      if (attributes.has(type)) throw new PkiError('DER_MALFORMED', `attribute ${type} appears twice`);
      attributes.set(type, children(valuesT, `attributes[${i}].values`).map(raw));
    }
    let challengePassword: string | undefined;
    const cp = attributes.get(OID.challengePassword);
    if (cp) {
      if (cp.length !== 1) throw new PkiError('DER_MALFORMED', 'challengePassword must have exactly one value');
      challengePassword = readString(parseOne(cp[0]!, 'challengePassword'), 'challengePassword');
    }
    let requestedExtensions = new Map<string, Extension>();
    const er = attributes.get(OID.extensionRequest);
    if (er) {
      if (er.length !== 1) throw new PkiError('DER_MALFORMED', 'extensionRequest must have exactly one value');
      requestedExtensions = decodeExtensions(parseOne(er[0]!, 'extensionRequest'), 'extensionRequest');
    }
    const { oid: sigOid, alg } = readSignatureAlgorithm(raw(algT), 'CSR.signatureAlgorithm');
    return {
      der,
      info: raw(infoT),
      subjectDer,
      subject: decodeName(subjectDer),
      spki,
      publicKey: describeSpki(spki),
      signatureAlgorithmOid: sigOid,
      signatureAlgorithm: alg,
      signature: readBitString(sigT, 'CSR.signature').bytes,
      attributes,
      challengePassword,
      requestedExtensions,
    };
  });
}

/** Proof of possession: the CSR is signed by the key it carries. Throws SIGNATURE_INVALID. */
export function verifyCsr(csr: Csr): void {
  if (!csr.signatureAlgorithm) {
    throw new PkiError('ALGORITHM_UNSUPPORTED', `CSR is signed with unsupported algorithm ${csr.signatureAlgorithmOid}`);
  }
  if (!verifySignature(csr.spki, csr.signatureAlgorithmOid, csr.info, csr.signature)) {
    throw new PkiError('SIGNATURE_INVALID', 'CSR signature does not verify: the request was altered or not signed by its key');
  }
}

/** Parse and verify in one step; what every enrollment front-end calls. */
export function readVerifiedCsr(input: string | Uint8Array): Csr {
  const csr = parseCsr(input);
  verifyCsr(csr);
  return csr;
}

/** The UTF8String/DirectoryString value of a single-valued custom attribute, if present. */
export function csrStringAttribute(csr: Csr, attrOid: string, maxLength: number): string | undefined {
  const v = csr.attributes.get(attrOid);
  if (!v) return undefined;
  if (v.length !== 1) throw new PkiError('DER_MALFORMED', `attribute ${attrOid} must have exactly one value`);
  const s = wrapParse('DER_MALFORMED', `attribute ${attrOid}`, () => readString(parseOne(v[0]!, attrOid), attrOid));
  if (s.length > maxLength) throw new PkiError('INPUT_TOO_LARGE', `attribute ${attrOid} is ${s.length} characters; the limit is ${maxLength}`);
  return s;
}

// ----------------------------------------------------------------- policy

export interface CsrPolicy {
  keyAlgorithms: readonly KeyAlgorithm[];
  minRsaBits: number;
  signatureAlgorithms: readonly SignatureAlgorithm[];
  /** SANs the requester may ask for (they are set by the server anyway); default none. */
  allowedSubjectAltNames?: readonly GeneralName[];
}

export const DEFAULT_CSR_POLICY: CsrPolicy = Object.freeze({
  keyAlgorithms: ['P-256', 'P-384', 'RSA'],
  minRsaBits: 2048,
  signatureAlgorithms: [
    'ecdsa-with-SHA256',
    'ecdsa-with-SHA384',
    'ecdsa-with-SHA512',
    'sha256WithRSAEncryption',
    'sha384WithRSAEncryption',
    'sha512WithRSAEncryption',
  ],
}) as CsrPolicy;

/** Extensions a CSR may ask for without effect (the profile decides them). */
const HARMLESS_REQUESTS = new Set<string>([OID.keyUsage, OID.extKeyUsage, OID.subjectKeyIdentifier, OID.basicConstraints, OID.subjectAltName]);

const policyError = (rule: string, message: string): PkiError => new PkiError('CSR_POLICY', message, { rule });

const sameName = (a: GeneralName | { other: number }, b: GeneralName): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

/** Checks a (verified) CSR against a policy; throws PkiError CSR_POLICY with `rule` set. */
export function checkCsrPolicy(csr: Csr, policy: CsrPolicy = DEFAULT_CSR_POLICY): void {
  const k = csr.publicKey;
  if (k.kind === 'rsa') {
    if (!policy.keyAlgorithms.includes('RSA')) throw policyError('key-type', 'RSA keys are not allowed; use an ECDSA P-256 key');
    if (k.bits < policy.minRsaBits) {
      throw policyError('key-size', `RSA key is ${k.bits} bits; at least ${policy.minRsaBits} bits are required`);
    }
  } else if (k.kind === 'ec' && k.curve !== 'other') {
    if (!policy.keyAlgorithms.includes(k.curve)) {
      throw policyError('key-type', `${k.name} keys are not allowed; allowed: ${policy.keyAlgorithms.join(', ')}`);
    }
  } else {
    throw policyError('key-type', `${k.name} is not allowed; allowed: ${policy.keyAlgorithms.join(', ')}`);
  }
  if (!csr.signatureAlgorithm || !policy.signatureAlgorithms.includes(csr.signatureAlgorithm)) {
    throw policyError('signature-algorithm', `CSR signature algorithm ${csr.signatureAlgorithm ?? csr.signatureAlgorithmOid} is not allowed`);
  }
  const bc = csr.requestedExtensions.get(OID.basicConstraints);
  if (bc && decodeBasicConstraints(bc.value).ca) {
    throw policyError('ca-requested', 'CSR asks for a CA certificate (basicConstraints CA:true); device certificates are never CAs');
  }
  const san = csr.requestedExtensions.get(OID.subjectAltName);
  if (san) {
    const allowed = policy.allowedSubjectAltNames ?? [];
    for (const n of decodeSubjectAltName(san.value)) {
      if (!allowed.some((a) => sameName(n, a))) {
        throw policyError(
          'san-requested',
          `CSR asks for subjectAltName ${JSON.stringify(n)}; names in the certificate are set by the server from its records, so remove them from the request`,
        );
      }
    }
  }
  for (const e of csr.requestedExtensions.values()) {
    if (e.critical && !HARMLESS_REQUESTS.has(e.oid)) {
      throw policyError('critical-extension', `CSR asks for unknown critical extension ${e.oid}`);
    }
  }
}

// ----------------------------------------------------------------- build

export interface CsrRequest {
  subject: readonly NameAttribute[];
  signer: Signer;
  challengePassword?: string;
  /** DER Extension elements to put in an extensionRequest. */
  extensions?: readonly Uint8Array[];
  /** Extra single-valued UTF8String attributes (e.g. device facts). */
  stringAttributes?: ReadonlyArray<{ oid: string; value: string }>;
}

/** Builds and signs a PKCS#10 CSR; returns DER. */
export async function createCsr(req: CsrRequest): Promise<Buffer> {
  const attrs: Buffer[] = [];
  if (req.challengePassword !== undefined) attrs.push(seq(oid(OID.challengePassword), setOf(utf8(req.challengePassword))));
  if (req.extensions && req.extensions.length > 0) attrs.push(seq(oid(OID.extensionRequest), setOf(seq(...req.extensions))));
  for (const a of req.stringAttributes ?? []) attrs.push(seq(oid(a.oid), setOf(utf8(a.value))));
  attrs.sort(Buffer.compare);
  const info = seq(int(0), encodeName(req.subject), req.signer.spki, tlv(0xa0, ...attrs));
  const alg = signatureAlgorithmDer(req.signer.algorithm);
  const sig = await req.signer.sign(info);
  return seq(info, alg, bitString(sig));
}

export const csrToPem = (der: Uint8Array): string => pemEncode(PEM.CSR, der);

/**
 * RFC 7030 §4.5.2 CSR attributes (`/csrattrs`): the key the server wants
 * (an EC key on P-256), the signature (ECDSA with SHA-256), and the
 * attributes a CSR should carry.
 */
export function encodeCsrAttrs(attributeOids: readonly string[]): Buffer {
  return seq(seq(oid(OID.ecPublicKey), setOf(oid(OID.secp256r1))), oid(OID.ecdsaWithSHA256), ...attributeOids.map((a) => oid(a)));
}

