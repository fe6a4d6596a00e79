/**
 * The certificate profiles Latchkey issues: device client certificates (the
 * product), the server's TLS certificate, and the delegated OCSP responder.
 *
 * A profile is built once per issuer: every extension that does not depend on
 * the device (KU, EKU, BC, CRL DP, AIA, AKI) is encoded up front, so issuing
 * is the subject, the SAN, the SKI and one signature.
 */
import { createHash } from 'node:crypto';
import type { Issuer } from './ca.js';
import { signCertificate } from './certificate.js';
import { PkiError } from './errors.js';
import {
  authorityInfoAccessValue,
  certificatePoliciesValue,
  basicConstraintsValue,
  crlDistributionPointsValue,
  encodeExtension,
  extKeyUsageValue,
  type GeneralName,
  keyUsageValue,
  ocspNoCheckValue,
  subjectAltNameValue,
  subjectKeyIdentifierValue,
} from './extensions.js';
import { describeSpki, spkiKeyBits } from './keys.js';
import { encodeName } from './name.js';
import { OID } from './oids.js';

/**
 * Device certificates' notBefore is this far before the moment of issuance (clients with slow clocks);
 * a certificate's validity is therefore its lifetime plus this, which the agent takes into account.
 */
export const NOT_BEFORE_BACKDATE_SECONDS = 300;

export interface DeviceProfileOptions {
  issuer: Issuer;
  org: string;
  /** SPIFFE trust domain, e.g. "example.com". */
  trustDomain: string;
  crlUrls: readonly string[];
  ocspUrls: readonly string[];
  caIssuersUrls: readonly string[];
  /** notBefore = now - backdate, for clients with slow clocks. Default NOT_BEFORE_BACKDATE_SECONDS. */
  backdateSeconds?: number;
}

export interface DeviceCertificateRequest {
  /** DER SubjectPublicKeyInfo from the verified CSR. */
  spki: Uint8Array;
  /** Server-assigned UUID. */
  deviceId: string;
  /** Sanitized device name (CN). */
  deviceName: string;
  /** Bound user, if any: a plain address (USER_EMAIL_PATTERN), in the SAN and as the subject's last RDN. */
  email?: string;
  /**
   * The key was attested by a TPM (issue 14): the subject gains `OU=<ou>` right
   * after O (a gateway checks it in the DN; no device can name an OU, its CN is
   * [A-Za-z0-9._-] only) and certificatePolicies gains `policyOid`.
   */
  attested?: { ou: string; policyOid: string };
  serial: Uint8Array;
  now: Date;
  lifetimeSeconds: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The user emails a device certificate may carry (unanchored, for gateways'
 * regexes too). Only characters that no DN printer escapes and no header or
 * config file treats specially: RFC 2253 escapes `,+"\<>;` (OpenSSL prints
 * `bob+x@…` as `bob\+x@…` in $ssl_client_s_dn, which nginx cannot unescape),
 * so `+` is left out with the rest. Gateways copy the address verbatim.
 */
export const USER_EMAIL_PATTERN = '[A-Za-z0-9._%-]{1,64}@[A-Za-z0-9.-]{1,253}';
const USER_EMAIL = new RegExp(`^${USER_EMAIL_PATTERN}$`);
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/;

export const spiffeDeviceId = (trustDomain: string, deviceId: string): string =>
  `spiffe://${trustDomain}/device/${deviceId}`;

function skiExtension(spki: Uint8Array): Buffer {
  return encodeExtension(
    OID.subjectKeyIdentifier,
    false,
    subjectKeyIdentifierValue(createHash('sha1').update(spkiKeyBits(spki)).digest()),
  );
}

export interface DeviceProfile {
  readonly issuer: Issuer;
  readonly trustDomain: string;
  issue(req: DeviceCertificateRequest): Promise<Buffer>;
}

/**
 * Device client certificate profile (docs/architecture.md "Identities"): subject
 * `O=<org>, CN=<device name>, UID=<device id>[, emailAddress=<user>]`, SAN
 * `spiffe://<domain>/device/<id>[, email:<user>]`.
 */
export function createDeviceProfile(o: DeviceProfileOptions): DeviceProfile {
  if (!TRUST_DOMAIN.test(o.trustDomain)) {
    throw new PkiError('ARGUMENT_INVALID', `trust domain "${o.trustDomain}" must be a lower-case DNS name`);
  }
  if (o.crlUrls.length === 0 || o.ocspUrls.length === 0 || o.caIssuersUrls.length === 0) {
    throw new PkiError('ARGUMENT_INVALID', 'device profile needs CRL, OCSP and caIssuers URLs');
  }
  const backdateMs = (o.backdateSeconds ?? NOT_BEFORE_BACKDATE_SECONDS) * 1000;
  const fixed = [
    encodeExtension(OID.basicConstraints, true, basicConstraintsValue(false)),
    encodeExtension(OID.keyUsage, true, keyUsageValue(['digitalSignature'])),
    encodeExtension(OID.extKeyUsage, false, extKeyUsageValue([OID.kpClientAuth])),
    o.issuer.akiExtension,
    encodeExtension(OID.crlDistributionPoints, false, crlDistributionPointsValue(o.crlUrls)),
    encodeExtension(OID.authorityInfoAccess, false, authorityInfoAccessValue({ ocsp: o.ocspUrls, caIssuers: o.caIssuersUrls })),
  ];
  const issuerDer = o.issuer.cert.subjectDer;
  const notAfterCap = o.issuer.cert.notAfter.getTime();
  return {
    issuer: o.issuer,
    trustDomain: o.trustDomain,
    async issue(r) {
      if (!UUID.test(r.deviceId)) throw new PkiError('ARGUMENT_INVALID', `device id "${r.deviceId}" is not a lower-case UUID`);
      if (!(r.lifetimeSeconds > 0)) throw new PkiError('ARGUMENT_INVALID', 'lifetime must be positive');
      if (r.email !== undefined && !USER_EMAIL.test(r.email)) {
        throw new PkiError('ARGUMENT_INVALID', `user email ${JSON.stringify(r.email)} is not a plain address (letters, digits and ._%- before the @, a host name after): it would reach a subject DN and gateway headers`);
      }
      const now = r.now.getTime();
      const notAfter = now + r.lifetimeSeconds * 1000;
      if (notAfter > notAfterCap) {
        throw new PkiError('CA_INVALID', `the issuing CA expires ${o.issuer.cert.notAfter.toISOString()}, before the requested certificate would`);
      }
      const sans: GeneralName[] = [{ uri: spiffeDeviceId(o.trustDomain, r.deviceId) }];
      if (r.email !== undefined) sans.push({ email: r.email });
      return signCertificate(
        {
          serial: r.serial,
          issuerDer,
          // The device id is also the subject's UID (RFC 4519 §2.39): the SAN URI is
          // what SPIFFE-aware proxies read, but nginx (without njs) and HAProxy can
          // only see the subject DN ($ssl_client_s_dn, ssl_c_s_dn(UID)). The user's email is in the SAN
          // (RFC 5280 rfc822Name) and, for the same gateways, last in the subject as PKCS#9 emailAddress:
          // nginx prints the last RDN first, so its map anchors on "^emailAddress=…,UID=".
          subjectDer: encodeName([
            { type: 'O', value: o.org },
            ...(r.attested ? [{ type: 'OU' as const, value: r.attested.ou }] : []),
            { type: 'CN', value: r.deviceName },
            { type: 'UID', value: r.deviceId },
            ...(r.email !== undefined ? [{ type: 'emailAddress', value: r.email }] : []),
          ]),
          spki: r.spki,
          notBefore: new Date(Math.max(now - backdateMs, o.issuer.cert.notBefore.getTime())),
          notAfter: new Date(notAfter),
          extensions: [
            ...fixed,
            skiExtension(r.spki),
            encodeExtension(OID.subjectAltName, false, subjectAltNameValue(sans)),
            ...(r.attested ? [encodeExtension(OID.certificatePolicies, false, certificatePoliciesValue([r.attested.policyOid]))] : []),
          ],
        },
        o.issuer.signer,
      );
    },
  };
}

export interface ServerCertificateRequest {
  issuer: Issuer;
  spki: Uint8Array;
  org: string;
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
}

/** The enrollment server's own TLS certificate: serverAuth, DNS/IP SANs. */
export function issueServerCertificate(r: ServerCertificateRequest): Promise<Buffer> {
  const sans: GeneralName[] = [...r.dnsNames.map((dns) => ({ dns })), ...r.ipAddresses.map((ip) => ({ ip }))];
  if (sans.length === 0) throw new PkiError('ARGUMENT_INVALID', 'a server certificate needs at least one DNS name or IP address');
  const rsa = describeSpki(r.spki).kind === 'rsa';
  return signCertificate(
    {
      serial: r.serial,
      issuerDer: r.issuer.cert.subjectDer,
      subjectDer: encodeName([
        { type: 'O', value: r.org },
        { type: 'CN', value: r.commonName },
      ]),
      spki: r.spki,
      notBefore: r.notBefore,
      notAfter: r.notAfter,
      extensions: [
        encodeExtension(OID.basicConstraints, true, basicConstraintsValue(false)),
        encodeExtension(OID.keyUsage, true, keyUsageValue(rsa ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'])),
        encodeExtension(OID.extKeyUsage, false, extKeyUsageValue([OID.kpServerAuth])),
        r.issuer.akiExtension,
        skiExtension(r.spki),
        encodeExtension(OID.subjectAltName, false, subjectAltNameValue(sans)),
      ],
    },
    r.issuer.signer,
  );
}

export interface OcspResponderCertificateRequest {
  issuer: Issuer;
  spki: Uint8Array;
  org: string;
  commonName?: string;
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Delegated OCSP responder (RFC 6960 §4.2.2.2): issued by the CA whose
 * certificates it answers for, EKU id-kp-OCSPSigning, and id-pkix-ocsp-nocheck
 * so clients do not ask about the responder itself (§4.2.2.2.1).
 */
export function issueOcspResponderCertificate(r: OcspResponderCertificateRequest): Promise<Buffer> {
  return signCertificate(
    {
      serial: r.serial,
      issuerDer: r.issuer.cert.subjectDer,
      subjectDer: encodeName([
        { type: 'O', value: r.org },
        { type: 'CN', value: r.commonName ?? 'Latchkey OCSP Responder' },
      ]),
      spki: r.spki,
      notBefore: r.notBefore,
      notAfter: r.notAfter,
      extensions: [
        encodeExtension(OID.basicConstraints, true, basicConstraintsValue(false)),
        encodeExtension(OID.keyUsage, true, keyUsageValue(['digitalSignature'])),
        encodeExtension(OID.extKeyUsage, false, extKeyUsageValue([OID.kpOcspSigning])),
        encodeExtension(OID.ocspNoCheck, false, ocspNoCheckValue()),
        r.issuer.akiExtension,
        skiExtension(r.spki),
      ],
    },
    r.issuer.signer,
  );
}
