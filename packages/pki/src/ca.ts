/**
 * The CA hierarchy: a new root + issuing intermediate, or an existing
 * enterprise intermediate imported and checked. Keys, time and randomness
 * are parameters.
 */
import type { KeyObject } from 'node:crypto';
import {
  type Certificate,
  basicConstraints,
  isIssuedBy,
  keyUsage,
  parseCertificate,
  signCertificate,
  subjectString,
} from './certificate.js';
import { PkiError } from './errors.js';
import {
  authorityKeyIdentifierValue,
  basicConstraintsValue,
  crlDistributionPointsValue,
  encodeExtension,
  keyUsageValue,
  subjectKeyIdentifierValue,
} from './extensions.js';
import { type Signer, describeSpki, keyIdentifier, nodeSigner, privateKeyMatches } from './keys.js';
import { encodeName } from './name.js';
import { OID } from './oids.js';
import { randomSerial, type RandomBytes } from './serial.js';

const DAY_MS = 86_400_000;

/** An issuing CA ready to sign: its certificate, a signer for its key, cached DER. */
export interface Issuer {
  readonly cert: Certificate;
  readonly signer: Signer;
  /** SHA-1 key id of the CA key (its SKI if present, else computed). */
  readonly keyId: Buffer;
  /** DER AuthorityKeyIdentifier extension for certificates this CA signs. */
  readonly akiExtension: Buffer;
}

/**
 * Wraps a CA certificate and its signer, checking they belong together and
 * that the certificate may sign certificates and CRLs.
 */
export function createIssuer(certInput: string | Uint8Array | Certificate, signer: Signer): Issuer {
  const cert = isCertificate(certInput) ? certInput : parseCertificate(certInput);
  if (!cert.spki.equals(signer.spki)) {
    throw new PkiError('KEY_MISMATCH', `the key given does not belong to the CA certificate "${subjectString(cert)}"`);
  }
  checkCaCertificate(cert);
  const keyId = keyIdentifier(cert.spki);
  return Object.freeze({
    cert,
    signer,
    keyId,
    akiExtension: encodeExtension(OID.authorityKeyIdentifier, false, authorityKeyIdentifierValue(keyId)),
  });
}

function isCertificate(x: unknown): x is Certificate {
  return typeof x === 'object' && x !== null && 'tbs' in x && 'spki' in x && !(x instanceof Uint8Array);
}

/** A CA certificate must say CA:true and keyCertSign (RFC 5280 §4.2.1.3, §4.2.1.9). */
export function checkCaCertificate(cert: Certificate): void {
  const bc = basicConstraints(cert);
  if (!bc?.ca) throw new PkiError('CA_INVALID', `"${subjectString(cert)}" is not a CA certificate (basicConstraints CA:true missing)`);
  const ku = keyUsage(cert);
  if (ku && !ku.has('keyCertSign')) {
    throw new PkiError('CA_INVALID', `"${subjectString(cert)}" may not sign certificates (keyUsage lacks keyCertSign)`);
  }
  if (ku && !ku.has('cRLSign')) {
    throw new PkiError('CA_INVALID', `"${subjectString(cert)}" may not sign CRLs (keyUsage lacks cRLSign)`);
  }
}

export interface CaHierarchyOptions {
  org: string;
  now: Date;
  rootKey: KeyObject;
  issuingKey: KeyObject;
  randomBytes: RandomBytes;
  rootCommonName?: string;
  issuingCommonName?: string;
  /** Default 3650 (10 years). */
  rootValidityDays?: number;
  /** Default 1825 (5 years); capped at the root's notAfter. */
  issuingValidityDays?: number;
  /** CRL URL of the root, put in the intermediate's CRL Distribution Point. */
  rootCrlUrl?: string;
}

export interface CaHierarchy {
  root: Certificate;
  issuing: Issuer;
}

/** Creates a self-signed root and an issuing intermediate (pathLen 0) under it. */
export async function createCaHierarchy(o: CaHierarchyOptions): Promise<CaHierarchy> {
  for (const [what, key] of [['root', o.rootKey], ['issuing', o.issuingKey]] as const) {
    const info = describeSpki(nodeSignerSpki(key));
    if (!(info.kind === 'ec' && info.curve !== 'other') && !(info.kind === 'rsa' && info.bits >= 2048)) {
      throw new PkiError('ALGORITHM_UNSUPPORTED', `${what} CA key must be ECDSA P-256/P-384 or RSA >= 2048, got ${info.name}`);
    }
  }
  const rootSigner = nodeSigner(o.rootKey);
  const issuingSigner = nodeSigner(o.issuingKey);
  const notBefore = new Date(o.now.getTime() - 5 * 60_000);
  const rootNotAfter = new Date(o.now.getTime() + (o.rootValidityDays ?? 3650) * DAY_MS);
  const issuingNotAfter = new Date(
    Math.min(rootNotAfter.getTime(), o.now.getTime() + (o.issuingValidityDays ?? 1825) * DAY_MS),
  );
  const rootName = encodeName([
    { type: 'O', value: o.org },
    { type: 'CN', value: o.rootCommonName ?? `${o.org} Latchkey Root CA`.slice(0, 64) },
  ]);
  const issuingName = encodeName([
    { type: 'O', value: o.org },
    { type: 'CN', value: o.issuingCommonName ?? `${o.org} Latchkey Device CA`.slice(0, 64) },
  ]);
  const caKu = encodeExtension(OID.keyUsage, true, keyUsageValue(['keyCertSign', 'cRLSign']));
  const rootKeyId = keyIdentifier(rootSigner.spki);
  const rootDer = await signCertificate(
    {
      serial: randomSerial(o.randomBytes),
      issuerDer: rootName,
      subjectDer: rootName,
      spki: rootSigner.spki,
      notBefore,
      notAfter: rootNotAfter,
      extensions: [
        encodeExtension(OID.basicConstraints, true, basicConstraintsValue(true)),
        caKu,
        encodeExtension(OID.subjectKeyIdentifier, false, subjectKeyIdentifierValue(rootKeyId)),
      ],
    },
    rootSigner,
  );
  const root = parseCertificate(rootDer);
  const issuingDer = await signCertificate(
    {
      serial: randomSerial(o.randomBytes),
      issuerDer: rootName,
      subjectDer: issuingName,
      spki: issuingSigner.spki,
      notBefore,
      notAfter: issuingNotAfter,
      extensions: [
        encodeExtension(OID.basicConstraints, true, basicConstraintsValue(true, 0)),
        caKu,
        encodeExtension(OID.subjectKeyIdentifier, false, subjectKeyIdentifierValue(keyIdentifier(issuingSigner.spki))),
        encodeExtension(OID.authorityKeyIdentifier, false, authorityKeyIdentifierValue(rootKeyId)),
        ...(o.rootCrlUrl ? [encodeExtension(OID.crlDistributionPoints, false, crlDistributionPointsValue([o.rootCrlUrl]))] : []),
      ],
    },
    rootSigner,
  );
  return { root, issuing: createIssuer(issuingDer, issuingSigner) };
}

function nodeSignerSpki(key: KeyObject): Buffer {
  if (key.type !== 'private') throw new PkiError('ARGUMENT_INVALID', 'a CA key must be a private key');
  return nodeSigner(key).spki;
}

export interface ImportCaOptions {
  /** The enterprise's issuing intermediate (PEM or DER). */
  cert: string | Uint8Array;
  key: KeyObject;
  /** The root it chains to (PEM or DER); may have intermediates between: pass them in `chain`. */
  root: string | Uint8Array;
  chain?: ReadonlyArray<string | Uint8Array>;
  now: Date;
}

/**
 * Imports an existing issuing CA: checks CA:true, keyCertSign and cRLSign,
 * that the key matches the certificate, that it is valid at `now`, and that
 * it chains (names and signatures) to the given root through `chain`.
 */
export function importIssuingCa(o: ImportCaOptions): { root: Certificate; chain: Certificate[]; issuing: Issuer } {
  const cert = parseCertificate(o.cert);
  const root = parseCertificate(o.root);
  const chain = (o.chain ?? []).map((c) => parseCertificate(c));
  if (o.key.type !== 'private') throw new PkiError('ARGUMENT_INVALID', 'the CA key must be a private key');
  if (!privateKeyMatches(o.key, cert.spki)) {
    throw new PkiError('KEY_MISMATCH', `the private key does not belong to "${subjectString(cert)}"`);
  }
  checkCaCertificate(cert);
  checkCaCertificate(root);
  for (const c of [cert, ...chain, root]) {
    if (o.now < c.notBefore || o.now > c.notAfter) {
      throw new PkiError('CA_INVALID', `"${subjectString(c)}" is not valid now (valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`);
    }
  }
  if (!isIssuedBy(root, root)) throw new PkiError('CHAIN_INVALID', `the root "${subjectString(root)}" is not self-signed`);
  let child = cert;
  for (const parent of [...chain, root]) {
    if (!isIssuedBy(child, parent)) {
      throw new PkiError('CHAIN_INVALID', `"${subjectString(child)}" is not signed by "${subjectString(parent)}"`);
    }
    child = parent;
  }
  return { root, chain, issuing: createIssuer(cert, nodeSigner(o.key)) };
}
