/**
 * EK certificate checks (TCG EK Credential Profile 2.0): the EK certificate
 * chains to a trusted TPM manufacturer root, and certifies the EK the device
 * showed. EK certificates are not TLS certificates: their subject is often
 * empty, their SAN is a critical directoryName with the TPM manufacturer,
 * model and version (2.23.133.2.1/2/3), and many carry no EKU (or the TCG one,
 * 2.23.133.8.1), so no EKU is required.
 */
import { createHash } from 'node:crypto';
import { basicConstraints, decodeName, isIssuedBy, keyUsage, OID, parseCertificate, publicKeyFromSpki, subjectString, type Certificate } from '@latchkey/pki';
import { children, parseOne, raw, seqOf } from '@latchkey/pki/der';
import { TpmError } from './errors.js';
import { publicKeyObject, type TpmPublic } from './public.js';

const MAX_CHAIN = 6;
const TCG_AT = { manufacturer: '2.23.133.2.1', model: '2.23.133.2.2', version: '2.23.133.2.3' } as const;

export interface EkCertificateInput {
  /** The EK certificate, DER or PEM. */
  certificate: Uint8Array | string;
  /** Intermediate CA certificates the device or the manufacturer supplied (untrusted). */
  intermediates?: ReadonlyArray<Uint8Array | string>;
  /** Trusted TPM manufacturer roots (the server's configured directory). */
  roots: ReadonlyArray<Uint8Array | string>;
  now: Date;
  /** When given, the certificate must certify this key (the EK the device uses). */
  ekPublic?: TpmPublic;
}

export interface EkCertificateResult {
  certificate: Certificate;
  /** Issuers from the EK certificate's up to and including the trusted root. */
  chain: Certificate[];
  /** TPM manufacturer, model and firmware version from the SAN directoryName, as written ("id:00001014"). */
  tpm: { manufacturer?: string; model?: string; version?: string };
}

function parse(c: Uint8Array | string, what: string): Certificate {
  try {
    return parseCertificate(c);
  } catch (e) {
    throw new TpmError('CHAIN_INVALID', `${what} cannot be read: ${(e as Error).message}`, { cause: e });
  }
}

function checkTime(c: Certificate, now: Date, what: string): void {
  if (now < c.notBefore || now > c.notAfter) {
    throw new TpmError('CHAIN_INVALID', `${what} "${subjectString(c)}" is not valid at ${now.toISOString()} (valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`);
  }
}

function canIssue(c: Certificate): boolean {
  const ku = keyUsage(c);
  return basicConstraints(c)?.ca === true && (ku === undefined || ku.has('keyCertSign'));
}

/** The TCG attributes of the SAN directoryName; empty when the certificate has none. */
export function ekTpmInfo(c: Certificate): EkCertificateResult['tpm'] {
  const san = c.extensions.get(OID.subjectAltName);
  if (!san) return {};
  const out: EkCertificateResult['tpm'] = {};
  try {
    for (const gn of seqOf(parseOne(san.value, 'SubjectAltName'), 'SubjectAltName')) {
      if (gn.tag !== 0xa4) continue;
      for (const name of children(gn, 'directoryName')) {
        for (const a of decodeName(raw(name))) {
          if (a.type === TCG_AT.manufacturer) out.manufacturer = a.value;
          else if (a.type === TCG_AT.model) out.model = a.value;
          else if (a.type === TCG_AT.version) out.version = a.value;
        }
      }
    }
  } catch (e) {
    throw new TpmError('CHAIN_INVALID', `the EK certificate's subjectAltName cannot be read: ${(e as Error).message}`, { cause: e });
  }
  return out;
}

/**
 * Verifies the EK certificate's chain to one of `roots` at `now`, through
 * `intermediates` that are CAs, and (if `ekPublic` is given) that it
 * certifies that key. Throws TpmError CHAIN_INVALID saying which link fails.
 */
export function verifyEkCertificate(i: EkCertificateInput): EkCertificateResult {
  if ((i.intermediates?.length ?? 0) > 16) throw new TpmError('ARGUMENT_INVALID', 'at most 16 intermediate certificates are accepted with an EK certificate');
  const ek = parse(i.certificate, 'the EK certificate');
  const intermediates = (i.intermediates ?? []).map((c, n) => parse(c, `intermediate certificate ${n + 1}`));
  const roots = i.roots.map((c, n) => parse(c, `trusted root ${n + 1}`));
  checkTime(ek, i.now, 'the EK certificate');
  if (i.ekPublic && !publicKeyFromSpki(ek.spki).equals(publicKeyObject(i.ekPublic))) {
    throw new TpmError('CHAIN_INVALID', 'the EK certificate is for another key than the EK the device presented');
  }
  const chain: Certificate[] = [];
  let current = ek;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const root = roots.find((r) => isIssuedBy(current, r));
    if (root) {
      if (!canIssue(root)) throw new TpmError('CHAIN_INVALID', `the trusted root "${subjectString(root)}" is not a CA certificate (basicConstraints cA, keyCertSign)`);
      chain.push(root);
      return { certificate: ek, chain, tpm: ekTpmInfo(ek) };
    }
    const next = intermediates.find((c) => !chain.includes(c) && isIssuedBy(current, c));
    if (!next) break;
    if (!canIssue(next)) throw new TpmError('CHAIN_INVALID', `intermediate "${subjectString(next)}" is not a CA certificate (basicConstraints cA, keyCertSign)`);
    checkTime(next, i.now, 'intermediate');
    chain.push(next);
    current = next;
  }
  throw new TpmError(
    'CHAIN_INVALID',
    `the EK certificate does not chain to a trusted TPM manufacturer root (stopped at "${subjectString(current)}"); add the manufacturer's CA to the trusted EK roots, or supply the missing intermediate`,
  );
}

/** SHA-256 (lower-case hex) of an EK public key's SubjectPublicKeyInfo DER: how the device inventory names an EK. */
export function ekHash(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

/**
 * An EK certificate an administrator registers (`devices register --ek-cert`):
 * read, not chain-checked (the administrator vouches for it), with its EK hash
 * and the TPM manufacturer/model/version. Throws TpmError CHAIN_INVALID if unreadable.
 */
export function readEkCertificate(c: Uint8Array | string): { certificate: Certificate; ekHash: string; tpm: EkCertificateResult['tpm'] } {
  const certificate = parse(c, 'the EK certificate');
  return { certificate, ekHash: ekHash(certificate.spki), tpm: ekTpmInfo(certificate) };
}
