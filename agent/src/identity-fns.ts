/** Pure helpers over device certificates. */
import { type Certificate, OID, decodeSubjectAltName, firstValue } from '@latchkey/pki';

export interface CertSummary {
  subject: string;
  deviceId: string | undefined;
  sans: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function sansOf(cert: Certificate): string[] {
  const ext = cert.extensions.get(OID.subjectAltName);
  if (!ext) return [];
  return decodeSubjectAltName(ext.value).map((n) => ('uri' in n ? `URI:${n.uri}` : 'email' in n ? `email:${n.email}` : 'dns' in n ? `DNS:${n.dns}` : 'ip' in n ? `IP:${String(n.ip)}` : 'other'));
}

/** The server-assigned device id from the SPIFFE URI SAN `spiffe://<domain>/device/<id>`. */
export function deviceIdOf(cert: Certificate): string | undefined {
  for (const s of sansOf(cert)) {
    const m = /^URI:spiffe:\/\/[^/]+\/device\/([0-9a-f-]{36})$/.exec(s);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * The person the device is bound to: the certificate's first rfc822Name
 * SAN, which the server puts there only from a verified sign-in (issue 12).
 * The certificate is the source of truth; undefined when it names nobody.
 */
export function userOf(cert: Certificate): string | undefined {
  const s = sansOf(cert).find((n) => n.startsWith('email:'));
  return s?.slice('email:'.length);
}

export function summarize(cert: Certificate): CertSummary {
  const cn = firstValue(cert.subject, 'CN');
  const o = firstValue(cert.subject, 'O');
  return {
    subject: [cn ? `CN=${cn}` : '', o ? `O=${o}` : ''].filter(Boolean).join(', '),
    deviceId: deviceIdOf(cert),
    sans: sansOf(cert),
    serial: cert.serialHex,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}
